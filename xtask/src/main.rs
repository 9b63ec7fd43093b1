//! `cargo xtask …`: the thin command line over the containerd-stack library. Each
//! subcommand parses its flags and calls the library; errors are printed as one line.

mod build_deb;
mod ci;
mod keys;
mod lock;
mod process;
mod realbin;
mod rootfs;
mod system;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test and publish containerd-stack packages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch, verify, lay out, render and package the stack as .deb files.
    BuildDeb(build_deb::Args),
    /// Install the system tools the tests need, then run every check and test.
    Ci(ci::Args),
    /// Fill stack.toml's sha256 pins from upstream's checksum files (or check them).
    Lock(lock::Args),
    /// Create an OpenPGP signing key for packages and the repository.
    Keygen(keys::KeygenArgs),
    /// Write the policy and keyring debsig-verify needs for a signing key.
    DebsigPolicy(keys::DebsigPolicyArgs),
    /// Check a .deb's structure, checksums and signature.
    Verify(verify::Args),
    /// System tests: package Debian's real binaries, run lintian, install with dpkg in a chroot.
    System(system::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildDeb(args) => build_deb::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Keygen(args) => keys::keygen(args),
        Command::DebsigPolicy(args) => keys::debsig_policy(args),
        Command::Verify(args) => verify::run(args),
        Command::System(args) => system::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the cause chain: `{:#}` joins it with ": ".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

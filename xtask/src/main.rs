//! `cargo xtask …`: the thin command line over the containerd-stack library. Each
//! subcommand parses its flags and calls the library; errors are printed as one line.

mod archive;
mod bench;
mod build_deb;
mod chaos;
mod ci;
mod e2e;
mod keys;
mod lock;
mod process;
mod realbin;
mod repo;
mod rootfs;
mod system;
mod verify;
mod vm;
mod workflows;

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
    /// Measure the speed and memory goals against dpkg-deb and apt-ftparchive.
    Bench(bench::Args),
    /// Kill builds at random points, share a cache, fill the disk: nothing half-written.
    Chaos(chaos::Args),
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
    /// Check the GitHub workflows: schema and shellcheck on every run script.
    Workflows(workflows::Args),
    /// Publish packages into a signed apt repository.
    Repo(repo::Args),
    /// System tests: package Debian's real binaries, run lintian, install with dpkg in a chroot.
    System(system::Args),
    /// End-to-end tests: boot Debian 12 with systemd, install, upgrade, preseed, purge; run a
    /// container on the packaged runtime; piuparts.
    E2e(e2e::Args),
    /// The node proof: Debian 13 booted in a virtual machine runs the CRI sequence a kubelet
    /// makes on containerd 1.6 and 2.1 packages, their upgrades and the major upgrade.
    Vm(vm::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildDeb(args) => build_deb::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Keygen(args) => keys::keygen(args),
        Command::DebsigPolicy(args) => keys::debsig_policy(args),
        Command::Verify(args) => verify::run(args),
        Command::Workflows(args) => workflows::run(args),
        Command::Repo(args) => repo::run(args),
        Command::System(args) => system::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Vm(args) => vm::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, with the cause chain: `{:#}` joins it with ": ".
            // The library's messages already carry their cause: add only what is new.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !line.contains(&cause) {
                    line.push_str(": ");
                    line.push_str(&cause);
                }
            }
            eprintln!("error: {}", line.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

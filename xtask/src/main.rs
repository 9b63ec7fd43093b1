//! `cargo xtask …`: the development tasks of containerd-stack (ci, the system, end-to-end
//! and chaos tests, the bench, workflow checks). The user commands (`build-deb`, `lock`,
//! …) are the `containerd-stack` binary's: xtask builds it optimised and hands over.

mod archive;
mod bench;
mod chaos;
mod ci;
mod e2e;
mod emulate;
mod lintian;
mod oci;
mod process;
mod product;
mod realbin;
mod rootfs;
mod system;
mod vm;
mod workflows;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Develop containerd-stack: its tests and benchmarks, and the containerd-stack command built from this checkout"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The rest of the command line, for the `containerd-stack` command (`--help` is its).
#[derive(ClapArgs)]
#[command(disable_help_flag = true)]
struct HandOver {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Subcommand)]
enum Command {
    /// containerd-stack build-deb, with this repository's stack.toml, dist/ and templates.
    BuildDeb(HandOver),
    /// containerd-stack lock, on this repository's stack.toml.
    Lock(HandOver),
    /// containerd-stack keygen.
    Keygen(HandOver),
    /// containerd-stack debsig-policy.
    DebsigPolicy(HandOver),
    /// containerd-stack verify.
    Verify(HandOver),
    /// containerd-stack repo.
    Repo(HandOver),
    /// containerd-stack init.
    Init(HandOver),
    /// Measure the speed and memory goals against dpkg-deb, xz, reprepro, aptly and apt-ftparchive.
    Bench(bench::Args),
    /// Kill builds at random points, share a cache, fill the disk: nothing half-written.
    Chaos(chaos::Args),
    /// Install the system tools the tests need, then run every check and test.
    Ci(ci::Args),
    /// Check the GitHub workflows: schema and shellcheck on every run script.
    Workflows(workflows::Args),
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
        Command::BuildDeb(a) => product::hand_over("build-deb", a.args),
        Command::Lock(a) => product::hand_over("lock", a.args),
        Command::Keygen(a) => product::hand_over("keygen", a.args),
        Command::DebsigPolicy(a) => product::hand_over("debsig-policy", a.args),
        Command::Verify(a) => product::hand_over("verify", a.args),
        Command::Repo(a) => product::hand_over("repo", a.args),
        Command::Init(a) => product::hand_over("init", a.args),
        Command::Chaos(args) => chaos::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Workflows(args) => workflows::run(args),
        Command::System(args) => system::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Vm(args) => vm::run(args),
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

/// The workspace root: xtask lives one level below it.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The current time, for signing keys' validity and a repository's Date (never an mtime).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

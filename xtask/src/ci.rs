//! `cargo xtask ci`: installs the system tools the tests need, then runs every check and
//! every test — the one command CI and a developer on a fresh machine both run.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

/// Debian packages the tests use: dpkg-deb and lintian judge the packages, mmdebstrap and
/// systemd-nspawn boot a Debian to install them into (mount gives its chroot a /proc),
/// shellcheck checks the maintainer scripts, gpgv and apt judge the published repository,
/// chromium (headless) loads its index page; for the system stage's five architectures,
/// qemu-user-static runs each one's programs and binutils' readelf reads their ELF headers;
/// for the end-to-end tests, piuparts (it brings debootstrap) installs and purges the
/// package, umoci and busybox-static make a container image, iproute2 looks into the
/// network namespace the container runs in; reprepro and aptly take the build's `.changes`
/// (gnupg gives reprepro the signer's key; python3-venv also holds SPDX's validator for
/// the SBOM tests); for the VM stage, qemu boots the guest, e2fsprogs makes its disks and
/// reads them back (mkfs.ext4 -d, debugfs), the archive keyring checks the other Debian
/// suites it reads, and python3 parses the CRI client. `cargo xtask bench` (run by hand)
/// also publishes with reprepro, aptly and apt-utils' apt-ftparchive, side by side with
/// `repo publish`.
pub const SYSTEM_PACKAGES: &[&str] = &[
    "dpkg-dev",
    "lintian",
    "mmdebstrap",
    "mount",
    "systemd-container",
    "shellcheck",
    "ca-certificates",
    "gpgv",
    "gnupg",
    "apt",
    "debsig-verify",
    "python3-venv",
    "piuparts",
    "umoci",
    "busybox-static",
    "iproute2",
    "qemu-system-x86",
    "e2fsprogs",
    "debian-archive-keyring",
    "python3",
    "chromium",
    "reprepro",
    "aptly",
    "qemu-user-static",
    "binutils",
    "apt-utils",
];

#[derive(Parser)]
pub struct Args {
    /// Skip installing system packages (they are already there).
    #[arg(long)]
    no_install: bool,
}

pub fn run(args: Args) -> Result<()> {
    if !args.no_install {
        install_system_packages()?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step(
        "format",
        Command::new(&cargo).args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "clippy",
        Command::new(&cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step("tests", Command::new(&cargo).args(["test", "--workspace"]))?;
    step(
        "workflows",
        Command::new(&cargo).args(["xtask", "workflows"]),
    )?;
    step(
        "system tests",
        Command::new(&cargo).args(["xtask", "system"]),
    )?;
    step(
        "end-to-end tests: booted Debian, container, piuparts",
        Command::new(&cargo).args(["xtask", "e2e"]),
    )?;
    step(
        "VM: Debian 13 node, CRI on containerd 1.6 and 2.1, upgrades, breakages",
        Command::new(&cargo).args(["xtask", "vm"]),
    )?;
    step(
        "chaos: kill -9, shared cache, full disk",
        Command::new(&cargo).args(["xtask", "chaos"]),
    )?;
    Ok(())
}

fn install_system_packages() -> Result<()> {
    let missing: Vec<&str> = SYSTEM_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(
        "apt-get update",
        Command::new("apt-get").args(["update", "-q"]),
    )?;
    step(
        "install system packages",
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Runs one step, streaming its output, and fails naming the step.
pub fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {name}");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("{name}: cannot run {:?}", cmd.get_program()))?;
    eprintln!("<== {name}: {:.1}s", start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

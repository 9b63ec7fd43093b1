//! Programs of any of the five architectures, run on this machine under qemu's user-mode
//! emulation. Each program is started by `qemu-<cpu>-static` (or qemu-user's `qemu-<cpu>`)
//! directly, not through binfmt_misc, so nothing is registered on the machine. Debian's
//! programs are dynamic: a [`Sysroot`] of their own suite — that suite's C library and
//! libseccomp unpacked with dpkg-deb — is where qemu finds the dynamic loader and every
//! library (`-L`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use containerd_stack::DebArch;
use tempfile::TempDir;

use crate::process::{describe, require_tool, run, stdout};

/// qemu's name for each architecture's CPU, as in `qemu-<cpu>-static`.
const QEMU_CPU: [(DebArch, &str); 5] = [
    (DebArch::Amd64, "x86_64"),
    (DebArch::Arm64, "aarch64"),
    (DebArch::Ppc64el, "ppc64le"),
    (DebArch::S390x, "s390x"),
    (DebArch::Riscv64, "riscv64"),
];

/// How long one emulated program may take: `--version` takes a second or two even on a
/// busy machine, so this only stops a program that hangs.
const TIMEOUT_SECS: u32 = 300;

/// qemu's user-mode emulator for one architecture.
pub struct Emulator {
    qemu: PathBuf,
    timeout: PathBuf,
}

impl Emulator {
    /// qemu-user-static's emulator for `arch`, else qemu-user's; an error naming the package
    /// to install when neither is there.
    pub fn of(arch: DebArch) -> Result<Emulator> {
        let cpu = QEMU_CPU
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, c)| *c)
            .expect("QEMU_CPU names every architecture");
        let qemu = require_tool(&format!("qemu-{cpu}-static"), "qemu-user-static")
            .or_else(|e| require_tool(&format!("qemu-{cpu}"), "qemu-user").map_err(|_| e))?;
        let timeout = require_tool("timeout", "coreutils")?;
        Ok(Emulator { qemu, timeout })
    }

    /// The emulator's file name (`qemu-s390x-static`), for messages.
    pub fn name(&self) -> String {
        self.qemu
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Runs `program args…` with `sysroot` as its root for libraries and with only `env` in
    /// its environment; returns what it printed and how it exited, whatever that was. Fails
    /// only when it cannot be started or does not end within [`TIMEOUT_SECS`].
    pub fn run(
        &self,
        sysroot: &Sysroot,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Output> {
        let mut cmd = Command::new(&self.timeout);
        cmd.arg("--kill-after=10")
            .arg(TIMEOUT_SECS.to_string())
            .arg(&self.qemu)
            .arg("-L")
            .arg(sysroot.path())
            .arg(program)
            .args(args)
            // qemu hands its environment to the program: only what the caller chose.
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", describe(&cmd)))?;
        // timeout(1) exits 124 when it stopped the program, 137 when it had to kill it.
        if matches!(out.status.code(), Some(124 | 137)) {
            bail!(
                "{} did not finish within {TIMEOUT_SECS}s under {}",
                program.display(),
                self.name()
            );
        }
        Ok(out)
    }
}

/// A Debian package unpacked into a [`Sysroot`].
pub struct SysrootPackage {
    pub name: String,
    pub version: String,
    /// The file name of every file and link it ships (`libc.so.6`, `ld64.so.1`, …).
    files: BTreeSet<String>,
}

/// Debian packages of one suite and architecture unpacked into a directory of their own,
/// laid out as a merged-/usr Debian system is: `/lib` and `/lib64` are links into `/usr`,
/// where Debian 13's and unstable's packages put the dynamic loader that programs name
/// under `/lib`. Deleted when dropped.
pub struct Sysroot {
    root: TempDir,
    pub packages: Vec<SysrootPackage>,
}

impl Sysroot {
    /// Unpacks `debs` into a new directory in `parent`.
    pub fn unpack(debs: &[PathBuf], parent: &Path) -> Result<Sysroot> {
        let root = tempfile::Builder::new()
            .prefix("sysroot-")
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a sysroot in {}", parent.display()))?;
        for dir in ["usr/lib", "usr/lib64", "etc"] {
            let d = root.path().join(dir);
            fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        for (alias, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
            let link = root.path().join(alias);
            std::os::unix::fs::symlink(target, &link)
                .with_context(|| format!("cannot link {} to {target}", link.display()))?;
        }
        // qemu looks in the sysroot first and falls back to the machine's own files: an
        // empty loader cache there keeps the machine's (which names the machine's own
        // libraries) out, so the loader searches only its default directories.
        let cache = root.path().join("etc/ld.so.cache");
        fs::write(&cache, b"").with_context(|| format!("cannot write {}", cache.display()))?;

        let mut packages = Vec::new();
        for deb in debs {
            let field = |name: &str| -> Result<String> {
                Ok(
                    stdout(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))?
                        .trim()
                        .to_owned(),
                )
            };
            let listing = stdout(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
            run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()))?;
            packages.push(SysrootPackage {
                name: field("Package")?,
                version: field("Version")?,
                files: file_names(&listing),
            });
        }
        Ok(Sysroot { root, packages })
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The packages in the sysroot that ship a file named `soname`.
    pub fn packages_shipping(&self, soname: &str) -> Vec<&SysrootPackage> {
        self.packages
            .iter()
            .filter(|p| p.files.contains(soname))
            .collect()
    }

    /// The package named `name`, if the sysroot has it.
    pub fn package(&self, name: &str) -> Option<&SysrootPackage> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// The file names of every non-directory entry of a `dpkg-deb --contents` listing.
fn file_names(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|path| path.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_an_emulator_name() {
        for arch in DebArch::ALL {
            assert!(QEMU_CPU.iter().any(|(a, _)| *a == arch), "{arch}");
        }
    }

    #[test]
    fn listings_give_file_and_link_names_not_directories() {
        let listing = "\
drwxr-xr-x root/root         0 2026-10-03 13:48 ./usr/lib/s390x-linux-gnu/
-rwxr-xr-x root/root    193184 2026-10-03 13:48 ./usr/lib/s390x-linux-gnu/ld64.so.1
lrwxrwxrwx root/root         0 2026-10-03 13:48 ./usr/lib/ld64.so.1 -> s390x-linux-gnu/ld64.so.1
-rwxr-xr-x root/root   1985016 2026-10-03 13:48 ./usr/lib/s390x-linux-gnu/libc.so.6
";
        let names: Vec<String> = file_names(listing).into_iter().collect();
        assert_eq!(names, ["ld64.so.1", "libc.so.6"]);
    }
}

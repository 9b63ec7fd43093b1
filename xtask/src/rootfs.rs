//! Debian root filesystems to install the package into. [`Rootfs::cached`] makes a
//! `mmdebstrap --variant=minbase` tarball once per suite and package selection and keeps it under
//! `target/rootfs/`; [`Rootfs::extract`] unpacks a private copy as a [`Chroot`] that runs
//! commands with `chroot` and, when dropped, unmounts what was mounted in it and only then
//! deletes it — a tree with a mount still inside is left alone rather than deleted through
//! the mount.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{describe, last_lines, run, text};
use crate::repo_root;

/// A Debian release the tests install into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    /// Debian 12.
    Bookworm,
    /// Debian 13, stable since August 2025.
    Trixie,
    /// Debian unstable: read for its newer packages (containerd 2.x), not installed.
    Sid,
}

impl Suite {
    /// The codename, as mmdebstrap, piuparts and apt name it.
    pub fn codename(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
            Suite::Sid => "sid",
        }
    }

    /// The release's name, as users know it.
    pub fn release(self) -> &'static str {
        match self {
            Suite::Bookworm => "Debian 12",
            Suite::Trixie => "Debian 13",
            Suite::Sid => "Debian unstable",
        }
    }

    /// Whether a booted system of this release gets the unified cgroup hierarchy where the
    /// host can give either. Debian 13's systemd (257) deprecates cgroup v1, which 258
    /// drops, and a Debian 13 system runs on the unified hierarchy; Debian 12's (252) is
    /// booted with the legacy layout, as it always has been here.
    pub fn unified_cgroups(self) -> bool {
        match self {
            Suite::Bookworm => false,
            Suite::Trixie | Suite::Sid => true,
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.codename())
    }
}

/// The environment commands see inside a chroot: none of the caller's.
const CHROOT_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
];

/// A cached root filesystem tarball.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub suite: Suite,
    pub tarball: PathBuf,
    /// How long mmdebstrap took, when this call made the tarball; `None` when it was cached.
    pub made_in: Option<Duration>,
}

impl Rootfs {
    /// The minbase tarball of `suite` with `include` added, made with mmdebstrap on first
    /// use (about a minute, from Debian's archive) and reused after that.
    pub fn cached(suite: Suite, include: &[&str]) -> Result<Rootfs> {
        let dir = repo_root().join("target/rootfs");
        let name = cache_name(suite, include);
        let tarball = dir.join(format!("{name}.tar"));
        if tarball.is_file() {
            return Ok(Rootfs {
                suite,
                tarball,
                made_in: None,
            });
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        remove_abandoned_partials(&dir, &name);
        // mmdebstrap picks the format by the extension: the partial file must end in .tar.
        let partial = dir.join(format!(".{name}.{}.partial.tar", std::process::id()));
        let log = tarball.with_extension("log");
        let mut cmd = Command::new("mmdebstrap");
        cmd.arg("--variant=minbase");
        let mut include: Vec<&str> = include.to_vec();
        include.sort_unstable();
        include.dedup();
        if !include.is_empty() {
            cmd.arg(format!("--include={}", include.join(",")));
        }
        cmd.arg(suite.codename()).arg(&partial).stdin(Stdio::null());
        let start = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", describe(&cmd)))?;
        let log_text = format!("$ {}\n{}", describe(&cmd), text(&out));
        fs::write(&log, &log_text).with_context(|| format!("cannot write {}", log.display()))?;
        if !out.status.success() {
            let _ = fs::remove_file(&partial);
            bail!(
                "{} failed ({}), full log in {}: {}",
                describe(&cmd),
                out.status,
                log.display(),
                last_lines(&log_text, 3)
            );
        }
        fs::rename(&partial, &tarball)
            .with_context(|| format!("cannot move {} into place", partial.display()))?;
        Ok(Rootfs {
            suite,
            tarball,
            made_in: Some(start.elapsed()),
        })
    }

    /// The tarball, and whether this run made it, for the progress output.
    pub fn describe(&self) -> String {
        match self.made_in {
            Some(t) => format!(
                "{} (made now by mmdebstrap in {:.0}s)",
                self.tarball.display(),
                t.as_secs_f64()
            ),
            None => format!("{} (cached)", self.tarball.display()),
        }
    }

    /// Unpacks a private copy of the tarball into a new temporary directory.
    pub fn extract(&self) -> Result<Chroot> {
        let parent = repo_root().join("target/rootfs");
        fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // In target/, not /tmp: a tmpfs /tmp may be small, or mounted noexec or nodev.
        let dir = tempfile::Builder::new()
            .prefix("tree-")
            .tempdir_in(&parent)
            .with_context(|| {
                format!(
                    "cannot create a temporary directory in {}",
                    parent.display()
                )
            })?;
        let root = dir
            .path()
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.path().display()))?;
        let chroot = Chroot {
            dir: Some(dir),
            root,
            mounts: Vec::new(),
        };
        run(Command::new("tar")
            .args(["--numeric-owner", "--preserve-permissions", "-xf"])
            .arg(&self.tarball)
            .arg("-C")
            .arg(&chroot.root))?;
        Ok(chroot)
    }
}

/// Deletes the partial tarballs of `name` that runs which were killed left in `dir`; those
/// of running processes are theirs to finish.
fn remove_abandoned_partials(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&format!(".{name}."))
            .and_then(|rest| rest.strip_suffix(".partial.tar"));
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The cache file's name: the suite, and the selection sorted and deduplicated, hashed to
/// keep it short.
fn cache_name(suite: Suite, include: &[&str]) -> String {
    let mut include: Vec<&str> = include.to_vec();
    include.sort_unstable();
    include.dedup();
    if include.is_empty() {
        format!("{suite}-minbase")
    } else {
        let hash = testkit::upstream::sha256_hex(include.join(",").as_bytes());
        format!("{suite}-minbase-{}", &hash[..12])
    }
}

/// An unpacked root filesystem in a temporary directory.
pub struct Chroot {
    dir: Option<tempfile::TempDir>,
    /// The directory, symlinks resolved, as /proc/self/mountinfo names it.
    root: PathBuf,
    /// Mount points inside `root`, in the order they were mounted.
    mounts: Vec<PathBuf>,
}

impl Chroot {
    /// The host path of `inside` (an absolute path in the chroot; "/" is the root).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Copies a host file to `inside`.
    pub fn copy_in(&self, from: &Path, inside: &str) -> Result<()> {
        let to = self.path(inside);
        fs::copy(from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        Ok(())
    }

    /// Mounts a fresh procfs on /proc: maintainer scripts and Go programs read it.
    pub fn mount_proc(&mut self) -> Result<()> {
        let target = self.path("/proc");
        fs::create_dir_all(&target)
            .with_context(|| format!("cannot create {}", target.display()))?;
        run(Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(&target))?;
        self.mounts.push(target);
        Ok(())
    }

    /// `chroot ROOT args…` with a clean environment; not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(&self.root)
            .args(args)
            .env_clear()
            .envs(CHROOT_ENV.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `args` in the chroot; fails naming the command, with its last lines of output.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        run(&mut self.command(args))
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        for target in self.mounts.drain(..).rev() {
            let umount = |extra: &[&str]| {
                Command::new("umount")
                    .arg("--recursive")
                    .args(extra)
                    .arg(&target)
                    .status()
                    .is_ok_and(|s| s.success())
            };
            // A process still using the mount makes it busy: detach it lazily then.
            if !umount(&[]) && !umount(&["--lazy"]) {
                eprintln!("warning: cannot unmount {}", target.display());
            }
        }
        let Some(dir) = self.dir.take() else { return };
        let left = mounts_under(&self.root);
        if !left.is_empty() {
            let kept = dir.keep();
            eprintln!(
                "warning: {} still has mounts inside ({}); left in place, unmount them and delete it by hand",
                kept.display(),
                left.join(", ")
            );
        } else if let Err(e) = dir.close() {
            eprintln!("warning: cannot delete {}: {e}", self.root.display());
        }
    }
}

/// Mount points at or below `root`, from /proc/self/mountinfo. If it cannot be read, `root`
/// itself is reported: deleting through a mount we cannot see is not worth the risk.
fn mounts_under(root: &Path) -> Vec<String> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return vec![format!(
            "{} (cannot read /proc/self/mountinfo)",
            root.display()
        )];
    };
    mount_points(&info)
        .into_iter()
        .filter(|m| Path::new(m).starts_with(root))
        .collect()
}

/// The mount point column of mountinfo(5), with its octal escapes (`\040`) decoded.
pub(crate) fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|field| {
            let mut out = Vec::new();
            let bytes = field.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let octal = bytes.get(i + 1..i + 4).and_then(|d| {
                    std::str::from_utf8(d)
                        .ok()
                        .and_then(|d| u8::from_str_radix(d, 8).ok())
                });
                match (bytes[i], octal) {
                    (b'\\', Some(b)) => {
                        out.push(b);
                        i += 4;
                    }
                    (b, _) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_name_depends_on_the_selection_not_its_order() {
        let b = Suite::Bookworm;
        assert_eq!(cache_name(b, &[]), "bookworm-minbase");
        assert_eq!(cache_name(Suite::Trixie, &[]), "trixie-minbase");
        let a = cache_name(b, &["systemd", "dbus", "systemd"]);
        assert_eq!(a, cache_name(b, &["dbus", "systemd"]));
        assert_ne!(a, cache_name(b, &["dbus"]));
        assert!(
            a.starts_with("bookworm-minbase-") && a.len() == "bookworm-minbase-".len() + 12,
            "{a}"
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        let info = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(mount_points(info), ["/mnt/a b", "/proc"]);
    }
}

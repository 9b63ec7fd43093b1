//! What the end-to-end run must not leave on the host: processes, mounts, network
//! namespaces or interfaces, cgroups, CNI state. [`Watch::start`] makes this process a
//! child subreaper, so every process the run starts and that outlives its parent is
//! re-parented here instead of vanishing into the host's init; [`Watch::verify`] then
//! finds any descendant still alive, ends it (by its pid: they are all ours) and fails.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::nspawn::signal;

/// The state of the host that the run must leave as it found it.
pub struct Watch {
    /// Prefix of every cgroup and guest name the run creates.
    prefix: String,
    /// Network interfaces of the host's namespace at the start.
    links: BTreeSet<String>,
    /// Named network namespaces at the start (`ip netns list`).
    netns: BTreeSet<String>,
    /// Whether /var/lib/cni existed at the start.
    cni_state: bool,
    /// Which of nspawn's runtime directories existed at the start.
    nspawn_dirs: Vec<(&'static str, bool)>,
}

/// The directories systemd-nspawn makes on first use and leaves, deepest first.
const NSPAWN_DIRS: &[&str] = &[
    "/run/systemd/nspawn/propagate",
    "/run/systemd/nspawn/locks",
    "/run/systemd/nspawn",
    "/run/systemd",
];

/// The start of every cgroup and guest name a run creates; the run's pid follows.
pub const PREFIX: &str = "cs-e2e-";

impl Watch {
    /// `prefix` is [`PREFIX`] and this run's pid. Runs that were killed before their
    /// cleanup (Ctrl-C) left their empty cgroups and nspawn directories: those go first.
    pub fn start(prefix: &str) -> Result<Watch> {
        for swept in sweep_stale() {
            println!("     removed {swept}, left by a run that was killed");
        }
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes this process's attributes.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            bail!(
                "prctl(PR_SET_CHILD_SUBREAPER): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Watch {
            prefix: prefix.to_owned(),
            links: links()?,
            netns: netns()?,
            cni_state: Path::new("/var/lib/cni").exists(),
            nspawn_dirs: NSPAWN_DIRS
                .iter()
                .map(|d| (*d, Path::new(d).exists()))
                .collect(),
        })
    }

    /// Fails naming everything the run left behind: descendant processes (ended first),
    /// mounts at or below any of `paths`, new network namespaces or host interfaces,
    /// cgroups named with the run's prefix, a new /var/lib/cni. Returns what it checked.
    pub fn verify(&self, paths: &[&Path]) -> Result<String> {
        // nspawn's empty runtime directories, when this run made them; one in use by
        // another nspawn is not empty.
        for (dir, existed) in &self.nspawn_dirs {
            if !existed {
                let _ = fs::remove_dir(dir);
            }
        }
        let mut found = Vec::new();
        let left = descendants();
        if !left.is_empty() {
            found.push(format!(
                "processes {} (now killed)",
                left.iter()
                    .map(|(pid, what)| format!("{pid} {what}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            end(&left);
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo")?;
        let mounts: Vec<String> = super::mount_points(&mountinfo)
            .into_iter()
            .filter(|m| paths.iter().any(|p| Path::new(m).starts_with(p)))
            .collect();
        if !mounts.is_empty() {
            found.push(format!("mounts {}", mounts.join(", ")));
        }
        let new_netns: Vec<String> = netns()?.difference(&self.netns).cloned().collect();
        if !new_netns.is_empty() {
            found.push(format!("network namespaces {}", new_netns.join(", ")));
        }
        let new_links: Vec<String> = links()?.difference(&self.links).cloned().collect();
        if !new_links.is_empty() {
            found.push(format!(
                "interfaces in the host's network namespace {}",
                new_links.join(", ")
            ));
        }
        let cgroups = cgroups_named(&self.prefix);
        if !cgroups.is_empty() {
            found.push(format!(
                "cgroups {}",
                cgroups
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let propagate: Vec<String> = fs::read_dir(super::nspawn::PROPAGATE)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default();
        if !propagate.is_empty() {
            found.push(format!(
                "systemd-nspawn directories {} in {}",
                propagate.join(", "),
                super::nspawn::PROPAGATE
            ));
        }
        if !self.cni_state && Path::new("/var/lib/cni").exists() {
            found.push("/var/lib/cni (CNI state on the host)".to_owned());
        }
        if !found.is_empty() {
            bail!("the run left behind: {}", found.join("; "));
        }
        Ok(format!(
            "no processes, no mounts under the run's trees, no new network namespace or interface, no {}* cgroup, {}",
            self.prefix,
            match self.cni_state {
                true => "/var/lib/cni as it was (it existed before)",
                false => "no /var/lib/cni",
            }
        ))
    }
}

/// Removes the empty cgroups and nspawn directories of runs whose process is gone.
fn sweep_stale() -> Vec<String> {
    let stale = |path: &Path| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        name.strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    let mut swept = Vec::new();
    for dir in cgroups_named(PREFIX).into_iter().filter(|d| stale(d)) {
        let mut busy = Vec::new();
        super::nspawn::remove_cgroup(&dir, &mut busy);
        if busy.is_empty() {
            swept.push(format!("the cgroup {}", dir.display()));
        }
    }
    if let Ok(entries) = fs::read_dir(super::nspawn::PROPAGATE) {
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = entry.file_name().to_string_lossy().starts_with(PREFIX);
            if ours && stale(&path) && fs::remove_dir(&path).is_ok() {
                swept.push(path.display().to_string());
            }
        }
    }
    swept
}

/// Live descendants of this process, with their command lines; zombies among them are
/// reaped.
fn descendants() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …: comm may hold spaces and parentheses.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or_default().to_owned();
            let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            parent_of.push((pid, ppid, state));
        }
    }
    // This process's threads are not descendants.
    let threads: BTreeSet<u32> = fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut ours = BTreeSet::from([me]);
    loop {
        let before = ours.len();
        for (pid, ppid, _) in &parent_of {
            if ours.contains(ppid) && !threads.contains(pid) {
                ours.insert(*pid);
            }
        }
        if ours.len() == before {
            break;
        }
    }
    ours.remove(&me);
    let mut out = Vec::new();
    for (pid, _, state) in &parent_of {
        if !ours.contains(pid) {
            continue;
        }
        if state == "Z" {
            reap(*pid);
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        out.push((*pid, cmdline));
    }
    out
}

fn reap(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        let mut status = 0;
        // SAFETY: waitpid on one zombie child of this process, without blocking.
        unsafe {
            libc::waitpid(pid, &mut status, libc::WNOHANG);
        }
    }
}

/// Ends processes this run started: SIGTERM, then SIGKILL for those still there after two
/// seconds; each is reaped once it has exited.
fn end(processes: &[(u32, String)]) {
    let gone = |pid: u32| {
        reap(pid);
        !Path::new(&format!("/proc/{pid}")).exists()
    };
    for signal_number in [libc::SIGTERM, libc::SIGKILL] {
        for (pid, _) in processes {
            signal(*pid, signal_number);
        }
        for _ in 0..20 {
            if processes.iter().all(|(pid, _)| gone(*pid)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The interface names of this network namespace.
fn links() -> Result<BTreeSet<String>> {
    let dir = Path::new("/sys/class/net");
    Ok(fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// The named network namespaces.
fn netns() -> Result<BTreeSet<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("cannot run ip netns list: apt-get install iproute2")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Cgroups anywhere in the first levels of every hierarchy whose name starts with `prefix`.
fn cgroups_named(prefix: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                out.push(path);
            } else if depth > 1 {
                walk(&path, prefix, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.procs").exists() {
        walk(root, prefix, 4, &mut out);
    } else {
        walk(root, prefix, 5, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn an_orphan_is_found_among_the_descendants() {
        // SAFETY: as in Watch::start; the test binary becomes a subreaper, nothing else.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
            0
        );
        // The shell exits at once: its sleep is orphaned and re-parented to this process.
        let marker = "61.2345";
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("sleep {marker} >/dev/null 2>&1 &"))
            .status()
            .unwrap();
        assert!(status.success());
        // Until the forked shell has exec'd, the orphan's command line is still the shell's;
        // an empty list only means it has not been seen yet. A loaded machine may take long.
        let orphan = format!("sleep {marker}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let found = loop {
            let found: Vec<(u32, String)> = descendants()
                .into_iter()
                .filter(|(_, cmdline)| cmdline.contains(marker))
                .collect();
            if found.iter().any(|(_, c)| *c == orphan) || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        end(&found);
        assert!(
            found.iter().any(|(_, c)| *c == orphan),
            "no orphaned `{orphan}` among the descendants within 60s; found {found:?}"
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!Path::new(&format!("/proc/{}", found[0].0)).exists());
    }
}

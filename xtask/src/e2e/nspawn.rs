//! Booting a Debian root filesystem with systemd as PID 1 under `systemd-nspawn` to run one
//! scenario script in it: [`boot`] unpacks a private copy of the rootfs, copies the
//! scenario's files into `/e2e`, enables a oneshot unit that runs the script once
//! multi-user.target is reached and powers the guest off when it ends, boots, and hands
//! back what the script left in `/e2e/out`. A scenario is a script plus its files, so a
//! new one (an apt repository served from the host, say) is a new call, not new machinery.
//!
//! No host systemd is needed: `--register=no --keep-unit` keep nspawn away from machined
//! and from the caller's unit, and `SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0` gives the guest the
//! legacy cgroup layout this kind of host supports. nspawn makes `payload` and `supervisor`
//! cgroups under the cgroup it starts in and never removes them, so it starts in a cgroup
//! of its own that is removed afterwards.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::last_lines;
use crate::rootfs::Rootfs;

/// What the guest sees of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // `Host` is for scenarios that fetch from a loopback server on the host.
pub enum Network {
    /// Only a loopback interface of its own: nothing the guest runs reaches the host's.
    Private,
    /// The host's network namespace, loopback included.
    Host,
}

/// One boot: the scenario and what it needs.
pub struct Boot<'a> {
    /// Names the guest (its hostname) and the cgroup nspawn runs in.
    pub name: String,
    pub rootfs: &'a Rootfs,
    /// The scenario, a POSIX sh script run as root; it writes its results to `/e2e/out`.
    pub script: &'a str,
    /// Variables for the script, written to `/e2e/env` as shell assignments.
    pub env: Vec<(&'static str, String)>,
    /// Host files copied to `/e2e/<name>`.
    pub files: Vec<(PathBuf, String)>,
    pub network: Network,
    /// The guest is stopped (and the boot fails) when it runs longer.
    pub timeout: Duration,
}

/// A finished boot.
pub struct Booted {
    /// The host copy of the guest's `/e2e/out`.
    pub out: PathBuf,
    /// Everything the guest's console printed.
    pub console: PathBuf,
}

impl Booted {
    /// The text of `out/<name>`, or an error naming it.
    pub fn read(&self, name: &str) -> Result<String> {
        let path = self.out.join(name);
        fs::read_to_string(&path).with_context(|| format!("the guest left no {}", path.display()))
    }
}

/// Boots `boot.rootfs` with `boot.script` as its scenario; `work` receives the results
/// (`<name>-out/`) and the console log (`<name>-console.log`). Lines the guest writes to
/// its console starting with `e2e: ` are echoed as they come. Fails when the guest does not
/// finish the script (the script must create `/e2e/out/finished` as its last act).
pub fn boot(boot: &Boot, work: &Path) -> Result<Booted> {
    let tree = boot.rootfs.extract()?;
    super::note_tree(&tree.path("/"));
    let e2e = tree.path("/e2e");
    let out_in_guest = e2e.join("out");
    fs::create_dir_all(&out_in_guest)
        .with_context(|| format!("cannot create {}", out_in_guest.display()))?;
    for (from, name) in &boot.files {
        tree.copy_in(from, &format!("/e2e/{name}"))?;
    }
    write(&e2e.join("scenario.sh"), boot.script)?;
    let env: String = boot
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
        .collect();
    write(&e2e.join("env"), &env)?;
    write(&tree.path("/etc/systemd/system/e2e.service"), UNIT)?;
    let wants = tree.path("/etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).with_context(|| format!("cannot create {}", wants.display()))?;
    std::os::unix::fs::symlink("/etc/systemd/system/e2e.service", wants.join("e2e.service"))
        .with_context(|| format!("cannot enable e2e.service in {}", wants.display()))?;

    let console = work.join(format!("{}-console.log", boot.name));
    let cgroup = Cgroup::create(&boot.name)?;
    let ran = run_nspawn(boot, &tree.path("/"), &cgroup, &console);
    let removed = cgroup.remove();
    ran?;
    removed?;

    let console_text = fs::read_to_string(&console).unwrap_or_default();
    if !out_in_guest.join("finished").exists() {
        bail!(
            "the guest powered off before its scenario finished; console ({}): {}",
            console.display(),
            last_lines(&strip_escapes(&console_text), 6)
        );
    }
    let out = work.join(format!("{}-out", boot.name));
    let _ = fs::remove_dir_all(&out);
    copy_dir(&out_in_guest, &out)?;
    Ok(Booted { out, console })
}

/// Runs the scenario once the system is up, then powers off whatever the outcome.
const UNIT: &str = "\
[Unit]
Description=containerd-stack end-to-end scenario
After=multi-user.target
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStart=/bin/sh /e2e/scenario.sh
StandardOutput=file:/e2e/out/scenario.log
StandardError=inherit

[Install]
WantedBy=multi-user.target
";

fn run_nspawn(boot: &Boot, root: &Path, cgroup: &Cgroup, console: &Path) -> Result<()> {
    let mut cmd = Command::new("sh");
    // Joins the cgroup before nspawn exists, so nothing of it lands in the caller's.
    cmd.arg("-c")
        .arg(r#"for f in $CS_E2E_CGROUP_PROCS; do echo $$ >"$f" || exit 125; done; exec "$@" 2>&1"#)
        .arg("sh")
        .arg("systemd-nspawn")
        .arg("--directory")
        .arg(root)
        .arg(format!("--machine={}", boot.name))
        .args([
            "--boot",
            "--register=no",
            "--keep-unit",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
            "--console=read-only",
        ]);
    if boot.network == Network::Private {
        cmd.arg("--private-network");
    }
    // Arguments for the guest's systemd: no status lines, only what the scenario says.
    cmd.arg("systemd.show_status=false")
        .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "0")
        .env("CS_E2E_CGROUP_PROCS", cgroup.procs_files())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().context("cannot run systemd-nspawn")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut log = fs::File::create(console)
        .with_context(|| format!("cannot create {}", console.display()))?;
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            let _ = log.write_all(&line);
            let _ = log.write_all(b"\n");
            let text = strip_escapes(&String::from_utf8_lossy(&line));
            if let Some(said) = text.trim().strip_prefix("e2e: ") {
                println!("     guest: {said}");
            }
        }
    });

    let start = Instant::now();
    let mut stopping: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for systemd-nspawn")? {
            break status;
        }
        match stopping {
            None if start.elapsed() > boot.timeout => {
                // nspawn halts the guest cleanly on SIGTERM.
                println!(
                    "     the guest has run for {:.0}s: stopping it",
                    start.elapsed().as_secs_f64()
                );
                signal(child.id(), libc::SIGTERM);
                stopping = Some(Instant::now());
            }
            Some(t) if t.elapsed() > Duration::from_secs(30) => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = echo.join();
    if stopping.is_some() {
        bail!(
            "the guest did not finish within {}s; console ({}): {}",
            boot.timeout.as_secs(),
            console.display(),
            last_lines(
                &strip_escapes(&fs::read_to_string(console).unwrap_or_default()),
                6
            )
        );
    }
    if status.code() == Some(125) {
        bail!("cannot move systemd-nspawn into the cgroup {}", cgroup.name);
    }
    if !status.success() {
        bail!(
            "systemd-nspawn failed ({status}); console ({}): {}",
            console.display(),
            last_lines(
                &strip_escapes(&fs::read_to_string(console).unwrap_or_default()),
                6
            )
        );
    }
    Ok(())
}

pub fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; `pid` is a process this program started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A cgroup of our own in each hierarchy nspawn uses: the named `systemd` one (v1) and
/// the unified one (v2), under the cgroup this process is in.
pub struct Cgroup {
    name: String,
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    fn create(name: &str) -> Result<Cgroup> {
        let own =
            fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo")?;
        let mut dirs = Vec::new();
        for (mount, path) in nspawn_hierarchies(&own, &mountinfo) {
            let dir = mount.join(path.trim_start_matches('/')).join(name);
            fs::create_dir(&dir)
                .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
            dirs.push(dir);
        }
        if dirs.is_empty() {
            bail!("found neither a name=systemd nor a cgroup2 hierarchy in /proc/self/mountinfo: systemd-nspawn cannot boot a guest here");
        }
        Ok(Cgroup {
            name: name.to_owned(),
            dirs,
        })
    }

    fn procs_files(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.join("cgroup.procs").display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Removes the cgroups nspawn made inside ours, then ours; fails naming any that still
    /// holds a process.
    fn remove(&self) -> Result<()> {
        let mut busy = Vec::new();
        for dir in &self.dirs {
            remove_cgroup(dir, &mut busy);
        }
        if !busy.is_empty() {
            bail!(
                "cgroups still in use after the guest stopped: {}",
                busy.join(", ")
            );
        }
        Ok(())
    }
}

/// Removes `dir` and the cgroups below it, deepest first; a cgroup's control files go with
/// it. Those that cannot be removed are added to `busy`.
fn remove_cgroup(dir: &Path, busy: &mut Vec<String>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&entry.path(), busy);
            }
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            busy.push(format!("{} ({e})", dir.display()));
        }
    }
}

/// The mount point and this process's path in each hierarchy nspawn puts cgroups in:
/// the v1 hierarchy named `systemd`, and the unified (v2) one.
fn nspawn_hierarchies(own_cgroups: &str, mountinfo: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = before.split(' ').nth(4).unwrap_or_default();
        let mut fields = after.split(' ');
        let fstype = fields.next().unwrap_or_default();
        let options = fields.nth(1).unwrap_or_default();
        let own = |controllers: &str| {
            own_cgroups.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, c, path) = (parts.next()?, parts.next()?, parts.next()?);
                (c == controllers).then(|| path.to_owned())
            })
        };
        let path = match fstype {
            "cgroup" if options.split(',').any(|o| o == "name=systemd") => own("name=systemd"),
            "cgroup2" => own(""),
            _ => None,
        };
        if let Some(path) = path {
            out.push((PathBuf::from(mount_point), path));
        }
    }
    out
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

/// `value` as one shell word.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `text` without terminal escape sequences and carriage returns.
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters, then one final byte in @–~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_are_the_named_systemd_and_the_unified_one() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let own = "9:name=systemd:/\n4:memory:/process_api/b8\n0::/user.slice\n";
        assert_eq!(
            nspawn_hierarchies(own, mountinfo),
            [
                (PathBuf::from("/sys/fs/cgroup/systemd"), "/".to_owned()),
                (
                    PathBuf::from("/sys/fs/cgroup/unified"),
                    "/user.slice".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn console_text_loses_its_escapes() {
        assert_eq!(
            strip_escapes("\u{1b}[0;1;31mFailed\u{1b}[0m to start\r"),
            "Failed to start"
        );
    }

    #[test]
    fn values_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}

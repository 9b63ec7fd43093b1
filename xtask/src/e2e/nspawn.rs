//! Booting a Debian root filesystem with systemd as PID 1 under `systemd-nspawn` to run one
//! scenario script in it: [`boot`] unpacks a private copy of the rootfs, copies the
//! scenario's files into `/e2e`, enables a oneshot unit that runs the script once
//! multi-user.target is reached and powers the guest off when it ends, boots, and hands
//! back what the script left in `/e2e/out`. A scenario is a script plus its files and
//! hooks — things the script asks the host to do while it runs (`ask_host NAME` in
//! `lib.sh`, which every scenario can source) — so a new scenario is a new call, not new
//! machinery.
//!
//! No host systemd is needed: `--register=no --keep-unit` keep nspawn away from machined
//! and from the caller's unit. On a host with the hybrid cgroup layout (a v1 `name=systemd`
//! hierarchy beside the unified one, as on Debian 12 hosts) nspawn is told which layout
//! the guest gets, and the guest reports what it got: the legacy one for a Debian 12 guest
//! (`SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0`), the unified one for Debian 13 (`=1`), the layout
//! its systemd is meant for (257 still boots on the legacy one, but deprecates it); a
//! unified-only host gives every guest the unified one. nspawn makes `payload` and
//! `supervisor` cgroups under the cgroup it starts in and never removes them, so it starts
//! in a cgroup of its own that is removed afterwards.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{last_lines, strip_escapes};
use crate::rootfs::Rootfs;

/// What the guest sees of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Only a loopback interface of its own: nothing the guest runs reaches the host's.
    Private,
    /// The host's network namespace, loopback included.
    Host,
}

/// The helpers a scenario sources as `/e2e/lib.sh`.
pub const LIB: &str = include_str!("lib.sh");

/// Something the guest's script can have the host do while it runs: `ask_host NAME` waits
/// until `run` has returned, and fails when it failed.
pub struct Hook<'a> {
    pub name: &'static str,
    /// Returns what it did, for the progress output.
    pub run: Box<dyn FnMut() -> Result<String> + 'a>,
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
    pub hooks: Vec<Hook<'a>>,
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
pub fn boot(mut boot: Boot, work: &Path) -> Result<Booted> {
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
    write(&e2e.join("lib.sh"), LIB)?;
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
    let ran = run_nspawn(&mut boot, &tree.path("/"), &cgroup, &console);
    let removed = cgroup.remove();
    // nspawn's directory for propagating mounts into the guest; it removes it itself
    // unless it was killed.
    let _ = fs::remove_dir(Path::new(PROPAGATE).join(&boot.name));
    // What the scenario recorded is worth keeping whatever happened.
    let out = work.join(format!("{}-out", boot.name));
    let _ = fs::remove_dir_all(&out);
    let copied = copy_dir(&out_in_guest, &out);
    ran?;
    removed?;
    copied?;
    if !out.join("finished").exists() {
        let said = fs::read_to_string(out.join("scenario.log")).unwrap_or_default();
        let console_text = fs::read_to_string(&console).unwrap_or_default();
        bail!(
            "the guest powered off before its scenario finished; the script said: {}; console ({}): {}",
            match last_lines(&said, 4) {
                l if l.is_empty() => "nothing".to_owned(),
                l => l,
            },
            console.display(),
            last_lines(&strip_escapes(&console_text), 6)
        );
    }
    // The filesystem at /sys/fs/cgroup: cgroup2 for the unified hierarchy, a tmpfs holding
    // the v1 hierarchies for the legacy layout.
    let wanted = match !cgroup.named_systemd || boot.rootfs.suite.unified_cgroups() {
        true => "cgroup2fs",
        false => "tmpfs",
    };
    let got = fs::read_to_string(out.join("cgroup-fs")).unwrap_or_default();
    if got.trim() != wanted {
        bail!(
            "the {} guest's /sys/fs/cgroup is {:?}, expected {wanted}: systemd-nspawn did not give it the cgroup layout asked for",
            boot.rootfs.suite.release(),
            got.trim()
        );
    }

    Ok(Booted { out, console })
}

/// Where nspawn keeps a directory per running guest, named after it.
pub const PROPAGATE: &str = "/run/systemd/nspawn/propagate";

/// Runs the scenario once the system is up, then powers off whatever the outcome.
const UNIT: &str = "\
[Unit]
Description=containerd-stack end-to-end scenario
After=multi-user.target
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStartPre=/bin/sh -c 'stat -f -c %%T /sys/fs/cgroup >/e2e/out/cgroup-fs'
ExecStart=/bin/sh /e2e/scenario.sh
StandardOutput=file:/e2e/out/scenario.log
StandardError=inherit

[Install]
WantedBy=multi-user.target
";

fn run_nspawn(boot: &mut Boot, root: &Path, cgroup: &Cgroup, console: &Path) -> Result<()> {
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
        .env("CS_E2E_CGROUP_PROCS", cgroup.procs_files())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if cgroup.named_systemd {
        let unified = boot.rootfs.suite.unified_cgroups();
        cmd.env(
            "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY",
            if unified { "1" } else { "0" },
        );
    }
    let mut child = cmd.spawn().context("cannot run systemd-nspawn")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut log = fs::File::create(console)
        .with_context(|| format!("cannot create {}", console.display()))?;
    let echo = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            let _ = log.write_all(&line);
            let _ = log.write_all(b"\n");
            let text = strip_escapes(&String::from_utf8_lossy(&line));
            // A getty's login prompt may share the line.
            if let Some((_, said)) = text.split_once("e2e: ") {
                println!("     guest: {}", said.trim());
            }
        }
    });

    let start = Instant::now();
    // How the guest is stopped when it overruns: nspawn halts it cleanly on a first
    // SIGTERM, kills it on a second, and SIGKILL ends nspawn (the kernel then ends the
    // guest with its PID namespace).
    let stops = [
        (boot.timeout, libc::SIGTERM),
        (boot.timeout + Duration::from_secs(15), libc::SIGTERM),
        (boot.timeout + Duration::from_secs(30), libc::SIGKILL),
    ];
    let mut sent = 0;
    let mut answered = BTreeSet::new();
    let mut hook_failures = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for systemd-nspawn")? {
            break status;
        }
        answer_requests(
            &mut boot.hooks,
            &root.join("e2e"),
            &mut answered,
            &mut hook_failures,
        );
        if let Some((after, signal_number)) = stops.get(sent) {
            if start.elapsed() > *after {
                if sent == 0 {
                    println!(
                        "     the guest has run for {:.0}s: stopping it",
                        start.elapsed().as_secs_f64()
                    );
                }
                signal(child.id(), *signal_number);
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stopping = sent > 0;
    let _ = echo.join();
    if let Some(failure) = hook_failures.into_iter().next() {
        return Err(failure);
    }
    if stopping {
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

/// Runs the hook of each new request in `e2e/requests/`, then answers it in
/// `e2e/replies/` with `ok` or `failed` (written whole: the guest polls for it).
fn answer_requests(
    hooks: &mut [Hook],
    e2e: &Path,
    answered: &mut BTreeSet<String>,
    failures: &mut Vec<anyhow::Error>,
) {
    let Ok(entries) = fs::read_dir(e2e.join("requests")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !answered.insert(name.clone()) {
            continue;
        }
        let outcome = match hooks.iter_mut().find(|h| h.name == name) {
            Some(hook) => (hook.run)().with_context(|| format!("the host's hook {name:?}")),
            None => Err(anyhow::anyhow!(
                "the guest asked the host for {name:?}, which this scenario has no hook for"
            )),
        };
        let reply = match outcome {
            Ok(detail) => {
                println!("     host: {name}: {detail}");
                "ok"
            }
            Err(e) => {
                println!("     host: {name} failed");
                failures.push(e);
                "failed"
            }
        };
        let replies = e2e.join("replies");
        let partial = replies.join(format!(".{name}"));
        let written = fs::create_dir_all(&replies)
            .and_then(|()| fs::write(&partial, reply))
            .and_then(|()| fs::rename(&partial, replies.join(&name)));
        if let Err(e) = written {
            failures.push(anyhow::anyhow!(
                "cannot answer the guest's request {name:?} in {}: {e}",
                replies.display()
            ));
        }
    }
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
    /// The host has a v1 `name=systemd` hierarchy (the hybrid layout).
    named_systemd: bool,
}

impl Cgroup {
    fn create(name: &str) -> Result<Cgroup> {
        let own =
            fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo")?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut named_systemd = false;
        for (mount, path, named) in nspawn_hierarchies(&own, &mountinfo) {
            named_systemd |= named;
            let dir = mount.join(path.trim_start_matches('/')).join(name);
            if let Err(e) = fs::create_dir(&dir) {
                for made in &dirs {
                    let _ = fs::remove_dir(made);
                }
                return Err(e)
                    .with_context(|| format!("cannot create the cgroup {}", dir.display()));
            }
            dirs.push(dir);
        }
        if dirs.is_empty() {
            bail!("found neither a name=systemd nor a cgroup2 hierarchy in /proc/self/mountinfo: systemd-nspawn cannot boot a guest here");
        }
        Ok(Cgroup {
            name: name.to_owned(),
            dirs,
            named_systemd,
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
        // The guest's last processes may take a moment to go after nspawn has.
        for _ in 0..50 {
            busy.clear();
            for dir in &self.dirs {
                remove_cgroup(dir, &mut busy);
            }
            if busy.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
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
pub fn remove_cgroup(dir: &Path, busy: &mut Vec<String>) {
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

/// The mount point and this process's path in each hierarchy nspawn puts cgroups in, and
/// whether it is the v1 hierarchy named `systemd` (else the unified, v2, one).
fn nspawn_hierarchies(own_cgroups: &str, mountinfo: &str) -> Vec<(PathBuf, String, bool)> {
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
        let named = fstype == "cgroup" && options.split(',').any(|o| o == "name=systemd");
        let path = match (named, fstype) {
            (true, _) => own("name=systemd"),
            (false, "cgroup2") => own(""),
            _ => None,
        };
        if let Some(path) = path {
            out.push((PathBuf::from(mount_point), path, named));
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
                (
                    PathBuf::from("/sys/fs/cgroup/systemd"),
                    "/".to_owned(),
                    true
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/unified"),
                    "/user.slice".to_owned(),
                    false
                ),
            ]
        );
        // A unified-only host, as systemd sets it up.
        let unified = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            nspawn_hierarchies("0::/system.slice/runner.service\n", unified),
            [(
                PathBuf::from("/sys/fs/cgroup"),
                "/system.slice/runner.service".to_owned(),
                false
            )]
        );
    }

    #[test]
    fn values_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}

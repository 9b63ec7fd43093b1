//! Booting the guest with qemu: Debian's kernel and initrd given directly (`-kernel`,
//! `-initrd`), the cached root disk opened read-only with its writes going to a throwaway
//! overlay (`snapshot=on`), the job disk read-write, no network device at all (`-nic
//! none`), and the serial console on qemu's stdout, where the host reads it line by line.
//! `-no-reboot` and the kernel's `panic=1` make every end of the guest — poweroff, reboot,
//! panic — an exit of qemu.
//!
//! Software emulation (TCG) works everywhere; KVM is used when it really works, which
//! [`kvm_works`] finds out by booting the kernel under it: a nested /dev/kvm can exist and
//! still fail ("KVM internal error", or qemu aborting on an MSR it cannot set).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::process::{last_lines, strip_escapes};

/// How the guest's CPUs are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation, one host thread per virtual CPU.
    Tcg,
}

impl Accel {
    fn args(self) -> [&'static str; 2] {
        match self {
            Accel::Kvm => ["-accel", "kvm"],
            Accel::Tcg => ["-accel", "tcg,thread=multi"],
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "software emulation (TCG)",
        })
    }
}

/// The emulator for the guest's architecture.
pub const QEMU: &str = "qemu-system-x86_64";

/// What the kernel prints when it has booted but finds no root filesystem: as far as the
/// KVM probe needs it to get.
const NO_ROOT: &str = "Unable to mount root fs";

/// Whether KVM works here: /dev/kvm opens, and `kernel` booted under KVM with no disk gets
/// to looking for its root filesystem. Returns the finding either way, for the output.
pub fn kvm_works(kernel: &Path) -> (bool, String) {
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return (false, format!("cannot open /dev/kvm: {e}"));
    }
    let mut cmd = qemu_command(Accel::Kvm, 1, 256);
    cmd.arg("-kernel")
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"]);
    let (mut child, lines) = match spawn(cmd) {
        Ok(spawned) => spawned,
        Err(e) => return (false, format!("{e:#}")),
    };
    // Booting to that point takes a second or two under KVM; a minute is plenty on a busy
    // machine, and a KVM that stalls is one that does not work.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let verdict = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(NO_ROOT) => {
                break (true, "the kernel booted under KVM".to_owned())
            }
            Ok(line) if line.contains("KVM internal error") => {
                break (false, format!("qemu: {}", line.trim()))
            }
            Ok(line) => seen.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break (
                    false,
                    "the kernel did not boot under KVM within 60 s".to_owned(),
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break (
                    false,
                    format!("qemu exited: {}", last_lines(&seen.join("\n"), 2)),
                )
            }
        }
    };
    stop(&mut child);
    verdict
}

/// One boot of the guest.
pub struct Boot<'a> {
    /// Names the guest in the echoed lines.
    pub name: &'a str,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u32,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// The kernel's command line.
    pub append: &'a str,
    /// Opened read-only; the guest's writes go to a temporary overlay in `tmp`.
    pub root: &'a Path,
    /// Opened read-write: the guest's records come back in it.
    pub job: &'a Path,
    /// Where qemu keeps the overlay (`TMPDIR`): the run's own directory.
    pub tmp: &'a Path,
    /// The console line that says the scenario has started.
    pub started: &'a str,
    /// How long the guest may take to start the scenario.
    pub start_within: Duration,
    /// How long the whole boot may take.
    pub timeout: Duration,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// qemu exited by itself (poweroff, reboot or panic).
    Exited { started: bool },
    /// The scenario had not started within `start_within`: qemu was stopped.
    NotStarted,
    /// The boot ran past `timeout`: qemu was stopped.
    TimedOut,
}

/// Boots, echoes the guest's `vm: ` lines as they come, keeps the whole console in
/// `console`, and returns how the boot ended and how long it took.
pub fn boot(b: &Boot, console: &Path) -> Result<(Ended, Duration)> {
    let mut cmd = qemu_command(b.accel, b.cpus, b.memory_mib);
    cmd.arg("-kernel")
        .arg(b.kernel)
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(b.append)
        // cache=unsafe: qemu ignores the guest's flushes (dpkg syncs every file it unpacks),
        // which only matters if the host itself crashes; the root's overlay is thrown away,
        // and what the guest wrote to the job disk is in the host's page cache when qemu
        // exits, however the guest ended.
        .arg("-drive")
        .arg(drive(b.root, "snapshot=on,cache=unsafe"))
        .arg("-drive")
        .arg(drive(b.job, "cache=unsafe"))
        .env("TMPDIR", b.tmp);
    let start = Instant::now();
    let (mut child, lines) = spawn(cmd)?;
    let mut log = fs::File::create(console)
        .with_context(|| format!("cannot create {}", console.display()))?;
    let started = Arc::new(AtomicBool::new(false));
    let marker = b.started.to_owned();
    let name = b.name.to_owned();
    let seen = Arc::clone(&started);
    let echo = std::thread::spawn(move || {
        for line in lines {
            let _ = writeln!(log, "{line}");
            let text = strip_escapes(&line);
            if let Some((_, said)) = text.split_once("vm: ") {
                println!("     guest {name}: {}", said.trim_end());
            }
            if text.contains(&marker) {
                seen.store(true, Ordering::SeqCst);
            }
        }
    });
    let ended = loop {
        if child.try_wait().context("cannot wait for qemu")?.is_some() {
            break Ended::Exited {
                started: started.load(Ordering::SeqCst),
            };
        }
        let elapsed = start.elapsed();
        if elapsed > b.timeout {
            println!(
                "     guest {} has run for {:.0}s: stopping it",
                b.name,
                elapsed.as_secs_f64()
            );
            stop(&mut child);
            break Ended::TimedOut;
        }
        if elapsed > b.start_within && !started.load(Ordering::SeqCst) {
            println!(
                "     guest {}: the scenario has not started after {:.0}s: stopping it",
                b.name,
                elapsed.as_secs_f64()
            );
            stop(&mut child);
            break Ended::NotStarted;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = echo.join();
    // The line may have come in after the last look.
    let ended = match ended {
        Ended::Exited { .. } => Ended::Exited {
            started: started.load(Ordering::SeqCst),
        },
        other => other,
    };
    Ok((ended, start.elapsed()))
}

/// qemu with what every boot here has: no display, monitor or network device, the serial
/// console on stdout, and an exit instead of a reboot.
fn qemu_command(accel: Accel, cpus: u32, memory_mib: u32) -> Command {
    // stderr joins stdout, so qemu's own complaints land in the console log too.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"exec "$@" 2>&1"#, "sh", QEMU])
        .args(accel.args())
        .args(["-cpu", "max", "-smp"])
        .arg(cpus.to_string())
        .arg("-m")
        .arg(memory_mib.to_string())
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
        ]);
    cmd
}

fn drive(path: &Path, options: &str) -> String {
    // qemu's option syntax doubles a comma inside a value.
    let file = path.display().to_string().replace(',', ",,");
    format!("file={file},format=raw,if=virtio,{options}")
}

/// Starts `cmd` with its stdout read line by line into the returned channel, which closes
/// when qemu exits.
fn spawn(mut cmd: Command) -> Result<(Child, mpsc::Receiver<String>)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {QEMU}: apt-get install qemu-system-x86"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
            if send
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    Ok((child, receive))
}

/// Ends qemu (started here, so its pid is ours to signal) and reaps it.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The console's last lines, escapes removed, for an error message.
pub fn console_tail(console: &Path, n: usize) -> String {
    let text = fs::read_to_string(console).unwrap_or_default();
    last_lines(&strip_escapes(&text), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_in_paths_are_doubled_for_qemu() {
        assert_eq!(
            drive(Path::new("/a,b/root.img"), "snapshot=on"),
            "file=/a,,b/root.img,format=raw,if=virtio,snapshot=on"
        );
    }
}

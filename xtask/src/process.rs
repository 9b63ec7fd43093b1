//! Running the system tools the system tests drive (apt-get, dpkg-deb, lintian, mmdebstrap,
//! chroot): a failure names the command and ends with the last lines it printed, on one line.

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Runs `cmd` with its output captured; fails naming it, with its last stderr lines.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let shown = describe(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            last_lines(&text(&out), 5)
        );
    }
    Ok(out)
}

/// Runs `cmd` and returns its stdout.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8_lossy(&run(cmd)?.stdout).into_owned())
}

/// stdout followed by stderr, as one text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `program arg arg…`, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` non-blank lines of `text`, joined with " | " to fit on one line.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// How the postinst's kernel-prerequisites.sh begins the one warning line it prints when the
/// machine does not let it load the modules and apply the settings now: where it cannot (a
/// chroot, a container), and what failed where it tried.
const KERNEL_WARNINGS: [&str; 2] = [
    "warning: kernel modules and settings not applied now",
    "warning: could not apply",
];

/// The lines of an installation's `log` in which the postinst warns that it did not apply
/// the kernel prerequisites.
pub fn kernel_warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| KERNEL_WARNINGS.iter().any(|w| l.contains(w)))
        .collect()
}

/// The installation's `log` holds exactly one kernel-prerequisites warning, and it names
/// `place` (`in a chroot`, `in a container`); returns that line.
pub fn one_kernel_warning<'a>(log: &'a str, place: &str) -> Result<&'a str> {
    match kernel_warnings(log)[..] {
        [line] if line.contains(&format!("({place})")) => Ok(line.trim()),
        ref found => bail!(
            "expected one warning that the kernel prerequisites were not applied ({place}), found {found:?}"
        ),
    }
}

/// `text` without terminal escape sequences (the kernel's and systemd's colours, a
/// terminal's resets) and carriage returns.
pub fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters and intermediates, then one final byte in @–~.
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

/// Fails naming the Debian package to install when `program` is not on PATH: a system test
/// never skips itself because a tool is missing.
pub fn require_tool(program: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{program} is not installed: apt-get install {package} (`cargo xtask ci` installs it)")
        })
}

/// Runs one check of a test command: prints its name, then `ok` with what it found, or
/// fails naming it.
pub fn check<T>(name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
    println!("==> {name}");
    let start = std::time::Instant::now();
    let (value, detail) = f().with_context(|| format!("check {name:?} failed"))?;
    println!(
        "ok  {name} ({:.1}s): {detail}",
        start.elapsed().as_secs_f64()
    );
    Ok(value)
}

/// A value another thread makes meanwhile (a Debian root, which is mostly mmdebstrap
/// waiting on the archive). Dropping it unused waits for that thread: a run that fails
/// early must not leave mmdebstrap running, nor waste its work for the next run.
pub struct Background<T> {
    what: String,
    handle: Option<std::thread::JoinHandle<Result<T>>>,
}

impl<T: Send + 'static> Background<T> {
    pub fn spawn(what: &str, make: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        Background {
            what: what.to_owned(),
            handle: Some(std::thread::spawn(make)),
        }
    }

    /// Waits for the value.
    pub fn wait(mut self) -> Result<T> {
        let handle = self.handle.take().expect("waited for once");
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the thread making {} panicked", self.what))?
    }
}

impl<T> Drop for Background<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            if !handle.is_finished() {
                println!(
                    "     (waiting for {} to be finished, for the next run)",
                    self.what
                );
            }
            let _ = handle.join();
        }
    }
}

/// Prints what the library reports, indented under the check.
pub struct Printer;

impl containerd_stack::listener::Listener for Printer {
    fn event(&self, event: containerd_stack::listener::Event) {
        use containerd_stack::listener::Event;
        match event {
            Event::Step(s) => println!("     {s}"),
            Event::Warning(w) => println!("     warning: {w}"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_text_loses_its_escapes() {
        assert_eq!(
            strip_escapes("\u{1b}[!p\u{1b}[?7hvm: started\r"),
            "vm: started"
        );
        assert_eq!(
            strip_escapes("\u{1b}[0;1;31mFailed\u{1b}[0m to start\r"),
            "Failed to start"
        );
    }

    #[test]
    fn last_lines_fit_on_one_line() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn missing_tool_names_its_package() {
        let err = require_tool("no-such-tool-xtask", "no-such-package")
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt-get install no-such-package"), "{err}");
    }

    #[test]
    fn failure_names_the_command_and_its_last_words() {
        let err = run(Command::new("sh").args(["-c", "echo first >&2; echo last >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sh -c "), "{err}");
        assert!(err.contains("first | last"), "{err}");
    }
}

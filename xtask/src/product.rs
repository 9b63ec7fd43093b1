//! The `containerd-stack` command, as this repository runs it: `cargo xtask build-deb` and
//! the other user commands hand over to the release binary, built optimised first, with this
//! repository's defaults (its stack.toml, dist/, and debian-templates/ read at run time, so
//! editing a template costs no rebuild). The bench and chaos run the same binary.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use containerd_stack::DebArch;

use crate::repo_root;

/// The release binary, built once per run of xtask; its path.
pub fn binary() -> Result<PathBuf> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "containerd-stack",
        "--bin",
        "containerd-stack",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(repo_root())
    .stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .context("cannot run cargo to build containerd-stack")?;
    let mut executable = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "containerd-stack" {
            if let Some(exe) = msg["executable"].as_str() {
                executable = Some(PathBuf::from(exe));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build --release --bin containerd-stack failed ({status})");
    }
    let path = executable.context("cargo built containerd-stack but named no executable")?;
    Ok(BUILT.get_or_init(|| path).clone())
}

/// `containerd-stack` as a command, not yet run.
pub fn command() -> Result<Command> {
    Ok(Command::new(binary()?))
}

/// `containerd-stack build-deb` of `stack` for `arch`, fetching from `mirror` through `cache`
/// into `out`; not yet run, more flags may follow.
pub fn build_deb(
    stack: &Path,
    mirror: &str,
    cache: &Path,
    out: &Path,
    arch: DebArch,
) -> Result<Command> {
    let mut cmd = command()?;
    cmd.arg("build-deb")
        .arg("--stack")
        .arg(stack)
        .arg("--mirror")
        .arg(mirror)
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out)
        .arg("--arch")
        .arg(arch.as_str());
    Ok(cmd)
}

/// Runs `containerd-stack SUBCOMMAND ARGS…` in place of this process, with this
/// repository's defaults for the flags `args` does not give.
pub fn hand_over(subcommand: &str, args: Vec<OsString>) -> Result<()> {
    let root = repo_root();
    let defaults: &[(&str, PathBuf)] = match subcommand {
        "build-deb" => &[
            ("--stack", root.join("stack.toml")),
            ("--out", root.join("dist")),
            ("--templates", root.join("debian-templates")),
        ],
        "lock" => &[("--stack", root.join("stack.toml"))],
        _ => &[],
    };
    let mut cmd = command()?;
    cmd.arg(subcommand);
    for (flag, value) in defaults {
        if !gives(&args, flag) {
            cmd.arg(flag).arg(value);
        }
    }
    cmd.args(&args);
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot run {}", binary().unwrap_or_default().display()))
}

/// Whether `args` sets `flag` (`--flag VALUE` or `--flag=VALUE`), or asks for help.
fn gives(args: &[OsString], flag: &str) -> bool {
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == flag
            || a.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
            || a == "--help"
            || a == "-h"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_given_either_way_is_not_defaulted() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(gives(&args(&["--stack", "x.toml"]), "--stack"));
        assert!(gives(&args(&["--stack=x.toml"]), "--stack"));
        assert!(!gives(&args(&["--stacks", "x"]), "--stack"));
        assert!(!gives(&args(&["--out", "d"]), "--stack"));
        assert!(gives(&args(&["--help"]), "--stack"));
    }
}

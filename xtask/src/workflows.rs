//! `cargo xtask workflows`: the GitHub workflows are valid — each file against GitHub's
//! workflow schema (check-jsonschema's vendored copy, so no network is needed beyond PyPI),
//! and every `run:` script under shellcheck, with `${{ … }}` expressions stubbed out.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::process::{self, require_tool};
use crate::repo_root;

#[derive(Parser)]
pub struct Args {}

/// Prints each `run:` script of a workflow, NUL-separated, expressions replaced.
const EXTRACT: &str = r#"
import re, sys
from ruamel.yaml import YAML
doc = YAML(typ="safe").load(open(sys.argv[1]))
for name, job in (doc.get("jobs") or {}).items():
    for i, step in enumerate(job.get("steps") or []):
        run = step.get("run")
        if run:
            sys.stdout.write(f"{name}.steps[{i}]\x01" + re.sub(r"\$\{\{[^}]*\}\}", "EXPR", run) + "\x00")
"#;

pub fn run(_: Args) -> Result<()> {
    require_tool("shellcheck", "shellcheck")?;
    let python = venv()?;
    let dir = repo_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: cannot read", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no workflow files", dir.display());
    }
    for file in &files {
        process::run(
            Command::new(python.with_file_name("check-jsonschema"))
                .args(["--builtin-schema", "vendor.github-workflows"])
                .arg(file),
        )
        .with_context(|| format!("{}: not a valid GitHub workflow", file.display()))?;
        let scripts = process::stdout(Command::new(&python).args(["-c", EXTRACT]).arg(file))?;
        let mut count = 0;
        for script in scripts.split('\0').filter(|s| !s.is_empty()) {
            let (step, body) = script.split_once('\u{1}').unwrap_or(("?", script));
            shellcheck(file, step, body)?;
            count += 1;
        }
        println!(
            "ok  {}: schema valid, {count} run scripts pass shellcheck",
            file.display()
        );
    }
    Ok(())
}

fn shellcheck(file: &Path, step: &str, body: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("shellcheck")
        .args(["-s", "bash", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run shellcheck")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{}: {step}: shellcheck: {}",
            file.display(),
            process::last_lines(&String::from_utf8_lossy(&out.stdout), 6)
        );
    }
    Ok(())
}

/// A virtualenv under target/ with check-jsonschema (and ruamel.yaml, which it brings).
fn venv() -> Result<PathBuf> {
    let dir = repo_root().join("target/ci-venv");
    let python = dir.join("bin/python");
    if !dir.join("bin/check-jsonschema").exists() {
        require_tool("python3", "python3-venv")?;
        process::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
            .context("cannot create a virtualenv: apt-get install python3-venv")?;
        process::run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "-q",
            "check-jsonschema==0.*",
        ]))?;
    }
    Ok(python)
}

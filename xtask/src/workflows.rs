//! `cargo xtask workflows`: the GitHub workflows are valid — each file against GitHub's
//! workflow schema (check-jsonschema's vendored copy, so no network is needed beyond PyPI),
//! every `run:` script under shellcheck, with `${{ … }}` expressions stubbed out — and name
//! no architecture that stack.toml does not pin: a job for one would fail at the pins
//! check and, with fail-fast, stop the whole release.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Parser;
use containerd_stack::{DebArch, Stack};
use serde_json::Value;

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

/// Prints a workflow as JSON, for the architecture check.
const AS_JSON: &str = r#"
import json, sys
from ruamel.yaml import YAML
json.dump(YAML(typ="safe").load(open(sys.argv[1])), sys.stdout, default=str)
"#;

pub fn run(_: Args) -> Result<()> {
    require_tool("shellcheck", "shellcheck")?;
    let python = venv()?;
    let stack_toml = repo_root().join("stack.toml");
    let pinned = Stack::load(&stack_toml)
        .with_context(|| format!("{}", stack_toml.display()))?
        .pinned_arches();
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
        let doc: Value = serde_json::from_str(&process::stdout(
            Command::new(&python).args(["-c", AS_JSON]).arg(file),
        )?)
        .with_context(|| format!("{}: not read back as JSON", file.display()))?;
        if let Some(problem) = architecture_problems(&doc, &pinned).first() {
            bail!("{}: {problem}", file.display());
        }
        println!(
            "ok  {}: schema valid, {count} run scripts pass shellcheck, no architecture stack.toml does not pin",
            file.display()
        );
    }
    Ok(())
}

/// What is wrong with the architectures `doc` (a workflow, as JSON) names, with where:
/// every word of a string or key that is an architecture (Debian's name or Go's) must be
/// pinned, and a literal `matrix.arch` list must be exactly the pinned ones, so that a new
/// pin is built too.
fn architecture_problems(doc: &Value, pinned: &[DebArch]) -> Vec<String> {
    fn named(text: &str) -> impl Iterator<Item = DebArch> + '_ {
        text.split(|c: char| !c.is_ascii_alphanumeric())
            .filter_map(|w| {
                DebArch::ALL
                    .into_iter()
                    .find(|a| a.as_str() == w || a.go_arch() == w)
            })
    }
    fn check(text: &str, at: &str, pinned: &[DebArch], out: &mut Vec<String>) {
        for arch in named(text) {
            if !pinned.contains(&arch) {
                out.push(format!(
                    "{at} names {arch}, which stack.toml does not pin: build the matrix from `containerd-stack lock --list-arches`, or pin {arch} with `cargo xtask lock --arch {arch}`"
                ));
            }
        }
    }
    fn walk(v: &Value, at: &str, pinned: &[DebArch], out: &mut Vec<String>) {
        match v {
            Value::String(s) => check(s, at, pinned, out),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{i}]"), pinned, out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let at = match at.is_empty() {
                        true => key.clone(),
                        false => format!("{at}.{key}"),
                    };
                    check(key, &at, pinned, out);
                    walk(item, &at, pinned, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, "", pinned, &mut out);
    let jobs = doc.get("jobs").and_then(Value::as_object);
    for (name, job) in jobs.into_iter().flatten() {
        let Some(listed) = job
            .pointer("/strategy/matrix/arch")
            .and_then(Value::as_array)
        else {
            continue;
        };
        let mut listed: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
        listed.sort_unstable();
        let mut want: Vec<&str> = pinned.iter().map(|a| a.as_str()).collect();
        want.sort_unstable();
        if listed != want {
            out.push(format!(
                "jobs.{name}.strategy.matrix.arch lists {listed:?}, but stack.toml pins {want:?}: build the matrix from `containerd-stack lock --list-arches`"
            ));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &[DebArch] = &[DebArch::Amd64, DebArch::Arm64, DebArch::Ppc64el];

    #[test]
    fn a_matrix_of_unpinned_architectures_is_refused_naming_each() {
        let doc = serde_json::json!({
            "jobs": { "build": { "strategy": { "matrix": {
                "arch": ["amd64", "arm64", "ppc64el", "s390x", "riscv64"]
            } } } }
        });
        let problems = architecture_problems(&doc, PINNED);
        assert!(
            problems[0].starts_with(
                "jobs.build.strategy.matrix.arch[3] names s390x, which stack.toml does not pin"
            ),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("jobs.build.strategy.matrix.arch[4] names riscv64"));
        assert!(problems[2].starts_with("jobs.build.strategy.matrix.arch lists"));
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn scripts_keys_and_go_names_count_and_other_words_do_not() {
        let doc = serde_json::json!({
            "jobs": {
                "build-s390x": { "runs-on": "ubuntu-24.04" },
                "x": { "steps": [
                    { "run": "containerd-stack build-deb --arch=riscv64" },
                    { "run": "echo ppc64le arm64 x86_64 ubuntu-24.04-arm" },
                ] },
            }
        });
        let problems = architecture_problems(&doc, &[DebArch::Amd64, DebArch::Arm64]);
        let at: Vec<&str> = problems
            .iter()
            .map(|p| p.split(" names ").next().unwrap())
            .collect();
        assert_eq!(
            at,
            [
                "jobs.build-s390x",
                "jobs.x.steps[0].run",
                "jobs.x.steps[1].run"
            ],
            "{problems:?}"
        );
        assert!(problems[2].contains("names ppc64el"), "{problems:?}");
    }

    #[test]
    fn a_matrix_from_the_pins_or_of_exactly_them_passes() {
        let from_pins = serde_json::json!({
            "jobs": { "build": { "strategy": { "matrix": {
                "arch": "${{ fromJSON(needs.pins.outputs.arches) }}"
            } } } }
        });
        assert_eq!(
            architecture_problems(&from_pins, PINNED),
            Vec::<String>::new()
        );
        let exact = serde_json::json!({
            "jobs": { "build": { "strategy": { "matrix": {
                "arch": ["ppc64el", "amd64", "arm64"]
            } } } }
        });
        assert_eq!(architecture_problems(&exact, PINNED), Vec::<String>::new());
        let missing = serde_json::json!({
            "jobs": { "build": { "strategy": { "matrix": { "arch": ["amd64"] } } } }
        });
        assert_eq!(architecture_problems(&missing, PINNED).len(), 1);
    }
}

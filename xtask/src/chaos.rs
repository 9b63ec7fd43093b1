//! `cargo xtask chaos`: the build under faults a CI pipeline meets — `kill -9` at random
//! points, two builds sharing one cache at once, a full disk as `--out` and as `--cache`.
//! After each: `--out` holds nothing new, or complete files of a build in the order it names
//! them (package, SBOM, `.buildinfo`, `.changes`), the cache holds only entries that verify,
//! and the next run succeeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use containerd_stack::hash::sha256_file;
use containerd_stack::verify::verify_deb;
use containerd_stack::DebArch;

use crate::process::{self, require_tool};
use crate::{product, realbin};

#[derive(Parser)]
pub struct Args {
    /// Builds killed at random points.
    #[arg(long, default_value_t = 6)]
    kills: u32,
    /// Seed for the kill times (default: from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(args: Args) -> Result<()> {
    require_tool("mount", "mount")?;
    let release = realbin::prepare(realbin::Source::bookworm(
        DebArch::host().context("unsupported host architecture")?,
    ))?;
    let work = tempfile::Builder::new().prefix("xtask-chaos-").tempdir()?;
    let mirror = format!("file://{}", release.mirror_root.display());
    let build_cmd = |cache: &Path, out: &Path| -> Result<Command> {
        let mut c = product::build_deb(&release.stack, &mirror, cache, out, release.arch)?;
        c.args(["--compression", "gzip"]);
        Ok(c)
    };

    // How long an undisturbed cold build takes, to aim the kills inside it.
    let cache = work.path().join("cache");
    let out = work.path().join("out");
    // The command first: making it compiles the release binary, which is no part of the
    // build the kills aim at.
    let mut reference = build_cmd(&work.path().join("cache-ref"), &work.path().join("out-ref"))?;
    let start = Instant::now();
    process::run(&mut reference)?;
    let cold = start.elapsed();
    let reference =
        only_package(&work.path().join("out-ref"))?.context("reference build made nothing")?;
    ensure!(
        outputs(&reference).iter().all(|p| p.exists()),
        "the reference build did not write all of {:?}",
        outputs(&reference)
    );
    let reference_hash = sha256_file(&reference)?;
    println!("ok  reference build: {:.1}s", cold.as_secs_f64());

    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("    kill seed {seed} (rerun with --seed {seed})");
    let mut rng = seed | 1;
    for i in 0..args.kills {
        // xorshift: enough to spread kills over the build.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = Duration::from_millis(rng % (cold.as_millis() as u64).max(1));
        if i % 2 == 0 {
            // Every other time from a cold cache, so downloads and unpacking are hit too.
            let _ = std::fs::remove_dir_all(&cache);
        }
        let mut child = build_cmd(&cache, &out)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(at);
        let _ = child.kill();
        let status = child.wait()?;
        check_out(&out, &reference)?;
        check_cache(&cache)?;
        println!(
            "ok  kill -9 after {:.2}s ({}): --out and the cache are consistent",
            at.as_secs_f64(),
            if status.success() {
                "it had finished"
            } else {
                "killed mid-build"
            }
        );
    }
    process::run(&mut build_cmd(&cache, &out)?)?;
    let after = only_package(&out)?.context("the build after the kills made nothing")?;
    ensure!(
        sha256_file(&after)? == reference_hash,
        "the build after the kills differs from the reference"
    );
    ensure!(
        check_out(&out, &reference)? == outputs(&reference).len(),
        "the build after the kills did not write everything"
    );
    println!("ok  the next build succeeds and is byte-identical to the reference");

    // Two builds at once on one cache.
    let shared = work.path().join("cache-shared");
    let mut a = build_cmd(&shared, &work.path().join("out-a"))?
        .stdout(Stdio::null())
        .spawn()?;
    let mut b = build_cmd(&shared, &work.path().join("out-b"))?
        .stdout(Stdio::null())
        .spawn()?;
    ensure!(
        a.wait()?.success() && b.wait()?.success(),
        "concurrent builds sharing a cache failed"
    );
    for dir in ["out-a", "out-b"] {
        let p = only_package(&work.path().join(dir))?.context("a concurrent build made nothing")?;
        ensure!(
            sha256_file(&p)? == reference_hash,
            "{}: differs from the reference",
            p.display()
        );
        ensure!(
            check_out(&work.path().join(dir), &reference)? == outputs(&reference).len(),
            "{dir}: a concurrent build did not write everything"
        );
    }
    check_cache(&shared)?;
    println!("ok  two builds sharing one cache both succeed, identical, cache intact");

    // A full disk, as --out and as --cache.
    for (what, small_out) in [("--out", true), ("--cache", false)] {
        let mnt = work
            .path()
            .join(format!("tmpfs-{}", what.trim_start_matches('-')));
        std::fs::create_dir_all(&mnt)?;
        process::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
                .arg(&mnt),
        )?;
        let result = (|| -> Result<()> {
            let (cache, out) = match small_out {
                true => (work.path().join("cache-ref"), mnt.clone()),
                false => (
                    mnt.clone(),
                    work.path()
                        .join(format!("out-full-{}", what.trim_start_matches('-'))),
                ),
            };
            let output = build_cmd(&cache, &out)?.output()?;
            ensure!(
                !output.status.success(),
                "a build onto a full {what} succeeded"
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            let line = stderr.lines().last().unwrap_or_default().to_owned();
            ensure!(
                stderr.trim().lines().count() == 1,
                "more than one line on a full {what}: {stderr}"
            );
            ensure!(line.contains("No space left on device"), "{line}");
            check_out(&out, &reference)?;
            check_cache(&cache)?;
            println!("ok  full {what}: one line ({line}); nothing partial");
            Ok(())
        })();
        process::run(Command::new("umount").arg(&mnt))?;
        result?;
    }
    Ok(())
}

/// What a one-architecture build names beside its package `deb`, in the order it names
/// them: the package, its SBOM, the upload's .buildinfo and .changes.
fn outputs(deb: &Path) -> Vec<PathBuf> {
    ["deb", "spdx.json", "buildinfo", "changes"]
        .into_iter()
        .map(|ext| deb.with_extension(ext))
        .collect()
}

fn names(dir: &Path) -> Result<Vec<String>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    rd.map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// The one package in `out`, if any; anything there but it and what is named beside it is
/// an error.
fn only_package(out: &Path) -> Result<Option<PathBuf>> {
    let names = names(out)?;
    let debs: Vec<&String> = names.iter().filter(|n| n.ends_with(".deb")).collect();
    let deb = match debs[..] {
        [] => None,
        [one] => Some(out.join(one)),
        _ => bail!(
            "{}: more than one package in --out: {debs:?}",
            out.display()
        ),
    };
    let expected: Vec<PathBuf> = deb.as_deref().map(outputs).unwrap_or_default();
    for n in &names {
        let p = out.join(n);
        ensure!(expected.contains(&p), "{}: left in --out", p.display());
    }
    Ok(deb)
}

/// `--out` holds nothing, or the first files of what a build names in the order it names
/// them, each whole and the same as the reference build's. Returns how many.
fn check_out(out: &Path, reference: &Path) -> Result<usize> {
    let present = names(out)?;
    let expected = outputs(reference);
    let n = present.len();
    for want in &expected[..n.min(expected.len())] {
        let name = want.file_name().expect("a file name");
        let p = out.join(name);
        ensure!(
            p.exists(),
            "{}: {} is missing while files named after it are there: {present:?}",
            out.display(),
            name.to_string_lossy()
        );
        ensure!(
            std::fs::read(&p)? == std::fs::read(want)?,
            "{}: incomplete or different from the reference build's",
            p.display()
        );
    }
    ensure!(
        n <= expected.len(),
        "{}: left in --out: {present:?}",
        out.display()
    );
    if let Some(p) = only_package(out)? {
        verify_deb(&p, None)
            .with_context(|| format!("{}: incomplete package in --out", p.display()))?;
    }
    Ok(n)
}

/// Every downloaded asset in the cache matches the hash it is named by; every build blob
/// is complete (no temporary names anywhere).
fn check_cache(cache: &Path) -> Result<()> {
    let sha = cache.join("sha256");
    if let Ok(rd) = std::fs::read_dir(&sha) {
        for e in rd {
            let p = e?.path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            ensure!(
                sha256_file(&p)?.as_str() == name,
                "{}: cache entry does not match its name",
                p.display()
            );
        }
    }
    fn walk(dir: &Path) -> Result<()> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() {
                walk(&e.path())?;
            } else {
                ensure!(
                    !name.starts_with('.'),
                    "{}: temporary file left in the cache",
                    e.path().display()
                );
            }
        }
        Ok(())
    }
    walk(&cache.join("builds"))
}

//! `containerd-stack build-deb`: flags → [`BuildOptions`], then one line per package.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use containerd_stack::deb::compress::Compression;
use containerd_stack::fetch::FetchOptions;
use containerd_stack::sign::Signer;
use containerd_stack::{build_upload, BuildOptions, DebArch, Stack};

use super::progress::Terminal;

#[derive(Parser)]
pub struct Args {
    /// The stack manifest.
    #[arg(long, value_name = "FILE", default_value = "stack.toml")]
    stack: PathBuf,
    /// Templates to use in place of the built-in ones (`<name>.hbs`; a file missing there
    /// falls back to the built-in one); default: stack.toml's `[package] templates`.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Debian architecture to build for (repeatable), or `all` for every architecture
    /// stack.toml pins containerd and runc for; default: this machine's.
    #[arg(long = "arch", value_name = "ARCH")]
    arches: Vec<String>,
    /// Where the .deb files go, each with its SBOM, and the upload's .buildinfo and .changes.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    out: PathBuf,
    /// The suite the changelog entry and the .changes name; default: stack.toml's
    /// `[package] distribution`, else `stable`.
    #[arg(long, value_name = "NAME")]
    distribution: Option<String>,
    /// Fetch `https://github.com/<path>` from `<URL>/<path>` instead (http, https, file).
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// Download cache; default: $XDG_CACHE_HOME/containerd-stack or ~/.cache/containerd-stack.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Use no network: only the cache and a file:// mirror.
    #[arg(long)]
    offline: bool,
    /// xz, zstd or gzip.
    #[arg(long, default_value = "xz")]
    compression: String,
    /// Compression level; default: 6 for xz, 19 for zstd, 9 for gzip.
    #[arg(long, value_name = "N")]
    level: Option<u32>,
    /// Sign each package (debsigs `_gpgorigin`) and clear-sign the .buildinfo and .changes
    /// with this armoured secret key.
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// The signing key's passphrase, on the first line of this file.
    #[arg(long, value_name = "FILE", requires = "sign_key")]
    sign_passphrase_file: Option<PathBuf>,
    /// Fetch, check and lay out, then print the plan as JSON instead of writing packages.
    #[arg(long)]
    dry_run: bool,
    /// Print each step with the time since the start, instead of progress bars.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut stack = Stack::load(&args.stack)?;
    if let Some(dir) = args.templates {
        stack.package.templates = Some(dir);
    }
    if let Some(d) = args.distribution {
        if !containerd_stack::stack::is_distribution(&d) {
            bail!("--distribution {d:?}: not a suite or codename (letters, digits, '.', '+', '-')");
        }
        stack.package.distribution = d;
    }
    let compression: Compression = args.compression.parse()?;
    let level = compression.check_level(args.level.unwrap_or(compression.default_level()))?;
    let arches = parse_arches(&args.arches, &stack)?;
    let cache_dir = match args.cache {
        Some(c) => c,
        None => containerd_stack::build::default_cache_dir()
            .context("no cache directory: set HOME or XDG_CACHE_HOME, or pass --cache")?,
    };
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let opts = BuildOptions {
        arches,
        out_dir: args.out,
        fetch: FetchOptions {
            mirror: args.mirror,
            cache_dir,
            offline: args.offline,
        },
        compression,
        level,
        source_date_epoch,
        threads,
        signer: match &args.sign_key {
            Some(key) => Some(std::sync::Arc::new(Signer::load_file(
                key,
                args.sign_passphrase_file.as_deref(),
                super::now(),
            )?)),
            None => None,
        },
    };
    let listener = Terminal::new(args.verbose);
    if args.dry_run {
        let plan = containerd_stack::build::plan(&stack, &opts, &listener)?;
        listener.finish();
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let built = build_upload(&stack, &opts, &listener)?;
    listener.finish();
    if built.debs.is_empty() {
        bail!("nothing was built");
    }
    for deb in &built.debs {
        println!(
            "{}  {} bytes  sha256 {}",
            deb.path.display(),
            deb.size,
            deb.sha256
        );
        println!("{}", deb.sbom.display());
    }
    println!("{}", built.buildinfo.display());
    println!("{}", built.changes.display());
    if let (Some(start), Some(kib)) = (listener.verbose, peak_resident_kib()) {
        eprintln!(
            "[{:7.2}s] {}{:.1} MiB",
            start.elapsed().as_secs_f64(),
            containerd_stack::listener::PEAK_MEMORY,
            kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// This process's peak resident set in KiB (`VmHWM`): this program's alone, where
/// getrusage's would include its parent's up to the exec.
fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `--arch` values: Debian names, or `all` for every architecture the stack pins.
pub fn parse_arches(values: &[String], stack: &Stack) -> Result<Vec<DebArch>> {
    if values.is_empty() {
        return Ok(vec![DebArch::host().context(
            "this machine's architecture is not one upstream publishes; pass --arch",
        )?]);
    }
    let mut arches = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        if v == "all" {
            let pinned = stack.pinned_arches();
            if pinned.is_empty() {
                bail!("--arch all: stack.toml pins containerd and runc for no common architecture");
            }
            arches.extend(pinned);
        } else {
            arches.push(v.parse()?);
        }
    }
    arches.sort();
    arches.dedup();
    Ok(arches)
}

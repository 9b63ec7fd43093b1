//! `build-deb`: stack manifest → fetch → unpack → ELF check → layout → render → deb.
//! One call builds one package per requested architecture, several at once, each with its
//! SBOM beside it, and one `.buildinfo` and `.changes` over them all. The slow steps are
//! cached by what they depend on (see [`crate::cache`]): the analysis of the upstream
//! assets by their hashes, each compressed block of the data member by its bytes, and the
//! finished package by the whole tree plus the control member — so a rebuild with nothing
//! changed only re-hashes the package in `--out`, and a template edit or a runc bump
//! compresses only the blocks of the part it changed. The files appear in `--out` whole,
//! and only when every architecture built.

mod analysis;
mod prepare;
mod staging;
mod write;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::arch::DebArch;
use crate::artifact::Artifact;
use crate::deb::compress::Compression;
use crate::error::{Error, Result};
use crate::fetch::{FetchOptions, Fetcher};
use crate::layout::FhsTree;
use crate::listener::{Event, Listener};
use crate::render::Renderer;
use crate::sign::Signer;
use crate::stack::{Sha256, Stack};

pub use self::prepare::PreparedPackage;
pub use crate::context::render_template;

/// Maintainer scripts, rendered from the template of the same name when there is one.
pub const MAINTAINER_SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];
/// Other control files rendered from templates (debconf's `templates`, dpkg's `triggers`).
pub const CONTROL_EXTRAS: &[&str] = &["templates", "triggers"];

/// Bumped whenever the layout (the tree's, or the data tar's blocks) or the analysis
/// changes meaning, so old cache entries are not reused by a newer tool: a data member's
/// key names what it holds, not how its blocks are cut.
const CACHE_SCHEMA: &str = concat!("containerd-stack/", env!("CARGO_PKG_VERSION"), "/cache-4");

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub arches: Vec<DebArch>,
    pub out_dir: PathBuf,
    pub fetch: FetchOptions,
    pub compression: Compression,
    pub level: u32,
    /// `SOURCE_DATE_EPOCH`; when `None`, the newest mtime inside the upstream archives.
    pub source_date_epoch: Option<u64>,
    /// Compression threads.
    pub threads: u32,
    /// Adds a debsigs `_gpgorigin` signature to each package.
    pub signer: Option<std::sync::Arc<Signer>>,
}

impl BuildOptions {
    /// What `build-deb` does by default — xz at level 6, the upstream archives' timestamp,
    /// every core, no signature — for `arches`, into `out_dir`, fetching from `mirror`
    /// (GitHub when `None`) through `cache_dir`.
    pub fn new(
        arches: Vec<DebArch>,
        out_dir: PathBuf,
        mirror: Option<String>,
        cache_dir: PathBuf,
    ) -> BuildOptions {
        let compression = Compression::Xz;
        BuildOptions {
            arches,
            out_dir,
            fetch: FetchOptions {
                mirror,
                cache_dir,
                offline: false,
            },
            compression,
            level: compression.default_level(),
            source_date_epoch: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            signer: None,
        }
    }
}

/// A finished package.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltDeb {
    pub arch: DebArch,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: Sha256,
    pub md5: String,
    pub sha1: String,
    /// Its SPDX SBOM, beside it (the same bytes it ships).
    pub sbom: PathBuf,
    pub tree: FhsTree,
    /// How much of the build cache was reused.
    pub reuse: Reuse,
    /// Bytes of the data tar this build compressed; the rest came from the cache.
    pub compressed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reuse {
    /// Every block of the data member was compressed.
    Nothing,
    /// Some blocks of the data member were compressed (the parts that changed), the others
    /// came from the cache.
    Blocks,
    /// Every block of the data member came from the cache; only the control member was
    /// rebuilt.
    DataMember,
    /// The package already in `--out` is the one these inputs make, proven by its hash.
    Package,
}

/// What a build wrote into the output directory.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// In architecture order.
    pub debs: Vec<BuiltDeb>,
    pub buildinfo: PathBuf,
    pub changes: PathBuf,
}

/// Builds one .deb per architecture in `opts.arches`, several at once up to `opts.threads`,
/// and the upload's `.buildinfo` and `.changes` over them.
pub fn build_upload(stack: &Stack, opts: &BuildOptions, listener: &dyn Listener) -> Result<Built> {
    let fetcher = Fetcher::new(opts.fetch.clone())?;
    let written = for_each_arch(stack, opts, &fetcher, listener, |prepared, threads| {
        let prepared = prepared?;
        let reusable = prepare::reusable(&prepared, opts, &fetcher, listener)?;
        write::write_package(prepared, reusable, opts, threads, &fetcher, listener)
    })?;
    write::finish(stack, opts, written)
}

/// [`build_upload`], for what only needs the packages.
pub fn build(stack: &Stack, opts: &BuildOptions, listener: &dyn Listener) -> Result<Vec<BuiltDeb>> {
    Ok(build_upload(stack, opts, listener)?.debs)
}

/// Everything `build` does except writing the packages.
pub fn plan(
    stack: &Stack,
    opts: &BuildOptions,
    listener: &dyn Listener,
) -> Result<Vec<PreparedPackage>> {
    let fetcher = Fetcher::new(opts.fetch.clone())?;
    for_each_arch(stack, opts, &fetcher, listener, |prepared, _| prepared)
}

/// Prepares each architecture on a pool of workers and hands the result to `finish`, with
/// the compression threads each worker may use. Results come back in `opts.arches` order;
/// the first error (in that order) wins.
fn for_each_arch<T: Send>(
    stack: &Stack,
    opts: &BuildOptions,
    fetcher: &Fetcher,
    listener: &dyn Listener,
    finish: impl Fn(Result<PreparedPackage>, u32) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if opts.arches.is_empty() {
        return Err(Error::NoArchitecture("build"));
    }
    let mut arches = opts.arches.clone();
    arches.sort();
    arches.dedup();
    let renderer = Renderer::with_dir(stack.package.templates.as_deref())?;
    let workers = (opts.threads.max(1) as usize).min(arches.len());
    let threads = (opts.threads / workers as u32).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<T>>>> =
        arches.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&arch) = arches.get(i) else { break };
                let prepared = prepare::prepare(stack, arch, opts, fetcher, &renderer, listener);
                *results[i].lock().unwrap() = Some(finish(prepared, threads));
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every architecture ran"))
        .collect()
}

/// The artifacts of `stack` for `arch`: an error for an unpinned required component, a
/// warning and nothing for an unpinned optional one.
pub fn artifacts(stack: &Stack, arch: DebArch, listener: &dyn Listener) -> Result<Vec<Artifact>> {
    let mut out = Vec::new();
    for c in &stack.components {
        match Artifact::for_component(c, arch) {
            Some(a) => out.push(a),
            None if c.kind.required() => {
                return Err(Error::Unpinned {
                    component: c.kind,
                    arch,
                })
            }
            None => listener.event(Event::Warning(format!(
                "components.{}.sha256.{arch} is not pinned: {} is left out of the {arch} package",
                c.kind, c.kind
            ))),
        }
    }
    Ok(out)
}

/// The default cache directory: `$XDG_CACHE_HOME/containerd-stack`, else
/// `~/.cache/containerd-stack`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("containerd-stack"))
}

//! `build-deb`: stack manifest → fetch → unpack → ELF check → layout → render → deb.
//! One call builds one package per requested architecture, several at once. The slow steps
//! are cached by what they depend on (see [`crate::cache`]): the analysis of the upstream
//! assets by their hashes, the compressed data member by the whole data tree, and the
//! finished package by that plus the control member — so a rebuild with nothing changed
//! only re-hashes the package in `--out`, and a template change rebuilds only what it
//! touches. The finished file appears in `--out` whole or not at all.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arch::DebArch;
use crate::artifact::Artifact;
use crate::atomic::AtomicFile;
use crate::cache::BuildCache;
use crate::context::{control_paragraph, TemplateContext};
use crate::deb::compress::{gzip_bytes, Compression};
use crate::deb::{ControlFiles, DataMember, DebWriter};
use crate::elf::{self, Linkage};
use crate::error::{Error, IoContext, Result};
use crate::fetch::{hash_file, FetchOptions, Fetcher};
use crate::layout::{FhsTree, FileNode, Node, Source};
use crate::listener::{Event, Listener, Stage};
use crate::render::{rfc2822, Renderer};
use crate::sign::Signer;
use crate::stack::{ComponentKind, Sha256, Stack};
use crate::unpack::{self, MAX_UNPACKED_BYTES};

pub use crate::context::render_template;

/// Maintainer scripts, rendered from the template of the same name when there is one.
pub const MAINTAINER_SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];
/// Other control files rendered from templates (debconf's `templates`, dpkg's `triggers`).
pub const CONTROL_EXTRAS: &[&str] = &["templates", "triggers"];

/// Bumped whenever the layout or the analysis changes meaning, so old cache entries are
/// not reused by a newer tool.
const CACHE_SCHEMA: &str = concat!("containerd-stack/", env!("CARGO_PKG_VERSION"), "/cache-1");

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

/// A finished package.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltDeb {
    pub arch: DebArch,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: Sha256,
    pub tree: FhsTree,
    /// How much of the build cache was reused.
    pub reuse: Reuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reuse {
    /// Built from scratch.
    Nothing,
    /// The compressed data member was reused; only the control member was rebuilt.
    DataMember,
    /// The package already in `--out` is the one these inputs make, proven by its hash.
    Package,
}

/// A package ready to be written: its tree, control file and scripts, all decided. This is
/// what `--dry-run` shows.
#[derive(Debug, Serialize)]
pub struct PreparedPackage {
    pub arch: DebArch,
    pub file_name: String,
    pub control: String,
    pub mtime: u64,
    pub tree: FhsTree,
    #[serde(skip)]
    pub scripts: Vec<(String, String)>,
    #[serde(skip)]
    pub extra: Vec<(String, String)>,
    #[serde(skip)]
    artifacts: Vec<Artifact>,
    /// The cache key of the assets' analysis.
    #[serde(skip)]
    analysis_key: String,
    /// Holds the staged upstream files the tree points at; empty until they are needed
    /// when the analysis came from the cache.
    #[serde(skip)]
    staging: Staging,
    #[serde(skip)]
    staged: bool,
}

/// A build's own directory under `<cache>/staging/`, locked while the build runs. A build
/// killed with `kill -9` cannot remove it; the next build removes every staging directory
/// whose lock nobody holds.
#[derive(Debug)]
struct Staging {
    dir: tempfile::TempDir,
    _lock: fs::File,
}

impl Staging {
    fn new(cache_dir: &Path, arch: DebArch) -> Result<Staging> {
        let root = cache_dir.join("staging");
        fs::create_dir_all(&root).at(&root)?;
        if let Ok(entries) = fs::read_dir(&root) {
            for e in entries.flatten() {
                let lock = e.path().join(".lock");
                // A directory a running build has just made may not be locked yet: only
                // one older than a minute whose lock is free is abandoned.
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() > 60));
                let abandoned = old && fs::File::open(&lock).is_ok_and(|f| f.try_lock().is_ok());
                if abandoned {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{arch}-"))
            .tempdir_in(&root)
            .at(&root)?;
        let lock_path = dir.path().join(".lock");
        let lock = fs::File::create(&lock_path).at(&lock_path)?;
        lock.lock().at(&lock_path)?;
        Ok(Staging { dir, _lock: lock })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What the slow part of preparing an architecture found, cached by the assets' hashes:
/// each program's place, size, md5 and ELF findings, and the newest mtime upstream used.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Analysis {
    mtime: Option<u64>,
    programs: Vec<Program>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Program {
    /// Installed path, relative to `/`.
    dest: String,
    /// Where it is staged, relative to the staging directory.
    staged: String,
    origin: String,
    size: u64,
    md5: String,
    elf: Linkage,
    /// The entry's mtime in its archive, if it has one.
    mtime: Option<u64>,
}

/// Builds one .deb per architecture in `opts.arches`, several at once up to `opts.threads`.
pub fn build(stack: &Stack, opts: &BuildOptions, listener: &dyn Listener) -> Result<Vec<BuiltDeb>> {
    let fetcher = Fetcher::new(opts.fetch.clone())?;
    for_each_arch(stack, opts, &fetcher, listener, |prepared, threads| {
        write_package(prepared?, opts, threads, &fetcher, listener)
    })
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
        return Err(Error::Usage("no architecture to build".into()));
    }
    let mut arches = opts.arches.clone();
    arches.sort();
    arches.dedup();
    let renderer = Renderer::new()?;
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
                let prepared = prepare(stack, arch, opts, fetcher, &renderer, listener);
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
                return Err(Error::Pin {
                    key: format!("components.{}.sha256.{arch}", c.kind),
                    message: format!(
                        "no sha256 is pinned for {arch}; refusing to fetch an unverified asset (run `cargo xtask lock --arch {arch}` or add the pin)"
                    ),
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

fn prepare(
    stack: &Stack,
    arch: DebArch,
    opts: &BuildOptions,
    fetcher: &Fetcher,
    renderer: &Renderer,
    listener: &dyn Listener,
) -> Result<PreparedPackage> {
    let artifacts = artifacts(stack, arch, listener)?;
    let cache = BuildCache::new(fetcher.cache_dir());
    let staging = Staging::new(fetcher.cache_dir(), arch)?;

    let mut key_parts: Vec<Vec<u8>> = vec![
        CACHE_SCHEMA.into(),
        arch.as_str().into(),
        stack.settings.cni_bin_dir.clone().into(),
    ];
    for a in &artifacts {
        key_parts.push(format!("{}\0{}\0{}", a.component, a.file_name, a.sha256).into());
    }
    let analysis_key = BuildCache::key(&key_parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let (analysis, staged) = match cache.record::<Analysis>("analysis", &analysis_key) {
        Some(a) => (a, false),
        None => {
            let a = analyse(stack, arch, &artifacts, staging.path(), fetcher, listener)?;
            cache.store_record("analysis", &analysis_key, &a)?;
            (a, true)
        }
    };
    let mtime = opts.source_date_epoch.or(analysis.mtime).unwrap_or(0);

    let mut tree = FhsTree::default();
    for p in &analysis.programs {
        let node = FileNode {
            mode: 0o755,
            size: p.size,
            md5: p.md5.clone(),
            source: Source::Staged {
                path: staging.path().join(&p.staged),
                origin: p.origin.clone(),
            },
            elf: Some(p.elf.clone()),
        };
        tree.add_file(&p.dest, node)?;
    }

    let ctx = TemplateContext::new(stack, arch, &tree)?;
    let doc = format!("usr/share/doc/{}", stack.package.name);
    tree.add_inline(
        "usr/lib/systemd/system/containerd.service",
        0o644,
        renderer.render("containerd.service", &ctx)?.into_bytes(),
    )?;
    if ctx.crictl.is_some() {
        tree.add_inline(
            "etc/crictl.yaml",
            0o644,
            renderer.render("crictl.yaml", &ctx)?.into_bytes(),
        )?;
    }
    if ctx.cni_plugins.is_some() {
        tree.add_inline(
            "etc/cni/net.d/10-containerd-net.conflist",
            0o644,
            renderer
                .render("10-containerd-net.conflist", &ctx)?
                .into_bytes(),
        )?;
    }
    let dated = TemplateContext {
        date: rfc2822(mtime),
        ..ctx.clone()
    };
    tree.add_inline(
        &format!("{doc}/copyright"),
        0o644,
        renderer.render("copyright", &ctx)?.into_bytes(),
    )?;
    tree.add_inline(
        &format!("{doc}/changelog.Debian.gz"),
        0o644,
        gzip_bytes(renderer.render("changelog", &dated)?.as_bytes()),
    )?;
    let overrides = renderer.render("lintian-overrides", &ctx)?;
    if !overrides.trim().is_empty() {
        tree.add_inline(
            &format!("usr/share/lintian/overrides/{}", stack.package.name),
            0o644,
            overrides.into_bytes(),
        )?;
    }

    let mut scripts = Vec::new();
    for name in MAINTAINER_SCRIPTS {
        if renderer.has(name) {
            scripts.push((name.to_string(), renderer.render(name, &ctx)?));
        }
    }
    let mut extra = Vec::new();
    for name in CONTROL_EXTRAS {
        if renderer.has(name) {
            extra.push((name.to_string(), renderer.render(name, &ctx)?));
        }
    }

    // The control file is rendered last: Installed-Size covers the whole tree.
    let ctx = TemplateContext {
        installed_size: tree.installed_size_kib(),
        ..ctx
    };
    let control = control_paragraph(&renderer.render("control", &ctx)?);

    let file_name = format!(
        "{}_{}_{}.deb",
        stack.package.name,
        stack.deb_version().replace(':', "%3a"),
        arch
    );
    Ok(PreparedPackage {
        arch,
        file_name,
        control,
        mtime,
        tree,
        scripts,
        extra,
        artifacts,
        analysis_key,
        staging,
        staged,
    })
}

/// Fetches the assets (side by side), unpacks each as soon as it is there, and checks every
/// program's ELF header.
fn analyse(
    stack: &Stack,
    arch: DebArch,
    artifacts: &[Artifact],
    staging: &Path,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<Analysis> {
    let cni_dir = stack
        .settings
        .cni_bin_dir
        .trim_start_matches('/')
        .to_owned();
    let per_asset: Vec<Result<Vec<Program>>> = std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .iter()
            .map(|a| {
                let cni_dir = &cni_dir;
                s.spawn(move || -> Result<Vec<Program>> {
                    let mut out = Vec::new();
                    let programs = stage(a, staging, fetcher, listener)?;
                    listener.event(Event::Began {
                        stage: Stage::Check,
                        name: a.file_name.clone(),
                    });
                    for p in programs {
                        let dest = match a.component {
                            ComponentKind::Containerd | ComponentKind::Crictl => {
                                format!("usr/bin/{}", p.name)
                            }
                            ComponentKind::Runc => "usr/sbin/runc".to_owned(),
                            ComponentKind::CniPlugins => format!("{cni_dir}/{}", p.name),
                        };
                        let shown = format!("{dest} ({arch}, from {})", a.file_name);
                        let elf = elf::inspect(&p.path, &shown, arch)?;
                        let origin = match a.file_name == p.entry {
                            true => a.file_name.clone(),
                            false => format!("{}:{}", a.file_name, p.entry),
                        };
                        let staged = p
                            .path
                            .strip_prefix(staging)
                            .expect("unpacked inside staging")
                            .to_string_lossy()
                            .into_owned();
                        let program = Program {
                            dest,
                            staged,
                            origin,
                            size: p.size,
                            md5: md5_file(&p.path)?,
                            elf,
                            mtime: p.mtime,
                        };
                        out.push(program);
                    }
                    listener.event(Event::Ended {
                        stage: Stage::Check,
                        name: a.file_name.clone(),
                    });
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("asset thread panicked"))
            .collect()
    });
    let mut analysis = Analysis {
        mtime: None,
        programs: Vec::new(),
    };
    for programs in per_asset {
        for program in programs? {
            analysis.mtime = analysis.mtime.max(program.mtime);
            analysis.programs.push(program);
        }
    }
    Ok(analysis)
}

/// The hex md5 of a file, read in pieces: a program is never held in memory whole.
fn md5_file(path: &Path) -> Result<String> {
    use md5::Digest;
    let mut md5 = md5::Md5::new();
    let mut file = fs::File::open(path).at(path)?;
    std::io::copy(&mut file, &mut md5).at(path)?;
    Ok(hex::encode(md5.finalize()))
}

/// Fetches one asset (through the cache) and unpacks its programs into `staging`.
fn stage(
    a: &Artifact,
    staging: &Path,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<Vec<unpack::StagedProgram>> {
    let asset = fetcher.fetch(a, listener)?;
    let name = || a.file_name.clone();
    listener.event(Event::Began {
        stage: Stage::Unpack,
        name: name(),
    });
    let programs = unpack::unpack(
        a,
        &asset,
        &staging.join(a.component.key()),
        MAX_UNPACKED_BYTES,
    )?;
    listener.event(Event::Ended {
        stage: Stage::Unpack,
        name: name(),
    });
    Ok(programs)
}

/// Writes a prepared package into `opts.out_dir`, reusing what the cache proves unchanged.
fn write_package(
    prepared: PreparedPackage,
    opts: &BuildOptions,
    threads: u32,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<BuiltDeb> {
    let PreparedPackage {
        arch,
        file_name,
        control,
        mtime,
        tree,
        scripts,
        extra,
        artifacts,
        analysis_key,
        staging,
        staged,
    } = prepared;
    let cache = BuildCache::new(fetcher.cache_dir());
    let writer = DebWriter {
        compression: opts.compression,
        level: opts.level,
        threads,
        mtime,
    };
    let conffiles = tree.conffiles();
    let control_member = writer.write_control(
        &ControlFiles {
            control: &control,
            conffiles: &conffiles,
            scripts: &scripts,
            extra: &extra,
        },
        &tree.md5sums(),
    )?;

    let data_key = data_key(&analysis_key, &tree, &writer);
    let signer = opts
        .signer
        .as_ref()
        .map(|s| s.fingerprint())
        .unwrap_or_default();
    let package_key = BuildCache::key(&[data_key.as_bytes(), &control_member, signer.as_bytes()]);
    fs::create_dir_all(&opts.out_dir).at(&opts.out_dir)?;
    let final_path = opts.out_dir.join(&file_name);
    let built = |reuse: Reuse, sha256: Sha256| -> Result<BuiltDeb> {
        Ok(BuiltDeb {
            arch,
            size: fs::metadata(&final_path).at(&final_path)?.len(),
            sha256,
            path: final_path.clone(),
            tree: tree.clone(),
            reuse,
        })
    };

    if let Some(recorded) = cache.record::<String>("packages", &package_key) {
        if final_path.exists() && hash_file(&final_path)?.as_str() == recorded {
            listener.event(Event::Step(format!("{file_name} is up to date")));
            return built(Reuse::Package, hash_file(&final_path)?);
        }
    }

    let member_kind = format!("data-{}", opts.compression.extension());
    let (mut data, reuse) = match cache.blob(&member_kind, &data_key)? {
        Some(blob) => {
            let file = fs::File::open(&blob.path).at(&blob.path)?;
            (
                DataMember {
                    file,
                    size: blob.size,
                },
                Reuse::DataMember,
            )
        }
        None => {
            if !staged {
                // The analysis came from the cache; the files themselves are needed now.
                std::thread::scope(|s| {
                    let handles: Vec<_> = artifacts
                        .iter()
                        .map(|a| s.spawn(|| stage(a, staging.path(), fetcher, listener)))
                        .collect();
                    handles
                        .into_iter()
                        .try_for_each(|h| h.join().expect("asset thread panicked").map(drop))
                })?;
            }
            listener.event(Event::Began {
                stage: Stage::Compress,
                name: file_name.clone(),
            });
            let mut blob = cache.new_blob(&member_kind)?;
            let path = PathBuf::from(&member_kind);
            let member = writer.write_data(&tree, blob.file(), &path)?;
            listener.event(Event::Ended {
                stage: Stage::Compress,
                name: file_name.clone(),
            });
            let (file, _) = cache.store_blob(&member_kind, &data_key, blob, member.size)?;
            (
                DataMember {
                    file,
                    size: member.size,
                },
                Reuse::Nothing,
            )
        }
    };
    drop(staging);

    // Nameless in `out` until complete, then linked into place: `out` never holds a
    // partial package, whatever fails or is killed.
    let mut out = AtomicFile::new_in(&opts.out_dir, 0o644)?;
    writer.assemble(
        &control_member,
        &mut data,
        opts.signer.as_deref(),
        std::io::BufWriter::new(out.file()),
        &final_path,
    )?;
    out.persist(&final_path)?;
    let sha256 = hash_file(&final_path)?;
    cache.store_record("packages", &package_key, &sha256.to_string())?;
    built(reuse, sha256)
}

/// The key of a data member: the assets' analysis plus every path, mode and md5 of the tree,
/// the one mtime, and how it is compressed.
fn data_key(analysis_key: &str, tree: &FhsTree, writer: &DebWriter) -> String {
    let mut listing = String::new();
    for (path, node) in &tree.entries {
        match node {
            Node::Dir => listing.push_str(&format!("d {path}\n")),
            Node::File(f) => {
                listing.push_str(&format!("f {path} {:o} {} {}\n", f.mode, f.size, f.md5))
            }
        }
    }
    BuildCache::key(&[
        CACHE_SCHEMA.as_bytes(),
        analysis_key.as_bytes(),
        listing.as_bytes(),
        &writer.mtime.to_le_bytes(),
        writer.compression.extension().as_bytes(),
        &writer.level.to_le_bytes(),
    ])
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

/// Every directory node of a tree, for callers that list it.
pub fn dirs(tree: &FhsTree) -> impl Iterator<Item = &str> {
    tree.entries
        .iter()
        .filter_map(|(p, n)| matches!(n, Node::Dir).then_some(p.as_str()))
}

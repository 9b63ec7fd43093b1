//! `build-deb`: stack manifest → fetch → unpack → ELF check → layout → render → deb.
//! One call builds one package per requested architecture; the finished file appears in the
//! output directory by an atomic rename, so a failed build leaves nothing there.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::arch::DebArch;
use crate::artifact::Artifact;
use crate::atomic::AtomicFile;
use crate::deb::compress::{gzip_bytes, Compression};
use crate::deb::{ControlFiles, DebWriter};
use crate::elf::{self, Linkage};
use crate::error::{Error, IoContext, Result};
use crate::fetch::{hash_file, FetchOptions, Fetcher};
use crate::layout::{FhsTree, Node, Source};
use crate::listener::{Event, Listener};
use crate::render::{rfc2822, Renderer};
use crate::sign::Signer;
use crate::stack::{ComponentKind, Sha256, Stack};
use crate::unpack::{self, StagedProgram, MAX_UNPACKED_BYTES};

/// Maintainer scripts, rendered from the template of the same name when there is one.
pub const MAINTAINER_SCRIPTS: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];
/// Other control files rendered from templates (debconf's `templates`).
pub const CONTROL_EXTRAS: &[&str] = &["templates"];

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
    /// Holds the staged upstream files the tree points at.
    #[serde(skip)]
    staging: tempfile::TempDir,
}

/// Builds one .deb per architecture in `opts.arches`, several at once up to `opts.threads`.
pub fn build(stack: &Stack, opts: &BuildOptions, listener: &dyn Listener) -> Result<Vec<BuiltDeb>> {
    for_each_arch(stack, opts, listener, |prepared, threads| {
        write_package(prepared?, opts, threads, listener)
    })
}

/// Everything `build` does except writing the packages.
pub fn plan(
    stack: &Stack,
    opts: &BuildOptions,
    listener: &dyn Listener,
) -> Result<Vec<PreparedPackage>> {
    for_each_arch(stack, opts, listener, |prepared, _| prepared)
}

/// Prepares each architecture on a pool of workers and hands the result to `finish`, with
/// the compression threads each worker may use. Results come back in `opts.arches` order;
/// the first error (in that order) wins.
fn for_each_arch<T: Send>(
    stack: &Stack,
    opts: &BuildOptions,
    listener: &dyn Listener,
    finish: impl Fn(Result<PreparedPackage>, u32) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if opts.arches.is_empty() {
        return Err(Error::Usage("no architecture to build".into()));
    }
    let mut arches = opts.arches.clone();
    arches.sort();
    arches.dedup();
    let fetcher = Fetcher::new(opts.fetch.clone())?;
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
                let prepared = prepare(stack, arch, opts, &fetcher, &renderer, listener);
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

    // Downloads run side by side; each one is verified before anything reads it.
    let assets: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .iter()
            .map(|a| s.spawn(move || fetcher.fetch(a, listener)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fetch thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;

    let staging_root = fetcher.cache_dir().join("staging");
    fs::create_dir_all(&staging_root).at(&staging_root)?;
    let staging = tempfile::Builder::new()
        .prefix(&format!("{arch}-"))
        .tempdir_in(&staging_root)
        .at(&staging_root)?;

    let mut staged: Vec<(ComponentKind, Vec<StagedProgram>)> = Vec::new();
    for (artifact, asset) in artifacts.iter().zip(&assets) {
        listener.event(Event::Step(format!("unpacking {}", artifact.file_name)));
        let dir = staging.path().join(artifact.component.key());
        let programs = unpack::unpack(artifact, asset, &dir, MAX_UNPACKED_BYTES)?;
        staged.push((artifact.component, programs));
    }

    let mtime = match opts.source_date_epoch {
        Some(t) => t,
        None => staged
            .iter()
            .flat_map(|(_, ps)| ps.iter().filter_map(|p| p.mtime))
            .max()
            .unwrap_or(0),
    };

    let mut tree = FhsTree::default();
    let cni_dir = stack
        .settings
        .cni_bin_dir
        .trim_start_matches('/')
        .to_owned();
    for (kind, programs) in &staged {
        for p in programs {
            let dest = match kind {
                ComponentKind::Containerd | ComponentKind::Crictl => format!("usr/bin/{}", p.name),
                ComponentKind::Runc => "usr/sbin/runc".to_owned(),
                ComponentKind::CniPlugins => format!("{cni_dir}/{}", p.name),
            };
            let shown = format!(
                "{} ({}, from {})",
                dest,
                arch,
                artifact_name(&artifacts, *kind)
            );
            let linkage = elf::inspect(&p.path, &shown, arch)?;
            let asset = artifact_name(&artifacts, *kind);
            let origin = match asset == p.entry {
                true => asset.to_owned(),
                false => format!("{asset}:{}", p.entry),
            };
            let source = Source::Staged {
                path: p.path.clone(),
                origin,
            };
            let node = tree.add_file(&dest, 0o755, source, p.size)?;
            node.elf = Some(linkage);
        }
    }

    let ctx = TemplateContext::new(stack, arch, &tree)?;
    let doc = format!("usr/share/doc/{}", stack.package.name);
    tree.add_inline(
        "lib/systemd/system/containerd.service",
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
        staging,
    })
}

/// Writes a prepared package into `opts.out_dir`.
fn write_package(
    prepared: PreparedPackage,
    opts: &BuildOptions,
    threads: u32,
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
        staging,
    } = prepared;
    let writer = DebWriter {
        compression: opts.compression,
        level: opts.level,
        threads,
        mtime,
    };
    fs::create_dir_all(&opts.out_dir).at(&opts.out_dir)?;
    let final_path = opts.out_dir.join(&file_name);

    listener.event(Event::Step(format!("compressing {file_name}")));
    let data_tmp = tempfile::Builder::new()
        .prefix(".data-")
        .tempfile_in(staging.path())
        .at(staging.path())?;
    let data_path = data_tmp.path().to_owned();
    let mut data = writer.write_data(&tree, data_tmp.reopen().at(&data_path)?, &data_path)?;
    let conffiles = tree.conffiles();
    let control_member = writer.write_control(
        &ControlFiles {
            control: &control,
            conffiles: &conffiles,
            scripts: &scripts,
            extra: &extra,
        },
        &data.md5sums,
    )?;

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
    drop(data_tmp);
    drop(staging);

    let size = fs::metadata(&final_path).at(&final_path)?.len();
    Ok(BuiltDeb {
        arch,
        sha256: hash_file(&final_path)?,
        path: final_path,
        size,
        tree,
    })
}

fn artifact_name(artifacts: &[Artifact], kind: ComponentKind) -> &str {
    artifacts
        .iter()
        .find(|a| a.component == kind)
        .map_or("?", |a| a.file_name.as_str())
}

/// Renders the one template `name` (a file of `debian-templates/` without `.hbs`) as the
/// package of `stack` for `arch` with the files of `tree` would carry it, for tests that
/// check a template on its own (maintainer scripts under shellcheck, say).
pub fn render_template(stack: &Stack, arch: DebArch, tree: &FhsTree, name: &str) -> Result<String> {
    Renderer::new()?.render(name, &TemplateContext::new(stack, arch, tree)?)
}

/// A control paragraph has no blank lines; the template's conditional lines may leave some.
fn control_paragraph(rendered: &str) -> String {
    let mut out: String = rendered
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone, Serialize)]
struct ComponentCtx {
    version: String,
}

/// What the templates see. Every field is always present (strict mode); optional
/// components are `null`.
#[derive(Debug, Clone, Serialize)]
struct TemplateContext {
    package: String,
    version: String,
    arch: DebArch,
    maintainer: String,
    installed_size: u64,
    depends: String,
    conflicts: String,
    replaces: String,
    provides: String,
    containerd: ComponentCtx,
    runc: ComponentCtx,
    cni_plugins: Option<ComponentCtx>,
    crictl: Option<ComponentCtx>,
    cni_bin_dir: String,
    cni_bin_dir_rel: String,
    cni_in_opt: bool,
    cni_bin_files: String,
    cni_programs: Vec<String>,
    static_programs: Vec<String>,
    unowned_dirs: String,
    date: String,
    systemd_cgroup: bool,
    sandbox_image: String,
}

impl TemplateContext {
    fn new(stack: &Stack, arch: DebArch, tree: &FhsTree) -> Result<TemplateContext> {
        let version_of = |k: ComponentKind| {
            // A component is in the package only if it was pinned for this arch and shipped.
            let c = stack.component(k)?;
            let shipped = match k {
                ComponentKind::CniPlugins => {
                    let dir = format!("{}/", stack.settings.cni_bin_dir.trim_start_matches('/'));
                    tree.files().any(|(p, _)| p.starts_with(&dir))
                }
                ComponentKind::Crictl => tree.entries.contains_key("usr/bin/crictl"),
                _ => true,
            };
            shipped.then(|| ComponentCtx {
                version: c.version.clone(),
            })
        };
        let containerd = version_of(ComponentKind::Containerd).expect("required");
        let runc = version_of(ComponentKind::Runc).expect("required");
        let cni_plugins = version_of(ComponentKind::CniPlugins);
        let crictl = version_of(ComponentKind::Crictl);

        let programs: Vec<(&str, &Linkage)> = tree
            .files()
            .filter_map(|(p, f)| f.elf.as_ref().map(|l| (p, l)))
            .collect();
        let depends = elf::depends(programs.iter().copied())?.join(", ");
        let static_programs = programs
            .iter()
            .filter(|(_, l)| **l == Linkage::Static)
            .map(|(p, _)| (*p).to_owned())
            .collect();

        let upstream = stack.upstream_version();
        let mut conflicts = vec![
            "containerd".to_owned(),
            "containerd.io".to_owned(),
            "runc".to_owned(),
        ];
        let mut provides = vec![
            format!("containerd (= {upstream})"),
            format!("runc (= {})", runc.version.replace('-', "~")),
        ];
        if let Some(c) = &cni_plugins {
            conflicts.push("kubernetes-cni".into());
            provides.push(format!(
                "kubernetes-cni (= {})",
                c.version.replace('-', "~")
            ));
        }
        if let Some(c) = &crictl {
            conflicts.push("cri-tools".into());
            provides.push(format!("cri-tools (= {})", c.version.replace('-', "~")));
        }
        let cni_bin_dir_rel = stack
            .settings
            .cni_bin_dir
            .trim_start_matches('/')
            .to_owned();
        let cni_programs: Vec<String> = tree
            .files()
            .filter(|(p, _)| p.starts_with(&format!("{cni_bin_dir_rel}/")))
            .map(|(p, _)| p.to_owned())
            .collect();
        Ok(TemplateContext {
            package: stack.package.name.clone(),
            version: stack.deb_version(),
            arch,
            maintainer: stack.package.maintainer.clone(),
            installed_size: 0,
            depends,
            replaces: conflicts.join(", "),
            conflicts: conflicts.join(", "),
            provides: provides.join(", "),
            containerd,
            runc,
            cni_in_opt: cni_bin_dir_rel.starts_with("opt/"),
            cni_bin_files: format!("{cni_bin_dir_rel}/*"),
            cni_bin_dir: stack.settings.cni_bin_dir.clone(),
            cni_bin_dir_rel,
            cni_programs,
            cni_plugins,
            crictl,
            static_programs,
            unowned_dirs: tree.unowned_parents().join(" "),
            date: String::new(),
            systemd_cgroup: stack.settings.systemd_cgroup,
            sandbox_image: stack.settings.sandbox_image.clone(),
        })
    }
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

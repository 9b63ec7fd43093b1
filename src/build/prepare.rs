//! Deciding a package, before a byte of it is written: the assets' analysis (cached by
//! their hashes), the tree of every installed file with its mode, hashes and source, the
//! rendered files, the SBOM, scripts and control file, the data tar's parts and blocks, the keys of
//! what the build cache may hold for it, and then what of it the cache already holds: the
//! package, or which blocks of the data member. `--dry-run` shows the first half.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::arch::DebArch;
use crate::artifact::{Artifact, GITHUB};
use crate::cache::{Blob, BuildCache};
use crate::context::{control_paragraph, TemplateContext};
use crate::deb::compress::{gzip_bytes, Compression};
use crate::deb::data::{BlockRef, DataLayout, PartKind};
use crate::deb::read::parse_paragraph;
use crate::deb::{ControlFiles, DebWriter};
use crate::error::{Error, IoContext, Result};
use crate::fetch::Fetcher;
use crate::hash::{self, Hashes, Sha256, Sha256Hasher};
use crate::layout::{FhsTree, FileNode, Node, Source};
use crate::listener::{Event, Listener};
use crate::render::{rfc2822, Renderer};
use crate::sbom::{self, FileType, Generated, SbomInput, SBOM_PATH};
use crate::stack::{ComponentKind, Stack};
use crate::upload::{self, ChangelogEntry};

use super::analysis::{analyse, Analysis};
use super::staging::Staging;
use super::{artifacts, BuildOptions, CACHE_SCHEMA, CONTROL_EXTRAS, MAINTAINER_SCRIPTS};

/// A file rendered from a template into the data tree.
struct Rendered {
    template: &'static str,
    /// Where it is installed, relative to `/`; `{package}` is the package's name.
    path: &'static str,
    /// When it is shipped.
    when: When,
    /// Stored gzipped (without a timestamp), under `path`.
    gzip: bool,
    /// What the SBOM calls it.
    file_type: FileType,
}

/// When a rendered file is shipped.
#[derive(Clone, Copy)]
enum When {
    Always,
    /// With this component.
    With(ComponentKind),
    /// When `settings.kernel_prerequisites` is on.
    KernelPrerequisites,
}

/// Every rendered file of the data tree. The SBOM ([`SBOM_PATH`]) is added after these,
/// since it lists them. The maintainer scripts and control files are
/// [`MAINTAINER_SCRIPTS`] and [`CONTROL_EXTRAS`]; an empty lintian-overrides is left out.
const RENDERED: &[Rendered] = &[
    Rendered {
        template: "containerd.service",
        path: "usr/lib/systemd/system/containerd.service",
        when: When::Always,
        file_type: FileType::Text,
        gzip: false,
    },
    Rendered {
        template: "crictl.yaml",
        path: "etc/crictl.yaml",
        when: When::With(ComponentKind::Crictl),
        file_type: FileType::Text,
        gzip: false,
    },
    Rendered {
        template: "10-containerd-net.conflist",
        path: "etc/cni/net.d/10-containerd-net.conflist",
        when: When::With(ComponentKind::CniPlugins),
        file_type: FileType::Text,
        gzip: false,
    },
    Rendered {
        template: "copyright",
        path: "usr/share/doc/{package}/copyright",
        when: When::Always,
        file_type: FileType::Documentation,
        gzip: false,
    },
    Rendered {
        template: "changelog",
        path: "usr/share/doc/{package}/changelog.Debian.gz",
        when: When::Always,
        file_type: FileType::Documentation,
        gzip: true,
    },
    Rendered {
        template: "modules-load.conf",
        path: "usr/lib/modules-load.d/{package}.conf",
        when: When::KernelPrerequisites,
        file_type: FileType::Text,
        gzip: false,
    },
    Rendered {
        template: "sysctl.conf",
        path: "usr/lib/sysctl.d/99-{package}.conf",
        when: When::KernelPrerequisites,
        file_type: FileType::Text,
        gzip: false,
    },
    Rendered {
        template: "lintian-overrides",
        path: "usr/share/lintian/overrides/{package}",
        when: When::Always,
        file_type: FileType::Text,
        gzip: false,
    },
];

/// A package ready to be written: its tree, control file and scripts, all decided. This is
/// what `--dry-run` shows.
#[derive(Debug, Serialize)]
pub struct PreparedPackage {
    pub arch: DebArch,
    pub file_name: String,
    pub control: String,
    pub mtime: u64,
    pub tree: FhsTree,
    /// The data tar's parts and their blocks.
    pub data: DataLayout,
    #[serde(skip)]
    pub scripts: Vec<(String, String)>,
    #[serde(skip)]
    pub extra: Vec<(String, String)>,
    #[serde(skip)]
    pub(crate) inputs: Inputs,
}

/// What writing the package needs besides what it shows.
#[derive(Debug)]
pub(crate) struct Inputs {
    pub(crate) artifacts: Vec<Artifact>,
    /// Holds the staged upstream files the tree points at.
    pub(crate) staging: Staging,
    /// The compressed control member: small, and part of the package's key.
    pub(crate) control_member: Vec<u8>,
    /// The changelog's entry, and what the upload's `.changes` and `.buildinfo` say of
    /// the package.
    pub(crate) changelog: ChangelogEntry,
    pub(crate) binary: upload::Binary,
    /// The SBOM's file name beside the package, and its bytes (also shipped in the tree).
    pub(crate) sbom_file_name: String,
    pub(crate) sbom: Vec<u8>,
    /// The build cache's key of the finished package.
    pub(crate) package_key: String,
    /// For each part of [`PreparedPackage::data`] made of staged files, the key of the
    /// record of its blocks' hashes: with it, an unchanged part is found in the cache
    /// without staging anything.
    pub(crate) part_keys: Vec<Option<String>>,
}

/// What the build cache already holds of a prepared package.
pub(crate) enum Reusable {
    /// The package in `--out` is the one these inputs make, proven by its hash.
    Package(Hashes),
    /// The data member's frames in tar order, each found in the cache or to be compressed;
    /// the staged files the latter need are in place.
    Frames(Vec<PlannedFrame>),
}

/// A run of the data tar's blocks compressed as one (see
/// [`Compression::frame_per_block`]).
pub(crate) struct PlannedFrame {
    /// Its blocks, each with the hash of its bytes when that is known without reading them
    /// (a part never seen before has none yet).
    pub(crate) blocks: Vec<(BlockRef, Option<Sha256>)>,
    /// The frame, when the cache holds it (verified).
    pub(crate) cached: Option<Blob>,
}

/// The hashes of a part's blocks, by the part's key.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PartRecord {
    pub(crate) blocks: Vec<String>,
}

/// The writer every member of the package is made with; `threads` changes speed only.
pub(crate) fn deb_writer(opts: &BuildOptions, mtime: u64, threads: u32) -> DebWriter {
    DebWriter {
        compression: opts.compression,
        level: opts.level,
        threads,
        mtime,
    }
}

pub(crate) fn prepare(
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
    let analysis_key = hash::key(&key_parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let analysis = match cache.record::<Analysis>("analysis", &analysis_key) {
        Some(a) => a,
        None => {
            let cni_bin_dir = &stack.settings.cni_bin_dir;
            let a = analyse(arch, &artifacts, cni_bin_dir, &staging, fetcher, listener)?;
            cache.store_record("analysis", &analysis_key, &a)?;
            a
        }
    };
    let mtime = opts.source_date_epoch.or(analysis.mtime).unwrap_or(0);

    let mut tree = FhsTree::default();
    for p in &analysis.programs {
        let node = FileNode {
            mode: 0o755,
            size: p.size,
            md5: p.md5.clone(),
            sha1: p.sha1.clone(),
            sha256: p.sha256.clone(),
            source: Source::Staged {
                path: staging.path().join(&p.staged),
                origin: p.origin.clone(),
                component: p.component,
            },
            elf: Some(p.elf.clone()),
        };
        tree.add_file(&p.dest, node)?;
    }

    let shipped: Vec<ComponentKind> = artifacts.iter().map(|a| a.component).collect();
    let ctx = TemplateContext::new(stack, arch, &tree, &shipped)?;
    let dated = TemplateContext {
        date: rfc2822(mtime),
        ..ctx.clone()
    };
    let mut generated = BTreeMap::new();
    let mut changelog = None;
    for r in RENDERED {
        let shipped_here = match r.when {
            When::Always => true,
            When::With(c) => shipped.contains(&c),
            When::KernelPrerequisites => stack.settings.kernel_prerequisites,
        };
        if !shipped_here {
            continue;
        }
        let text = renderer.render(r.template, &dated)?;
        if r.template == "lintian-overrides" && text.trim().is_empty() {
            continue;
        }
        if r.template == "changelog" {
            changelog = Some(changelog_entry(stack, renderer, &text)?);
        }
        let bytes = match r.gzip {
            true => gzip_bytes(text.as_bytes()),
            false => text.into_bytes(),
        };
        let path = r.path.replace("{package}", &stack.package.name);
        tree.add_inline(&path, 0o644, bytes)?;
        generated.insert(
            path,
            Generated {
                template: r.template,
                file_type: r.file_type,
            },
        );
    }
    let base_name = format!(
        "{}_{}_{}",
        stack.package.name,
        stack.deb_version().replace(':', "%3a"),
        arch
    );
    let file_name = format!("{base_name}.deb");
    let sbom_path = SBOM_PATH.replace("{package}", &stack.package.name);
    let sbom = sbom::document(&SbomInput {
        package: &stack.package.name,
        version: &stack.deb_version(),
        arch,
        maintainer: &stack.package.maintainer,
        deb_file_name: &file_name,
        mtime,
        artifacts: &artifacts,
        tree: &tree,
        generated: &generated,
        path: &sbom_path,
    });
    tree.add_inline(&sbom_path, 0o644, sbom.clone())?;

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

    let fields = parse_paragraph(&control);
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let binary = upload::Binary {
        arch,
        file_name: file_name.clone(),
        section: field("Section"),
        priority: field("Priority"),
        summary: field("Description")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        upstream: artifacts
            .iter()
            .map(|a| (format!("{GITHUB}{}", a.path), a.sha256.to_string()))
            .collect(),
    };
    let writer = deb_writer(opts, mtime, 1);
    let control_member = writer.write_control(
        &ControlFiles {
            control: &control,
            conffiles: &tree.conffiles(),
            scripts: &scripts,
            extra: &extra,
        },
        &tree.md5sums(),
    )?;
    let data = DataLayout::new(&tree, mtime);
    let part_keys = data
        .parts
        .iter()
        .map(|part| {
            let PartKind::Component(c) = part.kind else {
                return None;
            };
            let a = artifacts.iter().find(|a| a.component == c)?;
            Some(hash::key(&[
                CACHE_SCHEMA.as_bytes(),
                format!("{}\0{}\0{}", a.component, a.file_name, a.sha256).as_bytes(),
                &part.identity,
            ]))
        })
        .collect();
    let data_key = data_key(&analysis_key, &tree, &writer);
    let signer = opts
        .signer
        .as_ref()
        .map(|s| s.fingerprint())
        .unwrap_or_default();
    let package_key = hash::key(&[
        data_key.as_bytes(),
        &control_member,
        renderer.fingerprint().as_bytes(),
        signer.as_bytes(),
    ]);
    Ok(PreparedPackage {
        arch,
        file_name,
        control,
        mtime,
        tree,
        data,
        scripts,
        extra,
        inputs: Inputs {
            artifacts,
            staging,
            control_member,
            changelog: changelog.expect("the changelog is always rendered"),
            binary,
            sbom_file_name: format!("{base_name}.spdx.json"),
            sbom,
            package_key,
            part_keys,
        },
    })
}

/// The changelog's first entry, which must be this package's: the `.changes` takes its
/// distribution, urgency and text from it, as dpkg-genchanges does.
fn changelog_entry(stack: &Stack, renderer: &Renderer, text: &str) -> Result<ChangelogEntry> {
    let bad = |message: String| Error::Template {
        template: renderer.shown("changelog"),
        message,
    };
    let entry = ChangelogEntry::parse(text).map_err(bad)?;
    let version = stack.deb_version();
    if entry.package != stack.package.name || entry.version != version {
        return Err(bad(format!(
            "the entry is for {} ({}), but the package is {} ({version})",
            entry.package, entry.version, stack.package.name
        )));
    }
    Ok(entry)
}

/// What of `prepared` the cache holds. When some blocks must be compressed, the assets
/// whose files they hold are staged for it (an analysis from the cache staged nothing).
pub(crate) fn reusable(
    prepared: &PreparedPackage,
    opts: &BuildOptions,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<Reusable> {
    let cache = BuildCache::new(fetcher.cache_dir());
    let inputs = &prepared.inputs;
    let out = opts.out_dir.join(&prepared.file_name);
    if let Some(recorded) = cache.record::<String>("packages", &inputs.package_key) {
        if out.exists() {
            let hashes = Hashes::of_file(&out)?;
            if hashes.sha256.as_str() == recorded {
                listener.event(Event::Step(format!("{} is up to date", prepared.file_name)));
                return Ok(Reusable::Package(hashes));
            }
        }
    }
    let data = &prepared.data;
    let blocks = data.blocks();
    // Each block's hash: from its bytes when they are in memory, from its part's record when
    // its part is made of staged files.
    let mut hashes: Vec<Option<Sha256>> = Vec::with_capacity(blocks.len());
    for (i, part) in data.parts.iter().enumerate() {
        let of_part = blocks.iter().filter(|b| b.part == i);
        match &inputs.part_keys[i] {
            None if !part.is_staged() => {
                for &b in of_part {
                    hashes.push(Some(block_sha256(data, b, &prepared.file_name)?));
                }
            }
            key => {
                let recorded: Vec<Sha256> = key
                    .as_ref()
                    .and_then(|k| cache.record::<PartRecord>("parts", k))
                    .map(|r| r.blocks.iter().filter_map(|h| Sha256::parse(h)).collect())
                    .filter(|h: &Vec<Sha256>| h.len() == part.blocks.len())
                    .unwrap_or_default();
                let mut recorded = recorded.into_iter();
                hashes.extend(of_part.map(|_| recorded.next()));
            }
        }
    }
    let kind = frame_kind(opts.compression);
    let mut planned = Vec::new();
    let mut to_stage = Vec::new();
    // Frames run over the blocks in order.
    let mut hashes = hashes.into_iter();
    for frame in data.frames(opts.compression.frame_per_block()) {
        let blocks: Vec<(BlockRef, Option<Sha256>)> = frame
            .iter()
            .map(|&b| (b, hashes.next().flatten()))
            .collect();
        let known: Option<Vec<Sha256>> = blocks.iter().map(|(_, h)| h.clone()).collect();
        let cached = match known {
            Some(known) => cache.blob(&kind, &frame_key(opts, &known))?,
            None => None,
        };
        if cached.is_none() {
            for part in frame.iter().map(|b| &data.parts[b.part]) {
                if let (true, PartKind::Component(c)) = (part.is_staged(), part.kind) {
                    to_stage.extend(
                        inputs
                            .artifacts
                            .iter()
                            .filter(|a| a.component == c)
                            .cloned(),
                    );
                }
            }
        }
        planned.push(PlannedFrame { blocks, cached });
    }
    to_stage.sort_by_key(|a| a.component);
    to_stage.dedup_by_key(|a| a.component);
    inputs.staging.ensure(&to_stage, fetcher, listener)?;
    Ok(Reusable::Frames(planned))
}

/// The sha256 of a block's bytes.
pub(crate) fn block_sha256(data: &DataLayout, block: BlockRef, package: &str) -> Result<Sha256> {
    let mut hash = Sha256Hasher::default();
    let mut reader = data.reader(block);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf).at(block_shown(data, block, package))?;
        if n == 0 {
            return Ok(hash.finish());
        }
        hash.update(&buf[..n]);
    }
}

/// How errors name a block: the package and the part.
pub(crate) fn block_shown(data: &DataLayout, block: BlockRef, package: &str) -> std::path::PathBuf {
    format!(
        "{package}: data.tar, {} part",
        data.parts[block.part].kind.name()
    )
    .into()
}

/// The build cache's directory of frames compressed like `compression`.
pub(crate) fn frame_kind(compression: Compression) -> String {
    format!("frames-{}", compression.extension())
}

/// The key of a compressed frame: the hashes of its blocks' bytes, how it is compressed and
/// by which encoder.
pub(crate) fn frame_key(opts: &BuildOptions, blocks: &[Sha256]) -> String {
    let mut parts: Vec<&[u8]> = vec![
        CACHE_SCHEMA.as_bytes(),
        opts.compression.extension().as_bytes(),
    ];
    let level = opts.level.to_le_bytes();
    let encoder = opts.compression.encoder();
    parts.extend([&level[..], encoder.as_bytes()]);
    parts.extend(blocks.iter().map(|h| h.as_str().as_bytes()));
    hash::key(&parts)
}

/// The key of a data member: the assets' analysis plus every path, mode and md5 of the tree,
/// the one mtime, and how it is compressed (by which encoder).
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
    hash::key(&[
        CACHE_SCHEMA.as_bytes(),
        analysis_key.as_bytes(),
        listing.as_bytes(),
        &writer.mtime.to_le_bytes(),
        writer.compression.extension().as_bytes(),
        &writer.level.to_le_bytes(),
        writer.compression.encoder().as_bytes(),
    ])
}

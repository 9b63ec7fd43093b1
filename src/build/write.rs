//! Writing a prepared package: compressing the data member when the cache does not hold it,
//! then the ar archive and the SBOM beside it, and once every architecture is written, the
//! upload's `.buildinfo` and `.changes`. Each file is written whole but nameless and named
//! only when the whole build has succeeded, so `--out` never holds a partial file and a
//! failed build leaves nothing new there. Nothing is decided here.

use std::fs;
use std::io::Seek;
use std::path::{Path, PathBuf};

use crate::atomic::AtomicFile;
use crate::cache::BuildCache;
use crate::deb::DataMember;
use crate::error::{IoContext, Result};
use crate::fetch::Fetcher;
use crate::hash::Hashes;
use crate::listener::{Event, Listener, Stage};
use crate::sign::Signer;
use crate::stack::Stack;
use crate::upload::{self, Binary, ChangelogEntry, Upload};

use super::prepare::{data_member_kind, deb_writer, PreparedPackage, Reusable};
use super::{BuildOptions, Built, BuiltDeb, Reuse};

/// A file written whole, still without its name.
pub(crate) struct Pending {
    file: AtomicFile,
    dest: PathBuf,
}

impl Pending {
    /// `bytes` to become `dir/name`; nothing when that file already holds them, so that a
    /// rebuild with nothing changed touches nothing.
    fn unless_there(dir: &Path, name: &str, bytes: &[u8]) -> Result<Option<Pending>> {
        use std::io::Write;
        let dest = dir.join(name);
        if fs::read(&dest).is_ok_and(|there| there == bytes) {
            return Ok(None);
        }
        let mut file = AtomicFile::new_in(dir, 0o644)?;
        file.file().write_all(bytes).at(&dest)?;
        Ok(Some(Pending { file, dest }))
    }
}

/// The package to assemble from its data member, or the one `--out` already holds.
enum Member {
    Assemble(DataMember),
    Kept(Hashes),
}

/// One architecture's package, written but not yet named.
pub(crate) struct Written {
    deb: BuiltDeb,
    /// What the `.changes` and `.buildinfo` say of it, with its hashes.
    binary: (Binary, Hashes),
    changelog: ChangelogEntry,
    mtime: u64,
    /// The package (unless `--out` already holds it) and its SBOM.
    pending: Vec<Pending>,
}

pub(crate) fn write_package(
    prepared: PreparedPackage,
    reusable: Reusable,
    opts: &BuildOptions,
    threads: u32,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<Written> {
    let PreparedPackage {
        arch,
        file_name,
        mtime,
        tree,
        inputs,
        ..
    } = prepared;
    fs::create_dir_all(&opts.out_dir).at(&opts.out_dir)?;
    let final_path = opts.out_dir.join(&file_name);
    let cache = BuildCache::new(fetcher.cache_dir());
    let writer = deb_writer(opts, mtime, threads);
    let member_kind = data_member_kind(opts);
    let mut pending = Vec::new();
    let (data, reuse) = match reusable {
        Reusable::Package(hashes) => (Member::Kept(hashes), Reuse::Package),
        Reusable::DataMember(blob) => {
            let file = fs::File::open(&blob.path).at(&blob.path)?;
            let size = blob.size;
            (
                Member::Assemble(DataMember { file, size }),
                Reuse::DataMember,
            )
        }
        Reusable::Nothing => {
            listener.event(Event::Began {
                stage: Stage::Compress,
                name: file_name.clone(),
            });
            let mut blob = cache.new_blob(&member_kind)?;
            let shown = PathBuf::from(&member_kind);
            let member = writer.write_data(&tree, blob.file(), &shown, &mut |done, total| {
                listener.event(Event::Progress {
                    stage: Stage::Compress,
                    name: file_name.clone(),
                    done,
                    total,
                })
            })?;
            listener.event(Event::Ended {
                stage: Stage::Compress,
                name: file_name.clone(),
            });
            let (file, _) = cache.store_blob(&member_kind, &inputs.data_key, blob, member.size)?;
            let size = member.size;
            (Member::Assemble(DataMember { file, size }), Reuse::Nothing)
        }
    };
    // The staged files are no longer needed: let the next build of this machine have the
    // space while the archive is assembled.
    drop(inputs.staging);
    let hashes = match data {
        Member::Kept(hashes) => hashes,
        Member::Assemble(mut data) => {
            let mut out = AtomicFile::new_in(&opts.out_dir, 0o644)?;
            writer.assemble(
                &inputs.control_member,
                &mut data,
                opts.signer.as_deref(),
                std::io::BufWriter::new(out.file()),
                &final_path,
            )?;
            out.file().rewind().at(&final_path)?;
            let hashes = Hashes::of_reader(&mut *out.file()).at(&final_path)?;
            // Recorded before the package is named: a record whose package never reaches
            // `--out` is harmless, since reuse needs the file there to have this hash.
            cache.store_record("packages", &inputs.package_key, &hashes.sha256.to_string())?;
            pending.push(Pending {
                file: out,
                dest: final_path.clone(),
            });
            hashes
        }
    };
    pending.extend(Pending::unless_there(
        &opts.out_dir,
        &inputs.sbom_file_name,
        &inputs.sbom,
    )?);

    Ok(Written {
        deb: BuiltDeb {
            arch,
            path: final_path,
            size: hashes.size,
            sha256: hashes.sha256.clone(),
            md5: hashes.md5.clone(),
            sha1: hashes.sha1.clone(),
            sbom: opts.out_dir.join(&inputs.sbom_file_name),
            tree,
            reuse,
        },
        binary: (inputs.binary, hashes.clone()),
        changelog: inputs.changelog,
        mtime,
        pending,
    })
}

/// Writes the upload's `.buildinfo` and `.changes` over every package of `written` (in
/// architecture order), then names every file of the build: the packages and their SBOMs
/// first, the `.changes` that lists them last.
pub(crate) fn finish(stack: &Stack, opts: &BuildOptions, written: Vec<Written>) -> Result<Built> {
    let binaries: Vec<(Binary, Hashes)> = written.iter().map(|w| w.binary.clone()).collect();
    let arches: Vec<_> = binaries.iter().map(|(b, _)| b.arch).collect();
    let version = stack.deb_version();
    let base = upload::base_name(&stack.package.name, &version, &arches);
    let mtime = written.iter().map(|w| w.mtime).max().unwrap_or(0);
    let upload = Upload {
        package: &stack.package.name,
        version: &version,
        maintainer: &stack.package.maintainer,
        binaries: &binaries,
        // Every architecture renders the same entry, but for the optional components one
        // of them leaves out: the first one's speaks for the upload.
        changelog: &written[0].changelog,
        mtime,
        source_date_epoch: opts.source_date_epoch,
        build_arch: upload::build_architecture(),
    };
    let sign = |text: String| -> Result<String> {
        match &opts.signer {
            Some(s) => Signer::clearsign(&[s.as_ref()], &text, mtime),
            None => Ok(text),
        }
    };
    let buildinfo_name = format!("{base}.buildinfo");
    let buildinfo = sign(upload.buildinfo())?;
    let buildinfo_hashes = Hashes::of_reader(buildinfo.as_bytes()).at(&buildinfo_name)?;
    let changes_name = format!("{base}.changes");
    let changes = sign(upload.changes((&buildinfo_name, &buildinfo_hashes)))?;

    let mut pending = Vec::new();
    let mut debs = Vec::new();
    for w in written {
        pending.extend(w.pending);
        debs.push(w.deb);
    }
    let out = &opts.out_dir;
    pending.extend(Pending::unless_there(
        out,
        &buildinfo_name,
        buildinfo.as_bytes(),
    )?);
    pending.extend(Pending::unless_there(
        out,
        &changes_name,
        changes.as_bytes(),
    )?);
    for p in pending {
        p.file.persist(&p.dest)?;
    }
    Ok(Built {
        debs,
        buildinfo: out.join(buildinfo_name),
        changes: out.join(changes_name),
    })
}

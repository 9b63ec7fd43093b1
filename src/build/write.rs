//! Writing a prepared package: compressing the frames of the data member the cache does not
//! hold — for xz and gzip one per block, on a pool of threads, each with a one-threaded
//! encoder — each stored in the cache as soon as it is done; then the ar archive, streamed
//! from the cached frames, and the SBOM beside it; and once every architecture is written,
//! the upload's `.buildinfo` and `.changes`. Each file is written whole but nameless and
//! named only when the whole build has succeeded, so `--out` never holds a partial file and
//! a failed build leaves nothing new there. Nothing is decided here.

use std::fs;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::atomic::AtomicFile;
use crate::cache::{Blob, BuildCache};
use crate::deb::data::{BlockRef, DataLayout};
use crate::deb::{DataMember, Piece};
use crate::error::{Error, IoContext, Result};
use crate::fetch::Fetcher;
use crate::hash::{Hashes, Sha256};
use crate::listener::{Event, Listener, Stage};
use crate::sign::Signer;
use crate::stack::Stack;
use crate::upload::{self, Binary, ChangelogEntry, Upload};

use super::prepare::{
    block_sha256, block_shown, deb_writer, frame_key, frame_kind, PartRecord, PlannedFrame,
    PreparedPackage, Reusable,
};
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
        data,
        inputs,
        ..
    } = prepared;
    fs::create_dir_all(&opts.out_dir).at(&opts.out_dir)?;
    let final_path = opts.out_dir.join(&file_name);
    let cache = BuildCache::new(fetcher.cache_dir());
    let writer = deb_writer(opts, mtime, threads);
    let planned = match reusable {
        Reusable::Package(hashes) => {
            let mut pending = Vec::new();
            pending.extend(Pending::unless_there(
                &opts.out_dir,
                &inputs.sbom_file_name,
                &inputs.sbom,
            )?);
            return Ok(Written {
                deb: BuiltDeb {
                    arch,
                    size: hashes.size,
                    sha256: hashes.sha256.clone(),
                    md5: hashes.md5.clone(),
                    sha1: hashes.sha1.clone(),
                    sbom: opts.out_dir.join(&inputs.sbom_file_name),
                    path: final_path,
                    tree,
                    reuse: Reuse::Package,
                    compressed: 0,
                },
                binary: (inputs.binary, hashes),
                changelog: inputs.changelog,
                mtime,
                pending,
            });
        }
        Reusable::Frames(planned) => planned,
    };
    let frames = Frames {
        data: &data,
        opts,
        cache: &cache,
        package: &file_name,
        listener,
    };
    let resolved = frames.resolve(planned, threads)?;
    // A part seen for the first time: record its blocks' hashes, so that the next build
    // finds its frames without staging it.
    for (i, key) in inputs.part_keys.iter().enumerate() {
        let Some(key) = key else { continue };
        let blocks = resolved.iter().flat_map(|f| &f.blocks);
        if !resolved
            .iter()
            .any(|f| f.hashed && f.blocks.iter().any(|b| b.0.part == i))
        {
            continue;
        }
        let hashes = blocks
            .filter(|b| b.0.part == i)
            .map(|b| b.1.to_string())
            .collect();
        cache.store_record("parts", key, &PartRecord { blocks: hashes })?;
    }
    // The staged files are no longer needed: let the next build of this machine have the
    // space while the archive is assembled.
    drop(inputs.staging);

    let compressed: u64 = resolved
        .iter()
        .filter(|f| f.compressed)
        .map(|f| f.tar_len())
        .sum();
    let reuse = match resolved.iter().filter(|f| f.compressed).count() {
        0 => Reuse::DataMember,
        n if n == resolved.len() => Reuse::Nothing,
        _ => Reuse::Blocks,
    };
    let pieces = resolved
        .into_iter()
        .map(|f| {
            let tar_len = f.tar_len();
            let len = f.blob.size;
            (
                Piece::File {
                    file: f.blob.file,
                    len,
                },
                tar_len,
            )
        })
        .collect();
    let member = DataMember::new(opts.compression, pieces).map_err(|e| Error::Io {
        path: fetcher
            .cache_dir()
            .join("builds")
            .join(frame_kind(opts.compression)),
        source: e,
    })?;

    // Nameless in `out` until the whole build is done, then linked into place: `out`
    // never holds a partial package, whatever fails or is killed.
    let mut out = AtomicFile::new_in(&opts.out_dir, 0o644)?;
    writer.assemble(
        &inputs.control_member,
        &member,
        opts.signer.as_deref(),
        std::io::BufWriter::new(out.file()),
        &final_path,
    )?;
    out.file().rewind().at(&final_path)?;
    let hashes = Hashes::of_reader(&mut *out.file()).at(&final_path)?;
    // Recorded before the package is named: a record whose package never reaches `--out`
    // is harmless, since reuse needs the file there to have this hash.
    cache.store_record("packages", &inputs.package_key, &hashes.sha256.to_string())?;
    let mut pending = vec![Pending {
        file: out,
        dest: final_path.clone(),
    }];
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
            compressed,
        },
        binary: (inputs.binary, hashes),
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

/// A frame of the data member, in the cache.
struct Resolved {
    /// Its blocks with the hashes of their bytes.
    blocks: Vec<(BlockRef, Sha256)>,
    blob: Blob,
    /// Compressed by this build, not found in the cache.
    compressed: bool,
    /// Some of its blocks' hashes were taken by this build: their part had no record.
    hashed: bool,
}

impl Resolved {
    fn tar_len(&self) -> u64 {
        self.blocks.iter().map(|b| b.0.len).sum()
    }
}

/// What compressing a package's frames needs.
struct Frames<'a> {
    data: &'a DataLayout,
    opts: &'a BuildOptions,
    cache: &'a BuildCache,
    package: &'a str,
    listener: &'a dyn Listener,
}

impl Frames<'_> {
    /// Every planned frame, found in the cache or compressed into it, in tar order. Frames
    /// are compressed largest first on up to `threads` threads, so they end together; the
    /// one frame of a zstd member has the threads to itself.
    fn resolve(&self, planned: Vec<PlannedFrame>, threads: u32) -> Result<Vec<Resolved>> {
        let progress = Progress::new(self);
        let mut slots: Vec<Mutex<Option<Resolved>>> = Vec::with_capacity(planned.len());
        let mut jobs = Vec::new();
        for (i, frame) in planned.into_iter().enumerate() {
            match frame.cached {
                Some(blob) => {
                    let blocks: Vec<(BlockRef, Sha256)> = frame
                        .blocks
                        .into_iter()
                        .map(|(b, h)| (b, h.expect("a cached frame's hashes are known")))
                        .collect();
                    let r = Resolved {
                        blocks,
                        blob,
                        compressed: false,
                        hashed: false,
                    };
                    progress.cached(r.tar_len());
                    slots.push(Mutex::new(Some(r)));
                }
                None => {
                    slots.push(Mutex::new(None));
                    jobs.push((i, frame.blocks));
                }
            }
        }
        if jobs.is_empty() {
            return Ok(slots
                .into_iter()
                .map(|s| s.into_inner().unwrap().expect("cached"))
                .collect());
        }
        let len =
            |blocks: &[(BlockRef, Option<Sha256>)]| blocks.iter().map(|b| b.0.len).sum::<u64>();
        jobs.sort_by_key(|(i, blocks)| (std::cmp::Reverse(len(blocks)), *i));
        let workers = (threads.max(1) as usize).min(jobs.len());
        let encoder_threads = match self.opts.compression.frame_per_block() {
            true => 1,
            false => threads,
        };
        self.listener.event(Event::Began {
            stage: Stage::Compress,
            name: self.package.to_owned(),
        });
        progress.report_now();
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let errors: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let Some((i, blocks)) = jobs.get(next.fetch_add(1, Ordering::Relaxed))
                        else {
                            break;
                        };
                        match self.compress(blocks, encoder_threads, &progress) {
                            Ok(r) => *slots[*i].lock().unwrap() = Some(r),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                errors.lock().unwrap().push((*i, e));
                            }
                        }
                    }
                });
            }
        });
        let mut errors = errors.into_inner().unwrap();
        errors.sort_by_key(|(i, _)| *i);
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e);
        }
        progress.report_now();
        self.listener.event(Event::Ended {
            stage: Stage::Compress,
            name: self.package.to_owned(),
        });
        Ok(slots
            .into_iter()
            .map(|s| s.into_inner().unwrap().expect("every job ran"))
            .collect())
    }

    /// One frame into the cache: the blocks of a part never seen are hashed first (the
    /// cache may hold the frame after all), then it is compressed unless it is there.
    fn compress(
        &self,
        planned: &[(BlockRef, Option<Sha256>)],
        threads: u32,
        progress: &Progress,
    ) -> Result<Resolved> {
        let kind = frame_kind(self.opts.compression);
        let hashed = planned.iter().any(|b| b.1.is_none());
        let mut hashes = Vec::with_capacity(planned.len());
        for (b, h) in planned {
            hashes.push(match h {
                Some(h) => h.clone(),
                None => block_sha256(self.data, *b, self.package)?,
            });
        }
        let key = frame_key(self.opts, &hashes);
        let blocks: Vec<BlockRef> = planned.iter().map(|b| b.0).collect();
        let with_hashes = || blocks.iter().copied().zip(hashes.iter().cloned()).collect();
        if hashed {
            if let Some(blob) = self.cache.blob(&kind, &key)? {
                let r = Resolved {
                    blocks: with_hashes(),
                    blob,
                    compressed: false,
                    hashed,
                };
                progress.add(r.tar_len());
                return Ok(r);
            }
        }
        let shown = block_shown(self.data, blocks[0], self.package);
        let lens: Vec<u64> = blocks.iter().map(|b| b.len).collect();
        let (bytes, found) = self
            .opts
            .compression
            .compress_frame(
                self.opts.level,
                threads,
                self.data.blocks_reader(&blocks),
                &lens,
                &mut |n| progress.add(n),
            )
            .at(&shown)?;
        if found != hashes {
            return Err(Error::Io {
                path: shown,
                source: std::io::Error::other(
                    "its bytes changed while it was compressed; did a staged file change during the build?",
                ),
            });
        }
        let blob = self.cache.store_blob(&kind, &key, &bytes)?;
        Ok(Resolved {
            blocks: with_hashes(),
            blob,
            compressed: true,
            hashed,
        })
    }
}

/// Bytes of the data tar done — compressed, or found in the cache — reported every
/// [`Progress::EVERY`] bytes, never backwards, from whichever thread gets there.
struct Progress<'a> {
    done: AtomicU64,
    reported: Mutex<u64>,
    total: u64,
    frames: &'a Frames<'a>,
}

impl<'a> Progress<'a> {
    const EVERY: u64 = 4 << 20;

    fn new(frames: &'a Frames<'a>) -> Progress<'a> {
        Progress {
            done: AtomicU64::new(0),
            reported: Mutex::new(0),
            total: frames.data.len(),
            frames,
        }
    }

    /// Counts `n` bytes found in the cache before compression begins; the first report
    /// shows them.
    fn cached(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let due = *self.reported.lock().unwrap() + Self::EVERY;
        if done >= due {
            self.report_now();
        }
    }

    fn report_now(&self) {
        let mut reported = self.reported.lock().unwrap();
        let done = self.done.load(Ordering::Relaxed);
        if done < *reported {
            return;
        }
        *reported = done;
        self.frames.listener.event(Event::Progress {
            stage: Stage::Compress,
            name: self.frames.package.to_owned(),
            done,
            total: self.total,
        });
    }
}

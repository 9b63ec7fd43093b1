//! Writing a prepared package: compressing the data member when the cache does not hold it,
//! then the ar archive, into `--out` whole or not at all. Nothing is decided here.

use std::fs;

use crate::atomic::AtomicFile;
use crate::cache::BuildCache;
use crate::deb::DataMember;
use crate::error::{IoContext, Result};
use crate::fetch::Fetcher;
use crate::hash::sha256_file;
use crate::listener::{Event, Listener, Stage};

use super::prepare::{data_member_kind, deb_writer, PreparedPackage, Reusable};
use super::{BuildOptions, BuiltDeb, Reuse};

pub(crate) fn write_package(
    prepared: PreparedPackage,
    reusable: Reusable,
    opts: &BuildOptions,
    threads: u32,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<BuiltDeb> {
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
    let (mut data, reuse) = match reusable {
        Reusable::Package(sha256) => {
            return Ok(BuiltDeb {
                arch,
                size: fs::metadata(&final_path).at(&final_path)?.len(),
                sha256,
                path: final_path,
                tree,
                reuse: Reuse::Package,
            })
        }
        Reusable::DataMember(blob) => {
            let file = fs::File::open(&blob.path).at(&blob.path)?;
            let size = blob.size;
            (DataMember { file, size }, Reuse::DataMember)
        }
        Reusable::Nothing => {
            listener.event(Event::Began {
                stage: Stage::Compress,
                name: file_name.clone(),
            });
            let mut blob = cache.new_blob(&member_kind)?;
            let shown = std::path::PathBuf::from(&member_kind);
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
            (DataMember { file, size }, Reuse::Nothing)
        }
    };
    // The staged files are no longer needed: let the next build of this machine have the
    // space while the archive is assembled.
    drop(inputs.staging);

    // Nameless in `out` until complete, then linked into place: `out` never holds a
    // partial package, whatever fails or is killed.
    let mut out = AtomicFile::new_in(&opts.out_dir, 0o644)?;
    writer.assemble(
        &inputs.control_member,
        &mut data,
        opts.signer.as_deref(),
        std::io::BufWriter::new(out.file()),
        &final_path,
    )?;
    out.persist(&final_path)?;
    let sha256 = sha256_file(&final_path)?;
    cache.store_record("packages", &inputs.package_key, &sha256.to_string())?;
    Ok(BuiltDeb {
        arch,
        size: fs::metadata(&final_path).at(&final_path)?.len(),
        sha256,
        path: final_path,
        tree,
        reuse,
    })
}

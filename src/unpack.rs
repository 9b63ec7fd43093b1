//! Takes the programs out of a release asset into a staging directory. Archives come from
//! the internet and this may run as root, so every entry is checked before anything is
//! written: no absolute paths, no `..`, no links that point outside, no device nodes or
//! fifos, no duplicate or non-UTF-8 names, and a cap on the unpacked size. Only the
//! regular files we ship are written; links are checked but never created, so nothing can
//! be written through one.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component as PathComponent, Path, PathBuf};

use flate2::read::GzDecoder;
use tar::EntryType;

use crate::artifact::{Artifact, Packing, Pick};
use crate::error::{Error, IoContext, Result};

/// The sum of all entry sizes an archive may declare: a guard against decompression bombs
/// (upstream's largest asset unpacks to about 150 MiB).
pub const MAX_UNPACKED_BYTES: u64 = 2 << 30;

/// A program taken out of an asset.
#[derive(Debug, Clone)]
pub struct StagedProgram {
    /// The file name it is installed under.
    pub name: String,
    /// The path inside the asset, for error messages (`bin/ctr`, or the asset's name).
    pub entry: String,
    pub path: PathBuf,
    pub size: u64,
    /// The entry's mtime in the archive; `None` for a bare asset.
    pub mtime: Option<u64>,
}

/// Unpacks the programs `artifact` provides from `asset` into `staging` (a fresh directory).
pub fn unpack(
    artifact: &Artifact,
    asset: &Path,
    staging: &Path,
    max_bytes: u64,
) -> Result<Vec<StagedProgram>> {
    fs::create_dir_all(staging).at(staging)?;
    match artifact.packing {
        Packing::Bare { installed_as } => {
            let path = staging.join(&artifact.file_name);
            let size = fs::copy(asset, &path).at(&path)?;
            Ok(vec![StagedProgram {
                name: installed_as.to_owned(),
                entry: artifact.file_name.clone(),
                path,
                size,
                mtime: None,
            }])
        }
        Packing::TarGz => {
            let file = File::open(asset).at(asset)?;
            unpack_tar_gz(
                file,
                &artifact.file_name,
                &artifact.pick,
                staging,
                max_bytes,
            )
        }
    }
}

/// The same, over any gzip stream; `archive` names it in errors.
pub fn unpack_tar_gz(
    reader: impl Read,
    archive: &str,
    pick: &Pick,
    staging: &Path,
    max_bytes: u64,
) -> Result<Vec<StagedProgram>> {
    let bad = |entry: &str, message: String| Error::Archive {
        archive: archive.to_owned(),
        entry: entry.to_owned(),
        message,
    };
    let read_err = |e: io::Error| bad("(stream)", format!("not a readable tar.gz: {e}"));

    let mut tar = tar::Archive::new(GzDecoder::new(reader));
    let mut seen = BTreeSet::new();
    let mut declared = 0u64;
    let mut staged = Vec::new();

    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let name =
            std::str::from_utf8(&raw).map_err(|_| bad(&shown, "name is not valid UTF-8".into()))?;
        let rel = normalise(name).ok_or_else(|| {
            bad(
                name,
                "path is absolute or climbs out with '..'; refusing the archive".into(),
            )
        })?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            return Err(bad(name, "device nodes and fifos are not allowed".into()));
        }
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(bad(
                name,
                "names the archive root but is not a directory".into(),
            ));
        }
        if !seen.insert(rel.clone()) && !kind.is_dir() {
            return Err(bad(name, "appears twice in the archive".into()));
        }
        declared = declared.saturating_add(entry.size());
        if declared > max_bytes {
            return Err(bad(
                name,
                format!("archive unpacks to more than {max_bytes} bytes; refusing it"),
            ));
        }

        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad(name, "link without a target".into()))?;
            let target = std::str::from_utf8(&target)
                .map_err(|_| bad(name, "link target is not valid UTF-8".into()))?;
            let base = match kind.is_symlink() {
                true => rel.parent().unwrap_or(Path::new("")),
                false => Path::new(""),
            };
            let resolved = resolve_inside(base, target);
            if target.starts_with('/') || resolved.is_none() {
                return Err(bad(
                    name,
                    format!("link to {target:?} points outside the archive"),
                ));
            }
            if picks(pick, &rel) {
                return Err(bad(name, "expected a regular file, found a link".into()));
            }
            continue;
        }
        if kind.is_dir() || !picks(pick, &rel) {
            // Extra files are checked like the rest and then ignored.
            continue;
        }
        if !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            return Err(bad(
                name,
                format!("expected a regular file, found {kind:?}"),
            ));
        }

        let dest = staging.join(&rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .open(&dest)
            .at(&dest)?;
        let mtime = entry.header().mtime().ok();
        let size =
            io::copy(&mut entry, &mut out).map_err(|e| bad(name, format!("cannot unpack: {e}")))?;
        staged.push(StagedProgram {
            name: rel
                .file_name()
                .expect("normalised non-empty path has a file name")
                .to_string_lossy()
                .into_owned(),
            entry: rel.display().to_string(),
            path: dest,
            size,
            mtime,
        });
    }

    if let Pick::Named(names) = pick {
        for wanted in *names {
            if !staged.iter().any(|s| s.entry == *wanted) {
                return Err(bad(
                    wanted,
                    "expected program is missing from the archive".into(),
                ));
            }
        }
    }
    if staged.is_empty() {
        return Err(bad("(any)", "the archive holds no program to ship".into()));
    }
    staged.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(staged)
}

fn picks(pick: &Pick, rel: &Path) -> bool {
    match pick {
        Pick::Named(names) => names.iter().any(|n| Path::new(n) == rel),
        Pick::TopLevelExcept(skip) => {
            rel.components().count() == 1 && !skip.iter().any(|s| Path::new(s) == rel)
        }
        Pick::Whole => false,
    }
}

/// `./a//b/` → `a/b`; `None` for absolute paths or any `..` that climbs above the root
/// (`..` is refused everywhere: upstream archives never need it).
fn normalise(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            PathComponent::CurDir => {}
            PathComponent::Normal(n) => out.push(n),
            PathComponent::ParentDir | PathComponent::RootDir | PathComponent::Prefix(_) => {
                return None
            }
        }
    }
    Some(out)
}

/// Where `target`, taken relative to the archive directory `base`, leads; `None` when it
/// leaves the archive at any point.
fn resolve_inside(base: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<_> = base.components().collect();
    for c in Path::new(target).components() {
        match c {
            PathComponent::CurDir => {}
            PathComponent::Normal(_) => parts.push(c),
            PathComponent::ParentDir => {
                parts.pop()?;
            }
            PathComponent::RootDir | PathComponent::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_resolve_inside_or_not_at_all() {
        assert_eq!(
            resolve_inside(Path::new("bin"), "../lib/x").unwrap(),
            Path::new("lib/x")
        );
        assert_eq!(resolve_inside(Path::new(""), "x").unwrap(), Path::new("x"));
        assert!(resolve_inside(Path::new("bin"), "../../etc/passwd").is_none());
        assert!(resolve_inside(Path::new(""), "/etc/passwd").is_none());
    }

    #[test]
    fn normalise_refuses_escapes() {
        assert_eq!(normalise("./bin//ctr").unwrap(), Path::new("bin/ctr"));
        assert_eq!(normalise("./").unwrap(), Path::new(""));
        assert!(normalise("../etc/passwd").is_none());
        assert!(normalise("bin/../../x").is_none());
        assert!(normalise("/etc/passwd").is_none());
    }

    #[test]
    fn picks_top_level_programs_only() {
        let p = Pick::TopLevelExcept(&["README.md", "LICENSE"]);
        assert!(picks(&p, Path::new("bridge")));
        assert!(!picks(&p, Path::new("LICENSE")));
        assert!(!picks(&p, Path::new("sub/bridge")));
        let n = Pick::Named(&["bin/ctr"]);
        assert!(picks(&n, Path::new("bin/ctr")));
        assert!(!picks(&n, Path::new("bin/containerd-stress")));
    }
}

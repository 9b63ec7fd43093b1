//! The build cache under `<cache>/builds/`: small JSON records and compressed data members,
//! each named by a key that hashes every input it depends on. Nothing is trusted on sight:
//! a record that does not parse is ignored, a blob whose sha256 differs from the one recorded
//! with it is deleted and rebuilt.

use std::fs::{self, File};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;
use crate::error::{IoContext, Result};
use crate::hash::sha256_file;
use crate::stack::Sha256;

pub struct BuildCache {
    root: PathBuf,
}

/// A blob found in the cache, verified.
pub struct Blob {
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Serialize, Deserialize)]
struct BlobRecord {
    sha256: String,
    size: u64,
}

impl BuildCache {
    pub fn new(cache_dir: &std::path::Path) -> BuildCache {
        BuildCache {
            root: cache_dir.join("builds"),
        }
    }

    fn path(&self, kind: &str, key: &str, ext: &str) -> PathBuf {
        self.root.join(kind).join(format!("{key}{ext}"))
    }

    pub fn record<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let bytes = fs::read(self.path(kind, key, ".json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn store_record<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<()> {
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).at(&dir)?;
        let mut f = AtomicFile::new_in(&dir, 0o644)?;
        let path = self.path(kind, key, ".json");
        serde_json::to_writer(f.file(), value).map_err(|e| crate::error::Error::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        f.persist(&path)
    }

    /// The blob stored under `key`, if it is there and intact.
    pub fn blob(&self, kind: &str, key: &str) -> Result<Option<Blob>> {
        let path = self.path(kind, key, "");
        let Some(rec) = self.record::<BlobRecord>(kind, key) else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        if sha256_file(&path)?.as_str() != rec.sha256 {
            // Corrupted on disk: drop it so it is rebuilt.
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(self.path(kind, key, ".json"));
            return Ok(None);
        }
        Ok(Some(Blob {
            path,
            size: rec.size,
        }))
    }

    /// A nameless file in the blob directory `kind`, to be written and then stored with
    /// [`BuildCache::store_blob`].
    pub fn new_blob(&self, kind: &str) -> Result<AtomicFile> {
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).at(&dir)?;
        AtomicFile::new_in(&dir, 0o644)
    }

    /// Names a written blob `key` and records its hash; returns it open for reading.
    pub fn store_blob(
        &self,
        kind: &str,
        key: &str,
        file: AtomicFile,
        size: u64,
    ) -> Result<(File, Blob)> {
        let path = self.path(kind, key, "");
        file.persist(&path)?;
        let sha256: Sha256 = sha256_file(&path)?;
        self.store_record(
            kind,
            key,
            &BlobRecord {
                sha256: sha256.to_string(),
                size,
            },
        )?;
        Ok((File::open(&path).at(&path)?, Blob { path, size }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_corrupt_blob_is_not_returned_and_is_removed() {
        let dir = tempfile::TempDir::new().unwrap();
        let cache = BuildCache::new(dir.path());
        let mut f = cache.new_blob("data").unwrap();
        f.file().write_all(b"compressed member").unwrap();
        cache.store_blob("data", "k1", f, 17).unwrap();
        assert_eq!(cache.blob("data", "k1").unwrap().unwrap().size, 17);
        fs::write(dir.path().join("builds/data/k1"), b"compressed membeR").unwrap();
        assert!(cache.blob("data", "k1").unwrap().is_none());
        assert!(!dir.path().join("builds/data/k1").exists());
        assert!(cache.blob("data", "missing").unwrap().is_none());
    }
}

//! The build cache under `<cache>/builds/`: small JSON records (the assets' analysis, the
//! hashes of a part's blocks, the hash of each finished package) and compressed blocks of
//! data members, each named by a key that hashes every input it depends on. Nothing is
//! trusted on sight: a record that does not parse is ignored, a blob whose sha256 differs
//! from the one recorded with it is deleted and rebuilt, and a blob is handed out open, so
//! what is read later is the file that was checked.

use std::fs::{self, File};
use std::io::{Seek, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;
use crate::error::{IoContext, Result};
use crate::hash::{Hashes, Sha256};

pub struct BuildCache {
    root: PathBuf,
}

/// A blob found in the cache, verified, open at its start.
pub struct Blob {
    pub file: File,
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
        let Ok(mut file) = File::open(&path) else {
            return Ok(None);
        };
        let found = Hashes::of_reader(&mut file).at(&path)?;
        if found.sha256.as_str() != rec.sha256 || found.size != rec.size {
            // Corrupted on disk: drop it so it is rebuilt.
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(self.path(kind, key, ".json"));
            return Ok(None);
        }
        file.rewind().at(&path)?;
        Ok(Some(Blob {
            file,
            size: rec.size,
        }))
    }

    /// Stores `bytes` as the blob `key` of `kind`, whole or not at all, and returns it.
    pub fn store_blob(&self, kind: &str, key: &str, bytes: &[u8]) -> Result<Blob> {
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).at(&dir)?;
        let path = self.path(kind, key, "");
        let mut tmp = AtomicFile::new_in(&dir, 0o644)?;
        tmp.file().write_all(bytes).at(&path)?;
        // The file just written, whatever a concurrent build puts under its name later.
        let mut file = tmp.file().try_clone().at(&path)?;
        tmp.persist(&path)?;
        file.rewind().at(&path)?;
        self.store_record(
            kind,
            key,
            &BlobRecord {
                sha256: Sha256::of(bytes).to_string(),
                size: bytes.len() as u64,
            },
        )?;
        Ok(Blob {
            file,
            size: bytes.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_corrupt_blob_is_not_returned_and_is_removed() {
        let dir = tempfile::TempDir::new().unwrap();
        let cache = BuildCache::new(dir.path());
        cache
            .store_blob("data", "k1", b"compressed member")
            .unwrap();
        let mut found = cache.blob("data", "k1").unwrap().unwrap();
        assert_eq!(found.size, 17);
        let mut back = Vec::new();
        found.file.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"compressed member", "handed out at its start");
        fs::write(dir.path().join("builds/data/k1"), b"compressed membeR").unwrap();
        assert!(cache.blob("data", "k1").unwrap().is_none());
        assert!(!dir.path().join("builds/data/k1").exists());
        assert!(cache.blob("data", "missing").unwrap().is_none());
    }
}

//! The hashes the pipeline takes, in one place: sha256 pins and cache entries, the md5s
//! dpkg's `md5sums` lists, the sha1 and sha256 an SPDX document gives every file, the
//! md5/sha1/sha256 of the packages a `.changes` lists and a repository indexes, and the keys
//! of the build cache. Files are always read in pieces, never held whole.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{IoContext, Result};

/// A lowercase hex SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct Sha256(String);

impl TryFrom<String> for Sha256 {
    type Error = String;

    fn try_from(s: String) -> Result<Sha256, String> {
        Sha256::parse(&s).ok_or_else(|| format!("{s:?} is not a lowercase hex sha256"))
    }
}

impl Sha256 {
    pub fn parse(s: &str) -> Option<Sha256> {
        (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Sha256(s.to_owned()))
    }

    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256(hex::encode(sha2::Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<Sha256> {
    Ok(Hashes::of_file(path)?.sha256)
}

/// The hex md5 of a file.
pub fn md5_file(path: &Path) -> Result<String> {
    Ok(Hashes::of_file(path)?.md5)
}

/// The hex md5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// The hex sha1 of `bytes`.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The hex sha512 of `bytes`.
pub fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha512::digest(bytes))
}

/// A key over `parts`, each length-prefixed so that no two lists of parts collide.
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The size, md5, sha1 and sha256 of a stream, taken in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: Sha256,
}

impl Hashes {
    pub fn of_reader(mut r: impl Read) -> io::Result<Hashes> {
        let mut h = Hasher::default();
        io::copy(&mut r, &mut h)?;
        Ok(h.finish())
    }

    pub fn of_file(path: &Path) -> Result<Hashes> {
        let file = File::open(path).at(path)?;
        Hashes::of_reader(file).at(path)
    }
}

/// The size, md5 and sha256 of a stream, taken in one pass: what an apt index lists of a
/// package, without the sha1 it does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageHashes {
    pub size: u64,
    pub md5: String,
    pub sha256: String,
}

impl PackageHashes {
    /// Reads `r` in pieces of 256 KiB (a package is read once, from a file, and often).
    pub fn of_reader(mut r: impl Read) -> io::Result<PackageHashes> {
        let mut h = PackageHasher::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.write_all(&buf[..n])?;
        }
        Ok(h.finish())
    }
}

/// Hashes what is written to it; [`PackageHasher::finish`] gives the [`PackageHashes`].
#[derive(Default)]
pub struct PackageHasher {
    size: u64,
    md5: Md5,
    sha256: sha2::Sha256,
}

impl PackageHasher {
    pub fn finish(self) -> PackageHashes {
        PackageHashes {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

impl Write for PackageHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.size += buf.len() as u64;
        self.md5.update(buf);
        self.sha256.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sha256 taken in pieces, for bytes whose md5 nobody needs (blocks of the data tar).
#[derive(Default)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Sha256 {
        Sha256(hex::encode(self.0.finalize()))
    }
}

/// An md5 taken in pieces, for the `md5sums` of a package's files as they are read back.
#[derive(Default)]
pub struct Md5Hasher(Md5);

impl Md5Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Hashes what is written to it; [`Hasher::finish`] gives the [`Hashes`].
#[derive(Default)]
pub struct Hasher {
    size: u64,
    md5: Md5,
    sha1: sha1::Sha1,
    sha256: sha2::Sha256,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.md5.update(bytes);
        self.sha1.update(bytes);
        self.sha256.update(bytes);
    }

    pub fn finish(self) -> Hashes {
        Hashes {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: Sha256(hex::encode(self.sha256.finalize())),
        }
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let h = Hashes::of_reader(&b"abc"[..]).unwrap();
        assert_eq!(h.size, 3);
        assert_eq!(h.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(h.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(sha1_hex(b"abc"), h.sha1);
        assert_eq!(
            h.sha256.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256::of(b"abc"), h.sha256);
        assert_eq!(md5_hex(b"abc"), h.md5);
        let mut pieces = Md5Hasher::default();
        pieces.update(b"a");
        pieces.update(b"bc");
        assert_eq!(pieces.finish(), h.md5);
        assert_eq!(sha256_hex(b"abc"), h.sha256.as_str());
        let p = PackageHashes::of_reader(&b"abc"[..]).unwrap();
        assert_eq!(
            (p.size, &p.md5, p.sha256.as_str()),
            (3, &h.md5, h.sha256.as_str())
        );
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"x"]), key(&[b"x"]));
    }
}

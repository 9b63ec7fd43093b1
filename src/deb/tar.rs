//! A deterministic tar writer for deb members: `./`-prefixed names like dpkg-deb's, GNU
//! headers (with `././@LongLink` entries for long names), uid/gid 0 owned by root, one
//! mtime for everything. An entry's bytes depend on that entry alone, so a run of entries
//! is the same bytes wherever it stands in an archive ([`crate::deb::data`] relies on it).

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// The two zero blocks that end an archive.
pub const END: [u8; 1024] = [0; 1024];

/// The header bytes of an entry (a `././@LongLink` entry first when the name needs one);
/// `path` as given to [`TarWriter::dir`] (`None` for the size) or [`TarWriter::file`].
pub fn entry_header(path: &str, size: Option<u64>, mode: u32, mtime: u64) -> Vec<u8> {
    let (name, kind, mode, size) = match size {
        None => (dir_name(path), EntryType::Directory, 0o755, 0),
        Some(size) => (format!("./{path}"), EntryType::Regular, mode, size),
    };
    let mut out = Vec::with_capacity(512);
    let bytes = name.as_bytes();
    let mut h = header(kind, mode, size, mtime);
    if bytes.len() > h.as_old().name.len() {
        let mut long = header(EntryType::GNULongName, 0o644, bytes.len() as u64 + 1, mtime);
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_cksum();
        out.extend_from_slice(long.as_bytes());
        out.extend_from_slice(bytes);
        out.resize((512 + bytes.len() + 1).next_multiple_of(512), 0);
    }
    let field = &mut h.as_old_mut().name;
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out
}

/// The zeros after `size` bytes of content, up to the next 512-byte boundary.
pub fn padding(size: u64) -> u64 {
    size.next_multiple_of(512) - size
}

fn header(kind: EntryType, mode: u32, size: u64, mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root").expect("short name");
    h.set_groupname("root").expect("short name");
    h
}

pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, mtime: u64) -> Self {
        TarWriter { out, mtime }
    }

    /// `path` is relative to the root, without a leading `./` (empty for the root itself).
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        self.out
            .write_all(&entry_header(path, None, 0o755, self.mtime))
    }

    pub fn file(&mut self, path: &str, mode: u32, size: u64, data: impl Read) -> io::Result<()> {
        self.out
            .write_all(&entry_header(path, Some(size), mode, self.mtime))?;
        // A reader that yields fewer bytes than announced would corrupt the archive;
        // `take` plus the check below make a changed source file an error instead.
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "{path}: expected {size} bytes, read {copied}; did the file change during the build?"
            )));
        }
        self.out.write_all(&END[..padding(size) as usize])
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&END)?;
        Ok(self.out)
    }
}

fn dir_name(path: &str) -> String {
    match path {
        "" => "./".to_owned(),
        _ => format!("./{path}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_dot_slash_and_long_names_survive() {
        let long = format!("usr/share/{}/file", "d".repeat(120));
        let mut w = TarWriter::new(Vec::new(), 1_700_000_000);
        w.dir("").unwrap();
        w.dir("usr").unwrap();
        w.file("usr/x", 0o755, 3, &b"abc"[..]).unwrap();
        w.file(&long, 0o644, 1, &b"z"[..]).unwrap();
        let bytes = w.finish().unwrap();

        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.mtime().unwrap(), 1_700_000_000);
            seen.push((
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                h.mode().unwrap(),
            ));
        }
        assert_eq!(
            seen,
            [
                ("./".to_owned(), 0o755),
                ("./usr/".to_owned(), 0o755),
                ("./usr/x".to_owned(), 0o755),
                (format!("./{long}"), 0o644)
            ]
        );
    }

    #[test]
    fn short_source_is_an_error() {
        let mut w = TarWriter::new(Vec::new(), 0);
        let e = w.file("usr/x", 0o644, 10, &b"abc"[..]).unwrap_err();
        assert!(e.to_string().contains("expected 10 bytes, read 3"), "{e}");
    }
}

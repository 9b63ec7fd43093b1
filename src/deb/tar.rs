//! A deterministic tar writer for deb members: `./`-prefixed names like dpkg-deb's, GNU
//! headers (with `././@LongLink` entries for long names), uid/gid 0 owned by root, one
//! mtime for everything.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

pub struct TarWriter<W: Write> {
    inner: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, mtime: u64) -> Self {
        let mut inner = tar::Builder::new(out);
        inner.mode(tar::HeaderMode::Deterministic);
        TarWriter { inner, mtime }
    }

    /// `path` is relative to the root, without a leading `./` (empty for the root itself).
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let name = dir_name(path);
        let mut h = self.header(EntryType::Directory, 0o755, 0);
        self.append(&mut h, &name, io::empty())
    }

    pub fn file(&mut self, path: &str, mode: u32, size: u64, data: impl Read) -> io::Result<()> {
        let mut h = self.header(EntryType::Regular, mode, size);
        // A reader that yields fewer bytes than announced would corrupt the archive;
        // `take` plus the check below make a changed source file an error instead.
        let mut counted = CountingReader {
            inner: data.take(size),
            count: 0,
        };
        self.append(&mut h, &format!("./{path}"), &mut counted)?;
        if counted.count != size {
            return Err(io::Error::other(format!(
                "{path}: expected {size} bytes, read {}; did the file change during the build?",
                counted.count
            )));
        }
        Ok(())
    }

    pub fn finish(self) -> io::Result<W> {
        self.inner.into_inner()
    }

    fn header(&self, kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root").expect("short name");
        h.set_groupname("root").expect("short name");
        h
    }

    fn append(&mut self, h: &mut Header, name: &str, data: impl Read) -> io::Result<()> {
        let bytes = name.as_bytes();
        let field = &mut h.as_old_mut().name;
        if bytes.len() > field.len() {
            let mut long = self.header(EntryType::GNULongName, 0o644, bytes.len() as u64 + 1);
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_cksum();
            let mut payload = bytes.to_vec();
            payload.push(0);
            self.inner.append(&long, &payload[..])?;
        }
        let field = &mut h.as_old_mut().name;
        let n = bytes.len().min(field.len());
        field.fill(0);
        field[..n].copy_from_slice(&bytes[..n]);
        h.set_cksum();
        self.inner.append(h, data)
    }
}

fn dir_name(path: &str) -> String {
    match path {
        "" => "./".to_owned(),
        _ => format!("./{path}/"),
    }
}

/// The exact length of the archive [`TarWriter`] writes for `entries`: each is a path as
/// given to [`TarWriter::dir`] (`None` for the size) or [`TarWriter::file`] (its size).
pub fn archive_len<'a>(entries: impl IntoIterator<Item = (&'a str, Option<u64>)>) -> u64 {
    let header = |name_len: usize| {
        let long = match name_len > 100 {
            true => 512 + (name_len as u64 + 1).next_multiple_of(512),
            false => 0,
        };
        long + 512
    };
    let mut len = 1024; // the two zero blocks that end the archive
    for (path, size) in entries {
        len += match size {
            None => header(dir_name(path).len()),
            Some(size) => header(path.len() + 2) + size.next_multiple_of(512),
        };
    }
    len
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_len_is_what_the_writer_writes() {
        let long_dir = "d".repeat(99);
        let long_file = format!("{long_dir}/{}", "f".repeat(200));
        let entries: Vec<(&str, Option<u64>)> = vec![
            ("", None),
            ("etc", None),
            (&long_dir, None),
            ("etc/a", Some(0)),
            ("etc/b", Some(511)),
            ("etc/c", Some(512)),
            ("etc/d", Some(513)),
            (&long_file, Some(1)),
        ];
        let mut w = TarWriter::new(Vec::new(), 0);
        for (path, size) in &entries {
            match size {
                None => w.dir(path).unwrap(),
                Some(n) => w
                    .file(path, 0o644, *n, &vec![7u8; *n as usize][..])
                    .unwrap(),
            }
        }
        let written = w.finish().unwrap().len() as u64;
        assert_eq!(archive_len(entries), written);
    }

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

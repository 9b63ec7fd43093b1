//! Writes `.deb` files: an ar archive of `debian-binary`, `control.tar.*` and `data.tar.*`,
//! in that order, every byte determined by the inputs. The data member is streamed to a
//! file, so memory does not grow with the payload; the small control member is built in
//! memory, with the md5s the tree already carries.

pub mod compress;
pub mod read;
pub mod tar;

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::layout::{FhsTree, Node, Source};
use crate::sign::Signer;
use compress::Compression;
use tar::TarWriter;

/// How members are written.
#[derive(Debug, Clone, Copy)]
pub struct DebWriter {
    pub compression: Compression,
    pub level: u32,
    pub threads: u32,
    /// The one mtime of every tar and ar entry.
    pub mtime: u64,
}

/// The length of the data tar [`DebWriter::write_data`] writes for `tree`.
fn data_tar_len(tree: &FhsTree) -> u64 {
    let root = std::iter::once(("", None));
    tar::archive_len(
        root.chain(tree.entries.iter().map(|(path, node)| match node {
            Node::Dir => (path.as_str(), None),
            Node::File(f) => (path.as_str(), Some(f.size)),
        })),
    )
}

/// Counts what goes through to `inner`, and reports it to `progress` every
/// [`Counted::EVERY`] bytes.
struct Counted<'a, W> {
    inner: W,
    done: u64,
    reported: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<W> Counted<'_, W> {
    const EVERY: u64 = 4 << 20;
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= Self::EVERY {
            self.reported = self.done;
            (self.progress)(self.done, self.total);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A finished data member, open for reading from its start.
pub struct DataMember {
    pub file: File,
    pub size: u64,
}

/// The control member's files besides `md5sums`.
pub struct ControlFiles<'a> {
    pub control: &'a str,
    pub conffiles: &'a [String],
    /// Maintainer scripts by name (`preinst`, `postinst`, …), installed 0755.
    pub scripts: &'a [(String, String)],
    /// Other control files (`templates`, …), installed 0644.
    pub extra: &'a [(String, String)],
}

impl DebWriter {
    pub fn member_name(&self, base: &str) -> String {
        format!("{base}.tar.{}", self.compression.extension())
    }

    /// Streams `tree` into a compressed tar in `tmp`; `progress` is told the bytes of the
    /// tar written so far, and its total length, every few MiB.
    pub fn write_data(
        &self,
        tree: &FhsTree,
        tmp: &mut File,
        tmp_path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<DataMember> {
        let total = data_tar_len(tree);
        let compressor = self
            .compression
            .writer(
                io::BufWriter::new(&mut *tmp),
                self.level,
                self.threads,
                total,
            )
            .at(tmp_path)?;
        let counted = Counted {
            inner: compressor,
            done: 0,
            reported: 0,
            total,
            progress,
        };
        let mut tar = TarWriter::new(counted, self.mtime);
        tar.dir("").at(tmp_path)?;
        for (path, node) in &tree.entries {
            match node {
                Node::Dir => tar.dir(path).at(tmp_path)?,
                Node::File(f) => match &f.source {
                    Source::Staged { path: src, .. } => {
                        let file = File::open(src).at(src)?;
                        let reader = io::BufReader::with_capacity(1 << 20, file);
                        tar.file(path, f.mode, f.size, reader).at(src)?;
                    }
                    Source::Inline(bytes) => {
                        tar.file(path, f.mode, f.size, &bytes[..]).at(tmp_path)?
                    }
                },
            }
        }
        let Counted {
            inner,
            done,
            progress,
            ..
        } = tar.finish().at(tmp_path)?;
        progress(done, total);
        let mut buf = inner.finish().at(tmp_path)?;
        buf.flush().at(tmp_path)?;
        drop(buf);
        let size = tmp.stream_position().at(tmp_path)?;
        tmp.rewind().at(tmp_path)?;
        Ok(DataMember {
            file: tmp.try_clone().at(tmp_path)?,
            size,
        })
    }

    /// The compressed control member.
    pub fn write_control(
        &self,
        files: &ControlFiles,
        md5sums: &[(String, String)],
    ) -> Result<Vec<u8>> {
        let here = Path::new("control.tar");
        let mut tar = TarWriter::new(Vec::new(), self.mtime);
        tar.dir("").at(here)?;
        let mut members: Vec<(String, u32, Vec<u8>)> = vec![
            ("control".into(), 0o644, files.control.as_bytes().to_vec()),
            (
                "md5sums".into(),
                0o644,
                md5sums
                    .iter()
                    .map(|(sum, path)| format!("{sum}  {path}\n"))
                    .collect::<String>()
                    .into_bytes(),
            ),
        ];
        if !files.conffiles.is_empty() {
            let text: String = files.conffiles.iter().map(|c| format!("{c}\n")).collect();
            members.push(("conffiles".into(), 0o644, text.into_bytes()));
        }
        for (name, text) in files.scripts {
            members.push((name.clone(), 0o755, text.as_bytes().to_vec()));
        }
        for (name, text) in files.extra {
            members.push((name.clone(), 0o644, text.as_bytes().to_vec()));
        }
        members.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mode, bytes) in members {
            tar.file(&name, mode, bytes.len() as u64, &bytes[..])
                .at(here)?;
        }
        let tar = tar.finish().at(here)?;
        let mut compressor = self
            .compression
            .writer(Vec::new(), self.level, 1, tar.len() as u64)
            .at(here)?;
        compressor.write_all(&tar).at(here)?;
        compressor.finish().at(here)
    }

    /// Writes the ar archive: `debian-binary`, control, data.
    pub fn assemble(
        &self,
        control: &[u8],
        data: &mut DataMember,
        signer: Option<&Signer>,
        out: impl Write,
        out_path: &Path,
    ) -> Result<()> {
        // debsigs' `_gpgorigin`: a detached signature over the three members' contents,
        // concatenated without their ar headers.
        let signature = match signer {
            Some(s) => {
                let signed = (&b"2.0\n"[..])
                    .chain(control)
                    .chain((&mut data.file).take(data.size));
                let sig = s.detached(signed, self.mtime)?;
                data.file.rewind().at(out_path)?;
                Some(sig)
            }
            None => None,
        };
        let mut ar = ::ar::Builder::new(out);
        let mut append = |name: String, size: u64, reader: &mut dyn Read| {
            let mut h = ::ar::Header::new(name.into_bytes(), size);
            h.set_mtime(self.mtime);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mode(0o100644);
            ar.append(&h, reader).at(out_path)
        };
        append("debian-binary".into(), 4, &mut &b"2.0\n"[..])?;
        append(
            self.member_name("control"),
            control.len() as u64,
            &mut &control[..],
        )?;
        let size = data.size;
        append(
            self.member_name("data"),
            size,
            &mut (&mut data.file).take(size),
        )?;
        if let Some(sig) = signature {
            append("_gpgorigin".into(), sig.len() as u64, &mut &sig[..])?;
        }
        ar.into_inner().at(out_path)?.flush().at(out_path)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn data_tar_len_is_the_length_written() {
        let mut tree = FhsTree::default();
        tree.add_inline("usr/bin/a", 0o755, vec![1; 1000]).unwrap();
        tree.add_inline("etc/x.conf", 0o644, Vec::new()).unwrap();
        let deep = format!("usr/share/{}/{}", "d".repeat(90), "f".repeat(30));
        tree.add_inline(&deep, 0o644, vec![2; 512]).unwrap();
        let writer = DebWriter {
            compression: Compression::Gzip,
            level: 1,
            threads: 1,
            mtime: 0,
        };
        let mut tmp = tempfile::tempfile().unwrap();
        let mut reported = Vec::new();
        let mut member = writer
            .write_data(&tree, &mut tmp, Path::new("data"), &mut |done, total| {
                reported.push((done, total))
            })
            .unwrap();
        let len = data_tar_len(&tree);
        assert_eq!(reported.last(), Some(&(len, len)), "the end is reported");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new((&mut member.file).take(member.size))
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(data_tar_len(&tree), tar.len() as u64);
    }
}

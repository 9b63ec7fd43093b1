//! Writes `.deb` files: an ar archive of `debian-binary`, `control.tar.*` and `data.tar.*`,
//! in that order, every byte determined by the inputs. The data member is made of frames
//! compressed on their own ([`data`] lays the tar out in blocks, [`compress`] makes a frame
//! of one block, or of all for zstd); the build keeps each frame in its cache and
//! [`DataMember`] streams the member from them, so memory does not grow with the payload. The small control member is built in memory, with the
//! md5s the tree already carries.

pub mod compress;
pub mod data;
pub mod read;
pub mod tar;
pub mod xz;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::layout::FhsTree;
use crate::sign::Signer;
use compress::Compression;
use data::DataLayout;
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

/// Bytes of a member: in memory, or a file (a block in the build cache).
pub enum Piece {
    Bytes(Vec<u8>),
    File { file: File, len: u64 },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        match self {
            Piece::Bytes(b) => {
                let from = &b[(at as usize).min(b.len())..];
                let n = from.len().min(buf.len());
                buf[..n].copy_from_slice(&from[..n]);
                Ok(n)
            }
            Piece::File { file, len } => {
                let want = ((len - at.min(*len)) as usize).min(buf.len());
                let n = file.read_at(&mut buf[..want], at)?;
                if n == 0 && want > 0 {
                    return Err(io::Error::other("a cached block is shorter than recorded"));
                }
                Ok(n)
            }
        }
    }
}

/// A data member: the compression's framing around its frames, in order.
pub struct DataMember {
    pieces: Vec<Piece>,
    pub size: u64,
}

impl DataMember {
    /// The member of `frames`, each given with the length of tar it holds.
    pub fn new(compression: Compression, frames: Vec<(Piece, u64)>) -> io::Result<DataMember> {
        let mut starts = Vec::with_capacity(frames.len());
        for (piece, _) in &frames {
            let mut start = vec![0u8; (piece.len() as usize).min(Compression::BLOCK_START)];
            let mut at = 0;
            while at < start.len() {
                at += piece.read_at(&mut start[at..], at as u64)?;
            }
            starts.push(start);
        }
        let described: Vec<(&[u8], u64, u64)> = starts
            .iter()
            .zip(&frames)
            .map(|(start, (piece, tar_len))| (&start[..], piece.len(), *tar_len))
            .collect();
        let (head, tail) = compression.framing(&described)?;
        let mut pieces = vec![Piece::Bytes(head)];
        pieces.extend(frames.into_iter().map(|(p, _)| p));
        pieces.push(Piece::Bytes(tail));
        pieces.retain(|p| !p.is_empty());
        let size = pieces.iter().map(Piece::len).sum();
        Ok(DataMember { pieces, size })
    }

    /// Its bytes, from the start.
    pub fn reader(&self) -> impl Read + '_ {
        MemberReader {
            member: self,
            piece: 0,
            at: 0,
        }
    }
}

struct MemberReader<'a> {
    member: &'a DataMember,
    piece: usize,
    at: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(p) = self.member.pieces.get(self.piece) {
            if self.at < p.len() {
                let n = p.read_at(buf, self.at)?;
                self.at += n as u64;
                return Ok(n);
            }
            self.piece += 1;
            self.at = 0;
        }
        Ok(0)
    }
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

    /// The data member of `tree`, every frame compressed here, one after another, and kept
    /// in memory: for small trees. `build` compresses on several threads and keeps the
    /// frames in its cache.
    pub fn write_data(&self, tree: &FhsTree) -> Result<DataMember> {
        let here = Path::new("data.tar");
        let layout = DataLayout::new(tree, self.mtime);
        let mut frames = Vec::new();
        for blocks in layout.frames(self.compression.frame_per_block()) {
            let lens: Vec<u64> = blocks.iter().map(|b| b.len).collect();
            let input = layout.blocks_reader(&blocks);
            let (frame, _) = self
                .compression
                .compress_frame(self.level, self.threads, input, &lens, &mut |_| {})
                .at(here)?;
            frames.push((Piece::Bytes(frame), lens.iter().sum()));
        }
        DataMember::new(self.compression, frames).at(here)
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
        data: &DataMember,
        signer: Option<&Signer>,
        out: impl Write,
        out_path: &Path,
    ) -> Result<()> {
        // debsigs' `_gpgorigin`: a detached signature over the three members' contents,
        // concatenated without their ar headers.
        let signature = match signer {
            Some(s) => {
                let signed = (&b"2.0\n"[..]).chain(control).chain(data.reader());
                Some(s.detached(signed, self.mtime)?)
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
        append(self.member_name("data"), data.size, &mut data.reader())?;
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
    fn the_data_member_holds_the_whole_tar_in_order() {
        let mut tree = FhsTree::default();
        tree.add_inline("usr/bin/a", 0o755, vec![1; 1000]).unwrap();
        tree.add_inline("etc/x.conf", 0o644, Vec::new()).unwrap();
        let deep = format!("usr/share/{}/{}", "d".repeat(90), "f".repeat(30));
        tree.add_inline(&deep, 0o644, vec![2; 512]).unwrap();
        for compression in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
            let writer = DebWriter {
                compression,
                level: 1,
                threads: 1,
                mtime: 0,
            };
            let member = writer.write_data(&tree).unwrap();
            let mut packed = Vec::new();
            member.reader().read_to_end(&mut packed).unwrap();
            assert_eq!(packed.len() as u64, member.size);
            let mut tar = Vec::new();
            let layout = DataLayout::new(&tree, 0);
            for b in layout.blocks() {
                layout.reader(b).read_to_end(&mut tar).unwrap();
            }
            let mut back = Vec::new();
            match compression {
                Compression::Gzip => {
                    flate2::read::MultiGzDecoder::new(&packed[..]).read_to_end(&mut back)
                }
                Compression::Xz => {
                    liblzma::read::XzDecoder::new(&packed[..]).read_to_end(&mut back)
                }
                Compression::Zstd => zstd::Decoder::new(&packed[..])
                    .unwrap()
                    .read_to_end(&mut back),
            }
            .unwrap();
            assert!(back == tar, "{compression:?}");
        }
    }
}

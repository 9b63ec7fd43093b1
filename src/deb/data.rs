//! The data member's tar, laid out in parts that are compressed in independent blocks: first
//! every directory (the root, then path order), then each shipped component's files in
//! component-table order, then the rendered files (unit, configs, docs) and the archive's
//! end. Each directory precedes its contents, so dpkg can unpack it in order. A tar entry's
//! bytes depend on that entry alone and no block spans two parts, so a part's blocks are
//! the same bytes whatever the other parts hold: a runc bump or a template edit changes
//! only its own part's blocks, and the build cache (keyed by a block's bytes) has the rest.
//! A part is cut into blocks by its own length alone (see [`block_lens`]).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::Serialize;

use super::tar::{entry_header, padding, END};
use crate::layout::{FhsTree, Node, Source};
use crate::stack::ComponentKind;

/// The largest block: 3× the dictionary of xz -6 (8 MiB), as xz's own multithreaded encoder
/// cuts.
pub const MAX_BLOCK: u64 = 24 << 20;
/// A part shorter than this is one block: two threads would not pay for the ratio lost.
pub const SPLIT_FROM: u64 = 4 << 20;
/// A part shorter than this (runc's) is four blocks, not two. Blocks are compressed largest
/// first, so a cold build ends on the short parts' blocks; the threads end together only
/// if those are short, whatever the speed of xz on each block was. It costs about 1% of
/// such a part's compressed size.
pub const FOUR_BELOW: u64 = 16 << 20;

/// The lengths of the blocks a part of `len` bytes is cut into: an even number of equal
/// blocks of at most [`MAX_BLOCK`], so that two (or any even number of) threads finish
/// each part together, whichever parts a rebuild has to compress; four short ones below
/// [`FOUR_BELOW`]; one block for a part shorter than [`SPLIT_FROM`]. They depend on `len`
/// alone: the stream is the same on every machine.
pub fn block_lens(len: u64) -> Vec<u64> {
    if len < SPLIT_FROM {
        return vec![len];
    }
    let n = match len < FOUR_BELOW {
        true => 4,
        false => 2 * len.div_ceil(2 * MAX_BLOCK),
    };
    let size = len.div_ceil(n);
    let mut lens = vec![size; n as usize];
    *lens.last_mut().expect("n ≥ 2") = len - size * (n - 1);
    lens
}

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Directories,
    Component(ComponentKind),
    Rendered,
}

impl PartKind {
    pub fn name(self) -> &'static str {
        match self {
            PartKind::Directories => "directories",
            PartKind::Component(c) => c.key(),
            PartKind::Rendered => "rendered",
        }
    }
}

#[derive(Debug, Clone)]
enum Body {
    Empty,
    /// A staged file, with the length it must have.
    File(PathBuf),
    Inline(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Where its header starts, from the start of the part.
    offset: u64,
    header: Vec<u8>,
    size: u64,
    body: Body,
}

impl Entry {
    fn len(&self) -> u64 {
        self.header.len() as u64 + self.size + padding(self.size)
    }
}

/// A run of tar entries compressed on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    #[serde(rename = "name", serialize_with = "kind_name")]
    pub kind: PartKind,
    /// Its length in the tar.
    pub len: u64,
    /// Its blocks' lengths, in order.
    pub blocks: Vec<u64>,
    /// Every byte of it besides the contents of staged files: the entries' headers, the
    /// md5 and origin of each file, rendered files whole. With the pins of the assets it
    /// names, this decides the part's bytes.
    #[serde(skip)]
    pub identity: Vec<u8>,
    #[serde(skip)]
    entries: Vec<Entry>,
}

/// One block of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub part: usize,
    /// From the start of the part.
    pub offset: u64,
    pub len: u64,
}

/// The data tar of a tree, in parts.
#[derive(Debug, Clone, Serialize)]
pub struct DataLayout {
    pub parts: Vec<Part>,
}

impl DataLayout {
    pub fn new(tree: &FhsTree, mtime: u64) -> DataLayout {
        let mut kinds = vec![PartKind::Directories];
        kinds.extend(ComponentKind::ALL.map(PartKind::Component));
        kinds.push(PartKind::Rendered);
        let mut parts: Vec<Part> = kinds
            .into_iter()
            .map(|kind| Part {
                kind,
                len: 0,
                blocks: Vec::new(),
                identity: Vec::new(),
                entries: Vec::new(),
            })
            .collect();
        let of = |kind: PartKind| kinds_index(kind);
        parts[of(PartKind::Directories)].push(entry_header("", None, 0o755, mtime), 0, Body::Empty);
        for (path, node) in &tree.entries {
            match node {
                Node::Dir => parts[of(PartKind::Directories)].push(
                    entry_header(path, None, 0o755, mtime),
                    0,
                    Body::Empty,
                ),
                Node::File(f) => {
                    let header = entry_header(path, Some(f.size), f.mode, mtime);
                    let (kind, body, about) = match &f.source {
                        Source::Staged {
                            path: staged,
                            origin,
                            component,
                        } => (
                            PartKind::Component(*component),
                            Body::File(staged.clone()),
                            format!("{} {origin}\n", f.md5),
                        ),
                        Source::Inline(bytes) => (
                            PartKind::Rendered,
                            Body::Inline(bytes.clone()),
                            String::new(),
                        ),
                    };
                    let part = &mut parts[of(kind)];
                    part.identity.extend_from_slice(about.as_bytes());
                    part.push(header, f.size, body);
                }
            }
        }
        parts[of(PartKind::Rendered)].push(END.to_vec(), 0, Body::Empty);
        parts.retain(|p| !p.entries.is_empty());
        for p in &mut parts {
            p.blocks = block_lens(p.len);
        }
        DataLayout { parts }
    }

    /// The length of the whole tar.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every block of every part, in tar order.
    pub fn blocks(&self) -> Vec<BlockRef> {
        let mut out = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            let mut offset = 0;
            for &len in &p.blocks {
                out.push(BlockRef {
                    part: i,
                    offset,
                    len,
                });
                offset += len;
            }
        }
        out
    }

    /// The bytes of `blocks`, one after another.
    pub fn blocks_reader<'a>(&'a self, blocks: &'a [BlockRef]) -> BlocksReader<'a> {
        BlocksReader {
            layout: self,
            blocks,
            current: None,
        }
    }

    /// The frames a member of this tar is made of, each a run of blocks compressed as one:
    /// one per block, or (`per_block` false) one of them all.
    pub fn frames(&self, per_block: bool) -> Vec<Vec<BlockRef>> {
        let blocks = self.blocks();
        match per_block {
            true => blocks.into_iter().map(|b| vec![b]).collect(),
            false => vec![blocks],
        }
    }

    /// The bytes of `block`.
    pub fn reader(&self, block: BlockRef) -> PartReader<'_> {
        let part = &self.parts[block.part];
        PartReader {
            part,
            pos: block.offset,
            end: block.offset + block.len,
            entry: part
                .entries
                .partition_point(|e| e.offset + e.len() <= block.offset),
            file: None,
        }
    }
}

fn kind_name<S: serde::Serializer>(kind: &PartKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

fn kinds_index(kind: PartKind) -> usize {
    match kind {
        PartKind::Directories => 0,
        PartKind::Component(c) => {
            1 + ComponentKind::ALL
                .iter()
                .position(|&k| k == c)
                .expect("every kind is in ALL")
        }
        PartKind::Rendered => 1 + ComponentKind::ALL.len(),
    }
}

impl Part {
    fn push(&mut self, header: Vec<u8>, size: u64, body: Body) {
        self.identity.extend_from_slice(&header);
        if let Body::Inline(bytes) = &body {
            self.identity.extend_from_slice(bytes);
        }
        let entry = Entry {
            offset: self.len,
            header,
            size,
            body,
        };
        self.len += entry.len();
        self.entries.push(entry);
    }

    /// Whether reading it needs staged files.
    pub fn is_staged(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.body, Body::File(_)))
    }
}

/// Reads blocks one after another.
pub struct BlocksReader<'a> {
    layout: &'a DataLayout,
    /// The blocks not yet begun.
    blocks: &'a [BlockRef],
    current: Option<PartReader<'a>>,
}

impl Read for BlocksReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
            }
            let Some((&next, rest)) = self.blocks.split_first() else {
                return Ok(0);
            };
            self.blocks = rest;
            self.current = Some(self.layout.reader(next));
        }
    }
}

/// Reads one block of a part: headers and rendered files from memory, staged files from
/// disk, each opened at the block's offset.
pub struct PartReader<'a> {
    part: &'a Part,
    pos: u64,
    end: u64,
    /// The entry `pos` is in.
    entry: usize,
    /// The open file of that entry, and the offset in it the reader is at.
    file: Option<(BufReader<File>, u64)>,
}

impl Read for PartReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos >= self.end || buf.is_empty() {
                return Ok(0);
            }
            let Some(e) = self.part.entries.get(self.entry) else {
                return Ok(0);
            };
            let rel = self.pos - e.offset;
            let left = (self.end - self.pos) as usize;
            let header = e.header.len() as u64;
            let n = if rel < header {
                let from = &e.header[rel as usize..];
                let n = from.len().min(buf.len()).min(left);
                buf[..n].copy_from_slice(&from[..n]);
                n
            } else if rel < header + e.size {
                let at = rel - header;
                let want = ((e.size - at) as usize).min(buf.len()).min(left);
                match &e.body {
                    Body::Inline(bytes) => {
                        buf[..want].copy_from_slice(&bytes[at as usize..at as usize + want]);
                        want
                    }
                    Body::File(path) => self.read_file(path, at, &mut buf[..want], e.size)?,
                    Body::Empty => unreachable!("an entry without a body has size 0"),
                }
            } else if rel < e.len() {
                let n = ((e.len() - rel) as usize).min(buf.len()).min(left);
                buf[..n].fill(0);
                n
            } else {
                self.entry += 1;
                self.file = None;
                continue;
            };
            self.pos += n as u64;
            return Ok(n);
        }
    }
}

impl PartReader<'_> {
    fn read_file(
        &mut self,
        path: &PathBuf,
        at: u64,
        buf: &mut [u8],
        size: u64,
    ) -> io::Result<usize> {
        let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if self.file.as_ref().is_none_or(|(_, pos)| *pos != at) {
            let mut f = File::open(path).map_err(with_path)?;
            f.seek(SeekFrom::Start(at)).map_err(with_path)?;
            self.file = Some((BufReader::with_capacity(256 << 10, f), at));
        }
        let (f, pos) = self.file.as_mut().expect("opened above");
        let n = f.read(buf).map_err(with_path)?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{}: expected {size} bytes, found {at}; did the file change during the build?",
                path.display()
            )));
        }
        *pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileNode;

    const MIB: u64 = 1 << 20;

    #[test]
    fn blocks_are_even_equal_bounded_and_cover_the_part() {
        for len in [
            0,
            1,
            SPLIT_FROM - 1,
            SPLIT_FROM,
            10 * MIB,
            FOUR_BELOW - 1,
            FOUR_BELOW,
            48 * MIB,
            49 * MIB,
            500 * MIB + 3,
        ] {
            let lens = block_lens(len);
            assert_eq!(lens.iter().sum::<u64>(), len, "{len}");
            assert!(lens.iter().all(|&l| l <= MAX_BLOCK), "{len}: {lens:?}");
            if len >= SPLIT_FROM {
                assert_eq!(lens.len() % 2, 0, "{len}: {lens:?}");
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(max - min < lens.len() as u64, "{len}: {lens:?}");
            } else {
                assert_eq!(lens.len(), 1);
            }
        }
        // 85 MiB of containerd is four blocks, 44 MiB of CNI plugins two, and a 10 MiB
        // runc four short ones.
        assert_eq!(block_lens(85 * MIB).len(), 4);
        assert_eq!(block_lens(44 * MIB), [22 * MIB, 22 * MIB]);
        assert_eq!(block_lens(10 * MIB), [5 * MIB / 2; 4]);
        assert_eq!(block_lens(FOUR_BELOW - 4).len(), 4);
        assert_eq!(block_lens(FOUR_BELOW).len(), 2);
    }

    fn staged(
        dir: &std::path::Path,
        name: &str,
        bytes: &[u8],
        component: ComponentKind,
    ) -> FileNode {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let h = crate::hash::Hashes::of_reader(bytes).unwrap();
        FileNode {
            mode: 0o755,
            size: h.size,
            md5: h.md5,
            sha1: h.sha1,
            sha256: h.sha256,
            source: Source::Staged {
                path,
                origin: format!("asset:{name}"),
                component,
            },
            elf: None,
        }
    }

    fn tree(dir: &std::path::Path, runc: &[u8]) -> FhsTree {
        let mut t = FhsTree::default();
        let big: Vec<u8> = (0..9 * MIB as u32).map(|i| (i % 251) as u8).collect();
        t.add_file(
            "usr/bin/containerd",
            staged(dir, "containerd", &big, ComponentKind::Containerd),
        )
        .unwrap();
        t.add_file(
            "usr/bin/crictl",
            staged(dir, "crictl", b"crictl", ComponentKind::Crictl),
        )
        .unwrap();
        t.add_file(
            "usr/sbin/runc",
            staged(dir, "runc", runc, ComponentKind::Runc),
        )
        .unwrap();
        t.add_inline("etc/crictl.yaml", 0o644, b"runtime-endpoint: x\n".to_vec())
            .unwrap();
        let long = format!("usr/share/doc/{}/copyright", "p".repeat(120));
        t.add_inline(&long, 0o644, vec![b'c'; 700]).unwrap();
        t
    }

    fn read_all(layout: &DataLayout) -> Vec<u8> {
        let mut out = Vec::new();
        for b in layout.blocks() {
            let mut r = layout.reader(b);
            let n = std::io::copy(&mut r, &mut out).unwrap();
            assert_eq!(n, b.len);
        }
        out
    }

    #[test]
    fn the_tar_is_in_parts_with_directories_first_and_tar_reads_it() {
        let dir = tempfile::TempDir::new().unwrap();
        let t = tree(dir.path(), b"runc v1");
        let layout = DataLayout::new(&t, 1_700_000_000);
        let names: Vec<_> = layout.parts.iter().map(|p| p.kind.name()).collect();
        assert_eq!(
            names,
            ["directories", "containerd", "runc", "crictl", "rendered"]
        );
        assert_eq!(
            layout.parts[1].blocks.len(),
            4,
            "containerd is over SPLIT_FROM and under FOUR_BELOW"
        );
        let tar = read_all(&layout);
        assert_eq!(tar.len() as u64, layout.len());

        let mut archive = tar::Archive::new(&tar[..]);
        let mut paths = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            if path == "./usr/sbin/runc" {
                assert_eq!(content, b"runc v1");
            }
            paths.push(path);
        }
        let doc = format!("./usr/share/doc/{}/", "p".repeat(120));
        let expected = [
            "./",
            "./etc/",
            "./usr/",
            "./usr/bin/",
            "./usr/sbin/",
            "./usr/share/",
            "./usr/share/doc/",
            &doc,
            "./usr/bin/containerd",
            "./usr/sbin/runc",
            "./usr/bin/crictl",
            "./etc/crictl.yaml",
            &format!("{doc}copyright"),
        ];
        assert_eq!(paths, expected);

        // GNU tar reads it whole, long name included.
        let file = dir.path().join("data.tar");
        std::fs::write(&file, &tar).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every block's bytes, in order.
    fn block_bytes(layout: &DataLayout) -> Vec<Vec<u8>> {
        layout
            .blocks()
            .iter()
            .map(|&b| {
                let mut v = Vec::new();
                layout.reader(b).read_to_end(&mut v).unwrap();
                v
            })
            .collect()
    }

    #[test]
    fn a_part_is_the_same_bytes_whatever_the_others_hold() {
        let dir = tempfile::TempDir::new().unwrap();
        let a = DataLayout::new(&tree(dir.path(), b"runc v1"), 7);
        let a_bytes = block_bytes(&a);
        let dir2 = tempfile::TempDir::new().unwrap();
        let b = DataLayout::new(&tree(dir2.path(), b"runc v2, longer"), 7);
        let b_bytes = block_bytes(&b);
        let runc = a
            .parts
            .iter()
            .position(|p| p.kind == PartKind::Component(ComponentKind::Runc))
            .unwrap();
        for (i, blk) in a.blocks().iter().enumerate() {
            assert_eq!(
                a_bytes[i] == b_bytes[i],
                blk.part != runc,
                "block {i} of part {}",
                blk.part
            );
        }
        assert_eq!(a.parts[1].identity, b.parts[1].identity);
        assert_ne!(a.parts[runc].identity, b.parts[runc].identity);
    }

    #[test]
    fn a_staged_file_that_shrank_is_an_error() {
        let dir = tempfile::TempDir::new().unwrap();
        let t = tree(dir.path(), b"runc v1");
        let layout = DataLayout::new(&t, 0);
        std::fs::write(dir.path().join("runc"), b"ru").unwrap();
        let runc = layout.blocks().into_iter().find(|b| b.part == 2).unwrap();
        let err = std::io::copy(&mut layout.reader(runc), &mut std::io::sink()).unwrap_err();
        assert!(
            err.to_string()
                .contains("did the file change during the build?"),
            "{err}"
        );
    }
}

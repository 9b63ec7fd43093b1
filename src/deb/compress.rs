//! The compressors a member can be written with. The data member is compressed in frames,
//! each on its own ([`Compression::compress_frame`]): for xz and gzip one frame per block of
//! the data tar ([`super::data`]), an xz block (framed by [`super::xz`]) or a gzip member,
//! which their readers take one after another as one stream; for zstd one frame of the whole
//! tar, because dpkg's zstd reader ends at the end of the first frame. A frame's bytes depend
//! only on its input and the level, never on the number of cores. Small members (control,
//! changelog, indexes) go through one [`Compressor`] behind `io::Write`.

use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::Serialize;

use super::xz;
use crate::error::Error;
use crate::hash::{Sha256, Sha256Hasher};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

/// How much input an encoder is given at a time: liblzma takes in what it is given at once
/// (up to 12 MiB at -6) and compresses it later, so small pieces keep "bytes taken in" true
/// to "bytes compressed", which progress reports; a fixed size also keeps the encoders'
/// input the same pieces on every run.
const PIECE: usize = 64 << 10;

impl Compression {
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zst",
            Compression::Gzip => "gz",
        }
    }

    pub fn default_level(self) -> u32 {
        match self {
            Compression::Xz => 6,
            Compression::Zstd => 19,
            Compression::Gzip => 9,
        }
    }

    /// The encoder library and its version: a block cached by another version is not the
    /// bytes this one makes, so the cache's keys name it. (flate2's pure-Rust backend has
    /// no version to ask; the tool's own version, in every key, stands for it.)
    pub fn encoder(self) -> String {
        match self {
            // SAFETY: takes no arguments and returns a constant.
            Compression::Xz => format!("liblzma {}", unsafe { liblzma_sys::lzma_version_number() }),
            Compression::Zstd => format!("zstd {}", zstd::zstd_safe::version_number()),
            Compression::Gzip => "flate2".to_owned(),
        }
    }

    /// Checks `level` is one the compressor takes.
    pub fn check_level(self, level: u32) -> Result<u32, Error> {
        let max = match self {
            Compression::Xz | Compression::Gzip => 9,
            Compression::Zstd => 22,
        };
        let min = if self == Compression::Gzip { 1 } else { 0 };
        if (min..=max).contains(&level) {
            Ok(level)
        } else {
            Err(Error::invalid(
                "compression level",
                level.to_string(),
                format!("{} takes {min} to {max}", self.extension()),
            ))
        }
    }

    /// Whether each block of the data tar is a frame of its own, so that a rebuild can reuse
    /// the frames of the blocks that did not change. Not for zstd: dpkg (up to 1.23 at
    /// least) stops reading a zstd member at the end of its first frame
    /// (`filter_unzstd_code` in lib/dpkg/compress.c), so its data member is one frame.
    pub fn frame_per_block(self) -> bool {
        self != Compression::Zstd
    }

    /// Compresses the blocks read from `input`, of lengths `lens`, as one frame of a member;
    /// returns the frame whole and the sha256 of each block. xz and gzip use one thread
    /// (the build compresses several frames at once); zstd's one frame uses `threads`.
    /// `progress` is told of each piece of input the encoder has taken in.
    pub fn compress_frame(
        self,
        level: u32,
        threads: u32,
        mut input: impl Read,
        lens: &[u64],
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<(Vec<u8>, Vec<Sha256>)> {
        let total: u64 = lens.iter().sum();
        let mut encoder = FrameWriter::new(self, level, threads, total)?;
        let mut buf = vec![0u8; PIECE];
        let mut hashes = Vec::with_capacity(lens.len());
        let mut done = 0u64;
        for &len in lens {
            let mut hash = Sha256Hasher::default();
            let mut left = len;
            while left > 0 {
                let want = left.min(PIECE as u64) as usize;
                input
                    .read_exact(&mut buf[..want])
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => io::Error::other(format!(
                            "expected {total} bytes of input, found fewer than {}",
                            done + want as u64
                        )),
                        _ => e,
                    })?;
                hash.update(&buf[..want]);
                encoder.write_all(&buf[..want])?;
                left -= want as u64;
                done += want as u64;
                progress(want as u64);
            }
            hashes.push(hash.finish());
        }
        Ok((encoder.finish()?, hashes))
    }

    /// What a member of `frames` (each the start of one [`Compression::compress_frame`]
    /// made, its length, and the length of input it holds) has before the first frame and
    /// after the last: xz's stream header, and its index and footer; nothing for zstd and
    /// gzip. An xz block that does not describe itself as holding its length is an error.
    pub fn framing(self, frames: &[(&[u8], u64, u64)]) -> io::Result<(Vec<u8>, Vec<u8>)> {
        match self {
            Compression::Xz => {
                let mut sizes = Vec::with_capacity(frames.len());
                for (i, &(start, stored, uncompressed)) in frames.iter().enumerate() {
                    match xz::block_sizes(start, stored) {
                        Some(s) if s.uncompressed == uncompressed => sizes.push(s),
                        _ => {
                            return Err(io::Error::other(format!(
                                "block {i} is not an xz block of {uncompressed} bytes"
                            )))
                        }
                    }
                }
                Ok((xz::stream_header(), xz::index_and_footer(&sizes)))
            }
            Compression::Zstd | Compression::Gzip => Ok((Vec::new(), Vec::new())),
        }
    }

    /// How many bytes of a frame's start [`Compression::framing`] reads.
    pub const BLOCK_START: usize = 1024;

    /// A writer that compresses `input_len` bytes into `out`, for small members; call
    /// [`Compressor::finish`] to get `out` back. The length only sizes xz's block (one
    /// block up to 24 MiB): a different amount of input is still compressed correctly.
    pub fn writer<W: Write>(
        self,
        out: W,
        level: u32,
        threads: u32,
        input_len: u64,
    ) -> io::Result<Compressor<W>> {
        Ok(match self {
            Compression::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(threads.max(1))
                    .block_size(input_len.clamp(8 << 20, xz::MAX_BLOCK))
                    .preset(level)
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                Compressor::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
            }
            Compression::Zstd => {
                let mut enc = zstd::Encoder::new(out, level as i32)?;
                enc.include_checksum(true)?;
                // Always the multithreaded encoder, even with one worker: its output differs
                // from the single-threaded one, and must not depend on the core count.
                enc.multithread(threads.max(1))?;
                Compressor::Zstd(enc)
            }
            Compression::Gzip => Compressor::Gzip(
                // No name and mtime 0 in the header: the bytes depend on the data only.
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(3)
                    .write(out, flate2::Compression::new(level)),
            ),
        })
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "xz" => Ok(Compression::Xz),
            "zstd" => Ok(Compression::Zstd),
            "gzip" => Ok(Compression::Gzip),
            other => Err(Error::invalid(
                "compression",
                other,
                "expected xz, zstd or gzip",
            )),
        }
    }
}

/// One frame's encoder.
enum FrameWriter {
    Xz(xz::BlockEncoder),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl FrameWriter {
    fn new(c: Compression, level: u32, threads: u32, len: u64) -> io::Result<FrameWriter> {
        let out = Vec::with_capacity((len / 3) as usize);
        Ok(match c {
            Compression::Xz => FrameWriter::Xz(xz::BlockEncoder::new(level, len)?),
            Compression::Zstd => {
                let mut enc = zstd::Encoder::new(out, level as i32)?;
                enc.include_checksum(true)?;
                enc.include_contentsize(true)?;
                enc.set_pledged_src_size(Some(len))?;
                // Always the multithreaded encoder, even with one worker: its output differs
                // from the single-threaded one, and must not depend on the core count.
                enc.multithread(threads.max(1))?;
                FrameWriter::Zstd(enc)
            }
            Compression::Gzip => FrameWriter::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(3)
                    .write(out, flate2::Compression::new(level)),
            ),
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            FrameWriter::Xz(e) => e.write_all(buf),
            FrameWriter::Zstd(e) => e.write_all(buf),
            FrameWriter::Gzip(e) => e.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            FrameWriter::Xz(e) => e.finish(),
            FrameWriter::Zstd(e) => e.finish(),
            FrameWriter::Gzip(e) => e.finish(),
        }
    }
}

pub enum Compressor<W: Write> {
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> Compressor<W> {
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Xz(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
            Compressor::Gzip(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Xz(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Xz(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::Gzip(e) => e.flush(),
        }
    }
}

/// Gzip with no timestamp or name, for `changelog.Debian.gz`.
pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut w = Compression::Gzip
        .writer(Vec::new(), 9, 1, data.len() as u64)
        .expect("in-memory gzip cannot fail");
    w.write_all(data).expect("in-memory gzip cannot fail");
    w.finish().expect("in-memory gzip cannot fail")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn compress(c: Compression, threads: u32, data: &[u8]) -> Vec<u8> {
        let mut w = c
            .writer(
                Vec::new(),
                c.default_level().min(9),
                threads,
                data.len() as u64,
            )
            .unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn output_does_not_depend_on_thread_count_and_round_trips() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let one = compress(c, 1, &data);
            let two = compress(c, 2, &data);
            assert_eq!(one, two, "{c:?} output differs with thread count");
            let mut back = Vec::new();
            match c {
                Compression::Xz => liblzma::read::XzDecoder::new(&one[..]).read_to_end(&mut back),
                Compression::Zstd => zstd::Decoder::new(&one[..]).unwrap().read_to_end(&mut back),
                Compression::Gzip => flate2::read::GzDecoder::new(&one[..]).read_to_end(&mut back),
            }
            .unwrap();
            assert_eq!(back, data, "{c:?} does not round-trip");
        }
    }

    /// A member of `data` cut into frames at `cuts`, as the build assembles one.
    fn member(c: Compression, data: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut frames = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([&data.len()]) {
            let input = &data[from..to];
            let level = c.default_level().min(9);
            let lens = [input.len() as u64];
            let (frame, sha) = c
                .compress_frame(level, 2, input, &lens, &mut |_| {})
                .unwrap();
            assert_eq!(sha, [Sha256::of(input)]);
            frames.push((frame, input.len() as u64));
            from = to;
        }
        let starts: Vec<(&[u8], u64, u64)> = frames
            .iter()
            .map(|(f, n)| {
                (
                    &f[..f.len().min(Compression::BLOCK_START)],
                    f.len() as u64,
                    *n,
                )
            })
            .collect();
        let (head, tail) = c.framing(&starts).unwrap();
        let mut out = head;
        for (f, _) in &frames {
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&tail);
        out
    }

    fn decompress(c: Compression, bytes: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        match c {
            Compression::Xz => liblzma::read::XzDecoder::new(bytes).read_to_end(&mut back),
            Compression::Zstd => zstd::Decoder::new(bytes).unwrap().read_to_end(&mut back),
            Compression::Gzip => flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut back),
        }
        .unwrap();
        back
    }

    #[test]
    fn frames_make_one_member_each_format_reads_whole() {
        let data: Vec<u8> = (0..1_500_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let one = member(c, &data, &[]);
            let three = member(c, &data, &[10, 2_000_000]);
            assert_eq!(decompress(c, &one), data, "{c:?}");
            assert_eq!(decompress(c, &three), data, "{c:?} in blocks");
            assert_eq!(
                three,
                member(c, &data, &[10, 2_000_000]),
                "{c:?} is not deterministic"
            );
            // The system's own tool reads the frames as one stream too.
            let tool = match c {
                Compression::Xz => "xz",
                Compression::Zstd => "zstd",
                Compression::Gzip => "gzip",
            };
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), &three).unwrap();
            let out = std::process::Command::new(tool)
                .args(["-d", "-c"])
                .arg(tmp.path())
                .output()
                .unwrap_or_else(|e| panic!("{tool}: {e}"));
            assert!(
                out.status.success(),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout == data, "{tool} read other bytes");
        }
    }

    #[test]
    fn a_frame_hashes_each_block_and_needs_all_its_input() {
        let input = &b"twelve bytesand five"[..];
        let (frame, hashes) = Compression::Zstd
            .compress_frame(3, 2, input, &[12, 0, 8], &mut |_| {})
            .unwrap();
        let expected = [b"twelve bytes".as_slice(), b"", b"and five"].map(Sha256::of);
        assert_eq!(hashes, expected);
        assert_eq!(decompress(Compression::Zstd, &frame), input);
        let short = Compression::Xz
            .compress_frame(1, 1, &b"short"[..], &[12], &mut |_| {})
            .unwrap_err();
        let short = short.to_string();
        assert!(short.contains("expected 12 bytes of input"), "{short}");
    }

    #[test]
    fn an_xz_block_of_another_length_is_refused() {
        let (block, _) = Compression::Xz
            .compress_frame(1, 1, &b"twelve bytes"[..], &[12], &mut |_| {})
            .unwrap();
        let n = block.len() as u64;
        assert!(Compression::Xz.framing(&[(&block, n, 12)]).is_ok());
        let err = Compression::Xz.framing(&[(&block, n, 13)]).unwrap_err();
        assert_eq!(err.to_string(), "block 0 is not an xz block of 13 bytes");
    }

    #[test]
    fn gzip_header_has_no_time() {
        let gz = gzip_bytes(b"hello");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME field must be zero");
        assert_eq!(gz[3] & 0x08, 0, "FNAME must not be set");
    }
}

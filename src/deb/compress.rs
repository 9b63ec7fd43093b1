//! The compressors a member can be written with, behind one `io::Write`. xz runs
//! multithreaded with a block size chosen from the input's length, so its output depends
//! only on the input and the level, never on the number of cores.

use std::io::{self, Write};
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Xz,
    Zstd,
    Gzip,
}

/// The largest xz block: 3× the dictionary of level 6 (8 MiB), xz's own default.
const XZ_MAX_BLOCK: u64 = 24 << 20;
/// The smallest block an input is split into: a block shorter than the dictionary costs
/// ratio for little speed.
const XZ_MIN_BLOCK: u64 = 8 << 20;

/// xz's block size for `len` bytes of input. xz compresses one block per thread, so with a
/// fixed size the last round leaves threads idle: 131 MiB in 24 MiB blocks is five full
/// blocks and a short one, and on two cores the last round runs one thread for most of its
/// length. Instead the input is cut into an even number of equal blocks of at most 24 MiB
/// (six of 21.9 MiB there), which keeps two or any even number of threads busy to the end
/// at a cost of about 0.3% in size. The size depends on `len` alone: the stream is the same
/// on every machine.
pub fn xz_block_size(len: u64) -> u64 {
    let blocks = len.div_ceil(XZ_MAX_BLOCK).max(1);
    let blocks = blocks + blocks % 2;
    len.div_ceil(blocks).max(XZ_MIN_BLOCK)
}

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

    /// A writer that compresses `input_len` bytes into `out`; call [`Compressor::finish`]
    /// to get `out` back. The length only tunes xz's blocks (see [`xz_block_size`]): a
    /// different amount of input is still compressed correctly.
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
                    .block_size(xz_block_size(input_len))
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

    #[test]
    fn xz_blocks_are_even_equal_and_bounded() {
        const MIB: u64 = 1 << 20;
        // The real amd64 payload: six equal blocks, not five of 24 MiB and a short one.
        let len = 137_543_168;
        let size = xz_block_size(len);
        assert_eq!(len.div_ceil(size), 6);
        assert!(6 * size - len < 6, "blocks are equal to the byte");
        for len in [
            1,
            5 * MIB,
            16 * MIB,
            17 * MIB,
            48 * MIB,
            49 * MIB,
            500 * MIB,
        ] {
            let size = xz_block_size(len);
            let blocks = len.div_ceil(size);
            assert!(size <= 24 * MIB, "{len}: block {size}");
            assert!(size >= 8 * MIB, "{len}: block {size}");
            if len >= 16 * MIB {
                assert_eq!(blocks % 2, 0, "{len}: {blocks} blocks");
            }
        }
    }

    #[test]
    fn gzip_header_has_no_time() {
        let gz = gzip_bytes(b"hello");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME field must be zero");
        assert_eq!(gz[3] & 0x08, 0, "FNAME must not be set");
    }
}

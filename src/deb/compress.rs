//! The compressors a member can be written with, behind one `io::Write`. xz runs
//! multithreaded with a fixed block size, so its output depends only on the input and the
//! level, never on the number of cores.

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

/// xz's block size: the same on every machine, so the stream is reproducible; 3× the
/// dictionary of level 6 (8 MiB), as xz picks by default.
const XZ_BLOCK_SIZE: u64 = 24 << 20;

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
            Err(Error::Usage(format!(
                "--level {level}: {} takes {min} to {max}",
                self.extension()
            )))
        }
    }

    /// A writer that compresses into `out`; call [`Compressor::finish`] to get `out` back.
    pub fn writer<W: Write>(self, out: W, level: u32, threads: u32) -> io::Result<Compressor<W>> {
        Ok(match self {
            Compression::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(threads.max(1))
                    .block_size(XZ_BLOCK_SIZE)
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
            other => Err(Error::Usage(format!(
                "--compression {other}: expected xz, zstd or gzip"
            ))),
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
        .writer(Vec::new(), 9, 1)
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
            .writer(Vec::new(), c.default_level().min(9), threads)
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
    fn gzip_header_has_no_time() {
        let gz = gzip_bytes(b"hello");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME field must be zero");
        assert_eq!(gz[3] & 0x08, 0, "FNAME must not be set");
    }
}

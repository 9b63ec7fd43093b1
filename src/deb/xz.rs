//! The .xz container around independently compressed blocks (xz-file-format.txt):
//! a stream header, the blocks, an index of their sizes, a footer. liblzma's raw LZMA2
//! encoder makes each block's compressed data; the liblzma crate has no way to emit one
//! block on its own or to write an index for blocks made elsewhere, so the framing is
//! written here. Each block header carries both sizes, as xz's multithreaded encoder
//! writes them, so a multithreaded decoder can work on several blocks at once; at the same
//! block boundaries the bytes are the ones `xz -T` writes (a test holds them to it).

use std::io::{self, Write};

use crc::{Crc, Table, CRC_32_ISO_HDLC, CRC_64_XZ};

static CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_XZ);

const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
const FOOTER_MAGIC: [u8; 2] = *b"YZ";
/// Stream flags: no reserved bits, check type 0x04 (CRC64).
const STREAM_FLAGS: [u8; 2] = [0, 0x04];
const CHECK_LEN: u64 = 8;
/// xz's own block size at -6 (3× the dictionary), which small members are written with.
pub const MAX_BLOCK: u64 = 24 << 20;
const FILTER_LZMA2: u8 = 0x21;
/// Block flags: one filter, compressed and uncompressed sizes present.
const BLOCK_FLAGS: u8 = 0x40 | 0x80;

/// liblzma's dictionary size for each preset level (`dict_pow2` in lzma_encoder_presets.c).
/// It is set explicitly, so the header's dictionary property cannot disagree with the
/// encoder.
pub fn dict_size(level: u32) -> u32 {
    const POW2: [u8; 10] = [18, 20, 21, 22, 22, 23, 23, 24, 25, 26];
    1 << POW2[level.min(9) as usize]
}

/// The LZMA2 filter's one property byte for `dict` (liblzma's lzma_lzma2_props_encode):
/// the size rounded up to 2^n or 2^n + 2^(n-1).
fn dict_property(dict: u32) -> u8 {
    let dict = dict.max(4096);
    (0u8..40)
        .find(|&b| (2 | (b as u64 & 1)) << (b / 2 + 11) >= dict as u64)
        .unwrap_or(40)
}

fn vli(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a VLI at `*pos`, advancing it.
fn read_vli(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for i in 0..9 {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A zero final byte after the first is not the shortest encoding: invalid.
            return (i == 0 || b != 0).then_some(n);
        }
    }
    None
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

pub fn stream_header() -> Vec<u8> {
    let mut out = HEADER_MAGIC.to_vec();
    out.extend_from_slice(&STREAM_FLAGS);
    out.extend_from_slice(&CRC32.checksum(&STREAM_FLAGS).to_le_bytes());
    out
}

/// What the index records of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizes {
    /// Header, compressed data and check, without the padding.
    pub unpadded: u64,
    pub uncompressed: u64,
}

/// The index of `blocks` and the stream footer: everything after the last block.
pub fn index_and_footer(blocks: &[BlockSizes]) -> Vec<u8> {
    let mut index = vec![0u8];
    vli(&mut index, blocks.len() as u64);
    for b in blocks {
        vli(&mut index, b.unpadded);
        vli(&mut index, b.uncompressed);
    }
    pad4(&mut index);
    let crc = CRC32.checksum(&index);
    index.extend_from_slice(&crc.to_le_bytes());

    let backward = (index.len() as u32 / 4 - 1).to_le_bytes();
    let mut tail = backward.to_vec();
    tail.extend_from_slice(&STREAM_FLAGS);
    let crc = CRC32.checksum(&tail);
    index.extend_from_slice(&crc.to_le_bytes());
    index.extend_from_slice(&tail);
    index.extend_from_slice(&FOOTER_MAGIC);
    index
}

fn block_header(compressed: u64, uncompressed: u64, dict: u32) -> Vec<u8> {
    let mut h = vec![0u8, BLOCK_FLAGS];
    vli(&mut h, compressed);
    vli(&mut h, uncompressed);
    h.extend_from_slice(&[FILTER_LZMA2, 1, dict_property(dict)]);
    pad4(&mut h);
    h[0] = ((h.len() + 4) / 4 - 1) as u8;
    let crc = CRC32.checksum(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// Reads the sizes a block made by [`BlockEncoder`] records in its header, checking the
/// header's CRC32 and that `len`, the block's length with padding and check, agrees.
pub fn block_sizes(start: &[u8], len: u64) -> Option<BlockSizes> {
    let header_len = (usize::from(*start.first()?) + 1) * 4;
    let header = start.get(..header_len)?;
    let (body, crc) = header.split_at(header_len - 4);
    if CRC32.checksum(body).to_le_bytes() != crc || body[1] != BLOCK_FLAGS {
        return None;
    }
    let mut pos = 2;
    let compressed = read_vli(body, &mut pos)?;
    let uncompressed = read_vli(body, &mut pos)?;
    let total = header_len as u64 + compressed.next_multiple_of(4) + CHECK_LEN;
    (total == len).then_some(BlockSizes {
        unpadded: header_len as u64 + compressed + CHECK_LEN,
        uncompressed,
    })
}

/// One xz block from the bytes written to it: LZMA2 at a preset level, one thread, its
/// check a CRC64 of the input. [`BlockEncoder::finish`] returns the whole block (header,
/// data, padding, check), kept in memory as xz's own multithreaded encoder keeps each
/// block: the header, which comes first, records the compressed size.
pub struct BlockEncoder {
    encoder: liblzma::write::XzEncoder<Vec<u8>>,
    crc: crc::Digest<'static, u64, Table<16>>,
    dict: u32,
}

impl BlockEncoder {
    pub fn new(level: u32, input_len: u64) -> io::Result<BlockEncoder> {
        let dict = dict_size(level);
        let mut opts = liblzma::stream::LzmaOptions::new_preset(level).map_err(io::Error::other)?;
        opts.dict_size(dict);
        let mut filters = liblzma::stream::Filters::new();
        filters.lzma2(&opts);
        let stream =
            liblzma::stream::Stream::new_raw_encoder(&filters).map_err(io::Error::other)?;
        // Most programs compress to under a third; growing past that is amortised.
        let out = Vec::with_capacity((input_len / 3) as usize);
        Ok(BlockEncoder {
            encoder: liblzma::write::XzEncoder::new_stream(out, stream),
            crc: CRC64.digest(),
            dict,
        })
    }

    pub fn finish(self) -> io::Result<Vec<u8>> {
        let uncompressed = self.encoder.total_in();
        let data = self.encoder.finish()?;
        let mut block = block_header(data.len() as u64, uncompressed, self.dict);
        block.reserve(data.len() + 12);
        block.extend_from_slice(&data);
        pad4(&mut block);
        block.extend_from_slice(&self.crc.finalize().to_le_bytes());
        Ok(block)
    }
}

impl Write for BlockEncoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.encoder.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn block(level: u32, data: &[u8]) -> Vec<u8> {
        let mut e = BlockEncoder::new(level, data.len() as u64).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn stream(level: u32, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = stream_header();
        let mut sizes = Vec::new();
        for p in parts {
            let b = block(level, p);
            sizes.push(block_sizes(&b, b.len() as u64).expect("own block parses"));
            out.extend_from_slice(&b);
        }
        out.extend_from_slice(&index_and_footer(&sizes));
        out
    }

    /// Bytes that compress to about 80% with xz: random, every fourth byte zero.
    fn mostly_random(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if i % 4 == 0 {
                    0
                } else {
                    seed as u8
                }
            })
            .collect()
    }

    #[test]
    fn dictionary_properties_match_liblzmas() {
        // xz --robot -lvv shows these for the presets: 256 KiB is 12, 8 MiB is 22.
        assert_eq!(dict_property(dict_size(0)), 12);
        assert_eq!(dict_property(dict_size(6)), 22);
        assert_eq!(dict_property(dict_size(9)), 28);
        assert_eq!(dict_property(3 << 20), 19);
        assert_eq!(dict_property(4096), 0);
    }

    #[test]
    fn vli_round_trips_and_refuses_overlong_forms() {
        for n in [0, 1, 127, 128, 300, 1 << 21, (1 << 28) + 5, u64::MAX >> 1] {
            let mut v = Vec::new();
            vli(&mut v, n);
            let mut pos = 0;
            assert_eq!(read_vli(&v, &mut pos), Some(n));
            assert_eq!(pos, v.len());
        }
        assert_eq!(read_vli(&[0x80, 0x00], &mut 0), None);
    }

    #[test]
    fn the_stream_is_the_one_xz_t_writes_at_the_same_boundaries() {
        // Blocks of 3 MiB that stay over 2 MiB compressed: liblzma's multithreaded encoder
        // sizes its headers for the largest block it could emit, which takes as many bytes
        // as the real sizes here.
        const BLOCK: usize = 3 << 20;
        let data = mostly_random(3 * BLOCK, 7);
        let ours = stream(
            6,
            &[&data[..BLOCK], &data[BLOCK..2 * BLOCK], &data[2 * BLOCK..]],
        );
        let stream = liblzma::stream::MtStreamBuilder::new()
            .threads(2)
            .block_size(BLOCK as u64)
            .preset(6)
            .check(liblzma::stream::Check::Crc64)
            .encoder()
            .unwrap();
        let mut xz = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        xz.write_all(&data).unwrap();
        let theirs = xz.finish().unwrap();
        assert_eq!(ours.len(), theirs.len());
        assert!(ours == theirs, "the streams differ");
    }

    #[test]
    fn small_and_empty_blocks_decode_with_xz_itself() {
        let parts: [&[u8]; 4] = [b"hello ", b"", &[7u8; 100_000], b"world"];
        let xz = stream(0, &parts);
        let mut back = Vec::new();
        liblzma::read::XzDecoder::new(&xz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, parts.concat());
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &xz).unwrap();
        let out = std::process::Command::new("xz")
            .args(["--test", "--verbose", "--verbose"])
            .arg(tmp.path())
            .output()
            .expect("xz runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = std::process::Command::new("xz")
            .args(["--robot", "--list"])
            .arg(tmp.path())
            .output()
            .unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        let blocks = list.lines().find(|l| l.starts_with("file\t")).unwrap();
        assert_eq!(blocks.split('\t').nth(2), Some("4"), "{list}");
    }

    #[test]
    fn block_sizes_refuse_a_damaged_header_or_length() {
        let b = block(1, b"some bytes to compress");
        let len = b.len() as u64;
        assert!(block_sizes(&b, len).is_some());
        assert!(block_sizes(&b, len + 4).is_none());
        let mut bad = b.clone();
        bad[3] ^= 1;
        assert!(block_sizes(&bad, len).is_none());
        assert!(block_sizes(&b[..3], len).is_none());
    }
}

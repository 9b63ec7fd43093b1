//! Reads a `.deb` back: its ar members, the control member's files and a listing of the
//! data member with each file's md5. Used to check what was built, and bounded so that a
//! hostile file cannot make it allocate without limit.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::hash::Md5Hasher;

/// Files up to this size are kept in memory by [`read_deb`]; larger ones are only hashed.
pub const KEEP_BYTES: u64 = 64 * 1024;

/// Bounds on what a hostile package can make the reader do: entries per member, bytes kept
/// in memory per member, bytes decompressed per member, and ar members.
const MAX_ENTRIES: usize = 100_000;
const MAX_KEPT_BYTES: u64 = 32 << 20;
const MAX_UNPACKED_BYTES: u64 = 4 << 30;
const MAX_MEMBERS: usize = 16;

#[derive(Debug, Clone)]
pub struct DataEntry {
    /// As stored, e.g. `./usr/bin/ctr` or `./usr/`.
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub md5: String,
    /// The content, for files no larger than [`KEEP_BYTES`].
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct DebContents {
    /// `(name, size, mtime)` of each ar member, in order.
    pub members: Vec<(String, u64, u64)>,
    pub debian_binary: Vec<u8>,
    /// Files of the control member by name (`control`, `md5sums`, …), with their modes.
    pub control_files: BTreeMap<String, (u32, Vec<u8>)>,
    pub data: Vec<DataEntry>,
}

impl DebContents {
    /// The control file's fields, continuation lines joined with `\n`.
    pub fn control_fields(&self) -> BTreeMap<String, String> {
        let text = self
            .control_files
            .get("control")
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        parse_paragraph(&text)
    }

    pub fn data_entry(&self, path: &str) -> Option<&DataEntry> {
        self.data.iter().find(|e| e.path == path)
    }
}

/// Parses one deb822 paragraph.
pub fn parse_paragraph(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &last {
                let v: &mut String = fields.get_mut(k).expect("field exists");
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.to_owned(), v.trim().to_owned());
            last = Some(k.to_owned());
        }
    }
    fields
}

/// How errors about the package `shown` name the member or entry at fault.
fn archive_error(shown: &str) -> impl Fn(&str, String) -> Error + '_ {
    move |entry, message| Error::Archive {
        archive: shown.to_owned(),
        entry: entry.to_owned(),
        message,
    }
}

pub fn read_deb(path: &Path) -> Result<DebContents> {
    let shown = path.display().to_string();
    let bad = archive_error(&shown);
    let mut ar = ar::Archive::new(BufReader::new(File::open(path).at(path)?));
    let mut out = DebContents {
        members: Vec::new(),
        debian_binary: Vec::new(),
        control_files: BTreeMap::new(),
        data: Vec::new(),
    };
    while let Some(member) = ar.next_entry() {
        let mut member = member.map_err(|e| bad("(ar)", format!("not a valid ar archive: {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        if out.members.len() >= MAX_MEMBERS {
            return Err(bad(
                &name,
                format!("more than {MAX_MEMBERS} ar members; not a package"),
            ));
        }
        let size = member.header().size();
        out.members
            .push((name.clone(), size, member.header().mtime()));
        if name == "debian-binary" {
            (&mut member)
                .take(64)
                .read_to_end(&mut out.debian_binary)
                .map_err(|e| bad(&name, e.to_string()))?;
        } else if let Some(ext) = name.strip_prefix("control.tar") {
            for e in read_tar(
                decompressor(ext, &mut member, &name, &shown)?,
                &name,
                &shown,
            )? {
                if let Some(content) = e.content {
                    let file = e.path.trim_start_matches("./").to_owned();
                    if !file.is_empty() {
                        out.control_files.insert(file, (e.mode, content));
                    }
                }
            }
        } else if let Some(ext) = name.strip_prefix("data.tar") {
            out.data = read_tar(
                decompressor(ext, &mut member, &name, &shown)?,
                &name,
                &shown,
            )?;
        }
    }
    Ok(out)
}

/// Checks the ar framing of a package without decompressing anything: the magic, member
/// headers whose sizes add up to exactly the file's length, and the members dpkg needs in
/// the order it needs them. Cheap enough for every package a publish takes in; it catches
/// truncated and padded files that reading the control member alone would not.
pub fn check_layout(path: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let shown = path.display().to_string();
    let bad = archive_error(&shown);
    let mut f = File::open(path).at(path)?;
    let len = f.metadata().at(path)?.len();
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)
        .map_err(|_| bad("(ar)", "too short to be a package".into()))?;
    if &magic != b"!<arch>\n" {
        return Err(bad("(ar)", "not an ar archive (no !<arch> magic)".into()));
    }
    let mut names = Vec::new();
    let mut pos = 8u64;
    while pos < len {
        let mut h = [0u8; 60];
        f.read_exact(&mut h)
            .map_err(|_| bad("(ar)", format!("member header cut short at byte {pos}")))?;
        let name = String::from_utf8_lossy(&h[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_owned();
        let size: u64 = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad(&name, "member header has no valid size".into()))?;
        if &h[58..60] != b"`\n" {
            return Err(bad(&name, "member header is malformed".into()));
        }
        let end = pos + 60 + size;
        if end > len {
            return Err(bad(
                &name,
                format!(
                    "member needs {size} bytes but the file ends {} bytes early: truncated",
                    end - len
                ),
            ));
        }
        pos = end + size % 2;
        f.seek(SeekFrom::Start(pos)).at(path)?;
        names.push(name);
        if names.len() > MAX_MEMBERS {
            return Err(bad(
                "(ar)",
                format!("more than {MAX_MEMBERS} ar members; not a package"),
            ));
        }
    }
    match names.as_slice() {
        [d, c, data, rest @ ..]
            if d == "debian-binary"
                && c.starts_with("control.tar")
                && data.starts_with("data.tar")
                && rest.iter().all(|r| r.starts_with('_')) => Ok(()),
        _ => Err(bad(
            "(ar)",
            format!("members are {names:?}; expected debian-binary, control.tar.*, data.tar.*, then only _-prefixed signatures"),
        )),
    }
}

/// The `control` file of a package, read without touching its data member, so indexing a
/// package costs the same whatever its payload.
pub fn read_control(path: &Path) -> Result<String> {
    read_control_member(path).map(|m| m.control)
}

/// What a repository needs from a package's control member besides the control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMember {
    pub control: String,
    /// The debconf `templates` file: the questions the package asks at install time.
    pub templates: Option<String>,
}

/// Debconf templates carry every translation of every question: large for a few
/// questions, but bounded all the same.
const MAX_TEMPLATES_BYTES: u64 = 1 << 20;

/// The `control` and `templates` files of a package, in one pass over its control member.
pub fn read_control_member(path: &Path) -> Result<ControlMember> {
    let shown = path.display().to_string();
    let bad = archive_error(&shown);
    let mut ar = ar::Archive::new(BufReader::new(File::open(path).at(path)?));
    while let Some(member) = ar.next_entry() {
        let mut member = member.map_err(|e| bad("(ar)", format!("not a valid ar archive: {e}")))?;
        let name = String::from_utf8_lossy(member.header().identifier()).into_owned();
        let Some(ext) = name.strip_prefix("control.tar") else {
            continue;
        };
        let ext = ext.to_owned();
        let r = decompressor(&ext, &mut member, &name, &shown)?;
        let mut tar = tar::Archive::new(r);
        let unreadable = |e: io::Error| bad(&name, format!("unreadable tar: {e}"));
        let (mut control, mut templates) = (None, None);
        for entry in tar.entries().map_err(unreadable)? {
            let mut entry = entry.map_err(unreadable)?;
            let (slot, file, max) = match entry.path_bytes().as_ref() {
                b"./control" | b"control" => (&mut control, "control", KEEP_BYTES),
                b"./templates" | b"templates" => (&mut templates, "templates", MAX_TEMPLATES_BYTES),
                _ => continue,
            };
            if slot.is_some() {
                continue;
            }
            if file == "templates" && entry.size() > max {
                return Err(bad(
                    &name,
                    format!(
                        "{file}: {} bytes, more than the {max} it may have",
                        entry.size()
                    ),
                ));
            }
            let mut text = String::new();
            (&mut entry)
                .take(max)
                .read_to_string(&mut text)
                .map_err(|e| bad(&name, format!("{file}: {e}")))?;
            *slot = Some(text);
        }
        // Read to the end, so the compressor's own checksum is checked: a corrupt member
        // must not be indexed because its first file happened to decompress.
        let mut rest = tar.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(unreadable)?;
        let control = control.ok_or_else(|| bad(&name, "has no control file".into()))?;
        return Ok(ControlMember { control, templates });
    }
    Err(bad(
        "control.tar",
        "missing: this is not a Debian package".into(),
    ))
}

fn decompressor<'a>(
    ext: &str,
    r: &'a mut dyn Read,
    member: &str,
    shown: &str,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match ext {
        ".xz" => Box::new(liblzma::read::XzDecoder::new(r)),
        ".zst" => Box::new(zstd::Decoder::new(r).map_err(|e| Error::Archive {
            archive: shown.to_owned(),
            entry: member.to_owned(),
            message: e.to_string(),
        })?),
        // A data member is several gzip members, one per block, as `gzip -d` and dpkg's
        // zlib read them.
        ".gz" => Box::new(flate2::read::MultiGzDecoder::new(r)),
        "" => Box::new(r),
        other => {
            return Err(Error::Archive {
                archive: shown.to_owned(),
                entry: member.to_owned(),
                message: format!("unknown compression {other:?}"),
            })
        }
    })
}

fn read_tar(r: impl Read, member: &str, shown: &str) -> Result<Vec<DataEntry>> {
    let bad = |e: io::Error| Error::Archive {
        archive: shown.to_owned(),
        entry: member.to_owned(),
        message: format!("unreadable tar: {e}"),
    };
    let limit = |message: String| Error::Archive {
        archive: shown.to_owned(),
        entry: member.to_owned(),
        message,
    };
    let mut tar = tar::Archive::new(r);
    let mut out = Vec::new();
    let (mut kept, mut unpacked) = (0u64, 0u64);
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if out.len() >= MAX_ENTRIES {
            return Err(limit(format!(
                "more than {MAX_ENTRIES} entries; refusing it"
            )));
        }
        let h = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = entry.size();
        unpacked = unpacked.saturating_add(size);
        if unpacked > MAX_UNPACKED_BYTES {
            return Err(limit(format!(
                "unpacks to more than {MAX_UNPACKED_BYTES} bytes; refusing it"
            )));
        }
        if size <= KEEP_BYTES {
            kept += size;
            if kept > MAX_KEPT_BYTES {
                return Err(limit(format!(
                    "holds more than {MAX_KEPT_BYTES} bytes of small files; refusing it"
                )));
            }
        }
        let mut hasher = Md5Hasher::default();
        let mut content = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(bad)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if size <= KEEP_BYTES && content.len() as u64 + (n as u64) <= KEEP_BYTES {
                content.extend_from_slice(&buf[..n]);
            }
        }
        out.push(DataEntry {
            path,
            kind: h.entry_type(),
            mode: h.mode().map_err(bad)?,
            uid: h.uid().map_err(bad)?,
            gid: h.gid().map_err(bad)?,
            mtime: h.mtime().map_err(bad)?,
            size,
            md5: hasher.finish(),
            content: (size <= KEEP_BYTES && h.entry_type().is_file()).then_some(content),
        });
    }
    Ok(out)
}

//! `repo verify`: reads a repository back — the directory a publish wrote, or a deployed
//! copy over HTTP — the way apt reads it, and checks every byte a client could be given:
//! `InRelease` and `Release.gpg` signed by a key of the keyring and saying the same thing;
//! the Release current (Date, Valid-Until) and naming its suite; every index it lists with
//! the listed size and hashes, at its plain name and at its by-hash names, the compressed
//! ones decompressing to the uncompressed one; every pool file each `Packages` entry names
//! with its size, SHA256 and MD5. The first file at fault is named, in the order apt would
//! come to it. A finished publish passes; while one is being written or copied, the plain
//! indexes are ahead of `InRelease` by design, and this says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fetch::Remote;
use crate::hash::{sha256_hex, sha512_hex, PackageHashes};
use crate::listener::{Event, Listener, Stage};
use crate::render::rfc2822;
use crate::sign::{verify_detached, Keyring};

use super::deb822;
use super::packages::{self, Entry};
use super::plan::MAX_AHEAD;
use super::release::Release;
use super::CLIENT_NAME;

/// The largest Release, InRelease or Release.gpg believed.
const MAX_RELEASE_BYTES: u64 = 16 << 20;
/// The largest index believed (Debian's own largest `Packages` is well under this).
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// Where a repository is read from.
pub enum Location {
    Dir(PathBuf),
    /// A deployed copy; only [`crate::fetch`] touches the network.
    Url(Remote),
}

impl Location {
    /// `http://` and `https://` are a web server; `file://` and anything else a directory.
    pub fn parse(s: &str) -> Result<Location> {
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Location::Url(Remote::new(s)?));
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(Location::Dir(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(Error::invalid(
                "repository",
                s,
                "expected a directory, or an http://, https:// or file:// URL",
            ));
        }
        Ok(Location::Dir(PathBuf::from(s)))
    }

    /// How messages name `rel`: a path or a URL.
    pub fn shown(&self, rel: &str) -> String {
        match self {
            Location::Dir(root) => root.join(rel).display().to_string(),
            Location::Url(remote) => remote.url(rel),
        }
    }

    fn open(&self, rel: &str) -> Result<Option<Box<dyn Read + '_>>> {
        match self {
            Location::Dir(root) => {
                let path = root.join(rel);
                match File::open(&path) {
                    Ok(f) => Ok(Some(Box::new(f))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::Io { path, source: e }),
                }
            }
            Location::Url(remote) => Ok(remote.open(rel)?.map(|b| Box::new(b) as Box<dyn Read>)),
        }
    }

    fn read_error(&self, rel: &str, e: io::Error) -> Error {
        match self {
            Location::Dir(root) => Error::Io {
                path: root.join(rel),
                source: e,
            },
            Location::Url(remote) => Error::Fetch {
                url: remote.url(rel),
                message: e.to_string(),
            },
        }
    }

    /// The whole of `rel`, at most `max` bytes of it; `None` when there is no such file.
    fn read(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(r) = self.open(rel)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        r.take(max + 1)
            .read_to_end(&mut out)
            .map_err(|e| self.read_error(rel, e))?;
        if out.len() as u64 > max {
            return Err(self.fault(rel, format!("larger than {max} bytes; not believed")));
        }
        Ok(Some(out))
    }

    fn fault(&self, rel: &str, message: String) -> Error {
        Error::RepoCheck {
            file: self.shown(rel),
            message,
        }
    }

    /// The suites to check when none is named: every directory under `dists/`, or, since a
    /// web server cannot be listed, the suite the repository's `.sources` file names.
    fn suites(&self) -> Result<Vec<String>> {
        let none = |message: String| Error::NoSuite {
            repo: self.shown(""),
            message,
        };
        match self {
            Location::Dir(root) => {
                if !root.is_dir() {
                    return Err(self.fault("", "not a directory".into()));
                }
                let dists = root.join("dists");
                let mut out = Vec::new();
                if let Ok(rd) = std::fs::read_dir(&dists) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            out.push(e.file_name().to_string_lossy().into_owned());
                        }
                    }
                }
                out.sort();
                if out.is_empty() {
                    return Err(none("holds no suite under dists/".into()));
                }
                Ok(out)
            }
            Location::Url(_) => {
                let rel = format!("{CLIENT_NAME}.sources");
                let Some(bytes) = self.read(&rel, MAX_RELEASE_BYTES)? else {
                    return Err(none(format!(
                        "a web server cannot be listed, and it has no {rel} naming a suite: name the suite to verify"
                    )));
                };
                let suites: Vec<String> = deb822::parse(&String::from_utf8_lossy(&bytes))
                    .ok()
                    .and_then(|ps| Some(ps.first()?.get("Suites")?.to_owned()))
                    .map(|s| s.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default();
                if suites.is_empty() {
                    return Err(self.fault(&rel, "names no suite (no Suites: field)".into()));
                }
                Ok(suites)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The suite to check; `None`: every suite there is (see [`Location`]).
    pub suite: Option<String>,
    /// The clock, Unix seconds: a Release from the future or past its Valid-Until is
    /// refused, as apt refuses it.
    pub now: u64,
}

/// What a verified suite holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteVerified {
    pub suite: String,
    pub date: u64,
    pub valid_until: Option<u64>,
    /// The key that made the first good signature on `Release.gpg`.
    pub signed_by: String,
    /// Indexes the Release lists, and their by-hash copies checked.
    pub indexes: usize,
    pub by_hash: usize,
    /// Stanzas over every index, and the distinct pool files they name.
    pub packages: usize,
    pub pool_files: usize,
    pub pool_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub suites: Vec<SuiteVerified>,
}

/// A pool file as read: what every entry naming it must agree with.
#[derive(Clone)]
struct PoolFile {
    size: u64,
    sha256: String,
    md5: String,
}

/// Checks the repository at `location` against `keyring`; the error names the first file
/// at fault. Pool files shared by several suites are read once.
pub fn verify(
    location: &Location,
    keyring: &Keyring,
    opts: &VerifyOptions,
    listener: &dyn Listener,
) -> Result<Verified> {
    if keyring.keys().is_empty() {
        return Err(Error::Key {
            path: keyring.shown().into(),
            message: "holds no public key".into(),
        });
    }
    if let Location::Dir(root) = location {
        if !root.is_dir() {
            return Err(location.fault("", "not a directory".into()));
        }
    }
    let suites = match &opts.suite {
        Some(s) => vec![s.clone()],
        None => location.suites()?,
    };
    let mut pool = BTreeMap::new();
    let mut out = Vec::new();
    for suite in suites {
        out.push(verify_suite(
            location, keyring, &suite, opts.now, &mut pool, listener,
        )?);
    }
    Ok(Verified { suites: out })
}

fn verify_suite(
    loc: &Location,
    keyring: &Keyring,
    suite: &str,
    now: u64,
    pool: &mut BTreeMap<String, PoolFile>,
    listener: &dyn Listener,
) -> Result<SuiteVerified> {
    let dir = format!("dists/{suite}");
    let (release, text, signed_by) = signed_release(loc, keyring, &dir)?;
    check_current(loc, &dir, suite, &release, now)?;
    let by_hash = deb822::parse(&text)
        .ok()
        .and_then(|ps| Some(ps.first()?.get("Acquire-By-Hash")? == "yes"))
        .unwrap_or(false);
    let (plain, copies) = check_indexes(loc, &dir, &release, by_hash)?;
    let entries = packages_indexes(loc, &dir, &release, &plain)?;
    let checked = check_pool(loc, &dir, &entries, pool, listener)?;
    Ok(SuiteVerified {
        suite: suite.to_owned(),
        date: release.date,
        valid_until: release.valid_until,
        signed_by,
        indexes: release.files.len(),
        by_hash: copies,
        packages: checked.entries,
        pool_files: checked.files,
        pool_bytes: checked.bytes,
    })
}

/// What apt checks of a Release before it reads on: the suite it is served as, and that it
/// is neither from the future nor expired.
fn check_current(
    loc: &Location,
    dir: &str,
    suite: &str,
    release: &Release,
    now: u64,
) -> Result<()> {
    let fault = |message: String| Err(loc.fault(&format!("{dir}/InRelease"), message));
    if release.suite != suite && release.codename != suite {
        return fault(format!(
            "says Suite: {} and Codename: {}, but is served as {dir}: apt refuses it as a conflicting distribution",
            release.suite, release.codename
        ));
    }
    if release.date > now + MAX_AHEAD {
        return fault(format!(
            "is dated {}, {} s after this machine's clock ({}): apt refuses it as not valid yet",
            rfc2822(release.date),
            release.date - now,
            rfc2822(now)
        ));
    }
    if let Some(v) = release.valid_until.filter(|&v| v <= now) {
        return fault(format!(
            "expired at {} (Valid-Until): apt refuses it; publish again to re-sign it",
            rfc2822(v)
        ));
    }
    Ok(())
}

/// Every file the Release lists, at its plain name and (with `Acquire-By-Hash`) its by-hash
/// names; returns the files by their listed path, and how many by-hash copies were checked.
fn check_indexes(
    loc: &Location,
    dir: &str,
    release: &Release,
    by_hash: bool,
) -> Result<(BTreeMap<String, Vec<u8>>, usize)> {
    let fault = |rel: &str, message: String| loc.fault(rel, message);
    let mut plain = BTreeMap::new();
    let mut copies = 0;
    for f in &release.files {
        let rel = format!("{dir}/{}", f.path);
        let bytes = loc
            .read(&rel, MAX_INDEX_BYTES)?
            .ok_or_else(|| fault(&rel, "missing: InRelease lists it".into()))?;
        check_listed(&bytes, f.size, &f.sha256, f.sha512.as_deref()).map_err(|m| {
            fault(
                &rel,
                format!("{m}: a publish or a copy of it has not finished, or the file was changed"),
            )
        })?;
        if by_hash {
            let parent = Path::new(&f.path)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let hashes = [("SHA256", Some(&f.sha256)), ("SHA512", f.sha512.as_ref())];
            for (algo, hash) in hashes {
                let Some(hash) = hash else { continue };
                let copy = format!("{dir}/{parent}/by-hash/{algo}/{hash}");
                let got = loc.read(&copy, MAX_INDEX_BYTES)?.ok_or_else(|| {
                    fault(
                        &copy,
                        format!(
                            "missing: the by-hash copy of {} that apt asks for first",
                            f.path
                        ),
                    )
                })?;
                if got != bytes {
                    return Err(fault(
                        &copy,
                        format!(
                            "stale: its content (sha256 {}) is not the {} its name says; apt refuses it with Hash Sum mismatch",
                            sha256_hex(&got),
                            f.path
                        ),
                    ));
                }
                copies += 1;
            }
        }
        plain.insert(f.path.clone(), bytes);
    }
    Ok((plain, copies))
}

/// The entries of every uncompressed `Packages` the Release lists, by the index's path; a
/// compressed one must decompress to it, and must not be listed without it.
fn packages_indexes(
    loc: &Location,
    dir: &str,
    release: &Release,
    plain: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<(String, Vec<Entry>)>> {
    let fault = |rel: &str, message: String| loc.fault(rel, message);
    let mut out = Vec::new();
    for f in &release.files {
        let Some((index_dir, name)) = f.path.rsplit_once('/') else {
            continue;
        };
        if !name.starts_with("Packages") {
            continue;
        }
        let uncompressed = format!("{index_dir}/Packages");
        let Some(text) = plain.get(&uncompressed) else {
            return Err(fault(
                &format!("{dir}/InRelease"),
                format!(
                    "lists {} but not {uncompressed}: apt 2.6 then fetches no index at all",
                    f.path
                ),
            ));
        };
        let rel = format!("{dir}/{}", f.path);
        if name != "Packages" {
            let decompressed =
                decompress(name, &plain[&f.path], text.len() as u64).map_err(|m| fault(&rel, m))?;
            if decompressed != *text {
                return Err(fault(
                    &rel,
                    format!("does not decompress to {uncompressed}: clients would see other packages depending on which they fetch"),
                ));
            }
            continue;
        }
        let text = std::str::from_utf8(text).map_err(|_| fault(&rel, "not UTF-8 text".into()))?;
        out.push((
            rel.clone(),
            packages::parse(text).map_err(|m| fault(&rel, m))?,
        ));
    }
    Ok(out)
}

/// What the pool check counted.
struct PoolChecked {
    entries: usize,
    files: usize,
    bytes: u64,
}

/// Every pool file the entries name, each read once (across suites too, through `pool`),
/// reported as [`Stage::Hash`] progress.
fn check_pool(
    loc: &Location,
    dir: &str,
    entries: &[(String, Vec<Entry>)],
    pool: &mut BTreeMap<String, PoolFile>,
    listener: &dyn Listener,
) -> Result<PoolChecked> {
    let names: BTreeSet<&String> = entries
        .iter()
        .flat_map(|(_, es)| es.iter().map(|e| &e.filename))
        .collect();
    let total = names.len() as u64;
    let stage_name = format!("pool files of {dir}");
    listener.event(Event::Began {
        stage: Stage::Hash,
        name: stage_name.clone(),
    });
    let mut done = BTreeSet::new();
    let mut checked = PoolChecked {
        entries: 0,
        files: 0,
        bytes: 0,
    };
    let result = entries.iter().try_for_each(|(index, es)| {
        es.iter().try_for_each(|e| {
            checked.entries += 1;
            let got = match pool.get(&e.filename) {
                Some(p) => p.clone(),
                None => {
                    let p = read_pool_file(loc, index, e)?;
                    pool.insert(e.filename.clone(), p.clone());
                    p
                }
            };
            check_entry(loc, index, e, &got)?;
            if done.insert(e.filename.clone()) {
                checked.bytes += got.size;
                listener.event(Event::Progress {
                    stage: Stage::Hash,
                    name: stage_name.clone(),
                    done: done.len() as u64,
                    total,
                });
            }
            Ok::<_, Error>(())
        })
    });
    listener.event(Event::Ended {
        stage: Stage::Hash,
        name: stage_name,
    });
    result?;
    checked.files = done.len();
    Ok(checked)
}

/// `InRelease`, `Release` and `Release.gpg` of `dir`: both signatures good, and both files
/// saying the same. Returns the Release, its text and the key `Release.gpg` is signed by.
fn signed_release(
    loc: &Location,
    keyring: &Keyring,
    dir: &str,
) -> Result<(Release, String, String)> {
    let in_release = format!("{dir}/InRelease");
    let release_rel = format!("{dir}/Release");
    let gpg_rel = format!("{dir}/Release.gpg");
    let signed = match loc.read(&in_release, MAX_RELEASE_BYTES)? {
        Some(b) => b,
        None => {
            let message = match loc.read(&release_rel, MAX_RELEASE_BYTES)? {
                None => "missing, and so is Release: there is no such suite here".to_owned(),
                Some(_) => "missing: apt reads it first, and a publish always writes it (a copy stopped before it, or left it out)".to_owned(),
            };
            return Err(loc.fault(&in_release, message));
        }
    };
    const BEGIN: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----\n";
    const END: &str = "-----END PGP SIGNATURE-----";
    if !signed.starts_with(BEGIN) {
        return Err(loc.fault(
            &in_release,
            "does not start with -----BEGIN PGP SIGNED MESSAGE-----: apt refuses it".into(),
        ));
    }
    let shown = loc.shown(&in_release);
    let as_text = String::from_utf8_lossy(&signed);
    match as_text.rfind(END) {
        Some(at) if as_text[at + END.len()..].trim().is_empty() => {}
        _ => {
            return Err(loc.fault(
                &in_release,
                "has text after its signature: apt refuses it".into(),
            ))
        }
    }
    let text = crate::lock::verify_clearsigned(&signed, keyring, &shown).map_err(|e| match e {
        Error::Binary { message, .. } => Error::Signature {
            what: shown.clone(),
            message: format!("{message} (keyring {})", keyring.shown()),
        },
        e => e,
    })?;
    let release = Release::parse(&text).map_err(|m| loc.fault(&in_release, m))?;

    let release_bytes = loc.read(&release_rel, MAX_RELEASE_BYTES)?.ok_or_else(|| {
        loc.fault(
            &release_rel,
            "missing: apt falls back to it and Release.gpg when InRelease cannot be fetched".into(),
        )
    })?;
    let gpg = loc
        .read(&gpg_rel, MAX_RELEASE_BYTES)?
        .ok_or_else(|| loc.fault(&gpg_rel, "missing: Release is unsigned without it".into()))?;
    if !gpg.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        return Err(loc.fault(
            &gpg_rel,
            "is not an ASCII-armoured signature: apt refuses it".into(),
        ));
    }
    let signed_by = verify_detached(&gpg, &release_bytes[..], keyring, &loc.shown(&gpg_rel))?;
    if release_bytes != text.as_bytes() {
        return Err(loc.fault(
            &release_rel,
            "is not the text InRelease signs: a publish or a copy of it has not finished, or one of them was changed".into(),
        ));
    }
    Ok((release, text, signed_by))
}

/// Size, SHA256 and (when listed) SHA512 of `bytes` against a Release's line.
fn check_listed(bytes: &[u8], size: u64, sha256: &str, sha512: Option<&str>) -> Result<(), String> {
    if bytes.len() as u64 != size {
        return Err(format!("has {} bytes, InRelease lists {size}", bytes.len()));
    }
    let got = sha256_hex(bytes);
    if got != sha256 {
        return Err(format!("has sha256 {got}, InRelease lists {sha256}"));
    }
    if let Some(want) = sha512 {
        let got = sha512_hex(bytes);
        if got != want {
            return Err(format!("has sha512 {got}, InRelease lists {want}"));
        }
    }
    Ok(())
}

/// A compressed index, decompressed, at most `max` bytes of it (one more is an error).
fn decompress(name: &str, bytes: &[u8], max: u64) -> Result<Vec<u8>, String> {
    let r: Box<dyn Read> = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("gz") => Box::new(flate2::read::GzDecoder::new(bytes)),
        Some("xz") => Box::new(liblzma::read::XzDecoder::new(bytes)),
        Some("zst") => Box::new(zstd::Decoder::new(bytes).map_err(|e| e.to_string())?),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("does not decompress: {e}"))?;
    Ok(out)
}

/// A `Filename:` is relative to the repository root and stays inside it.
fn inside(filename: &str) -> bool {
    !filename.is_empty()
        && !filename.starts_with('/')
        && Path::new(filename)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Reads and hashes the pool file `e` names, at most one byte more than its stanza says.
fn read_pool_file(loc: &Location, index: &str, e: &Entry) -> Result<PoolFile> {
    if !inside(&e.filename) {
        return Err(loc.fault(
            index,
            format!(
                "the stanza of {} {} names Filename {:?}, outside the repository",
                e.package, e.version, e.filename
            ),
        ));
    }
    let r = loc.open(&e.filename)?.ok_or_else(|| {
        loc.fault(
            &e.filename,
            format!(
                "missing: the entry of {} {} ({}) in {} names it",
                e.package,
                e.version,
                e.architecture,
                loc.shown(index)
            ),
        )
    })?;
    let h = PackageHashes::of_reader(r.take(e.size + 1))
        .map_err(|err| loc.read_error(&e.filename, err))?;
    Ok(PoolFile {
        size: h.size,
        sha256: h.sha256,
        md5: h.md5,
    })
}

fn check_entry(loc: &Location, index: &str, e: &Entry, got: &PoolFile) -> Result<()> {
    let index = loc.shown(index);
    let fault = |message: String| Err(loc.fault(&e.filename, message));
    // Only one byte more than listed is read, so a longer file's length is not known.
    if got.size > e.size {
        return fault(format!(
            "is longer than the {} bytes {index} lists: apt refuses it",
            e.size
        ));
    }
    if got.size < e.size {
        return fault(format!(
            "has {} bytes, {index} lists {}: truncated; apt refuses it",
            got.size, e.size
        ));
    }
    if got.sha256 != e.sha256 {
        return fault(format!(
            "has sha256 {}, {index} lists {}: apt refuses it with Hash Sum mismatch",
            got.sha256, e.sha256
        ));
    }
    if let Some(md5) = e.stanza.get("MD5sum") {
        if got.md5 != md5 {
            return fault(format!("has MD5 {}, {index} lists {md5}", got.md5));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_a_directory_or_a_web_url() {
        assert!(matches!(Location::parse("/srv/apt"), Ok(Location::Dir(_))));
        assert!(
            matches!(Location::parse("file:///srv/apt"), Ok(Location::Dir(p)) if p == Path::new("/srv/apt"))
        );
        assert!(matches!(
            Location::parse("https://apt.example.org"),
            Ok(Location::Url(_))
        ));
        let e = Location::parse("ftp://apt.example.org/").err().unwrap();
        assert_eq!(
            e.to_string(),
            "repository \"ftp://apt.example.org/\": expected a directory, or an http://, https:// or file:// URL"
        );
    }

    #[test]
    fn pool_paths_stay_inside_the_repository() {
        assert!(inside("pool/main/c/p/p_1_amd64.deb"));
        for bad in ["", "/etc/passwd", "pool/../../etc/passwd", "./pool/x.deb"] {
            assert!(!inside(bad), "{bad}");
        }
    }

    #[test]
    fn a_listed_file_is_checked_by_size_then_hashes() {
        let sha = sha256_hex(b"abc");
        assert!(check_listed(b"abc", 3, &sha, None).is_ok());
        assert_eq!(
            check_listed(b"ab", 3, &sha, None).unwrap_err(),
            "has 2 bytes, InRelease lists 3"
        );
        assert!(check_listed(b"abd", 3, &sha, None)
            .unwrap_err()
            .starts_with("has sha256 "));
    }
}

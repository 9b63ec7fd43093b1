//! Reads what a repository holds, from the repository itself: the live Release (InRelease's
//! signed text, else Release), the entries of every index it lists, the record of by-hash
//! generations, the by-hash files on disk, the client files (and the URL the last
//! `.sources` names), and the other suites for the index page. Nothing else is kept on the side: the indexes already carry
//! every package's fields, size and hashes, so no published package is opened again (but
//! once, for its debconf templates, if its record predates them). Also inspects the
//! packages to add: their control file, templates and hashes, never their payload.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::deb::read::read_control_member;
use crate::error::{Error, IoContext, Result};
use crate::hash::{sha256_hex, PackageHashes};

use super::deb822;
use super::packages::{self, Entry, NewDeb};
use super::page::newest_by_package;
use super::plan::{Current, OtherSuite, SuiteState, STATE_DIR};
use super::release::{cleartext, Release};
use super::CLIENT_NAME;

/// Reads the state of `suite` in the repository at `root`; an empty or missing directory is
/// a repository with nothing in it yet. The other suites are read too, for the pool files
/// they share with this one and for the index page.
pub fn read_current(root: &Path, suite: &str) -> Result<Current> {
    let this = read_suite(root, suite)?;
    let mut current = Current {
        root: root.to_owned(),
        release: this.release,
        last_date: this.last_date,
        indexes: this.indexes,
        stale: this.stale,
        ..Current::default()
    };
    let mut records = read_records(root)?;
    for name in records.values().flat_map(|r| r.published.iter()) {
        current.published.insert(name.0.clone(), name.1.clone());
    }
    current.state = records.remove(suite).unwrap_or_default();
    for other in dir_names(&root.join("dists"))? {
        if other == suite {
            continue;
        }
        let read = read_suite(root, &other)?;
        for e in read.indexes.values().flatten() {
            current.elsewhere.insert(
                e.filename.clone(),
                (e.sha256.clone(), format!("dists/{other}")),
            );
        }
        if let Some(release) = read.release {
            let state = records.remove(&other).unwrap_or_default();
            current.others.insert(
                other,
                OtherSuite {
                    release,
                    indexes: read.indexes,
                    state,
                },
            );
        }
    }
    current.templates_read = read_missing_templates(root, &current)?;
    current.by_hash_files = list_by_hash(root, suite)?;

    for ext in ["gpg", "asc", "sources"] {
        let name = format!("{CLIENT_NAME}.{ext}");
        if let Some(bytes) = read_optional(&root.join(&name))? {
            current.client_files.insert(name, bytes);
        }
    }
    if let Some(bytes) = current.client_files.get(&format!("{CLIENT_NAME}.sources")) {
        current.url = deb822::parse(&String::from_utf8_lossy(bytes))
            .ok()
            .and_then(|ps| {
                ps.first()?
                    .get("URIs")?
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            });
    }
    Ok(current)
}

/// Every suite's record in `.state/`, by suite.
fn read_records(root: &Path) -> Result<BTreeMap<String, SuiteState>> {
    let state_dir = root.join(STATE_DIR);
    let mut out = BTreeMap::new();
    for name in file_names(&state_dir)? {
        let Some(s) = name.strip_suffix(".json") else {
            continue;
        };
        let path = state_dir.join(&name);
        let bytes = fs::read(&path).at(&path)?;
        let record = serde_json::from_slice::<SuiteState>(&bytes).map_err(|e| Error::Repo {
            path: path.clone(),
            message: format!("not a publish record ({e}); delete it to start a new record"),
        })?;
        out.insert(s.to_owned(), record);
    }
    Ok(out)
}

/// The index page shows the debconf questions of the newest version of each package. A
/// record from before templates were kept has none for it: that one pool file's control
/// member is read, once, since the next publish of the suite records it.
fn read_missing_templates(
    root: &Path,
    current: &Current,
) -> Result<BTreeMap<String, Option<String>>> {
    let suites = std::iter::once((&current.indexes, &current.state))
        .chain(current.others.values().map(|o| (&o.indexes, &o.state)));
    let mut out = BTreeMap::new();
    for (indexes, state) in suites {
        for e in newest_by_package(indexes.values().flatten()).values() {
            if state.debconf.contains_key(&e.filename) || out.contains_key(&e.filename) {
                continue;
            }
            let path = root.join(&e.filename);
            // A pool file that is missing (a partial copy of a repository) or unreadable has
            // nothing to show, and the page is no reason to stop a publish: `repo verify` is
            // what reports such a file.
            if let Ok(member) = read_control_member(&path) {
                out.insert(e.filename.clone(), member.templates);
            }
        }
    }
    Ok(out)
}

/// What one suite's files say.
struct Suite {
    release: Option<Release>,
    last_date: Option<u64>,
    indexes: BTreeMap<(String, String), Vec<Entry>>,
    stale: BTreeSet<String>,
}

fn read_suite(root: &Path, suite: &str) -> Result<Suite> {
    let suite_dir = root.join("dists").join(suite);
    let repo_err = |path: &Path, message: String| Error::Repo {
        path: path.to_owned(),
        message,
    };

    let in_release_path = suite_dir.join("InRelease");
    let from_in_release = match read_optional(&in_release_path)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let signed = cleartext(&text).ok_or_else(|| {
                repo_err(&in_release_path, "is not a clear-signed message".into())
            })?;
            Some(Release::parse(&signed).map_err(|m| repo_err(&in_release_path, m))?)
        }
        None => None,
    };
    let release_path = suite_dir.join("Release");
    let from_release = match read_optional(&release_path)? {
        Some(bytes) => Some(
            Release::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|m| repo_err(&release_path, m))?,
        ),
        None => None,
    };
    let mut out = Suite {
        last_date: from_in_release
            .iter()
            .chain(&from_release)
            .map(|r| r.date)
            .max(),
        // apt reads InRelease first: while it is there, it is what clients see.
        release: from_in_release.or(from_release),
        indexes: BTreeMap::new(),
        stale: BTreeSet::new(),
    };
    let Some(r) = &out.release else {
        return Ok(out);
    };
    // Every listed file at its plain name must be what the Release says, or be rewritten.
    let mut plain_ok = BTreeMap::new();
    for f in &r.files {
        let path = suite_dir.join(&f.path);
        let bytes = read_optional(&path)?;
        let ok = bytes.as_ref().is_some_and(|b| sha256_hex(b) == f.sha256);
        if !ok {
            out.stale.insert(f.path.clone());
        }
        plain_ok.insert(f.path.clone(), bytes.filter(|_| ok));
    }
    let dirs: BTreeSet<&str> = r
        .files
        .iter()
        .filter_map(|f| f.path.rsplit_once('/'))
        .filter(|(_, name)| name.starts_with("Packages"))
        .map(|(dir, _)| dir)
        .collect();
    for dir in dirs {
        let Some((component, arch)) = dir
            .split_once('/')
            .and_then(|(c, b)| Some((c, b.strip_prefix("binary-")?)))
        else {
            continue;
        };
        let name = format!("{dir}/Packages");
        let plain = suite_dir.join(&name);
        let Some(listed) = r.files.iter().find(|f| f.path == name) else {
            return Err(repo_err(
                &release_path,
                format!(
                    "lists no uncompressed {name}; this publisher needs it to read the index back"
                ),
            ));
        };
        let bytes = match plain_ok.remove(&name).flatten() {
            Some(b) => b,
            None => {
                // The by-hash copy is exactly what the live Release names.
                let by_hash = suite_dir.join(format!("{dir}/by-hash/SHA256/{}", listed.sha256));
                match read_optional(&by_hash)? {
                    Some(b) if sha256_hex(&b) == listed.sha256 => b,
                    _ => {
                        return Err(repo_err(
                            &plain,
                            format!(
                                "neither it nor its by-hash copy has the sha256 the live Release lists ({}): the repository was changed by hand; restore the file",
                                listed.sha256
                            ),
                        ))
                    }
                }
            }
        };
        let text =
            String::from_utf8(bytes).map_err(|_| repo_err(&plain, "is not UTF-8 text".into()))?;
        let entries = packages::parse(&text).map_err(|m| repo_err(&plain, m))?;
        out.indexes
            .insert((component.to_owned(), arch.to_owned()), entries);
    }
    Ok(out)
}

/// Every file under `dists/<suite>/*/binary-*/by-hash/*/`, repository-relative.
fn list_by_hash(root: &Path, suite: &str) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let suite_rel = format!("dists/{suite}");
    for component in dir_names(&root.join(&suite_rel))? {
        for binary in dir_names(&root.join(format!("{suite_rel}/{component}")))? {
            if !binary.starts_with("binary-") {
                continue;
            }
            let by_hash = format!("{suite_rel}/{component}/{binary}/by-hash");
            for algo in dir_names(&root.join(&by_hash))? {
                let dir = format!("{by_hash}/{algo}");
                let path = root.join(&dir);
                for entry in fs::read_dir(&path).at(&path)? {
                    let entry = entry.at(&path)?;
                    if entry.file_type().at(&path)?.is_file() {
                        out.insert(format!("{dir}/{}", entry.file_name().to_string_lossy()));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The names of the directories in `dir`; none when it does not exist.
fn dir_names(dir: &Path) -> Result<Vec<String>> {
    names(dir, true)
}

/// The names of the regular files in `dir`; none when it does not exist.
fn file_names(dir: &Path) -> Result<Vec<String>> {
    names(dir, false)
}

fn names(dir: &Path, dirs: bool) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(dir),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.at(dir)?;
        let t = entry.file_type().at(dir)?;
        if (dirs && t.is_dir()) || (!dirs && t.is_file()) {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// Reads a package's control file and hashes its bytes.
pub fn inspect_deb(path: &Path) -> Result<NewDeb> {
    inspect_deb_with(path, None)
}

fn inspect_deb_with(path: &Path, staged: Option<&Path>) -> Result<NewDeb> {
    crate::deb::read::check_layout(path)?;
    let member = read_control_member(path)?;
    let control = deb822::parse(&member.control)
        .ok()
        .and_then(|mut ps| (!ps.is_empty()).then(|| ps.remove(0)))
        .ok_or_else(|| Error::Repo {
            path: path.to_owned(),
            message: "its control file is not a deb822 paragraph".into(),
        })?;
    let file = File::open(path).at(path)?;
    let hashes = match staged {
        None => PackageHashes::of_reader(file).at(path)?,
        Some(to) => {
            let mut out = io::BufWriter::new(File::create(to).at(to)?);
            let hashes = PackageHashes::of_reader(Tee {
                inner: file,
                out: &mut out,
            })
            .at(to)?;
            // Flushed here, not on drop, where a full disk would go unnoticed.
            out.into_inner().map_err(|e| e.into_error()).at(to)?;
            hashes
        }
    };
    Ok(NewDeb {
        staged: None,
        path: PathBuf::from(path),
        control,
        templates: member.templates,
        size: hashes.size,
        md5: hashes.md5,
        sha256: hashes.sha256,
    })
}

/// Like [`inspect_deb`], and copies the package to `staged` in the same pass, so a publish
/// reads each new package once. `staged` is then moved into the pool, not copied again.
pub fn inspect_and_stage(path: &Path, staged: &Path) -> Result<NewDeb> {
    let mut deb = inspect_deb_with(path, Some(staged))?;
    deb.staged = Some(staged.to_owned());
    Ok(deb)
}

/// A reader that writes what it reads to `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: io::Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

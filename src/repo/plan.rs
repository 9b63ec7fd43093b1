//! The planner: from what the repository holds now ([`Current`]) and the packages to add, it
//! computes every file of the next generation — pool copies, indexes and their by-hash
//! copies, Release, Release.gpg, InRelease, the client files, the index page — and what may
//! be deleted once that generation is live, as an ordered list of [`Step`]s. It does no
//! I/O: signing is a computation on keys already loaded, and the clock is an input.
//!
//! The order of the steps is what makes a publish safe to interrupt:
//! 1. new packages into the pool;
//! 2. the by-hash copies of every changed index (`…/by-hash/SHA256/<hex>` and `SHA512`);
//! 3. the indexes at their plain names (`Packages`, `.gz`, `.xz`);
//! 4. the public keyrings and `containerd-stack.sources`;
//! 5. `Release`, then `Release.gpg`, then `InRelease` — the file apt reads first, so the new
//!    generation goes live in that one rename;
//! 6. the record of by-hash generations, first-publish dates and debconf templates;
//! 7. `index.html`, which links only to pool files of live indexes;
//! 8. deletions: pool files no index references any more, by-hash files of generations older
//!    than the kept ones.
//!
//! Up to step 5 the live InRelease is the old one, and every file it names is still there
//! (apt fetches indexes by hash, and old by-hash copies are only deleted in step 8); from
//! step 5 on it is the new one, and everything it names was written before it.
//!
//! The steps are flushed to disk in phases ([`Flush`]), each phase before the next begins:
//! steps 1 to 4 (a client file whose bytes did not change is not written at all);
//! `Release` and `Release.gpg`; `InRelease` alone; the record alone; the page and the
//! deletions. One flush of the filesystem (`syncfs`) ends a phase, and InRelease and the
//! record are each flushed on their own, so a publish flushes the same five times whether
//! it writes twenty files or a thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deb::compress::Compression;
use crate::error::{Error, IoContext, Result};
use crate::hash::{sha256_hex, sha512_hex};
use crate::render::rfc2822;
use crate::sign::{public_keyring, Signer};

use super::packages::{self, Entry, NewDeb};
use super::page::{self, Page, SigningKey, SuiteView};
use super::release::{IndexFile, Release};
use super::{debconf, CLIENT_NAME, PAGE, PLACEHOLDER_URL};

/// How many generations of by-hash files are kept besides the live one, as apt-ftparchive
/// does: a client that read an InRelease up to three publishes ago still finds its indexes.
pub const KEPT_GENERATIONS: usize = 3;

/// apt refuses a Release dated more than this many seconds after its own clock
/// (`Acquire::Max-FutureTime`).
pub const MAX_AHEAD: u64 = 10;

/// Compression levels of the indexes. Most of an index is hashes, which do not compress: on
/// a thousand-package index xz -6 took 80 ms for 74 KB where -1 took 30 ms for 95 KB, and
/// that is most of what a publish costs. gzip -9 costs little on text.
const XZ_LEVEL: u32 = 1;
const GZIP_LEVEL: u32 = 9;

/// What a publish was asked to do, besides which packages.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// `dists/<suite>/`.
    pub suite: String,
    /// Default: the previous Release's, else the suite.
    pub codename: Option<String>,
    pub component: String,
    /// Default: the previous Release's, else `containerd-stack`.
    pub origin: Option<String>,
    /// Default: the previous Release's, else `containerd-stack`.
    pub label: Option<String>,
    /// Keep the N highest versions per package and architecture; `None` keeps all.
    pub keep: Option<usize>,
    /// Write `Valid-Until:` this many days after Date; `Some(0)` writes none; `None` keeps
    /// the previous Release's validity period, if it had one.
    pub valid_for_days: Option<u32>,
    /// The URL clients reach the repository at, for the `.sources` file; default: the one
    /// the previous publish wrote, else a placeholder.
    pub url: Option<String>,
    /// Allow Origin, Label or Codename to differ from the previous Release.
    pub allow_release_info_change: bool,
    /// The clock, in Unix seconds, read once by the caller.
    pub now: u64,
}

impl PublishOptions {
    pub fn new(now: u64) -> PublishOptions {
        PublishOptions {
            suite: "stable".into(),
            codename: None,
            component: "main".into(),
            origin: None,
            label: None,
            keep: None,
            valid_for_days: None,
            url: None,
            allow_release_info_change: false,
            now,
        }
    }
}

/// One generation of by-hash files: those a Release listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// The Release's Date, Unix seconds.
    pub date: u64,
    /// Repository-relative paths of its by-hash files.
    pub files: BTreeSet<String>,
}

/// What a suite's indexes do not say themselves, kept in `<repo>/.state/<suite>.json`.
/// Fields added later default to empty, so an older record still reads, and an older
/// publisher still reads this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteState {
    /// By-hash generations, newest first.
    pub generations: Vec<Generation>,
    /// Every pool file the suite ever indexed, with its sha256: a version `--keep` dropped
    /// may still sit in clients' and proxies' caches, so it must not come back different.
    #[serde(default)]
    pub published: BTreeMap<String, String>,
    /// When each pool file the suite indexes was first indexed by it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_published: BTreeMap<String, FirstPublished>,
    /// The debconf templates of the newest version of each package the suite indexes, by
    /// pool file: a key of `templates`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub debconf: BTreeMap<String, String>,
    /// Templates without their translations, by the sha256 of the text (that of the empty
    /// text for a package that asks nothing): the versions of a package share one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
}

/// When a pool file was first indexed by a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstPublished {
    /// The Date of the Release that first listed it, Unix seconds.
    pub date: u64,
    /// `date` is a bound only: the file was already indexed when its suite's record began
    /// to keep dates (or the publish that added it was stopped before its record), and
    /// this is the Date of the Release that was live then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub or_earlier: bool,
}

/// Another suite of the repository, as the index page shows it.
#[derive(Debug, Clone)]
pub struct OtherSuite {
    pub release: Release,
    pub indexes: BTreeMap<(String, String), Vec<Entry>>,
    pub state: SuiteState,
}

/// What the repository holds before the publish.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// The repository root, for messages.
    pub root: PathBuf,
    /// The live Release: InRelease's text, else Release's.
    pub release: Option<Release>,
    /// The latest Date of InRelease and Release (they differ after an interrupted publish).
    pub last_date: Option<u64>,
    /// The entries of every index the live Release lists, by (component, architecture).
    pub indexes: BTreeMap<(String, String), Vec<Entry>>,
    /// Suite-relative paths (`main/binary-amd64/Packages.xz`) whose file at the plain name
    /// differs from what the live Release lists (an interrupted publish got that far).
    pub stale: BTreeSet<String>,
    /// This suite's record.
    pub state: SuiteState,
    /// Pool files the live indexes of other suites reference: `(sha256, "dists/<suite>")`.
    /// The pool is shared, so these are neither replaced nor deleted.
    pub elsewhere: BTreeMap<String, (String, String)>,
    /// Every pool file any suite's record says was ever published, with its sha256.
    pub published: BTreeMap<String, String>,
    /// Every by-hash file under the suite, repository-relative.
    pub by_hash_files: BTreeSet<String>,
    /// `URIs:` of the `.sources` file the last publish wrote.
    pub url: Option<String>,
    /// The client files at the root (`containerd-stack.gpg`, `.asc`, `.sources`) as they
    /// are, by name: one whose next bytes are the same is not written again.
    pub client_files: BTreeMap<String, Vec<u8>>,
    /// The other suites with a live Release, by name.
    pub others: BTreeMap<String, OtherSuite>,
    /// Templates read from pool files whose suite's record has none (published before
    /// records kept them), for the newest version of each package only: the one the page
    /// shows. `None`: the package has no templates file.
    pub templates_read: BTreeMap<String, Option<String>>,
}

/// One file operation, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Copy a package into the pool; the copy must hash to `sha256`.
    CopyDeb {
        from: PathBuf,
        to: String,
        sha256: String,
    },
    /// Write a file whole.
    Write { to: String, bytes: Vec<u8> },
    /// Delete a file nothing live references any more.
    Remove { path: String },
}

impl Step {
    pub fn path(&self) -> &str {
        match self {
            Step::CopyDeb { to, .. } | Step::Write { to, .. } => to,
            Step::Remove { path } => path,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::CopyDeb { from, to, .. } => write!(f, "copy {} to {to}", from.display()),
            Step::Write { to, bytes } => write!(f, "write {to} ({} bytes)", bytes.len()),
            Step::Remove { path } => write!(f, "remove {path}"),
        }
    }
}

/// When a step's file reaches the disk. Steps are carried out in phases: the files of a
/// phase are named without a flush, and one flush of the filesystem ends the phase before
/// the next phase's first step, so the order that matters (see the module's documentation)
/// holds after a crash, at one flush per phase instead of two per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// With the rest of its phase.
    WithPhase,
    /// Last of its phase: everything written so far is flushed before the next step.
    EndOfPhase,
    /// A phase of its own, flushed after whatever came before it: its bytes, then its
    /// name. For a file that must be the old one or the new one after a crash on any
    /// filesystem (InRelease, the switch; the record, which the next publish reads).
    Alone,
}

/// The next generation of the repository.
#[derive(Debug, Clone)]
pub struct Plan {
    /// In the order they must be carried out.
    pub steps: Vec<Step>,
    /// When each step's file is flushed, one for each of `steps`.
    pub flush: Vec<Flush>,
    pub release: Release,
    /// Pool paths of packages added to an index.
    pub added: Vec<String>,
    /// Pool paths of packages given that were already published, byte for byte.
    pub already: Vec<String>,
    /// `package version (arch)` of entries `--keep` took out of an index.
    pub dropped: Vec<String>,
    /// The URL in `.sources`; [`PLACEHOLDER_URL`] when none was given.
    pub url: String,
    /// The two commands that set a client up.
    pub client_commands: Vec<String>,
    /// What the user should know that does not stop the publish.
    pub warnings: Vec<String>,
}

/// Plans the publish of `debs` into the repository described by `current`, signed by every
/// one of `signers`.
pub fn plan(
    current: &Current,
    debs: &[NewDeb],
    signers: &[&Signer],
    opts: &PublishOptions,
) -> Result<Plan> {
    check_options(current, debs, signers, opts)?;
    let suite_dir = format!("dists/{}", opts.suite);
    let info = release_info(current, opts)?;
    let merged = merge_into_pool(current, debs, opts)?;
    let (indexes, arches) = assign_to_indexes(current, &merged.new, opts)?;
    let indexes = render_indexes(current, indexes, opts)?;
    let (added, pool_steps) = pool_copies(current, &merged.new, &indexes.kept);
    let date = next_date(current, opts)?;
    let release = next_release(current, opts, info, date, arches, indexes.files.clone());
    let signed = sign_release(&release, signers, opts.now)?;
    let client = client_files(current, opts, signers, &release)?;
    let (state, warnings) = next_state(current, &merged.new, &indexes.kept, &release, opts);
    let page = index_page(current, signers, &client, &release, &indexes.kept, &state);
    let (steps, flush) = order_steps(Steps {
        current,
        suite_dir: &suite_dir,
        pool: pool_steps,
        indexes: indexes.by_hash.into_iter().chain(indexes.plain).collect(),
        client: &client,
        signed,
        state: &state,
        page,
        live_pool: &merged.live_pool,
        kept: &indexes.kept,
    });
    Ok(Plan {
        steps,
        flush,
        release,
        added,
        already: merged.already,
        dropped: indexes.dropped.into_iter().collect(),
        url: client.url,
        client_commands: client.commands,
        warnings,
    })
}

/// Names, keys and `--keep` that no repository could be published with.
fn check_options(
    current: &Current,
    debs: &[NewDeb],
    signers: &[&Signer],
    opts: &PublishOptions,
) -> Result<()> {
    for (what, value) in [("suite", &opts.suite), ("component", &opts.component)]
        .into_iter()
        .chain(opts.codename.as_ref().map(|c| ("codename", c)))
    {
        check_name(what, value)?;
    }
    if signers.is_empty() {
        return Err(Error::NoSigningKey);
    }
    if opts.keep == Some(0) {
        return Err(Error::invalid(
            "versions to keep",
            "0",
            "would empty the index; keep at least 1 version",
        ));
    }
    if current.release.is_none() && debs.is_empty() {
        return Err(Error::Repo {
            path: current.root.clone(),
            message: "no repository there yet and no package given: nothing to publish".into(),
        });
    }
    Ok(())
}

/// Origin, Label and Codename of the next Release.
struct ReleaseInfo {
    origin: String,
    label: String,
    codename: String,
}

/// Changing Origin, Label or Codename makes every client's `apt-get update` fail until the
/// user runs it with --allow-releaseinfo-change, so they are kept unless explicitly changed.
fn release_info(current: &Current, opts: &PublishOptions) -> Result<ReleaseInfo> {
    let live = current.release.as_ref();
    let release_path = current.root.join(format!("dists/{}/Release", opts.suite));
    let pick = |field: &'static str,
                given: &Option<String>,
                old: Option<&String>,
                default: &str| match (given, old) {
        (Some(g), Some(o)) if g != o && !opts.allow_release_info_change => {
            Err(Error::ReleaseInfoChange {
                path: release_path.clone(),
                field,
                old: o.clone(),
                new: g.clone(),
            })
        }
        (Some(g), _) => Ok(g.clone()),
        (None, Some(o)) => Ok(o.clone()),
        (None, None) => Ok(default.to_owned()),
    };
    Ok(ReleaseInfo {
        origin: pick("Origin", &opts.origin, live.map(|r| &r.origin), CLIENT_NAME)?,
        label: pick("Label", &opts.label, live.map(|r| &r.label), CLIENT_NAME)?,
        codename: pick(
            "Codename",
            &opts.codename,
            live.map(|r| &r.codename),
            &opts.suite,
        )?,
    })
}

/// The new packages that are not in the suite yet, and those that are, byte for byte.
struct Merged<'a> {
    new: Vec<(&'a NewDeb, Entry)>,
    already: Vec<String>,
    /// Pool files the suite's live indexes reference.
    live_pool: BTreeSet<String>,
}

/// Every pool file is immutable once published: clients and proxies cache it by name. A
/// new package whose pool file was ever published (in any suite) with other bytes is
/// refused; one with the same bytes is either already indexed here or indexed again.
fn merge_into_pool<'a>(
    current: &Current,
    debs: &'a [NewDeb],
    opts: &PublishOptions,
) -> Result<Merged<'a>> {
    let suite_dir = format!("dists/{}", opts.suite);
    let mut pool: BTreeMap<String, (String, String)> = BTreeMap::new();
    for entries in current.indexes.values() {
        for e in entries {
            pool.entry(e.filename.clone())
                .or_insert_with(|| (e.sha256.clone(), format!("was published in {suite_dir}")));
        }
    }
    let live_pool: BTreeSet<String> = pool.keys().cloned().collect();
    for (filename, (sha256, suite)) in &current.elsewhere {
        pool.entry(filename.clone())
            .or_insert_with(|| (sha256.clone(), format!("was published in {suite}")));
    }
    for (filename, sha256) in &current.published {
        pool.entry(filename.clone())
            .or_insert_with(|| (sha256.clone(), "was published earlier".into()));
    }
    let mut new = Vec::new();
    let mut already = Vec::new();
    for deb in debs {
        let e = Entry::from_deb(deb, &opts.component).map_err(|message| Error::Repo {
            path: deb.path.clone(),
            message,
        })?;
        match pool.get(&e.filename) {
            Some((sha, _)) if *sha == e.sha256 => {
                if live_pool.contains(&e.filename) {
                    already.push(e.filename.clone());
                    continue;
                }
            }
            Some((sha, from)) => {
                return Err(Error::Repo {
                    path: current.root.join(&e.filename),
                    message: format!(
                        "{} {} ({}) {from} with sha256 {sha}, and {} differs (sha256 {}): a published version must never change (clients and proxies cache it); raise the package revision and build again",
                        e.package,
                        e.version,
                        e.architecture,
                        deb.path.display(),
                        e.sha256
                    ),
                })
            }
            None => {
                pool.insert(
                    e.filename.clone(),
                    (e.sha256.clone(), format!("is also given as {}", deb.path.display())),
                );
            }
        }
        new.push((deb, e));
    }
    Ok(Merged {
        new,
        already,
        live_pool,
    })
}

type Indexes = BTreeMap<(String, String), Vec<Entry>>;

/// Which indexes receive which entries, and the suite's architectures; `all` packages go
/// into every architecture's index, and a new architecture gets the `all` packages already
/// there.
fn assign_to_indexes(
    current: &Current,
    new: &[(&NewDeb, Entry)],
    opts: &PublishOptions,
) -> Result<(Indexes, BTreeSet<String>)> {
    let mut indexes = current.indexes.clone();
    let mut arches: BTreeSet<String> = current
        .release
        .as_ref()
        .map(|r| r.architectures.iter().cloned().collect())
        .unwrap_or_default();
    arches.extend(
        new.iter()
            .map(|(_, e)| e.architecture.clone())
            .filter(|a| a != "all"),
    );
    for arch in &arches {
        let key = (opts.component.clone(), arch.clone());
        if !indexes.contains_key(&key) {
            let all: BTreeMap<&String, &Entry> = indexes
                .iter()
                .filter(|((c, _), _)| *c == opts.component)
                .flat_map(|(_, entries)| entries)
                .filter(|e| e.architecture == "all")
                .map(|e| (&e.filename, e))
                .collect();
            let all = all.into_values().cloned().collect();
            indexes.insert(key, all);
        }
    }
    for (deb, e) in new {
        let targets: Vec<&String> = if e.architecture == "all" {
            if arches.is_empty() {
                return Err(Error::Repo {
                    path: deb.path.clone(),
                    message: "an Architecture: all package needs an architecture-specific package in the suite to be indexed with".into(),
                });
            }
            arches.iter().collect()
        } else {
            vec![&e.architecture]
        };
        for arch in targets {
            let index = indexes
                .get_mut(&(opts.component.clone(), arch.clone()))
                .expect("every architecture has an index");
            if !index.iter().any(|x| x.filename == e.filename) {
                index.push(e.clone());
            }
        }
    }
    Ok((indexes, arches))
}

/// The indexes of the next generation, rendered.
struct RenderedIndexes {
    /// What the Release lists, sorted by path.
    files: Vec<IndexFile>,
    by_hash: Vec<Step>,
    plain: Vec<Step>,
    dropped: BTreeSet<String>,
    /// The entries of every index after `--keep`, sorted.
    kept: Indexes,
}

/// Each index: keep, sort, render; an index whose text did not change keeps its files, so
/// clients' caches and by-hash copies stay valid.
fn render_indexes(
    current: &Current,
    indexes: Indexes,
    opts: &PublishOptions,
) -> Result<RenderedIndexes> {
    let suite_dir = format!("dists/{}", opts.suite);
    let live = current.release.as_ref();
    let live_file = |path: &str| live.and_then(|r| r.files.iter().find(|f| f.path == path));
    let mut out = RenderedIndexes {
        files: Vec::new(),
        by_hash: Vec::new(),
        plain: Vec::new(),
        dropped: BTreeSet::new(),
        kept: BTreeMap::new(),
    };
    for ((component, arch), entries) in indexes {
        let (kept, gone) = packages::keep_newest(entries, opts.keep);
        for e in &gone {
            out.dropped
                .insert(format!("{} {} ({arch})", e.package, e.version));
        }
        let text = packages::render(&kept);
        out.kept.insert((component.clone(), arch.clone()), kept);
        let dir = format!("{component}/binary-{arch}");
        let names = ["Packages", "Packages.gz", "Packages.xz"].map(|n| format!("{dir}/{n}"));
        let sha256 = sha256_hex(text.as_bytes());
        let listed: Option<Vec<IndexFile>> = names.iter().map(|n| live_file(n).cloned()).collect();
        let unchanged = listed.filter(|fs| {
            fs[0].sha256 == sha256
                && fs
                    .iter()
                    .all(|f| f.sha512.is_some() && !current.stale.contains(&f.path))
        });
        if let Some(same) = unchanged {
            out.files.extend(same);
            continue;
        }
        let shown = current.root.join(format!("{suite_dir}/{}", names[0]));
        // Side by side: most of what adding one package to a large index costs.
        let (gz, xz) = std::thread::scope(|scope| {
            let gz = scope.spawn(|| gzip(text.as_bytes(), &shown));
            let xz = xz(text.as_bytes(), &shown);
            (gz.join().expect("the gzip thread panicked"), xz)
        });
        let (gz, xz) = (gz?, xz?);
        for (name, bytes) in names.iter().zip([text.into_bytes(), gz, xz]) {
            let file = IndexFile {
                path: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
                sha512: Some(sha512_hex(&bytes)),
            };
            for path in by_hash_paths(&suite_dir, &file) {
                if !current.by_hash_files.contains(&path) {
                    out.by_hash.push(Step::Write {
                        to: path,
                        bytes: bytes.clone(),
                    });
                }
            }
            out.plain.push(Step::Write {
                to: format!("{suite_dir}/{name}"),
                bytes,
            });
            out.files.push(file);
        }
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Pool paths added to an index, and the copies into the pool they need: none for a file
/// another suite's index already keeps there.
fn pool_copies(
    current: &Current,
    new: &[(&NewDeb, Entry)],
    kept: &Indexes,
) -> (Vec<String>, Vec<Step>) {
    let referenced: BTreeSet<&String> = kept.values().flatten().map(|e| &e.filename).collect();
    let mut added = Vec::new();
    let mut steps = Vec::new();
    for (deb, e) in new {
        if referenced.contains(&e.filename) && !added.contains(&e.filename) {
            added.push(e.filename.clone());
            if current.elsewhere.contains_key(&e.filename) {
                continue;
            }
            steps.push(Step::CopyDeb {
                from: deb.staged.clone().unwrap_or_else(|| deb.path.clone()),
                to: e.filename.clone(),
                sha256: e.sha256.clone(),
            });
        }
    }
    (added, steps)
}

/// Date only ever increases: apt silently ignores an InRelease older than the one it has.
/// A Date ahead of the clock is waited for by `publish`, so it never reaches clients; one
/// too far ahead means a clock is wrong, and no Date would work.
fn next_date(current: &Current, opts: &PublishOptions) -> Result<u64> {
    let date = match current.last_date {
        Some(last) if last >= opts.now => last + 1,
        _ => opts.now,
    };
    if date > opts.now + MAX_AHEAD {
        let last = date - 1;
        return Err(Error::Repo {
            path: current
                .root
                .join(format!("dists/{}/InRelease", opts.suite)),
            message: format!(
                "is dated {}, {} s after this machine's clock ({}), and the next Date must be later still, which clients would refuse as not valid yet: fix whichever clock is wrong, or publish after {}",
                rfc2822(last),
                last - opts.now,
                rfc2822(opts.now),
                rfc2822(last)
            ),
        });
    }
    Ok(date)
}

fn next_release(
    current: &Current,
    opts: &PublishOptions,
    info: ReleaseInfo,
    date: u64,
    arches: BTreeSet<String>,
    files: Vec<IndexFile>,
) -> Release {
    let live = current.release.as_ref();
    let mut components: BTreeSet<String> = live
        .map(|r| r.components.iter().cloned().collect())
        .unwrap_or_default();
    components.insert(opts.component.clone());
    Release {
        origin: info.origin,
        label: info.label,
        suite: opts.suite.clone(),
        codename: info.codename,
        date,
        valid_until: match opts.valid_for_days {
            Some(0) => None,
            Some(days) => Some(date + u64::from(days) * 86_400),
            // Kept as long as before: dropping it silently would weaken what clients check.
            None => live
                .and_then(|r| Some(r.valid_until?.saturating_sub(r.date)))
                .map(|d| date + d),
        },
        architectures: arches.into_iter().collect(),
        components: components.into_iter().collect(),
        files,
    }
}

/// `Release`, `Release.gpg` and `InRelease`.
struct Signed {
    release: String,
    release_gpg: String,
    in_release: String,
}

fn sign_release(release: &Release, signers: &[&Signer], now: u64) -> Result<Signed> {
    let text = release.render();
    // Signed at the clock's time, never after Date: gpgv refuses a signature from the future.
    let sig_time = now.min(release.date);
    Ok(Signed {
        in_release: Signer::clearsign(signers, &text, sig_time)?,
        release_gpg: Signer::detached_armored_many(signers, text.as_bytes(), sig_time)?,
        release: text,
    })
}

/// What a client installs: the keyring, the source, and the commands that fetch them.
struct ClientFiles {
    /// Ends with `/`.
    url: String,
    keyring: Vec<u8>,
    keyring_armored: String,
    sources: String,
    commands: Vec<String>,
}

fn client_files(
    current: &Current,
    opts: &PublishOptions,
    signers: &[&Signer],
    release: &Release,
) -> Result<ClientFiles> {
    let url = opts
        .url
        .clone()
        .or_else(|| current.url.clone())
        .unwrap_or_else(|| PLACEHOLDER_URL.to_owned());
    let url = if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    };
    let (keyring, keyring_armored) = public_keyring(signers)?;
    let commands = vec![
        format!("sudo curl -fsSLo /etc/apt/keyrings/{CLIENT_NAME}.gpg {url}{CLIENT_NAME}.gpg"),
        format!(
            "sudo curl -fsSLo /etc/apt/sources.list.d/{CLIENT_NAME}.sources {url}{CLIENT_NAME}.sources"
        ),
    ];
    Ok(ClientFiles {
        sources: sources_file(&url, release),
        url,
        keyring,
        keyring_armored,
        commands,
    })
}

/// The suite's next record: the new generation and as many earlier ones as are kept, every
/// pool file ever indexed, for each indexed one when it was first published, and the
/// debconf templates of each package's newest version. Also what the user should hear
/// about templates that cannot be read.
fn next_state(
    current: &Current,
    new: &[(&NewDeb, Entry)],
    kept: &Indexes,
    release: &Release,
    opts: &PublishOptions,
) -> (SuiteState, Vec<String>) {
    let mut published = current.state.published.clone();
    published.extend(
        kept.values()
            .flatten()
            .map(|e| (e.filename.clone(), e.sha256.clone())),
    );
    let (debconf, templates, warnings) = debconf_records(current, new, kept);
    let state = SuiteState {
        generations: generations(current, release, opts),
        published,
        first_published: first_published(current, kept, release),
        debconf,
        templates,
    };
    (state, warnings)
}

/// The new generation of by-hash files, then as many earlier ones as are kept. The live
/// Release is the latest earlier one even when the record missed it (a publish stopped
/// before writing it).
fn generations(current: &Current, release: &Release, opts: &PublishOptions) -> Vec<Generation> {
    let suite_dir = format!("dists/{}", opts.suite);
    let generation = |r: &Release| Generation {
        date: r.date,
        files: r
            .files
            .iter()
            .flat_map(|f| by_hash_paths(&suite_dir, f))
            .collect(),
    };
    let new = generation(release);
    let mut earlier: Vec<Generation> = current.release.iter().map(generation).collect();
    for g in &current.state.generations {
        if !earlier.iter().any(|e| e.files == g.files) {
            earlier.push(g.clone());
        }
    }
    earlier.retain(|g| g.files != new.files);
    earlier.truncate(KEPT_GENERATIONS);
    std::iter::once(new).chain(earlier).collect()
}

/// When each indexed pool file was first published: as recorded; for one the live Release
/// indexes without a record (an older publisher's, or a publish stopped before its record),
/// that Release's Date as a bound; for a new one, the new Date.
fn first_published(
    current: &Current,
    kept: &Indexes,
    release: &Release,
) -> BTreeMap<String, FirstPublished> {
    let live_pool: BTreeSet<&String> = current
        .indexes
        .values()
        .flatten()
        .map(|e| &e.filename)
        .collect();
    kept.values()
        .flatten()
        .map(|e| {
            let f = &e.filename;
            let first = match (current.state.first_published.get(f), &current.release) {
                (Some(known), _) if live_pool.contains(f) => *known,
                (_, Some(live)) if live_pool.contains(f) => FirstPublished {
                    date: live.date,
                    or_earlier: true,
                },
                _ => FirstPublished {
                    date: release.date,
                    or_earlier: false,
                },
            };
            (f.clone(), first)
        })
        .collect()
}

/// The templates of each package's newest version, by pool file, and the texts by their
/// sha256: from the package when it is new, else as recorded, else as read from the pool.
/// Only the newest version of a package is shown, and a publish never drops the newest, so
/// older versions need no record.
fn debconf_records(
    current: &Current,
    new: &[(&NewDeb, Entry)],
    kept: &Indexes,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<String>,
) {
    let mut warnings = Vec::new();
    let mut templates = current.state.templates.clone();
    let mut debconf = BTreeMap::new();
    let mut keep_text = |text: Option<&str>, shown: &dyn Fn() -> String| -> Option<String> {
        let reduced = match text.map(debconf::reduce) {
            None => String::new(),
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                warnings.push(format!(
                    "{}: its debconf templates cannot be read ({e}); the index page lists no install-time settings for it",
                    shown()
                ));
                return None;
            }
        };
        let key = sha256_hex(reduced.as_bytes());
        templates.entry(key.clone()).or_insert(reduced);
        Some(key)
    };
    let given: BTreeMap<&String, &NewDeb> = new.iter().map(|(d, e)| (&e.filename, *d)).collect();
    let newest = page::newest_by_package(kept.values().flatten());
    for f in newest.values().map(|e| &e.filename) {
        let key = match (given.get(f), current.state.debconf.get(f)) {
            (Some(deb), _) => {
                keep_text(deb.templates.as_deref(), &|| deb.path.display().to_string())
            }
            (None, Some(known)) => Some(known.clone()),
            (None, None) => match current.templates_read.get(f) {
                Some(text) => keep_text(text.as_deref(), &|| f.clone()),
                None => None,
            },
        };
        if let Some(key) = key {
            debconf.insert(f.clone(), key);
        }
    }
    let used: BTreeSet<&String> = debconf.values().collect();
    templates.retain(|k, _| used.contains(k));
    (debconf, templates, warnings)
}

/// `index.html`: every suite of the repository as the next generation has it.
fn index_page(
    current: &Current,
    signers: &[&Signer],
    client: &ClientFiles,
    release: &Release,
    kept: &Indexes,
    state: &SuiteState,
) -> Vec<u8> {
    let mut suites = vec![SuiteView {
        release,
        indexes: kept,
        state,
    }];
    suites.extend(current.others.values().map(|o| SuiteView {
        release: &o.release,
        indexes: &o.indexes,
        state: &o.state,
    }));
    suites.sort_by(|a, b| a.release.suite.cmp(&b.release.suite));
    let keys = signers
        .iter()
        .map(|s| SigningKey {
            fingerprint: s.fingerprint(),
            user_id: s.user_id().unwrap_or_default(),
            created: s.created(),
        })
        .collect();
    page::render(&Page {
        published: release,
        url: &client.url,
        commands: &client.commands,
        keys,
        suites,
        templates_read: &current.templates_read,
    })
    .into_bytes()
}

/// Everything `order_steps` puts in order.
struct Steps<'a> {
    current: &'a Current,
    suite_dir: &'a str,
    pool: Vec<Step>,
    indexes: Vec<Step>,
    client: &'a ClientFiles,
    signed: Signed,
    state: &'a SuiteState,
    page: Vec<u8>,
    live_pool: &'a BTreeSet<String>,
    kept: &'a Indexes,
}

/// The order the module's documentation explains: everything a Release names before it,
/// InRelease as the switch, deletions last; and the phases each ends. A client file whose
/// bytes did not change is not written again.
fn order_steps(s: Steps) -> (Vec<Step>, Vec<Flush>) {
    let suite_dir = s.suite_dir;
    let state_file = suite_dir
        .strip_prefix("dists/")
        .map(state_path)
        .expect("a suite directory");
    let write = |to: String, bytes: Vec<u8>, flush: Flush| (Step::Write { to, bytes }, flush);
    // Phase 1: the pool, the indexes and the client files.
    let mut first: Vec<Step> = s.pool;
    first.extend(s.indexes);
    for (name, bytes) in [
        (format!("{CLIENT_NAME}.gpg"), s.client.keyring.clone()),
        (
            format!("{CLIENT_NAME}.asc"),
            s.client.keyring_armored.clone().into_bytes(),
        ),
        (
            format!("{CLIENT_NAME}.sources"),
            s.client.sources.clone().into_bytes(),
        ),
    ] {
        if s.current.client_files.get(&name) != Some(&bytes) {
            first.push(Step::Write { to: name, bytes });
        }
    }
    let n = first.len();
    let mut steps: Vec<(Step, Flush)> = first
        .into_iter()
        .enumerate()
        .map(|(i, step)| match i + 1 == n {
            true => (step, Flush::EndOfPhase),
            false => (step, Flush::WithPhase),
        })
        .collect();
    // Phase 2: Release and Release.gpg; then InRelease, then the record.
    steps.extend([
        write(
            format!("{suite_dir}/Release"),
            s.signed.release.into_bytes(),
            Flush::WithPhase,
        ),
        write(
            format!("{suite_dir}/Release.gpg"),
            s.signed.release_gpg.into_bytes(),
            Flush::EndOfPhase,
        ),
        write(
            format!("{suite_dir}/InRelease"),
            s.signed.in_release.into_bytes(),
            Flush::Alone,
        ),
        write(
            state_file,
            serde_json::to_vec_pretty(s.state).expect("plain data serialises"),
            Flush::Alone,
        ),
        // The last phase: the page and the deletions.
        write(PAGE.to_owned(), s.page, Flush::WithPhase),
    ]);
    let referenced: BTreeSet<&String> = s.kept.values().flatten().map(|e| &e.filename).collect();
    for path in s.live_pool {
        if !referenced.contains(path) && !s.current.elsewhere.contains_key(path) {
            steps.push((Step::Remove { path: path.clone() }, Flush::WithPhase));
        }
    }
    let kept_by_hash: BTreeSet<&String> =
        s.state.generations.iter().flat_map(|g| &g.files).collect();
    for path in &s.current.by_hash_files {
        if !kept_by_hash.contains(path) {
            steps.push((Step::Remove { path: path.clone() }, Flush::WithPhase));
        }
    }
    if let Some(last) = steps.last_mut() {
        last.1 = Flush::EndOfPhase;
    }
    steps.into_iter().unzip()
}

/// Where the suites' records live, relative to the root.
pub const STATE_DIR: &str = ".state";

/// Where the record of `suite` lives, relative to the root.
pub fn state_path(suite: &str) -> String {
    format!("{STATE_DIR}/{suite}.json")
}

/// `dists/<suite>/<dir>/by-hash/SHA256/<hex>` and the SHA512 one, for a listed index.
pub fn by_hash_paths(suite_dir: &str, f: &IndexFile) -> Vec<String> {
    let dir = Path::new(&f.path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = vec![format!("{suite_dir}/{dir}/by-hash/SHA256/{}", f.sha256)];
    if let Some(h) = &f.sha512 {
        out.push(format!("{suite_dir}/{dir}/by-hash/SHA512/{h}"));
    }
    out
}

/// The deb822 source a client drops into `/etc/apt/sources.list.d/`.
fn sources_file(url: &str, release: &Release) -> String {
    format!(
        "Types: deb\nURIs: {url}\nSuites: {}\nComponents: {}\nSigned-By: /etc/apt/keyrings/{CLIENT_NAME}.gpg\n",
        release.suite,
        release.components.join(" ")
    )
}

/// Suite, codename and component names become directory names and words in `.sources`.
fn check_name(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            value,
            "expected letters, digits, '.', '_', '+' or '-'",
        ))
    }
}

/// gzip with no name and mtime 0 in its header, so the bytes depend on the text only.
fn gzip(data: &[u8], shown: &Path) -> Result<Vec<u8>> {
    let mut w = Compression::Gzip
        .writer(Vec::new(), GZIP_LEVEL, 1, data.len() as u64)
        .at(shown)?;
    w.write_all(data).at(shown)?;
    w.finish().at(shown)
}

/// Single-threaded xz: an index is small, and the packages' multithreaded encoder would
/// set up buffers for 24 MiB blocks for it.
fn xz(data: &[u8], shown: &Path) -> Result<Vec<u8>> {
    let mut w = liblzma::write::XzEncoder::new(Vec::new(), XZ_LEVEL);
    w.write_all(data).at(shown)?;
    w.finish().at(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::deb822;
    use crate::sign::{generate, KeyAlgorithm};

    const T: u64 = 1_800_000_000;

    fn signer() -> Signer {
        let k = generate(
            "T <t@example.org>",
            KeyAlgorithm::Ed25519,
            None,
            1_700_000_000,
        )
        .unwrap();
        Signer::load(k.secret_armored.as_bytes(), None, Path::new("k.asc"), T).unwrap()
    }

    fn deb(version: &str, arch: &str) -> NewDeb {
        let control = format!(
            "Package: containerd-stack\nVersion: {version}\nArchitecture: {arch}\nDescription: d\n"
        );
        NewDeb {
            staged: None,
            path: PathBuf::from(format!("/in/{version}_{arch}.deb")),
            control: deb822::parse(&control).unwrap().remove(0),
            templates: None,
            size: 10,
            md5: "0".repeat(32),
            sha256: sha256_hex(format!("{version}{arch}").as_bytes()),
        }
    }

    fn opts() -> PublishOptions {
        PublishOptions::new(T)
    }

    /// The repository as the next publish would read it after `plan` was carried out.
    fn after(plan: &Plan) -> Current {
        let mut indexes = BTreeMap::new();
        for s in &plan.steps {
            if let Step::Write { to, bytes } = s {
                if let Some(dir) = to.strip_suffix("/Packages") {
                    let mut parts = dir.rsplit('/');
                    let arch = parts.next().unwrap().strip_prefix("binary-").unwrap();
                    let component = parts.next().unwrap();
                    let entries = packages::parse(std::str::from_utf8(bytes).unwrap()).unwrap();
                    indexes.insert((component.to_owned(), arch.to_owned()), entries);
                }
            }
        }
        let state = plan
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Write { to, bytes } if to == ".state/stable.json" => {
                    Some(serde_json::from_slice(bytes).unwrap())
                }
                _ => None,
            })
            .unwrap();
        Current {
            root: PathBuf::from("/repo"),
            release: Some(plan.release.clone()),
            last_date: Some(plan.release.date),
            indexes,
            state,
            ..Current::default()
        }
    }

    fn page(plan: &Plan) -> String {
        plan.steps
            .iter()
            .find_map(|s| match s {
                Step::Write { to, bytes } if to == "index.html" => {
                    Some(String::from_utf8(bytes.clone()).unwrap())
                }
                _ => None,
            })
            .unwrap()
    }

    const POOL: &str = "pool/main/c/containerd-stack/containerd-stack";

    /// The first publish into an empty repository: 1.0-1 for amd64.
    fn first_publish(s: &Signer) -> Plan {
        plan(&Current::default(), &[deb("1.0-1", "amd64")], &[s], &opts()).unwrap()
    }

    #[test]
    fn each_pool_file_keeps_the_date_it_was_first_published() {
        let s = signer();
        let first = first_publish(&s);
        let mut later = opts();
        later.now = T + 86_400;
        let next = plan(&after(&first), &[deb("1.0-2", "amd64")], &[&s], &later).unwrap();
        let state = after(&next).state;
        let dated = |v: &str| state.first_published[&format!("{POOL}_{v}_amd64.deb")];
        let exact = |date| FirstPublished {
            date,
            or_earlier: false,
        };
        assert_eq!(dated("1.0-1"), exact(T));
        assert_eq!(dated("1.0-2"), exact(T + 86_400));
        let html = page(&next);
        assert!(
            html.contains("<time datetime=\"2027-01-15T08:00:00Z\">"),
            "{html}"
        );
        assert!(
            html.contains("<time datetime=\"2027-01-16T08:00:00Z\">"),
            "{html}"
        );
        assert!(!html.contains("≤ "), "every date is known: {html}");
        let row = |v: &str| html.find(&format!("containerd-stack_{v}_amd64\"")).unwrap();
        assert!(row("1.0-2") < row("1.0-1"), "newest first");
    }

    #[test]
    fn a_record_from_before_dates_were_kept_dates_what_is_indexed_by_the_live_release() {
        let s = signer();
        let first = first_publish(&s);
        let mut old = after(&first);
        // What an older publisher wrote: generations and pool files, nothing else.
        old.state.first_published.clear();
        old.state.debconf.clear();
        old.state.templates.clear();
        let mut later = opts();
        later.now = T + 600;
        let next = plan(&old, &[deb("1.0-2", "amd64")], &[&s], &later).unwrap();
        let state = after(&next).state;
        assert_eq!(
            state.first_published[&format!("{POOL}_1.0-1_amd64.deb")],
            FirstPublished {
                date: T,
                or_earlier: true
            }
        );
        assert_eq!(
            state.first_published[&format!("{POOL}_1.0-2_amd64.deb")].date,
            T + 600
        );
        assert!(page(&next).contains("≤ <time datetime=\"2027-01-15T08:00:00Z\">"));
        // The record of an older publisher still reads.
        let legacy: SuiteState =
            serde_json::from_str(r#"{"generations":[],"published":{"pool/x.deb":"00"}}"#).unwrap();
        assert_eq!(legacy.published["pool/x.deb"], "00");
        assert!(legacy.first_published.is_empty());
    }

    #[test]
    fn the_page_shows_the_preseedable_questions_of_the_newest_version() {
        let s = signer();
        let with = |version: &str, default: &str| {
            let mut d = deb(version, "amd64");
            d.templates = Some(format!(
                "Template: containerd-stack/sandbox_image\nType: string\nDefault: {default}\nDescription: Sandbox image for Kubernetes pods:\n It holds the pod's namespaces.\nDescription-de.UTF-8: Sandbox-Abbild\n"
            ));
            d
        };
        let first = plan(
            &Current::default(),
            &[with("1.0-1", "pause:3.9")],
            &[&s],
            &opts(),
        )
        .unwrap();
        let state = after(&first).state;
        assert_eq!(state.templates.len(), 1);
        assert!(
            !state.templates.values().any(|t| t.contains("Abbild")),
            "translations are not kept"
        );
        let next = plan(
            &after(&first),
            &[with("1.0-2", "pause:3.10")],
            &[&s],
            &opts(),
        )
        .unwrap();
        let html = page(&next);
        assert!(html.contains("echo &#39;containerd-stack containerd-stack/sandbox_image string pause:3.10&#39; | sudo debconf-set-selections"), "{html}");
        assert!(
            !html.contains("pause:3.9"),
            "only the newest version's questions: {html}"
        );
        // A templates file that cannot be read is said, not fatal.
        let mut bad = deb("1.0-3", "amd64");
        bad.templates = Some("Template: x\n".into());
        let third = plan(&after(&next), &[bad], &[&s], &opts()).unwrap();
        assert_eq!(third.warnings.len(), 1, "{:?}", third.warnings);
        assert!(third.warnings[0].starts_with("/in/1.0-3_amd64.deb: its debconf templates cannot be read (template x has no Type field)"), "{:?}", third.warnings);
    }

    fn paths(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|s| s.path().to_owned()).collect()
    }

    #[test]
    fn steps_put_everything_in_place_before_the_release_that_names_it() {
        let s = signer();
        let plan = plan(
            &Current::default(),
            &[deb("1.0-1", "amd64")],
            &[&s],
            &opts(),
        )
        .unwrap();
        let p = paths(&plan);
        let pos = |name: &str| p.iter().position(|x| x == name).unwrap();
        let by_hash: Vec<usize> = (0..p.len())
            .filter(|&i| p[i].contains("/by-hash/"))
            .collect();
        assert_eq!(
            by_hash.len(),
            6,
            "SHA256 and SHA512 copies of 3 files: {p:?}"
        );
        assert_eq!(
            p[0],
            "pool/main/c/containerd-stack/containerd-stack_1.0-1_amd64.deb"
        );
        let plain = pos("dists/stable/main/binary-amd64/Packages");
        assert!(by_hash.iter().all(|&i| i < plain));
        assert!(plain < pos("dists/stable/main/binary-amd64/Packages.xz"));
        assert!(pos("dists/stable/main/binary-amd64/Packages.xz") < pos("dists/stable/Release"));
        assert!(pos("containerd-stack.sources") < pos("dists/stable/Release"));
        assert!(pos("dists/stable/Release") < pos("dists/stable/Release.gpg"));
        assert!(pos("dists/stable/Release.gpg") < pos("dists/stable/InRelease"));
        assert_eq!(pos(".state/stable.json"), pos("dists/stable/InRelease") + 1);
        assert_eq!(
            pos("index.html"),
            p.len() - 1,
            "the page comes last, after the record"
        );
    }

    #[test]
    fn each_phase_ends_in_a_flush_and_unchanged_client_files_are_not_written_again() {
        let s = signer();
        let first = first_publish(&s);
        assert_eq!(first.flush.len(), first.steps.len());
        let flush = |p: &Plan, name: &str| {
            let i = paths(p).iter().position(|x| x == name).unwrap();
            p.flush[i]
        };
        // Everything the Release names is flushed before it, the Release before InRelease.
        assert_eq!(flush(&first, "containerd-stack.sources"), Flush::EndOfPhase);
        assert_eq!(flush(&first, "dists/stable/Release"), Flush::WithPhase);
        assert_eq!(flush(&first, "dists/stable/Release.gpg"), Flush::EndOfPhase);
        assert_eq!(flush(&first, "dists/stable/InRelease"), Flush::Alone);
        assert_eq!(flush(&first, ".state/stable.json"), Flush::Alone);
        assert_eq!(first.flush.last(), Some(&Flush::EndOfPhase));
        let before_release = paths(&first)
            .iter()
            .position(|x| x == "dists/stable/Release")
            .unwrap();
        assert!(first.flush[..before_release - 1]
            .iter()
            .all(|f| *f == Flush::WithPhase));

        let mut current = after(&first);
        for step in &first.steps {
            if let Step::Write { to, bytes } = step {
                if to.starts_with(CLIENT_NAME) {
                    current.client_files.insert(to.clone(), bytes.clone());
                }
            }
        }
        assert_eq!(current.client_files.len(), 3);
        let next = plan(&current, &[deb("1.0-2", "amd64")], &[&s], &opts()).unwrap();
        assert!(
            paths(&next).iter().all(|p| !p.starts_with(CLIENT_NAME)),
            "{:?}",
            paths(&next)
        );
        // The Packages.xz before the Release ends the first phase now.
        assert_eq!(
            flush(&next, "dists/stable/main/binary-amd64/Packages.xz"),
            Flush::EndOfPhase
        );
        let mut moved = opts();
        moved.url = Some("https://apt.example.org/".into());
        let next = plan(&current, &[], &[&s], &moved).unwrap();
        let written: Vec<String> = paths(&next)
            .into_iter()
            .filter(|p| p.starts_with(CLIENT_NAME))
            .collect();
        assert_eq!(written, ["containerd-stack.sources"]);
    }

    #[test]
    fn architecture_all_packages_are_indexed_for_every_architecture() {
        let s = signer();
        let first = plan(
            &Current::default(),
            &[
                deb("1.0-1", "amd64"),
                deb("1.0-1", "arm64"),
                deb("0.1-1", "all"),
            ],
            &[&s],
            &opts(),
        )
        .unwrap();
        let p = paths(&first);
        let copies = p.iter().filter(|x| x.ends_with("_0.1-1_all.deb")).count();
        assert_eq!(copies, 1, "one pool file for both indexes");
        let current = after(&first);
        for arch in ["amd64", "arm64"] {
            let index = &current.indexes[&("main".to_owned(), arch.to_owned())];
            assert!(index.iter().any(|e| e.architecture == "all"), "{arch}");
        }
        assert_eq!(first.release.architectures, ["amd64", "arm64"]);
        // A later architecture gets them too.
        let next = plan(&current, &[deb("1.0-1", "riscv64")], &[&s], &opts()).unwrap();
        let riscv = &after(&next).indexes[&("main".to_owned(), "riscv64".to_owned())];
        let versions: Vec<&str> = riscv.iter().map(|e| e.version.as_str()).collect();
        assert_eq!(versions, ["0.1-1", "1.0-1"]);
        let e = plan(&Current::default(), &[deb("0.1-1", "all")], &[&s], &opts()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/in/0.1-1_all.deb: an Architecture: all package needs"),
            "{e}"
        );
    }

    #[test]
    fn origin_label_and_codename_stay_unless_a_change_is_allowed() {
        let s = signer();
        let mut o = opts();
        o.origin = Some("Example".into());
        let first = plan(&Current::default(), &[deb("1.0-1", "amd64")], &[&s], &o).unwrap();
        let current = after(&first);
        // Not given: kept.
        let next = plan(&current, &[], &[&s], &opts()).unwrap();
        assert_eq!(next.release.origin, "Example");
        o.origin = Some("Other".into());
        let e = plan(&current, &[], &[&s], &o).unwrap_err().to_string();
        assert_eq!(
            e,
            "/repo/dists/stable/Release: Origin is \"Example\" but would become \"Other\": changing it stops every client's apt-get update until it is run with --allow-releaseinfo-change"
        );
        o.allow_release_info_change = true;
        assert_eq!(
            plan(&current, &[], &[&s], &o).unwrap().release.origin,
            "Other"
        );
    }

    #[test]
    fn valid_until_keeps_its_period_until_told_otherwise() {
        let s = signer();
        let mut o = opts();
        o.valid_for_days = Some(7);
        let first = plan(&Current::default(), &[deb("1.0-1", "amd64")], &[&s], &o).unwrap();
        assert_eq!(first.release.valid_until, Some(T + 7 * 86_400));
        let mut later = opts();
        later.now = T + 1000;
        let next = plan(&after(&first), &[], &[&s], &later).unwrap();
        assert_eq!(next.release.valid_until, Some(T + 1000 + 7 * 86_400));
        later.valid_for_days = Some(0);
        let next = plan(&after(&first), &[], &[&s], &later).unwrap();
        assert_eq!(next.release.valid_until, None);
    }

    #[test]
    fn an_unchanged_index_is_not_written_again() {
        let s = signer();
        let first = plan(
            &Current::default(),
            &[deb("1.0-1", "amd64"), deb("1.0-1", "arm64")],
            &[&s],
            &opts(),
        )
        .unwrap();
        let next = plan(&after(&first), &[deb("1.0-2", "amd64")], &[&s], &opts()).unwrap();
        assert!(
            paths(&next).iter().all(|p| !p.contains("arm64")),
            "{:?}",
            paths(&next)
        );
        let arm64 = |r: &Release| -> Vec<IndexFile> {
            r.files
                .iter()
                .filter(|f| f.path.contains("arm64"))
                .cloned()
                .collect()
        };
        assert_eq!(arm64(&first.release), arm64(&next.release));
        assert_eq!(
            next.release.date,
            T + 1,
            "Date moves on even within one second"
        );
    }

    #[test]
    fn no_key_no_packages_and_bad_names_are_refused() {
        let s = signer();
        let e = plan(&Current::default(), &[deb("1.0-1", "amd64")], &[], &opts()).unwrap_err();
        assert!(e.to_string().starts_with("no signing key"), "{e}");
        let e = plan(&Current::default(), &[], &[&s], &opts()).unwrap_err();
        assert!(e.to_string().ends_with("nothing to publish"), "{e}");
        let mut o = opts();
        o.suite = "../etc".into();
        let e = plan(&Current::default(), &[deb("1.0-1", "amd64")], &[&s], &o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "suite \"../etc\": expected letters, digits, '.', '_', '+' or '-'"
        );
    }
}

//! `repo`: publishes packages into a signed apt repository made of static files, which any
//! web server, bucket or GitHub Pages can host. A publish adds packages to what is there,
//! keeps the newest N versions of each package and architecture if asked, and never leaves
//! a state apt refuses, even when killed half-way.
//!
//! Layout (`<suite>` defaults to `stable`, `<component>` to `main`):
//!
//! ```text
//! pool/<component>/c/containerd-stack/containerd-stack_<version>_<arch>.deb
//! dists/<suite>/InRelease                 clear-signed Release (apt reads this first)
//! dists/<suite>/Release, Release.gpg      the same, with a detached armoured signature
//! dists/<suite>/<component>/binary-<arch>/Packages{,.gz,.xz}
//! dists/<suite>/<component>/binary-<arch>/by-hash/{SHA256,SHA512}/<hex>
//! containerd-stack.gpg, .asc              the signing keys' public halves (Signed-By)
//! containerd-stack.sources                deb822 source for /etc/apt/sources.list.d/
//! index.html                              the page a browser shows: every suite, keys, set-up
//! .lock                                   held while a publish runs
//! .state/<suite>.json                     by-hash generations, pool files ever published,
//!                                         when each was first published, debconf templates
//! ```
//!
//! The work is split so each part can be tested alone: [`state`] reads the repository and
//! the new packages, [`plan`] (pure, no I/O) computes every file of the next generation and
//! the order to write them in, [`exec`] writes them under the lock. Why the order of
//! [`plan::Step`]s is safe to interrupt is explained in [`plan`].
//!
//! State lives in the repository itself. The indexes are the database: a publish parses the
//! `Packages` files the live Release names (their by-hash copy if the plain file was
//! already replaced by an interrupted publish) and never reopens a published package, so
//! adding one package costs the same whatever the pool holds; a new package is read for its
//! control member and hashes only. What the indexes cannot say is in `.state/<suite>.json`:
//! which by-hash files belong to the last generations (the live Release is always counted
//! as one, even if the record missed it), every pool file the suite ever indexed with its
//! sha256, so that a version `--keep` dropped cannot come back with other bytes, and for the
//! index page when each indexed file was first published and its debconf templates. Losing
//! that file loses only those memories; the next publish starts a new record, dating what
//! it finds indexed by the live Release ("on or before").
//!
//! [`verify`] reads a repository back — a directory or a URL — the way apt does, and names
//! the first file that is not what its Release, its index or its signature says.
//!
//! The pool is shared by every suite: a pool file another suite's index references is
//! neither replaced nor deleted. `containerd-stack.sources` names the suite published last.

pub mod deb822;
pub mod debconf;
pub mod exec;
pub mod packages;
pub mod page;
pub mod plan;
pub mod release;
pub mod state;
pub mod verify;
pub mod version;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::listener::{Event, Listener, Stage};
use crate::sign::Signer;

pub use exec::{apply, execute, lock, RepoLock};
pub use plan::{plan, Flush, Plan, PublishOptions, Step};
pub use state::{inspect_deb, read_current};
pub use verify::{verify, Location, Verified, VerifyOptions};
pub use version::compare_versions;

/// The name of the client files: `<repo>/containerd-stack.{gpg,asc,sources}`, installed as
/// `/etc/apt/keyrings/containerd-stack.gpg` and
/// `/etc/apt/sources.list.d/containerd-stack.sources`.
pub const CLIENT_NAME: &str = "containerd-stack";

/// Where a publish stages the new packages, inside the repository (so they can be moved
/// into the pool), hidden like the lock and the state.
pub const INCOMING: &str = ".incoming";

/// The `URIs:` written when no URL was ever given; the user replaces it.
pub const PLACEHOLDER_URL: &str = "https://REPO.example/";

/// The index page, at the root: what a web server shows for the repository's URL.
pub const PAGE: &str = "index.html";

/// Publishes `debs` into the repository at `root`, signed by every one of `signers`.
pub fn publish(
    root: &Path,
    debs: &[PathBuf],
    signers: &[&Signer],
    opts: &PublishOptions,
    listener: &dyn Listener,
) -> Result<Plan> {
    let _lock = lock(root, listener)?;
    // New packages are copied into `.incoming/` while they are hashed, then moved into the
    // pool; what a killed publish left there is dropped first.
    let incoming = root.join(INCOMING);
    let _ = std::fs::remove_dir_all(&incoming);
    // Whatever happens next, nothing is left staged: a refused publish changes nothing.
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _cleanup = Cleanup(&incoming);
    if !debs.is_empty() {
        std::fs::create_dir_all(&incoming).map_err(|e| crate::Error::Io {
            path: incoming.clone(),
            source: e,
        })?;
    }
    let new = inspect_all(debs, &incoming, listener)?;
    let current = read_current(root, &opts.suite)?;
    let plan = plan(&current, &new, signers, opts)?;
    for w in &plan.warnings {
        listener.event(Event::Warning(w.clone()));
    }
    listener.event(Event::Step(format!(
        "{} step(s) to publish {} package(s) into {}",
        plan.steps.len(),
        plan.added.len(),
        root.display()
    )));
    wait_for(plan.release.date, listener);
    execute(root, &plan, listener)?;
    Ok(plan)
}

/// Reads and hashes the new packages on every core: a cold publish of many packages is
/// bound by hashing them. Reports each package hashed as [`Stage::Hash`] progress.
fn inspect_all(
    debs: &[PathBuf],
    incoming: &Path,
    listener: &dyn Listener,
) -> Result<Vec<packages::NewDeb>> {
    if debs.is_empty() {
        return Ok(Vec::new());
    }
    const NAME: &str = "packages";
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = debs.len().div_ceil(workers).max(1);
    let total = debs.len() as u64;
    let done = AtomicU64::new(0);
    listener.event(Event::Began {
        stage: Stage::Hash,
        name: NAME.into(),
    });
    let out = std::thread::scope(|s| {
        let handles: Vec<_> = debs
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let done = &done;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, d)| {
                            let staged = incoming.join(format!("{}.deb", c * chunk + i));
                            let deb = state::inspect_and_stage(d, &staged)?;
                            listener.event(Event::Progress {
                                stage: Stage::Hash,
                                name: NAME.into(),
                                done: done.fetch_add(1, Ordering::Relaxed) + 1,
                                total,
                            });
                            Ok(deb)
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(debs.len());
        for h in handles {
            out.extend(h.join().expect("inspect thread panicked")?);
        }
        Ok(out)
    });
    listener.event(Event::Ended {
        stage: Stage::Hash,
        name: NAME.into(),
    });
    out
}

/// Waits until the clock reaches `date` (at most [`plan::MAX_AHEAD`] seconds, as the planner
/// checked): a Date that only moved on because two publishes came within a second must not
/// reach clients ahead of their clocks, or a client a little behind refuses the repository.
fn wait_for(date: u64, listener: &dyn Listener) {
    let at = UNIX_EPOCH + Duration::from_secs(date);
    if let Ok(ahead) = at.duration_since(SystemTime::now()) {
        listener.event(Event::Waiting(format!(
            "waiting {:.1} s for the clock to reach the new Date",
            ahead.as_secs_f64()
        )));
        std::thread::sleep(ahead);
    }
}

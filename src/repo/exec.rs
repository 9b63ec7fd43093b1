//! Carries a [`Plan`] out, one [`Step`] at a time in the plan's order. Every file is
//! written whole under no name and linked into place ([`crate::atomic`]), so a reader sees
//! the old file or the new one, never part of one. The steps come in phases ([`Flush`]):
//! a phase's files are flushed to disk, data and names, before the next phase's first step,
//! so a crash never leaves a later phase without the earlier ones. A lock on `<repo>/.lock` makes two publishes into one repository wait for
//! each other.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::atomic::{sync_filesystem, AtomicFile};
use crate::error::{Error, IoContext, Result};
use crate::hash::Sha256Hasher;
use crate::listener::{Event, Listener, Stage};

use super::plan::{Flush, Plan, Step};

/// Held while a publish runs; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

/// Takes the repository's lock, creating the repository directory if needed; waits, saying
/// so, while another publish holds it.
pub fn lock(root: &Path, listener: &dyn Listener) -> Result<RepoLock> {
    fs::create_dir_all(root).at(root)?;
    let path = root.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at(&path)?;
    if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err() {
        listener.event(Event::Waiting(format!(
            "waiting for another publish to release {}",
            path.display()
        )));
        flock(&file, libc::LOCK_EX).at(&path)?;
    }
    Ok(RepoLock { _file: file })
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor this File owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Carries out every step of `plan`, reporting each to `listener`, and the count of steps
/// done as [`Stage::Publish`] progress. Each phase's files are named without a flush and
/// made durable together by one flush of the filesystem before the next phase begins
/// ([`Flush`]).
pub fn execute(root: &Path, plan: &Plan, listener: &dyn Listener) -> Result<()> {
    const NAME: &str = "repository files";
    let total = plan.steps.len() as u64;
    listener.event(Event::Began {
        stage: Stage::Publish,
        name: NAME.into(),
    });
    let mut unsynced = false;
    let result =
        plan.steps
            .iter()
            .zip(&plan.flush)
            .enumerate()
            .try_for_each(|(i, (step, flush))| {
                listener.event(Event::Step(step.to_string()));
                match flush {
                    Flush::Alone => {
                        if unsynced {
                            sync_filesystem(root)?;
                            unsynced = false;
                        }
                        apply_with(root, step, true)?;
                    }
                    Flush::WithPhase => {
                        apply_with(root, step, false)?;
                        unsynced = true;
                    }
                    Flush::EndOfPhase => {
                        apply_with(root, step, false)?;
                        sync_filesystem(root)?;
                        unsynced = false;
                    }
                }
                listener.event(Event::Progress {
                    stage: Stage::Publish,
                    name: NAME.into(),
                    done: i as u64 + 1,
                    total,
                });
                Ok(())
            });
    let result = result.and_then(|()| match unsynced {
        true => sync_filesystem(root),
        false => Ok(()),
    });
    listener.event(Event::Ended {
        stage: Stage::Publish,
        name: NAME.into(),
    });
    result
}

/// Carries out one step, durably. Tests call this to stop a publish after any step.
pub fn apply(root: &Path, step: &Step) -> Result<()> {
    apply_with(root, step, true)
}

/// Carries out one step; `durable`: its data, its name and any directory made for it are
/// flushed before this returns, else they are left to the phase's flush.
fn apply_with(root: &Path, step: &Step, durable: bool) -> Result<()> {
    match step {
        Step::Write { to, bytes } => {
            let path = root.join(to);
            let mut f = AtomicFile::new_in(&make_dirs(&path, durable)?, 0o644)?;
            f.file().write_all(bytes).at(&path)?;
            match durable {
                true => f.persist(&path),
                false => f.persist_unsynced(&path),
            }
        }
        Step::CopyDeb { from, to, .. } if from.starts_with(root.join(super::INCOMING)) => {
            // Staged and hashed by this publish: moved, not copied again.
            let path = root.join(to);
            let dir = make_dirs(&path, durable)?;
            fs::rename(from, &path).at(&path)?;
            if durable {
                File::open(&path).and_then(|f| f.sync_all()).at(&path)?;
                File::open(&dir).and_then(|d| d.sync_all()).at(&dir)?;
            }
            Ok(())
        }
        Step::CopyDeb { from, to, sha256 } => {
            let path = root.join(to);
            let mut f = AtomicFile::new_in(&make_dirs(&path, durable)?, 0o644)?;
            let mut src = File::open(from).at(from)?;
            let mut hasher = Sha256Hasher::default();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = src.read(&mut buf).at(from)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                f.file().write_all(&buf[..n]).at(&path)?;
            }
            let got = hasher.finish().to_string();
            if got != *sha256 {
                return Err(Error::Repo {
                    path: from.clone(),
                    message: format!(
                        "changed while it was being published (sha256 {sha256} when indexed, {got} when copied); publish it again"
                    ),
                });
            }
            match durable {
                true => f.persist(&path),
                false => f.persist_unsynced(&path),
            }
        }
        Step::Remove { path } => {
            let path = root.join(path);
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).at(&path),
            }
        }
    }
}

/// Creates the directory of `file` and any missing parents; `durable`: flushing each new
/// name to disk in its parent, so a file linked into a new directory survives a crash too
/// (else the phase's flush does).
fn make_dirs(file: &Path, durable: bool) -> Result<PathBuf> {
    let dir = file.parent().expect("a file in the repository").to_owned();
    let mut missing = Vec::new();
    let mut d = dir.as_path();
    while !d.is_dir() {
        missing.push(d.to_owned());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).at(d),
        }
        if let (true, Some(parent)) = (durable, d.parent()) {
            File::open(parent).and_then(|p| p.sync_all()).at(parent)?;
        }
    }
    Ok(dir)
}

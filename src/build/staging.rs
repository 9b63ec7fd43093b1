//! A build's own staging directory under `<cache>/staging/`, where the upstream programs
//! are unpacked, locked while the build runs. A build killed with `kill -9` cannot remove
//! it; the next build removes every staging directory whose lock nobody holds. The
//! directory knows which assets it holds, so asking for one twice unpacks it once.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::arch::DebArch;
use crate::artifact::Artifact;
use crate::error::{IoContext, Result};
use crate::fetch::Fetcher;
use crate::listener::{Event, Listener, Stage};
use crate::stack::ComponentKind;
use crate::unpack::{self, StagedProgram, MAX_UNPACKED_BYTES};

#[derive(Debug)]
pub(crate) struct Staging {
    dir: tempfile::TempDir,
    _lock: fs::File,
    /// The components whose asset is unpacked here.
    holds: Mutex<BTreeSet<ComponentKind>>,
}

impl Staging {
    pub(crate) fn new(cache_dir: &Path, arch: DebArch) -> Result<Staging> {
        let root = cache_dir.join("staging");
        fs::create_dir_all(&root).at(&root)?;
        if let Ok(entries) = fs::read_dir(&root) {
            for e in entries.flatten() {
                let lock = e.path().join(".lock");
                // A directory a running build has just made may not be locked yet: only
                // one older than a minute whose lock is free is abandoned.
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() > 60));
                let abandoned = old && fs::File::open(&lock).is_ok_and(|f| f.try_lock().is_ok());
                if abandoned {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{arch}-"))
            .tempdir_in(&root)
            .at(&root)?;
        let lock_path = dir.path().join(".lock");
        let lock = fs::File::create(&lock_path).at(&lock_path)?;
        lock.lock().at(&lock_path)?;
        Ok(Staging {
            dir,
            _lock: lock,
            holds: Mutex::new(BTreeSet::new()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the programs of `component` are unpacked.
    pub(crate) fn dir_of(&self, component: ComponentKind) -> PathBuf {
        self.path().join(component.key())
    }

    /// Fetches one asset (through the cache) and unpacks its programs here.
    pub(crate) fn stage(
        &self,
        a: &Artifact,
        fetcher: &Fetcher,
        listener: &dyn Listener,
    ) -> Result<Vec<StagedProgram>> {
        let asset = fetcher.fetch(a, listener)?;
        listener.event(Event::Began {
            stage: Stage::Unpack,
            name: a.file_name.clone(),
        });
        let programs = unpack::unpack(a, &asset, &self.dir_of(a.component), MAX_UNPACKED_BYTES)?;
        listener.event(Event::Ended {
            stage: Stage::Unpack,
            name: a.file_name.clone(),
        });
        self.holds.lock().unwrap().insert(a.component);
        Ok(programs)
    }

    /// Stages every asset of `artifacts` not here yet, side by side.
    pub(crate) fn ensure(
        &self,
        artifacts: &[Artifact],
        fetcher: &Fetcher,
        listener: &dyn Listener,
    ) -> Result<()> {
        let missing: Vec<&Artifact> = {
            let holds = self.holds.lock().unwrap();
            artifacts
                .iter()
                .filter(|a| !holds.contains(&a.component))
                .collect()
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = missing
                .iter()
                .map(|a| s.spawn(|| self.stage(a, fetcher, listener)))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("asset thread panicked").map(drop))
        })
    }
}

//! How the library reports progress without printing: the caller passes a [`Listener`]
//! and decides what a terminal, a log or a test sees.

use std::sync::Mutex;

/// How `build-deb --verbose` names its peak resident memory on its last line (the bench
/// reads it).
pub const PEAK_MEMORY: &str = "peak resident memory: ";

/// Something worth telling the user while a build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A download starts; `total` is the announced size, when there is one.
    DownloadStarted {
        name: String,
        total: Option<u64>,
    },
    DownloadProgress {
        name: String,
        bytes: u64,
    },
    DownloadFinished {
        name: String,
    },
    /// An artifact was found in the cache and its hash re-checked.
    CacheHit {
        name: String,
    },
    /// A step of the build, for verbose output.
    Step(String),
    /// A timed stage of the build begins for one asset or package (`name`).
    Began {
        stage: Stage,
        name: String,
    },
    /// …and ends.
    Ended {
        stage: Stage,
        name: String,
    },
    /// Work done so far in a stage that takes a while: `done` of `total`, in the stage's
    /// [`Unit`]. Sent between its `Began` and `Ended`, as often as is useful to show.
    Progress {
        stage: Stage,
        name: String,
        done: u64,
        total: u64,
    },
    /// Work stands still until something outside it happens (another publish holding the
    /// repository's lock, the clock reaching a Date).
    Waiting(String),
    /// Something the user should know that does not stop the build.
    Warning(String),
}

/// What a stage's progress counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Packages, files: things counted one by one.
    Items,
}

/// The stages of a build that take time, besides downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Taking an asset's programs out into staging.
    Unpack,
    /// ELF checks and md5s of an asset's programs.
    Check,
    /// Writing the compressed data member of a package: bytes of its tar.
    Compress,
    /// Reading and hashing the packages given to a publish.
    Hash,
    /// Writing a repository's files, in the publish's order.
    Publish,
}

impl Stage {
    /// How verbose output names it: `unpacking`, or `unpacked` once `done`.
    pub fn verb(self, done: bool) -> &'static str {
        match (self, done) {
            (Stage::Unpack, false) => "unpacking",
            (Stage::Unpack, true) => "unpacked",
            (Stage::Check, false) => "checking",
            (Stage::Check, true) => "checked",
            (Stage::Compress, false) => "compressing",
            (Stage::Compress, true) => "compressed",
            (Stage::Hash, false) => "hashing",
            (Stage::Hash, true) => "hashed",
            (Stage::Publish, false) => "writing",
            (Stage::Publish, true) => "wrote",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Stage::Unpack | Stage::Compress => Unit::Bytes,
            Stage::Check | Stage::Hash | Stage::Publish => Unit::Items,
        }
    }
}

pub trait Listener: Sync {
    fn event(&self, event: Event);
}

/// Ignores everything.
pub struct Quiet;

impl Listener for Quiet {
    fn event(&self, _: Event) {}
}

/// Keeps every event, for tests that assert on what a user would have been told.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl Listener for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn warnings(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }
}

//! How the library reports progress without printing: the caller passes a [`Listener`]
//! and decides what a terminal, a log or a test sees.

use std::sync::Mutex;

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
    /// Something the user should know that does not stop the build.
    Warning(String),
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

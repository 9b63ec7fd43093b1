//! The library's one error type. Every variant names the thing at fault — a file, a URL,
//! an archive entry or a manifest key — so the CLI can print it as a single line.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },

    #[error("{key}: {message}")]
    Pin { key: String, message: String },

    #[error("{url}: {message}")]
    Fetch { url: String, message: String },

    #[error(
        "{url}: sha256 mismatch: expected {expected}, got {actual}; the download was discarded"
    )]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },

    #[error("{archive}: entry {entry}: {message}")]
    Archive {
        archive: String,
        entry: String,
        message: String,
    },

    #[error("{file}: {message}")]
    Binary { file: String, message: String },

    #[error("template {template}: {message}")]
    Template { template: String, message: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file of an apt repository, or a package given to a publish, at fault.
    #[error("{path}: {message}")]
    Repo { path: PathBuf, message: String },

    #[error("{0}")]
    Usage(String),
}

/// Attaches the path to an `io::Error`, so no I/O failure is ever reported without it.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

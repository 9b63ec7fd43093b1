//! The library's one error type. Every variant names the thing at fault — a file, a URL,
//! an archive entry or a manifest key — so the CLI can print it as a single line.

use std::path::PathBuf;

use crate::arch::DebArch;
use crate::stack::ComponentKind;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// stack.toml (or a key file's metadata) is malformed or holds a bad value.
    #[error("{}: {}", .path.display(), one_line(.message))]
    Manifest { path: PathBuf, message: String },

    /// A required component has no sha256 for an architecture: nothing unpinned is fetched.
    #[error("components.{component}.sha256.{arch}: no sha256 is pinned for {arch}; refusing to fetch an unverified asset")]
    Unpinned {
        component: ComponentKind,
        arch: DebArch,
    },

    /// A build or a lock was asked for no architecture at all.
    #[error("no architecture to {0}")]
    NoArchitecture(&'static str),

    #[error("{}: {}", one_line(.url), one_line(.message))]
    Fetch { url: String, message: String },

    /// The network was forbidden and the file is not in the cache.
    #[error("{}: not in the cache {} and the network is forbidden (offline)", one_line(.url), .cache.display())]
    Offline { url: String, cache: PathBuf },

    #[error(
        "{url}: sha256 mismatch: expected {expected}, got {actual}; the download was discarded"
    )]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },

    #[error("{}: entry {}: {}", one_line(.archive), one_line(.entry), one_line(.message))]
    Archive {
        archive: String,
        entry: String,
        message: String,
    },

    /// A program that is not what its architecture or linkage must be.
    #[error("{}: {}", one_line(.file), one_line(.message))]
    Binary { file: String, message: String },

    /// Two things would be installed at one path.
    #[error("layout: /{path}: {message}")]
    Layout { path: String, message: String },

    #[error("template {template}: {}", one_line(.message))]
    Template { template: String, message: String },

    #[error("{}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A key file that cannot be used for what it was given for.
    #[error("{}: {}", .path.display(), one_line(.message))]
    Key { path: PathBuf, message: String },

    /// A secret key protected by a passphrase, and none was given.
    #[error("{}: the key is protected by a passphrase", .path.display())]
    Passphrase { path: PathBuf },

    /// What rPGP refused, with what was being done.
    #[error("{what}")]
    OpenPgp {
        what: String,
        #[source]
        source: pgp::errors::Error,
    },

    /// A signature that does not verify against the keyring it was checked with.
    #[error("{}: {}", one_line(.what), one_line(.message))]
    Signature { what: String, message: String },

    /// A file of an apt repository, or a package given to a publish, at fault.
    #[error("{}: {}", .path.display(), one_line(.message))]
    Repo { path: PathBuf, message: String },

    /// A file of a published repository (a path or a URL) that apt would refuse, or that is
    /// not what its Release or its index says: what `repo verify` reports.
    #[error("{}: {}", one_line(.file), one_line(.message))]
    RepoCheck { file: String, message: String },

    /// No suite to verify was named, and none can be found.
    #[error("{}: {}", one_line(.repo), one_line(.message))]
    NoSuite { repo: String, message: String },

    /// A publish would change a Release field that clients hold on to.
    #[error("{}: {field} is {old:?} but would become {new:?}: changing it stops every client's apt-get update until it is run with --allow-releaseinfo-change", .path.display())]
    ReleaseInfoChange {
        path: PathBuf,
        field: &'static str,
        old: String,
        new: String,
    },

    /// A publish without a key: apt refuses an unsigned repository.
    #[error("no signing key: apt refuses an unsigned repository")]
    NoSigningKey,

    /// A value given to the library that it cannot take (a level, a name, a URL scheme).
    #[error("{what} {}: {}", one_line(&format!("{:?}", .value)), one_line(.expected))]
    Invalid {
        what: &'static str,
        value: String,
        expected: String,
    },

    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

impl Error {
    /// An [`Error::Invalid`].
    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Error {
        Error::Invalid {
            what,
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// An [`Error::OpenPgp`] maker, for `map_err`.
    pub(crate) fn pgp(what: impl Into<String>) -> impl FnOnce(pgp::errors::Error) -> Error {
        let what = what.into();
        move |source| Error::OpenPgp { what, source }
    }
}

/// An error and its causes as one printable line, joined by ": " (what a command prints).
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    one_line(&line).into_owned()
}

/// Text from outside (archive entry names, parser messages quoting hostile bytes) may hold
/// newlines and control characters; an error is always one printable line.
pub fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| match c {
                '\n' | '\r' | '\t' => ' '.to_string(),
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_never_breaks_the_line() {
        let e = Error::Archive {
            archive: "x.deb".into(),
            entry: "a\nb".into(),
            message: "bad \u{1b}[31m\r\nthing".into(),
        };
        assert_eq!(e.to_string(), "x.deb: entry a b: bad \\u{1b}[31m  thing");
    }

    #[test]
    fn a_report_joins_the_causes_once() {
        let e = Error::Io {
            path: "/x/y".into(),
            source: std::io::Error::other("disk\non fire"),
        };
        assert_eq!(report(&e), "/x/y: disk on fire");
    }
}

//! The library's one error type. Every variant names the thing at fault — a file, a URL,
//! an archive entry or a manifest key — so the CLI can print it as a single line.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {}", .path.display(), one_line(.message))]
    Manifest { path: PathBuf, message: String },

    #[error("{}: {}", one_line(.key), one_line(.message))]
    Pin { key: String, message: String },

    #[error("{}: {}", one_line(.url), one_line(.message))]
    Fetch { url: String, message: String },

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

    #[error("{}: {}", one_line(.file), one_line(.message))]
    Binary { file: String, message: String },

    #[error("template {template}: {}", one_line(.message))]
    Template { template: String, message: String },

    #[error("{}: {}", .path.display(), one_line(&.source.to_string()))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file of an apt repository, or a package given to a publish, at fault.
    #[error("{}: {}", .path.display(), one_line(.message))]
    Repo { path: PathBuf, message: String },

    #[error("{}", one_line(.0))]
    Usage(String),
}

/// Text from outside (archive entry names, parser messages quoting hostile bytes) may hold
/// newlines and control characters; an error is always one printable line.
fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
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
}

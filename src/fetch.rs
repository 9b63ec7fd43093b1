//! Downloads release assets into a content-addressed cache. The only module that touches
//! the network. A download streams into a temporary file while it is hashed; only a file
//! whose sha256 matches the pin is renamed into the cache, so the cache never holds an
//! unverified byte. [`Remote`] reads the files of a deployed apt repository for
//! `repo verify`, which checks every byte against the repository's signed Release.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::artifact::{Artifact, GITHUB};
use crate::atomic::AtomicFile;
use crate::error::{Error, IoContext, Result};
use crate::hash::{sha256_file, Hasher};
use crate::listener::{Event, Listener};
use crate::stack::Sha256;

/// How long and how much a download may take before it is given up.
#[derive(Debug, Clone)]
pub struct Limits {
    /// No release asset we package comes near the default of 1 GiB; a larger body is
    /// refused, not stored.
    pub max_bytes: u64,
    /// Tries per download; only network and server errors are retried.
    pub attempts: u32,
    /// Wait before the second try; doubled for each one after.
    pub backoff: Duration,
    pub connect_timeout: Duration,
    /// The longest a single read may wait for a byte.
    pub read_timeout: Duration,
    /// A transfer that receives fewer than `stall_min_bytes` in any `stall_window` is
    /// stalled (a server dripping a byte a second never trips `read_timeout`).
    pub stall_window: Duration,
    pub stall_min_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 30,
            attempts: 3,
            backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            stall_window: Duration::from_secs(60),
            stall_min_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Replaces `https://github.com/`: `http://`, `https://` or `file://` URL.
    pub mirror: Option<String>,
    pub cache_dir: PathBuf,
    /// No network at all: only the cache and a `file://` mirror.
    pub offline: bool,
}

/// Fetches artifacts through the cache.
pub struct Fetcher {
    opts: FetchOptions,
    limits: Limits,
    client: reqwest::blocking::Client,
}

/// Where the bytes of an artifact come from.
enum Source {
    Http(String),
    File(PathBuf),
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Fetcher> {
        if let Some(m) = &opts.mirror {
            if !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file://"))
            {
                return Err(Error::invalid(
                    "mirror",
                    m,
                    "expected an http://, https:// or file:// URL",
                ));
            }
        }
        let limits = Limits::default();
        let client = http_client(&limits)?;
        Ok(Fetcher {
            opts,
            limits,
            client,
        })
    }

    /// The same fetcher with other limits.
    pub fn with_limits(self, limits: Limits) -> Result<Fetcher> {
        Ok(Fetcher {
            client: http_client(&limits)?,
            limits,
            opts: self.opts,
        })
    }

    pub fn cache_dir(&self) -> &Path {
        &self.opts.cache_dir
    }

    /// The URL this artifact is fetched from, after the mirror is applied.
    pub fn url(&self, artifact: &Artifact) -> String {
        match &self.opts.mirror {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), artifact.path),
            None => format!("{GITHUB}{}", artifact.path),
        }
    }

    /// The verified cached copy of `artifact`, downloading it if needed.
    pub fn fetch(&self, artifact: &Artifact, listener: &dyn Listener) -> Result<PathBuf> {
        let cached = self.cached_path(&artifact.sha256);
        let url = self.url(artifact);
        if cached.exists() {
            if sha256_file(&cached)? == artifact.sha256 {
                listener.event(Event::CacheHit {
                    name: artifact.file_name.clone(),
                });
                return Ok(cached);
            }
            // A cache entry that no longer matches its name was corrupted on disk: drop it.
            listener.event(Event::Warning(format!(
                "{}: cached copy is corrupt, fetching it again",
                cached.display()
            )));
            fs::remove_file(&cached).at(&cached)?;
        }

        let source = match url.strip_prefix("file://") {
            Some(path) => Source::File(PathBuf::from(percent_decode(path))),
            None if self.opts.offline => {
                return Err(Error::Offline {
                    url,
                    cache: self.opts.cache_dir.clone(),
                })
            }
            None => Source::Http(url.clone()),
        };

        let sha_dir = self.opts.cache_dir.join("sha256");
        fs::create_dir_all(&sha_dir).at(&sha_dir)?;

        let mut last_err = None;
        for attempt in 0..self.limits.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(self.limits.backoff * (1 << (attempt - 1)));
            }
            // A nameless file until the hash matches: a failed or killed attempt leaves
            // nothing in the cache.
            let mut tmp = AtomicFile::new_in(&sha_dir, 0o644)?;
            let outcome = match &source {
                Source::File(path) => copy_hashing(
                    File::open(path).at(path)?,
                    tmp.file(),
                    &url,
                    artifact,
                    &self.limits,
                    listener,
                ),
                Source::Http(url) => self.download(url, tmp.file(), artifact, listener),
            };
            match outcome {
                Ok(actual) if actual == artifact.sha256 => {
                    tmp.persist(&cached)?;
                    listener.event(Event::DownloadFinished {
                        name: artifact.file_name.clone(),
                    });
                    return Ok(cached);
                }
                Ok(actual) => {
                    return Err(Error::Checksum {
                        url,
                        expected: artifact.sha256.to_string(),
                        actual: actual.to_string(),
                    })
                }
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(e)) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt ran"))
    }

    fn download(
        &self,
        url: &str,
        out: &mut File,
        artifact: &Artifact,
        listener: &dyn Listener,
    ) -> Result<Sha256, Attempt> {
        let fail = |message: String| Error::Fetch {
            url: url.to_owned(),
            message,
        };
        let resp = self.client.get(url).send().map_err(|e| {
            let e = fail(describe_reqwest(&e));
            Attempt::Retry(e)
        })?;
        let status = resp.status();
        if !status.is_success() {
            let e = fail(format!("HTTP {status}"));
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Attempt::Retry(e)
            } else {
                Attempt::Final(e)
            });
        }
        let max = self.limits.max_bytes;
        if let Some(len) = resp.content_length() {
            if len > max {
                return Err(Attempt::Final(fail(format!(
                    "announces {len} bytes, more than the {max} an asset may have"
                ))));
            }
        }
        let final_url = resp.url().to_string();
        listener.event(Event::DownloadStarted {
            name: artifact.file_name.clone(),
            total: resp.content_length(),
        });
        copy_hashing(resp, out, &final_url, artifact, &self.limits, listener)
    }

    /// A small file that no pin covers (a checksum file, a keyring), read into memory and
    /// capped at `max` bytes. Nothing is cached: its content is checked by the caller.
    pub fn fetch_unpinned(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        let url = match &self.opts.mirror {
            Some(m) => format!("{}/{path}", m.trim_end_matches('/')),
            None => format!("{GITHUB}{path}"),
        };
        let fail = |message: String| Error::Fetch {
            url: url.clone(),
            message,
        };
        let mut body = Vec::new();
        if let Some(local) = url.strip_prefix("file://") {
            let local = PathBuf::from(percent_decode(local));
            File::open(&local)
                .at(&local)?
                .take(max + 1)
                .read_to_end(&mut body)
                .at(&local)?;
        } else if self.opts.offline {
            return Err(Error::Offline {
                url,
                cache: self.opts.cache_dir.clone(),
            });
        } else {
            let mut last = None;
            for attempt in 0..self.limits.attempts.max(1) {
                if attempt > 0 {
                    std::thread::sleep(self.limits.backoff * (1 << (attempt - 1)));
                }
                match self.client.get(&url).send() {
                    Ok(resp) if resp.status().is_success() => {
                        body.clear();
                        match resp.take(max + 1).read_to_end(&mut body) {
                            Ok(_) => {
                                last = None;
                                break;
                            }
                            Err(e) => last = Some(fail(format!("reading the body failed: {e}"))),
                        }
                    }
                    Ok(resp) if resp.status().is_server_error() => {
                        last = Some(fail(format!("HTTP {}", resp.status())))
                    }
                    Ok(resp) => return Err(fail(format!("HTTP {}", resp.status()))),
                    Err(e) => last = Some(fail(describe_reqwest(&e))),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        if body.len() as u64 > max {
            return Err(fail(format!("larger than {max} bytes; refusing it")));
        }
        Ok(body)
    }

    fn cached_path(&self, sha256: &Sha256) -> PathBuf {
        self.opts.cache_dir.join("sha256").join(sha256.as_str())
    }
}

/// Files under a base URL, read the way apt reads a deployed repository: a file the server
/// says is not there (404, 410) is an answer, not an error. Nothing is cached or trusted:
/// the caller checks every byte against a signed Release.
pub struct Remote {
    /// Ends with `/`.
    base: String,
    client: reqwest::blocking::Client,
    limits: Limits,
}

/// The body of a file a [`Remote`] answered with.
pub struct RemoteBody {
    url: String,
    response: reqwest::blocking::Response,
}

impl Read for RemoteBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.response.read(buf).map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!("{e}: {s}"))
                .unwrap_or_else(|| e.to_string());
            io::Error::new(e.kind(), format!("reading {} failed: {cause}", self.url))
        })
    }
}

impl Remote {
    pub fn new(base: &str) -> Result<Remote> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::invalid(
                "repository URL",
                base,
                "expected an http:// or https:// URL",
            ));
        }
        let base = match base.ends_with('/') {
            true => base.to_owned(),
            false => format!("{base}/"),
        };
        let limits = Limits::default();
        Ok(Remote {
            client: http_client(&limits)?,
            base,
            limits,
        })
    }

    /// The URL of `path`, relative to the base.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// The body of `path`, `None` when the server says there is no such file. Network and
    /// server errors are tried again, as for a download.
    pub fn open(&self, path: &str) -> Result<Option<RemoteBody>> {
        let url = self.url(path);
        let fail = |message: String| Error::Fetch {
            url: url.clone(),
            message,
        };
        let mut last = None;
        for attempt in 0..self.limits.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(self.limits.backoff * (1 << (attempt - 1)));
            }
            match self.client.get(&url).send() {
                Ok(response) if response.status().is_success() => {
                    return Ok(Some(RemoteBody {
                        url: url.clone(),
                        response,
                    }))
                }
                Ok(response) if matches!(response.status().as_u16(), 404 | 410) => return Ok(None),
                Ok(response) if response.status().is_server_error() || response.status() == 429 => {
                    last = Some(fail(format!("HTTP {}", response.status())))
                }
                Ok(response) => return Err(fail(format!("HTTP {}", response.status()))),
                Err(e) => last = Some(fail(describe_reqwest(&e))),
            }
        }
        Err(last.expect("at least one attempt ran"))
    }
}

enum Attempt {
    /// Worth another try: the network or the server failed.
    Retry(Error),
    Final(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Final(e)
    }
}

fn copy_hashing(
    mut from: impl Read,
    out: &mut File,
    url: &str,
    artifact: &Artifact,
    limits: &Limits,
    listener: &dyn Listener,
) -> Result<Sha256, Attempt> {
    let fail = |message: String| Error::Fetch {
        url: url.to_owned(),
        message,
    };
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut window = (std::time::Instant::now(), 0u64);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let e = std::error::Error::source(&e)
                    .map(|s| format!("{e}: {s}"))
                    .unwrap_or_else(|| e.to_string());
                return Err(Attempt::Retry(fail(format!(
                    "reading the body failed after {total} bytes: {e}"
                ))));
            }
        };
        total += n as u64;
        if total > limits.max_bytes {
            return Err(Attempt::Final(fail(format!(
                "body exceeds {} bytes; refusing it",
                limits.max_bytes
            ))));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| {
            Attempt::Final(Error::Io {
                path: PathBuf::from(url),
                source: e,
            })
        })?;
        if window.0.elapsed() >= limits.stall_window {
            if total - window.1 < limits.stall_min_bytes {
                return Err(Attempt::Retry(fail(format!(
                    "transfer stalled: {} bytes in the last {} s",
                    total - window.1,
                    limits.stall_window.as_secs_f64()
                ))));
            }
            window = (std::time::Instant::now(), total);
        }
        listener.event(Event::DownloadProgress {
            name: artifact.file_name.clone(),
            bytes: total,
        });
    }
    Ok(hasher.finish().sha256)
}

fn http_client(limits: &Limits) -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .user_agent(concat!("containerd-stack/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(limits.connect_timeout)
        // In the blocking client this bounds each read, so a stalled server is noticed
        // without limiting how long a large download may take.
        .timeout(limits.read_timeout)
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(Error::HttpClient)
}

/// reqwest's Display stops at the outermost layer ("error sending request"); the cause
/// chain says what actually happened.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = match e.status() {
        Some(status) => format!("HTTP {status}"),
        None if e.is_timeout() => "timed out".to_owned(),
        None if e.is_connect() => "cannot connect".to_owned(),
        None => "request failed".to_owned(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        source = s.source();
    }
    msg
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_file_urls() {
        assert_eq!(percent_decode("/a%20b/c%2"), "/a b/c%2");
        assert_eq!(percent_decode("/plain"), "/plain");
    }
}

//! Downloads against a fault-injecting loopback mirror: every failure is either retried to
//! success or reported in one line naming the URL, and the cache never keeps a byte of a
//! failed attempt.

use std::path::Path;
use std::time::{Duration, Instant};

use containerd_stack::artifact::Artifact;
use containerd_stack::fetch::{FetchOptions, Fetcher, Limits};
use containerd_stack::listener::Quiet;
use containerd_stack::stack::ComponentKind;
use containerd_stack::DebArch;
use tempfile::TempDir;
use testkit::{FakeRelease, Fault, Mirror};

struct Fixture {
    dir: TempDir,
    mirror: Mirror,
    artifact: Artifact,
    fetcher: Fetcher,
}

/// Fast limits, so the slow cases take a second, not minutes.
fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        attempts: 3,
        backoff: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        stall_window: Duration::from_millis(700),
        stall_min_bytes: 1024,
    }
}

fn fixture() -> Fixture {
    let dir = TempDir::new().unwrap();
    let mut release = FakeRelease::write(&dir.path().join("mirror"), &[]);
    // A crictl "release" large enough to be sent in many pieces.
    let big: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    release.put(ComponentKind::Crictl, DebArch::Amd64, &big);
    let sha = release.sha256[&(ComponentKind::Crictl, DebArch::Amd64)].clone();
    let artifact = release.artifact(ComponentKind::Crictl, DebArch::Amd64, sha);
    let mirror = Mirror::serve(dir.path().join("mirror"));
    let fetcher = Fetcher::new(FetchOptions {
        mirror: Some(mirror.url()),
        cache_dir: dir.path().join("cache"),
        offline: false,
    })
    .unwrap()
    .with_limits(limits())
    .unwrap();
    Fixture {
        dir,
        mirror,
        artifact,
        fetcher,
    }
}

impl Fixture {
    fn path(&self) -> String {
        format!("/{}", self.artifact.path)
    }

    fn url(&self) -> String {
        format!("{}{}", self.mirror.url(), self.path())
    }

    fn fetch(&self) -> Result<std::path::PathBuf, String> {
        self.fetcher
            .fetch(&self.artifact, &Quiet)
            .map_err(|e| e.to_string())
    }

    /// Everything under the cache: nothing may remain of a failed download.
    fn cache_files(&self) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().unwrap().is_dir() {
                        walk(&e.path(), out);
                    } else {
                        out.push(e.path().display().to_string());
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("cache"), &mut out);
        out
    }

    fn assert_failed_cleanly(&self, err: &str) {
        assert!(
            err.starts_with(&self.url()),
            "error does not start with the URL: {err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(
            self.cache_files().is_empty(),
            "cache keeps {:?}",
            self.cache_files()
        );
    }
}

#[test]
fn server_error_then_success_is_retried() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::Status(500), 2);
    let cached = f.fetch().unwrap();
    assert_eq!(f.mirror.count(&f.path()), 3);
    assert_eq!(f.cache_files(), [cached.display().to_string()]);
}

#[test]
fn server_error_every_time_gives_up_after_bounded_tries() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::Status(503), 10);
    let err = f.fetch().unwrap_err();
    assert_eq!(err, format!("{}: HTTP 503 Service Unavailable", f.url()));
    assert_eq!(f.mirror.count(&f.path()), 3);
    f.assert_failed_cleanly(&err);
}

#[test]
fn not_found_is_not_retried() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::Status(404), 1);
    let err = f.fetch().unwrap_err();
    assert_eq!(err, format!("{}: HTTP 404 Not Found", f.url()));
    assert_eq!(f.mirror.count(&f.path()), 1);
    f.assert_failed_cleanly(&err);
}

#[test]
fn connection_reset_mid_body_is_restarted() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::ResetAfter(300_000), 1);
    f.fetch().unwrap();
    assert_eq!(f.mirror.count(&f.path()), 2);
}

#[test]
fn truncated_body_every_time_fails_cleanly() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::Truncate(100_000), 3);
    let err = f.fetch().unwrap_err();
    assert!(err.contains("reading the body failed after"), "{err}");
    f.assert_failed_cleanly(&err);
}

#[test]
fn right_length_wrong_bytes_is_refused() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::Corrupt, 1);
    let err = f.fetch().unwrap_err();
    assert!(err.contains(": sha256 mismatch: expected "), "{err}");
    f.assert_failed_cleanly(&err);
}

#[test]
fn a_dripping_server_times_out() {
    let f = fixture();
    f.mirror
        .fail(&f.path(), Fault::Drip(Duration::from_millis(100)), 3);
    let start = Instant::now();
    let err = f.fetch().unwrap_err();
    assert!(err.contains("transfer stalled"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
    f.assert_failed_cleanly(&err);
}

#[test]
fn a_body_far_larger_than_any_asset_is_capped() {
    let f = fixture();
    f.mirror.fail(&f.path(), Fault::Oversize(4 << 20), 1);
    let err = f.fetch().unwrap_err();
    assert!(
        err.contains(&format!("body exceeds {} bytes", 1 << 20)),
        "{err}"
    );
    assert_eq!(f.mirror.count(&f.path()), 1, "a capped body is not retried");
    f.assert_failed_cleanly(&err);
}

#[test]
fn a_corrupt_cache_entry_is_detected_and_fetched_again() {
    let f = fixture();
    let cached = f.fetch().unwrap();
    std::fs::write(&cached, b"bit rot").unwrap();
    let again = f.fetch().unwrap();
    assert_eq!(again, cached);
    assert_eq!(f.mirror.count(&f.path()), 2);
    assert_eq!(
        containerd_stack::hash::sha256_file(&again).unwrap(),
        f.artifact.sha256
    );
}

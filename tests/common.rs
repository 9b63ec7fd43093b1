//! What several test modules share.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_stack::DebArch;
use testkit::build_debs;

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Packages built once for the repository tests that only read them: revision 1 for amd64
/// and arm64, revision 2 for amd64.
pub fn three_debs() -> &'static [PathBuf] {
    static DEBS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DEBS.get_or_init(|| {
        build_debs(
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("repo-three-debs"),
            &[
                (1, DebArch::Amd64),
                (1, DebArch::Arm64),
                (2, DebArch::Amd64),
            ],
        )
    })
}

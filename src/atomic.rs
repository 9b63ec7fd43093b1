//! Files that appear whole or not at all. On Linux the file is created unnamed
//! (`O_TMPFILE`) in its final directory and linked into place only when complete, so even
//! a `kill -9` mid-write leaves no trace; where the filesystem cannot do that, a hidden
//! named temporary file is renamed into place instead.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

pub struct AtomicFile {
    file: File,
    dir: PathBuf,
    /// Set when `O_TMPFILE` was not available.
    named: Option<tempfile::TempPath>,
}

impl AtomicFile {
    /// A new, empty, nameless file in `dir`, with permissions `mode`.
    pub fn new_in(dir: &Path, mode: u32) -> Result<AtomicFile> {
        let c_dir = CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::Io {
            path: dir.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        // SAFETY: a valid C string; the returned descriptor is owned by the File below.
        let fd = unsafe {
            libc::open(
                c_dir.as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            let file = unsafe { File::from_raw_fd(fd) };
            return Ok(AtomicFile {
                file,
                dir: dir.to_owned(),
                named: None,
            });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL) => {
                let tmp = tempfile::Builder::new()
                    .prefix(".partial-")
                    .tempfile_in(dir)
                    .at(dir)?;
                let (file, path) = tmp.into_parts();
                file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .at(&path)?;
                Ok(AtomicFile {
                    file,
                    dir: dir.to_owned(),
                    named: Some(path),
                })
            }
            _ => Err(Error::Io {
                path: dir.to_owned(),
                source: err,
            }),
        }
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes the file to disk and gives it the name `dest` (in the same directory),
    /// replacing what was there.
    pub fn persist(self, dest: &Path) -> Result<()> {
        self.file.sync_all().at(dest)?;
        let dir = self.dir.clone();
        self.link(dest)?;
        // The new name must survive a crash too.
        File::open(&dir).and_then(|d| d.sync_all()).at(&dir)
    }

    /// Gives the file the name `dest` without flushing anything: for many files written in
    /// a row, made durable together by one [`sync_filesystem`] before anything that refers
    /// to them is written.
    pub fn persist_unsynced(self, dest: &Path) -> Result<()> {
        self.link(dest)
    }

    fn link(self, dest: &Path) -> Result<()> {
        match self.named {
            Some(path) => path.persist(dest).map_err(|e| Error::Io {
                path: dest.to_owned(),
                source: e.error,
            })?,
            None => {
                let proc = CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
                    .expect("no NUL");
                // linkat cannot replace a file: link under a hidden name, then rename over.
                // The name is this call's own: two threads may store the same cache entry
                // (identical frames of two architectures' packages) at once.
                static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let hidden = self.dir.join(format!(
                    ".{}.{}.{call}.new",
                    dest.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default(),
                    std::process::id()
                ));
                let c_hidden = CString::new(hidden.as_os_str().as_bytes()).expect("no NUL");
                let _ = std::fs::remove_file(&hidden);
                // SAFETY: valid C strings; AT_SYMLINK_FOLLOW links the open file itself.
                let rc = unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        proc.as_ptr(),
                        libc::AT_FDCWD,
                        c_hidden.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                };
                if rc != 0 {
                    return Err(Error::Io {
                        path: dest.to_owned(),
                        source: io::Error::last_os_error(),
                    });
                }
                if let Err(e) = std::fs::rename(&hidden, dest) {
                    let _ = std::fs::remove_file(&hidden);
                    return Err(Error::Io {
                        path: dest.to_owned(),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Flushes everything written to the filesystem that holds `path` (`syncfs`).
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = File::open(path).at(path)?;
    // SAFETY: a valid, open descriptor.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(Error::Io {
            path: path.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn nothing_is_visible_until_persisted_and_then_it_replaces() {
        let dir = tempfile::TempDir::new().unwrap();
        let dest = dir.path().join("x.deb");
        std::fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::new_in(dir.path(), 0o644).unwrap();
        f.file().write_all(b"new").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.deb"], "a temporary name is visible");
        f.persist(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dest).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn threads_storing_one_name_at_once_all_succeed() {
        let dir = tempfile::TempDir::new().unwrap();
        let dest = dir.path().join("frame");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let mut f = AtomicFile::new_in(dir.path(), 0o644).unwrap();
                        f.file().write_all(b"same bytes").unwrap();
                        f.persist_unsynced(&dest).unwrap();
                    }
                });
            }
        });
        assert_eq!(std::fs::read(&dest).unwrap(), b"same bytes");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_without_persist_leaves_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut f = AtomicFile::new_in(dir.path(), 0o644).unwrap();
        f.file().write_all(b"partial").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

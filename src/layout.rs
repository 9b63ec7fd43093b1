//! The FHS tree a package installs: every path with its mode and where its bytes come
//! from. Parent directories are added here, so the deb writer only walks a sorted map.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::component::ComponentKind;
use crate::elf::Linkage;
use crate::error::{Error, Result};
use crate::hash::{Hashes, Sha256};

/// Top-level directories that exist on every Debian system but that no package owns.
/// Shipping an entry for one would make this package its only dpkg owner, and purging it
/// would remove the directory (seen with `/opt` under piuparts); the preinst creates them
/// instead, since dpkg does not create missing parents.
pub const UNOWNED_DIRS: &[&str] = &["opt", "srv"];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A staged upstream file; `origin` names the asset and entry it came from.
    Staged {
        #[serde(skip)]
        path: PathBuf,
        /// Whose asset it is: its files are compressed apart from the others'.
        component: ComponentKind,
        origin: String,
    },
    /// Rendered or generated content.
    #[serde(serialize_with = "serialize_len")]
    Inline(Vec<u8>),
}

fn serialize_mode<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

fn serialize_len<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{} bytes", v.len()))
}

#[derive(Debug, Clone, Serialize)]
pub struct FileNode {
    #[serde(serialize_with = "serialize_mode")]
    pub mode: u32,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: Sha256,
    pub source: Source,
    /// What the ELF check found, for programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf: Option<Linkage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Node {
    Dir,
    File(FileNode),
}

/// Paths are relative to `/`, without a leading slash (`usr/bin/ctr`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FhsTree {
    pub entries: BTreeMap<String, Node>,
}

impl FhsTree {
    pub fn add_file(&mut self, path: &str, node: FileNode) -> Result<()> {
        debug_assert!(!path.starts_with('/') && !path.contains(".."));
        let mut dir = String::new();
        for part in path.split('/').take(path.split('/').count() - 1) {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
            if UNOWNED_DIRS.contains(&dir.as_str()) {
                continue;
            }
            match self.entries.get(&dir) {
                Some(Node::File(_)) => {
                    return Err(Error::Layout {
                        path: dir.clone(),
                        message: format!("is both a file and the directory of /{path}"),
                    })
                }
                Some(Node::Dir) => {}
                None => {
                    self.entries.insert(dir.clone(), Node::Dir);
                }
            }
        }
        if self.entries.contains_key(path) {
            return Err(Error::Layout {
                path: path.to_owned(),
                message: "two files would be installed there".into(),
            });
        }
        self.entries.insert(path.to_owned(), Node::File(node));
        Ok(())
    }

    pub fn add_inline(&mut self, path: &str, mode: u32, bytes: Vec<u8>) -> Result<()> {
        let Hashes {
            size,
            md5,
            sha1,
            sha256,
        } = Hashes::of_reader(&bytes[..]).expect("reading memory cannot fail");
        let node = FileNode {
            mode,
            size,
            md5,
            sha1,
            sha256,
            source: Source::Inline(bytes),
            elf: None,
        };
        self.add_file(path, node)
    }

    /// `(md5, path)` for every file but the conffiles, which dpkg checks through
    /// `conffiles` instead (as dh_md5sums does).
    pub fn md5sums(&self) -> Vec<(String, String)> {
        self.files()
            .filter(|(p, _)| !p.starts_with("etc/"))
            .map(|(p, f)| (f.md5.clone(), p.to_owned()))
            .collect()
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, &FileNode)> {
        self.entries.iter().filter_map(|(p, n)| match n {
            Node::File(f) => Some((p.as_str(), f)),
            Node::Dir => None,
        })
    }

    /// Everything shipped under `/etc`, as dpkg's `conffiles` lists it.
    pub fn conffiles(&self) -> Vec<String> {
        self.files()
            .filter(|(p, _)| p.starts_with("etc/"))
            .map(|(p, _)| format!("/{p}"))
            .collect()
    }

    /// dpkg's Installed-Size: KiB, each file rounded up, each directory counted as one.
    pub fn installed_size_kib(&self) -> u64 {
        self.entries
            .values()
            .map(|n| match n {
                Node::Dir => 1,
                Node::File(f) => f.size.div_ceil(1024),
            })
            .sum()
    }

    /// Unowned top-level directories this tree installs into (see [`UNOWNED_DIRS`]).
    pub fn unowned_parents(&self) -> Vec<String> {
        UNOWNED_DIRS
            .iter()
            .filter(|d| {
                let prefix = format!("{d}/");
                self.entries.keys().any(|p| p.starts_with(&prefix))
            })
            .map(|d| format!("/{d}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_added_except_unowned_ones() {
        let mut t = FhsTree::default();
        t.add_inline("opt/cni/bin/bridge", 0o755, vec![0; 2049])
            .unwrap();
        t.add_inline("etc/crictl.yaml", 0o644, b"x".to_vec())
            .unwrap();
        let keys: Vec<_> = t.entries.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "etc",
                "etc/crictl.yaml",
                "opt/cni",
                "opt/cni/bin",
                "opt/cni/bin/bridge"
            ]
        );
        assert_eq!(t.conffiles(), ["/etc/crictl.yaml"]);
        // 3 dirs + 3 KiB + 1 KiB
        assert_eq!(t.installed_size_kib(), 7);
        assert_eq!(t.unowned_parents(), ["/opt"]);
    }

    #[test]
    fn duplicates_are_refused() {
        let mut t = FhsTree::default();
        t.add_inline("usr/bin/ctr", 0o755, vec![]).unwrap();
        assert!(t.add_inline("usr/bin/ctr", 0o755, vec![]).is_err());
        assert!(t.add_inline("usr/bin/ctr/x", 0o755, vec![]).is_err());
    }
}

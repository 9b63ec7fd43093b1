//! The slow half of preparing an architecture, cached by the assets' hashes: fetch the
//! assets side by side, unpack each as soon as it is verified, and check every program's
//! ELF header. What it finds — each program's place, size, md5 and linkage, and the newest
//! mtime upstream used — is all a later build needs to lay out the package without
//! unpacking anything again.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::DebArch;
use crate::artifact::Artifact;
use crate::elf::{self, Linkage};
use crate::error::{IoContext, Result};
use crate::fetch::Fetcher;
use crate::listener::{Event, Listener, Stage};
use crate::stack::ComponentKind;

use super::staging::Staging;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Analysis {
    pub(crate) mtime: Option<u64>,
    pub(crate) programs: Vec<Program>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Program {
    /// The component whose asset holds it.
    #[serde(with = "component_key")]
    pub(crate) component: ComponentKind,
    /// Installed path, relative to `/`.
    pub(crate) dest: String,
    /// Where it is staged, relative to the staging directory.
    pub(crate) staged: String,
    pub(crate) origin: String,
    pub(crate) size: u64,
    pub(crate) md5: String,
    pub(crate) elf: Linkage,
    /// The entry's mtime in its archive, if it has one.
    pub(crate) mtime: Option<u64>,
}

/// Fetches and unpacks every asset into `staging` and analyses its programs.
pub(crate) fn analyse(
    arch: DebArch,
    artifacts: &[Artifact],
    cni_bin_dir: &str,
    staging: &Staging,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<Analysis> {
    let per_asset: Vec<Result<Vec<Program>>> = std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .iter()
            .map(|a| {
                s.spawn(move || analyse_asset(arch, a, cni_bin_dir, staging, fetcher, listener))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("asset thread panicked"))
            .collect()
    });
    let mut analysis = Analysis {
        mtime: None,
        programs: Vec::new(),
    };
    for programs in per_asset {
        for program in programs? {
            analysis.mtime = analysis.mtime.max(program.mtime);
            analysis.programs.push(program);
        }
    }
    Ok(analysis)
}

fn analyse_asset(
    arch: DebArch,
    a: &Artifact,
    cni_bin_dir: &str,
    staging: &Staging,
    fetcher: &Fetcher,
    listener: &dyn Listener,
) -> Result<Vec<Program>> {
    let programs = staging.stage(a, fetcher, listener)?;
    listener.event(Event::Began {
        stage: Stage::Check,
        name: a.file_name.clone(),
    });
    let spec = a.component.spec();
    let mut out = Vec::new();
    for p in programs {
        let dest = spec.install_path(&p.name, cni_bin_dir);
        let shown = format!("{dest} ({arch}, from {})", a.file_name);
        let elf = elf::inspect(&p.path, &shown, arch)?;
        let origin = match a.file_name == p.entry {
            true => a.file_name.clone(),
            false => format!("{}:{}", a.file_name, p.entry),
        };
        let staged = p
            .path
            .strip_prefix(staging.path())
            .expect("unpacked inside staging")
            .to_string_lossy()
            .into_owned();
        out.push(Program {
            component: a.component,
            dest,
            staged,
            origin,
            size: p.size,
            md5: md5_file(&p.path)?,
            elf,
            mtime: p.mtime,
        });
    }
    listener.event(Event::Ended {
        stage: Stage::Check,
        name: a.file_name.clone(),
    });
    Ok(out)
}

/// The hex md5 of a file, read in pieces: a program is never held in memory whole.
fn md5_file(path: &Path) -> Result<String> {
    use md5::Digest;
    let mut md5 = md5::Md5::new();
    let mut file = fs::File::open(path).at(path)?;
    std::io::copy(&mut file, &mut md5).at(path)?;
    Ok(hex::encode(md5.finalize()))
}

/// A component in a cached analysis: its stack.toml key.
mod component_key {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::stack::ComponentKind;

    pub(super) fn serialize<S: Serializer>(c: &ComponentKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.key())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ComponentKind, D::Error> {
        let key = String::deserialize(d)?;
        ComponentKind::from_key(&key).ok_or_else(|| D::Error::custom(format!("no component {key}")))
    }
}

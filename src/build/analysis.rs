//! The slow half of preparing an architecture, cached by the assets' hashes: fetch the
//! assets side by side, unpack each as soon as it is verified, and check every program's
//! ELF header. What it finds — each program's place, size, hashes and linkage, and the
//! newest mtime upstream used — is all a later build needs to lay out the package (and
//! describe it in its SBOM) without unpacking anything again.

use serde::{Deserialize, Serialize};

use crate::arch::DebArch;
use crate::artifact::Artifact;
use crate::component::ComponentKind;
use crate::elf::{self, Linkage};
use crate::error::Result;
use crate::fetch::Fetcher;
use crate::hash::{Hashes, Sha256};
use crate::listener::{Event, Listener, Stage};

use super::staging::Staging;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Analysis {
    pub(crate) mtime: Option<u64>,
    pub(crate) programs: Vec<Program>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Program {
    /// Installed path, relative to `/`.
    pub(crate) dest: String,
    /// Where it is staged, relative to the staging directory.
    pub(crate) staged: String,
    pub(crate) component: ComponentKind,
    pub(crate) origin: String,
    pub(crate) size: u64,
    pub(crate) md5: String,
    pub(crate) sha1: String,
    pub(crate) sha256: Sha256,
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
        // Read back in pieces: a program is never held in memory whole.
        let Hashes {
            size,
            md5,
            sha1,
            sha256,
        } = Hashes::of_file(&p.path)?;
        debug_assert_eq!(size, p.size);
        out.push(Program {
            dest,
            staged,
            component: a.component,
            origin,
            size,
            md5,
            sha1,
            sha256,
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

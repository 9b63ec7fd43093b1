//! Reads the ELF header and dynamic section of every shipped program: the machine it was
//! built for must be the package's architecture, and what a dynamic program needs at run
//! time becomes the package's `Depends`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::{DebArch, ElfIdent};
use crate::error::{Error, IoContext, Result};

/// The Debian package that provides each shared library we know of. Every `DT_NEEDED` of a
/// shipped program must be here: a library we cannot name a package for is an error, not a
/// missing dependency found at the user's first start.
const SONAME_PACKAGES: &[(&str, &str)] = &[
    ("libc.so.6", "libc6"),
    ("libpthread.so.0", "libc6"),
    ("libdl.so.2", "libc6"),
    ("librt.so.1", "libc6"),
    ("libm.so.6", "libc6"),
    ("libresolv.so.2", "libc6"),
    ("libutil.so.1", "libc6"),
    ("libanl.so.1", "libc6"),
    ("ld-linux-x86-64.so.2", "libc6"),
    ("ld-linux-aarch64.so.1", "libc6"),
    ("ld64.so.2", "libc6"),
    ("ld64.so.1", "libc6"),
    ("ld-linux-riscv64-lp64d.so.1", "libc6"),
    ("libgcc_s.so.1", "libgcc-s1"),
    ("libseccomp.so.2", "libseccomp2"),
    ("libapparmor.so.1", "libapparmor1"),
    ("libselinux.so.1", "libselinux1"),
    ("libsystemd.so.0", "libsystemd0"),
    ("libbtrfs.so.0", "libbtrfs0"),
];

/// What the ELF check found for one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "linkage", rename_all = "kebab-case")]
pub enum Linkage {
    Static,
    Dynamic {
        needed: Vec<String>,
        /// The highest `GLIBC_x.y` symbol version referenced, if any.
        glibc: Option<String>,
    },
}

/// Checks that `path` (shown as `shown`) is an ELF program for `arch` and reports how it
/// links. The file is mapped, not read: the parser touches only the headers and tables it
/// needs, so memory does not grow with the program's size.
pub fn inspect(path: &Path, shown: &str, arch: DebArch) -> Result<Linkage> {
    let file = std::fs::File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len() as usize;
    if len == 0 {
        return inspect_bytes(&[], shown, arch);
    }
    let map = Mapping::of(&file, len).at(path)?;
    inspect_bytes(map.bytes(), shown, arch)
}

/// A private read-only mapping of a whole file, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn of(file: &std::fs::File, len: usize) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        // SAFETY: maps `len` (> 0) bytes of an open file read-only and private; the pointer
        // is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as `self`. The
        // files mapped are programs in this build's own staging directory, which nothing
        // writes to while they are checked.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `of` mapped.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

pub fn inspect_bytes(bytes: &[u8], shown: &str, arch: DebArch) -> Result<Linkage> {
    let bad = |message: String| Error::Binary {
        file: shown.to_owned(),
        message,
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Err(bad("expected an ELF program, found something else".into()));
    }
    let elf = goblin::elf::Elf::parse(bytes)
        .map_err(|e| bad(format!("cannot parse the ELF file: {e}")))?;
    let ident = ElfIdent {
        machine: elf.header.e_machine,
        is_64: elf.is_64,
        little_endian: elf.little_endian,
    };
    if ident != arch.elf_ident() {
        let found = DebArch::from_elf(ident)
            .map(|a| a.to_string())
            .unwrap_or_else(|| describe_ident(ident));
        return Err(bad(format!(
            "built for {found}, but the package is for {arch}"
        )));
    }
    if elf.header.e_type != goblin::elf::header::ET_EXEC
        && elf.header.e_type != goblin::elf::header::ET_DYN
    {
        return Err(bad("is an ELF file but not an executable".into()));
    }
    if elf.libraries.is_empty() && elf.interpreter.is_none() {
        return Ok(Linkage::Static);
    }
    let mut glibc: Option<(u32, u32)> = None;
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                let Some(name) = elf.dynstrtab.get_at(aux.vna_name) else {
                    continue;
                };
                if let Some(v) = name.strip_prefix("GLIBC_").and_then(parse_major_minor) {
                    glibc = glibc.max(Some(v));
                }
            }
        }
    }
    let mut needed: Vec<String> = elf.libraries.iter().map(|s| s.to_string()).collect();
    needed.sort();
    Ok(Linkage::Dynamic {
        needed,
        glibc: glibc.map(|(a, b)| format!("{a}.{b}")),
    })
}

/// The `Depends` entries for a set of programs: one per package, `libc6` versioned by the
/// highest glibc symbol version any of them needs.
pub fn depends<'a>(
    programs: impl IntoIterator<Item = (&'a str, &'a Linkage)>,
) -> Result<Vec<String>> {
    let mut packages: BTreeMap<&str, Option<(u32, u32)>> = BTreeMap::new();
    for (shown, linkage) in programs {
        let Linkage::Dynamic { needed, glibc } = linkage else {
            continue;
        };
        for soname in needed {
            let package = SONAME_PACKAGES
                .iter()
                .find(|(s, _)| s == soname)
                .map(|(_, p)| *p)
                .ok_or_else(|| Error::Binary {
                    file: shown.to_owned(),
                    message: format!(
                        "needs shared library {soname}, which no known Debian package provides; add it to the soname table in src/elf.rs"
                    ),
                })?;
            packages.entry(package).or_default();
        }
        if let Some(v) = glibc.as_deref().and_then(parse_major_minor) {
            let slot = packages.entry("libc6").or_default();
            *slot = (*slot).max(Some(v));
        }
    }
    Ok(packages
        .into_iter()
        .map(|(p, v)| match v {
            Some((a, b)) => format!("{p} (>= {a}.{b})"),
            None => p.to_owned(),
        })
        .collect())
}

fn parse_major_minor(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next().map_or(Some(0), |b| b.parse().ok())?;
    Some((a, b))
}

fn describe_ident(i: ElfIdent) -> String {
    format!(
        "e_machine {} ({}-bit, {} endian)",
        i.machine,
        if i.is_64 { 64 } else { 32 },
        if i.little_endian { "little" } else { "big" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(needed: &[&str], glibc: Option<&str>) -> Linkage {
        Linkage::Dynamic {
            needed: needed.iter().map(|s| s.to_string()).collect(),
            glibc: glibc.map(str::to_owned),
        }
    }

    #[test]
    fn depends_takes_the_highest_glibc_and_maps_sonames() {
        let a = dynamic(&["libc.so.6", "libpthread.so.0"], Some("2.34"));
        let b = dynamic(&["libc.so.6", "libseccomp.so.2"], Some("2.35"));
        let c = Linkage::Static;
        let deps = depends([("containerd", &a), ("runc", &b), ("ctr", &c)]).unwrap();
        assert_eq!(deps, ["libc6 (>= 2.35)", "libseccomp2"]);
        assert!(depends([("ctr", &c)]).unwrap().is_empty());
    }

    #[test]
    fn unknown_soname_is_named() {
        let a = dynamic(&["libc.so.6", "libfoo.so.9"], None);
        let e = depends([("usr/bin/containerd", &a)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("usr/bin/containerd: needs shared library libfoo.so.9"),
            "{e}"
        );
    }

    #[test]
    fn glibc_versions_compare_numerically() {
        assert!(parse_major_minor("2.9") < parse_major_minor("2.35"));
        assert_eq!(parse_major_minor("2.3.4"), Some((2, 3)));
        assert_eq!(parse_major_minor("PRIVATE"), None);
    }

    #[test]
    fn non_elf_is_refused() {
        let e = inspect_bytes(b"#!/bin/sh\necho hi\n", "usr/bin/ctr", DebArch::Amd64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "usr/bin/ctr: expected an ELF program, found something else"
        );
    }
}

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
    use goblin::container::{Container, Ctx, Endian};
    use goblin::elf::dynamic::Dynamic;
    use goblin::elf::header::{self, Header};
    use goblin::elf::program_header::{self, ProgramHeader};
    use goblin::elf::section_header::SectionHeader;
    use goblin::elf::symver::VerneedSection;
    use goblin::strtab::Strtab;

    let bad = |message: String| Error::Binary {
        file: shown.to_owned(),
        message,
    };
    let malformed =
        |part: &str, e: goblin::error::Error| bad(format!("cannot parse its {part}: {e}"));
    if !bytes.starts_with(b"\x7fELF") {
        return Err(bad("expected an ELF program, found something else".into()));
    }
    // Only what the checks need is read: the header, the program headers, the dynamic
    // section with its strings, and the version needs. goblin's `Elf::parse` also reads the
    // dynamic symbol table, sized from DT_HASH, and on s390x, whose hash table has 64-bit
    // words, it reads that size from the wrong offset: Go's internal linker writes DT_HASH
    // without DT_GNU_HASH, and such a program would not parse.
    let header: Header =
        goblin::elf::Elf::parse_header(bytes).map_err(|e| malformed("ELF header", e))?;
    let class = header.e_ident[header::EI_CLASS];
    if class != header::ELFCLASS64 && class != header::ELFCLASS32 {
        return Err(bad(format!(
            "cannot parse the ELF file: unknown class {class}"
        )));
    }
    let ident = ElfIdent {
        machine: header.e_machine,
        is_64: class == header::ELFCLASS64,
        little_endian: header.e_ident[header::EI_DATA] == header::ELFDATA2LSB,
    };
    if ident != arch.elf_ident() {
        // Another of our architectures is named; anything else is described next to what
        // was expected, so that a wrong endianness (ppc64 for ppc64el) or class shows.
        let message = match DebArch::from_elf(ident) {
            Some(found) => format!("built for {found}, but the package is for {arch}"),
            None => format!(
                "built for {}, but the package is for {arch}, which is {}",
                describe_ident(ident),
                describe_ident(arch.elf_ident())
            ),
        };
        return Err(bad(message));
    }
    if header.e_type != header::ET_EXEC && header.e_type != header::ET_DYN {
        return Err(bad("is an ELF file but not an executable".into()));
    }
    let ctx = Ctx::new(
        if ident.is_64 {
            Container::Big
        } else {
            Container::Little
        },
        Endian::from(ident.little_endian),
    );
    let phdrs = ProgramHeader::parse(bytes, header.e_phoff as usize, header.e_phnum as usize, ctx)
        .map_err(|e| malformed("program headers", e))?;
    let interpreter = phdrs
        .iter()
        .any(|ph| ph.p_type == program_header::PT_INTERP && ph.p_filesz != 0);
    let dynamic =
        Dynamic::parse(bytes, &phdrs, ctx).map_err(|e| malformed("dynamic section", e))?;
    let (needed, dynstr) = match &dynamic {
        Some(d) => {
            let dynstr = Strtab::parse(bytes, d.info.strtab, d.info.strsz, 0x0)
                .map_err(|e| malformed("dynamic string table", e))?;
            let needed: Vec<String> = d
                .get_libraries(&dynstr)
                .iter()
                .map(|s| s.to_string())
                .collect();
            (needed, dynstr)
        }
        None => (Vec::new(), Strtab::default()),
    };
    if needed.is_empty() && !interpreter {
        return Ok(Linkage::Static);
    }
    let shdrs = SectionHeader::parse(bytes, header.e_shoff as usize, header.e_shnum as usize, ctx)
        .map_err(|e| malformed("section headers", e))?;
    let verneed =
        VerneedSection::parse(bytes, &shdrs, ctx).map_err(|e| malformed("version needs", e))?;
    let mut glibc: Option<Vec<u32>> = None;
    if let Some(verneed) = &verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                let Some(name) = dynstr.get_at(aux.vna_name) else {
                    continue;
                };
                if let Some(v) = name.strip_prefix("GLIBC_").and_then(parse_version) {
                    glibc = glibc.max(Some(v));
                }
            }
        }
    }
    let mut needed = needed;
    needed.sort();
    Ok(Linkage::Dynamic {
        needed,
        glibc: glibc.map(|v| format_version(&v)),
    })
}

/// The `Depends` entries for a set of programs: one per package, `libc6` versioned by the
/// highest glibc symbol version any of them needs.
pub fn depends<'a>(
    programs: impl IntoIterator<Item = (&'a str, &'a Linkage)>,
) -> Result<Vec<String>> {
    let mut packages: BTreeMap<&str, Option<Vec<u32>>> = BTreeMap::new();
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
        if let Some(v) = glibc.as_deref().and_then(parse_version) {
            let slot = packages.entry("libc6").or_default();
            *slot = slot.take().max(Some(v));
        }
    }
    Ok(packages
        .into_iter()
        .map(|(p, v)| match v {
            Some(v) => format!("{p} (>= {})", format_version(&v)),
            None => p.to_owned(),
        })
        .collect())
}

/// `2.3.4` → `[2, 3, 4]`, compared number by number (`2.3.4` < `2.34`); every part is kept,
/// as glibc's symbol versions have three on some architectures (amd64's base is 2.2.5,
/// s390x's programs need 2.2.4 and 2.3.4).
fn parse_version(s: &str) -> Option<Vec<u32>> {
    s.split('.').map(|n| n.parse().ok()).collect()
}

fn format_version(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
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
    fn glibc_versions_compare_numerically_and_keep_every_part() {
        assert!(parse_version("2.9") < parse_version("2.35"));
        assert!(parse_version("2.3.4") < parse_version("2.34"));
        assert!(parse_version("2.2.5") > parse_version("2.2"));
        assert_eq!(parse_version("2.3.4"), Some(vec![2, 3, 4]));
        assert_eq!(parse_version("PRIVATE"), None);
        // A program that needs only amd64's base symbols needs 2.2.5, not "2.2".
        let base = dynamic(&["libc.so.6"], Some("2.2.5"));
        let s390x = dynamic(&["libc.so.6"], Some("2.3.4"));
        assert_eq!(depends([("a", &base)]).unwrap(), ["libc6 (>= 2.2.5)"]);
        assert_eq!(
            depends([("a", &base), ("b", &s390x)]).unwrap(),
            ["libc6 (>= 2.3.4)"]
        );
    }

    /// A minimal dynamic ELF64 program for `arch` that needs libc.so.6 at GLIBC_2.34, with a
    /// DT_HASH table (no DT_GNU_HASH, as Go's internal linker writes it) whose words are 64
    /// bits on s390x and 32 elsewhere, as the ABIs say.
    fn dynamic_program(arch: DebArch) -> Vec<u8> {
        dynamic_program_of(arch.elf_ident(), arch == DebArch::S390x)
    }

    /// [`dynamic_program`] with any ELF identity, and 64-bit hash words when `wide_hash`.
    fn dynamic_program_of(id: ElfIdent, wide_hash: bool) -> Vec<u8> {
        let le = id.little_endian;
        let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() }.to_vec();
        let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() }.to_vec();
        let u64b = |v: u64| if le { v.to_le_bytes() } else { v.to_be_bytes() }.to_vec();
        let hash_word = |v: u64| match wide_hash {
            true => u64b(v),
            false => u32b(v as u32),
        };
        // Layout: header, 2 program headers, dynstr, hash, dynsym, verneed, dynamic,
        // 2 section headers; every address is its file offset.
        let dynstr = b"\0libc.so.6\0GLIBC_2.34\0".to_vec();
        let (libc, glibc) = (1u64, 11u64);
        let strtab = 64 + 2 * 56;
        let hash = (strtab + dynstr.len() as u64).next_multiple_of(8);
        let hash_bytes = [1, 1, 0, 0].map(hash_word).concat(); // nbucket, nchain, bucket, chain
        let symtab = hash + hash_bytes.len() as u64;
        let verneed = symtab + 24;
        let dynamic = verneed + 32;
        let dyns: [(u64, u64); 9] = [
            (1, libc),                 // DT_NEEDED
            (4, hash),                 // DT_HASH
            (5, strtab),               // DT_STRTAB
            (6, symtab),               // DT_SYMTAB
            (10, dynstr.len() as u64), // DT_STRSZ
            (11, 24),                  // DT_SYMENT
            (0x6fff_fffe, verneed),    // DT_VERNEED
            (0x6fff_ffff, 1),          // DT_VERNEEDNUM
            (0, 0),                    // DT_NULL
        ];
        let shoff = dynamic + 16 * dyns.len() as u64;
        let end = shoff + 2 * 64;

        let mut b = vec![0x7f, b'E', b'L', b'F', 2, if le { 1 } else { 2 }, 1, 0];
        b.extend([0; 8]);
        b.extend(u16b(3)); // ET_DYN
        b.extend(u16b(id.machine));
        b.extend(u32b(1));
        b.extend(u64b(0)); // entry
        b.extend(u64b(64)); // phoff
        b.extend(u64b(shoff));
        b.extend(u32b(0)); // flags
        b.extend(u16b(64));
        b.extend(u16b(56));
        b.extend(u16b(2)); // phnum
        b.extend(u16b(64));
        b.extend(u16b(2)); // shnum
        b.extend(u16b(0)); // shstrndx
        for (p_type, offset, size) in [(1u32, 0, end), (2, dynamic, 16 * dyns.len() as u64)] {
            b.extend(u32b(p_type)); // PT_LOAD, PT_DYNAMIC
            b.extend(u32b(4));
            for v in [offset, offset, offset, size, size, 8] {
                b.extend(u64b(v));
            }
        }
        b.extend(&dynstr);
        b.resize(hash as usize, 0);
        b.extend(hash_bytes);
        b.extend([0; 24]); // the null symbol
                           // Verneed: version 1, one aux, file libc.so.6, aux at +16; Vernaux: GLIBC_2.34.
        b.extend([u16b(1), u16b(1), u32b(libc as u32), u32b(16), u32b(0)].concat());
        b.extend(
            [
                u32b(0x0d69_6914),
                u16b(0),
                u16b(2),
                u32b(glibc as u32),
                u32b(0),
            ]
            .concat(),
        );
        for (tag, val) in dyns {
            b.extend(u64b(tag));
            b.extend(u64b(val));
        }
        b.extend([0; 64]); // SHT_NULL
        b.extend(u32b(0));
        b.extend(u32b(0x6fff_fffe)); // SHT_GNU_VERNEED
        for v in [2, verneed, verneed, 32] {
            b.extend(u64b(v)); // flags, addr, offset, size
        }
        b.extend(u32b(0)); // link
        b.extend(u32b(1)); // info: one Verneed entry
        b.extend(u64b(8));
        b.extend(u64b(0));
        assert_eq!(b.len() as u64, end);
        b
    }

    #[test]
    fn dynamic_programs_of_every_architecture_are_read() {
        for arch in DebArch::ALL {
            let program = dynamic_program(arch);
            assert_eq!(
                inspect_bytes(&program, "usr/bin/ctr", arch).unwrap(),
                dynamic(&["libc.so.6"], Some("2.34")),
                "{arch}"
            );
        }
    }

    #[test]
    fn s390x_programs_with_only_a_64_bit_dt_hash_are_read() {
        // goblin's whole-file parse reads the symbol count of s390x's 64-bit DT_HASH from
        // the wrong offset and fails on such a program; the checks do not need that table.
        let program = dynamic_program(DebArch::S390x);
        assert!(
            goblin::elf::Elf::parse(&program).is_err(),
            "goblin now parses s390x's DT_HASH: inspect_bytes could use Elf::parse again"
        );
        let linkage = inspect_bytes(&program, "usr/bin/containerd-shim-runc-v2", DebArch::S390x);
        assert_eq!(linkage.unwrap(), dynamic(&["libc.so.6"], Some("2.34")));
    }

    #[test]
    fn other_architectures_and_endianness_are_refused() {
        let arm64 = dynamic_program(DebArch::Arm64);
        let e = inspect_bytes(&arm64, "usr/sbin/runc", DebArch::Amd64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "usr/sbin/runc: built for arm64, but the package is for amd64"
        );
        // Big-endian 64-bit PowerPC (Debian's ppc64) is not ppc64el.
        let ppc64 = ElfIdent {
            little_endian: false,
            ..DebArch::Ppc64el.elf_ident()
        };
        let e = inspect_bytes(
            &dynamic_program_of(ppc64, false),
            "usr/bin/ctr",
            DebArch::Ppc64el,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "usr/bin/ctr: built for e_machine 21 (64-bit, big endian), but the package is for ppc64el, which is e_machine 21 (64-bit, little endian)"
        );
        // s390x is big-endian: a little-endian program of its machine is not one of its.
        let s390x_le = ElfIdent {
            little_endian: true,
            ..DebArch::S390x.elf_ident()
        };
        let e = inspect_bytes(
            &dynamic_program_of(s390x_le, true),
            "usr/bin/ctr",
            DebArch::S390x,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "usr/bin/ctr: built for e_machine 22 (64-bit, little endian), but the package is for s390x, which is e_machine 22 (64-bit, big endian)"
        );
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

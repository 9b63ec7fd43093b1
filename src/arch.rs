//! Architecture names: Debian's (`ppc64el`) and Go's (`ppc64le`), and what an ELF header
//! must say for each. Pure data with its tests.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

/// A Debian architecture that every upstream component publishes binaries for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum DebArch {
    Amd64,
    Arm64,
    Ppc64el,
    S390x,
    Riscv64,
}

/// What the ELF header of a program built for an architecture carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfIdent {
    pub machine: u16,
    pub is_64: bool,
    pub little_endian: bool,
}

impl DebArch {
    pub const ALL: [DebArch; 5] = [
        DebArch::Amd64,
        DebArch::Arm64,
        DebArch::Ppc64el,
        DebArch::S390x,
        DebArch::Riscv64,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DebArch::Amd64 => "amd64",
            DebArch::Arm64 => "arm64",
            DebArch::Ppc64el => "ppc64el",
            DebArch::S390x => "s390x",
            DebArch::Riscv64 => "riscv64",
        }
    }

    /// The name upstream release assets use (`GOARCH`).
    pub fn go_arch(self) -> &'static str {
        match self {
            DebArch::Ppc64el => "ppc64le",
            other => other.as_str(),
        }
    }

    pub fn elf_ident(self) -> ElfIdent {
        // e_machine values from the ELF gABI: EM_X86_64 62, EM_AARCH64 183, EM_PPC64 21,
        // EM_S390 22, EM_RISCV 243.
        let (machine, little_endian) = match self {
            DebArch::Amd64 => (62, true),
            DebArch::Arm64 => (183, true),
            DebArch::Ppc64el => (21, true),
            DebArch::S390x => (22, false),
            DebArch::Riscv64 => (243, true),
        };
        ElfIdent {
            machine,
            is_64: true,
            little_endian,
        }
    }

    /// The architecture an ELF header describes, if it is one of ours.
    pub fn from_elf(ident: ElfIdent) -> Option<DebArch> {
        DebArch::ALL.into_iter().find(|a| a.elf_ident() == ident)
    }

    /// The Debian architecture of the machine this runs on.
    pub fn host() -> Option<DebArch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(DebArch::Amd64),
            "aarch64" => Some(DebArch::Arm64),
            "powerpc64" if cfg!(target_endian = "little") => Some(DebArch::Ppc64el),
            "s390x" => Some(DebArch::S390x),
            "riscv64" => Some(DebArch::Riscv64),
            _ => None,
        }
    }
}

impl From<DebArch> for &'static str {
    fn from(a: DebArch) -> Self {
        a.as_str()
    }
}

impl fmt::Display for DebArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DebArch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        DebArch::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let hint = DebArch::ALL
                    .into_iter()
                    .find(|a| a.go_arch() == s)
                    .map(|a| format!(" (the Debian name for Go's {s} is {a})"))
                    .unwrap_or_default();
                Error::invalid(
                    "architecture",
                    s,
                    format!("expected one of amd64, arm64, ppc64el, s390x, riscv64{hint}"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_differ_only_for_ppc64el() {
        let pairs: Vec<_> = DebArch::ALL
            .iter()
            .map(|a| (a.as_str(), a.go_arch()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("amd64", "amd64"),
                ("arm64", "arm64"),
                ("ppc64el", "ppc64le"),
                ("s390x", "s390x"),
                ("riscv64", "riscv64")
            ]
        );
    }

    #[test]
    fn parse_round_trips_and_hints_at_go_names() {
        for a in DebArch::ALL {
            assert_eq!(a.as_str().parse::<DebArch>().unwrap(), a);
        }
        let err = "ppc64le".parse::<DebArch>().unwrap_err().to_string();
        assert!(
            err.contains("Debian name for Go's ppc64le is ppc64el"),
            "{err}"
        );
        assert!("i386".parse::<DebArch>().is_err());
    }

    #[test]
    fn elf_identities_are_distinct_and_map_back() {
        for a in DebArch::ALL {
            assert_eq!(DebArch::from_elf(a.elf_ident()), Some(a));
        }
        let s390 = DebArch::S390x.elf_ident();
        assert!(!s390.little_endian);
        let mut big_endian_x86 = DebArch::Amd64.elf_ident();
        big_endian_x86.little_endian = false;
        assert_eq!(DebArch::from_elf(big_endian_x86), None);
    }
}

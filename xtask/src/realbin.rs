//! A loopback "upstream mirror" made of real programs: Debian's own builds of containerd,
//! runc and the CNI plugins from a chosen suite and architecture ([`Source`]), repacked
//! under the names and paths upstream's release pages use, with a stack.toml pinning them.
//! The system tests package these instead of GitHub's assets, which this machine cannot
//! reach. Debian's packages are taken at the exact versions of [`PINS`], read from the
//! archive without touching this machine's apt (see `archive`), and cached under
//! `target/realbin/<suite>/<arch>/debs/`; the mirror is regenerated from them on every run
//! and comes out byte for byte the same (fixed mtimes, sorted entries, one gzip level).
//! crictl is not in Debian, so the stack leaves it out. The libraries a sysroot for those
//! programs needs ([`SYSROOT_PACKAGES`]) are pinned and cached the same way.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use containerd_stack::stack::ComponentKind;
use containerd_stack::DebArch;
use testkit::upstream::{sha256_hex, tar_gz};
use testkit::FakeRelease;

use crate::archive::Archive;
use crate::process::{run, stdout, Printer};
use crate::repo_root;
use crate::rootfs::Suite;

/// Debian's package for each component Debian has.
pub const PACKAGES: &[(ComponentKind, &str)] = &[
    (ComponentKind::Containerd, "containerd"),
    (ComponentKind::Runc, "runc"),
    (ComponentKind::CniPlugins, "containernetworking-plugins"),
];

/// The Debian packages a [`Sysroot`](crate::emulate::Sysroot) of a suite is made of: the C
/// library with its dynamic loader, and libseccomp for Debian's dynamically linked runc.
/// Taken at pinned versions like the release's own packages.
pub const SYSROOT_PACKAGES: &[&str] = &["libc6", "libseccomp2"];

/// Where a release's programs come from: a suite of Debian's archive, an architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub suite: Suite,
    pub arch: DebArch,
}

impl Source {
    /// Debian 12's containerd 1.6 (config schema 2), runc 1.1 and CNI plugins 1.1.
    pub fn bookworm(arch: DebArch) -> Source {
        Source {
            suite: Suite::Bookworm,
            arch,
        }
    }

    /// Debian unstable's containerd 2.1 (config schema 3), runc 1.3 and CNI plugins 1.9;
    /// its runc needs glibc 2.38, so its programs run on Debian 13, not 12.
    pub fn sid(arch: DebArch) -> Source {
        Source {
            suite: Suite::Sid,
            arch,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.suite, self.arch)
    }
}

/// One pinned Debian version of a package: `(suite, package, version, architectures)`,
/// where no architectures means all five. A binNMU makes one
/// architecture's version differ (`+b12`): it gets a row of its own.
type Pin = (Suite, &'static str, &'static str, &'static [DebArch]);

/// The exact versions taken, as the archive had them when they were pinned. The archive
/// moves (sid daily, the stable suites at point releases): a pin that is gone fails
/// naming what the suite has now, while the .debs cached under target/ keep a machine's
/// runs the same.
pub const PINS: &[Pin] = &[
    (
        Suite::Bookworm,
        "containerd",
        "1.6.20~ds1-1+deb12u3",
        BOOKWORM,
    ),
    (Suite::Bookworm, "runc", "1.1.5+ds1-1+deb12u1", BOOKWORM),
    (
        Suite::Bookworm,
        "containernetworking-plugins",
        "1.1.1+ds1-3+b5",
        BOOKWORM,
    ),
    (Suite::Trixie, "containerd", "1.7.24~ds1-6+deb13u1", &[]),
    (Suite::Trixie, "runc", "1.1.15+ds1-2+b4", &[]),
    (
        Suite::Trixie,
        "containernetworking-plugins",
        "1.1.1+ds1-3+b12",
        &[DebArch::Riscv64],
    ),
    (
        Suite::Trixie,
        "containernetworking-plugins",
        "1.1.1+ds1-3+b17",
        &[],
    ),
    (Suite::Sid, "containerd", "2.1.9+ds1-5", &[]),
    (Suite::Sid, "runc", "1.3.6+ds1-1", &[]),
    (
        Suite::Sid,
        "containernetworking-plugins",
        "1.9.1+ds1-1",
        &[],
    ),
    // The sysroots the programs of other architectures run with (SYSROOT_PACKAGES).
    (Suite::Trixie, "libc6", "2.41-12+deb13u5", &[]),
    (Suite::Trixie, "libseccomp2", "2.6.0-2", &[]),
    (Suite::Sid, "libc6", "2.43-7", &[]),
    (Suite::Sid, "libseccomp2", "2.6.1-1+b2", &[]),
];

/// Debian 12's architectures of the five: riscv64 became a release architecture with 13.
const BOOKWORM: &[DebArch] = &[
    DebArch::Amd64,
    DebArch::Arm64,
    DebArch::Ppc64el,
    DebArch::S390x,
];

/// The pinned version of `package` in `source`.
pub fn pin(source: Source, package: &str) -> Result<&'static str> {
    PINS.iter()
        .find(|(suite, p, _, arches)| {
            *suite == source.suite
                && *p == package
                && (arches.is_empty() || arches.contains(&source.arch))
        })
        .map(|(_, _, version, _)| *version)
        .with_context(|| {
            format!("no pinned version of {package} for Debian {source}: add one to PINS in xtask/src/realbin.rs")
        })
}

/// Where Debian installs the CNI plugins.
const DEBIAN_CNI_DIR: &str = "usr/lib/cni";

/// A prepared mirror: serve `mirror_root` and build with `stack`.
#[derive(Debug, Clone)]
pub struct RealRelease {
    pub suite: Suite,
    pub arch: DebArch,
    /// Holds the assets in GitHub's download paths (`containerd/containerd/releases/…`).
    pub mirror_root: PathBuf,
    /// A stack.toml pinning the sha256 of every asset in `mirror_root`.
    pub stack: PathBuf,
    pub components: Vec<RealComponent>,
}

/// One component as repacked from its Debian package.
#[derive(Debug, Clone)]
pub struct RealComponent {
    pub kind: ComponentKind,
    /// The Debian package it came from.
    pub package: &'static str,
    /// The full Debian version (`1.6.20~ds1-1+deb12u3`): what the programs print.
    pub debian_version: String,
    /// The upstream part (`1.6.20`): the version in stack.toml and the asset names.
    pub version: String,
    /// Each program in the asset by the name it is installed under, with its sha256.
    pub programs: BTreeMap<String, String>,
    /// The Debian package itself.
    pub deb: PathBuf,
}

impl RealRelease {
    /// Options to build this release for its architecture from `mirror`, with every core.
    pub fn build_options(
        &self,
        mirror: &str,
        out_dir: PathBuf,
        cache_dir: PathBuf,
        compression: containerd_stack::deb::compress::Compression,
        level: u32,
    ) -> containerd_stack::BuildOptions {
        containerd_stack::BuildOptions {
            compression,
            level,
            ..containerd_stack::BuildOptions::new(
                vec![self.arch],
                out_dir,
                Some(mirror.to_owned()),
                cache_dir,
            )
        }
    }

    pub fn component(&self, kind: ComponentKind) -> &RealComponent {
        self.components
            .iter()
            .find(|c| c.kind == kind)
            .expect("every component in PACKAGES is prepared")
    }
}

/// Downloads (or reuses) the pinned Debian packages of `source` and writes the mirror and
/// stack.toml under `target/realbin/<suite>/<arch>/`.
pub fn prepare(source: Source) -> Result<RealRelease> {
    let Source { suite, arch } = source;
    let base = cache_dir(source);
    let packages: Vec<&str> = PACKAGES.iter().map(|(_, p)| *p).collect();
    let debs = debs(source, &packages)?;

    let staging = tempfile::Builder::new()
        .prefix(".mirror-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a temporary directory in {}", base.display()))?;
    let mut release = FakeRelease {
        root: staging.path().join("mirror"),
        versions: BTreeMap::new(),
        sha256: BTreeMap::new(),
    };
    let mut components = Vec::new();
    for ((kind, package), deb) in PACKAGES.iter().zip(&debs) {
        let debian_version = deb_field(deb, "Version")?;
        let version = upstream_version(&debian_version).with_context(|| {
            format!(
                "{}: cannot use its version as an upstream release",
                deb.display()
            )
        })?;
        let tree = staging.path().join(package);
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree))?;
        let (bytes, programs) = repack(*kind, &tree, package, &debian_version)
            .with_context(|| format!("cannot repack {}", deb.display()))?;
        release.versions.insert(*kind, version.clone());
        let asset = release.put(*kind, arch, &bytes);
        println!(
            "     {package} {debian_version} -> {}",
            asset
                .strip_prefix(&release.root)
                .unwrap_or(&asset)
                .display()
        );
        components.push(RealComponent {
            kind: *kind,
            package,
            debian_version,
            version,
            programs,
            deb: deb.clone(),
        });
    }
    let kinds: Vec<ComponentKind> = PACKAGES.iter().map(|(k, _)| *k).collect();
    let stack_text = format!(
        "# Generated by xtask (realbin.rs) from Debian's packages ({}); do not edit.\n{}",
        components
            .iter()
            .map(|c| format!("{} {}", c.package, c.debian_version))
            .collect::<Vec<_>>()
            .join(", "),
        release.stack_toml(&kinds)
    );
    let staged_stack = staging.path().join("stack.toml");
    fs::write(&staged_stack, stack_text)
        .with_context(|| format!("cannot write {}", staged_stack.display()))?;

    // Swap the new mirror in whole: a reader sees the old one, none or the new one, never
    // half of one.
    let mirror_root = base.join("mirror");
    let stack = base.join("stack.toml");
    if mirror_root.exists() {
        let old = staging.path().join("old-mirror");
        fs::rename(&mirror_root, &old)
            .with_context(|| format!("cannot move {} aside", mirror_root.display()))?;
    }
    fs::rename(&release.root, &mirror_root)
        .with_context(|| format!("cannot move the new mirror to {}", mirror_root.display()))?;
    fs::rename(&staged_stack, &stack)
        .with_context(|| format!("cannot write {}", stack.display()))?;
    Ok(RealRelease {
        suite,
        arch,
        mirror_root,
        stack,
        components,
    })
}

/// Builds, through the library, the one package `opts` asks for (one architecture, from
/// [`RealRelease::build_options`]).
pub fn build_one(
    stack: &containerd_stack::Stack,
    opts: &containerd_stack::BuildOptions,
) -> Result<containerd_stack::BuiltDeb> {
    let mut built = containerd_stack::build(stack, opts, &Printer)?;
    ensure!(
        built.len() == 1,
        "expected one package, the library built {}",
        built.len()
    );
    Ok(built.remove(0))
}

/// `target/realbin/<suite>/<arch>/`: the release's .debs and its mirror.
fn cache_dir(source: Source) -> PathBuf {
    repo_root()
        .join("target/realbin")
        .join(source.suite.codename())
        .join(source.arch.as_str())
}

/// The pinned .deb of each of `packages`, in that order, from the cache in
/// `target/realbin/<suite>/<arch>/debs/` or the archive.
pub fn debs(source: Source, packages: &[&str]) -> Result<Vec<PathBuf>> {
    let dir = cache_dir(source).join("debs");
    let dir = dir.as_path();
    let mut archive = Archive::open(source.suite, source.arch);
    packages
        .iter()
        .map(|package| {
            let version = pin(source, package)?;
            let deb = archive.download(package, version, dir).with_context(|| {
                format!("{package} for Debian {source} (PINS in xtask/src/realbin.rs)")
            })?;
            let found = deb_field(&deb, "Architecture")?;
            ensure!(
                found == source.arch.as_str(),
                "{}: expected Architecture {}, found {found}; delete it to download it again",
                deb.display(),
                source.arch
            );
            Ok(deb)
        })
        .collect()
}

/// Packs the programs of an unpacked Debian package the way upstream ships them; returns the
/// asset's bytes and each program's sha256 by its installed name.
fn repack(
    kind: ComponentKind,
    tree: &Path,
    package: &str,
    debian_version: &str,
) -> Result<(Vec<u8>, BTreeMap<String, String>)> {
    let read = |rel: &str| {
        let path = tree.join(rel);
        fs::read(&path).with_context(|| format!("{package} has no {rel}"))
    };
    let mut programs = BTreeMap::new();
    let bytes = match kind {
        ComponentKind::Containerd => {
            let mut entries = vec![("bin/".to_owned(), 0o755, Vec::new())];
            for name in ["containerd", "containerd-shim-runc-v2", "ctr"] {
                let bytes = read(&format!("usr/bin/{name}"))?;
                programs.insert(name.to_owned(), sha256_hex(&bytes));
                entries.push((format!("bin/{name}"), 0o755, bytes));
            }
            pack(entries)
        }
        ComponentKind::Runc => {
            let bytes = read("usr/sbin/runc")?;
            programs.insert("runc".to_owned(), sha256_hex(&bytes));
            bytes
        }
        ComponentKind::CniPlugins => {
            let dir = tree.join(DEBIAN_CNI_DIR);
            let mut names = Vec::new();
            for entry in
                fs::read_dir(&dir).with_context(|| format!("{package} has no {DEBIAN_CNI_DIR}"))?
            {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            names.sort();
            ensure!(
                names.iter().any(|n| n == "bridge") && names.iter().any(|n| n == "host-local"),
                "{package}: expected the bridge and host-local plugins in /{DEBIAN_CNI_DIR}, found {names:?}"
            );
            let mut entries = vec![("./".to_owned(), 0o755, Vec::new())];
            for name in names {
                let bytes = read(&format!("{DEBIAN_CNI_DIR}/{name}"))?;
                programs.insert(name.clone(), sha256_hex(&bytes));
                entries.push((format!("./{name}"), 0o755, bytes));
            }
            // Upstream's tarball carries these two beside the plugins; the build must skip them.
            let license = read(&format!("usr/share/doc/{package}/copyright"))?;
            entries.push(("./LICENSE".to_owned(), 0o644, license));
            let readme = format!(
                "# CNI plugins\n\nDebian's {package} {debian_version}, repacked by `cargo xtask system` in the layout of upstream's release tarball.\n"
            );
            entries.push(("./README.md".to_owned(), 0o644, readme.into_bytes()));
            pack(entries)
        }
        ComponentKind::Crictl => bail!("crictl is not packaged in Debian"),
    };
    Ok((bytes, programs))
}

fn pack(entries: Vec<(String, u32, Vec<u8>)>) -> Vec<u8> {
    let (names, bodies): (Vec<String>, Vec<(u32, Vec<u8>)>) =
        entries.into_iter().map(|(n, m, b)| (n, (m, b))).unzip();
    let borrowed: Vec<(&str, u32, Vec<u8>)> = names
        .iter()
        .zip(bodies)
        .map(|(n, (m, b))| (n.as_str(), m, b))
        .collect();
    tar_gz(&borrowed)
}

/// The upstream part of a Debian version: no epoch, no Debian revision, no repack suffix
/// (`1:1.6.20~ds1-1+deb12u3` → `1.6.20`).
pub fn upstream_version(debian: &str) -> Result<String> {
    let no_epoch = debian.split_once(':').map_or(debian, |(_, v)| v);
    let upstream = no_epoch.rsplit_once('-').map_or(no_epoch, |(u, _)| u);
    let core = upstream.split(['~', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    ensure!(
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "expected a version like 1.2.3 before any ~ or + in {debian:?}, found {core:?}"
    );
    Ok(core.to_owned())
}

fn deb_field(deb: &Path, field: &str) -> Result<String> {
    Ok(
        stdout(Command::new("dpkg-deb").arg("--field").arg(deb).arg(field))?
            .trim()
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_version_drops_epoch_revision_and_repack_suffix() {
        assert_eq!(upstream_version("1.6.20~ds1-1+deb12u3").unwrap(), "1.6.20");
        assert_eq!(upstream_version("1.1.5+ds1-1+deb12u1").unwrap(), "1.1.5");
        assert_eq!(upstream_version("1.1.1+ds1-3+b5").unwrap(), "1.1.1");
        assert_eq!(upstream_version("1:2.0.0-1").unwrap(), "2.0.0");
        assert_eq!(upstream_version("2.0.0").unwrap(), "2.0.0");
        assert!(upstream_version("1.6-1").is_err());
        assert!(upstream_version("20230101-1").is_err());
    }

    #[test]
    fn every_component_is_pinned_for_every_architecture_of_its_suite() {
        for suite in [Suite::Bookworm, Suite::Trixie, Suite::Sid] {
            for arch in DebArch::ALL {
                // riscv64 became a release architecture with Debian 13.
                if suite == Suite::Bookworm && arch == DebArch::Riscv64 {
                    continue;
                }
                for (_, package) in PACKAGES {
                    let source = Source { suite, arch };
                    let version = pin(source, package).unwrap();
                    upstream_version(version).unwrap();
                }
            }
        }
        // Programs of Debian 13 and unstable run under emulation with a sysroot of their suite.
        for suite in [Suite::Trixie, Suite::Sid] {
            for arch in DebArch::ALL {
                for package in SYSROOT_PACKAGES {
                    pin(Source { suite, arch }, package).unwrap();
                }
            }
        }
        // The row for one architecture's binNMU wins over the suite's.
        let riscv = Source {
            suite: Suite::Trixie,
            arch: DebArch::Riscv64,
        };
        assert_eq!(
            pin(riscv, "containernetworking-plugins").unwrap(),
            "1.1.1+ds1-3+b12"
        );
        let err = pin(Source::bookworm(DebArch::Riscv64), "runc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("runc") && err.contains("bookworm riscv64"),
            "{err}"
        );
    }
}

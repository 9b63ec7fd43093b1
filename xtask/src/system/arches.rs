//! The package for every architecture, each from Debian's real programs of the suite
//! [`MATRIX`] names for it, built by the library and then judged without its help: the
//! `Architecture` field; each program's ELF header as readelf reads it; `Depends` equal to
//! what readelf and the sysroot's packages say the programs need, and asking no less than
//! Debian's own packages do; Debian 13's lintian; and containerd, ctr, runc and a CNI plugin
//! run under qemu with a sysroot of their suite, printing the versions the pins name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use containerd_stack::deb::compress::Compression;
use containerd_stack::stack::ComponentKind;
use containerd_stack::{BuiltDeb, DebArch, Stack};
use tempfile::TempDir;

use super::{build_at, dependencies_field, dpkg_deb, print_indented, shipped_programs};
use crate::emulate::{Emulator, Sysroot};
use crate::lintian::{Judged, Lintian};
use crate::process::{check, require_tool, stdout, text, Background};
use crate::realbin::{self, upstream_version, RealComponent, RealRelease, Source};
use crate::rootfs::Suite;

/// The suite each architecture's programs come from. Debian 13 has containerd 1.7 on all
/// five and Debian unstable 2.1, and the programs run with a sysroot of their own suite.
/// Unstable for amd64: the VM stage packages the same release, so it is downloaded once.
/// Unstable for ppc64el and s390x as well: containerd 2.x, the line stack.toml pins, then
/// runs on three architectures, the big-endian one among them, and 1.7 on two.
pub const MATRIX: [Source; 5] = [
    Source {
        suite: Suite::Sid,
        arch: DebArch::Amd64,
    },
    Source {
        suite: Suite::Trixie,
        arch: DebArch::Arm64,
    },
    Source {
        suite: Suite::Sid,
        arch: DebArch::Ppc64el,
    },
    Source {
        suite: Suite::Sid,
        arch: DebArch::S390x,
    },
    Source {
        suite: Suite::Trixie,
        arch: DebArch::Riscv64,
    },
];

/// What `readelf --file-header` says of each architecture's programs: `Machine`, `Data`.
/// Written from binutils' names, not from the library's table, which this checks.
const READELF_IDENTITY: [(DebArch, &str, &str); 5] = [
    (
        DebArch::Amd64,
        "Advanced Micro Devices X86-64",
        "2's complement, little endian",
    ),
    (DebArch::Arm64, "AArch64", "2's complement, little endian"),
    (
        DebArch::Ppc64el,
        "PowerPC64",
        "2's complement, little endian",
    ),
    (DebArch::S390x, "IBM S/390", "2's complement, big endian"),
    (DebArch::Riscv64, "RISC-V", "2's complement, little endian"),
];

/// The CNI plugin the runs ask for its version.
const CNI_PLUGIN: &str = "bridge";

/// The programs the checks use beyond the system test's own.
pub const TOOLS: &[(&str, &str)] = &[("readelf", "binutils"), ("timeout", "coreutils")];

/// One architecture's release and the .debs of its sysroot, ready to build and judge.
pub struct Prepared {
    release: RealRelease,
    sysroot_debs: Vec<PathBuf>,
}

/// Starts preparing every architecture of [`MATRIX`] at once: each is mostly waiting on
/// Debian's archive, with apt state of its own.
pub fn prepare() -> Vec<(Source, Background<Prepared>)> {
    MATRIX
        .into_iter()
        .map(|source| {
            let made = Background::spawn(&format!("the {source} release"), move || {
                let release = realbin::prepare(source)?;
                let sysroot_debs = realbin::debs(source, realbin::SYSROOT_PACKAGES)?;
                Ok(Prepared {
                    release,
                    sysroot_debs,
                })
            });
            (source, made)
        })
        .collect()
}

/// Builds and judges every prepared architecture in turn, each in a directory of its own
/// in `work`. A package's lintian, most of the time each takes, runs beside the next
/// architecture's build and checks, so the two share the machine's cores.
pub fn judge_all(
    every_arch: Vec<(Source, Background<Prepared>)>,
    lintian: &Lintian,
    work: &Path,
) -> Result<()> {
    std::thread::scope(|scope| {
        let mut pending: Option<PendingLintian> = None;
        for (source, prepared) in every_arch {
            let dir = tempfile::Builder::new()
                .prefix(&format!("{}-", source.arch))
                .tempdir_in(work)
                .with_context(|| format!("cannot create a directory in {}", work.display()))?;
            let (deb, stack) = judge(source, prepared, dir.path())?;
            if let Some(previous) = pending.take() {
                previous.finish()?;
            }
            let name = format!("lintian ({}, trixie)", source.arch);
            let handle = scope.spawn(move || {
                let start = Instant::now();
                let judged = lintian.judge(&deb.path, &stack.package.name)?;
                Ok((judged, start.elapsed()))
            });
            pending = Some(PendingLintian { name, handle, dir });
        }
        pending.map_or(Ok(()), PendingLintian::finish)
    })
}

/// A lintian run going on in a thread of its own, and the directory its package is in.
struct PendingLintian<'scope> {
    name: String,
    handle: std::thread::ScopedJoinHandle<'scope, Result<(Judged, Duration)>>,
    /// Removed once lintian is done with the package in it.
    dir: TempDir,
}

impl PendingLintian<'_> {
    /// Waits for lintian and reports it as a check of its own.
    fn finish(self) -> Result<()> {
        let PendingLintian { name, handle, dir } = self;
        check(&name, || {
            let (judged, took) = handle
                .join()
                .map_err(|_| anyhow::anyhow!("the thread running {name} panicked"))??;
            print_indented(&judged.report);
            Ok((
                (),
                format!(
                    "{} ({:.1}s, beside the next architecture's checks)",
                    judged.summary,
                    took.as_secs_f64()
                ),
            ))
        })?;
        drop(dir);
        Ok(())
    }
}

/// Builds the package of one prepared architecture in `work` and judges all but its lintian;
/// returns it and its stack.
fn judge(source: Source, prepared: Background<Prepared>, work: &Path) -> Result<(BuiltDeb, Stack)> {
    let arch = source.arch;
    let emulator = Emulator::of(arch)?;
    let Prepared {
        release,
        sysroot_debs,
    } = check(&format!("real-binary mirror ({source})"), || {
        let p = prepared.wait()?;
        let detail = format!(
            "{}; sysroot {}",
            p.release
                .components
                .iter()
                .map(|c| format!("{} {}", c.package, c.debian_version))
                .collect::<Vec<_>>()
                .join(", "),
            p.sysroot_debs
                .iter()
                .map(|d| d.file_name().unwrap_or_default().to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok((p, detail))
    })?;
    let stack =
        Stack::load(&release.stack).with_context(|| format!("{}", release.stack.display()))?;
    // Level 1: lintian reads gzip on either release, and these packages are only judged.
    let deb = check(&format!("build-deb ({arch})"), || {
        build_at(&stack, &release, Compression::Gzip, 1, work)
    })?;
    check(&format!("dpkg-deb ({arch})"), || {
        dpkg_deb(&deb, &stack, &release, work)
    })?;
    // dpkg_deb unpacked the package here.
    let tree = work.join("extracted");
    let programs = check(&format!("ELF ({arch})"), || {
        elf_identity(&tree, &stack, &release)
    })?;
    let sysroot = Sysroot::unpack(&sysroot_debs, work)?;
    check(&format!("depends ({arch})"), || {
        depends(&deb, &programs, &sysroot, &release)
    })?;
    check(&format!("run under {} ({arch})", emulator.name()), || {
        run_programs(&emulator, &sysroot, &tree, &stack, &release)
    })?;
    // Only the package is needed from here on.
    drop(sysroot);
    std::fs::remove_dir_all(&tree).with_context(|| format!("cannot remove {}", tree.display()))?;
    Ok((deb, stack))
}

/// One shipped program as readelf reads it.
struct ReadElf {
    /// Installed path, relative to `/`.
    path: String,
    class: String,
    data: String,
    machine: String,
    needed: Vec<String>,
    /// Every `GLIBC_x.y[.z]` it needs, as `x.y[.z]`.
    glibc: Vec<String>,
}

/// Every shipped program's class, endianness and machine, by readelf, are the package's
/// architecture's.
fn elf_identity(
    tree: &Path,
    stack: &Stack,
    release: &RealRelease,
) -> Result<(Vec<ReadElf>, String)> {
    let arch = release.arch;
    let (_, machine, data) = READELF_IDENTITY
        .iter()
        .find(|(a, _, _)| *a == arch)
        .expect("READELF_IDENTITY names every architecture");
    let mut programs = Vec::new();
    for (path, _) in shipped_programs(stack, release) {
        let elf = read_elf(&tree.join(&path), &path)?;
        for (what, found, want) in [
            ("Class", &elf.class, "ELF64"),
            ("Data", &elf.data, *data),
            ("Machine", &elf.machine, *machine),
        ] {
            ensure!(
                found == want,
                "/{path}: readelf says {what}: {found:?}, expected {want:?} for a {arch} package"
            );
        }
        programs.push(elf);
    }
    let detail = format!("{} programs: ELF64, {data}, {machine}", programs.len());
    Ok((programs, detail))
}

fn read_elf(file: &Path, path: &str) -> Result<ReadElf> {
    let readelf = |flag: &str| stdout(Command::new("readelf").arg("--wide").arg(flag).arg(file));
    let header = readelf("--file-header")?;
    let field = |name: &str| {
        header_field(&header, name)
            .with_context(|| format!("/{path}: readelf --file-header prints no {name}"))
    };
    Ok(ReadElf {
        path: path.to_owned(),
        class: field("Class")?,
        data: field("Data")?,
        machine: field("Machine")?,
        needed: needed(&readelf("--dynamic")?),
        glibc: glibc_versions(&readelf("--version-info")?),
    })
}

/// The value of `Name:` in `readelf --file-header` output.
fn header_field(header: &str, name: &str) -> Option<String> {
    header.lines().find_map(|l| {
        let (key, value) = l.trim().split_once(':')?;
        (key == name).then(|| value.trim().to_owned())
    })
}

/// The `NEEDED` libraries in `readelf --dynamic` output.
fn needed(dynamic: &str) -> Vec<String> {
    dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let (_, rest) = l.split_once('[')?;
            Some(rest.split_once(']')?.0.to_owned())
        })
        .collect()
}

/// The `GLIBC_x.y` versions named in the version needs section of `readelf --version-info`.
fn glibc_versions(info: &str) -> Vec<String> {
    info.lines()
        .skip_while(|l| !l.starts_with("Version needs section"))
        .filter_map(|l| l.split_once("Name: GLIBC_"))
        .filter_map(|(_, rest)| rest.split_whitespace().next())
        .filter(|v| {
            v.split('.')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect()
}

/// A version's numbers, for comparing `2.3.4` with `2.34`.
fn numeric(version: &str) -> Vec<u32> {
    version.split('.').filter_map(|n| n.parse().ok()).collect()
}

/// The `Depends` the programs need, derived here: each `NEEDED` library is mapped to the
/// sysroot package that ships it, and libc6 is versioned by the highest `GLIBC_` version
/// any program needs (the library versions no other package).
fn expected_depends(programs: &[ReadElf], sysroot: &Sysroot) -> Result<Vec<String>> {
    let mut packages: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for p in programs {
        for soname in &p.needed {
            let shipping = sysroot.packages_shipping(soname);
            let [package] = shipping.as_slice() else {
                bail!(
                    "/{}: needs {soname}, which {} of the sysroot's packages ({}) ship{}",
                    p.path,
                    shipping.len(),
                    sysroot
                        .packages
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if shipping.len() == 1 { "s" } else { "" }
                );
            };
            packages.entry(&package.name).or_default();
        }
        for v in &p.glibc {
            let slot = packages.entry("libc6").or_default();
            if slot.is_none_or(|old| numeric(v) > numeric(old)) {
                *slot = Some(v);
            }
        }
    }
    Ok(packages
        .into_iter()
        .map(|(p, v)| match v {
            Some(v) => format!("{p} (>= {v})"),
            None => p.to_owned(),
        })
        .collect())
}

/// What the control template adds after the programs' dependencies (`ucf, debconf …`).
fn template_depends() -> Result<String> {
    let control = containerd_stack::render::TEMPLATES
        .iter()
        .find(|(name, _)| *name == "control")
        .map(|(_, text)| *text)
        .context("no control template is compiled in")?;
    control
        .lines()
        .find_map(|l| l.strip_prefix("Depends: {{#if depends}}{{depends}}, {{/if}}"))
        .map(str::to_owned)
        .context("debian-templates/control.hbs: expected a line `Depends: {{#if depends}}{{depends}}, {{/if}}…`; update the system test with it")
}

/// The package's `Depends` is exactly the programs' needs (as [`expected_depends`] derives
/// them) followed by the template's; and it names every library package that Debian's own
/// packages of these programs depend on, libc6 at no lower a version than theirs.
fn depends(
    deb: &BuiltDeb,
    programs: &[ReadElf],
    sysroot: &Sysroot,
    release: &RealRelease,
) -> Result<((), String)> {
    let field = dependencies_field(&deb.path)?;
    let needs = expected_depends(programs, sysroot)?;
    let mut want = needs.clone();
    want.push(template_depends()?);
    let want = want.join(", ");
    ensure!(
        field == want,
        "the {} package's Depends is {field:?}; readelf and the sysroot's packages say {want:?}",
        release.arch
    );

    // dpkg-shlibdeps' view: Debian's packages of the same programs.
    let ours: BTreeMap<&str, Option<&str>> = needs.iter().map(|c| clause(c)).collect();
    let mut debian: Vec<String> = Vec::new();
    let mut named: BTreeSet<String> = BTreeSet::new();
    for c in &release.components {
        let theirs = stdout(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(&c.deb)
                .arg("Depends"),
        )?;
        for clause_text in theirs.trim().split(',').map(str::trim) {
            let (name, version) = clause(clause_text);
            if sysroot.package(name).is_none() {
                continue;
            }
            debian.push(format!("{} {}: {clause_text}", c.package, c.debian_version));
            named.insert(name.to_owned());
            let Some(ours_version) = ours.get(name) else {
                bail!(
                    "Debian's {} {} depends on {clause_text}, but the {} package's Depends does not name {name}: {field}",
                    c.package,
                    c.debian_version,
                    release.arch
                );
            };
            if let (Some(theirs), Some(ours)) = (version, ours_version) {
                ensure!(
                    dpkg_version_ge(ours, theirs)?,
                    "the {} package asks for {name} (>= {ours}), less than Debian's {} {} ({clause_text})",
                    release.arch,
                    c.package,
                    c.debian_version
                );
            }
        }
    }
    for name in ours.keys() {
        ensure!(
            named.contains(*name),
            "the {} package depends on {name}, which none of Debian's packages of its programs does ({})",
            release.arch,
            debian.join("; ")
        );
    }
    Ok(((), format!("{field} (Debian's own: {})", debian.join("; "))))
}

/// `libc6 (>= 2.34)` → (`libc6`, `Some("2.34")`), `libseccomp2` → (`libseccomp2`, `None`).
fn clause(text: &str) -> (&str, Option<&str>) {
    let text = text.split('|').next().unwrap_or_default().trim();
    match text.split_once('(') {
        Some((name, rest)) => (
            name.trim(),
            rest.trim_end_matches(')')
                .trim()
                .strip_prefix(">=")
                .map(str::trim),
        ),
        None => (text, None),
    }
}

/// `dpkg --compare-versions a ge b`.
fn dpkg_version_ge(a: &str, b: &str) -> Result<bool> {
    let status = Command::new("dpkg")
        .args(["--compare-versions", a, "ge", b])
        .status()
        .context("cannot run dpkg --compare-versions")?;
    Ok(status.success())
}

/// The Debian version without its revision (`1.7.24~ds1-6+deb13u1` → `1.7.24~ds1`): what
/// Debian's builds of these programs print as their version.
fn without_revision(debian: &str) -> &str {
    debian.rsplit_once('-').map_or(debian, |(v, _)| v)
}

/// containerd's Go module: `github.com/containerd/containerd`, with `/v2` from 2.0 on.
fn containerd_module(version: &str) -> String {
    match version.split('.').next() {
        Some(major) if major != "0" && major != "1" => {
            format!("github.com/containerd/containerd/v{major}")
        }
        _ => "github.com/containerd/containerd".to_owned(),
    }
}

/// Runs containerd, ctr and runc with `--version`, and the CNI plugin with its `VERSION`
/// command and with none, under the emulator with the sysroot; each must print the version
/// its pin names.
fn run_programs(
    emulator: &Emulator,
    sysroot: &Sysroot,
    tree: &Path,
    stack: &Stack,
    release: &RealRelease,
) -> Result<((), String)> {
    let arch = release.arch;
    let containerd = release.component(ComponentKind::Containerd);
    let runc = release.component(ComponentKind::Runc);
    let cni = release.component(ComponentKind::CniPlugins);
    // What each program must print is read from the generated stack.toml, not from the
    // Debian package it came from: the pin is what the package claims to ship.
    let pinned = |kind: ComponentKind| -> Result<&str> {
        stack
            .component(kind)
            .map(|c| c.version.as_str())
            .with_context(|| format!("the generated stack.toml for {arch} pins no {kind:?}"))
    };
    let containerd_pin = pinned(ComponentKind::Containerd)?;
    let runc_pin = pinned(ComponentKind::Runc)?;
    let cni_dir = stack.settings.cni_bin_dir.trim_start_matches('/');
    let mut said = Vec::new();
    let mut run = |path: &str, args: &[&str], env: &[(&str, &str)]| -> Result<Output> {
        let out = emulator.run(sysroot, &tree.join(path), args, env)?;
        let shown = format!(
            "{}/{path}{}",
            env.iter()
                .map(|(k, v)| format!("{k}={v} "))
                .collect::<String>(),
            args.iter().map(|a| format!(" {a}")).collect::<String>()
        );
        println!("     $ {shown}");
        for line in text(&out).lines() {
            println!("       {line}");
        }
        ensure!(
            out.status.success(),
            "{shown} under {} failed ({}): {}",
            emulator.name(),
            out.status,
            crate::process::last_lines(&text(&out), 3)
        );
        said.push(
            text(&out)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        );
        Ok(out)
    };

    for (name, path) in [("containerd", "usr/bin/containerd"), ("ctr", "usr/bin/ctr")] {
        let out = run(path, &["--version"], &[])?;
        version_line(
            &String::from_utf8_lossy(&out.stdout),
            name,
            containerd_pin,
            containerd,
        )
        .with_context(|| format!("{arch}: /{path} under {}", emulator.name()))?;
    }

    let out = run("usr/sbin/runc", &["--version"], &[])?;
    let printed = String::from_utf8_lossy(&out.stdout);
    let libseccomp = sysroot
        .package("libseccomp2")
        .context("the sysroot has no libseccomp2")?;
    // `runc version 1.3.6+ds1`: its upstream part is the pin.
    let printed_version = printed
        .lines()
        .find_map(|l| l.strip_prefix("runc version "))
        .unwrap_or_default();
    ensure!(
        upstream_version(printed_version).is_ok_and(|v| v == runc_pin),
        "{arch}: /usr/sbin/runc --version under {}: expected `runc version {runc_pin}…` (stack.toml's pin), found {:?}",
        emulator.name(),
        printed.lines().next().unwrap_or_default()
    );
    for want in [
        format!("runc version {}", without_revision(&runc.debian_version)),
        // Debian's build records its own full version as the commit.
        format!("commit: {}", runc.debian_version),
        // The library runc found at run time: the sysroot's, not this machine's.
        format!("libseccomp: {}", upstream_version(&libseccomp.version)?),
    ] {
        ensure!(
            printed.lines().any(|l| l == want),
            "{arch}: /usr/sbin/runc --version under {}: expected the line {want:?}, found {:?}",
            emulator.name(),
            printed.lines().collect::<Vec<_>>()
        );
    }

    let plugin = format!("{cni_dir}/{CNI_PLUGIN}");
    let out = run(&plugin, &[], &[("CNI_COMMAND", "VERSION")])?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{arch}: CNI_COMMAND=VERSION /{plugin}: expected a JSON answer, found {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let supported: Vec<&str> = answer["supportedVersions"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let conflist = conflist_version(tree)?;
    ensure!(
        answer["cniVersion"]
            .as_str()
            .is_some_and(|v| supported.contains(&v))
            && supported.contains(&conflist.as_str()),
        "{arch}: CNI_COMMAND=VERSION /{plugin}: expected a cniVersion among supportedVersions, which must include the shipped conflist's {conflist}; found {answer}"
    );
    // With no command a plugin names itself and its version on stderr. Debian's builds
    // leave the plugins' build version at its default; upstream's release stamps `v<version>`.
    let out = run(&plugin, &[], &[])?;
    let about = String::from_utf8_lossy(&out.stderr);
    let want = format!("CNI {CNI_PLUGIN} plugin {}", DEBIAN_CNI_BUILD_VERSION);
    ensure!(
        about.lines().next() == Some(want.as_str()),
        "{arch}: /{plugin} with no CNI_COMMAND: expected {want:?}, found {:?} (the {} {} package)",
        about.lines().next().unwrap_or_default(),
        cni.package,
        cni.debian_version
    );
    Ok((
        (),
        format!(
            "{} (stack.toml pins containerd {containerd_pin}, runc {runc_pin})",
            said.join(" | ")
        ),
    ))
}

/// What the CNI plugins of Debian's containernetworking-plugins call their version: its
/// build does not set `buildversion.BuildVersion`, so it is the default.
const DEBIAN_CNI_BUILD_VERSION: &str = "version unknown";

/// `containerd --version` (or ctr's) names the program, containerd's Go module for its major
/// version, and a version whose upstream part is the pinned one.
fn version_line(
    printed: &str,
    program: &str,
    pinned: &str,
    containerd: &RealComponent,
) -> Result<()> {
    let line = printed.lines().next().unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let module = containerd_module(pinned);
    let ok = fields.len() >= 3
        && fields[0] == program
        && fields[1] == module
        && upstream_version(fields[2]).is_ok_and(|v| v == pinned);
    ensure!(
        ok,
        "{program} --version: expected `{program} {module} {pinned}…` (stack.toml's pin; Debian's {} {}), found {line:?}",
        containerd.package,
        containerd.debian_version
    );
    Ok(())
}

/// The `cniVersion` of the CNI configuration the package ships.
fn conflist_version(tree: &Path) -> Result<String> {
    let dir = tree.join("etc/cni/net.d");
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "conflist") {
            found.push(path);
        }
    }
    let [conflist] = found.as_slice() else {
        bail!(
            "expected one .conflist in /etc/cni/net.d, the package ships {}",
            found.len()
        );
    };
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(conflist).with_context(|| format!("cannot read {}", conflist.display()))?,
    )
    .with_context(|| format!("{} is not JSON", conflist.display()))?;
    json["cniVersion"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{} has no cniVersion", conflist.display()))
}

/// Every program the checks need, present.
pub fn require_tools() -> Result<()> {
    for (tool, package) in TOOLS {
        require_tool(tool, package)?;
    }
    for arch in DebArch::ALL {
        Emulator::of(arch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_has_every_architecture_once() {
        let arches: BTreeSet<DebArch> = MATRIX.iter().map(|s| s.arch).collect();
        assert_eq!(arches.len(), MATRIX.len());
        assert_eq!(arches, DebArch::ALL.into_iter().collect());
        for (arch, ..) in READELF_IDENTITY {
            assert!(arches.contains(&arch));
        }
    }

    #[test]
    fn readelf_output_is_read() {
        let header = "ELF Header:\n  Class:                             ELF64\n  Data:                              2's complement, big endian\n  Machine:                           IBM S/390\n";
        assert_eq!(
            header_field(header, "Machine").as_deref(),
            Some("IBM S/390")
        );
        assert_eq!(
            header_field(header, "Data").as_deref(),
            Some("2's complement, big endian")
        );
        assert_eq!(header_field(header, "Flags"), None);

        let dynamic = "\
 0x0000000000000001 (NEEDED)             Shared library: [libseccomp.so.2]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000c (INIT)               0x10023c0
";
        assert_eq!(needed(dynamic), ["libseccomp.so.2", "libc.so.6"]);

        let info = "\
Version symbols section '.gnu.version' contains 127 entries:
  000:   0 (*local*)       2 (GLIBC_2.2)     2 (GLIBC_2.2)     3 (GLIBC_2.99)
Version needs section '.gnu.version_r' contains 1 entry:
  000000: Version: 1  File: libc.so.6  Cnt: 3
  0x0010:   Name: GLIBC_2.3.4  Flags: none  Version: 12
  0x0030:   Name: GLIBC_2.38  Flags: none  Version: 10
  0x0040:   Name: GLIBC_PRIVATE  Flags: none  Version: 9
";
        assert_eq!(glibc_versions(info), ["2.3.4", "2.38"]);
    }

    #[test]
    fn versions_and_clauses() {
        assert!(numeric("2.3.4") < numeric("2.34"));
        assert!(numeric("2.2.5") > numeric("2.2"));
        assert_eq!(clause("libc6 (>= 2.38)"), ("libc6", Some("2.38")));
        assert_eq!(clause("libseccomp2"), ("libseccomp2", None));
        assert_eq!(
            clause("debconf (>= 0.5) | debconf-2.0"),
            ("debconf", Some("0.5"))
        );
        assert_eq!(without_revision("1.7.24~ds1-6+deb13u1"), "1.7.24~ds1");
        assert_eq!(without_revision("1.3.6+ds1-1"), "1.3.6+ds1");
        assert_eq!(
            containerd_module("1.7.24"),
            "github.com/containerd/containerd"
        );
        assert_eq!(
            containerd_module("2.1.9"),
            "github.com/containerd/containerd/v2"
        );
    }

    #[test]
    fn the_control_template_ends_depends_with_its_own() {
        let tail = template_depends().unwrap();
        assert!(tail.starts_with("ucf"), "{tail}");
    }

    fn component(version: &str, debian: &str) -> RealComponent {
        RealComponent {
            kind: ComponentKind::Containerd,
            package: "containerd",
            debian_version: debian.to_owned(),
            version: version.to_owned(),
            programs: BTreeMap::new(),
            deb: PathBuf::new(),
        }
    }

    #[test]
    fn version_lines_must_name_the_pinned_version() {
        let c1 = component("1.7.24", "1.7.24~ds1-6+deb13u1");
        version_line(
            "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1\n",
            "containerd",
            "1.7.24",
            &c1,
        )
        .unwrap();
        let c2 = component("2.1.9", "2.1.9+ds1-5");
        version_line(
            "ctr github.com/containerd/containerd/v2 2.1.9+unknown\n",
            "ctr",
            "2.1.9",
            &c2,
        )
        .unwrap();
        // The right program at another version than stack.toml pins.
        let err = version_line(
            "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1\n",
            "containerd",
            "1.7.25",
            &c1,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("1.7.25") && err.contains("1.7.24~ds1"),
            "{err}"
        );
        // Another version, another module, another program, nothing at all.
        for (printed, program) in [
            (
                "containerd github.com/containerd/containerd 1.7.2~ds1",
                "containerd",
            ),
            ("ctr github.com/containerd/containerd 2.1.9+unknown", "ctr"),
            (
                "containerd github.com/containerd/containerd/v2 2.1.9",
                "ctr",
            ),
            ("", "ctr"),
        ] {
            let (pin, c) = if printed.contains("1.7") {
                ("1.7.24", &c1)
            } else {
                ("2.1.9", &c2)
            };
            let err = version_line(printed, program, pin, c)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{program} --version: expected")),
                "{err}"
            );
        }
    }
}

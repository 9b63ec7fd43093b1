//! `cargo xtask system`: the build-deb system tests on real programs. Debian's own builds
//! of containerd, runc and the CNI plugins, repacked as upstream assets, are served over
//! loopback HTTP and packaged by the library; then the package is judged the way Debian
//! judges one — dpkg-deb reads it, the host's lintian and Debian 13's (in a root of its
//! own) find no error and every override matches, and `dpkg -i` installs it into a minimal
//! Debian 12 where the programs run. Then a package for each of the five architectures
//! (`arches`) is built and judged, and its programs run under emulation. Needs root and
//! Debian's archive, nothing else from the network.

mod arches;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use containerd_stack::artifact::Artifact;
use containerd_stack::deb::compress::Compression;
use containerd_stack::hash::sha256_file;
use containerd_stack::stack::ComponentKind;
use containerd_stack::{BuildOptions, BuiltDeb, DebArch, Stack};
use testkit::Mirror;

use crate::lintian::Lintian;
use crate::process::{self, check, require_tool, stdout, text, Background, Printer};
use crate::realbin::{self, RealRelease};
use crate::rootfs::{Chroot, Rootfs, Suite};

/// Every program the checks run, with the Debian package that has it.
const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("lintian", "lintian"),
    ("mmdebstrap", "mmdebstrap"),
    ("tar", "tar"),
    ("chroot", "coreutils"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("debsig-verify", "debsig-verify"),
];

/// What the system and e2e checks start with: `--compression` (one bookworm's lintian can
/// read), every tool in `tools` present, and this machine's architecture.
pub fn setup(compression: &str, tools: &[(&str, &str)]) -> Result<(Compression, DebArch)> {
    let compression: Compression = compression.parse()?;
    if compression == Compression::Zstd {
        bail!("--compression zstd: bookworm's lintian reports zstd members as malformed-deb-archive; use gzip or xz");
    }
    for (tool, package) in tools {
        require_tool(tool, package)?;
    }
    let arch =
        DebArch::host().context("this machine's architecture is not one the stack supports")?;
    Ok((compression, arch))
}

/// Where the package is copied to inside the chroot.
const DEB_IN_CHROOT: &str = "/tmp/containerd-stack.deb";

#[derive(Parser)]
pub struct Args {
    /// Compression of the package's members: gzip or xz (bookworm's lintian cannot read zstd).
    #[arg(long, default_value = "gzip")]
    compression: String,
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let (compression, arch) = setup(&args.compression, TOOLS)?;
    arches::require_tools()?;
    // The five architectures' releases download meanwhile: that is mostly waiting.
    let every_arch = arches::prepare();

    let release = check("real-binary mirror", || {
        let r = realbin::prepare(realbin::Source::bookworm(arch))?;
        let detail = format!("{} (stack {})", r.mirror_root.display(), r.stack.display());
        Ok((r, detail))
    })?;
    let work = tempfile::Builder::new()
        .prefix("xtask-system-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let stack =
        Stack::load(&release.stack).with_context(|| format!("{}", release.stack.display()))?;
    let deb = check("build-deb", || {
        build(&stack, &release, compression, work.path())
    })?;

    // `dpkg -i` installs nothing else: the rootfs is minbase plus the package's dependencies.
    // mmdebstrap spends its minute mostly waiting on the archive: let it run meanwhile, and
    // make the root Debian 13's lintian runs in as well.
    let include = dependencies(&deb.path)?;
    let rootfs = Background::spawn("the rootfs", move || {
        let include: Vec<&str> = include.iter().map(String::as_str).collect();
        Rootfs::cached(Suite::Bookworm, &include)
    });
    let suite_lintian = Lintian::trixie_meanwhile();

    check("dpkg-deb", || dpkg_deb(&deb, &stack, &release, work.path()))?;
    let host_lintian = Lintian::host()?;
    check("lintian (host)", || lintian(&host_lintian, &deb, &stack))?;
    let rootfs = check("rootfs", || {
        let r = rootfs.wait()?;
        let detail = r.describe();
        Ok((r, detail))
    })?;
    check("install in a chroot", || {
        install(&rootfs, &deb, &stack, &release)
    })?;
    check("debsig-verify", || {
        debsig(&deb, &stack, &release, work.path())
    })?;
    let suite_lintian = Lintian::ready(suite_lintian)?;
    check("lintian (trixie)", || lintian(&suite_lintian, &deb, &stack))?;

    // Every architecture, from Debian 13's or unstable's programs. Debian 13's lintian
    // judges them: what tells architectures apart is in their programs and control fields,
    // which it checks as Debian 12's does and more; the host's lintian has judged the
    // package's layout, scripts and overrides above, which are the same on every one.
    arches::judge_all(every_arch, &suite_lintian, work.path())?;
    println!(
        "system tests passed in {:.0}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A signed build of the same package passes `debsig-verify` with the policy and keyring
/// `debsig-policy` writes; a tampered copy fails with 13 (bad signature), the unsigned build
/// with 10 (no signature).
fn debsig(
    unsigned: &BuiltDeb,
    stack: &Stack,
    release: &RealRelease,
    work: &Path,
) -> Result<((), String)> {
    use containerd_stack::sign::{debsig_files, public_key_of};
    let dir = work.join("debsig");
    std::fs::create_dir_all(&dir)?;
    let (key, signer) =
        testkit::openpgp::signer("containerd-stack test <test@example.org>", 1_700_000_000);
    let mirror = Mirror::serve(&release.mirror_root);
    let opts = BuildOptions {
        signer: Some(std::sync::Arc::new(signer)),
        ..release.build_options(
            &mirror.url(),
            dir.join("out"),
            work.join("cache"),
            Compression::Gzip,
            6,
        )
    };
    let signed = containerd_stack::build(stack, &opts, &Printer)?.remove(0);
    let (public, _) = public_key_of(key.public_armored.as_bytes(), &dir.join("key.asc"))?;
    let root = dir.join("root");
    for (rel, bytes) in debsig_files(&public, "containerd-stack")? {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("nested"))?;
        std::fs::write(p, bytes)?;
    }
    let verify = |deb: &Path| -> Result<i32> {
        let out = Command::new("debsig-verify")
            .arg("--policies-dir")
            .arg(root.join("etc/debsig/policies"))
            .arg("--keyrings-dir")
            .arg(root.join("usr/share/debsig/keyrings"))
            .arg(deb)
            .output()
            .context("cannot run debsig-verify")?;
        Ok(out.status.code().unwrap_or(-1))
    };
    let good = verify(&signed.path)?;
    ensure!(
        good == 0,
        "debsig-verify rejected the signed package (exit {good})"
    );
    // Flip one byte inside the data member: the signature must no longer match.
    let mut bytes = std::fs::read(&signed.path)?;
    let at = bytes.len() - 4096;
    bytes[at] ^= 0x55;
    let tampered = dir.join("tampered.deb");
    std::fs::write(&tampered, bytes)?;
    let bad = verify(&tampered)?;
    ensure!(
        bad == 13,
        "debsig-verify on a tampered package: exit {bad}, expected 13"
    );
    let none = verify(&unsigned.path)?;
    ensure!(
        none == 10,
        "debsig-verify on an unsigned package: exit {none}, expected 10"
    );
    Ok((
        (),
        "signed: exit 0; tampered: exit 13; unsigned: exit 10".into(),
    ))
}

/// The `Depends` field of `deb`, as written.
fn dependencies_field(deb: &Path) -> Result<String> {
    let out = stdout(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(deb)
            .arg("Depends"),
    )?;
    Ok(out.trim().to_owned())
}

/// The packages a `Depends` or `Pre-Depends` of `deb` names, the first of each set of
/// alternatives, without versions or architecture qualifiers.
pub(crate) fn dependencies(deb: &Path) -> Result<Vec<String>> {
    let fields = stdout(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(deb)
            .args(["Pre-Depends", "Depends"]),
    )?;
    Ok(parse_dependencies(&fields))
}

fn parse_dependencies(fields: &str) -> Vec<String> {
    let mut out: Vec<String> = fields
        .lines()
        // A continuation line (leading blank) goes on with the field before it.
        .map(|l| match l.starts_with([' ', '\t']) {
            true => l,
            false => l.split_once(':').map_or("", |(_, v)| v),
        })
        .flat_map(|v| v.split(','))
        .filter_map(|clause| {
            let first = clause.split('|').next()?;
            let name = first.split(['(', '[', '<']).next()?.trim();
            let name = name.split(':').next()?.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Builds the package through the library, fetching every asset from the loopback mirror
/// into an empty cache (every one must come over HTTP, under upstream's path); returns it
/// and a line about it.
pub fn build(
    stack: &Stack,
    release: &RealRelease,
    compression: Compression,
    work: &Path,
) -> Result<(BuiltDeb, String)> {
    build_at(
        stack,
        release,
        compression,
        compression.default_level(),
        work,
    )
}

/// [`build`] at compression level `level`.
fn build_at(
    stack: &Stack,
    release: &RealRelease,
    compression: Compression,
    level: u32,
    work: &Path,
) -> Result<(BuiltDeb, String)> {
    let mirror = Mirror::serve(&release.mirror_root);
    let cache = tempfile::Builder::new()
        .prefix("cache-")
        .tempdir_in(work)
        .with_context(|| format!("cannot create a cache directory in {}", work.display()))?;
    let opts = release.build_options(
        &mirror.url(),
        work.join("out"),
        cache.path().to_owned(),
        compression,
        level,
    );
    let deb = realbin::build_one(stack, &opts)?;

    // An empty cache: every asset must have come over HTTP, under upstream's path.
    let requested: BTreeSet<String> = mirror.requests().into_iter().collect();
    for c in &stack.components {
        let a = Artifact::for_component(c, release.arch)
            .context("stack.toml pins every prepared asset")?;
        let path = format!("/{}", a.path);
        ensure!(
            requested.contains(&path),
            "the build never requested {path} from the mirror"
        );
    }
    let detail = format!(
        "{}, {} bytes, {compression:?} level {level}, {} assets over HTTP",
        deb.path.display(),
        deb.size,
        stack.components.len()
    );
    Ok((deb, detail))
}

fn shipped_programs(stack: &Stack, release: &RealRelease) -> Vec<(String, String)> {
    let cni = stack.settings.cni_bin_dir.trim_start_matches('/');
    let mut out = Vec::new();
    for c in &release.components {
        for (name, sha) in &c.programs {
            let path = match c.kind {
                ComponentKind::Containerd | ComponentKind::Crictl => format!("usr/bin/{name}"),
                ComponentKind::Runc => "usr/sbin/runc".to_owned(),
                ComponentKind::CniPlugins => format!("{cni}/{name}"),
            };
            out.push((path, sha.clone()));
        }
    }
    out
}

/// dpkg-deb can read the control part, list the data part and unpack it; the programs come
/// out unmodified.
fn dpkg_deb(
    deb: &BuiltDeb,
    stack: &Stack,
    release: &RealRelease,
    work: &Path,
) -> Result<((), String)> {
    let info = stdout(Command::new("dpkg-deb").arg("--info").arg(&deb.path))?;
    print_indented(&info);
    for line in [
        format!("Package: {}", stack.package.name),
        format!("Version: {}", stack.deb_version()),
        format!("Architecture: {}", release.arch),
    ] {
        ensure!(
            info.lines().any(|l| l.trim() == line),
            "dpkg-deb --info: expected the line {line:?} in the control file"
        );
    }

    let contents = stdout(Command::new("dpkg-deb").arg("--contents").arg(&deb.path))?;
    let listed: BTreeSet<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches("./").trim_end_matches('/'))
        .collect();
    let programs = shipped_programs(stack, release);
    let doc = format!("usr/share/doc/{}", stack.package.name);
    let mut expected: Vec<String> = programs.iter().map(|(p, _)| p.clone()).collect();
    expected.extend([
        "usr/lib/systemd/system/containerd.service".to_owned(),
        format!("{doc}/copyright"),
        format!("{doc}/changelog.Debian.gz"),
        format!("{doc}/sbom.spdx.json"),
    ]);
    for path in &expected {
        ensure!(
            listed.contains(path.as_str()),
            "dpkg-deb --contents: /{path} is missing"
        );
    }
    // Debian's base system creates /opt but no package owns it: a package shipping it
    // becomes its only owner, and purging the package removes it (piuparts fails then).
    ensure!(
        !listed.contains("opt"),
        "dpkg-deb --contents: the package ships /opt itself; it must leave /opt unowned"
    );

    let tree = work.join("extracted");
    process::run(Command::new("dpkg-deb").arg("-x").arg(&deb.path).arg(&tree))?;
    for (path, sha) in &programs {
        let got = sha256_file(&tree.join(path))?;
        ensure!(
            got.as_str() == sha,
            "dpkg-deb -x: /{path} has sha256 {got}, expected {sha} (the upstream program, unmodified)"
        );
    }
    Ok((
        (),
        format!(
            "--info has {} {}, --contents lists {} entries, -x gives {} programs byte-identical to the assets",
            stack.package.name,
            stack.deb_version(),
            listed.len(),
            programs.len()
        ),
    ))
}

/// The lintian of `lintian` judges `deb`; its whole report is shown.
fn lintian(lintian: &Lintian, deb: &BuiltDeb, stack: &Stack) -> Result<((), String)> {
    let judged = lintian.judge(&deb.path, &stack.package.name)?;
    print_indented(&judged.report);
    Ok(((), judged.summary))
}

/// Installs the package with dpkg into a fresh minimal Debian 12 and runs its programs.
fn install(
    rootfs: &Rootfs,
    deb: &BuiltDeb,
    stack: &Stack,
    release: &RealRelease,
) -> Result<((), String)> {
    // Dropped on every return: /proc is unmounted, then the tree deleted.
    let mut chroot: Chroot = rootfs.extract()?;
    chroot.mount_proc()?;
    chroot.copy_in(&deb.path, DEB_IN_CHROOT)?;
    let out = chroot.run(&["dpkg", "-i", DEB_IN_CHROOT])?;
    let installed = text(&out);
    print_indented(&installed);
    // A chroot does not let the postinst load modules or set the host's kernel settings: one
    // line says so, and the installation goes on.
    let warned =
        process::one_kernel_warning(&installed, "in a chroot").context("dpkg -i in the chroot")?;
    let status = String::from_utf8_lossy(
        &chroot
            .run(&[
                "dpkg-query",
                "-W",
                "-f=${Status} ${Version}",
                &stack.package.name,
            ])?
            .stdout,
    )
    .into_owned();
    let want = format!("install ok installed {}", stack.deb_version());
    ensure!(
        status == want,
        "dpkg-query: expected {want:?}, found {status:?}"
    );

    let containerd = release.component(ComponentKind::Containerd);
    let runc = release.component(ComponentKind::Runc);
    let cni = release.component(ComponentKind::CniPlugins);
    let cni_dir = &stack.settings.cni_bin_dir;
    let runs: [(&[&str], String); 4] = [
        (
            &["containerd", "--version"],
            format!(
                "containerd github.com/containerd/containerd {}",
                containerd.version
            ),
        ),
        (
            &["runc", "--version"],
            format!("runc version {}", runc.version),
        ),
        (&["ctr", "--help"], "containerd CLI".to_owned()),
        (
            &[
                "env",
                "CNI_COMMAND=VERSION",
                &format!("{cni_dir}/host-local"),
            ],
            "\"supportedVersions\"".to_owned(),
        ),
    ];
    for (args, expected) in &runs {
        let out = chroot.run(args)?;
        let said = text(&out);
        let line = said.lines().find(|l| l.contains(expected.as_str()));
        println!("     $ {}", args.join(" "));
        print_indented(line.unwrap_or(&said));
        ensure!(
            line.is_some(),
            "`{}` in the chroot: expected {expected:?} in its output, found {:?}",
            args.join(" "),
            first_lines(&said, 3)
        );
    }
    Ok((
        (),
        format!(
            "dpkg -i installs {} {}, saying {warned:?}; containerd {}, runc {}, ctr and CNI plugins {} run",
            stack.package.name,
            stack.deb_version(),
            containerd.debian_version,
            runc.debian_version,
            cni.debian_version
        ),
    ))
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("     {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_the_first_alternatives_without_versions() {
        let fields = "Pre-Depends: init-system-helpers (>= 1.54~)\n\
                      Depends: libc6 (>= 2.34), libseccomp2,\n debconf (>= 0.5) | debconf-2.0, mawk:any | awk\n";
        assert_eq!(
            parse_dependencies(fields),
            [
                "debconf",
                "init-system-helpers",
                "libc6",
                "libseccomp2",
                "mawk"
            ]
        );
        assert!(parse_dependencies("").is_empty());
    }
}

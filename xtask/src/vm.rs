//! `cargo xtask vm`: the package on a Kubernetes node, in a real virtual machine. Two sets
//! of real binaries — Debian 12's containerd 1.6 (config schema 2) and Debian unstable's
//! 2.1 (schema 3), each with its runc and CNI plugins, repacked by `realbin` — are built
//! into packages through the library, revision 1 and revision 2 each. Debian 13 then boots
//! under qemu with its own kernel, systemd as PID 1, cgroup v2 with every controller and no
//! network device, and the node scenario (`vm/scenario.sh`) installs each set and makes the
//! kubelet's CRI calls over containerd's socket with a gRPC client generated from the CRI's
//! own api.proto (`vm/cri.py`): a pod with the systemd cgroup driver and a bridge IP, a
//! container in it, kept running across the upgrade to revision 2. Nothing is imported:
//! debconf is preseeded with mirrors of docker.io and registry.k8s.io on a registry inside
//! the guest, and the sandbox image (its upstream name) and the container's image are
//! pulled through them. The kernel prerequisites are applied, or with debconf's answer
//! false not applied, now and at the next boot; an edited hosts file survives the upgrade.
//! Then the major upgrade from 1.6 with an edited config to 2.1, and three breakages, each
//! held to failing exactly the checks it must: no sandbox image and no mirror of its
//! registry, no CNI config, the cgroupfs driver.
//! Everything is judged here after poweroff from what the guest recorded (`vm/judge.rs`).
//! Needs root and Debian's archive, nothing else from the network; KVM when it works,
//! software emulation otherwise.

mod checks;
mod disk;
mod judge;
mod kernel;
mod mirrors;
mod qemu;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use containerd_stack::deb::compress::Compression;
use containerd_stack::{BuiltDeb, DebArch, Stack};
use testkit::Mirror;

use crate::archive::Archive;
use crate::oci;
use crate::process::{self, check, require_tool};
use crate::realbin::{self, RealRelease, Source};
use crate::repo_root;
use crate::rootfs::{Rootfs, Suite};

use self::checks::{judge_set, judge_start, Judged};
use self::judge::{Expect, Records};
use self::qemu::{Accel, Boot, Ended};

/// Every program the stage runs on the host, with the Debian package that has it.
const TOOLS: &[(&str, &str)] = &[
    (qemu::QEMU, "qemu-system-x86"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("mmdebstrap", "mmdebstrap"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("tar", "tar"),
    ("chroot", "coreutils"),
    ("umoci", "umoci"),
    ("busybox", "busybox-static"),
    ("shellcheck", "shellcheck"),
    ("python3", "python3"),
];

/// The guest's packages besides minbase and the package's dependencies: Debian's kernel
/// and what boots it from an initrd, systemd as init and its bus, iptables for the CNI
/// bridge's masquerading, the CRI client's gRPC, protobuf and the compilers its stubs are
/// generated with, the registry the mirrors point at and skopeo to fill it, and sysctl.
const GUEST_PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "initramfs-tools",
    "udev",
    "kmod",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iptables",
    "python3-grpcio",
    "python3-protobuf",
    "python3-grpc-tools",
    "protobuf-compiler",
    "docker-registry",
    "skopeo",
    "procps",
];

/// The CRI's protobuf definitions, from Debian's Go package of the CRI API, pinned like
/// the real binaries.
const CRI_API: (Suite, &str, &str) = (Suite::Sid, "golang-k8s-cri-api-dev", "0.36.4-1");
const CRI_API_PROTO: &str = "usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto";

const SCENARIO: &str = include_str!("vm/scenario.sh");
const CRI_CLIENT: &str = include_str!("vm/cri.py");

/// The container the pod runs (a busybox made here), under Docker Hub's name for busybox
/// with a tag of its own: the guest's registry is the only place that has it.
const IMAGE: &str = "docker.io/library/busybox:containerd-stack-vm";

/// debconf's registry_mirrors answer before the first installation: docker.io and
/// registry.k8s.io mirrored by the guest's registry, and quay.io by a mirror that the
/// answer before the upgrades drops.
fn mirrors_install() -> String {
    let guest = format!("http://{}", disk::REGISTRY);
    format!("docker.io={guest} registry.k8s.io={guest} quay.io=https://quay-mirror.example.invalid")
}

/// The answer before the upgrades: quay.io dropped, a second mirror after the guest's
/// registry for each (never asked: the first one answers).
fn mirrors_upgrade() -> String {
    let guest = format!("http://{}", disk::REGISTRY);
    format!(
        "docker.io={guest},https://docker-mirror.example.invalid registry.k8s.io={guest},https://k8s-mirror.example.invalid"
    )
}

/// The registry whose generated hosts file the administrator edits before the upgrade,
/// and the line added.
const HOSTS_EDITED: &str = "docker.io";
const HOSTS_EDIT_LINE: &str = "# edited by the administrator: kept on upgrade";
/// A registry the administrator writes a hosts file for by hand, which purge must keep.
const ADMIN_HOST: &str = "registry.example.internal";
/// The administrator's edit before the major upgrade: a comment, and a value changed.
const EDIT_LINE: &str =
    "# edited by the administrator (cargo xtask vm): this file must survive the major upgrade";
const LOG_LINE_SIZE: i64 = 32768;

/// The kernel's command line: the root disk, the serial console the host reads, and a
/// reboot (so an exit of qemu, under -no-reboot) a second after a panic.
const KERNEL_APPEND: &str = "root=/dev/vda rw console=ttyS0 panic=1 quiet";
/// The console line the scenario's first act prints.
const STARTED: &str = "scenario started";
/// Generous limits for a slow machine: they stop a hung guest, nothing more.
const START_WITHIN: Duration = Duration::from_secs(300);
const BOOT_TIMEOUT: Duration = Duration::from_secs(1800);

#[derive(Parser)]
pub struct Args {
    /// How the guest's CPUs run: auto (KVM where it really works, else software
    /// emulation), kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: String,
    /// Keep the run's records and console log in target/vm/last-run even when it passes (a
    /// failed run's are always kept, in target/vm/last-failure).
    #[arg(long)]
    keep: bool,
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let accel = match args.accel.as_str() {
        "auto" => None,
        "kvm" => Some(Accel::Kvm),
        "tcg" => Some(Accel::Tcg),
        other => bail!("--accel {other}: expected auto, kvm or tcg"),
    };
    for (tool, package) in TOOLS {
        require_tool(tool, package)?;
    }
    let arch =
        DebArch::host().context("this machine's architecture is not one the stack supports")?;
    ensure!(
        arch == DebArch::Amd64,
        "the VM stage boots an amd64 guest with {}; this machine is {arch}",
        qemu::QEMU
    );
    let base = repo_root().join("target/vm");
    fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let work = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a temporary directory in {}", base.display()))?;
    let result = stage(arch, accel, work.path());
    let run_dir = work.path().display().to_string();
    match &result {
        Err(e) => {
            let kept = keep(work, &base.join("last-failure"));
            // The message's paths into the run's directory, where it is now.
            bail!(
                "{}",
                format!("{e:#}").replace(&run_dir, &kept.display().to_string())
            );
        }
        Ok(()) if args.keep => {
            keep(work, &base.join("last-run"));
        }
        Ok(()) => {}
    }
    println!("vm stage passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// One set of real binaries, packaged twice.
struct Set {
    /// The suite's name, which the scenario's records use as a prefix.
    name: &'static str,
    release: RealRelease,
    stack1: Stack,
    stack2: Stack,
    deb1: BuiltDeb,
    deb2: BuiltDeb,
}

impl Set {
    fn containerd(&self) -> &str {
        &self
            .release
            .component(containerd_stack::stack::ComponentKind::Containerd)
            .version
    }

    fn label(&self) -> String {
        format!("containerd {} ({})", self.containerd(), self.release.suite)
    }

    fn expect<'a>(&'a self, images: &'a Images) -> Expect<'a> {
        Expect {
            sandbox_image: &self.stack1.settings.sandbox_image,
            sandbox_id: &images.sandbox_id,
            image: IMAGE,
            image_id: &images.image_id,
            containerd: self.containerd(),
        }
    }
}

/// The ids (config digests) of the images made for the guests: what containerd must
/// report for the images it pulled.
struct Images {
    sandbox_id: String,
    image_id: String,
}

fn stage(arch: DebArch, accel: Option<Accel>, work: &Path) -> Result<()> {
    check_scripts(work)?;
    let sets = package_sets(arch, work)?;
    let sandbox_image = sets[0].stack1.settings.sandbox_image.clone();
    ensure!(
        sets.iter()
            .all(|s| s.stack1.settings.sandbox_image == sandbox_image),
        "the sets' stacks configure different sandbox images: one pause stand-in cannot serve both"
    );
    let proto = cri_proto(arch, work)?;
    let image = guest_root(&sets, &proto)?;
    let images = container_images(arch, &sandbox_image, work)?;

    let by_name = |name: &str| {
        sets.iter()
            .find(|s| s.name == name)
            .expect("a set of that name")
    };
    let (bookworm, sid) = (by_name("bookworm"), by_name("sid"));
    // The work is split over two guests booted side by side: it is mostly one process at
    // a time (apt, dpkg, the maintainer scripts), so two guests use the machine's two
    // cores where one would use one. The breakages are made on 2.x, the line the package
    // ships. Guest a answers no to the kernel prerequisites from the start (nothing may be
    // loaded or set, through the upgrade too), then yes at the major upgrade; guest b
    // answers yes, then no at its upgrade, so that its purge finds the links.
    let guests = [
        Guest {
            name: "a",
            cycles: vec![bookworm],
            break_set: None,
            major: Some((bookworm, sid)),
            kernel: KernelAnswers {
                install: false,
                upgrade: false,
                major: true,
            },
        },
        Guest {
            name: "b",
            cycles: vec![sid],
            break_set: Some(sid),
            major: None,
            kernel: KernelAnswers {
                install: true,
                upgrade: false,
                major: false,
            },
        },
    ];
    for guest in &guests {
        guest.write_job(work, &sandbox_image)?;
    }

    let accel = check("accelerator", || {
        Ok(match accel {
            Some(a) => (a, format!("{a}, as asked")),
            None => match qemu::kvm_works(&image.kernel) {
                (true, why) => (Accel::Kvm, format!("KVM: {why}")),
                (false, why) => (
                    Accel::Tcg,
                    format!("software emulation: KVM does not work here ({why})"),
                ),
            },
        })
    })?;
    let records = boot_guests(&guests, &image, work, accel)?;
    for (guest, r) in guests.iter().zip(&records) {
        judge_start(r, guest)?;
        for set in &guest.cycles {
            let breakages = guest.break_set.is_some_and(|b| b.name == set.name);
            let major_to = guest
                .major
                .filter(|(from, _)| from.name == set.name)
                .map(|(_, to)| to);
            let judged = Judged {
                r,
                set,
                images: &images,
                kernel: guest.kernel,
            };
            judge_set(&judged, breakages, major_to)?;
        }
    }
    Ok(())
}

/// The guest's scripts are checked before anything boots.
fn check_scripts(work: &Path) -> Result<()> {
    check("scripts", || {
        let dir = work.join("scripts");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let script = dir.join("scenario.sh");
        fs::write(&script, SCENARIO)
            .with_context(|| format!("cannot write {}", script.display()))?;
        process::run(Command::new("shellcheck").arg("--shell=sh").arg(&script))
            .context("xtask/src/vm/scenario.sh is not shellcheck-clean")?;
        let client = dir.join("cri.py");
        fs::write(&client, CRI_CLIENT)
            .with_context(|| format!("cannot write {}", client.display()))?;
        // Parsed, not run: a syntax error shows here, not after booting.
        process::run(
            Command::new("python3")
                .args([
                    "-c",
                    "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])",
                ])
                .arg(&client),
        )
        .context("xtask/src/vm/cri.py does not parse")?;
        Ok((
            (),
            "scenario.sh is shellcheck-clean, cri.py parses".to_owned(),
        ))
    })
}

/// Each set of real binaries, packaged as revision 1 and revision 2 into `work/debs`.
fn package_sets(arch: DebArch, work: &Path) -> Result<Vec<Set>> {
    let debs = work.join("debs");
    let mut sets = Vec::new();
    for (name, source) in [
        ("bookworm", Source::bookworm(arch)),
        ("sid", Source::sid(arch)),
    ] {
        let release = check(
            &format!("real binaries from Debian {}", source.suite),
            || {
                let r = realbin::prepare(source)?;
                let detail = r
                    .components
                    .iter()
                    .map(|c| format!("{} {}", c.package, c.debian_version))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok((r, detail))
            },
        )?;
        let stack1 =
            Stack::load(&release.stack).with_context(|| format!("{}", release.stack.display()))?;
        let mut stack2 = stack1.clone();
        stack2.package.revision = "2".to_owned();
        let deb1 = check(&format!("build-deb {} revision 1", release.suite), || {
            build(&stack1, &release, &debs, work)
        })?;
        let deb2 = check(&format!("build-deb {} revision 2", release.suite), || {
            build(&stack2, &release, &debs, work)
        })?;
        sets.push(Set {
            name,
            release,
            stack1,
            stack2,
            deb1,
            deb2,
        });
    }
    Ok(sets)
}

/// The CRI's api.proto, from its pinned Debian package.
fn cri_proto(arch: DebArch, work: &Path) -> Result<String> {
    check("the CRI's api.proto", || {
        let (suite, package, version) = CRI_API;
        let mut archive = Archive::open(suite, arch);
        let deb = archive
            .download(
                package,
                version,
                &repo_root()
                    .join("target/realbin")
                    .join(suite.codename())
                    .join("all"),
            )
            .context("the CRI's protobuf definitions (CRI_API in xtask/src/vm.rs)")?;
        let tree = work.join("cri-api");
        process::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
        let path = tree.join(CRI_API_PROTO);
        let proto = fs::read_to_string(&path)
            .with_context(|| format!("{} has no /{CRI_API_PROTO}", deb.display()))?;
        ensure!(
            proto.contains("service RuntimeService") && proto.contains("package runtime.v1;"),
            "{}: not the CRI's runtime.v1 API",
            path.display()
        );
        Ok((proto, format!("/{CRI_API_PROTO} from {package} {version}")))
    })
}

/// The guest's root disk: a Debian 13 root with the guest's packages and those the
/// sets' packages depend on (the guest has no network to fetch them), and the CRI stubs.
fn guest_root(sets: &[Set], proto: &str) -> Result<disk::RootImage> {
    let rootfs = check("Debian 13 root", || {
        let mut include: Vec<String> = GUEST_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        for set in sets {
            include.extend(crate::system::dependencies(&set.deb1.path)?);
        }
        let include: Vec<&str> = include.iter().map(String::as_str).collect();
        let r = Rootfs::cached(Suite::Trixie, &include)?;
        let detail = match r.made_in {
            Some(t) => format!(
                "{} (made now by mmdebstrap in {:.0}s)",
                r.tarball.display(),
                t.as_secs_f64()
            ),
            None => format!("{} (cached)", r.tarball.display()),
        };
        Ok((r, detail))
    })?;
    check("root disk", || {
        let image = disk::root_image(&rootfs, proto)?;
        let detail = format!(
            "{}, kernel {} ({})",
            image.disk.display(),
            image.kernel.display(),
            match image.made_in {
                Some(t) => format!("made now in {:.0}s", t.as_secs_f64()),
                None => "cached".to_owned(),
            }
        );
        Ok((image, detail))
    })
}

/// The sandbox image's stand-in and the busybox image, as OCI archives in `work/images`.
fn container_images(arch: DebArch, sandbox_image: &str, work: &Path) -> Result<Images> {
    let images = work.join("images");
    fs::create_dir_all(&images).with_context(|| format!("cannot create {}", images.display()))?;
    check("container images", || {
        let (_, sandbox_tag) = oci::split_reference(sandbox_image)?;
        let (_, image_tag) = oci::split_reference(IMAGE)?;
        let pause = oci::make(
            &oci::Image {
                tag: sandbox_tag,
                applets: &["sleep"],
                entrypoint: &["/bin/sleep", "2147483647"],
                cmd: &[],
            },
            arch,
            work,
            &images.join("sandbox.tar"),
        )?;
        let busybox = oci::make(
            &oci::Image {
                tag: image_tag,
                applets: &["sh", "ping", "sleep"],
                entrypoint: &["/bin/sh"],
                cmd: &[],
            },
            arch,
            work,
            &images.join("image.tar"),
        )?;
        let detail = format!(
            "{sandbox_image}: {}; {IMAGE}: {}",
            pause.detail, busybox.detail
        );
        Ok((
            Images {
                sandbox_id: pause.id,
                image_id: busybox.id,
            },
            detail,
        ))
    })
}

/// Boots the guests side by side and returns their records, in their order.
fn boot_guests(
    guests: &[Guest],
    image: &disk::RootImage,
    work: &Path,
    accel: Accel,
) -> Result<Vec<Records>> {
    check(
        "boot Debian 13 twice, side by side, and run the node scenario",
        || {
            let booted: Vec<Result<(Records, String)>> = std::thread::scope(|scope| {
                let running: Vec<_> = guests
                    .iter()
                    .map(|g| {
                        scope.spawn(|| boot_scenario(g.name, image, &g.job(work), work, accel))
                    })
                    .collect();
                running
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| bail!("a boot thread panicked")))
                    .collect()
            });
            let mut records = Vec::new();
            let mut details = Vec::new();
            for (guest, result) in guests.iter().zip(booted) {
                let (r, detail) = result.with_context(|| format!("guest {}", guest.name))?;
                records.push(r);
                details.push(format!("guest {}: {detail}", guest.name));
            }
            Ok((records, details.join("; ")))
        },
    )
}

/// One guest's share of the scenario.
struct Guest<'a> {
    name: &'static str,
    /// The sets installed, used over the CRI, upgraded and purged, in order.
    cycles: Vec<&'a Set>,
    /// The set (one of `cycles`) the breakages are made on.
    break_set: Option<&'a Set>,
    /// The major upgrade at the end of the first set's cycle (its revision 2 installed,
    /// its config edited) to the second set's revision 1.
    major: Option<(&'a Set, &'a Set)>,
    kernel: KernelAnswers,
}

/// debconf's kernel_prerequisites answer before the installation, before the upgrade to
/// revision 2 and before the major upgrade.
#[derive(Clone, Copy)]
struct KernelAnswers {
    install: bool,
    upgrade: bool,
    major: bool,
}

impl Guest<'_> {
    /// The directory the guest's job disk is made from.
    fn job(&self, work: &Path) -> std::path::PathBuf {
        work.join(format!("job-{}", self.name))
    }

    /// Fills the job directory: the scenario, the CRI client, the variables, the packages
    /// and images it uses (hard links to the run's), and an empty out/.
    fn write_job(&self, work: &Path, sandbox_image: &str) -> Result<()> {
        let job = self.job(work);
        // Each package the guest installs, with the name the scenario knows it by.
        let mut debs: Vec<(String, &BuiltDeb)> = Vec::new();
        for set in &self.cycles {
            debs.push((format!("DEB_{}_1", set.name), &set.deb1));
            debs.push((format!("DEB_{}_2", set.name), &set.deb2));
        }
        if let Some((_, to)) = self.major {
            debs.push((format!("DEB_{}_1", to.name), &to.deb1));
        }
        debs.sort_by(|a, b| a.0.cmp(&b.0));
        debs.dedup_by(|a, b| a.0 == b.0);
        let mut env = vec![
            (
                "PACKAGE".to_owned(),
                self.cycles[0].stack1.package.name.clone(),
            ),
            (
                "CYCLES".to_owned(),
                self.cycles
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            (
                "BREAK_SET".to_owned(),
                self.break_set.map_or("", |s| s.name).to_owned(),
            ),
            (
                "MAJOR_FROM".to_owned(),
                self.major.map_or("", |(f, _)| f.name).to_owned(),
            ),
            (
                "MAJOR_TO".to_owned(),
                self.major.map_or("", |(_, t)| t.name).to_owned(),
            ),
            ("SANDBOX_IMAGE".to_owned(), sandbox_image.to_owned()),
            ("IMAGE".to_owned(), IMAGE.to_owned()),
            ("REGISTRY".to_owned(), disk::REGISTRY.to_owned()),
            (
                "SANDBOX_PUSH".to_owned(),
                mirrors::repository(sandbox_image, disk::REGISTRY)?.1,
            ),
            (
                "IMAGE_PUSH".to_owned(),
                mirrors::repository(IMAGE, disk::REGISTRY)?.1,
            ),
            ("MIRRORS_INSTALL".to_owned(), mirrors_install()),
            ("MIRRORS_UPGRADE".to_owned(), mirrors_upgrade()),
            ("KERNEL_INSTALL".to_owned(), self.kernel.install.to_string()),
            ("KERNEL_UPGRADE".to_owned(), self.kernel.upgrade.to_string()),
            ("KERNEL_MAJOR".to_owned(), self.kernel.major.to_string()),
            ("HOSTS_EDITED".to_owned(), HOSTS_EDITED.to_owned()),
            ("HOSTS_EDIT_LINE".to_owned(), HOSTS_EDIT_LINE.to_owned()),
            ("ADMIN_HOST".to_owned(), ADMIN_HOST.to_owned()),
            ("EDIT_LINE".to_owned(), EDIT_LINE.to_owned()),
            ("LOG_LINE_SIZE".to_owned(), LOG_LINE_SIZE.to_string()),
        ];
        let sets = self
            .cycles
            .iter()
            .copied()
            .chain(self.major.into_iter().flat_map(|(f, t)| [f, t]));
        for set in sets {
            env.push((format!("DEB_{}_1", set.name), file_name(&set.deb1.path)));
            env.push((format!("DEB_{}_2", set.name), file_name(&set.deb2.path)));
        }
        let env: String = env
            .iter()
            .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
            .collect();
        for dir in ["debs", "images", "out"] {
            let d = job.join(dir);
            fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        for (name, text) in [
            ("scenario.sh", SCENARIO),
            ("cri.py", CRI_CLIENT),
            ("env", env.as_str()),
        ] {
            fs::write(job.join(name), text)
                .with_context(|| format!("cannot write {name} in {}", job.display()))?;
        }
        let link = |from: &Path, to: std::path::PathBuf| {
            if to.exists() {
                return Ok(());
            }
            fs::hard_link(from, &to)
                .with_context(|| format!("cannot link {} to {}", from.display(), to.display()))
        };
        for (_, deb) in debs {
            link(&deb.path, job.join("debs").join(file_name(&deb.path)))?;
        }
        for image in ["sandbox.tar", "image.tar"] {
            link(
                &work.join("images").join(image),
                job.join("images").join(image),
            )?;
        }
        Ok(())
    }
}

/// Builds one package through the library from the set's loopback mirror.
fn build(
    stack: &Stack,
    release: &RealRelease,
    out: &Path,
    work: &Path,
) -> Result<(BuiltDeb, String)> {
    let mirror = Mirror::serve(&release.mirror_root);
    // zstd at a low level: quick to make, and the quickest for dpkg to unpack under
    // software emulation; Debian 13's dpkg reads it.
    let opts = release.build_options(
        &mirror.url(),
        out.to_owned(),
        work.join("cache"),
        Compression::Zstd,
        3,
    );
    let deb = realbin::build_one(stack, &opts)?;
    let detail = format!("{}, {} bytes", deb.path.display(), deb.size);
    Ok((deb, detail))
}

/// Boots the guest with the job disk made from `job`; a guest that stops before the
/// scenario starts (a rare early panic under software emulation) is booted once more.
/// Returns the guest's records.
fn boot_scenario(
    name: &str,
    image: &disk::RootImage,
    job: &Path,
    work: &Path,
    accel: Accel,
) -> Result<(Records, String)> {
    let job_img = work.join(format!("job-{name}.img"));
    let records_dir = work.join(format!("records-{name}"));
    for attempt in 1..=2 {
        disk::job_disk(job, &job_img)?;
        let console = work.join(format!("console-{name}-{attempt}.log"));
        let boot = Boot {
            name,
            accel,
            cpus: 2,
            memory_mib: 2048,
            kernel: &image.kernel,
            initrd: &image.initrd,
            append: KERNEL_APPEND,
            root: &image.disk,
            job: &job_img,
            tmp: work,
            started: STARTED,
            start_within: START_WITHIN,
            timeout: BOOT_TIMEOUT,
        };
        let (ended, took) = qemu::boot(&boot, &console)?;
        let tail = || qemu::console_tail(&console, 6);
        match ended {
            Ended::Exited { started: true } => {
                let dir = disk::read_records(&job_img, &records_dir)?;
                let records = Records { dir };
                if records.read("finished").is_err() {
                    bail!(
                        "the guest powered off before its scenario finished; the scenario said: {}; console ({}): {}",
                        judge::shown(&records.read("scenario.log").unwrap_or_default()),
                        console.display(),
                        tail()
                    );
                }
                return Ok((
                    records,
                    format!(
                        "booted with {accel}, scenario finished and powered off in {:.0}s",
                        took.as_secs_f64(),
                    ),
                ));
            }
            Ended::TimedOut => {
                let _ = disk::read_records(&job_img, &records_dir);
                bail!(
                    "the guest did not finish within {}s; console ({}): {}",
                    BOOT_TIMEOUT.as_secs(),
                    console.display(),
                    tail()
                );
            }
            Ended::Exited { started: false } | Ended::NotStarted if attempt == 1 => {
                println!(
                    "     guest {name} stopped before its scenario started ({}): booting again once",
                    tail()
                );
            }
            Ended::Exited { started: false } | Ended::NotStarted => bail!(
                "the guest stopped twice before its scenario started; console ({}): {}",
                console.display(),
                tail()
            ),
        }
    }
    unreachable!("the second attempt returns or fails")
}

/// Keeps a run's records and logs in `target` (the packages and disks are left out: they
/// can be made again), replacing the previous run's.
fn keep(work: tempfile::TempDir, target: &Path) -> std::path::PathBuf {
    let kept = work.keep();
    for bulky in ["debs", "job-a/debs", "job-b/debs", "job-a.img", "job-b.img"] {
        let p = kept.join(bulky);
        let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
    }
    if target.exists() {
        let _ = fs::remove_dir_all(target);
    }
    let kept = match fs::rename(&kept, target) {
        Ok(()) => target.to_owned(),
        Err(_) => kept,
    };
    println!("     the run's records are kept in {}", kept.display());
    kept
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `value` as one shell word.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}

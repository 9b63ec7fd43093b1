//! `cargo xtask e2e`: the package on real systems, end to end, with Debian 12's own
//! containerd, runc and CNI plugins repacked under upstream's names (see `realbin`). Two
//! revisions are built through the library; then, for each release in [`SUITES`] (Debian
//! 12 and 13), that Debian boots with systemd as PID 1 under systemd-nspawn and installs,
//! upgrades, preseeds, edits and purges them with apt and dpkg the way an administrator
//! would, replacing Debian's own containerd too (`install.sh`), then boots again to install
//! from the signed apt repository the library publishes, served on loopback, and upgrade
//! after a second publish (`repo.sh`); every outcome is judged here from what the guest
//! recorded, and every check names its release. A container runs on the packaged runtime
//! and CNI config in namespaces of its own (`container.sh`, in a Debian 12 root); piuparts
//! installs, upgrades and purges the package on each release; the host's lintian and
//! Debian 13's find no error. At the end nothing may be left on the host: processes,
//! mounts, network namespaces, cgroups, CNI state. Needs root and Debian's archive,
//! nothing else from the network.

mod container;
mod leftovers;
mod nspawn;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::Parser;
use containerd_stack::deb::compress::Compression;
use containerd_stack::listener::{Event, Listener};
use containerd_stack::repo::{self, PublishOptions};
use containerd_stack::stack::ComponentKind;
use containerd_stack::{BuiltDeb, DebArch, Stack};
use testkit::Mirror;

use crate::lintian::Lintian;
use crate::process::{self, check, last_lines, text, Background};
use crate::realbin::{self, RealRelease};
use crate::repo_root;
use crate::rootfs::{Rootfs, Suite};

use self::nspawn::{Boot, Booted, Hook, Network};

/// Every program the e2e runs on the host, with the Debian package that has it.
const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("mmdebstrap", "mmdebstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("unshare", "util-linux"),
    ("chroot", "coreutils"),
    ("tar", "tar"),
    ("gzip", "gzip"),
    ("ip", "iproute2"),
    ("umoci", "umoci"),
    ("busybox", "busybox-static"),
    ("piuparts", "piuparts"),
    ("lintian", "lintian"),
    ("shellcheck", "shellcheck"),
];

/// Packages the booted system has besides minbase and the package's dependencies: systemd
/// as init and its bus; iptables, which the CNI bridge plugin runs for `ipMasq` when the
/// same tree serves the container check.
const GUEST_PACKAGES: &[&str] = &["systemd", "systemd-sysv", "dbus", "iptables"];

/// The Debian releases the scenarios boot and piuparts installs into, in that order.
const SUITES: &[Suite] = &[Suite::Bookworm, Suite::Trixie];

/// The release whose root the container check runs in. It runs on the host's kernel and
/// cgroups, not booted, so one release tells as much as two.
const CONTAINER_SUITE: Suite = Suite::Bookworm;

/// The guest's scenarios, and the script of the container check.
const INSTALL_SCENARIO: &str = include_str!("e2e/install.sh");
const REPO_SCENARIO: &str = include_str!("e2e/repo.sh");
const CONTAINER_SCRIPT: &str = include_str!("e2e/container.sh");

/// What the package makes in /etc/containerd: the generated config, and the registry hosts
/// directory the CRI's config_path points at (empty: the e2e preseeds no mirror).
const GENERATED_IN_ETC: &[&str] = &["certs.d", "config.toml"];

/// Revision 2 also moves the default sandbox image, as a new revision does when
/// Kubernetes moves on: that is what shows an untouched config being regenerated.
const REVISION_2_SANDBOX_IMAGE: &str = "e2e.invalid/pause:revision-2";
/// The answer preseeded with debconf-set-selections before a fresh installation.
const PRESEEDED_IMAGE: &str = "e2e.invalid/pause:preseeded";
/// What the administrator adds to config.toml before the upgrade.
const EDIT_LINE: &str =
    "# edited by the administrator (cargo xtask e2e): this line must survive upgrades";

/// Texts of a dpkg conffile prompt or a ucf prompt: none may appear, whatever the frontend.
const PROMPTS: &[&str] = &[
    "configuration file '",
    "configuration file `",
    "what would you like to do about it",
    "what do you want to do about modified configuration file",
    "install the package maintainer's version",
];

/// Paths piuparts must not count as left behind, with why: what Debian 13's piuparts (1.6)
/// ignores by itself and an older piuparts on the host does not.
const PIUPARTS_IGNORED: &[&str] = &[
    // Debian 13's apt ships apt-extracttemplates, so apt preconfigures every package with
    // debconf templates, and debconf's dpkg-preconfigure leaves its work directory there.
    "/var/cache/debconf/tmp.ci/",
];

/// How long the guest may run its scenario: a stop for a guest that hangs, not a measure.
/// The install scenario takes under a minute on an idle 2-core machine and has taken four
/// on a loaded one.
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Parser)]
pub struct Args {
    /// Compression of the packages' members: gzip or xz (bookworm's lintian cannot read zstd).
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// Keep the run's packages, records and logs in target/e2e/last-run even when it passes
    /// (a failed run's are always kept, in target/e2e/last-failure).
    #[arg(long)]
    keep: bool,
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let (compression, arch) = crate::system::setup(&args.compression, TOOLS)?;
    let prefix = format!("{}{}", leftovers::PREFIX, std::process::id());
    let base = repo_root().join("target/e2e");
    fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let work = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a temporary directory in {}", base.display()))?;

    let watch = leftovers::Watch::start(&prefix)?;
    let result = scenario(arch, compression, &prefix, work.path());
    // Checked whatever the outcome: a failed run must not leave anything behind either.
    let trees = trees();
    let mut paths: Vec<&Path> = trees.iter().map(PathBuf::as_path).collect();
    paths.push(work.path());
    let verified = check("leftovers", || Ok(((), watch.verify(&paths)?)));
    if result.is_err() || verified.is_err() {
        keep_for_inspection(work, &base.join("last-failure"));
    } else if args.keep {
        keep_for_inspection(work, &base.join("last-run"));
    }
    if let (Err(_), Err(leftovers)) = (&result, &verified) {
        // The run's own failure is the error; this one must not go unseen either.
        println!(
            "FAIL leftovers: {}",
            format!("{leftovers:#}").replace('\n', " ")
        );
    }
    result?;
    verified?;
    println!("e2e tests passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

fn scenario(arch: DebArch, compression: Compression, prefix: &str, work: &Path) -> Result<()> {
    check("scripts", || {
        let scripts = [
            ("lib.sh", nspawn::LIB),
            ("install.sh", INSTALL_SCENARIO),
            ("repo.sh", REPO_SCENARIO),
            ("container.sh", CONTAINER_SCRIPT),
        ];
        let dir = work.join("scripts");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text) in scripts {
            let path = dir.join(name);
            fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        }
        for (name, _) in scripts {
            // -x and the directory: the scenarios' `source=lib.sh` is followed.
            process::run(
                Command::new("shellcheck")
                    .args(["--shell=sh", "-x", name])
                    .current_dir(&dir),
            )
            .with_context(|| format!("xtask/src/e2e/{name} is not shellcheck-clean"))?;
        }
        let names: Vec<&str> = scripts.iter().map(|(n, _)| *n).collect();
        Ok(((), format!("{} are shellcheck-clean", names.join(", "))))
    })?;
    let release = check("real-binary mirror", || {
        let r = realbin::prepare(realbin::Source::bookworm(arch))?;
        let detail = format!("{} (stack {})", r.mirror_root.display(), r.stack.display());
        Ok((r, detail))
    })?;
    let stack1 =
        Stack::load(&release.stack).with_context(|| format!("{}", release.stack.display()))?;
    let mut stack2 = stack1.clone();
    stack2.package.revision = "2".to_owned();
    stack2.settings.sandbox_image = REVISION_2_SANDBOX_IMAGE.to_owned();
    let deb1 = check("build-deb revision 1", || {
        crate::system::build(&stack1, &release, compression, work)
    })?;
    let deb2 = check("build-deb revision 2", || {
        crate::system::build(&stack2, &release, compression, work)
    })?;

    // Every root is mostly mmdebstrap waiting on the archive: all are made side by side, and
    // each suite's scenarios start as soon as its own are there.
    let suite_lintian = Lintian::trixie_meanwhile();
    let mut roots: Vec<SuiteRoots> = Vec::new();
    for (suite, made) in make_roots(&deb1)? {
        let made = check(&format!("rootfs ({suite})"), || {
            let made = made.wait()?;
            let detail = format!(
                "{}, piuparts base {}",
                made.boot.describe(),
                made.minbase.display()
            );
            Ok((made, detail))
        })?;
        let booted = check(
            &format!(
                "boot {} ({suite}) and run the install scenario",
                suite.release()
            ),
            || install_scenario(&made.boot, &release, &stack1, &deb1, &deb2, prefix, work),
        )?;
        judge_install_scenario(suite, &booted, &stack1, &stack2, &deb1)?;
        check(
            &format!("apt repository ({suite}): install, then upgrade to a second publish"),
            || repo_scenario(&made.boot, &stack1, &stack2, &deb1, &deb2, prefix, work),
        )?;
        roots.push(made);
    }
    let root_of = |suite: Suite| {
        roots
            .iter()
            .find(|r| r.boot.suite == suite)
            .expect("every suite has its roots")
    };

    let image = work.join("busybox-oci.tar");
    check("OCI image", || {
        Ok(((), container::make_image(arch, work, &image)?))
    })?;
    check(
        "a container runs on the packaged runtime and CNI config",
        || {
            let detail = container::run(
                &container::Run {
                    rootfs: &root_of(CONTAINER_SUITE).boot,
                    deb: &deb1.path,
                    image: &image,
                    package: &stack1.package.name,
                    sandbox_image: &stack1.settings.sandbox_image,
                    cgroup: &format!("/{prefix}-ctr"),
                },
                work,
            )?;
            Ok(((), detail))
        },
    )?;
    for suite in SUITES {
        check(
            &format!("piuparts ({suite}): install and purge, upgrade from the previous revision"),
            || piuparts(*suite, &deb1, &deb2, &root_of(*suite).minbase, work),
        )?;
    }
    let package = &stack2.package.name;
    let host_lintian = Lintian::host()?;
    check("lintian (host)", || {
        Ok(((), host_lintian.judge(&deb2.path, package)?.summary))
    })?;
    let suite_lintian = Lintian::ready(suite_lintian)?;
    check("lintian (trixie)", || {
        Ok(((), suite_lintian.judge(&deb2.path, package)?.summary))
    })?;
    Ok(())
}

/// One suite's roots: the one booted for the scenarios, and piuparts' minbase tarball.
struct SuiteRoots {
    boot: Rootfs,
    minbase: PathBuf,
}

/// Starts making each suite's roots: minbase plus the package's dependencies and
/// [`GUEST_PACKAGES`] to boot, and minbase alone for piuparts.
fn make_roots(deb: &BuiltDeb) -> Result<Vec<(Suite, Background<SuiteRoots>)>> {
    let mut include: Vec<String> = crate::system::dependencies(&deb.path)?;
    include.extend(GUEST_PACKAGES.iter().map(|p| (*p).to_owned()));
    Ok(SUITES
        .iter()
        .map(|suite| {
            let suite = *suite;
            let include = include.clone();
            let made = Background::spawn(&format!("the {suite} roots"), move || {
                let include: Vec<&str> = include.iter().map(String::as_str).collect();
                Ok(SuiteRoots {
                    boot: Rootfs::cached(suite, &include)?,
                    minbase: minbase_tgz(suite)?,
                })
            });
            (suite, made)
        })
        .collect())
}

/// Boots `rootfs` with the install scenario (`install.sh`) and returns what it recorded.
fn install_scenario(
    rootfs: &Rootfs,
    release: &RealRelease,
    stack1: &Stack,
    deb1: &BuiltDeb,
    deb2: &BuiltDeb,
    prefix: &str,
    work: &Path,
) -> Result<(Booted, String)> {
    let package = &stack1.package.name;
    // Debian's own packages the package replaces, for the migration steps.
    let old_debs: Vec<&Path> = [ComponentKind::Runc, ComponentKind::Containerd]
        .into_iter()
        .map(|k| release.component(k).deb.as_path())
        .collect();
    let booted = nspawn::boot(
        Boot {
            name: format!("{prefix}-{}-install", rootfs.suite),
            rootfs,
            script: INSTALL_SCENARIO,
            env: vec![
                ("PACKAGE", package.clone()),
                ("DEB1", file_name(&deb1.path)),
                ("DEB2", file_name(&deb2.path)),
                ("PRESEEDED_IMAGE", PRESEEDED_IMAGE.to_owned()),
                ("EDIT_LINE", EDIT_LINE.to_owned()),
                (
                    "OLD_DEBS",
                    old_debs
                        .iter()
                        .map(|d| format!("/e2e/{}", file_name(d)))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ],
            files: [deb1.path.as_path(), deb2.path.as_path()]
                .into_iter()
                .chain(old_debs.iter().copied())
                .map(|p| (p.to_owned(), file_name(p)))
                .collect(),
            network: Network::Private,
            timeout: BOOT_TIMEOUT,
            hooks: Vec::new(),
        },
        work,
    )?;
    let detail = format!(
        "systemd booted and the scenario finished; its records ({}/) and console ({}) are kept with --keep or on failure",
        file_name(&booted.out),
        file_name(&booted.console)
    );
    Ok((booted, detail))
}

/// Judges what the install scenario recorded, one check per step, in the order it ran.
fn judge_install_scenario(
    suite: Suite,
    booted: &Booted,
    stack1: &Stack,
    stack2: &Stack,
    deb1: &BuiltDeb,
) -> Result<()> {
    let r = Records(booted);
    let named = |what: &str| format!("{what} ({suite})");
    let v1 = stack1.deb_version();
    let v2 = stack2.deb_version();
    let default1 = &stack1.settings.sandbox_image;
    let default2 = &stack2.settings.sandbox_image;

    check(&named("install"), || {
        r.apt_ok("install")?;
        let running = r.running("install")?;
        r.installed("install", &v1)?;
        r.config("install", true, default1)?;
        // The container's kernel is the host's: the postinst says in one line that it left
        // the modules and settings alone, and the installation goes on.
        let log = r.log("install")?;
        let warned =
            process::one_kernel_warning(&log, "in a container").context("apt-get install")?;
        Ok((
            (),
            format!(
                "apt-get install ./{} without a prompt, saying {warned:?}; containerd.service enabled and active; {running}; config dump: SystemdCgroup = true, sandbox image {default1}",
                file_name(&deb1.path)
            ),
        ))
    })?;
    check(&named("upgrade with an untouched config"), || {
        r.apt_ok("upgrade")?;
        r.running("upgrade")?;
        r.installed("upgrade", &v2)?;
        r.config("upgrade", true, default2)?;
        Ok((
            (),
            format!("{v1} -> {v2} without a prompt; the config was regenerated with revision 2's default sandbox image {default2}; containerd active"),
        ))
    })?;
    check(&named("remove"), || {
        r.apt_ok("remove")?;
        let status = r.log("remove.dpkg-status")?;
        ensure!(
            status.starts_with("deinstall ok config-files"),
            "after remove: dpkg-query says {:?}, expected the package's config files only",
            status.trim()
        );
        let active = r.log("remove.is-active")?;
        ensure!(
            active.trim() != "active",
            "after remove: containerd.service is still active"
        );
        let kept = booted
            .read("remove.config.toml")
            .context("apt-get remove deleted /etc/containerd/config.toml: only a purge may")?;
        ensure!(
            kept == booted.read("upgrade.config.toml")?,
            "apt-get remove changed /etc/containerd/config.toml"
        );
        Ok((
            (),
            "containerd stopped, /etc/containerd/config.toml kept as it was, the package in state config-files".to_owned(),
        ))
    })?;
    check(&named("purge after remove"), || {
        Ok(((), r.purged("purge", "before")?))
    })?;
    check(&named("upgrade with an edited config"), || {
        r.apt_ok("reinstall")?;
        r.installed("reinstall", &v1)?;
        r.config("reinstall", true, default1)?;
        r.rc_ok("edit")?;
        r.apt_ok("edited-upgrade")?;
        r.running("edited-upgrade")?;
        r.installed("edited-upgrade", &v2)?;
        let edited = booted.read("edited.config.toml")?;
        let after = booted.read("edited-upgrade.config.toml")?;
        ensure!(
            after == edited,
            "the upgrade changed the edited /etc/containerd/config.toml (the guest's copies: {} and {})",
            booted.out.join("edited.config.toml").display(),
            booted.out.join("edited-upgrade.config.toml").display()
        );
        r.config("edited-upgrade", true, default1)?;
        let dist = booted.read("edited-upgrade.config.toml.ucf-dist").with_context(|| {
            "revision 2 generates a different config (its default sandbox image), so the kept edit should have it beside as config.toml.ucf-dist"
        })?;
        ensure!(
            dist.contains(default2.as_str()),
            "config.toml.ucf-dist does not have revision 2's sandbox image {default2}"
        );
        Ok((
            (),
            format!("{v1} -> {v2} while revision 2 generates a different config: no prompt, the edited config.toml is kept byte for byte and stays in effect, the new one is beside it as config.toml.ucf-dist"),
        ))
    })?;
    check(&named("purge after the edit"), || {
        Ok(((), r.purged("edited-purge", "before")?))
    })?;
    check(&named("preseeded installation"), || {
        r.rc_ok("preseed")?;
        r.apt_ok("preseeded-install")?;
        r.running("preseeded-install")?;
        r.installed("preseeded-install", &v1)?;
        r.config("preseeded-install", true, PRESEEDED_IMAGE)?;
        r.apt_ok("preseeded-upgrade")?;
        r.running("preseeded-upgrade")?;
        r.installed("preseeded-upgrade", &v2)?;
        r.config("preseeded-upgrade", true, PRESEEDED_IMAGE)?;
        Ok((
            (),
            format!(
                "debconf-set-selections {}/sandbox_image = {PRESEEDED_IMAGE} before a fresh installation: it is the sandbox image in effect, and stays so on the upgrade to {v2}",
                stack1.package.name
            ),
        ))
    })?;
    check(&named("purge after the preseeded installation"), || {
        Ok(((), r.purged("final-purge", "before")?))
    })?;
    check(
        &named("replacing Debian's containerd with an edited config.toml"),
        || {
            let p = "migrate-edited";
            r.apt_ok(&format!("{p}-old"))?;
            let edited = booted.read(&format!("{p}.edited.config.toml"))?;
            r.apt_ok(p)?;
            r.running(p)?;
            r.installed(p, &v1)?;
            r.same_config(p, &edited, "Debian's config.toml, as edited")?;
            r.diverted(p, Some(&stack1.package.name))?;
            r.unit_in_place(p)?;
            let upgrade = format!("{p}-upgrade");
            r.apt_ok(&upgrade)?;
            r.running(&upgrade)?;
            r.installed(&upgrade, &v2)?;
            r.same_config(&upgrade, &edited, "Debian's config.toml, as edited")?;
            r.etc_containerd(&upgrade, Some(GENERATED_IN_ETC))?;
            r.rc_ok(&format!("{p}-purge-old"))?;
            r.same_config(&format!("{p}-purge-old"), &edited, "the edited config.toml")?;
            r.rc_ok(&format!("{p}-restart"))?;
            r.running(&format!("{p}-restart"))?;
            r.apt_ok(&format!("{p}-purge"))?;
            r.diverted(&format!("{p}-purge"), None)?;
            r.same_config(
                &format!("{p}-purge"),
                &edited,
                "the administrator's config.toml",
            )?;
            Ok((
                (),
                format!("apt-get install keeps the edited conffile byte for byte, and so does the upgrade to {v2}; dpkg --purge containerd runc afterwards leaves it (diverted by the package while it is installed) and containerd restarts enabled; purging the package drops the diversion and leaves the administrator's file"),
            ))
        },
    )?;
    check(
        &named("replacing Debian's containerd with its config.toml untouched, by dpkg -i"),
        || {
            let p = "migrate-default";
            r.apt_ok(&format!("{p}-old"))?;
            r.apt_ok(p)?;
            r.unit_in_place(p)?;
            r.running(p)?;
            r.installed(p, &v1)?;
            r.config(p, true, default1)?;
            r.diverted(p, Some(&stack1.package.name))?;
            let upgrade = format!("{p}-upgrade");
            r.apt_ok(&upgrade)?;
            r.running(&upgrade)?;
            r.installed(&upgrade, &v2)?;
            // The generated file replaced an unedited one: the package's own, regenerated.
            r.config(&upgrade, true, default2)?;
            r.etc_containerd(&upgrade, Some(GENERATED_IN_ETC))?;
            let generated = booted.read(&format!("{upgrade}.config.toml"))?;
            r.rc_ok(&format!("{p}-purge-old"))?;
            r.same_config(
                &format!("{p}-purge-old"),
                &generated,
                "the generated config.toml",
            )?;
            r.rc_ok(&format!("{p}-restart"))?;
            r.running(&format!("{p}-restart"))?;
            r.config(&format!("{p}-restart"), true, default2)?;
            r.apt_ok(&format!("{p}-purge"))?;
            r.diverted(&format!("{p}-purge"), None)?;
            r.etc_containerd(&format!("{p}-purge"), None)?;
            Ok((
                (),
                format!("dpkg -i removes the replaced packages after unpacking the package, and its unit survives the removal of their /lib name for it; the unedited conffile is replaced by the generated config (SystemdCgroup = true, {default1}), which the upgrade to {v2} regenerates ({default2}); dpkg --purge containerd runc afterwards leaves it and containerd restarts enabled; purging the package removes it, /etc/containerd and the diversion"),
            ))
        },
    )?;
    Ok(())
}

/// The signed apt repository, published through the library and served on loopback: a
/// booted Debian set up as `repo publish` tells users installs the package from it, then
/// upgrades to revision 2 once the host has published it.
fn repo_scenario(
    rootfs: &Rootfs,
    stack1: &Stack,
    stack2: &Stack,
    deb1: &BuiltDeb,
    deb2: &BuiltDeb,
    prefix: &str,
    work: &Path,
) -> Result<((), String)> {
    let repo_dir = work.join(format!("repo-{}", rootfs.suite));
    let first = crate::now();
    let (key, signer) =
        testkit::openpgp::signer("containerd-stack e2e <e2e@example.invalid>", first);
    let mirror = Mirror::serve(&repo_dir);
    let options = |now: u64| {
        let mut o = PublishOptions::new(now);
        o.url = Some(mirror.url());
        o
    };
    repo::publish(
        &repo_dir,
        std::slice::from_ref(&deb1.path),
        &[&signer],
        &options(first),
        &WarningsOnly,
    )?;
    println!(
        "     published {} at {}, signed by {}",
        file_name(&deb1.path),
        mirror.url(),
        key.fingerprint
    );
    let publish_2 = Hook {
        name: "publish-revision-2",
        run: Box::new(|| {
            // A Release's Date only ever increases.
            let now = crate::now().max(first + 1);
            repo::publish(
                &repo_dir,
                std::slice::from_ref(&deb2.path),
                &[&signer],
                &options(now),
                &WarningsOnly,
            )?;
            Ok(format!("published {}", file_name(&deb2.path)))
        }),
    };
    let booted = nspawn::boot(
        Boot {
            name: format!("{prefix}-{}-repo", rootfs.suite),
            rootfs,
            script: REPO_SCENARIO,
            env: vec![
                ("PACKAGE", stack1.package.name.clone()),
                ("REPO_URL", mirror.url()),
            ],
            files: Vec::new(),
            // apt in the guest reaches the loopback server on the host.
            network: Network::Host,
            timeout: BOOT_TIMEOUT,
            hooks: vec![publish_2],
        },
        work,
    )?;
    let r = Records(&booted);
    for step in ["sources-aside", "keyring", "sources"] {
        r.rc_ok(step)?;
    }
    for update in ["update", "update-2"] {
        r.rc_ok(update)?;
        let log = r.log(update)?;
        let complaints: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("W:") || l.starts_with("E:") || l.starts_with("Err:"))
            .collect();
        ensure!(
            complaints.is_empty(),
            "apt-get update in the guest complained about the repository: {}",
            complaints.join(" | ")
        );
    }
    r.apt_ok("install")?;
    r.running("install")?;
    r.installed("install", &stack1.deb_version())?;
    r.rc_ok("publish")?;
    r.apt_ok("upgrade")?;
    let upgraded = r.log("upgrade")?;
    ensure!(
        upgraded.contains("1 upgraded"),
        "apt-get upgrade did not upgrade the package: {}",
        shell_log(&upgraded)
    );
    r.running("upgrade")?;
    r.installed("upgrade", &stack2.deb_version())?;
    r.config("upgrade", true, &stack2.settings.sandbox_image)?;
    let requests = mirror.requests();
    let pool = |deb: &BuiltDeb| {
        let name = file_name(&deb.path);
        requests.iter().any(|p| p.ends_with(&format!("/{name}")))
    };
    ensure!(
        requests.iter().any(|p| p == "/dists/stable/InRelease") && pool(deb1) && pool(deb2),
        "the guest's apt did not fetch InRelease and both packages from the repository; it asked for {}",
        requests.join(", ")
    );
    Ok((
        (),
        format!(
            "apt-get update verified InRelease with the keyring fetched from the repository, installed {} from it, and after the second publish upgraded to {}: no prompt, containerd active",
            stack1.deb_version(),
            stack2.deb_version()
        ),
    ))
}

/// Reads the install scenario's records.
struct Records<'a>(&'a Booted);

impl Records<'_> {
    fn log(&self, step: &str) -> Result<String> {
        self.0.read(&format!("{step}.log"))
    }

    /// The step ran and exited 0.
    fn rc_ok(&self, step: &str) -> Result<()> {
        let rc = self.0.read(&format!("{step}.rc"))?;
        ensure!(
            rc.trim() == "0",
            "`{step}` in the guest exited with status {}: {}",
            rc.trim(),
            shell_log(&self.log(step).unwrap_or_default())
        );
        Ok(())
    }

    /// apt-get succeeded and nothing prompted.
    fn apt_ok(&self, step: &str) -> Result<()> {
        let log = self.log(step)?;
        // Without the teletype frontend a question is answered silently: the prompt check
        // would prove nothing.
        if let Some(line) = log.lines().find(|l| l.contains("falling back to frontend")) {
            bail!(
                "in step {step:?} debconf's teletype frontend did not start ({:?}), so no question would show (full log: {})",
                line.trim(),
                self.0.out.join(format!("{step}.log")).display()
            );
        }
        if let Some(line) = prompt_in(&log) {
            bail!(
                "apt-get in step {step:?} showed a prompt: {:?} (full log: {})",
                line.trim(),
                self.0.out.join(format!("{step}.log")).display()
            );
        }
        self.rc_ok(step)
    }

    /// containerd.service is enabled and active, and ctr reaches the daemon; returns the
    /// server's version line.
    fn running(&self, step: &str) -> Result<String> {
        let enabled = self.log(&format!("{step}.is-enabled"))?;
        ensure!(
            enabled.trim() == "enabled",
            "after {step}: systemctl is-enabled containerd says {:?}, expected enabled",
            enabled.trim()
        );
        let active = self.log(&format!("{step}.is-active"))?;
        ensure!(
            active.trim() == "active",
            "after {step}: systemctl is-active containerd says {:?}, expected active",
            active.trim()
        );
        let version = self.log(&format!("{step}.ctr-version"))?;
        let server = server_version(&version).with_context(|| {
            format!(
                "after {step}: ctr version did not reach the daemon: {}",
                shell_log(&version)
            )
        })?;
        Ok(format!("ctr version reaches containerd {server}"))
    }

    /// /etc/containerd/config.toml after `step` is `want` (`what` names it in the error).
    fn same_config(&self, step: &str, want: &str, what: &str) -> Result<()> {
        let name = format!("{step}.config.toml");
        let found = self.0.read(&name).with_context(|| {
            format!("after {step}: /etc/containerd/config.toml is gone; expected {what}")
        })?;
        ensure!(
            found == want,
            "after {step}: /etc/containerd/config.toml is not {what} (the guest's copy: {})",
            self.0.out.join(name).display()
        );
        Ok(())
    }

    /// The package's unit is in /usr/lib after `step`, and the diversion that protects it
    /// from the removal of a replaced package is gone again.
    fn unit_in_place(&self, step: &str) -> Result<()> {
        ensure!(
            self.0.read(&format!("{step}.unit.rc"))?.trim() == "0",
            "after {step}: /usr/lib/systemd/system/containerd.service is gone ({}): removing the replaced package deleted it by its /lib name",
            shell_log(&self.log(&format!("{step}.unit")).unwrap_or_default())
        );
        let diverter = self.log(&format!("{step}.unit-diversion"))?;
        ensure!(
            diverter.trim().is_empty(),
            "after {step}: /lib/systemd/system/containerd.service is still diverted by {:?}; the postinst drops that diversion",
            diverter.trim()
        );
        Ok(())
    }

    /// The names in /etc/containerd after `step` are `want` (`None`: the directory is gone).
    /// What /etc/containerd holds after `step`: `want`, by name, or nothing at all (`None`).
    fn etc_containerd(&self, step: &str, want: Option<&[&str]>) -> Result<()> {
        let listed = self.log(&format!("{step}.etc-containerd"))?;
        let found = match self.0.read(&format!("{step}.etc-containerd.rc"))?.trim() {
            "0" => Some(ls_names(&listed)),
            _ => None,
        };
        let want: Option<Vec<String>> = want.map(|w| w.iter().map(|n| (*n).to_owned()).collect());
        ensure!(
            found == want,
            "after {step}: /etc/containerd holds {}, expected {}",
            found.map_or("nothing (it is gone)".to_owned(), |f| format!("{f:?}")),
            want.map_or("it gone".to_owned(), |w| format!("{w:?}"))
        );
        Ok(())
    }

    /// Which package diverts /etc/containerd/config.toml after `step`: `want`, or none.
    fn diverted(&self, step: &str, want: Option<&str>) -> Result<()> {
        let found = self.log(&format!("{step}.diversion"))?;
        ensure!(
            found.trim() == want.unwrap_or(""),
            "after {step}: dpkg-divert --listpackage /etc/containerd/config.toml says {:?}, expected {:?}",
            found.trim(),
            want.unwrap_or("(no diversion)")
        );
        Ok(())
    }

    fn installed(&self, step: &str, version: &str) -> Result<()> {
        let status = self.log(&format!("{step}.dpkg-status"))?;
        let want = format!("install ok installed {version}");
        ensure!(
            status.trim() == want,
            "after {step}: dpkg-query says {:?}, expected {want:?}",
            status.trim()
        );
        Ok(())
    }

    /// `containerd config dump` shows the systemd cgroup driver and `image` in effect.
    fn config(&self, step: &str, systemd_cgroup: bool, image: &str) -> Result<()> {
        self.rc_ok(&format!("{step}.config-dump"))?;
        let dump = self.log(&format!("{step}.config-dump"))?;
        let found = config_settings(&dump)
            .with_context(|| format!("after {step}: containerd config dump"))?;
        ensure!(
            found.systemd_cgroup == Some(systemd_cgroup),
            "after {step}: containerd config dump has SystemdCgroup = {}, expected {systemd_cgroup}",
            found.systemd_cgroup.map_or("(absent)".to_owned(), |b| b.to_string())
        );
        ensure!(
            found.sandbox_image.as_deref() == Some(image),
            "after {step}: containerd config dump has the sandbox image {}, expected {image}",
            found.sandbox_image.as_deref().unwrap_or("(absent)")
        );
        Ok(())
    }

    /// The package is purged: apt-get succeeded, containerd stopped and not enabled, no
    /// config, no debconf or ucf records, and the tree is as it was in `before` but for
    /// the paths in [`VOLATILE`].
    fn purged(&self, step: &str, before: &str) -> Result<String> {
        self.apt_ok(step)?;
        let status = self.log(&format!("{step}.dpkg-status"))?;
        ensure!(
            !status.contains("install ok") && !status.contains("config-files"),
            "after {step}: dpkg-query still knows the package: {:?}",
            status.trim()
        );
        let active = self.log(&format!("{step}.is-active"))?;
        ensure!(
            active.trim() != "active",
            "after {step}: containerd.service is still active"
        );
        let enabled = self.log(&format!("{step}.is-enabled"))?;
        ensure!(
            enabled.lines().next().map(str::trim) != Some("enabled"),
            "after {step}: systemctl is-enabled containerd still says enabled"
        );
        ensure!(
            !self.0.out.join(format!("{step}.config.toml")).exists(),
            "after {step}: /etc/containerd/config.toml is still there"
        );
        let records = self.log(&format!("{step}.records"))?;
        ensure!(
            records.trim().is_empty(),
            "after {step}: debconf or ucf still has records of the package: {}",
            shell_log(&records)
        );
        let old = self.0.read(&format!("{before}.tree"))?;
        let new = self.0.read(&format!("{step}.tree"))?;
        let (appeared, disappeared) = tree_changes(&old, &new);
        ensure!(
            appeared.is_empty() && disappeared.is_empty(),
            "after {step}, the tree differs from before the installation: {}{}",
            listed("left behind", &appeared),
            listed("; gone", &disappeared),
        );
        Ok(format!(
            "containerd stopped, no /etc/containerd/config.toml, no debconf or ucf records; every path as before the installation, {} volatile ones aside (VOLATILE in xtask/src/e2e.rs)",
            VOLATILE.len()
        ))
    }
}

/// The entry names of `ls -la` output, `.` and `..` left out.
fn ls_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| !l.starts_with("total "))
        .filter_map(|l| l.split_whitespace().nth(8))
        .filter(|n| *n != "." && *n != "..")
        .map(str::to_owned)
        .collect()
}

fn listed(what: &str, paths: &[String]) -> String {
    if paths.is_empty() {
        return String::new();
    }
    const SHOWN: usize = 12;
    let more = match paths.len() > SHOWN {
        true => format!(" and {} more", paths.len() - SHOWN),
        false => String::new(),
    };
    format!(
        "{what}: {}{more}",
        paths[..paths.len().min(SHOWN)].join(", ")
    )
}

/// A path that changes between the snapshots for reasons other than the package, and is
/// therefore left out of the comparison.
struct Volatile {
    path: &'static str,
    /// The path and everything below it, or only the path itself.
    subtree: bool,
    #[allow(dead_code)] // The documentation of the rule, kept next to it.
    why: &'static str,
}

/// Paths left out when the tree after a purge is compared with the tree before the
/// installation.
const VOLATILE: &[Volatile] = &[
    Volatile {
        path: "/var/log",
        subtree: true,
        why: "apt's and dpkg's logs and the journal grow with every run",
    },
    Volatile {
        path: "/var/cache/apt",
        subtree: true,
        why: "apt's binary caches (pkgcache.bin, srcpkgcache.bin) are rebuilt by every apt-get",
    },
    Volatile {
        path: "/var/lib/apt",
        subtree: true,
        why: "apt's lists and extended_states (auto-installed marks) change with every apt-get",
    },
    Volatile {
        path: "/var/lib/dpkg",
        subtree: true,
        why: "dpkg's database and its -old backups; that the package is gone from it is checked with dpkg-query",
    },
    Volatile {
        path: "/var/cache/debconf",
        subtree: true,
        why: "debconf's database and its -old backups; that the package's questions are gone is checked by grepping it",
    },
    Volatile {
        path: "/var/lib/ucf",
        subtree: true,
        why: "ucf's hashfile and registry with their rotated backups; that the package's entries are gone is checked with ucfq",
    },
    Volatile {
        path: "/var/lib/containerd",
        subtree: true,
        why: "containerd's own state and images: the postrm keeps it on purge on purpose",
    },
    Volatile {
        path: "/var/lib/systemd/deb-systemd-helper-enabled",
        subtree: false,
        why: "deb-systemd-helper's state directory, made on first use and shared by every package; its entries for containerd are not ignored",
    },
    Volatile {
        path: "/var/lib/systemd/deb-systemd-helper-masked",
        subtree: false,
        why: "as deb-systemd-helper-enabled",
    },
    Volatile {
        path: "/var/tmp",
        subtree: true,
        why: "any program's temporary files",
    },
];

fn volatile(path: &str) -> bool {
    VOLATILE.iter().any(|v| {
        path == v.path
            || (v.subtree
                && path
                    .strip_prefix(v.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    })
}

/// The paths only in `new` and those only in `old`, volatile ones left out.
fn tree_changes(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let old: BTreeSet<&str> = old.lines().filter(|p| !volatile(p)).collect();
    let new: BTreeSet<&str> = new.lines().filter(|p| !volatile(p)).collect();
    (
        new.difference(&old).map(|p| (*p).to_owned()).collect(),
        old.difference(&new).map(|p| (*p).to_owned()).collect(),
    )
}

/// The first line of `log` that shows a conffile or ucf prompt.
fn prompt_in(log: &str) -> Option<&str> {
    log.lines().find(|l| {
        let l = l.to_lowercase();
        PROMPTS.iter().any(|p| l.contains(p))
    })
}

/// The server version `ctr version` printed, if it reached the daemon.
fn server_version(ctr_version: &str) -> Option<String> {
    let (_, server) = ctr_version.split_once("Server:")?;
    server
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_owned())
}

/// The two settings the package configures, as `containerd config dump` reports them.
#[derive(Debug, PartialEq, Eq)]
struct ConfigSettings {
    systemd_cgroup: Option<bool>,
    sandbox_image: Option<String>,
}

/// Reads the settings from a config dump in the tables of its own schema `version`
/// (REFERENCE.md, "containerd config: where the settings live").
fn config_settings(dump: &str) -> Result<ConfigSettings> {
    let doc: toml::Table =
        toml::from_str(dump).map_err(|e| anyhow!("not TOML: {}", e.message()))?;
    let get = |path: &[&str]| -> Option<&toml::Value> {
        let (last, tables) = path.split_last()?;
        let mut table = &doc;
        for key in tables {
            table = table.get(*key)?.as_table()?;
        }
        table.get(*last)
    };
    let version = get(&["version"]).and_then(toml::Value::as_integer);
    let (cgroup, sandbox): (&[&str], &[&str]) = match version {
        Some(2) => (
            &[
                "plugins",
                "io.containerd.grpc.v1.cri",
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            &["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"],
        ),
        Some(3 | 4) => (
            &[
                "plugins",
                "io.containerd.cri.v1.runtime",
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            &[
                "plugins",
                "io.containerd.cri.v1.images",
                "pinned_images",
                "sandbox",
            ],
        ),
        other => bail!(
            "config schema version {other:?}; known: 2 (containerd 1.6, 1.7), 3 (2.0-2.2), 4 (2.3)"
        ),
    };
    Ok(ConfigSettings {
        systemd_cgroup: get(cgroup).and_then(toml::Value::as_bool),
        sandbox_image: get(sandbox)
            .and_then(toml::Value::as_str)
            .map(str::to_owned),
    })
}

/// A log's last lines, on one line.
fn shell_log(log: &str) -> String {
    let shown = last_lines(log, 4);
    match shown.is_empty() {
        true => "(no output)".to_owned(),
        false => shown,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Prints only the library's warnings: a publish reports every file it writes.
struct WarningsOnly;

impl Listener for WarningsOnly {
    fn event(&self, event: Event) {
        if let Event::Warning(w) = event {
            println!("     warning: {w}");
        }
    }
}

/// piuparts' minimal base: `suite`'s minbase as a gzip tarball (piuparts reads no other),
/// converted once from the cached mmdebstrap tarball.
fn minbase_tgz(suite: Suite) -> Result<PathBuf> {
    let rootfs = Rootfs::cached(suite, &[])?;
    let tgz = rootfs.tarball.with_extension("tgz");
    if tgz.is_file() {
        return Ok(tgz);
    }
    let partial = tgz.with_extension(format!("{}.partial", std::process::id()));
    let file = fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let made = process::run(
        Command::new("gzip")
            .arg("-c")
            .arg("-6")
            .arg(&rootfs.tarball)
            .stdout(file),
    );
    if let Err(e) = made {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    fs::rename(&partial, &tgz)
        .with_context(|| format!("cannot move {} into place", partial.display()))?;
    Ok(tgz)
}

/// piuparts' tests from the minimal base, in one run: install and purge revision 2 (apt
/// installs its dependencies from Debian's archive), then install revision 1 from a
/// repository on loopback, upgrade it to revision 2 and purge. Each fails on any file left
/// behind or gone, on processes left running, on broken symlinks.
fn piuparts(
    suite: Suite,
    deb1: &BuiltDeb,
    deb2: &BuiltDeb,
    minbase: &Path,
    work: &Path,
) -> Result<((), String)> {
    let tag = format!("piuparts-{suite}");
    let tmp = work.join(&tag);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let log = work.join(format!("{tag}.log"));
    // piuparts writes the chroot's sources.list from the host's, or from the defaults of the
    // host's distribution (Ubuntu's archive on an Ubuntu runner): the base's own it is.
    let sources = process::stdout(
        Command::new("tar")
            .arg("-xOzf")
            .arg(minbase)
            .arg("./etc/apt/sources.list"),
    )?;
    let mirror = first_mirror(&sources).with_context(|| {
        format!(
            "{}: its /etc/apt/sources.list has no deb line",
            minbase.display()
        )
    })?;

    let repo_dir = work.join(format!("{tag}-repo"));
    let now = crate::now();
    let (_, signer) =
        testkit::openpgp::signer("containerd-stack piuparts <piuparts@example.invalid>", now);
    repo::publish(
        &repo_dir,
        std::slice::from_ref(&deb1.path),
        &[&signer],
        &PublishOptions::new(now),
        &WarningsOnly,
    )?;
    let repo = Mirror::serve(&repo_dir);

    let mut cmd = Command::new("piuparts");
    cmd.args(["-d", suite.codename()]);
    for ignored in PIUPARTS_IGNORED {
        cmd.arg(format!("--ignore={ignored}"));
    }
    // The repository's signature is tested elsewhere; here only the upgrade path is.
    cmd.arg(format!(
        "--extra-repo=deb [trusted=yes] {} stable main",
        repo.url()
    ))
    .arg(format!("--mirror={mirror} main"))
    .arg(format!("--basetgz={}", minbase.display()))
    .arg(format!("--tmpdir={}", tmp.display()))
    .arg(format!("--log-file={}", log.display()))
    .arg(&deb2.path)
    .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", process::describe(&cmd)))?;
    let report = fs::read_to_string(&log).unwrap_or_else(|_| text(&out));
    if !out.status.success() {
        let fails: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("FAIL") || l.contains("ERROR"))
            .collect();
        bail!(
            "piuparts failed ({}), full log in {}: {}",
            out.status,
            log.display(),
            match fails.is_empty() {
                true => last_lines(&report, 4),
                false => fails.join(" | "),
            }
        );
    }
    for pass in [
        "PASS: Installation and purging test.",
        "PASS: Installation, upgrade and purging tests.",
        "PASS: All tests.",
    ] {
        ensure!(
            report.contains(pass),
            "piuparts exited 0 but its log {} has no {pass:?}",
            log.display()
        );
    }
    ensure!(
        repo.requests()
            .iter()
            .any(|r| r.starts_with("/pool/") && r.ends_with(".deb")),
        "piuparts never downloaded revision 1 from the repository at {}",
        repo.url()
    );
    Ok((
        (),
        format!(
            "from minbase, {} installs and purges, and {} from the repository upgrades to it and purges (log {})",
            file_name(&deb2.path),
            file_name(&deb1.path),
            log.display()
        ),
    ))
}

/// The URL of the first `deb` line of a one-line-style sources.list.
fn first_mirror(sources: &str) -> Option<&str> {
    sources.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("deb"))
            .then(|| words.find(|w| !w.starts_with('[')))
            .flatten()
    })
}

/// Keeps a run's records, packages and logs in `target`, replacing the previous run's
/// (unless a mount is left inside it: that one is left alone).
fn keep_for_inspection(work: tempfile::TempDir, target: &Path) {
    let kept = work.keep();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounted = |dir: &Path| {
        mount_points(&mountinfo)
            .iter()
            .any(|m| Path::new(m).starts_with(dir))
    };
    if target.exists() && !mounted(target) {
        let _ = fs::remove_dir_all(target);
    }
    match !mounted(&kept) && fs::rename(&kept, target).is_ok() {
        true => println!("     the run's records are kept in {}", target.display()),
        false => println!("     the run's records are kept in {}", kept.display()),
    }
}

/// The trees the e2e unpacked, for the leftover check (they are deleted when done; a
/// mount left inside one would keep it).
fn trees() -> Vec<PathBuf> {
    TREES.lock().map(|t| t.clone()).unwrap_or_default()
}

static TREES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn note_tree(root: &Path) {
    if let Ok(mut trees) = TREES.lock() {
        trees.push(root.to_owned());
    }
}

/// The mount points of mountinfo(5).
fn mount_points(mountinfo: &str) -> Vec<String> {
    crate::rootfs::mount_points(mountinfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_in_the_dump_schema_tables() {
        let v2 = r#"
version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.10.2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
"#;
        assert_eq!(
            config_settings(v2).unwrap(),
            ConfigSettings {
                systemd_cgroup: Some(true),
                sandbox_image: Some("registry.k8s.io/pause:3.10.2".into())
            }
        );
        let v3 = r#"
version = 3
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'registry.k8s.io/pause:3.10'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = false
"#;
        assert_eq!(
            config_settings(v3).unwrap(),
            ConfigSettings {
                systemd_cgroup: Some(false),
                sandbox_image: Some("registry.k8s.io/pause:3.10".into())
            }
        );
        // A key in the other schema's table does not count.
        let wrong = "version = 3\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"x\"\n";
        assert_eq!(config_settings(wrong).unwrap().sandbox_image, None);
        assert!(config_settings("version = 9").is_err());
    }

    #[test]
    fn tree_changes_leave_out_volatile_paths_but_not_their_neighbours() {
        let before = "/\n/etc\n/opt\n/var/lib/dpkg\n/var/lib/dpkg/status\n";
        let after = "/\n/etc\n/etc/containerd\n/var/lib/dpkg\n/var/lib/dpkg/status-old\n\
                     /var/lib/containerd\n/var/lib/containerd/x\n/var/lib/systemd/deb-systemd-helper-enabled\n\
                     /var/lib/systemd/deb-systemd-helper-enabled/containerd.service.dsh-also\n/var/log2\n";
        let (appeared, disappeared) = tree_changes(before, after);
        assert_eq!(
            appeared,
            [
                "/etc/containerd",
                "/var/lib/systemd/deb-systemd-helper-enabled/containerd.service.dsh-also",
                "/var/log2"
            ]
        );
        assert_eq!(disappeared, ["/opt"]);
    }

    #[test]
    fn ls_names_leave_out_the_directory_and_its_parent() {
        let listing = "total 24\n\
                       drwxr-xr-x  2 root root 4096 Dec  1 09:58 .\n\
                       drwxr-xr-x 31 root root 4096 Dec  1 09:58 ..\n\
                       -rw-r--r--  1 root root 6992 Dec  1 09:58 config.toml\n\
                       -rw-r--r--  1 root root 6992 Dec  1 09:58 config.toml.containerd-dpkg\n";
        assert_eq!(
            ls_names(listing),
            ["config.toml", "config.toml.containerd-dpkg"]
        );
    }

    #[test]
    fn the_mirror_is_the_first_deb_line() {
        let sources = "# generated\ndeb-src http://src.example/debian bookworm main\n\
                       deb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n\
                       deb http://security.debian.org/debian-security bookworm-security main\n";
        assert_eq!(first_mirror(sources), Some("http://deb.debian.org/debian"));
        assert_eq!(first_mirror("# nothing\n"), None);
    }

    #[test]
    fn prompts_are_found_in_any_case() {
        let log = "Setting up x (2) ...\n\nConfiguration file '/etc/containerd/config.toml'\n ==> Modified (by you or by a script) since installation.\n";
        assert_eq!(
            prompt_in(log),
            Some("Configuration file '/etc/containerd/config.toml'")
        );
        assert_eq!(
            prompt_in("containerd-stack: keeping /etc/containerd/config.toml, which was edited\n"),
            None
        );
    }

    #[test]
    fn the_server_version_needs_the_server_section() {
        let out = "Client:\n  Version:  1.6.20~ds1\n\nServer:\n  Version:  1.6.20~ds1\n  UUID: x\n";
        assert_eq!(server_version(out).as_deref(), Some("1.6.20~ds1"));
        let refused = "Client:\n  Version:  1.6.20~ds1\nctr: failed to dial \"/run/containerd/containerd.sock\"\n";
        assert_eq!(server_version(refused), None);
    }
}

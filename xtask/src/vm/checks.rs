//! The guests' records judged as named checks, in the order the scenario made them: for
//! each set, the installation (config, hosts files, kernel prerequisites now and at the
//! next boot), the pod with its images pulled through the mirror, the upgrade (an edited
//! hosts file kept, an untouched one regenerated, a dropped one removed) under the running
//! pod, the pod down; then the breakages or the major upgrade; then the purge.

use std::collections::BTreeSet;

use anyhow::{bail, ensure, Context, Result};

use super::judge::{self, Dump, Expect, Outcome, Records, Setting};
use super::kernel::{self, State};
use super::mirrors;
use super::{
    mirrors_install, mirrors_upgrade, Guest, Images, KernelAnswers, Set, ADMIN_HOST, EDIT_LINE,
    HOSTS_EDITED, HOSTS_EDIT_LINE, IMAGE, LOG_LINE_SIZE,
};
use crate::process::{self, check};

/// One set's records, with what the judge needs to read them.
pub struct Judged<'a> {
    pub r: &'a Records,
    pub set: &'a Set,
    pub images: &'a Images,
    pub kernel: KernelAnswers,
}

impl Judged<'_> {
    fn package(&self) -> &str {
        &self.set.stack1.package.name
    }
}

/// Runs `outcomes` as checks, each named after its set.
fn checks(label: &str, outcomes: &[Outcome]) -> Result<()> {
    for o in outcomes {
        check(&format!("{label}: {}", o.name), || Ok(((), o.passed()?)))?;
    }
    Ok(())
}

/// The guest before any package: the registry filled, and a kernel on which nothing of
/// what the package applies is on yet, so that each later check can tell.
pub fn judge_start(r: &Records, guest: &Guest) -> Result<()> {
    let package = &guest.cycles[0].stack1.package.name;
    check(
        &format!("guest {}: the images pushed into the registry", guest.name),
        || {
            r.rc_ok("push")?;
            Ok(((), judge::shown(&r.log("push")?)))
        },
    )?;
    check(
        &format!("guest {}: the node before the package", guest.name),
        || {
            r.rc_ok("settle")?;
            Ok(((), kernel::untouched(&State::read(r, "before")?, package)?))
        },
    )
}

/// What debconf's kernel_prerequisites `answer` must leave after an installation, with
/// br_netfilter loaded before it or not.
fn kernel_expect(answer: bool, loaded_before: bool) -> kernel::Expect {
    if answer {
        kernel::Expect::Applied
    } else {
        kernel::Expect::NotApplied { loaded_before }
    }
}

/// On a real machine the postinst applies the kernel prerequisites, or leaves them off, without
/// warning that it could not: apt-get `step`'s output holds no such line.
fn no_kernel_warning(r: &Records, step: &str) -> Result<&'static str> {
    let log = r.log(step)?;
    let warned = process::kernel_warnings(&log);
    ensure!(
        warned.is_empty(),
        "{step}: the postinst warned on a machine that lets it apply the kernel prerequisites: {warned:?}"
    );
    Ok("no warning from the postinst")
}

/// What the scenario does before each upgrade, so that what it applies shows.
const RESET: &str = "the three settings set to 0 before it (those that exist)";

/// `step`: what the installation applied undone (br_netfilter unloaded, IP forwarding off),
/// then systemd-modules-load and systemd-sysctl run again, as at a boot; they must apply
/// the package's files when debconf's `answer` was true, and nothing when it was false.
fn next_boot(r: &Records, step: &str, answer: bool, package: &str) -> Result<String> {
    r.rc_ok(&format!("{step}.undo"))?;
    let undone = kernel::undone(&State::read(r, &format!("{step}.undone"))?)?;
    r.rc_ok(step)?;
    let state = State::read(r, step)?;
    let found = kernel::judge(&state, kernel_expect(answer, false), package)?;
    Ok(format!(
        "undone ({undone}), then systemd-modules-load and systemd-sysctl run again: {found}"
    ))
}

/// A set's records; with `breakages`, those of the breakages made after its pod was down.
/// With `major_to`, those of the major upgrade from it to that set, before the purge.
pub fn judge_set(j: &Judged, breakages: bool, major_to: Option<&Set>) -> Result<()> {
    let (r, set, k) = (j.r, j.set, j.kernel);
    let label = set.label();
    let e = set.expect(j.images);
    let p = set.name;
    let package = j.package();
    check(&format!("{label}: install revision 1"), || {
        Ok((
            (),
            installed(r, &format!("{p}.install"), &set.stack1.deb_version(), &e)?,
        ))
    })?;
    check(
        &format!("{label}: a hosts file for each preseeded registry"),
        || {
            r.rc_ok(&format!("{p}.install.preseed"))?;
            Ok((
                (),
                mirrors::after(
                    r,
                    &format!("{p}.install"),
                    package,
                    &mirrors_install(),
                    None,
                )?,
            ))
        },
    )?;
    check(
        &format!("{label}: kernel prerequisites, debconf {}", k.install),
        || {
            let state = State::read(r, &format!("{p}.install"))?;
            let found = kernel::judge(&state, kernel_expect(k.install, false), package)?;
            Ok((
                (),
                format!(
                    "{found}; {}",
                    no_kernel_warning(r, &format!("{p}.install"))?
                ),
            ))
        },
    )?;
    check(
        &format!(
            "{label}: kernel prerequisites at the next boot, debconf {}",
            k.install
        ),
        || Ok(((), next_boot(r, &format!("{p}.boot"), k.install, package)?)),
    )?;
    let up = r.cri(&format!("{p}.up"))?;
    up.done()?;
    checks(&label, &judge::up(&up, &e))?;
    check(
        &format!("{label}: both images pulled through the mirror"),
        || {
            for which in ["sandbox", "image"] {
                ensure!(
                    !judge::present_before(&up, which)?,
                    "containerd had the {which} image before the pod: the pull proves nothing"
                );
            }
            let log = r.log(&format!("{p}.up.registry"))?;
            let pause = served(&log, e.sandbox_image, e.sandbox_id, e.containerd)?;
            let busybox = served(&log, IMAGE, e.image_id, e.containerd)?;
            Ok((
                (),
                format!(
                    "neither image there before the pod; the registry's log: {pause}; {busybox}"
                ),
            ))
        },
    )?;
    check(
        &format!("{label}: the upgrade to revision 2 restarts containerd"),
        || {
            let detail = installed(r, &format!("{p}.upgrade"), &set.stack2.deb_version(), &e)?;
            let before = main_pid(r, &format!("{p}.before-upgrade"))?;
            let after = main_pid(r, &format!("{p}.upgrade"))?;
            ensure!(
                before != after,
                "containerd's main pid is {before} before and after the upgrade: it was not restarted"
            );
            Ok((
                (),
                format!("{detail}; containerd's main pid {before} -> {after}"),
            ))
        },
    )?;
    let edited = check(
        &format!("{label}: the upgrade keeps the edited hosts file, regenerates the untouched one, removes the dropped one"),
        || {
            r.rc_ok(&format!("{p}.hosts-edit"))?;
            r.rc_ok(&format!("{p}.upgrade.preseed"))?;
            let edited = r.read(&format!("{p}.hosts-edited.toml"))?;
            ensure!(
                edited.starts_with(&mirrors::marker(package))
                    && edited.ends_with(&format!("{HOSTS_EDIT_LINE}\n")),
                "the edited {HOSTS_EDITED} hosts file is not the generated one with the administrator's line: {}",
                judge::shown(&edited)
            );
            let detail = mirrors::after(
                r,
                &format!("{p}.upgrade"),
                package,
                &mirrors_upgrade(),
                Some((HOSTS_EDITED, &edited)),
            )?;
            let said = format!(
                "keeping {}/{HOSTS_EDITED}/hosts.toml, which was edited",
                mirrors::CERTS_D
            );
            let log = r.log(&format!("{p}.upgrade"))?;
            ensure!(
                log.contains(&said),
                "the upgrade did not say {said:?}: {}",
                judge::shown(&log)
            );
            Ok((
                edited,
                format!("{detail}; the registries no longer in the answer are gone; the postinst said {said:?}"),
            ))
        },
    )?;
    check(
        &format!(
            "{label}: kernel prerequisites after the upgrade, debconf {}",
            k.upgrade
        ),
        || {
            r.rc_ok(&format!("{p}.upgrade.reset"))?;
            let state = State::read(r, &format!("{p}.upgrade"))?;
            let found = kernel::judge(&state, kernel_expect(k.upgrade, k.install), package)?;
            let said = no_kernel_warning(r, &format!("{p}.upgrade"))?;
            Ok(((), format!("{RESET}; {found}; {said}")))
        },
    )?;
    let after = r.cri(&format!("{p}.after"))?;
    after.done()?;
    checks(
        &format!("{label}, after the upgrade"),
        &judge::after_upgrade(&up, &after),
    )?;
    let down = r.cri(&format!("{p}.down"))?;
    down.done()?;
    checks(&label, &judge::down(&down))?;
    check(
        &format!(
            "{label}: kernel prerequisites at the next boot after the upgrade, debconf {}",
            k.upgrade
        ),
        || {
            Ok((
                (),
                next_boot(r, &format!("{p}.down.boot"), k.upgrade, package)?,
            ))
        },
    )?;
    if breakages {
        judge_breakages(j)?;
    }
    let (purge_label, last_step, last_answer) = match major_to {
        Some(to) => {
            judge_major(j, to, &edited)?;
            (
                format!(
                    "{label}, after the major upgrade to {}: purge",
                    to.containerd()
                ),
                "major.upgrade".to_owned(),
                k.major,
            )
        }
        None => (format!("{label}: purge"), format!("{p}.upgrade"), k.upgrade),
    };
    check(&purge_label, || {
        Ok((
            (),
            purged(r, &format!("{p}.purge"), package, &last_step, last_answer)?,
        ))
    })?;
    Ok(())
}

/// The registry's log shows containerd fetching `reference`'s manifest and config.
fn served(log: &str, reference: &str, id: &str, containerd: &str) -> Result<String> {
    let (repository, _) = mirrors::repository(reference, super::disk::REGISTRY)?;
    mirrors::served(log, &repository, id, containerd)
        .with_context(|| format!("{reference} did not come through the mirror"))
}

fn judge_major(j: &Judged, to: &Set, edited_hosts: &str) -> Result<()> {
    let (r, from, k) = (j.r, j.set, j.kernel);
    let package = j.package();
    let label = format!("major upgrade {} -> {}", from.containerd(), to.containerd());
    let (ef, et) = (from.expect(j.images), to.expect(j.images));
    let edited = check(
        &format!("{label}: {} revision 2, its config edited", from.label()),
        || {
            r.rc_ok("major.edit")?;
            let detail = running(r, "major.edit", &from.stack2.deb_version(), &ef)?;
            let edited = r.read("major.edited.config.toml")?;
            // The file the package generated (its first line says so), with the edit.
            ensure!(
                edited.starts_with("# Generated by ") && edited.contains(EDIT_LINE),
                "the edited config ({}) is not the generated one with the administrator's line",
                judge::at(r, "major.edited.config.toml")
            );
            let dump = Dump::parse(&r.log("major.edit.config-dump")?)?;
            let size = dump
                .get(Setting::LogLineSize)
                .and_then(toml::Value::as_integer);
            ensure!(
                size == Some(LOG_LINE_SIZE),
                "after the edit containerd {} reads max_container_log_line_size = {size:?}, expected {LOG_LINE_SIZE}",
                from.containerd()
            );
            active(r, "major.edit")?;
            Ok((edited, format!("{detail}; edited: a comment, and max_container_log_line_size = {LOG_LINE_SIZE} in effect after a restart")))
        },
    )?;
    check(
        &format!("{label}: {} installed over it keeps the edit", to.label()),
        || {
            let detail = installed(r, "major.upgrade", &to.stack1.deb_version(), &et)?;
            let kept = r.read("major.upgrade.config.toml")?;
            ensure!(
                kept == edited,
                "the major upgrade changed the edited /etc/containerd/config.toml (before: {}, after: {})",
                judge::at(r, "major.edited.config.toml"),
                judge::at(r, "major.upgrade.config.toml")
            );
            let dump = Dump::parse(&r.log("major.upgrade.config-dump")?)?;
            let size = dump
                .get(Setting::LogLineSize)
                .and_then(toml::Value::as_integer);
            ensure!(
                size == Some(LOG_LINE_SIZE),
                "containerd {} reads max_container_log_line_size = {size:?} from the kept config, expected the edited {LOG_LINE_SIZE}",
                to.containerd()
            );
            let schema = |text: &str| Dump::parse(text).ok().and_then(|d| d.version());
            Ok(((), format!(
                "{detail}; the edited config.toml (schema {:?}) is kept byte for byte and containerd {} reads it as schema {:?} with max_container_log_line_size = {LOG_LINE_SIZE} and the registry hosts directory",
                schema(&edited).unwrap_or_default(),
                to.containerd(),
                dump.version().unwrap_or_default()
            )))
        },
    )?;
    check(&format!("{label}: the hosts files"), || {
        Ok((
            (),
            mirrors::after(
                r,
                "major.upgrade",
                package,
                &mirrors_upgrade(),
                Some((HOSTS_EDITED, edited_hosts)),
            )?,
        ))
    })?;
    check(
        &format!("{label}: kernel prerequisites, debconf {}", k.major),
        || {
            r.rc_ok("major.upgrade.reset")?;
            r.rc_ok("major.upgrade.preseed")?;
            let state = State::read(r, "major.upgrade")?;
            // The boot after the last upgrade left br_netfilter loaded only if it applied.
            let expect = kernel_expect(k.major, k.upgrade);
            let found = kernel::judge(&state, expect, package)?;
            Ok(((), format!("{RESET}; {found}")))
        },
    )?;
    let up = r.cri("major.up")?;
    up.done()?;
    checks(&label, &judge::up(&up, &et))?;
    check(
        &format!(
            "{label}: the container's image pulled through the mirror by {}",
            to.containerd()
        ),
        || {
            let log = r.log("major.up.registry")?;
            // 1.6 pulled the container's image: 2.1's PullImage resolves the tag through
            // the mirror and finds every blob in the store.
            let busybox = if judge::present_before(&up, "image")? {
                let (repository, _) = mirrors::repository(IMAGE, super::disk::REGISTRY)?;
                mirrors::resolved(&log, &repository, to.containerd()).with_context(|| {
                    format!("{IMAGE}, in the store, was not resolved through the mirror")
                })?
            } else {
                served(&log, IMAGE, et.image_id, to.containerd())?
            };
            let sandbox = if judge::present_before(&up, "sandbox")? {
                format!(
                    "{} from {}'s pull, in the store",
                    et.sandbox_image,
                    from.containerd()
                )
            } else {
                served(&log, et.sandbox_image, et.sandbox_id, to.containerd())?
            };
            Ok(((), format!("{busybox}; the sandbox image: {sandbox}")))
        },
    )?;
    let down = r.cri("major.down")?;
    down.done()?;
    checks(&label, &judge::down(&down))?;
    Ok(())
}

/// Each breakage fails exactly the checks it must, for its reason; the pod comes down
/// after it, and the package works again once it is undone.
fn judge_breakages(j: &Judged) -> Result<()> {
    let (r, set) = (j.r, j.set);
    let label = format!("{}, broken on purpose", set.label());
    let e = set.expect(j.images);
    let package = j.package();
    let (sandbox_registry, _) = e
        .sandbox_image
        .split_once('/')
        .context("the sandbox image names no registry")?;
    let no_mirror = |step: &str| -> Result<()> {
        let listed = r.log(step)?;
        ensure!(
            !listed.lines().any(|l| l.trim() == sandbox_registry),
            "{} still has {sandbox_registry}/ after {step}: {}",
            mirrors::CERTS_D,
            judge::shown(&listed)
        );
        Ok(())
    };
    check(
        &format!("{label}: no sandbox image, and no mirror of {sandbox_registry}"),
        || {
            r.rc_ok("break.no-sandbox-image.remove")?;
            no_mirror("break.no-sandbox-image.remove")?;
            let listed = r.log("break.no-sandbox-image.images")?;
            ensure!(
                !listed.contains(e.sandbox_image) && listed.contains(IMAGE),
                "the breakage did not take: containerd's images are {}",
                judge::shown(&listed)
            );
            // Without its hosts file, containerd goes to the registry itself, which the
            // node cannot reach.
            let direct = format!("https://{sandbox_registry}/v2/");
            let found = broken(
                r,
                "break.no-sandbox-image",
                &e,
                &[(judge::RUN_POD, &direct)],
            )?;
            let restored = imported(r, "break.no-sandbox-image.restore", &[e.sandbox_image])?;
            Ok(((), format!("{found}; then {restored}")))
        },
    )?;
    check(&format!("{label}: the CNI conflist removed"), || {
        r.rc_ok("break.no-cni.remove")?;
        let listed = r.log("break.no-cni.remove")?;
        ensure!(
            !listed.contains(".conflist"),
            "the breakage did not take: /etc/cni/net.d still has {}",
            judge::shown(&listed)
        );
        let found = broken(
            r,
            "break.no-cni",
            &e,
            &[
                (judge::STATUS, "NetworkReady is false"),
                (judge::RUN_POD, "cni"),
            ],
        )?;
        r.rc_ok("break.no-cni.restore")?;
        Ok(((), found))
    })?;
    check(&format!("{label}: SystemdCgroup = false"), || {
        r.rc_ok("break.cgroupfs.edit")?;
        let dump = Dump::parse(&r.log("break.cgroupfs.edit.config-dump")?)?;
        let driver = dump
            .get(Setting::SystemdCgroup)
            .and_then(toml::Value::as_bool);
        ensure!(
            driver == Some(false),
            "the breakage did not take: containerd config dump says SystemdCgroup = {driver:?}"
        );
        active(r, "break.cgroupfs.edit")?;
        let mut expected = vec![(judge::CGROUP, "not in cri-containerd-")];
        if e.major() >= 2 {
            // containerd 2.x also tells the kubelet which driver it uses.
            expected.push((judge::RUNTIME_CONFIG, "CGROUPFS"));
        }
        let found = broken(r, "break.cgroupfs", &e, &expected)?;
        r.rc_ok("break.cgroupfs.restore")?;
        Ok(((), found))
    })?;
    check(
        &format!("{label}: the sandbox image imported with ctr, {sandbox_registry} unreachable"),
        || {
            // The cgroupfs breakage's pod ran while the sandbox image's registry had no
            // mirror: only the imported image can have served it (README, the air gap).
            no_mirror("break.cgroupfs.edit")?;
            let up = r.cri("break.cgroupfs.up")?;
            let outcomes = judge::up(&up, &e);
            for name in [judge::RUN_POD, judge::SANDBOX_IMAGE] {
                let o = outcomes
                    .iter()
                    .find(|o| o.name == name)
                    .context("no such check")?;
                o.passed()
                    .with_context(|| format!("{name}, with the image imported"))?;
            }
            Ok((
                (),
                format!(
                    "RunPodSandbox ran {} as ctr imported it, with no hosts file for {sandbox_registry}",
                    e.sandbox_image
                ),
            ))
        },
    )?;
    check(&format!("{label}: all undone"), || {
        let detail = running(r, "break.restored", &set.stack2.deb_version(), &e)?;
        let hosts = r.read(&format!(
            "break.restored.certs.d/{sandbox_registry}/hosts.toml"
        ))?;
        let answer = mirrors::parse_answer(&mirrors_upgrade());
        let (_, urls) = answer
            .iter()
            .find(|(h, _)| h == sandbox_registry)
            .context("the answer has no mirror of the sandbox image's registry")?;
        mirrors::generated(&hosts, package, sandbox_registry, urls)
            .with_context(|| format!("{sandbox_registry}'s hosts file put back"))?;
        Ok((
            (),
            format!("{detail}; {sandbox_registry}'s hosts file back"),
        ))
    })?;
    Ok(())
}

/// The breakage `prefix`'s up phase fails exactly `expected`; its down phase then leaves
/// no pod.
fn broken(r: &Records, prefix: &str, e: &Expect, expected: &[(&str, &str)]) -> Result<String> {
    let up = r.cri(&format!("{prefix}.up"))?;
    up.done()?;
    let found = judge::broken(&judge::up(&up, e), expected)?;
    let down = r.cri(&format!("{prefix}.down"))?;
    down.done()?;
    if down.made_calls() {
        for o in judge::down(&down) {
            o.passed()
                .with_context(|| format!("taking the pod down after the breakage: {}", o.name))?;
        }
    }
    Ok(found)
}

/// apt-get `step` installed `version`; containerd runs it with the settings in effect.
fn installed(r: &Records, step: &str, version: &str, e: &Expect) -> Result<String> {
    r.rc_ok(step)?;
    running(r, step, version, e)
}

/// After `step`, `version` is installed and containerd runs it with the settings in effect.
fn running(r: &Records, step: &str, version: &str, e: &Expect) -> Result<String> {
    let status = r.log(&format!("{step}.dpkg-status"))?;
    let want = format!("install ok installed {version}");
    ensure!(
        status.trim() == want,
        "after {step}: dpkg-query says {:?}, expected {want:?}",
        status.trim()
    );
    active(r, step)?;
    let ctr = r.log(&format!("{step}.ctr-version"))?;
    let server = judge::server_version(&ctr).with_context(|| {
        format!(
            "after {step}: ctr version did not reach the daemon: {}",
            judge::shown(&ctr)
        )
    })?;
    ensure!(
        server.starts_with(e.containerd),
        "after {step}: the daemon is containerd {server}, expected {}",
        e.containerd
    );
    r.rc_ok(&format!("{step}.config-dump"))?;
    let dump = Dump::parse(&r.log(&format!("{step}.config-dump"))?)
        .with_context(|| format!("after {step}"))?;
    let driver = dump
        .get(Setting::SystemdCgroup)
        .and_then(toml::Value::as_bool);
    let sandbox = dump
        .get(Setting::SandboxImage)
        .and_then(toml::Value::as_str);
    let hosts = dump.get(Setting::ConfigPath).and_then(toml::Value::as_str);
    ensure!(
        driver == Some(true) && sandbox == Some(e.sandbox_image) && hosts == Some(mirrors::CERTS_D),
        "after {step}: containerd config dump has SystemdCgroup = {driver:?}, sandbox image {sandbox:?} and registry config_path {hosts:?}, expected true, {} and {}",
        e.sandbox_image,
        mirrors::CERTS_D
    );
    Ok(format!(
        "{version} installed, containerd {server} active; config dump (schema {}): SystemdCgroup = true, sandbox image {}, registry config_path {}",
        dump.version().unwrap_or_default(),
        e.sandbox_image,
        mirrors::CERTS_D
    ))
}

fn active(r: &Records, step: &str) -> Result<()> {
    let active = r.log(&format!("{step}.is-active"))?;
    ensure!(
        active.trim() == "active",
        "after {step}: systemctl is-active containerd says {:?}",
        active.trim()
    );
    Ok(())
}

fn main_pid(r: &Records, step: &str) -> Result<u32> {
    let text = r.log(&format!("{step}.main-pid"))?;
    text.trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| {
            format!(
                "after {step}: containerd has no main pid ({:?})",
                text.trim()
            )
        })
}

/// ctr imported the images and lists every reference in `refs`.
fn imported(r: &Records, step: &str, refs: &[&str]) -> Result<String> {
    r.rc_ok(step)?;
    let listed = r.log(step)?;
    for reference in refs {
        ensure!(
            listed.lines().any(|l| l.starts_with(reference)),
            "after {step}: ctr images list has no {reference}: {}",
            judge::shown(&listed)
        );
    }
    Ok(format!("ctr -n k8s.io images import: {}", refs.join(", ")))
}

/// Paths that change for reasons other than the package between the listing before the
/// first installation and one after a purge, with whether everything below them goes too.
const VOLATILE: &[(&str, bool)] = &[
    // apt's and dpkg's logs, the journal, the pods' logs.
    ("/var/log", true),
    // apt's caches and lists, rebuilt by every apt-get.
    ("/var/cache/apt", true),
    ("/var/lib/apt", true),
    // dpkg's, debconf's and ucf's databases: that the package is gone from them is
    // checked with dpkg-query.
    ("/var/lib/dpkg", true),
    ("/var/cache/debconf", true),
    ("/var/lib/ucf", true),
    // containerd's images and state, which a purge keeps on purpose, and the CNI plugins'
    // IP allocations: the scenario deletes both after the listing.
    ("/var/lib/containerd", true),
    ("/var/lib/cni", true),
    // deb-systemd-helper's state directories, made on first use and shared by every
    // package (their entries for containerd are compared).
    ("/var/lib/systemd/deb-systemd-helper-enabled", false),
    ("/var/lib/systemd/deb-systemd-helper-masked", false),
    ("/var/tmp", true),
];

/// The purge left nothing: the package unknown to dpkg, containerd stopped, no process,
/// mount or cgroup of it, no config, no generated hosts file (the administrator's own
/// kept), no link of the kernel prerequisites (`last_step`, the last installation, left
/// them when its `last_answer` was false), and the tree as before the first installation.
fn purged(
    r: &Records,
    step: &str,
    package: &str,
    last_step: &str,
    last_answer: bool,
) -> Result<String> {
    r.rc_ok(step)?;
    let status = r.log(&format!("{step}.dpkg-status"))?;
    ensure!(
        !status.contains("install ok") && !status.contains("config-files"),
        "after {step}: dpkg-query still knows the package: {:?}",
        status.trim()
    );
    let active = r.log(&format!("{step}.is-active"))?;
    ensure!(
        active.trim() != "active",
        "after {step}: containerd.service is still active"
    );
    ensure!(
        r.read(&format!("{step}.config.toml")).is_err(),
        "after {step}: /etc/containerd/config.toml is still there"
    );
    let remains = r.log(&format!("{step}.remains"))?;
    ensure!(
        remains.trim().is_empty(),
        "after {step}, containerd left: {}",
        remains.lines().collect::<Vec<_>>().join(", ")
    );
    // The administrator's hosts file, and the directories it needs, are all that is left
    // under /etc/containerd.
    r.rc_ok(&format!("{step}.admin-hosts"))?;
    let admin = format!("{}/{ADMIN_HOST}/hosts.toml", mirrors::CERTS_D);
    let listing = r.log(&format!("{step}.etc-containerd"))?;
    let found: BTreeSet<&str> = listing.lines().collect();
    let admin_dir = format!("{}/{ADMIN_HOST}", mirrors::CERTS_D);
    let wanted: BTreeSet<&str> = ["/etc/containerd", mirrors::CERTS_D, &admin_dir, &admin]
        .into_iter()
        .collect();
    ensure!(
        found == wanted,
        "after {step}, /etc/containerd holds {found:?}; expected only the administrator's {admin} and its directories"
    );
    let before = r.read(&format!("{step}.admin-hosts.toml"))?;
    let after = r.read(&format!("{step}.certs.d/{ADMIN_HOST}/hosts.toml"))?;
    ensure!(
        before == after,
        "after {step}, the administrator's {admin} changed: {}",
        judge::shown(&after)
    );
    let links = if last_answer {
        "no link of the kernel prerequisites was there".to_owned()
    } else {
        // Not vacuous: the last installation, with the answer false, left them.
        kernel::links_to_null(&State::read(r, last_step)?, package)
            .with_context(|| format!("after {last_step}"))?;
        format!(
            "the links to /dev/null the answer false left ({}) removed",
            kernel::link_paths(package).join(", ")
        )
    };
    kernel::links_gone(&State::read(r, step)?, package).with_context(|| format!("after {step}"))?;
    let (appeared, disappeared) = judge::tree_changes(
        &r.read("before.tree")?,
        &r.read(&format!("{step}.tree"))?,
        VOLATILE,
    );
    if !appeared.is_empty() || !disappeared.is_empty() {
        bail!(
            "after {step}, the tree differs from before the first installation: left behind {:?}, gone {:?}",
            appeared,
            disappeared
        );
    }
    Ok(format!("no process, mount or cgroup of containerd, no config, no generated hosts file (the administrator's {admin} kept as it was); {links}; every path, /etc/modules-load.d and /etc/sysctl.d included, as before the first installation but the volatile ones (VOLATILE in xtask/src/vm/checks.rs)"))
}

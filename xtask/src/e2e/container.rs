//! Does a container run? Outside nspawn (runc cannot create cgroups in there): the package
//! is installed into a throwaway copy of the boot rootfs, and `container.sh` starts its
//! containerd there by hand with the config its postinst generated (cgroupfs driver),
//! imports a busybox image made with umoci, and runs a container on the shipped CNI bridge
//! config that pings its gateway — all inside PID, mount and network namespaces that die
//! with the script.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use containerd_stack::DebArch;

use crate::oci;
use crate::process::{describe, last_lines, text};
use crate::rootfs::Rootfs;

use super::{config_settings, shell_log};

const SCRIPT: &str = include_str!("container.sh");

/// The busybox applets the image carries, as links to /bin/busybox.
const APPLETS: &[&str] = &["sh", "ip", "ping"];

/// Makes an OCI image archive (one layer: a static busybox) at `tar`; its one ref is named
/// `e2e`.
pub fn make_image(arch: DebArch, work: &Path, tar: &Path) -> Result<String> {
    let image = oci::Image {
        tag: "e2e",
        applets: APPLETS,
        entrypoint: &[],
        cmd: &["/bin/sh"],
    };
    Ok(oci::make(&image, arch, work, tar)?.detail)
}

/// What the container check needs.
pub struct Run<'a> {
    pub rootfs: &'a Rootfs,
    pub deb: &'a Path,
    pub image: &'a Path,
    pub package: &'a str,
    pub sandbox_image: &'a str,
    /// The container's cgroup, absolute (cgroupfs driver).
    pub cgroup: &'a str,
}

/// Runs the container check; returns what it saw.
pub fn run(run: &Run, work: &Path) -> Result<String> {
    let tree = run.rootfs.extract()?;
    super::note_tree(&tree.path("/"));
    let e2e = tree.path("/e2e");
    fs::create_dir_all(e2e.join("out"))
        .with_context(|| format!("cannot create {}", e2e.display()))?;
    tree.copy_in(run.deb, "/e2e/package.deb")?;
    tree.copy_in(run.image, "/e2e/image.tar")?;
    let script = work.join("container.sh");
    fs::write(&script, SCRIPT).with_context(|| format!("cannot write {}", script.display()))?;

    let root = tree.path("/");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "sh",
    ])
    .arg(&script)
    .arg(&root)
    .arg(run.package)
    .arg(run.cgroup)
    .stdin(Stdio::null());
    let shown = describe(&cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(step) = line.strip_prefix("e2e: ") {
            println!("     {step}");
        }
    }
    let out_dir = e2e.join("out");
    let log =
        |step: &str| fs::read_to_string(out_dir.join(format!("{step}.log"))).unwrap_or_default();
    // The first step without a zero status is the one that failed.
    for step in [
        "mounts",
        "install",
        "config-dump",
        "start-containerd",
        "ctr-version",
        "import",
        "run",
        "bridge",
        "stop-containerd",
    ] {
        let rc = fs::read_to_string(out_dir.join(format!("{step}.rc"))).unwrap_or_default();
        if rc.trim() != "0" {
            let said = match rc.is_empty() {
                true => last_lines(&text(&out), 5),
                false => shell_log(&log(step)),
            };
            bail!(
                "container.sh step {step:?} failed{}: {said}",
                match rc.trim() {
                    "" => " (it never ran)".to_owned(),
                    rc => format!(" (exit status {rc})"),
                }
            );
        }
    }
    ensure!(
        out.status.success(),
        "{shown} failed ({}): {}",
        out.status,
        last_lines(&text(&out), 5)
    );

    let settings =
        config_settings(&log("config-dump")).context("containerd config dump in the chroot")?;
    ensure!(
        settings.systemd_cgroup == Some(false),
        "the postinst, with systemd_cgroup preseeded to false, generated a config whose dump has SystemdCgroup = {:?}",
        settings.systemd_cgroup
    );
    ensure!(
        settings.sandbox_image.as_deref() == Some(run.sandbox_image),
        "containerd config dump in the chroot: expected sandbox image {}, found {:?}",
        run.sandbox_image,
        settings.sandbox_image
    );
    let ran = log("run");
    let address = ran
        .lines()
        .find_map(|l| l.trim().strip_prefix("inet "))
        .and_then(|a| a.split_whitespace().next())
        .map(str::to_owned);
    ensure!(
        ran.contains("1 packets received"),
        "the container could not ping its gateway 10.88.0.1: {}",
        shell_log(&ran)
    );
    let Some(address) = address.filter(|a| a.starts_with("10.88.")) else {
        bail!(
            "the container's eth0 has no address from the bridge's 10.88.0.0/16: {}",
            shell_log(&ran)
        );
    };
    ensure!(
        log("bridge").contains("inet 10.88.0.1/16"),
        "cni0 in the namespace does not have the gateway address 10.88.0.1/16: {}",
        shell_log(&log("bridge"))
    );
    let ipam = tree.path("/var/lib/cni/networks/containerd-net");
    ensure!(
        ipam.is_dir(),
        "host-local kept no state in the chroot's {}: where did it go?",
        ipam.display()
    );
    Ok(format!(
        "the container ({address} on cni0) pinged its gateway 10.88.0.1 with the packaged containerd, runc, bridge and host-local; cgroupfs driver from the postinst's own config"
    ))
}

//! The guest's two disks, made without mounting anything. The root disk is a raw ext4
//! image that `mkfs.ext4 -d` fills from a Debian 13 root (a cached mmdebstrap tarball)
//! with what the guest needs added: the unit that runs the scenario, an fstab, the CRI
//! client's generated stubs, the registry's config; it is cached under
//! `target/vm/image-<key>/` with the kernel and initrd taken from the same tree, and every
//! boot opens it read-only. The job disk is made the same way for each boot from the run's
//! files (scenario, packages, images), and the guest writes its records into it;
//! [`read_records`] takes them out with `debugfs` after poweroff. It has no journal and the
//! guest mounts it `sync`: what the guest wrote before dying is in place, not in a journal
//! debugfs would not replay.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};

use crate::process::{self, last_lines, text};
use crate::repo_root;
use crate::rootfs::Rootfs;

/// The label the guest's fstab mounts the job disk by, at [`JOB_MOUNT`].
const JOB_LABEL: &str = "cs-vm-job";
pub const JOB_MOUNT: &str = "/vm";
/// Where the generated CRI client modules live in the guest.
pub const STUBS_DIR: &str = "/usr/local/lib/containerd-stack-vm";

/// The root disk's size: the tree, containerd's images and two unpacked packages at a
/// time fit with room to spare. The file is sparse.
const ROOT_SIZE: &str = "6G";

const FSTAB: &str = "\
/dev/vda / ext4 rw,errors=remount-ro 0 1
# The job disk: nofail, so that a missing one fails vm.service (which powers off) instead
# of stopping the boot in emergency mode.
LABEL=cs-vm-job /vm ext4 rw,sync,nofail 0 0
";

/// Runs the scenario once the system is up, then powers off whatever the outcome.
const UNIT: &str = "\
[Unit]
Description=containerd-stack VM scenario
After=multi-user.target
RequiresMountsFor=/vm
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStart=/bin/sh /vm/scenario.sh
StandardOutput=file:/vm/out/scenario.log
StandardError=inherit
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
";

/// Units that would run by themselves during the scenario: apt's and dpkg's timers (an
/// apt-get that holds the dpkg lock when the scenario's wants it), fstrim, and a login
/// prompt on the serial console the host reads.
const MASKED: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "fstrim.timer",
    "e2scrub_all.timer",
    "serial-getty@ttyS0.service",
];

/// Where the guest's registry (Debian's docker-registry) listens: loopback only, as the
/// guest has no other network.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The registry's config, in place of Debian's, which asks for basic auth (with an empty
/// htpasswd file) and listens on every address. Its access log (on by default) goes to the
/// journal, where the scenario reads which client fetched what.
const REGISTRY_CONFIG: &str = "\
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: 127.0.0.1:5000
";

/// Changes of the recipe below that the cache key does not see otherwise.
const RECIPE: &str = "2";

/// A cached root disk with its kernel and initrd.
pub struct RootImage {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// How long making it took, when this call made it.
    pub made_in: Option<Duration>,
}

/// The root disk made from `rootfs`, with the CRI client's stubs generated from `proto`
/// (the CRI's api.proto) by the root's own protoc and grpc_tools.
pub fn root_image(rootfs: &Rootfs, proto: &str) -> Result<RootImage> {
    let dir = repo_root().join("target/vm");
    let key = cache_key(rootfs, proto)?;
    let cached = dir.join(format!("image-{key}"));
    let image = |d: &Path, made_in| RootImage {
        disk: d.join("root.img"),
        kernel: d.join("vmlinuz"),
        initrd: d.join("initrd.img"),
        made_in,
    };
    if ["root.img", "vmlinuz", "initrd.img"]
        .iter()
        .all(|f| cached.join(f).is_file())
    {
        return Ok(image(&cached, None));
    }
    let start = Instant::now();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".image-")
        .tempdir_in(&dir)
        .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))?;
    let tree = rootfs.extract()?;
    let write = |inside: &str, text: &str| -> Result<()> {
        let path = tree.path(inside);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // A symlink there (resolv.conf often is one) points into this machine's own
        // tree: it is replaced, never written through.
        let _ = fs::remove_file(&path);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("/etc/fstab", FSTAB)?;
    // mmdebstrap copies the build machine's: the guest has no network, and its own names.
    write("/etc/hostname", "containerd-stack-vm\n")?;
    write(
        "/etc/hosts",
        "127.0.0.1 localhost\n127.0.1.1 containerd-stack-vm\n::1 localhost\n",
    )?;
    write("/etc/resolv.conf", "")?;
    write("/etc/systemd/system/vm.service", UNIT)?;
    write("/etc/docker/registry/config.yml", REGISTRY_CONFIG)?;
    let link = |target: &str, inside: &str| -> Result<()> {
        let path = tree.path(inside);
        let _ = fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path)
            .with_context(|| format!("cannot link {} to {target}", path.display()))
    };
    fs::create_dir_all(tree.path("/etc/systemd/system/multi-user.target.wants"))?;
    link(
        "/etc/systemd/system/vm.service",
        "/etc/systemd/system/multi-user.target.wants/vm.service",
    )?;
    for unit in MASKED {
        link("/dev/null", &format!("/etc/systemd/system/{unit}"))?;
    }
    fs::create_dir_all(tree.path(JOB_MOUNT))?;

    write(&format!("{STUBS_DIR}/api.proto"), &compilable(proto))?;
    tree.run(&[
        "protoc",
        &format!("--proto_path={STUBS_DIR}"),
        &format!("--python_out={STUBS_DIR}"),
        &format!("{STUBS_DIR}/api.proto"),
    ])
    .context("protoc in the guest's root cannot compile the CRI's api.proto")?;
    tree.run(&[
        "python3",
        "-m",
        "grpc_tools.protoc",
        &format!("--proto_path={STUBS_DIR}"),
        &format!("--grpc_python_out={STUBS_DIR}"),
        &format!("{STUBS_DIR}/api.proto"),
    ])
    .context("grpc_tools in the guest's root cannot generate the CRI's service stubs")?;
    // Compiled now, not at each of the client's starts under emulation.
    tree.run(&["python3", "-m", "compileall", "-q", STUBS_DIR])
        .context("python3 -m compileall in the guest's root")?;
    // The client imports what was generated, in the root's own Python: a stub that does
    // not load fails here, not in the guest.
    tree.run(&[
        "python3",
        "-c",
        &format!("import sys; sys.path.insert(0, '{STUBS_DIR}'); import api_pb2, api_pb2_grpc; api_pb2_grpc.RuntimeServiceStub"),
    ])
    .context("the generated CRI stubs do not load in the guest's Python")?;

    for (link_name, file) in [("/vmlinuz", "vmlinuz"), ("/initrd.img", "initrd.img")] {
        let at = tree.path(link_name);
        let target = fs::read_link(&at).with_context(|| {
            format!(
                "the root has no {link_name} link to its kernel: is linux-image-amd64 in {}?",
                rootfs.tarball.display()
            )
        })?;
        let from = tree.path(&format!("/{}", target.display()));
        fs::copy(&from, staging.path().join(file))
            .with_context(|| format!("cannot copy {}", from.display()))?;
    }
    mkfs(
        &tree.path("/"),
        &staging.path().join("root.img"),
        ROOT_SIZE,
        &["-L", "cs-vm-root"],
    )?;
    drop(tree);
    let staged = staging.keep();
    if cached.exists() {
        // Another run made it meanwhile: theirs is as good.
        let _ = fs::remove_dir_all(&staged);
    } else {
        fs::rename(&staged, &cached)
            .with_context(|| format!("cannot move the image to {}", cached.display()))?;
    }
    Ok(image(&cached, Some(start.elapsed())))
}

/// The CRI's api.proto as Debian's protoc 3.21 reads it: without `debug_redact` (a field
/// option of protobuf 22 and later that only hides a value in debug output; the wire
/// format is the same).
fn compilable(proto: &str) -> String {
    proto.replace(" [debug_redact = true]", "")
}

/// What the cached image depends on: the tarball (by name, size and age), the proto and
/// the recipe.
fn cache_key(rootfs: &Rootfs, proto: &str) -> Result<String> {
    let meta = fs::metadata(&rootfs.tarball)
        .with_context(|| format!("cannot read {}", rootfs.tarball.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let inputs = [
        rootfs
            .tarball
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        meta.len().to_string(),
        mtime.to_string(),
        proto.to_owned(),
        FSTAB.to_owned(),
        UNIT.to_owned(),
        REGISTRY_CONFIG.to_owned(),
        MASKED.join(","),
        STUBS_DIR.to_owned(),
        ROOT_SIZE.to_owned(),
        RECIPE.to_owned(),
    ];
    let hash = testkit::upstream::sha256_hex(inputs.join("\0").as_bytes());
    Ok(hash[..12].to_owned())
}

/// Makes the job disk at `img` from the directory `content` (which has `out/`).
pub fn job_disk(content: &Path, img: &Path) -> Result<()> {
    ensure!(
        content.join("out").is_dir(),
        "{} has no out/ for the guest's records",
        content.display()
    );
    // Room for the records beside the files, which are read, not copied.
    let size_mib = tree_size(content)?.div_ceil(1 << 20) + 256;
    let _ = fs::remove_file(img);
    mkfs(
        content,
        img,
        &format!("{size_mib}M"),
        &["-L", JOB_LABEL, "-O", "^has_journal"],
    )
}

/// Copies the job disk's `out/` into `dest/out`; fails when it is not there.
pub fn read_records(img: &Path, dest: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let out = dest.join("out");
    let _ = fs::remove_dir_all(&out);
    let mut cmd = Command::new("debugfs");
    cmd.arg("-R")
        .arg(format!("rdump /out {}", dest.display()))
        .arg(img);
    // debugfs exits 0 whatever a request did: its output and the result say.
    let said = text(&process::run(&mut cmd)?);
    if !out.is_dir() {
        bail!(
            "debugfs could not copy /out out of {}: {}",
            img.display(),
            last_lines(&said, 3)
        );
    }
    Ok(out)
}

fn mkfs(from: &Path, img: &Path, size: &str, options: &[&str]) -> Result<()> {
    process::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .args(options)
            .arg("-d")
            .arg(from)
            .arg(img)
            .arg(size),
    )
    .with_context(|| format!("cannot make {} from {}", img.display(), from.display()))?;
    Ok(())
}

/// The bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += tree_size(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redact_is_the_only_change_to_the_proto() {
        let proto = "message AuthConfig {\n    string password = 2 [debug_redact = true];\n    string username = 1;\n}\n";
        assert_eq!(
            compilable(proto),
            "message AuthConfig {\n    string password = 2;\n    string username = 1;\n}\n"
        );
    }

    #[test]
    fn the_registry_listens_where_the_scenario_pushes() {
        assert!(REGISTRY_CONFIG.contains(&format!("addr: {REGISTRY}\n")));
        assert!(!REGISTRY_CONFIG.contains("auth:"));
    }

    #[test]
    fn the_fstab_mounts_the_job_disk_where_the_unit_wants_it() {
        assert!(FSTAB.contains(&format!("LABEL={JOB_LABEL} {JOB_MOUNT} ")));
        assert!(UNIT.contains(&format!("RequiresMountsFor={JOB_MOUNT}")));
    }
}

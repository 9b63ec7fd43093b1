//! Container images made on the host as OCI archives with umoci: one layer holding a static
//! busybox and links to a few of its applets, for the e2e container check and the VM's
//! guests. The guests have no network, so their sandbox image is a stand-in made this way
//! too, under the configured sandbox image's name; its process sleeps, so the sandbox stays
//! up until it is stopped. Each image's config digest is what containerd's CRI reports as
//! the image's id, so the host knows which image a pull in the guest must have brought.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use containerd_stack::elf::{self, Linkage};
use containerd_stack::DebArch;

use crate::process;

/// One image: its archive's ref name (the reference's tag), the applets it links, and the
/// process it starts: `entrypoint`, then `cmd` (the arguments a caller's own replace).
pub struct Image<'a> {
    pub tag: &'a str,
    pub applets: &'a [&'a str],
    pub entrypoint: &'a [&'a str],
    pub cmd: &'a [&'a str],
}

/// An image archive made by [`make`].
pub struct Made {
    /// What it holds, for the output.
    pub detail: String,
    /// The digest of its config (`sha256:…`): the image's id in containerd.
    pub id: String,
}

/// Writes `image` as an OCI archive at `tar`; `work` is scratch space.
pub fn make(image: &Image, arch: DebArch, work: &Path, tar: &Path) -> Result<Made> {
    let busybox = Path::new("/bin/busybox");
    let linkage = elf::inspect(busybox, "/bin/busybox", arch)
        .context("/bin/busybox: apt-get install busybox-static")?;
    ensure!(
        linkage == Linkage::Static,
        "/bin/busybox is dynamically linked, but the image has no libc: apt-get install busybox-static"
    );
    let dir = tempfile::Builder::new()
        .prefix("oci-")
        .tempdir_in(work)
        .with_context(|| format!("cannot create a temporary directory in {}", work.display()))?;
    let layout = dir.path().join("layout");
    let bundle = dir.path().join("bundle");
    let reference = format!("{}:{}", layout.display(), image.tag);
    let umoci = |args: &[&str]| process::run(Command::new("umoci").args(args));
    umoci(&["init", "--layout", &layout.display().to_string()])?;
    umoci(&["new", "--image", &reference])?;
    umoci(&[
        "unpack",
        "--image",
        &reference,
        &bundle.display().to_string(),
    ])?;
    let bin = bundle.join("rootfs/bin");
    fs::create_dir_all(&bin).with_context(|| format!("cannot create {}", bin.display()))?;
    fs::copy(busybox, bin.join("busybox"))
        .with_context(|| format!("cannot copy /bin/busybox to {}", bin.display()))?;
    for applet in image.applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet))
            .with_context(|| format!("cannot link {applet} in {}", bin.display()))?;
    }
    umoci(&[
        "repack",
        "--image",
        &reference,
        &bundle.display().to_string(),
    ])?;
    let mut config = vec!["config", "--image", &reference, "--config.env", "PATH=/bin"];
    for arg in image.entrypoint {
        config.extend(["--config.entrypoint", arg]);
    }
    for arg in image.cmd {
        config.extend(["--config.cmd", arg]);
    }
    umoci(&config)?;
    let id = config_digest(&layout, image.tag)?;
    process::run(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(tar)
            .arg("."),
    )?;
    let size = fs::metadata(tar)
        .with_context(|| format!("cannot read {}", tar.display()))?
        .len();
    let process = [image.entrypoint, image.cmd].concat().join(" ");
    Ok(Made {
        detail: format!(
            "{} ({size} bytes: busybox with {}, running {process}; id {id})",
            tar.display(),
            image.applets.join(", "),
        ),
        id,
    })
}

/// The config digest of the manifest tagged `tag` in the OCI layout at `layout`: its
/// index names the manifest, the manifest names the config.
fn config_digest(layout: &Path, tag: &str) -> Result<String> {
    let read_json = |path: &Path| -> Result<serde_json::Value> {
        let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", path.display()))
    };
    let blob = |digest: &str| -> Result<std::path::PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .with_context(|| format!("{digest:?} is not a sha256 digest"))?;
        Ok(layout.join("blobs/sha256").join(hex))
    };
    let index = read_json(&layout.join("index.json"))?;
    let manifest = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .and_then(|m| m["digest"].as_str())
        .with_context(|| {
            format!(
                "{}/index.json has no manifest tagged {tag}",
                layout.display()
            )
        })?;
    let manifest = read_json(&blob(manifest)?)?;
    let config = manifest["config"]["digest"].as_str().with_context(|| {
        format!(
            "the manifest tagged {tag} in {} has no config",
            layout.display()
        )
    })?;
    // The id is only worth something if it names the bytes that are there.
    let bytes = fs::read(blob(config)?).with_context(|| format!("{config}: no such blob"))?;
    let actual = format!("sha256:{}", testkit::upstream::sha256_hex(&bytes));
    ensure!(
        actual == config,
        "the config blob {config} in {} hashes to {actual}",
        layout.display()
    );
    Ok(config.to_owned())
}

/// A reference split into what ctr's `--base-name` takes and the tag the archive carries
/// (`registry.k8s.io/pause:3.10.2` → `registry.k8s.io/pause`, `3.10.2`).
pub fn split_reference(reference: &str) -> Result<(&str, &str)> {
    let (name, tag) = reference
        .rsplit_once(':')
        .filter(|(name, tag)| {
            !name.is_empty() && !name.contains('@') && !tag.is_empty() && !tag.contains('/')
        })
        .with_context(|| format!("{reference:?}: expected an image reference with a tag, like registry.k8s.io/pause:3.10.2"))?;
    ensure!(
        tag.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "{reference:?}: the tag {tag:?} is not one an OCI archive can carry (letters, digits, . _ -)"
    );
    Ok((name, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(
            split_reference("registry.k8s.io/pause:3.10.2").unwrap(),
            ("registry.k8s.io/pause", "3.10.2")
        );
        assert_eq!(
            split_reference("localhost:5000/pause:3.10").unwrap(),
            ("localhost:5000/pause", "3.10")
        );
        assert!(split_reference("localhost:5000/pause").is_err());
        assert!(split_reference("pause").is_err());
        assert!(split_reference("pause@sha256:abc").is_err());
    }
}

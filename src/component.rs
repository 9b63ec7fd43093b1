//! The one table of the four upstream components: where each one's release asset lives and
//! how it is packed, which of its files are taken and where they are installed, how
//! upstream publishes its checksum, and what Debian packages it stands in for. Every other
//! module reads this table instead of matching on the component. Pure data.

use std::fmt;

use serde::Serialize;

/// The four upstream projects a stack is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum ComponentKind {
    Containerd,
    Runc,
    CniPlugins,
    Crictl,
}

/// How an asset is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packing {
    /// A gzip-compressed tar archive.
    TarGz,
    /// The asset is the program itself, installed under this name.
    Bare { installed_as: &'static str },
}

/// Which programs to take from an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// These archive paths, each required.
    Named(&'static [&'static str]),
    /// Every regular file at the top of the archive except the documentation files named.
    TopLevelExcept(&'static [&'static str]),
    /// The asset itself.
    Whole,
}

/// Where a component's programs are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Install {
    /// Into this directory, relative to `/`, by their own names.
    Dir(&'static str),
    /// Into the CNI plugin directory of the stack's settings.
    CniBinDir,
}

/// How upstream publishes the sha256 of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sums {
    /// `<asset><suffix>` beside the asset: `hash  name` lines, or a bare hash.
    Beside { suffix: &'static str },
    /// One clear-signed file of `hash  name` lines for every architecture, beside the
    /// assets, signed by the maintainers' keyring kept at the repository's root.
    ClearSigned {
        file: &'static str,
        keyring: &'static str,
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spec {
    pub kind: ComponentKind,
    /// The key under `[components]` in stack.toml.
    pub key: &'static str,
    /// Whether a package can be made without it.
    pub required: bool,
    /// The GitHub repository (`owner/name`) that publishes it.
    pub repo: &'static str,
    /// The release asset's file name, with `{version}` and `{arch}` (Go's name) to fill in.
    pub asset: &'static str,
    pub packing: Packing,
    pub pick: Pick,
    pub install: Install,
    pub sums: Sums,
    /// Debian packages that ship the same files: the package conflicts with and replaces
    /// each.
    pub conflicts: &'static [&'static str],
    /// Packages it provides at the component's version, so that what depends on them
    /// (kubelet on kubernetes-cni, kubeadm on cri-tools) installs beside it.
    pub provides: &'static [&'static str],
}

/// containerd-stress is a load generator, not part of a node's runtime.
pub const CONTAINERD_PROGRAMS: &[&str] =
    &["bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr"];

/// The table, in the order components are listed, built and shipped.
pub const COMPONENTS: [Spec; 4] = [
    Spec {
        kind: ComponentKind::Containerd,
        key: "containerd",
        required: true,
        repo: "containerd/containerd",
        asset: "containerd-{version}-linux-{arch}.tar.gz",
        packing: Packing::TarGz,
        pick: Pick::Named(CONTAINERD_PROGRAMS),
        install: Install::Dir("usr/bin"),
        sums: Sums::Beside {
            suffix: ".sha256sum",
        },
        // Docker's containerd.io is replaced, not provided: providing it would claim to be
        // Docker's own build.
        conflicts: &["containerd", "containerd.io"],
        provides: &["containerd"],
    },
    Spec {
        kind: ComponentKind::Runc,
        key: "runc",
        required: true,
        repo: "opencontainers/runc",
        asset: "runc.{arch}",
        packing: Packing::Bare {
            installed_as: "runc",
        },
        pick: Pick::Whole,
        install: Install::Dir("usr/sbin"),
        sums: Sums::ClearSigned {
            file: "runc.sha256sum",
            keyring: "runc.keyring",
        },
        conflicts: &["runc"],
        provides: &["runc"],
    },
    Spec {
        kind: ComponentKind::CniPlugins,
        key: "cni-plugins",
        required: false,
        repo: "containernetworking/plugins",
        asset: "cni-plugins-linux-{arch}-v{version}.tgz",
        packing: Packing::TarGz,
        pick: Pick::TopLevelExcept(&["README.md", "LICENSE"]),
        install: Install::CniBinDir,
        sums: Sums::Beside { suffix: ".sha256" },
        conflicts: &["kubernetes-cni"],
        provides: &["kubernetes-cni"],
    },
    Spec {
        kind: ComponentKind::Crictl,
        key: "crictl",
        required: false,
        repo: "kubernetes-sigs/cri-tools",
        asset: "crictl-v{version}-linux-{arch}.tar.gz",
        packing: Packing::TarGz,
        pick: Pick::Named(&["crictl"]),
        install: Install::Dir("usr/bin"),
        // A bare hash, without the file name.
        sums: Sums::Beside { suffix: ".sha256" },
        conflicts: &["cri-tools"],
        provides: &["cri-tools"],
    },
];

impl ComponentKind {
    pub const ALL: [ComponentKind; 4] = [
        ComponentKind::Containerd,
        ComponentKind::Runc,
        ComponentKind::CniPlugins,
        ComponentKind::Crictl,
    ];

    /// Its row of [`COMPONENTS`].
    pub fn spec(self) -> &'static Spec {
        COMPONENTS
            .iter()
            .find(|s| s.kind == self)
            .expect("every component has a row")
    }

    /// The key under `[components]`.
    pub fn key(self) -> &'static str {
        self.spec().key
    }

    pub fn required(self) -> bool {
        self.spec().required
    }

    /// The component whose stack.toml key is `key`.
    pub fn from_key(key: &str) -> Option<ComponentKind> {
        COMPONENTS.iter().find(|s| s.key == key).map(|s| s.kind)
    }
}

impl Spec {
    /// The release asset's file name for `version` and Go architecture `arch`.
    pub fn asset_name(&self, version: &str, arch: &str) -> String {
        self.asset
            .replace("{version}", version)
            .replace("{arch}", arch)
    }

    /// The path of a release file below `https://github.com/`.
    pub fn download_path(&self, version: &str, file: &str) -> String {
        format!("{}/releases/download/v{version}/{file}", self.repo)
    }

    /// Where a program named `name` is installed, relative to `/`.
    pub fn install_path(&self, name: &str, cni_bin_dir: &str) -> String {
        let dir = match self.install {
            Install::Dir(dir) => dir,
            Install::CniBinDir => cni_bin_dir.trim_start_matches('/'),
        };
        format!("{dir}/{name}")
    }
}

impl From<ComponentKind> for &'static str {
    fn from(k: ComponentKind) -> Self {
        k.key()
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_in_order() {
        let kinds: Vec<_> = COMPONENTS.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ComponentKind::ALL);
        for k in ComponentKind::ALL {
            assert_eq!(ComponentKind::from_key(k.key()), Some(k));
        }
        assert_eq!(ComponentKind::from_key("buildkit"), None);
    }

    #[test]
    fn programs_go_where_debian_and_upstream_put_them() {
        let c = |k: ComponentKind, name| k.spec().install_path(name, "/opt/cni/bin");
        assert_eq!(c(ComponentKind::Containerd, "ctr"), "usr/bin/ctr");
        assert_eq!(c(ComponentKind::Runc, "runc"), "usr/sbin/runc");
        assert_eq!(c(ComponentKind::CniPlugins, "bridge"), "opt/cni/bin/bridge");
        assert_eq!(c(ComponentKind::Crictl, "crictl"), "usr/bin/crictl");
    }
}

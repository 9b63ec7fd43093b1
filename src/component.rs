//! The one table of the four upstream components: where each one's release asset lives and
//! how it is packed, which of its files are taken and where they are installed, how
//! upstream publishes its checksum, what Debian packages it stands in for, and who supplies
//! it under which license (what the copyright file and the SBOM say). Every other module
//! reads this table instead of matching on the component. Pure data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The four upstream projects a stack is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
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
    /// Who publishes the release (the SBOM's supplier organisation).
    pub supplier: &'static str,
    /// The copyright holder, as the copyright file names it.
    pub copyright: &'static str,
    /// The SPDX license identifier of the release; the copyright template carries the text
    /// of each license used here.
    pub license: &'static str,
    pub homepage: &'static str,
    /// The Go module the programs are built from, without Go's `/vN` suffix of major
    /// versions from 2 on: vulnerability scanners match an SBOM's `pkg:golang/…` package URL
    /// against their advisories.
    pub go_module: &'static str,
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
        supplier: "containerd project",
        copyright: "The containerd Authors",
        license: "Apache-2.0",
        homepage: "https://containerd.io",
        go_module: "github.com/containerd/containerd",
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
        supplier: "Open Container Initiative",
        copyright: "The runc Authors",
        license: "Apache-2.0",
        homepage: "https://github.com/opencontainers/runc",
        go_module: "github.com/opencontainers/runc",
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
        supplier: "CNI project",
        copyright: "The CNI Authors",
        license: "Apache-2.0",
        homepage: "https://www.cni.dev",
        go_module: "github.com/containernetworking/plugins",
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
        supplier: "Kubernetes SIG Node",
        copyright: "The Kubernetes Authors",
        license: "Apache-2.0",
        homepage: "https://github.com/kubernetes-sigs/cri-tools",
        go_module: "sigs.k8s.io/cri-tools",
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

    /// The release's page.
    pub fn release_page(&self, version: &str) -> String {
        format!("https://github.com/{}/releases/tag/v{version}", self.repo)
    }

    /// The package URL (purl) of the Go module at `version`; from major version 2 on, Go's
    /// module path ends in `/vN`.
    pub fn purl(&self, version: &str) -> String {
        let major: u64 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        match major {
            0 | 1 => format!("pkg:golang/{}@v{version}", self.go_module),
            n => format!("pkg:golang/{}/v{n}@v{version}", self.go_module),
        }
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

impl TryFrom<String> for ComponentKind {
    type Error = String;

    fn try_from(key: String) -> Result<ComponentKind, String> {
        ComponentKind::from_key(&key).ok_or_else(|| format!("unknown component {key:?}"))
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
    fn the_copyright_template_has_the_text_of_every_license() {
        let template = include_str!("../debian-templates/copyright.hbs");
        for spec in &COMPONENTS {
            let paragraph = format!("\n\nLicense: {}\n ", spec.license);
            assert!(
                template.contains(&paragraph),
                "{}: {}",
                spec.key,
                spec.license
            );
        }
    }

    #[test]
    fn package_urls_name_the_go_module_and_tag() {
        assert_eq!(
            ComponentKind::Containerd.spec().purl("2.3.4"),
            "pkg:golang/github.com/containerd/containerd/v2@v2.3.4"
        );
        assert_eq!(
            ComponentKind::Containerd.spec().purl("1.7.24"),
            "pkg:golang/github.com/containerd/containerd@v1.7.24"
        );
        assert_eq!(
            ComponentKind::Runc.spec().purl("1.4.3"),
            "pkg:golang/github.com/opencontainers/runc@v1.4.3"
        );
        assert_eq!(
            ComponentKind::Crictl.spec().release_page("1.36.0"),
            "https://github.com/kubernetes-sigs/cri-tools/releases/tag/v1.36.0"
        );
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

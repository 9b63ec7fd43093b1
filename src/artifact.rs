//! Where each component's release asset lives upstream, and which of its files we ship.
//! Pure data: URLs and names follow the upstream release pages exactly.

use serde::Serialize;

use crate::arch::DebArch;
use crate::stack::{Component, ComponentKind, Sha256};

/// The canonical host of every upstream asset; `--mirror` replaces it.
pub const GITHUB: &str = "https://github.com/";

/// How an asset is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packing {
    /// A gzip-compressed tar archive.
    TarGz,
    /// The asset is the program itself.
    Bare,
}

/// Which programs to take from an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// These archive paths, each required.
    Named(&'static [&'static str]),
    /// Every regular file at the top of the archive except the documentation files named.
    TopLevelExcept(&'static [&'static str]),
    /// The asset itself.
    Whole,
}

/// One upstream release asset for one architecture, pinned by its sha256.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub component: ComponentKind,
    pub version: String,
    pub arch: DebArch,
    /// The path below `https://github.com/`.
    pub path: String,
    pub file_name: String,
    pub sha256: Sha256,
    pub packing: Packing,
    pub pick: Pick,
}

/// containerd-stress is a load generator, not part of a node's runtime.
pub const CONTAINERD_PROGRAMS: &[&str] =
    &["bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr"];

impl Artifact {
    /// The asset of `component` for `arch`, or `None` when stack.toml pins no sha256 for it
    /// (an unpinned asset is never fetched).
    pub fn for_component(component: &Component, arch: DebArch) -> Option<Artifact> {
        let sha256 = component.sha256.get(&arch)?.clone();
        let v = &component.version;
        let go = arch.go_arch();
        let (repo, file_name, packing, pick) = match component.kind {
            ComponentKind::Containerd => (
                "containerd/containerd",
                format!("containerd-{v}-linux-{go}.tar.gz"),
                Packing::TarGz,
                Pick::Named(CONTAINERD_PROGRAMS),
            ),
            ComponentKind::Runc => (
                "opencontainers/runc",
                format!("runc.{go}"),
                Packing::Bare,
                Pick::Whole,
            ),
            ComponentKind::CniPlugins => (
                "containernetworking/plugins",
                format!("cni-plugins-linux-{go}-v{v}.tgz"),
                Packing::TarGz,
                Pick::TopLevelExcept(&["README.md", "LICENSE"]),
            ),
            ComponentKind::Crictl => (
                "kubernetes-sigs/cri-tools",
                format!("crictl-v{v}-linux-{go}.tar.gz"),
                Packing::TarGz,
                Pick::Named(&["crictl"]),
            ),
        };
        Some(Artifact {
            component: component.kind,
            version: v.clone(),
            arch,
            path: format!("{repo}/releases/download/v{v}/{file_name}"),
            file_name,
            sha256,
            packing,
            pick,
        })
    }

    pub fn upstream_url(&self) -> String {
        format!("{GITHUB}{}", self.path)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn component(kind: ComponentKind, version: &str) -> Component {
        let hash = Sha256::parse(&"ab".repeat(32)).unwrap();
        Component {
            kind,
            version: version.into(),
            sha256: BTreeMap::from([(DebArch::Ppc64el, hash)]),
        }
    }

    #[test]
    fn urls_match_upstream_release_pages() {
        let cases = [
            (ComponentKind::Containerd, "2.3.4", "https://github.com/containerd/containerd/releases/download/v2.3.4/containerd-2.3.4-linux-ppc64le.tar.gz"),
            (ComponentKind::Runc, "1.4.3", "https://github.com/opencontainers/runc/releases/download/v1.4.3/runc.ppc64le"),
            (ComponentKind::CniPlugins, "1.9.1", "https://github.com/containernetworking/plugins/releases/download/v1.9.1/cni-plugins-linux-ppc64le-v1.9.1.tgz"),
            (ComponentKind::Crictl, "1.36.0", "https://github.com/kubernetes-sigs/cri-tools/releases/download/v1.36.0/crictl-v1.36.0-linux-ppc64le.tar.gz"),
        ];
        for (kind, v, url) in cases {
            let a = Artifact::for_component(&component(kind, v), DebArch::Ppc64el).unwrap();
            assert_eq!(a.upstream_url(), url);
            assert!(url.ends_with(&a.file_name));
        }
    }

    #[test]
    fn unpinned_arch_has_no_artifact() {
        let c = component(ComponentKind::Runc, "1.4.3");
        assert!(Artifact::for_component(&c, DebArch::Amd64).is_none());
    }
}

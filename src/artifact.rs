//! One upstream release asset for one architecture, pinned by its sha256: the component
//! table's row filled in with a version and an architecture. Pure data: URLs and names
//! follow the upstream release pages exactly.

use serde::Serialize;

use crate::arch::DebArch;
pub use crate::component::{Packing, Pick};
use crate::stack::{Component, ComponentKind, Sha256};

/// The canonical host of every upstream asset; `--mirror` replaces it.
pub const GITHUB: &str = "https://github.com/";

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

impl Artifact {
    /// The asset of `component` for `arch`, or `None` when stack.toml pins no sha256 for it
    /// (an unpinned asset is never fetched).
    pub fn for_component(component: &Component, arch: DebArch) -> Option<Artifact> {
        let sha256 = component.sha256.get(&arch)?.clone();
        let spec = component.kind.spec();
        let v = &component.version;
        let file_name = spec.asset_name(v, arch.go_arch());
        Some(Artifact {
            component: component.kind,
            version: v.clone(),
            arch,
            path: spec.download_path(v, &file_name),
            file_name,
            sha256,
            packing: spec.packing,
            pick: spec.pick,
        })
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
            assert_eq!(format!("{GITHUB}{}", a.path), url);
            assert!(url.ends_with(&a.file_name));
        }
    }

    #[test]
    fn unpinned_arch_has_no_artifact() {
        let c = component(ComponentKind::Runc, "1.4.3");
        assert!(Artifact::for_component(&c, DebArch::Amd64).is_none());
    }
}

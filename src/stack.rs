//! `stack.toml`: the one input. Parsing is strict (unknown keys are errors) and everything
//! is validated here, so the rest of the pipeline works on values that are known good.

use std::collections::BTreeMap;
use std::path::{Component as PathComponent, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arch::DebArch;
use crate::error::{Error, IoContext, Result};

/// The stack this tool was released with: today's pins, with comments. `init` writes it,
/// `--version` names its versions.
pub const DEFAULT_STACK: &str = include_str!("../stack.toml");

pub use crate::component::ComponentKind;

pub use crate::hash::Sha256;

/// One pinned upstream component.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub kind: ComponentKind,
    pub version: String,
    pub sha256: BTreeMap<DebArch, Sha256>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageMeta {
    pub name: String,
    pub revision: String,
    pub maintainer: String,
    /// `[package] templates`: a directory of templates used in place of the built-in ones,
    /// resolved against the manifest's own directory.
    pub templates: Option<PathBuf>,
    /// `[package] distribution`: the suite the changelog entry and the `.changes` name
    /// (`stable` unless set).
    pub distribution: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub systemd_cgroup: bool,
    pub sandbox_image: String,
    /// Absolute, normalised, e.g. `/opt/cni/bin`.
    pub cni_bin_dir: String,
    /// Whether the package ships the modules-load.d and sysctl.d files kubeadm's preflight
    /// wants (overlay, br_netfilter, IP forwarding, bridged traffic through iptables).
    pub kernel_prerequisites: bool,
    /// Registry host (or `_default`) → the mirror endpoints tried, in order, before it.
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
}

impl Settings {
    /// The mirrors on one line, as debconf's `registry_mirrors` string holds them:
    /// `docker.io=https://m1.example.org,https://m2.example.org registry.k8s.io=http://10.0.0.5:5000`.
    pub fn registry_mirrors_line(&self) -> String {
        self.registry_mirrors
            .iter()
            .map(|(host, urls)| format!("{host}={}", urls.join(",")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The key of `[settings.registry_mirrors]` that applies to every registry.
pub const DEFAULT_REGISTRY: &str = "_default";

/// Whether `s` names a registry as containerd's hosts directory does: a lowercase host name
/// or IPv4 address, with an optional port, or [`DEFAULT_REGISTRY`]. The postinst's check of
/// debconf's answer (`registry-mirrors.sh`) follows the same rules.
pub fn is_registry_host(s: &str) -> bool {
    s == DEFAULT_REGISTRY || is_host_port(s)
}

/// Whether `s` is a mirror endpoint: `http://` or `https://`, a host as in
/// [`is_registry_host`] (not `_default`), and an optional path of plain characters.
pub fn is_mirror_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    is_host_port(authority)
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~%/+-".contains(c))
}

fn is_host_port(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    host.len() <= 253
        && host.split('.').all(label)
        && port.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
        })
}

/// A validated `stack.toml`.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub package: PackageMeta,
    /// In [`ComponentKind::ALL`] order; optional components that were left out are absent.
    pub components: Vec<Component>,
    pub settings: Settings,
}

impl Stack {
    pub fn load(path: &Path) -> Result<Stack> {
        let text = std::fs::read_to_string(path).at(path)?;
        Stack::parse(&text, path)
    }

    /// Parses and validates; `origin` is only used to name the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Stack> {
        let raw: RawStack = toml::from_str(text).map_err(|e| Error::Manifest {
            path: origin.to_owned(),
            message: describe_toml_error(text, &e),
        })?;
        raw.validate(origin)
    }

    /// [`DEFAULT_STACK`], parsed.
    pub fn default_stack() -> Stack {
        Stack::parse(DEFAULT_STACK, Path::new("stack.toml")).expect("the built-in stack is valid")
    }

    pub fn component(&self, kind: ComponentKind) -> Option<&Component> {
        self.components.iter().find(|c| c.kind == kind)
    }

    /// containerd's version, made sortable by dpkg (`2.3.0-rc.1` becomes `2.3.0~rc.1`).
    pub fn upstream_version(&self) -> String {
        let containerd = self
            .component(ComponentKind::Containerd)
            .expect("containerd is required");
        containerd.version.replace('-', "~")
    }

    /// The Debian package version, `<containerd version>-<revision>`.
    pub fn deb_version(&self) -> String {
        format!("{}-{}", self.upstream_version(), self.package.revision)
    }

    /// Architectures for which every required component is pinned.
    pub fn pinned_arches(&self) -> Vec<DebArch> {
        DebArch::ALL
            .into_iter()
            .filter(|a| {
                self.components
                    .iter()
                    .filter(|c| c.kind.required())
                    .all(|c| c.sha256.contains_key(a))
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    package: RawPackage,
    components: RawComponents,
    settings: RawSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: String,
    revision: String,
    maintainer: String,
    templates: Option<PathBuf>,
    distribution: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponents {
    containerd: Option<RawComponent>,
    runc: Option<RawComponent>,
    #[serde(rename = "cni-plugins")]
    cni_plugins: Option<RawComponent>,
    crictl: Option<RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    version: String,
    #[serde(default)]
    sha256: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    systemd_cgroup: bool,
    sandbox_image: String,
    cni_bin_dir: String,
    #[serde(default = "yes")]
    kernel_prerequisites: bool,
    #[serde(default)]
    registry_mirrors: BTreeMap<String, Vec<String>>,
}

fn yes() -> bool {
    true
}

impl RawStack {
    fn validate(self, origin: &Path) -> Result<Stack> {
        let bad = |key: &str, message: String| Error::Manifest {
            path: origin.to_owned(),
            message: format!("{key}: {message}"),
        };

        let p = self.package;
        if !is_package_name(&p.name) {
            return Err(bad(
                "package.name",
                format!("{:?} is not a Debian package name (lowercase letters, digits, '+', '-', '.'; at least two characters, starting alphanumeric)", p.name),
            ));
        }
        if p.revision.is_empty()
            || !p
                .revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
        {
            return Err(bad(
                "package.revision",
                format!(
                    "{:?} is not a Debian revision (letters, digits, '+', '.', '~')",
                    p.revision
                ),
            ));
        }
        if !is_maintainer(&p.maintainer) {
            return Err(bad(
                "package.maintainer",
                format!(
                    "{:?} is not of the form \"Full Name <address@domain>\"",
                    p.maintainer
                ),
            ));
        }

        let distribution = p.distribution.unwrap_or_else(|| "stable".into());
        if !is_distribution(&distribution) {
            return Err(bad(
                "package.distribution",
                format!(
                    "{distribution:?} is not a suite or codename (letters, digits, '.', '+', '-')"
                ),
            ));
        }

        let raw = self.components;
        let slots = [
            (ComponentKind::Containerd, raw.containerd),
            (ComponentKind::Runc, raw.runc),
            (ComponentKind::CniPlugins, raw.cni_plugins),
            (ComponentKind::Crictl, raw.crictl),
        ];
        let mut components = Vec::new();
        for (kind, slot) in slots {
            let base = format!("components.{}", kind.key());
            let Some(rc) = slot else {
                if kind.required() {
                    return Err(bad(&base, "is required but missing".into()));
                }
                continue;
            };
            if !is_upstream_version(&rc.version) {
                return Err(bad(
                    &format!("{base}.version"),
                    format!(
                        "{:?} is not a release version like \"1.2.3\" (no leading 'v')",
                        rc.version
                    ),
                ));
            }
            let mut sha256 = BTreeMap::new();
            for (arch, hash) in rc.sha256 {
                let key = format!("{base}.sha256.{arch}");
                let arch: DebArch = arch.parse().map_err(|e: Error| bad(&key, e.to_string()))?;
                let hash = Sha256::parse(&hash).ok_or_else(|| {
                    bad(
                        &key,
                        format!(
                            "{hash:?} is not a sha256 (64 lowercase hex digits, got {} characters)",
                            hash.len()
                        ),
                    )
                })?;
                sha256.insert(arch, hash);
            }
            components.push(Component {
                kind,
                version: rc.version,
                sha256,
            });
        }

        let s = self.settings;
        // Both values end up inside single-quoted shell words in the maintainer scripts and
        // in TOML strings: only the characters image references and paths need are allowed.
        if s.sandbox_image.is_empty()
            || !s
                .sandbox_image
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/:@-".contains(c))
        {
            return Err(bad(
                "settings.sandbox_image",
                format!("{:?} is not an image reference", s.sandbox_image),
            ));
        }
        let cni_bin_dir = normalise_abs_dir(&s.cni_bin_dir).ok_or_else(|| {
            bad(
                "settings.cni_bin_dir",
                format!(
                    "{:?} must be an absolute directory without '..', not the root",
                    s.cni_bin_dir
                ),
            )
        })?;

        for (host, urls) in &s.registry_mirrors {
            let key = format!("settings.registry_mirrors.{host:?}");
            if !is_registry_host(host) {
                return Err(bad(
                    &key,
                    format!("{host:?} is not a registry host (a lowercase host name or IPv4 address with an optional :port, or {DEFAULT_REGISTRY})"),
                ));
            }
            if urls.is_empty() {
                return Err(bad(
                    &key,
                    "lists no mirror; give one or more URLs, or leave the host out".into(),
                ));
            }
            for url in urls {
                if !is_mirror_url(url) {
                    return Err(bad(
                        &key,
                        format!("{url:?} is not a mirror URL (http:// or https://, a host with an optional :port, an optional path)"),
                    ));
                }
            }
        }
        let registry_mirrors = s.registry_mirrors.clone();
        Ok(Stack {
            package: PackageMeta {
                name: p.name,
                revision: p.revision,
                maintainer: p.maintainer,
                templates: p.templates.map(|t| {
                    let base = origin.parent().unwrap_or(Path::new(""));
                    base.join(t)
                }),
                distribution,
            },
            components,
            settings: Settings {
                kernel_prerequisites: s.kernel_prerequisites,
                registry_mirrors,
                systemd_cgroup: s.systemd_cgroup,
                sandbox_image: s.sandbox_image,
                cni_bin_dir,
            },
        })
    }
}

/// One line: toml's message plus where it is, without its multi-line source excerpt.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

fn is_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// A suite or codename as a changelog entry and a `.changes` carry it (`stable`,
/// `bookworm-backports`, `UNRELEASED`).
pub fn is_distribution(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn is_maintainer(s: &str) -> bool {
    let Some((name, rest)) = s.split_once(" <") else {
        return false;
    };
    let Some(addr) = rest.strip_suffix('>') else {
        return false;
    };
    !name.trim().is_empty()
        && !s.contains('\n')
        && addr
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        && !addr.contains(['<', '>', ' '])
}

fn is_upstream_version(s: &str) -> bool {
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let parts: Vec<_> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
}

fn normalise_abs_dir(s: &str) -> Option<String> {
    let path = Path::new(s);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            PathComponent::RootDir | PathComponent::CurDir => {}
            PathComponent::Normal(n) => out.push(n),
            PathComponent::ParentDir | PathComponent::Prefix(_) => return None,
        }
    }
    let out = out.to_str()?.to_owned();
    (out != "/"
        && out
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c)))
    .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[package]
name = "containerd-stack"
revision = "1"
maintainer = "containerd-stack maintainers <maintainers@example.org>"

[components.containerd]
version = "2.3.4"
[components.containerd.sha256]
amd64 = "9d68969855fbf676cdb8ed758e420fb048d61f984f61de3e53eddfebe484d168"

[components.runc]
version = "1.4.3"
[components.runc.sha256]
amd64 = "f6ae8efc0fa40079e1475e97cbe9d1bd3f106a28d6af78a11d9f1bd565515e60"
arm64 = "633301e2e32f8a5ad54031aab4901eb00308bec677dd15faa2751e8f9dab5ca4"

[settings]
systemd_cgroup = true
sandbox_image = "registry.k8s.io/pause:3.10.2"
cni_bin_dir = "/opt/cni//bin/"
"#;

    fn parse(text: &str) -> Result<Stack> {
        Stack::parse(text, Path::new("stack.toml"))
    }

    fn err(text: &str) -> String {
        let e = parse(text).unwrap_err().to_string();
        assert!(!e.contains('\n'), "error is not one line: {e}");
        e
    }

    #[test]
    fn good_stack_parses_with_optional_components_left_out() {
        let s = parse(GOOD).unwrap();
        let kinds: Vec<_> = s.components.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ComponentKind::Containerd, ComponentKind::Runc]);
        assert_eq!(s.deb_version(), "2.3.4-1");
        assert_eq!(s.settings.cni_bin_dir, "/opt/cni/bin");
        // arm64 lacks a containerd pin, so only amd64 is buildable.
        assert_eq!(s.pinned_arches(), [DebArch::Amd64]);
    }

    #[test]
    fn the_built_in_stack_pins_three_architectures() {
        assert_eq!(
            Stack::default_stack().pinned_arches(),
            [DebArch::Amd64, DebArch::Arm64, DebArch::Ppc64el]
        );
    }

    #[test]
    fn prerelease_versions_sort_before_the_release() {
        let s = parse(&GOOD.replace("\"2.3.4\"", "\"2.4.0-rc.1\"")).unwrap();
        assert_eq!(s.deb_version(), "2.4.0~rc.1-1");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let e = err(&GOOD.replace("[settings]", "[settings]\nsandbox = \"x\""));
        assert!(
            e.starts_with("stack.toml: line 19: unknown field `sandbox`"),
            "{e}"
        );
        assert!(e.contains("unknown field `sandbox`"), "{e}");
        let e = err(&format!(
            "{GOOD}\n[components.buildkit]\nversion = \"0.1.0\"\n"
        ));
        assert!(e.contains("unknown field `buildkit`"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "version = \"1.4.3\"",
                "version = \"v1.4.3\"",
                "components.runc.version",
            ),
            (
                "arm64 = \"6333",
                "arm64 = \"6X33",
                "components.runc.sha256.arm64",
            ),
            (
                "arm64 = \"6333",
                "ppc64le = \"6333",
                "components.runc.sha256.ppc64le: architecture \"ppc64le\": expected one of",
            ),
            ("revision = \"1\"", "revision = \"1-2\"", "package.revision"),
            (
                "revision = \"1\"",
                "revision = \"1\"\ndistribution = \"stable; urgency=high\"",
                "package.distribution",
            ),
            (
                "name = \"containerd-stack\"",
                "name = \"Containerd\"",
                "package.name",
            ),
            (
                "maintainers@example.org>",
                "maintainers>",
                "package.maintainer",
            ),
            ("/opt/cni//bin/", "opt/cni/bin", "settings.cni_bin_dir"),
            ("/opt/cni//bin/", "/opt/../bin", "settings.cni_bin_dir"),
            ("pause:3.10.2", "pause 3", "settings.sandbox_image"),
            (
                "pause:3.10.2",
                "pause:3'; rm -rf /'",
                "settings.sandbox_image",
            ),
            ("/opt/cni//bin/", "/opt/cni bin", "settings.cni_bin_dir"),
            ("/opt/cni//bin/", "/opt/$(id)", "settings.cni_bin_dir"),
        ];
        for (from, to, key) in cases {
            let text = GOOD.replacen(from, to, 1);
            assert_ne!(text, GOOD, "case {from} did not apply");
            let e = err(&text);
            assert!(e.starts_with(&format!("stack.toml: {key}")), "{key}: {e}");
        }
        let short = GOOD.replace(
            "633301e2e32f8a5ad54031aab4901eb00308bec677dd15faa2751e8f9dab5ca4",
            "abc",
        );
        assert!(err(&short).contains("got 3 characters"));
    }

    #[test]
    fn kernel_prerequisites_default_on_and_mirrors_to_none() {
        let s = parse(GOOD).unwrap().settings;
        assert!(s.kernel_prerequisites);
        assert!(s.registry_mirrors.is_empty());
        assert_eq!(s.registry_mirrors_line(), "");
    }

    #[test]
    fn registry_mirrors_are_checked_and_put_on_one_line() {
        let text = format!(
            "{GOOD}kernel_prerequisites = false\n\n[settings.registry_mirrors]\n\"registry.k8s.io\" = [\"http://10.0.0.5:5000\", \"https://backup.example.org/k8s\"]\n\"docker.io\" = [\"https://mirror.example.org\"]\n_default = [\"https://all.example.org\"]\n"
        );
        let s = parse(&text).unwrap().settings;
        assert!(!s.kernel_prerequisites);
        assert_eq!(
            s.registry_mirrors_line(),
            "_default=https://all.example.org docker.io=https://mirror.example.org registry.k8s.io=http://10.0.0.5:5000,https://backup.example.org/k8s"
        );
        for (host, url, fault) in [
            (
                "Docker.io",
                "https://m.example.org",
                "is not a registry host",
            ),
            (
                "docker.io:99999",
                "https://m.example.org",
                "is not a registry host",
            ),
            ("-x.org", "https://m.example.org", "is not a registry host"),
            ("docker.io", "ftp://m.example.org", "is not a mirror URL"),
            (
                "docker.io",
                "https://m.example.org/a b",
                "is not a mirror URL",
            ),
            (
                "docker.io",
                "https://m.example.org?x=1",
                "is not a mirror URL",
            ),
            ("docker.io", "https://", "is not a mirror URL"),
            ("docker.io", "https://_default", "is not a mirror URL"),
        ] {
            let text = format!("{GOOD}\n[settings.registry_mirrors]\n{host:?} = [{url:?}]\n");
            let e = err(&text);
            assert!(
                e.starts_with(&format!("stack.toml: settings.registry_mirrors.{host:?}: ")),
                "{e}"
            );
            assert!(e.contains(fault), "{host} {url}: {e}");
        }
        let e = err(&format!(
            "{GOOD}\n[settings.registry_mirrors]\n\"quay.io\" = []\n"
        ));
        assert!(e.contains("lists no mirror"), "{e}");
    }

    #[test]
    fn required_components_must_be_present() {
        let start = GOOD.find("[components.runc]").unwrap();
        let end = GOOD.find("[settings]").unwrap();
        let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
        assert_eq!(
            err(&text),
            "stack.toml: components.runc: is required but missing"
        );
    }

    #[test]
    fn version_shapes() {
        for ok in ["1.2.3", "2.0.0-rc.1", "10.20.30-beta2"] {
            assert!(is_upstream_version(ok), "{ok}");
        }
        for bad in [
            "v1.2.3",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "1.2.3-",
            "1.2.3-a_b",
            "",
        ] {
            assert!(!is_upstream_version(bad), "{bad}");
        }
    }
}

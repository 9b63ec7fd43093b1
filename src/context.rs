//! What the templates see: a typed context built from the stack and the laid-out tree
//! (Depends from the ELF findings, Provides/Conflicts from what is shipped, the lintian
//! overrides' file lists). Every field is always present, as strict mode requires.

use serde::Serialize;

use crate::arch::DebArch;
use crate::elf::{self, Linkage};
use crate::error::Result;
use crate::layout::FhsTree;
use crate::render::Renderer;
use crate::stack::{ComponentKind, Stack};

/// Renders the one built-in template `name` (a file of `debian-templates/` without `.hbs`)
/// as the package of `stack` for `arch` with the files of `tree` would carry it (every
/// component pinned for `arch` shipped), for tests that check a template on its own
/// (maintainer scripts under shellcheck, say).
pub fn render_template(stack: &Stack, arch: DebArch, tree: &FhsTree, name: &str) -> Result<String> {
    let shipped: Vec<ComponentKind> = stack
        .components
        .iter()
        .filter(|c| c.sha256.contains_key(&arch))
        .map(|c| c.kind)
        .collect();
    Renderer::new()?.render(name, &TemplateContext::new(stack, arch, tree, &shipped)?)
}

/// A control paragraph has no blank lines; the template's conditional lines may leave some.
pub(crate) fn control_paragraph(rendered: &str) -> String {
    let mut out: String = rendered
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// A shipped component, with what the component table says of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ComponentCtx {
    version: String,
    copyright: &'static str,
    license: &'static str,
    homepage: &'static str,
    repository: String,
    release_page: String,
}

/// What the templates see. Every field is always present (strict mode); optional
/// components are `null`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TemplateContext {
    pub(crate) package: String,
    pub(crate) version: String,
    pub(crate) arch: DebArch,
    pub(crate) maintainer: String,
    pub(crate) installed_size: u64,
    pub(crate) depends: String,
    pub(crate) conflicts: String,
    pub(crate) replaces: String,
    pub(crate) provides: String,
    pub(crate) containerd: ComponentCtx,
    pub(crate) runc: ComponentCtx,
    pub(crate) cni_plugins: Option<ComponentCtx>,
    pub(crate) crictl: Option<ComponentCtx>,
    pub(crate) cni_bin_dir: String,
    pub(crate) cni_bin_dir_rel: String,
    pub(crate) cni_in_opt: bool,
    pub(crate) cni_bin_files: String,
    pub(crate) cni_programs: Vec<String>,
    pub(crate) static_programs: Vec<String>,
    pub(crate) unowned_dirs: String,
    pub(crate) date: String,
    pub(crate) distribution: String,
    pub(crate) systemd_cgroup: bool,
    pub(crate) sandbox_image: String,
    /// Whether the modules-load.d and sysctl.d files are shipped.
    pub(crate) kernel_prerequisites: bool,
    /// `settings.registry_mirrors` on one line, debconf's default.
    pub(crate) registry_mirrors: String,
}

impl TemplateContext {
    /// The context of the package of `stack` for `arch` with the files of `tree`, which
    /// ships the components `shipped`.
    pub(crate) fn new(
        stack: &Stack,
        arch: DebArch,
        tree: &FhsTree,
        shipped: &[ComponentKind],
    ) -> Result<TemplateContext> {
        let version_of = |k: ComponentKind| {
            let c = stack.component(k)?;
            let spec = k.spec();
            shipped.contains(&k).then(|| ComponentCtx {
                version: c.version.clone(),
                copyright: spec.copyright,
                license: spec.license,
                homepage: spec.homepage,
                repository: format!("https://github.com/{}", spec.repo),
                release_page: spec.release_page(&c.version),
            })
        };
        let containerd = version_of(ComponentKind::Containerd).expect("required");
        let runc = version_of(ComponentKind::Runc).expect("required");
        let cni_plugins = version_of(ComponentKind::CniPlugins);
        let crictl = version_of(ComponentKind::Crictl);

        let programs: Vec<(&str, &Linkage)> = tree
            .files()
            .filter_map(|(p, f)| f.elf.as_ref().map(|l| (p, l)))
            .collect();
        let depends = elf::depends(programs.iter().copied())?.join(", ");
        let static_programs = programs
            .iter()
            .filter(|(_, l)| **l == Linkage::Static)
            .map(|(p, _)| (*p).to_owned())
            .collect();

        // What the shipped components stand in for, in the table's order.
        let mut conflicts = Vec::new();
        let mut provides = Vec::new();
        for c in &stack.components {
            if !shipped.contains(&c.kind) {
                continue;
            }
            let spec = c.kind.spec();
            let version = c.version.replace('-', "~");
            conflicts.extend(spec.conflicts.iter().map(|p| p.to_string()));
            provides.extend(spec.provides.iter().map(|p| format!("{p} (= {version})")));
        }
        let cni_bin_dir_rel = stack
            .settings
            .cni_bin_dir
            .trim_start_matches('/')
            .to_owned();
        let cni_programs: Vec<String> = tree
            .files()
            .filter(|(p, _)| p.starts_with(&format!("{cni_bin_dir_rel}/")))
            .map(|(p, _)| p.to_owned())
            .collect();
        Ok(TemplateContext {
            package: stack.package.name.clone(),
            version: stack.deb_version(),
            arch,
            maintainer: stack.package.maintainer.clone(),
            installed_size: 0,
            depends,
            replaces: conflicts.join(", "),
            conflicts: conflicts.join(", "),
            provides: provides.join(", "),
            containerd,
            runc,
            cni_in_opt: cni_bin_dir_rel.starts_with("opt/"),
            cni_bin_files: format!("{cni_bin_dir_rel}/*"),
            cni_bin_dir: stack.settings.cni_bin_dir.clone(),
            cni_bin_dir_rel,
            cni_programs,
            cni_plugins,
            crictl,
            static_programs,
            unowned_dirs: tree.unowned_parents().join(" "),
            date: String::new(),
            distribution: stack.package.distribution.clone(),
            systemd_cgroup: stack.settings.systemd_cgroup,
            kernel_prerequisites: stack.settings.kernel_prerequisites,
            registry_mirrors: stack.settings.registry_mirrors_line(),
            sandbox_image: stack.settings.sandbox_image.clone(),
        })
    }
}

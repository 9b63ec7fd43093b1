//! Renders `debian-templates/` with handlebars in strict mode: a variable the context does
//! not have is an error naming it, never an empty string. The templates are compiled in as
//! the defaults, so an installed tool needs no source tree; a directory of a team's own
//! (`--templates`, or `[package] templates` in stack.toml) replaces them file by file, and
//! is read at run time, so editing one costs no rebuild. Any template can be included in
//! another as a partial (`{{> config-edit.sh}}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// Every template, by the name of its file in `debian-templates/` (without `.hbs`).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("control", include_str!("../debian-templates/control.hbs")),
    (
        "copyright",
        include_str!("../debian-templates/copyright.hbs"),
    ),
    (
        "changelog",
        include_str!("../debian-templates/changelog.hbs"),
    ),
    (
        "containerd.service",
        include_str!("../debian-templates/containerd.service.hbs"),
    ),
    (
        "crictl.yaml",
        include_str!("../debian-templates/crictl.yaml.hbs"),
    ),
    (
        "10-containerd-net.conflist",
        include_str!("../debian-templates/10-containerd-net.conflist.hbs"),
    ),
    (
        "lintian-overrides",
        include_str!("../debian-templates/lintian-overrides.hbs"),
    ),
    ("preinst", include_str!("../debian-templates/preinst.hbs")),
    ("postinst", include_str!("../debian-templates/postinst.hbs")),
    ("prerm", include_str!("../debian-templates/prerm.hbs")),
    ("postrm", include_str!("../debian-templates/postrm.hbs")),
    ("config", include_str!("../debian-templates/config.hbs")),
    (
        "templates",
        include_str!("../debian-templates/templates.hbs"),
    ),
    ("triggers", include_str!("../debian-templates/triggers.hbs")),
    (
        "modules-load.conf",
        include_str!("../debian-templates/modules-load.conf.hbs"),
    ),
    (
        "sysctl.conf",
        include_str!("../debian-templates/sysctl.conf.hbs"),
    ),
    (
        "registry-mirrors.sh",
        include_str!("../debian-templates/registry-mirrors.sh.hbs"),
    ),
    (
        "kernel-prerequisites.sh",
        include_str!("../debian-templates/kernel-prerequisites.sh.hbs"),
    ),
    (
        "config-edit.sh",
        include_str!("../debian-templates/config-edit.sh.hbs"),
    ),
    (
        "generated-files.sh",
        include_str!("../debian-templates/generated-files.sh.hbs"),
    ),
];

/// Where a template's text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    File(PathBuf),
}

pub struct Renderer {
    hb: Handlebars<'static>,
    /// Every template's origin and text, by name: what [`Renderer::fingerprint`] hashes.
    sources: BTreeMap<&'static str, (Origin, String)>,
}

impl Renderer {
    /// The built-in templates.
    pub fn new() -> Result<Renderer> {
        Renderer::with_dir(None)
    }

    /// The templates of `dir` where it has them (`<name>.hbs`), the built-in ones for the
    /// rest. A `.hbs` file there that is no template's name is an error: a misspelt file
    /// would otherwise be ignored without a word.
    pub fn with_dir(dir: Option<&Path>) -> Result<Renderer> {
        let mut sources = BTreeMap::new();
        for (name, text) in TEMPLATES {
            sources.insert(*name, (Origin::BuiltIn, (*text).to_owned()));
        }
        if let Some(dir) = dir {
            for entry in std::fs::read_dir(dir).at(dir)? {
                let path = entry.at(dir)?.path();
                let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                let Some(stem) = file.strip_suffix(".hbs") else {
                    continue;
                };
                let Some(slot) = sources.get_mut(stem) else {
                    return Err(Error::Template {
                        template: path.display().to_string(),
                        message: format!(
                            "not a template this tool renders (expected one of: {})",
                            TEMPLATES
                                .iter()
                                .map(|(n, _)| format!("{n}.hbs"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                };
                let text = std::fs::read_to_string(&path).at(&path)?;
                *slot = (Origin::File(path), text);
            }
        }
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        for (name, (origin, text)) in &sources {
            hb.register_template_string(name, text)
                .map_err(|e| Error::Template {
                    template: shown(name, origin),
                    message: one_line(&e.to_string()),
                })?;
        }
        Ok(Renderer { hb, sources })
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String> {
        self.hb.render(name, ctx).map_err(|e| Error::Template {
            template: self.shown(name),
            message: one_line(&e.to_string()),
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.hb.has_template(name)
    }

    /// Where the template `name` came from.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.sources.get(name).map(|(o, _)| o)
    }

    /// How errors name the template `name`: its file, or its built-in name.
    pub fn shown(&self, name: &str) -> String {
        match self.sources.get(name) {
            Some((origin, _)) => shown(name, origin),
            None => format!("{name}.hbs"),
        }
    }

    /// A hash of the text of every template in use, for build caches keyed by their inputs.
    pub fn fingerprint(&self) -> String {
        let parts: Vec<&[u8]> = self
            .sources
            .iter()
            .flat_map(|(name, (_, text))| [name.as_bytes(), text.as_bytes()])
            .collect();
        crate::hash::key(&parts)
    }
}

/// How errors name a template: its file, or its built-in name.
fn shown(name: &str, origin: &Origin) -> String {
    match origin {
        Origin::BuiltIn => format!("{name}.hbs"),
        Origin::File(path) => path.display().to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 2822 date (`Fri, 27 Nov 2026 08:33:14 +0000`) for Debian changelogs, from Unix time.
pub fn rfc2822(epoch: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// RFC 3339 UTC time (`2026-12-27T08:33:14Z`), as SPDX's `created`, from Unix time.
pub fn rfc3339(epoch: u64) -> String {
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days((epoch / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_values() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc2822(1_798_360_394), "Sun, 27 Dec 2026 08:33:14 +0000");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_360_394), "2026-12-27T08:33:14Z");
    }

    #[test]
    fn a_directory_replaces_templates_file_by_file() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("crictl.yaml.hbs"), "endpoint {{package}}\n").unwrap();
        std::fs::write(dir.path().join("README"), "not a template").unwrap();
        let r = Renderer::with_dir(Some(dir.path())).unwrap();
        let ctx = serde_json::json!({ "package": "p" });
        assert_eq!(r.render("crictl.yaml", &ctx).unwrap(), "endpoint p\n");
        let own = dir.path().join("crictl.yaml.hbs");
        assert_eq!(r.origin("crictl.yaml"), Some(&Origin::File(own)));
        assert_eq!(r.origin("postinst"), Some(&Origin::BuiltIn));
        assert_ne!(r.fingerprint(), Renderer::new().unwrap().fingerprint());
    }

    #[test]
    fn a_missing_variable_in_a_team_template_is_named() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("crictl.yaml.hbs");
        std::fs::write(&path, "{{package}} {{socket_path}}\n").unwrap();
        let r = Renderer::with_dir(Some(dir.path())).unwrap();
        let e = r
            .render("crictl.yaml", &serde_json::json!({ "package": "p" }))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("template {}:", path.display())),
            "{e}"
        );
        assert!(e.contains("socket_path"), "{e}");
    }

    #[test]
    fn a_misspelt_template_file_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(dir.path().join("postinstt.hbs"), "#!/bin/sh\n").unwrap();
        let e = Renderer::with_dir(Some(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("postinstt.hbs"), "{e}");
        assert!(e.contains("not a template this tool renders"), "{e}");
    }

    #[test]
    fn strict_mode_refuses_missing_variables() {
        let r = Renderer::new().unwrap();
        let e = r
            .render("crictl.yaml", &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("template crictl.yaml.hbs:"), "{e}");
        assert!(e.contains("package"), "{e}");
    }
}

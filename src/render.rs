//! Renders `debian-templates/` with handlebars in strict mode: a variable the context does
//! not have is an error, never an empty string. The templates are compiled in, so a built
//! tool does not depend on the source tree.

use handlebars::Handlebars;
use serde::Serialize;

use crate::error::{Error, Result};

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
];

pub struct Renderer {
    hb: Handlebars<'static>,
}

impl Renderer {
    pub fn new() -> Result<Renderer> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        for (name, text) in TEMPLATES {
            hb.register_template_string(name, *text)
                .map_err(|e| Error::Template {
                    template: format!("{name}.hbs"),
                    message: one_line(&e.to_string()),
                })?;
        }
        Ok(Renderer { hb })
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String> {
        self.hb.render(name, ctx).map_err(|e| Error::Template {
            template: format!("{name}.hbs"),
            message: one_line(&e.to_string()),
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.hb.has_template(name)
    }

    /// A hash of every template's text, for build caches keyed by their inputs.
    pub fn fingerprint() -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (name, text) in TEMPLATES {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
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

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

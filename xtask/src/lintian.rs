//! lintian judging a package the way Debian would: no error, no override that silences
//! nothing, every override naming a tag that lintian knows and carrying its reason. One
//! [`Lintian`] is one lintian release: the host's (Debian 12's 2.116 on a Debian 12 host),
//! or a suite's own, run in an unpacked root of that suite (Debian 13's 2.122), so the
//! package meets the lintian of each release it installs on.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use containerd_stack::deb::read::read_deb;

use crate::process::{check, last_lines, text, Background};
use crate::rootfs::{Chroot, Rootfs, Suite};

/// One lintian release, ready to run.
pub struct Lintian {
    /// The unpacked root it runs in, and the tarball it came from; `None`: the host's.
    root: Option<(Chroot, Rootfs)>,
    /// `lintian --version`, e.g. `Lintian v2.122.0+deb13u1`.
    pub version: String,
}

/// What lintian said about a package that passed.
pub struct Judged {
    /// Its whole report.
    pub report: String,
    /// One line: the counts and the overrides.
    pub summary: String,
}

impl Lintian {
    /// The host's lintian.
    pub fn host() -> Result<Lintian> {
        let mut lintian = Lintian {
            root: None,
            version: String::new(),
        };
        lintian.version = lintian.read_version()?;
        Ok(lintian)
    }

    /// `suite`'s own lintian, in a root of that suite made once with mmdebstrap (cached, as
    /// every root) and unpacked for as long as this value lives.
    pub fn of_suite(suite: Suite) -> Result<Lintian> {
        let rootfs = Rootfs::cached(suite, &["lintian"])?;
        let mut root = rootfs.extract()?;
        // lintian reads its own process table.
        root.mount_proc()?;
        let shown = rootfs.tarball.display().to_string();
        let mut lintian = Lintian {
            root: Some((root, rootfs)),
            version: String::new(),
        };
        lintian.version = lintian
            .read_version()
            .with_context(|| format!("{}'s lintian in {shown}", suite.release()))?;
        Ok(lintian)
    }

    /// Debian 13's lintian, its root made on a thread of its own meanwhile; [`Lintian::ready`]
    /// waits for it.
    pub fn trixie_meanwhile() -> Background<Lintian> {
        Background::spawn("Debian 13's lintian root", || {
            Lintian::of_suite(Suite::Trixie)
        })
    }

    /// Waits for the lintian [`Lintian::trixie_meanwhile`] makes, as the check "lintian root
    /// (trixie)".
    pub fn ready(pending: Background<Lintian>) -> Result<Lintian> {
        check("lintian root (trixie)", || {
            let l = pending.wait()?;
            let detail = format!("{} in {}", l.version, l.describe_root());
            Ok((l, detail))
        })
    }

    /// Where it runs, for the progress output.
    pub fn describe_root(&self) -> String {
        match &self.root {
            None => "the host".to_owned(),
            Some((_, rootfs)) => rootfs.describe(),
        }
    }

    fn read_version(&self) -> Result<String> {
        let out = crate::process::run(&mut self.command("lintian", &["--version"]))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `program args…` on the host or in the root; not yet run.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        match &self.root {
            None => {
                let mut cmd = Command::new(program);
                cmd.args(args);
                cmd
            }
            Some((root, _)) => {
                let mut all = vec![program];
                all.extend_from_slice(args);
                root.command(&all)
            }
        }
    }

    /// Runs lintian on `deb` (the package `package`) and fails on any error, on an override
    /// that is unused, mismatched, unknown to this lintian or without a reason.
    pub fn judge(&self, deb: &Path, package: &str) -> Result<Judged> {
        let template = containerd_stack::render::TEMPLATES
            .iter()
            .find(|(name, _)| *name == "lintian-overrides")
            .map(|(_, text)| *text)
            .context("no lintian-overrides template is compiled in")?;
        let unjustified = unjustified_overrides(template);
        ensure!(
            unjustified.is_empty(),
            "debian-templates/lintian-overrides.hbs: no comment gives the reason for {}",
            unjustified.join("; ")
        );
        let installed = format!("./usr/share/lintian/overrides/{package}");
        let contents = read_deb(deb).with_context(|| format!("cannot read {}", deb.display()))?;
        let overrides_text = contents
            .data_entry(&installed)
            .and_then(|e| e.content.as_deref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let unjustified = unjustified_overrides(&overrides_text);
        ensure!(
            unjustified.is_empty(),
            "/usr/share/lintian/overrides/{package}: no comment gives the reason for {}",
            unjustified.join("; ")
        );

        // lintian ignores an override of a tag it does not know, without a word.
        let override_tags: BTreeSet<String> = overrides(&overrides_text)
            .into_iter()
            .map(|o| o.tag)
            .collect();
        for tag in &override_tags {
            let known = self
                .command("lintian-explain-tags", &[tag])
                .output()
                .context("cannot run lintian-explain-tags")?
                .status
                .success();
            ensure!(
                known,
                "/usr/share/lintian/overrides/{package}: {} has no tag {tag:?}",
                self.version
            );
        }

        let shown = match &self.root {
            None => deb.to_owned(),
            Some((root, _)) => {
                let inside = format!(
                    "/tmp/{}",
                    deb.file_name().unwrap_or_default().to_string_lossy()
                );
                root.copy_in(deb, &inside)?;
                inside.into()
            }
        };
        let shown = shown.to_string_lossy();
        // Not --fail-on: with --show-overrides lintian counts overridden errors as failures too.
        let mut cmd = self.command(
            "lintian",
            &[
                "--no-cfg",
                "--display-info",
                "--show-overrides",
                "--tag-display-limit",
                "0",
                "--fail-on",
                "none",
                &shown,
            ],
        );
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", self.version))?;
        let report = text(&out);
        // (severity, tag, line) of each tag line, `E: package: tag [context]`.
        let tags: Vec<(&str, &str, &str)> = report
            .lines()
            .filter_map(|l| {
                let (severity, rest) = l.split_once(": ")?;
                let tag = rest.split_whitespace().nth(1)?;
                (severity.len() == 1).then_some((severity, tag, l))
            })
            .collect();
        let count = |s: &str| tags.iter().filter(|(sev, _, _)| *sev == s).count();
        let errors: Vec<&str> = tags
            .iter()
            .filter(|(sev, _, _)| *sev == "E")
            .map(|(_, _, l)| *l)
            .collect();
        ensure!(
            errors.is_empty(),
            "{} reports {} error(s) on {}: {}",
            self.version,
            errors.len(),
            deb.display(),
            errors.join(" | ")
        );
        let stale: Vec<&str> = tags
            .iter()
            .filter(|(_, tag, _)| matches!(*tag, "unused-override" | "mismatched-override"))
            .map(|(_, _, l)| *l)
            .collect();
        ensure!(
            stale.is_empty(),
            "{}: override(s) from debian-templates/lintian-overrides.hbs silence nothing: {}; fix their contexts",
            self.version,
            stale.join(" | ")
        );
        ensure!(
            out.status.success(),
            "{} failed ({}): {}",
            self.version,
            out.status,
            last_lines(&report, 3)
        );
        let summary = format!(
            "{}: no errors, {} warning(s), {} info, {} overridden; the overrides ({}) are all used and justified",
            self.version,
            count("W"),
            count("I"),
            count("O"),
            override_tags.into_iter().collect::<Vec<_>>().join(", ")
        );
        Ok(Judged { report, summary })
    }
}

/// One override line of a lintian overrides file (or of its template).
struct Override {
    line: String,
    tag: String,
    /// A comment gives its reason, by lintian's rule: a comment explains the override after
    /// it, and carries over to further overrides of the same tag until a blank line.
    justified: bool,
}

/// The overrides in `text`. Template lines (`{{…}}`) are skipped, so in a template every
/// branch is seen.
fn overrides(text: &str) -> Vec<Override> {
    let mut out: Vec<Override> = Vec::new();
    let mut comment = false;
    let mut carried: Option<(String, bool)> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            comment = false;
            carried = None;
        } else if line.starts_with("{{") && line.ends_with("}}") {
            continue;
        } else if let Some(c) = line.strip_prefix('#') {
            comment |= !c.trim().is_empty();
        } else {
            let hint = line.split_once(':').map_or(line, |(_, h)| h).trim();
            let tag = hint
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let justified = comment || carried.as_ref().is_some_and(|(t, j)| *t == tag && *j);
            carried = Some((tag.clone(), justified));
            comment = false;
            out.push(Override {
                line: line.to_owned(),
                tag,
                justified,
            });
        }
    }
    out
}

fn unjustified_overrides(text: &str) -> Vec<String> {
    overrides(text)
        .into_iter()
        .filter(|o| !o.justified)
        .map(|o| o.line)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_need_a_comment_carried_only_within_a_tag() {
        let text = "\
# Why.
pkg: dir-or-file-in-opt [opt/cni/bin/]
pkg: dir-or-file-in-opt [opt/cni/bin/bridge]
pkg: statically-linked-binary [usr/bin/ctr]

pkg: dir-or-file-in-opt [opt/x]
";
        assert_eq!(
            unjustified_overrides(text),
            [
                "pkg: statically-linked-binary [usr/bin/ctr]",
                "pkg: dir-or-file-in-opt [opt/x]"
            ]
        );
    }

    #[test]
    fn template_lines_are_transparent() {
        let text = "\
{{#each static_programs}}
# Upstream builds it statically.
{{../package}}: statically-linked-binary [{{this}}]
{{/each}}
{{#if cni_in_opt}}
{{package}}: dir-or-file-in-opt [{{cni_bin_dir_rel}}/]
{{/if}}
";
        assert_eq!(
            unjustified_overrides(text),
            ["{{package}}: dir-or-file-in-opt [{{cni_bin_dir_rel}}/]"]
        );
    }

    #[test]
    fn the_shipped_template_justifies_every_override() {
        let (_, text) = containerd_stack::render::TEMPLATES
            .iter()
            .find(|(n, _)| *n == "lintian-overrides")
            .unwrap();
        assert_eq!(unjustified_overrides(text), Vec::<String>::new());
    }
}

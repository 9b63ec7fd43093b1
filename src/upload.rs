//! What a build hands to an archive: a `.buildinfo` (deb-buildinfo(5)) recording the
//! upstream inputs with their sha256 and the build's timestamp, and a `.changes`
//! (deb-changes(5)) listing every package and the `.buildinfo` with their md5, sha1 and
//! sha256, which `reprepro include` and `aptly repo include` take. The text follows from the
//! inputs: dates are the build's timestamp, lists are sorted, nothing comes from the clock.
//! A binary-only upload has no source package, so `Source` is the package's own name.

use crate::arch::DebArch;
use crate::hash::Hashes;
use crate::render::rfc2822;

/// One package of the upload, as decided before it is written (its hashes come after).
#[derive(Debug, Clone)]
pub struct Binary {
    pub arch: DebArch,
    pub file_name: String,
    /// `Section` and `Priority` of its control file.
    pub section: String,
    pub priority: String,
    /// The first line of its `Description`.
    pub summary: String,
    /// The upstream assets it was built from: `(url, sha256)`.
    pub upstream: Vec<(String, String)>,
}

/// A changelog entry as deb-changelog(5) lays it out, read back from the rendered
/// changelog, which is where dpkg-genchanges takes these fields from too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogEntry {
    pub package: String,
    pub version: String,
    pub distribution: String,
    pub urgency: String,
    /// From the trailer line: who made the entry.
    pub changed_by: String,
    /// The entry from its heading to before the trailer, as the `.changes`' `Changes`
    /// field carries it: each line indented by one space, blank lines as ` .`.
    pub changes: String,
}

impl ChangelogEntry {
    /// Parses the first entry of `text`; the error says what was expected.
    pub fn parse(text: &str) -> Result<ChangelogEntry, String> {
        let mut lines = text.lines();
        let heading = lines.next().unwrap_or_default();
        let bad_heading = || {
            format!("the first line {heading:?} is not `package (version) distribution; urgency=…`")
        };
        let (package, rest) = heading.split_once(" (").ok_or_else(bad_heading)?;
        let (version, rest) = rest.split_once(") ").ok_or_else(bad_heading)?;
        let (distribution, options) = rest.split_once(';').ok_or_else(bad_heading)?;
        let urgency = options
            .split(',')
            .find_map(|o| o.trim().strip_prefix("urgency="))
            .ok_or_else(bad_heading)?;
        let mut body = vec![heading];
        let mut changed_by = None;
        for line in lines {
            if let Some(trailer) = line.strip_prefix(" -- ") {
                let (who, _date) = trailer.split_once("  ").ok_or_else(|| {
                    format!("the trailer line {line:?} is not ` -- Name <address>  date`")
                })?;
                changed_by = Some(who.trim().to_owned());
                break;
            }
            body.push(line);
        }
        let changed_by = changed_by.ok_or("the entry has no ` -- Name <address>  date` line")?;
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        let distribution = distribution.trim();
        if package.is_empty() || version.is_empty() || distribution.is_empty() {
            return Err(bad_heading());
        }
        Ok(ChangelogEntry {
            package: package.to_owned(),
            version: version.to_owned(),
            distribution: distribution.to_owned(),
            urgency: urgency.trim().to_owned(),
            changed_by,
            changes: body
                .iter()
                .map(|l| match l.trim().is_empty() {
                    true => " .\n".to_owned(),
                    false => format!(" {}\n", l.trim_end()),
                })
                .collect(),
        })
    }
}

/// Everything the two files say.
pub struct Upload<'a> {
    pub package: &'a str,
    pub version: &'a str,
    pub maintainer: &'a str,
    /// In architecture order, each with the hashes of the file written.
    pub binaries: &'a [(Binary, Hashes)],
    pub changelog: &'a ChangelogEntry,
    /// The build's timestamp: the newest of the packages'.
    pub mtime: u64,
    /// `SOURCE_DATE_EPOCH`, recorded when it was set.
    pub source_date_epoch: Option<u64>,
    /// The Debian architecture of the machine that built it.
    pub build_arch: &'a str,
}

/// `<package>_<version>_<arch>`, as dpkg-buildpackage names a build's `.changes` and
/// `.buildinfo`; several architectures make one `multi` upload, as devscripts' mergechanges
/// names the `.changes` it merges from one per architecture.
pub fn base_name(package: &str, version: &str, arches: &[DebArch]) -> String {
    let arch = match arches {
        [one] => one.as_str(),
        _ => "multi",
    };
    format!("{package}_{}_{arch}", version.replace(':', "%3a"))
}

/// The Debian architecture of this machine, for `Build-Architecture`; Rust's name where
/// upstream publishes nothing for it.
pub fn build_architecture() -> &'static str {
    DebArch::host().map_or(std::env::consts::ARCH, DebArch::as_str)
}

/// `Name: value`; a multiline field's value starts on the next line, its first line empty.
fn deb822_field(name: &str, value: &str) -> String {
    match value.starts_with('\n') {
        true => format!("{name}:{value}\n"),
        false => format!("{name}: {value}\n"),
    }
}

impl Upload<'_> {
    fn arches(&self) -> String {
        let arches: Vec<&str> = self.binaries.iter().map(|(b, _)| b.arch.as_str()).collect();
        arches.join(" ")
    }

    /// The `.buildinfo`: the packages' checksums, the build's timestamp and machine, and
    /// every upstream asset with its sha256.
    pub fn buildinfo(&self) -> String {
        let mut out = String::new();
        let mut field = |name: &str, value: &str| out.push_str(&deb822_field(name, value));
        field("Format", "1.0");
        field("Source", self.package);
        field("Binary", self.package);
        field("Architecture", &self.arches());
        field("Version", self.version);
        let list = |f: &dyn Fn(&Hashes) -> String| -> String {
            self.binaries
                .iter()
                .map(|(b, h)| format!("\n {} {} {}", f(h), h.size, b.file_name))
                .collect()
        };
        field("Checksums-Md5", &list(&|h| h.md5.clone()));
        field("Checksums-Sha1", &list(&|h| h.sha1.clone()));
        field("Checksums-Sha256", &list(&|h| h.sha256.to_string()));
        field("Build-Architecture", self.build_arch);
        field("Build-Date", &rfc2822(self.mtime));
        if let Some(epoch) = self.source_date_epoch {
            field("Environment", &format!("\n SOURCE_DATE_EPOCH=\"{epoch}\""));
        }
        field(
            "Build-Tool",
            concat!("containerd-stack ", env!("CARGO_PKG_VERSION")),
        );
        let mut upstream = Vec::new();
        for (b, _) in self.binaries {
            for (url, sha256) in &b.upstream {
                let line = format!("\n {sha256} {url}");
                if !upstream.contains(&line) {
                    upstream.push(line);
                }
            }
        }
        field("Upstream-Checksums-Sha256", &upstream.concat());
        out
    }

    /// The `.changes`, listing the packages and `buildinfo` (its file name and hashes).
    pub fn changes(&self, buildinfo: (&str, &Hashes)) -> String {
        let (first, _) = self.binaries.first().expect("an upload has a package");
        let mut files: Vec<(&str, &Hashes)> = self
            .binaries
            .iter()
            .map(|(b, h)| (b.file_name.as_str(), h))
            .collect();
        files.push(buildinfo);
        let list = |f: &dyn Fn(&Hashes) -> String| -> String {
            files
                .iter()
                .map(|(name, h)| format!("\n {} {} {name}", f(h), h.size))
                .collect()
        };
        let mut out = String::new();
        let mut field = |name: &str, value: &str| out.push_str(&deb822_field(name, value));
        field("Format", "1.8");
        field("Date", &rfc2822(self.mtime));
        field("Source", self.package);
        field("Binary", self.package);
        field("Architecture", &self.arches());
        field("Version", self.version);
        field("Distribution", &self.changelog.distribution);
        field("Urgency", &self.changelog.urgency);
        field("Maintainer", self.maintainer);
        field("Changed-By", &self.changelog.changed_by);
        field(
            "Description",
            &format!("\n {} - {}", self.package, first.summary),
        );
        field(
            "Changes",
            &format!("\n{}", self.changelog.changes.trim_end_matches('\n')),
        );
        field("Checksums-Sha1", &list(&|h| h.sha1.clone()));
        field("Checksums-Sha256", &list(&|h| h.sha256.to_string()));
        // The `.buildinfo` goes in the packages' section, as dpkg-genchanges files it under
        // the source's.
        let files_field: String = files
            .iter()
            .map(|(name, h)| {
                format!(
                    "\n {} {} {} {} {name}",
                    h.md5, h.size, first.section, first.priority
                )
            })
            .collect();
        field("Files", &files_field);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGELOG: &str = "p (1.0-1) stable; urgency=medium\n\n  * Upstream 1.0,\n    and more.\n\n -- A Person <a@example.org>  Thu, 01 Jan 1970 00:00:00 +0000\n";

    #[test]
    fn a_changelog_entry_is_read_as_dpkg_genchanges_reads_it() {
        let e = ChangelogEntry::parse(CHANGELOG).unwrap();
        assert_eq!(
            (&*e.package, &*e.version, &*e.distribution, &*e.urgency),
            ("p", "1.0-1", "stable", "medium")
        );
        assert_eq!(e.changed_by, "A Person <a@example.org>");
        assert_eq!(
            e.changes,
            " p (1.0-1) stable; urgency=medium\n .\n   * Upstream 1.0,\n     and more.\n"
        );
    }

    #[test]
    fn a_malformed_entry_says_what_is_wrong() {
        let e = ChangelogEntry::parse("p 1.0 stable\n").unwrap_err();
        assert!(e.starts_with("the first line \"p 1.0 stable\""), "{e}");
        let e = ChangelogEntry::parse("p (1.0) stable; urgency=low\n  * x\n").unwrap_err();
        assert!(e.contains("no ` -- Name <address>  date` line"), "{e}");
    }

    fn binary(arch: DebArch) -> (Binary, Hashes) {
        let bytes = format!("deb for {arch}");
        let binary = Binary {
            arch,
            file_name: format!("p_1.0-1_{arch}.deb"),
            section: "admin".into(),
            priority: "optional".into(),
            summary: "a package".into(),
            upstream: vec![(
                format!("https://example.org/{arch}.tar.gz"),
                "ab".repeat(32),
            )],
        };
        (binary, Hashes::of_reader(bytes.as_bytes()).unwrap())
    }

    #[test]
    fn several_architectures_make_one_multi_upload() {
        assert_eq!(base_name("p", "1.0-1", &[DebArch::Arm64]), "p_1.0-1_arm64");
        assert_eq!(
            base_name("p", "1.0-1", &[DebArch::Amd64, DebArch::Arm64]),
            "p_1.0-1_multi"
        );
        let changelog = ChangelogEntry::parse(CHANGELOG).unwrap();
        let binaries = [binary(DebArch::Amd64), binary(DebArch::Arm64)];
        let upload = Upload {
            package: "p",
            version: "1.0-1",
            maintainer: "A Team <t@example.org>",
            binaries: &binaries,
            changelog: &changelog,
            mtime: 0,
            source_date_epoch: Some(0),
            build_arch: "amd64",
        };
        let buildinfo = upload.buildinfo();
        assert!(
            buildinfo.contains("\nArchitecture: amd64 arm64\n"),
            "{buildinfo}"
        );
        assert!(buildinfo.contains("\nEnvironment:\n SOURCE_DATE_EPOCH=\"0\"\n"));
        let hashes = Hashes::of_reader(buildinfo.as_bytes()).unwrap();
        let changes = upload.changes(("p_1.0-1_multi.buildinfo", &hashes));
        let files = changes.split("\nFiles:\n").nth(1).unwrap();
        let lines: Vec<&str> = files.lines().collect();
        assert_eq!(lines.len(), 3, "{changes}");
        assert_eq!(
            lines[2],
            format!(
                " {} {} admin optional p_1.0-1_multi.buildinfo",
                hashes.md5, hashes.size
            )
        );
        assert!(changes.contains("\nDate: Thu, 01 Jan 1970 00:00:00 +0000\n"));
        assert!(changes.contains("\nChanged-By: A Person <a@example.org>\n"));
        assert!(changes.contains("\nDescription:\n p - a package\n"));
        assert!(!changes.contains(": \n"), "{changes}");
    }
}

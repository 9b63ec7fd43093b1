//! The stanzas of a `Packages` index. A new package's stanza is its control file's fields
//! followed by where it lies in the pool and its size and hashes; an existing stanza is kept
//! exactly as it was read. Stanzas are sorted by package, then version in dpkg's order, then
//! architecture, and `--keep N` drops all but the N highest versions of each package.

use std::cmp::Ordering;
use std::path::PathBuf;

use super::deb822::{self, Paragraph};
use super::version::{check_version, compare_versions};

/// A package given to a publish, after its control file was read and its bytes hashed.
#[derive(Debug, Clone)]
pub struct NewDeb {
    /// Where it was read from.
    pub path: PathBuf,
    /// A copy made while it was read, inside the repository, to be moved into the pool
    /// instead of copying `path` again.
    pub staged: Option<PathBuf>,
    pub control: Paragraph,
    /// Its debconf `templates` control file, if it has one.
    pub templates: Option<String>,
    pub size: u64,
    pub md5: String,
    pub sha256: String,
}

/// One stanza of an index, with the fields the publish reasons about taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Relative to the repository root: `pool/main/c/containerd-stack/…deb`.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub stanza: Paragraph,
}

/// Fields a control file must not bring into the index: the index sets them itself.
const INDEX_FIELDS: &[&str] = &[
    "Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Status",
];

impl Entry {
    /// An entry read back from an index.
    pub fn from_stanza(stanza: Paragraph) -> Result<Entry, String> {
        let field = |name: &str| {
            stanza
                .get(name)
                .map(str::to_owned)
                .ok_or_else(|| match stanza.get("Package") {
                    Some(p) => format!("the stanza of {p} has no {name} field"),
                    None => format!("a stanza has no {name} field"),
                })
        };
        let size = field("Size")?;
        Ok(Entry {
            package: field("Package")?,
            version: field("Version")?,
            architecture: field("Architecture")?,
            filename: field("Filename")?,
            size: size
                .parse()
                .map_err(|_| format!("Size {size:?} is not a number"))?,
            sha256: field("SHA256")?,
            stanza,
        })
    }

    /// The entry for a new package in `component`.
    pub fn from_deb(deb: &NewDeb, component: &str) -> Result<Entry, String> {
        let c = &deb.control;
        let field = |name: &str| {
            c.get(name)
                .map(str::to_owned)
                .ok_or(format!("the control file has no {name} field"))
        };
        let package = field("Package")?;
        let version = field("Version")?;
        let architecture = field("Architecture")?;
        check_package_name(&package)?;
        check_version(&version)?;
        if architecture.is_empty()
            || !architecture
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        {
            return Err(format!(
                "Architecture {architecture:?} is not a Debian architecture"
            ));
        }
        // The pool directory is named after the source package, as Debian's archive does.
        let source = c
            .get("Source")
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or(&package)
            .to_owned();
        check_package_name(&source)?;
        let filename = pool_path(component, &source, &package, &version, &architecture);
        let mut stanza = c.clone();
        for f in INDEX_FIELDS {
            stanza.remove(f);
        }
        stanza.move_first("Package");
        stanza.set("Filename", &filename);
        stanza.set("Size", deb.size.to_string());
        stanza.set("MD5sum", &deb.md5);
        // MD5sum and SHA256, as Debian's own archive lists: apt checks a package by the
        // strongest hash its stanza gives, and a SHA512 would only cost a third more
        // hashing on every publish.
        stanza.set("SHA256", &deb.sha256);
        Ok(Entry {
            package,
            version,
            architecture,
            filename,
            size: deb.size,
            sha256: deb.sha256.clone(),
            stanza,
        })
    }
}

fn check_package_name(name: &str) -> Result<(), String> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Debian package name (lowercase letters, digits, + - .)"
        ))
    }
}

/// `pool/<component>/<prefix>/<source>/<package>_<version without epoch>_<arch>.deb`; the
/// prefix is the first letter, or `libx` for `lib…` packages, as in Debian's archive.
pub fn pool_path(
    component: &str,
    source: &str,
    package: &str,
    version: &str,
    arch: &str,
) -> String {
    let prefix = if source.starts_with("lib") && source.len() > 3 {
        &source[..4]
    } else {
        &source[..1]
    };
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    format!("pool/{component}/{prefix}/{source}/{package}_{version}_{arch}.deb")
}

/// Package name, then version in dpkg's order, then architecture.
pub fn order(a: &Entry, b: &Entry) -> Ordering {
    a.package
        .cmp(&b.package)
        .then_with(|| compare_versions(&a.version, &b.version))
        .then_with(|| a.architecture.cmp(&b.architecture))
}

/// Sorts `entries` and keeps the `keep` highest versions of each package and architecture;
/// returns `(kept, dropped)`, both sorted.
pub fn keep_newest(mut entries: Vec<Entry>, keep: Option<usize>) -> (Vec<Entry>, Vec<Entry>) {
    entries.sort_by(order);
    let Some(keep) = keep else {
        return (entries, Vec::new());
    };
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    // Sorted ascending, so the newest come last in each run of one package and arch.
    for (i, e) in entries.iter().enumerate() {
        let newer = entries[i + 1..]
            .iter()
            .filter(|o| o.package == e.package && o.architecture == e.architecture)
            .count();
        if newer < keep {
            kept.push(e.clone());
        } else {
            dropped.push(e.clone());
        }
    }
    (kept, dropped)
}

/// The index text: stanzas separated by blank lines.
pub fn render(entries: &[Entry]) -> String {
    let stanzas: Vec<Paragraph> = entries.iter().map(|e| e.stanza.clone()).collect();
    deb822::render(&stanzas)
}

/// Parses an index back into entries.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    deb822::parse(text)?
        .into_iter()
        .map(Entry::from_stanza)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(version: &str, arch: &str) -> NewDeb {
        let control = format!(
            "Package: containerd-stack\nVersion: {version}\nArchitecture: {arch}\nMaintainer: M <m@example.org>\nDescription: containerd, runc, CNI plugins and crictl\n One package.\n"
        );
        NewDeb {
            staged: None,
            path: PathBuf::from(format!("containerd-stack_{version}_{arch}.deb")),
            control: deb822::parse(&control).unwrap().remove(0),
            templates: None,
            size: 1000,
            md5: "0".repeat(32),
            sha256: format!("{:064}", version.len()),
        }
    }

    #[test]
    fn a_new_stanza_is_the_control_file_then_pool_path_size_and_hashes() {
        let e = Entry::from_deb(&deb("1:2.3.4-1", "amd64"), "main").unwrap();
        assert_eq!(
            e.filename,
            "pool/main/c/containerd-stack/containerd-stack_2.3.4-1_amd64.deb"
        );
        let text = render(std::slice::from_ref(&e));
        assert_eq!(
            text,
            format!(
                "Package: containerd-stack\nVersion: 1:2.3.4-1\nArchitecture: amd64\nMaintainer: M <m@example.org>\nDescription: containerd, runc, CNI plugins and crictl\n One package.\nFilename: pool/main/c/containerd-stack/containerd-stack_2.3.4-1_amd64.deb\nSize: 1000\nMD5sum: {}\nSHA256: {}\n",
                "0".repeat(32),
                e.sha256,
            )
        );
        assert_eq!(parse(&text).unwrap(), vec![e]);
    }

    #[test]
    fn library_packages_get_a_four_letter_prefix() {
        assert_eq!(
            pool_path("main", "libfoo", "libfoo1", "1.0-1", "arm64"),
            "pool/main/libf/libfoo/libfoo1_1.0-1_arm64.deb"
        );
    }

    #[test]
    fn bad_control_fields_are_named() {
        let mut d = deb("2.3.4-1", "amd64");
        d.control.set("Package", "Containerd_Stack");
        let e = Entry::from_deb(&d, "main").unwrap_err();
        assert_eq!(
            e,
            "\"Containerd_Stack\" is not a Debian package name (lowercase letters, digits, + - .)"
        );
        let mut d = deb("2.3.4-1", "amd64");
        d.control.remove("Version");
        assert_eq!(
            Entry::from_deb(&d, "main").unwrap_err(),
            "the control file has no Version field"
        );
    }

    #[test]
    fn keep_drops_the_lowest_versions_per_package_and_arch() {
        let entries: Vec<Entry> = ["2.3.4-10", "2.3.4-2", "2.3.4-9"]
            .iter()
            .flat_map(|v| ["amd64", "arm64"].map(|a| Entry::from_deb(&deb(v, a), "main").unwrap()))
            .collect();
        let (kept, dropped) = keep_newest(entries.clone(), Some(2));
        let show = |es: &[Entry]| {
            es.iter()
                .map(|e| format!("{}/{}", e.version, e.architecture))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            show(&kept),
            [
                "2.3.4-9/amd64",
                "2.3.4-9/arm64",
                "2.3.4-10/amd64",
                "2.3.4-10/arm64"
            ]
        );
        assert_eq!(show(&dropped), ["2.3.4-2/amd64", "2.3.4-2/arm64"]);
        let (all, none) = keep_newest(entries, None);
        assert_eq!(all.len(), 6);
        assert!(none.is_empty());
    }
}

//! The package's software bill of materials: an SPDX 2.3 JSON document naming each upstream
//! release asset (its exact URL, pinned sha256, supplier and license from the component
//! table), the package itself, and every file it installs with its sha1 and sha256, related
//! to the asset it was taken from or marked as generated. The document is shipped in the
//! package and written beside it, so it cannot list itself, and it names the package by
//! name, version and architecture, never by a checksum of the archive that holds it. Its
//! bytes follow from its inputs alone: sorted entries, SPDXIDs derived from names and paths,
//! `created` from the build's timestamp and a namespace that hashes the rest.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::arch::DebArch;
use crate::artifact::{Artifact, Packing, GITHUB};
use crate::hash;
use crate::layout::{FhsTree, Source};
use crate::render::rfc3339;

/// Where the document is installed, relative to `/`; `{package}` is the package's name.
pub const SBOM_PATH: &str = "usr/share/doc/{package}/sbom.spdx.json";

/// SPDX 2.3's file types, as far as a package of this tool ships them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileType {
    Binary,
    Text,
    Documentation,
}

/// A file the build rendered rather than took from upstream.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// The template it was rendered from.
    pub template: &'static str,
    pub file_type: FileType,
}

/// What the document describes.
pub struct SbomInput<'a> {
    pub package: &'a str,
    pub version: &'a str,
    pub arch: DebArch,
    /// `Full Name <address>`, as stack.toml's maintainer.
    pub maintainer: &'a str,
    pub deb_file_name: &'a str,
    /// The build's timestamp (Unix seconds).
    pub mtime: u64,
    /// The upstream assets shipped, in the component table's order.
    pub artifacts: &'a [Artifact],
    /// Every file shipped but the document itself.
    pub tree: &'a FhsTree,
    /// The rendered files of `tree`, by path.
    pub generated: &'a BTreeMap<String, Generated>,
    /// Where the document itself is installed, relative to `/`.
    pub path: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    files: Vec<File>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    package_file_name: String,
    supplier: String,
    download_location: String,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    homepage: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    license_concluded: String,
    license_declared: String,
    copyright_text: String,
    source_info: String,
    primary_package_purpose: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationCode {
    package_verification_code_value: String,
    package_verification_code_excluded_files: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File {
    file_name: String,
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    checksums: Vec<Checksum>,
    file_types: Vec<FileType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_concluded: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    copyright_text: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

const DEB_ID: &str = "SPDXRef-Deb";

fn upstream_id(a: &Artifact) -> String {
    format!("SPDXRef-Upstream-{}", a.component.key())
}

/// A file's SPDXID: its path in the characters SPDX allows, and a hash of the exact path so
/// that two paths that read the same there (`a_b`, `a-b`) stay apart.
fn file_id(path: &str) -> String {
    let readable: String = path
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                true => c,
                false => '-',
            },
        )
        .collect();
    format!(
        "SPDXRef-File-{readable}-{}",
        &hash::key(&[path.as_bytes()])[..8]
    )
}

fn relationship(a: &str, kind: &'static str, b: &str) -> Relationship {
    Relationship {
        spdx_element_id: a.to_owned(),
        relationship_type: kind,
        related_spdx_element: b.to_owned(),
    }
}

/// `Name <address>` as SPDX's `Organization: Name (address)`.
fn organization(maintainer: &str) -> String {
    match maintainer.rsplit_once('<') {
        Some((name, rest)) => format!(
            "Organization: {} ({})",
            name.trim(),
            rest.trim_end_matches('>').trim()
        ),
        None => format!("Organization: {}", maintainer.trim()),
    }
}

/// The document, serialised: pretty JSON with a final newline.
pub fn document(input: &SbomInput) -> Vec<u8> {
    let mut doc = describe(input);
    // The namespace must be unique per document: a hash of everything else in it is, and
    // gives every build of the same inputs the same one.
    let body = serde_json::to_vec(&doc).expect("the document serialises");
    doc.document_namespace = format!(
        "https://spdx.org/spdxdocs/{}-{}",
        doc.name,
        hash::key(&[b"spdx-2.3", &body])
    );
    let mut out = serde_json::to_vec_pretty(&doc).expect("the document serialises");
    out.push(b'\n');
    out
}

fn describe(input: &SbomInput) -> Document {
    let tool = concat!("Tool: containerd-stack-", env!("CARGO_PKG_VERSION"));
    let mut packages = Vec::new();
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", DEB_ID)];

    let specs: Vec<_> = input.artifacts.iter().map(|a| a.component.spec()).collect();
    let licenses: BTreeSet<&str> = specs.iter().map(|s| s.license).collect();
    let license = licenses.into_iter().collect::<Vec<_>>().join(" AND ");
    let holders: Vec<String> = specs
        .iter()
        .map(|s| format!("Copyright {}", s.copyright))
        .collect();
    let sha1s: Vec<&str> = input.tree.files().map(|(_, f)| f.sha1.as_str()).collect();
    packages.push(Package {
        spdx_id: DEB_ID.into(),
        name: input.package.into(),
        version_info: input.version.into(),
        package_file_name: input.deb_file_name.into(),
        supplier: organization(input.maintainer),
        // Where the package will be published is not known when it is built.
        download_location: "NOASSERTION".into(),
        files_analyzed: true,
        package_verification_code: Some(VerificationCode {
            package_verification_code_value: verification_code(&sha1s),
            package_verification_code_excluded_files: vec![format!("./{}", input.path)],
        }),
        homepage: None,
        checksums: Vec::new(),
        license_concluded: license.clone(),
        license_declared: license,
        copyright_text: holders.join("\n"),
        source_info: format!(
            "built by containerd-stack for {} from the upstream release assets below",
            input.arch
        ),
        primary_package_purpose: "INSTALL",
        external_refs: Vec::new(),
    });

    for (a, spec) in input.artifacts.iter().zip(&specs) {
        let id = upstream_id(a);
        packages.push(Package {
            spdx_id: id.clone(),
            name: spec.key.into(),
            version_info: a.version.clone(),
            package_file_name: a.file_name.clone(),
            supplier: format!("Organization: {}", spec.supplier),
            // The canonical URL, whatever mirror the build fetched it from: the pin makes
            // the two the same bytes.
            download_location: format!("{GITHUB}{}", a.path),
            files_analyzed: false,
            package_verification_code: None,
            homepage: Some(spec.homepage.into()),
            checksums: vec![Checksum {
                algorithm: "SHA256",
                checksum_value: a.sha256.to_string(),
            }],
            license_concluded: spec.license.into(),
            license_declared: spec.license.into(),
            copyright_text: format!("Copyright {}", spec.copyright),
            source_info: format!(
                "the release asset of {} v{}, verified against the sha256 pinned in stack.toml",
                spec.repo, a.version
            ),
            primary_package_purpose: match a.packing {
                Packing::TarGz => "ARCHIVE",
                Packing::Bare { .. } => "APPLICATION",
            },
            external_refs: vec![ExternalRef {
                reference_category: "PACKAGE-MANAGER",
                reference_type: "purl",
                reference_locator: spec.purl(&a.version),
            }],
        });
        relationships.push(relationship(DEB_ID, "GENERATED_FROM", &id));
    }

    let mut files = Vec::new();
    let mut origins = Vec::new();
    for (path, f) in input.tree.files() {
        let id = file_id(path);
        let checksums = vec![
            Checksum {
                algorithm: "SHA1",
                checksum_value: f.sha1.clone(),
            },
            Checksum {
                algorithm: "SHA256",
                checksum_value: f.sha256.to_string(),
            },
        ];
        let file = match &f.source {
            Source::Staged { component, .. } => {
                let a = input
                    .artifacts
                    .iter()
                    .find(|a| a.component == *component)
                    .expect("a staged file comes from a shipped asset");
                let kind = match a.packing {
                    Packing::TarGz => "EXPANDED_FROM_ARCHIVE",
                    Packing::Bare { .. } => "COPY_OF",
                };
                origins.push(relationship(&id, kind, &upstream_id(a)));
                let spec = component.spec();
                File {
                    file_name: format!("./{path}"),
                    spdx_id: id.clone(),
                    checksums,
                    file_types: vec![FileType::Binary],
                    license_concluded: Some(spec.license),
                    copyright_text: Some(spec.copyright),
                    comment: None,
                }
            }
            Source::Inline(_) => {
                let generated = input.generated.get(path);
                File {
                    file_name: format!("./{path}"),
                    spdx_id: id.clone(),
                    checksums,
                    file_types: vec![generated.map_or(FileType::Text, |g| g.file_type)],
                    license_concluded: None,
                    copyright_text: None,
                    comment: Some(match generated {
                        Some(g) => format!(
                            "Generated by containerd-stack from the template {}.hbs",
                            g.template
                        ),
                        None => "Generated by containerd-stack".into(),
                    }),
                }
            }
        };
        files.push(file);
        relationships.push(relationship(DEB_ID, "CONTAINS", &id));
    }
    relationships.extend(origins);

    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!(
            "{}_{}_{}",
            input.package,
            input.version.replace(':', "%3a"),
            input.arch
        ),
        document_namespace: String::new(),
        creation_info: CreationInfo {
            created: rfc3339(input.mtime),
            creators: vec![tool.into()],
        },
        packages,
        files,
        relationships,
    }
}

/// SPDX's package verification code: the sha1 of the files' sorted sha1s, concatenated.
pub fn verification_code(sha1s: &[&str]) -> String {
    let mut sorted = sha1s.to_vec();
    sorted.sort_unstable();
    hash::sha1_hex(sorted.concat().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_are_valid_spdx_and_keep_lookalike_paths_apart() {
        let a = file_id("usr/bin/a_b");
        let b = file_id("usr/bin/a-b");
        assert_ne!(a, b);
        for id in [&a, &b, &file_id("usr/share/doc/p/changelog.Debian.gz")] {
            let rest = id.strip_prefix("SPDXRef-").unwrap();
            assert!(
                rest.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
                "{id}"
            );
        }
        assert!(a.starts_with("SPDXRef-File-usr-bin-a-b-"), "{a}");
    }

    #[test]
    fn the_verification_code_follows_the_spec() {
        // sha1("abc") (a999…) sorts before sha1("") (da39…), whatever order they come in.
        let abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let empty = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        let expected = hash::sha1_hex(format!("{abc}{empty}").as_bytes());
        assert_eq!(verification_code(&[empty, abc]), expected);
        assert_eq!(verification_code(&[abc, empty]), expected);
    }

    #[test]
    fn a_maintainer_becomes_an_spdx_organization() {
        assert_eq!(
            organization("Example Ops <ops@example.org>"),
            "Organization: Example Ops (ops@example.org)"
        );
    }
}

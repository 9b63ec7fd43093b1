//! The SBOM every build writes beside its package and ships in it: checked against the
//! package's data tar file by file, against the copyright file and the pinned releases, and
//! judged by the SPDX project's own validator (PyPI's spdx-tools, in a virtualenv under
//! target/).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use containerd_stack::deb::read::read_deb;
use containerd_stack::stack::ComponentKind;
use containerd_stack::DebArch;
use serde_json::Value;
use sha2::Digest;

use crate::build::{text, Fixture, ALL};

const SBOM: &str = "./usr/share/doc/containerd-stack/sbom.spdx.json";

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The component each installed program comes from, as the README's table says.
fn component_of(path: &str) -> ComponentKind {
    match path {
        "./usr/bin/containerd" | "./usr/bin/containerd-shim-runc-v2" | "./usr/bin/ctr" => {
            ComponentKind::Containerd
        }
        "./usr/sbin/runc" => ComponentKind::Runc,
        "./usr/bin/crictl" => ComponentKind::Crictl,
        p if p.starts_with("./opt/cni/bin/") => ComponentKind::CniPlugins,
        p => panic!("{p} is no program"),
    }
}

/// The license the DEP-5 copyright file gives `path`: the last `Files` paragraph that
/// matches it wins.
fn copyright_license(copyright: &str, path: &str) -> String {
    let path = path.trim_start_matches("./");
    let mut license = None;
    for paragraph in copyright.split("\n\n") {
        let fields = containerd_stack::deb::read::parse_paragraph(paragraph);
        let (Some(files), Some(l)) = (fields.get("Files"), fields.get("License")) else {
            continue;
        };
        let matches = files
            .split_whitespace()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => pattern == path,
            });
        if matches {
            license = Some(l.lines().next().unwrap().to_owned());
        }
    }
    license.unwrap_or_else(|| panic!("the copyright file covers no {path}"))
}

fn checksum<'a>(element: &'a Value, algorithm: &str) -> Option<&'a str> {
    element["checksums"]
        .as_array()?
        .iter()
        .find(|c| c["algorithm"] == algorithm)?["checksumValue"]
        .as_str()
}

#[test]
fn the_sbom_lists_every_shipped_file_with_its_hashes_and_origin() {
    let f = Fixture::new(&[DebArch::Amd64]);
    let built = f.build(ALL, &f.opts(DebArch::Amd64, "sbom"));
    assert_eq!(
        built.sbom.file_name().unwrap(),
        "containerd-stack_2.3.4-1_amd64.spdx.json"
    );
    let beside = fs::read(&built.sbom).unwrap();
    let deb = read_deb(&built.path).unwrap();
    let shipped = deb.data_entry(SBOM).expect("the package ships its SBOM");
    assert_eq!(shipped.mode, 0o644);
    assert_eq!(
        shipped.content.as_deref(),
        Some(&beside[..]),
        "the SBOM beside the package is not the one it ships"
    );
    let doc: Value = serde_json::from_slice(&beside).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    // SOURCE_DATE_EPOCH is unset: the upstream archives' newest mtime, 1_700_000_000.
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");

    let packages: BTreeMap<&str, &Value> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["SPDXID"].as_str().unwrap(), p))
        .collect();
    let files: BTreeMap<&str, &Value> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["fileName"].as_str().unwrap(), f))
        .collect();
    let relationships: Vec<(&str, &str, &str)> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap(),
                r["relationshipType"].as_str().unwrap(),
                r["relatedSpdxElement"].as_str().unwrap(),
            )
        })
        .collect();

    // The document describes the package by name, version and file name, without a
    // checksum of the archive that holds it.
    let described: Vec<&str> = relationships
        .iter()
        .filter(|r| r.0 == "SPDXRef-DOCUMENT" && r.1 == "DESCRIBES")
        .map(|r| r.2)
        .collect();
    assert_eq!(described.len(), 1);
    let package = packages[described[0]];
    assert_eq!(package["name"], "containerd-stack");
    assert_eq!(package["versionInfo"], "2.3.4-1");
    assert_eq!(
        package["packageFileName"],
        built.path.file_name().unwrap().to_str().unwrap()
    );
    assert!(package.get("checksums").is_none(), "{package}");

    // Every regular file of data.tar but the SBOM itself, with its sha1 and sha256.
    let copyright = text(&deb, "./usr/share/doc/containerd-stack/copyright");
    let regular: Vec<_> = deb.data.iter().filter(|e| e.kind.is_file()).collect();
    let mut sha1s = Vec::new();
    for e in &regular {
        if e.path == SBOM {
            assert!(!files.contains_key(SBOM), "the SBOM lists itself");
            continue;
        }
        let file = files
            .get(e.path.as_str())
            .unwrap_or_else(|| panic!("{} is not in the SBOM", e.path));
        let content = e.content.as_ref().expect("small enough to be kept");
        assert_eq!(
            checksum(file, "SHA256"),
            Some(&*sha256_hex(content)),
            "{}",
            e.path
        );
        assert_eq!(
            checksum(file, "SHA1"),
            Some(&*sha1_hex(content)),
            "{}",
            e.path
        );
        sha1s.push(sha1_hex(content));
        let id = file["SPDXID"].as_str().unwrap();
        assert!(
            relationships.contains(&(described[0], "CONTAINS", id)),
            "{} is not contained in the package",
            e.path
        );
        let origins: Vec<_> = relationships
            .iter()
            .filter(|r| r.0 == id && ["EXPANDED_FROM_ARCHIVE", "COPY_OF"].contains(&r.1))
            .collect();
        if e.mode & 0o111 == 0 {
            // Rendered, not taken from upstream.
            assert!(origins.is_empty(), "{}: {origins:?}", e.path);
            let comment = file["comment"].as_str().unwrap_or_default();
            assert!(
                comment.starts_with("Generated by containerd-stack from the template "),
                "{}: {comment:?}",
                e.path
            );
            continue;
        }
        let kind = component_of(&e.path);
        assert_eq!(origins.len(), 1, "{}: {origins:?}", e.path);
        let upstream = packages[origins[0].2];
        let asset = f.release.path_of(kind, DebArch::Amd64);
        let asset_path = asset.strip_prefix(&f.release.root).unwrap();
        assert_eq!(
            upstream["downloadLocation"],
            format!("https://github.com/{}", asset_path.display()),
            "{}",
            e.path
        );
        assert_eq!(
            upstream["packageFileName"],
            asset.file_name().unwrap().to_str().unwrap()
        );
        let pin = &f.release.sha256[&(kind, DebArch::Amd64)];
        assert_eq!(
            checksum(upstream, "SHA256"),
            Some(pin.as_str()),
            "{}",
            e.path
        );
        assert_eq!(upstream["versionInfo"], f.release.versions[&kind].as_str());
        assert!(
            upstream["supplier"]
                .as_str()
                .unwrap()
                .starts_with("Organization: "),
            "{upstream}"
        );
        let license = copyright_license(&copyright, &e.path);
        assert_eq!(file["licenseConcluded"], license.as_str(), "{}", e.path);
        assert_eq!(upstream["licenseDeclared"], license.as_str(), "{}", e.path);
        if kind == ComponentKind::Runc {
            // runc's asset is the program itself: the same bytes.
            assert_eq!(origins[0].1, "COPY_OF");
            assert_eq!(checksum(file, "SHA256"), Some(pin.as_str()));
        } else {
            assert_eq!(origins[0].1, "EXPANDED_FROM_ARCHIVE");
        }
    }
    assert_eq!(files.len(), regular.len() - 1, "the SBOM lists other files");
    assert_eq!(packages.len(), 1 + ALL.len());

    // SPDX's package verification code: the sha1 of the sorted sha1s, the SBOM excluded.
    sha1s.sort();
    let code = &package["packageVerificationCode"];
    assert_eq!(
        code["packageVerificationCodeValue"],
        sha1_hex(sha1s.concat().as_bytes())
    );
    assert_eq!(
        code["packageVerificationCodeExcludedFiles"],
        serde_json::json!([SBOM])
    );
}

/// pyspdxtools from PyPI's spdx-tools, installed once into a virtualenv under target/.
fn pyspdxtools() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
        let venv = target.join("spdx-venv");
        let tool = venv.join("bin/pyspdxtools");
        // Another test process may be installing it: one at a time.
        let lock = fs::File::create(target.join("spdx-venv.lock")).unwrap();
        lock.lock().unwrap();
        if !tool.exists() {
            let _ = fs::remove_dir_all(&venv);
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .output();
            assert!(
                made.as_ref().is_ok_and(|o| o.status.success()),
                "cannot make a virtualenv for spdx-tools (apt-get install python3-venv): {made:?}"
            );
            let pip = Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "spdx-tools==0.8.*"])
                .output()
                .unwrap();
            assert!(
                pip.status.success(),
                "pip install spdx-tools failed: {}",
                String::from_utf8_lossy(&pip.stderr)
            );
        }
        tool
    })
}

fn validate(file: &Path) -> std::process::Output {
    Command::new(pyspdxtools())
        .arg("-i")
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn the_spdx_validator_accepts_the_sbom_and_refuses_a_broken_one() {
    let f = Fixture::new(&[DebArch::Amd64, DebArch::S390x]);
    let full = f.build(ALL, &f.opts(DebArch::Amd64, "full"));
    let minimal = f.build(
        &[ComponentKind::Containerd, ComponentKind::Runc],
        &f.opts(DebArch::S390x, "min"),
    );
    for sbom in [&full.sbom, &minimal.sbom] {
        let out = validate(sbom);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "pyspdxtools -i {}: {}{}",
            sbom.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "pyspdxtools -i {}: {}",
            sbom.file_name().unwrap().to_string_lossy(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }

    // The validator does judge: a file without its SHA1, as SPDX 2.3 requires, is refused.
    let mut doc: Value = serde_json::from_slice(&fs::read(&full.sbom).unwrap()).unwrap();
    let checksums = doc["files"][0]["checksums"].as_array_mut().unwrap();
    checksums.retain(|c| c["algorithm"] != "SHA1");
    let broken = f.dir.path().join("broken.spdx.json");
    fs::write(&broken, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = validate(&broken);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "a broken SBOM passed: {said}");
    assert!(said.contains("SHA1"), "{said}");
}

//! The `.changes` and `.buildinfo` a build writes beside its packages: every checksum
//! checked against the files, and the signed upload taken by the tools archives are run
//! with — Debian's reprepro and aptly, each with its own state under a temp dir (GNUPGHOME
//! too, so the host's keys are never read), each checking the signature against the
//! signer's public key and refusing the upload once one byte of it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use containerd_stack::deb::read::{parse_paragraph, read_deb};
use containerd_stack::listener::Quiet;
use containerd_stack::{build_upload, Built, DebArch};
use sha2::Digest;
use tempfile::TempDir;
use testkit::openpgp;

use crate::common::now;

use crate::build::{out_files, Fixture, ALL};

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is not installed; the upload must be taken by it: apt-get install {tool}"
    );
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(checksum, size, name)` of each line of a multiline checksum field.
fn lines(field: &str) -> Vec<Vec<String>> {
    field
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn build_multi(f: &Fixture, tag: &str) -> Built {
    let mut opts = f.opts(DebArch::Amd64, tag);
    opts.arches = vec![DebArch::Arm64, DebArch::Amd64];
    build_upload(&f.stack(ALL), &opts, &Quiet).unwrap()
}

#[test]
fn one_changes_lists_every_package_and_the_buildinfo_with_their_checksums() {
    let f = Fixture::new(&[DebArch::Amd64, DebArch::Arm64]);
    let built = build_multi(&f, "multi");
    let out = built.changes.parent().unwrap();
    let mut names = out_files(out);
    names.sort();
    assert_eq!(
        names,
        [
            "containerd-stack_2.3.4-1_amd64.deb",
            "containerd-stack_2.3.4-1_amd64.spdx.json",
            "containerd-stack_2.3.4-1_arm64.deb",
            "containerd-stack_2.3.4-1_arm64.spdx.json",
            "containerd-stack_2.3.4-1_multi.buildinfo",
            "containerd-stack_2.3.4-1_multi.changes",
        ]
    );
    let changes = fs::read_to_string(&built.changes).unwrap();
    let c = parse_paragraph(&changes);
    let control = read_deb(&built.debs[0].path).unwrap().control_fields();
    let date = "Tue, 14 Nov 2023 22:13:20 +0000";
    for (field, value) in [
        ("Format", "1.8"),
        ("Date", date),
        ("Source", "containerd-stack"),
        ("Binary", "containerd-stack"),
        ("Architecture", "amd64 arm64"),
        ("Version", "2.3.4-1"),
        ("Distribution", "stable"),
        ("Urgency", "medium"),
        ("Maintainer", control["Maintainer"].as_str()),
        ("Changed-By", control["Maintainer"].as_str()),
    ] {
        assert_eq!(c[field], value, "{field}");
    }
    let summary = control["Description"].lines().next().unwrap().to_owned();
    assert_eq!(
        c["Description"].trim(),
        format!("containerd-stack - {summary}")
    );

    // Changes: the changelog's entry, heading to before the trailer, as dpkg-genchanges
    // puts it.
    let deb = read_deb(&built.debs[0].path).unwrap();
    let gz = deb
        .data_entry("./usr/share/doc/containerd-stack/changelog.Debian.gz")
        .unwrap();
    let mut changelog = String::new();
    flate2::read::GzDecoder::new(&gz.content.as_ref().unwrap()[..])
        .read_to_string(&mut changelog)
        .unwrap();
    let entry: Vec<String> = changelog
        .lines()
        .take_while(|l| !l.starts_with(" -- "))
        .map(|l| match l.is_empty() {
            true => " .".to_owned(),
            false => format!(" {l}"),
        })
        .collect();
    let entry = entry.join("\n");
    assert_eq!(
        c["Changes"],
        format!("\n{}", entry.trim_end_matches("\n ."))
    );
    assert!(entry.starts_with(" containerd-stack (2.3.4-1) stable; urgency=medium\n"));

    // Files, Checksums-Sha1 and Checksums-Sha256 name the packages and the .buildinfo, each
    // with the hash of the file in --out.
    let expected: BTreeSet<&str> = [
        "containerd-stack_2.3.4-1_amd64.deb",
        "containerd-stack_2.3.4-1_arm64.deb",
        "containerd-stack_2.3.4-1_multi.buildinfo",
    ]
    .into();
    let files = lines(&c["Files"]);
    assert_eq!(files.len(), 3);
    for l in &files {
        let bytes = fs::read(out.join(&l[4])).unwrap();
        assert_eq!(l[0], hex::encode(md5::Md5::digest(&bytes)), "{}", l[4]);
        assert_eq!(l[1], bytes.len().to_string(), "{}", l[4]);
        assert_eq!(
            (&*l[2], &*l[3]),
            (&*control["Section"], &*control["Priority"])
        );
    }
    let named: BTreeSet<&str> = files.iter().map(|l| l[4].as_str()).collect();
    assert_eq!(named, expected);
    for (field, hash) in [
        (
            "Checksums-Sha1",
            (|b: &[u8]| hex::encode(sha1::Sha1::digest(b))) as fn(&[u8]) -> String,
        ),
        ("Checksums-Sha256", |b: &[u8]| {
            hex::encode(sha2::Sha256::digest(b))
        }),
    ] {
        let listed = lines(&c[field]);
        let named: BTreeSet<&str> = listed.iter().map(|l| l[2].as_str()).collect();
        assert_eq!(named, expected, "{field}");
        for l in &listed {
            let bytes = fs::read(out.join(&l[2])).unwrap();
            assert_eq!(l[0], hash(&bytes), "{field} {}", l[2]);
            assert_eq!(l[1], bytes.len().to_string(), "{field} {}", l[2]);
        }
    }

    // The .buildinfo: the packages' checksums, the timestamp, and every upstream asset
    // with its pin and exact URL.
    let b = parse_paragraph(&fs::read_to_string(&built.buildinfo).unwrap());
    assert_eq!(b["Format"], "1.0");
    assert_eq!(b["Architecture"], "amd64 arm64");
    assert_eq!(b["Build-Date"], date);
    assert_eq!(
        b["Build-Architecture"],
        DebArch::host().unwrap().as_str(),
        "the machine that built it"
    );
    for deb in &built.debs {
        let name = deb.path.file_name().unwrap().to_str().unwrap();
        let line = format!("{} {} {name}", deb.sha256, deb.size);
        assert!(b["Checksums-Sha256"].contains(&line), "{line}");
    }
    let upstream: BTreeMap<String, String> = lines(&b["Upstream-Checksums-Sha256"])
        .into_iter()
        .map(|l| (l[1].clone(), l[0].clone()))
        .collect();
    let mut pins = BTreeMap::new();
    for arch in [DebArch::Amd64, DebArch::Arm64] {
        for kind in ALL {
            let path = f.release.path_of(*kind, arch);
            let rel = path.strip_prefix(&f.release.root).unwrap();
            pins.insert(
                format!("https://github.com/{}", rel.display()),
                f.release.sha256[&(*kind, arch)].clone(),
            );
        }
    }
    assert_eq!(upstream, pins);
}

#[test]
fn a_single_architecture_names_its_upload_after_it() {
    let f = Fixture::new(&[DebArch::Arm64]);
    let mut opts = f.opts(DebArch::Arm64, "one");
    opts.source_date_epoch = Some(1_234_567_890);
    let built = build_upload(&f.stack(ALL), &opts, &Quiet).unwrap();
    assert_eq!(
        built.changes.file_name().unwrap(),
        "containerd-stack_2.3.4-1_arm64.changes"
    );
    let b = parse_paragraph(&fs::read_to_string(&built.buildinfo).unwrap());
    assert_eq!(b["Architecture"], "arm64");
    assert_eq!(b["Build-Date"], "Fri, 13 Feb 2009 23:31:30 +0000");
    assert_eq!(b["Environment"], "\n SOURCE_DATE_EPOCH=\"1234567890\"");
}

/// A reprepro repository under `dir` for the suite `stable`.
fn reprepro_repo(dir: &Path) {
    fs::create_dir_all(dir.join("conf")).unwrap();
    fs::write(
        dir.join("conf/distributions"),
        "Codename: stable\nSuite: stable\nArchitectures: amd64 arm64\nComponents: main\n",
    )
    .unwrap();
}

fn reprepro(dir: &Path, gnupg: &Path, args: &[&str]) -> Output {
    Command::new("reprepro")
        .arg("-b")
        .arg(dir)
        .args(args)
        .env("GNUPGHOME", gnupg)
        .output()
        .unwrap()
}

fn gnupg_home(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let home = dir.join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    home
}

/// Copies every file of `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// `text` with one byte of `from` changed into `to`.
fn one_byte_changed(text: &str, from: &str, to: &str) -> String {
    let changed = text.replacen(from, to, 1);
    assert_ne!(changed, text);
    assert_eq!(changed.len(), text.len());
    changed
}

#[test]
fn reprepro_includes_the_signed_changes_and_refuses_what_it_does_not_say() {
    require("reprepro");
    require("gpg");
    let f = Fixture::new(&[DebArch::Amd64, DebArch::Arm64]);
    let (key, signer) = openpgp::signer("Example Ops <ops@example.org>", now() - 3600);
    let mut opts = f.opts(DebArch::Amd64, "reprepro");
    opts.arches = vec![DebArch::Amd64, DebArch::Arm64];
    opts.signer = Some(std::sync::Arc::new(signer));
    let built = build_upload(&f.stack(ALL), &opts, &Quiet).unwrap();
    let work = TempDir::new().unwrap();
    let gnupg = gnupg_home(work.path());
    // reprepro checks signatures with the keys of its GnuPG home.
    let keyring = work.path().join("ops.gpg");
    fs::write(&keyring, &key.public_binary).unwrap();
    let out = Command::new("gpg")
        .args(["--batch", "--quiet", "--import"])
        .arg(&keyring)
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    assert!(out.status.success(), "gpg --import: {}", said(&out));

    let repo = work.path().join("repo");
    reprepro_repo(&repo);
    let changes = built.changes.to_str().unwrap();
    let out = reprepro(&repo, &gnupg, &["-V", "include", "stable", changes]);
    assert!(out.status.success(), "reprepro include: {}", said(&out));
    println!("reprepro include: {}", said(&out).trim());
    let list = reprepro(&repo, &gnupg, &["list", "stable"]);
    assert!(list.status.success(), "{}", said(&list));
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    println!("reprepro list stable: {}", listed.trim());
    for arch in ["amd64", "arm64"] {
        assert!(
            listed
                .lines()
                .any(|l| l == format!("stable|main|{arch}: containerd-stack 2.3.4-1")),
            "{listed}"
        );
    }
    for deb in &built.debs {
        let pooled = repo
            .join("pool/main/c/containerd-stack")
            .join(deb.path.file_name().unwrap());
        assert_eq!(fs::read(&pooled).unwrap(), fs::read(&deb.path).unwrap());
    }

    // A package changed after the .changes listed it, and a .changes changed after it was
    // signed: both refused, nothing of them included.
    let name = built.changes.file_name().unwrap();
    let changed_deb = work.path().join("changed-deb");
    copy_dir(built.changes.parent().unwrap(), &changed_deb);
    let deb = changed_deb.join(built.debs[1].path.file_name().unwrap());
    let mut bytes = fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&deb, bytes).unwrap();
    let changed_text = work.path().join("changed-text");
    copy_dir(built.changes.parent().unwrap(), &changed_text);
    let text = fs::read_to_string(changed_text.join(name)).unwrap();
    let text = one_byte_changed(&text, "Urgency: medium", "Urgency: mediun");
    fs::write(changed_text.join(name), text).unwrap();
    for (what, dir) in [("package", &changed_deb), ("signed text", &changed_text)] {
        let other = work.path().join(format!("repo-{what}"));
        reprepro_repo(&other);
        let changes = dir.join(name);
        let out = reprepro(
            &other,
            &gnupg,
            &["include", "stable", changes.to_str().unwrap()],
        );
        assert!(!out.status.success(), "a changed {what} was included");
        println!("reprepro include (changed {what}): {}", said(&out).trim());
        let list = reprepro(&other, &gnupg, &["list", "stable"]);
        assert_eq!(String::from_utf8_lossy(&list.stdout), "", "{what}");
    }
}

/// `aptly -config=<dir>/aptly.conf ARGS`, its state under `dir`.
fn aptly(dir: &Path, args: &[&str]) -> Output {
    let conf = dir.join("aptly.conf");
    if !conf.exists() {
        let root = dir.join("aptly");
        let text = serde_json::json!({
            "rootDir": root,
            "architectures": [],
            "gpgProvider": "gpg",
        });
        fs::write(&conf, text.to_string()).unwrap();
    }
    Command::new("aptly")
        .arg(format!("-config={}", conf.display()))
        .args(args)
        .env("GNUPGHOME", gnupg_home(dir))
        .output()
        .unwrap()
}

#[test]
fn aptly_takes_the_signed_changes_and_refuses_it_after_one_byte_changes() {
    require("aptly");
    require("gpgv");
    let f = Fixture::new(&[DebArch::Amd64]);
    let now = now();
    let (key, signer) = openpgp::signer("Example Ops <ops@example.org>", now - 3600);
    let mut opts = f.opts(DebArch::Amd64, "aptly");
    opts.signer = Some(std::sync::Arc::new(signer));
    let built = build_upload(&f.stack(ALL), &opts, &Quiet).unwrap();
    let changes = fs::read_to_string(&built.changes).unwrap();
    assert!(changes.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n"));
    let buildinfo = fs::read_to_string(&built.buildinfo).unwrap();
    assert!(buildinfo.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n"));

    let work = TempDir::new().unwrap();
    let keyring = work.path().join("ops.gpg");
    fs::write(&keyring, &key.public_binary).unwrap();
    let (other, _) = openpgp::signer("Someone Else <else@example.org>", now - 3600);
    let other_keyring = work.path().join("else.gpg");
    fs::write(&other_keyring, &other.public_binary).unwrap();
    let state = work.path().join("state");
    fs::create_dir_all(&state).unwrap();
    let out = aptly(
        &state,
        &[
            "repo",
            "create",
            "-distribution=stable",
            "-component=main",
            "stable",
        ],
    );
    assert!(out.status.success(), "aptly repo create: {}", said(&out));
    let name = built.changes.file_name().unwrap().to_str().unwrap();
    let include = |dir: &Path, keyring: &Path| {
        aptly(
            &state,
            &[
                "repo",
                "include",
                &format!("-keyring={}", keyring.display()),
                "-no-remove-files",
                dir.join(name).to_str().unwrap(),
            ],
        )
    };
    let packages = || {
        let out = aptly(&state, &["repo", "show", "-with-packages", "stable"]);
        assert!(out.status.success(), "{}", said(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The same .changes, with one byte of its signed text changed, and under a key that did
    // not sign it: both refused, nothing added.
    let tampered = work.path().join("tampered");
    copy_dir(built.changes.parent().unwrap(), &tampered);
    let text = fs::read_to_string(tampered.join(name)).unwrap();
    let changed = one_byte_changed(&text, "Urgency: medium", "Urgency: mediun");
    fs::write(tampered.join(name), changed).unwrap();
    let out = include(&tampered, &keyring);
    assert!(
        !out.status.success(),
        "a changed .changes was taken: {}",
        said(&out)
    );
    println!(
        "aptly repo include (one byte changed): {}",
        said(&out).trim()
    );
    let out = include(built.changes.parent().unwrap(), &other_keyring);
    assert!(
        !out.status.success(),
        "another key's signature was taken: {}",
        said(&out)
    );
    println!("aptly repo include (another key): {}", said(&out).trim());
    assert!(!packages().contains("containerd-stack_"), "{}", packages());

    // The good signature, against the signer's public key.
    let out = include(built.changes.parent().unwrap(), &keyring);
    assert!(out.status.success(), "aptly repo include: {}", said(&out));
    println!("aptly repo include: {}", said(&out).trim());
    let shown = packages();
    assert!(shown.contains("containerd-stack_2.3.4-1_amd64"), "{shown}");
}

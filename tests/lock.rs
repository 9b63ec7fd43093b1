//! `lock` against a loopback mirror serving upstream's three checksum formats, runc's
//! clear-signed one made with a test maintainer key.

use std::path::Path;

use containerd_stack::fetch::{FetchOptions, Fetcher};
use containerd_stack::lock::{lock, LockOptions};
use containerd_stack::sign::Keyring;
use containerd_stack::stack::ComponentKind;
use containerd_stack::{DebArch, Stack};
use tempfile::TempDir;
use testkit::{openpgp, FakeRelease, Mirror};

const ARCHES: &[DebArch] = &[DebArch::Amd64, DebArch::Arm64];

struct Fixture {
    dir: TempDir,
    release: FakeRelease,
    mirror: Mirror,
    fetcher: Fetcher,
}

fn fixture() -> Fixture {
    let dir = TempDir::new().unwrap();
    let release = FakeRelease::write(&dir.path().join("mirror"), ARCHES);
    let key = openpgp::test_key("runc maintainer <runc@example.org>");
    release.sign_runc_sums(&key, &openpgp::keyring(&[&key]));
    let mirror = Mirror::serve(dir.path().join("mirror"));
    let fetcher = Fetcher::new(FetchOptions {
        mirror: Some(mirror.url()),
        cache_dir: dir.path().join("cache"),
        offline: false,
    })
    .unwrap();
    Fixture {
        dir,
        release,
        mirror,
        fetcher,
    }
}

/// The release's manifest with every pin taken out, and a comment to keep.
fn unpinned(f: &Fixture) -> String {
    let full = f.release.stack_toml(&ComponentKind::ALL);
    let mut out = String::from("# pins are filled by `cargo xtask lock`\n");
    for line in full.lines() {
        if line.starts_with("amd64 = ") || line.starts_with("arm64 = ") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn opts(arches: &[DebArch]) -> LockOptions {
    LockOptions {
        arches: arches.to_vec(),
        bumps: vec![],
        runc_keyring: None,
    }
}

#[test]
fn lock_fills_every_pin_from_upstream_and_keeps_comments() {
    let f = fixture();
    let text = unpinned(&f);
    let locked = lock(&text, Path::new("stack.toml"), &opts(ARCHES), &f.fetcher).unwrap();
    assert_eq!(locked.changes.len(), 8);
    assert!(locked
        .text
        .starts_with("# pins are filled by `cargo xtask lock`\n"));
    let stack = Stack::parse(&locked.text, Path::new("stack.toml")).unwrap();
    for c in &stack.components {
        for &arch in ARCHES {
            assert_eq!(
                c.sha256[&arch].as_str(),
                f.release.sha256[&(c.kind, arch)],
                "{} {arch}",
                c.kind
            );
        }
    }
    // All three formats were read: `hash  name`, a bare hash, and the signed runc file.
    let requests = f.mirror.requests();
    for wanted in [
        "containerd-2.3.4-linux-arm64.tar.gz.sha256sum",
        "cni-plugins-linux-amd64-v1.9.1.tgz.sha256",
        "crictl-v1.36.0-linux-arm64.tar.gz.sha256",
        "runc.sha256sum",
        "runc.keyring",
    ] {
        assert!(
            requests.iter().any(|r| r.ends_with(wanted)),
            "{wanted} not fetched"
        );
    }
    // No asset itself is downloaded to lock it.
    assert!(!requests
        .iter()
        .any(|r| r.ends_with(".tar.gz") || r.ends_with("runc.amd64")));

    // Locked again, nothing changes: that is what `--check` relies on.
    let again = lock(
        &locked.text,
        Path::new("stack.toml"),
        &opts(&[]),
        &f.fetcher,
    )
    .unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(again.text, locked.text);
}

#[test]
fn a_pin_that_differs_from_upstream_is_reported() {
    let f = fixture();
    let good = f.release.stack_toml(&ComponentKind::ALL);
    let wrong = good.replace(
        &f.release.sha256[&(ComponentKind::Crictl, DebArch::Arm64)],
        &"e".repeat(64),
    );
    let locked = lock(&wrong, Path::new("stack.toml"), &opts(&[]), &f.fetcher).unwrap();
    assert_eq!(locked.changes.len(), 1);
    assert_eq!(locked.changes[0].key, "components.crictl.sha256.arm64");
    assert_eq!(
        locked.changes[0].old.as_deref(),
        Some("e".repeat(64).as_str())
    );
    assert_eq!(locked.text, good);
}

#[test]
fn tampered_runc_checksums_are_refused() {
    let f = fixture();
    let sums = f
        .release
        .root
        .join("opencontainers/runc/releases/download/v1.4.3/runc.sha256sum");
    let signed = std::fs::read_to_string(&sums).unwrap();
    let real = &f.release.sha256[&(ComponentKind::Runc, DebArch::Amd64)];
    std::fs::write(&sums, signed.replace(real.as_str(), &"a".repeat(64))).unwrap();
    let err = lock(
        &unpinned(&f),
        Path::new("stack.toml"),
        &opts(ARCHES),
        &f.fetcher,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("runc.sha256sum: no valid signature by any of the 1 keys"),
        "{err}"
    );
}

#[test]
fn runc_checksums_signed_by_another_key_are_refused() {
    let f = fixture();
    let stranger = openpgp::test_key("someone else <x@example.org>");
    let keyring = openpgp::keyring(&[&stranger]);
    let mut o = opts(ARCHES);
    o.runc_keyring = Some(Keyring::parse(keyring.as_bytes(), "stranger.asc").unwrap());
    let err = lock(&unpinned(&f), Path::new("stack.toml"), &o, &f.fetcher)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no valid signature"), "{err}");
}

#[test]
fn unsigned_runc_checksums_are_refused() {
    let f = fixture();
    let sums = f
        .release
        .root
        .join("opencontainers/runc/releases/download/v1.4.3/runc.sha256sum");
    let lines: String = ARCHES
        .iter()
        .map(|a| {
            format!(
                "{}  runc.{}\n",
                f.release.sha256[&(ComponentKind::Runc, *a)],
                a.go_arch()
            )
        })
        .collect();
    std::fs::write(&sums, lines).unwrap();
    let err = lock(
        &unpinned(&f),
        Path::new("stack.toml"),
        &opts(ARCHES),
        &f.fetcher,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("is not clear-signed"), "{err}");
}

#[test]
fn bump_moves_a_component_and_locks_the_new_version() {
    let f = fixture();
    // Upstream publishes crictl 1.37.0.
    let mut next = f.release.clone();
    next.versions.insert(ComponentKind::Crictl, "1.37.0".into());
    for &arch in ARCHES {
        let bytes = next.asset_bytes(ComponentKind::Crictl, arch);
        next.put(ComponentKind::Crictl, arch, &bytes);
    }
    let mut o = opts(&[]);
    o.bumps = vec![(ComponentKind::Crictl, "1.37.0".into())];
    let text = f.release.stack_toml(&ComponentKind::ALL);
    let locked = lock(&text, Path::new("stack.toml"), &o, &f.fetcher).unwrap();
    let stack = Stack::parse(&locked.text, Path::new("stack.toml")).unwrap();
    let crictl = stack.component(ComponentKind::Crictl).unwrap();
    assert_eq!(crictl.version, "1.37.0");
    assert_eq!(crictl.sha256.len(), 2);
    assert_eq!(
        crictl.sha256[&DebArch::Amd64].as_str(),
        next.sha256[&(ComponentKind::Crictl, DebArch::Amd64)]
    );
    assert!(f.dir.path().exists());
}

#[test]
fn missing_checksum_file_names_its_url() {
    let f = fixture();
    let err = lock(
        &unpinned(&f),
        Path::new("stack.toml"),
        &opts(&[DebArch::S390x]),
        &f.fetcher,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("containerd-2.3.4-linux-s390x.tar.gz.sha256sum: HTTP 404"),
        "{err}"
    );
}

/// What the release workflow's matrix is made from: the command's JSON, which is the
/// library's `pinned_arches` of the same file.
#[test]
fn list_arches_prints_the_pinned_architectures_as_json() {
    let f = fixture();
    let s390x = FakeRelease::write(&f.dir.path().join("s390x"), &[DebArch::S390x]);
    let mut text = f.release.stack_toml(&ComponentKind::ALL);
    // runc pinned for s390x but containerd not: s390x is not buildable.
    let runc = &s390x.sha256[&(ComponentKind::Runc, DebArch::S390x)];
    text = text.replacen(
        "[components.runc.sha256]\n",
        &format!("[components.runc.sha256]\ns390x = \"{runc}\"\n"),
        1,
    );
    let path = f.dir.path().join("stack.toml");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_containerd-stack"))
        .args(["lock", "--list-arches", "--stack"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, ["amd64", "arm64"]);
    let pinned: Vec<&str> = Stack::parse(&text, &path)
        .unwrap()
        .pinned_arches()
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(printed, pinned);
    assert!(f.mirror.requests().is_empty(), "listing fetched something");
}

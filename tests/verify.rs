//! `verify` on good, signed, tampered, truncated and foreign files, and the package readers
//! under arbitrary bytes: one clear line for every failure, never a panic or a hang.

use std::path::{Path, PathBuf};

use containerd_stack::deb::compress::Compression;
use containerd_stack::deb::read::read_deb;
use containerd_stack::listener::Quiet;
use containerd_stack::sign::{GeneratedKey, Keyring, Signer};
use containerd_stack::stack::ComponentKind;
use containerd_stack::verify::{verify_deb, Signature};
use containerd_stack::{build, BuildOptions, DebArch, Stack};
use proptest::prelude::*;
use tempfile::TempDir;
use testkit::{openpgp, FakeRelease, Mirror};

struct Signed {
    dir: TempDir,
    deb: PathBuf,
    keyring: Keyring,
    fingerprint: String,
}

fn signed_deb() -> Signed {
    signed_deb_with(openpgp::signer("Packager <p@example.org>", 1_700_000_000).0)
}

/// A package signed by `key`, as `build-deb --sign-key` loads it.
fn signed_deb_with(key: GeneratedKey) -> Signed {
    let dir = TempDir::new().unwrap();
    let release = FakeRelease::write(&dir.path().join("mirror"), &[DebArch::Amd64]);
    let mirror = Mirror::serve(dir.path().join("mirror"));
    let signer = Signer::load(
        key.secret_armored.as_bytes(),
        None,
        Path::new("k.asc"),
        1_800_000_000,
    )
    .unwrap();
    let stack = Stack::parse(
        &release.stack_toml(&ComponentKind::ALL),
        Path::new("stack.toml"),
    )
    .unwrap();
    let opts = BuildOptions {
        compression: Compression::Gzip,
        source_date_epoch: Some(1_750_000_000),
        signer: Some(std::sync::Arc::new(signer)),
        ..BuildOptions::new(
            vec![DebArch::Amd64],
            dir.path().join("out"),
            Some(mirror.url()),
            dir.path().join("cache"),
        )
    };
    let deb = build(&stack, &opts, &Quiet).unwrap().remove(0).path;
    Signed {
        dir,
        deb,
        keyring: Keyring::parse(&key.public_binary, "signing-key.gpg").unwrap(),
        fingerprint: key.fingerprint,
    }
}

fn one_line(r: Result<impl std::fmt::Debug, containerd_stack::Error>) -> String {
    let e = containerd_stack::error::report(&r.unwrap_err());
    assert!(!e.contains('\n'), "{e}");
    e
}

/// Rewrites the ar member `name` of a package with `f` applied to its bytes.
fn rewrite_member(deb: &Path, out: &Path, name: &str, f: impl Fn(&mut Vec<u8>)) {
    let mut ar = ar::Archive::new(std::fs::File::open(deb).unwrap());
    let mut b = ar::Builder::new(std::fs::File::create(out).unwrap());
    while let Some(m) = ar.next_entry() {
        let mut m = m.unwrap();
        let id = m.header().identifier().to_vec();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut m, &mut bytes).unwrap();
        if id == name.as_bytes() {
            f(&mut bytes);
        }
        let h = ar::Header::new(id, bytes.len() as u64);
        b.append(&h, &bytes[..]).unwrap();
    }
}

#[test]
fn a_signed_package_verifies_and_names_its_signer() {
    let s = signed_deb();
    let r = verify_deb(&s.deb, Some(&s.keyring)).unwrap();
    assert_eq!(r.package, "containerd-stack");
    assert_eq!(
        r.signature,
        Signature::Valid {
            fingerprint: s.fingerprint.clone()
        }
    );
    assert!(r.files_checked >= 10);
    assert_eq!(
        verify_deb(&s.deb, None).unwrap().signature,
        Signature::Unchecked
    );
}

#[test]
fn same_key_and_inputs_give_byte_identical_signed_packages() {
    let key = || GeneratedKey {
        secret_armored: KEY.with(|k| k.secret_armored.clone()),
        public_binary: KEY.with(|k| k.public_binary.clone()),
        public_armored: KEY.with(|k| k.public_armored.clone()),
        fingerprint: KEY.with(|k| k.fingerprint.clone()),
    };
    let a = signed_deb_with(key());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = signed_deb_with(key());
    assert_ne!(a.deb, b.deb);
    assert_eq!(
        std::fs::read(&a.deb).unwrap(),
        std::fs::read(&b.deb).unwrap()
    );
    // Another key signs differently.
    let c = signed_deb();
    assert_ne!(
        std::fs::read(&a.deb).unwrap(),
        std::fs::read(&c.deb).unwrap()
    );
}

thread_local! {
    static KEY: GeneratedKey = openpgp::signer("Packager <p@example.org>", 1_700_000_000).0;
}

#[test]
fn signature_by_another_key_is_bad() {
    let s = signed_deb();
    let (other, _) = openpgp::signer("Other <o@example.org>", 1_700_000_000);
    let e = one_line(verify_deb(
        &s.deb,
        Some(&Keyring::parse(&other.public_binary, "other.gpg").unwrap()),
    ));
    assert!(
        e.starts_with(&format!(
            "{}: entry _gpgorigin: BAD signature",
            s.deb.display()
        )),
        "{e}"
    );
}

#[test]
fn altered_data_is_caught_by_md5sums_and_signature() {
    let s = signed_deb();
    let tampered = s.dir.path().join("tampered.deb");
    // Change one file's bytes inside the data member, keeping it a valid archive.
    rewrite_member(&s.deb, &tampered, "data.tar.gz", |bytes| {
        // One gzip member per block of the data tar.
        let mut plain = Vec::new();
        let mut members = flate2::read::MultiGzDecoder::new(&bytes[..]);
        std::io::Read::read_to_end(&mut members, &mut plain).unwrap();
        let at = plain
            .windows(13)
            .position(|w| w == b"runc for amd6")
            .unwrap();
        plain[at] = b'R';
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &plain).unwrap();
        *bytes = enc.finish().unwrap();
    });
    let e = one_line(verify_deb(&tampered, Some(&s.keyring)));
    assert!(e.contains("entry usr/sbin/runc: md5 is"), "{e}");
    assert!(e.contains("the data was altered"), "{e}");
}

#[test]
fn truncated_corrupt_and_foreign_files_are_one_line_naming_the_file() {
    let s = signed_deb();
    let bytes = std::fs::read(&s.deb).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("empty", vec![]),
        ("html", b"<html>404</html>".to_vec()),
        (
            "flipped",
            bytes
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 200 { !b } else { *b })
                .collect(),
        ),
    ];
    for (name, content) in cases {
        let p = s.dir.path().join(format!("{name}.deb"));
        std::fs::write(&p, content).unwrap();
        let e = one_line(verify_deb(&p, Some(&s.keyring)));
        assert!(e.starts_with(&p.display().to_string()), "{name}: {e}");
    }
    let e = one_line(verify_deb(Path::new("/nonexistent/x.deb"), None));
    assert!(e.starts_with("/nonexistent/x.deb: "), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn readers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, &bytes).unwrap();
        let _ = read_deb(&p);
        let _ = verify_deb(&p, None);
        let _ = containerd_stack::deb::read::read_control(&p);
    }

    #[test]
    fn readers_never_panic_on_mutated_packages(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let good = good_deb();
        let mut bytes = good.clone();
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] ^= b | 1;
        }
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, &bytes).unwrap();
        if let Err(e) = verify_deb(&p, None) {
            prop_assert!(!e.to_string().contains('\n'), "{}", e);
        }
        let _ = containerd_stack::deb::read::read_control(&p);
    }
}

/// One small, valid package, built once.
fn good_deb() -> Vec<u8> {
    static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    GOOD.get_or_init(|| std::fs::read(signed_deb().deb).unwrap())
        .clone()
}

#[test]
fn keys_that_cannot_sign_are_refused_naming_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let now = 1_800_000_000;
    let expired = dir.join("expired.secret.asc");
    let e = one_line(Signer::load_file(&expired, None, now).map(|_| ()));
    assert!(
        e.starts_with(&format!("{}: the key expired at", expired.display())),
        "{e}"
    );
    let certify = dir.join("certify-only.secret.asc");
    let e = one_line(Signer::load_file(&certify, None, now).map(|_| ()));
    assert!(
        e.starts_with(&format!(
            "{}: the key is not marked for signing",
            certify.display()
        )),
        "{e}"
    );
    // The same key at a time before it expired is fine: the check is about time, not form.
    assert!(Signer::load_file(&expired, None, 1_577_836_900).is_ok());
}

#[test]
fn repo_publish_refuses_truncated_corrupt_and_foreign_files_in_one_line() {
    use containerd_stack::repo::{publish, PublishOptions};
    let s = signed_deb();
    let (_, signer) = openpgp::signer("Repo <r@example.org>", 1_700_000_000);
    let bytes = std::fs::read(&s.deb).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 3].to_vec()),
        ("empty", vec![]),
        ("text", b"Package: containerd-stack\n".to_vec()),
        ("flipped-control", {
            let mut b = bytes.clone();
            b[432] ^= 0xff; // inside the compressed control member
            b
        }),
    ];
    let repo = s.dir.path().join("repo");
    for (name, content) in cases {
        let p = s.dir.path().join(format!("{name}.deb"));
        std::fs::write(&p, content).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let e = one_line(publish(
            &repo,
            std::slice::from_ref(&p),
            &[&signer],
            &PublishOptions::new(now),
            &Quiet,
        ));
        assert!(e.contains(&p.display().to_string()), "{name}: {e}");
        // A refused publish leaves no repository behind, not even half of one.
        let left: Vec<_> = std::fs::read_dir(&repo)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.iter().all(|n| n.starts_with('.')),
            "{name}: left {left:?}"
        );
    }
}

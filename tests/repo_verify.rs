//! `repo verify` against repositories `repo publish` wrote, then broken on purpose — a
//! missing pool file, a truncated index, a stale by-hash copy, a foreign signature — and
//! read both from their directory and over loopback HTTP: each break is named by the file at
//! fault, an intact repository passes, and the command exits non-zero with one line.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use containerd_stack::listener::Quiet;
use containerd_stack::repo::release::{cleartext, Release};
use containerd_stack::repo::{self, Location, PublishOptions, Verified, VerifyOptions};
use containerd_stack::sign::{Keyring, Signer};
use tempfile::TempDir;
use testkit::{repo_key, Mirror, RepoKey};

use crate::common::{now, three_debs};

/// A repository of two suites: `stable` (revision 1, amd64 and arm64) and `testing`
/// (revision 2, amd64), signed by `key`, served at `mirror`.
struct Published {
    _dir: TempDir,
    repo: PathBuf,
    key: RepoKey,
    mirror: Mirror,
}

fn published() -> Published {
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let key = repo_key(&dir.path().join("keys"), "repo", now() - 3600);
    let mirror = Mirror::serve(&repo);
    let d = three_debs();
    let t = now() - 5;
    for (suite, debs, at) in [("stable", &d[..2], t - 1), ("testing", &d[2..], t)] {
        let mut o = PublishOptions::new(at);
        o.suite = suite.into();
        o.url = Some(mirror.url());
        repo::publish(&repo, debs, &[&key.signer], &o, &Quiet).unwrap();
    }
    Published {
        _dir: dir,
        repo,
        key,
        mirror,
    }
}

impl Published {
    /// The repository from its directory, then over HTTP.
    fn locations(&self) -> [Location; 2] {
        [
            Location::parse(&self.repo.display().to_string()).unwrap(),
            Location::parse(&self.mirror.url()).unwrap(),
        ]
    }

    fn keyring(&self) -> Keyring {
        Keyring::load(&self.key.keyring).unwrap()
    }

    /// Every location verified against `keyring`, all suites or one.
    fn verify_all(
        &self,
        keyring: &Keyring,
        suite: Option<&str>,
    ) -> Vec<containerd_stack::Result<Verified>> {
        let opts = VerifyOptions {
            suite: suite.map(str::to_owned),
            now: now(),
        };
        self.locations()
            .iter()
            .map(|l| repo::verify(l, keyring, &opts, &Quiet))
            .collect()
    }

    /// Both locations fail verifying `suite` on `rel`, naming it first:
    /// `<path or URL>: <message>`.
    fn assert_named(&self, suite: &str, rel: &str, message: &str) {
        for (location, result) in self
            .locations()
            .iter()
            .zip(self.verify_all(&self.keyring(), Some(suite)))
        {
            let e = result.expect_err("a broken repository passed").to_string();
            let expected = format!("{}: {message}", location.shown(rel));
            assert!(
                e.starts_with(&expected),
                "expected {expected:?}…, got {e:?}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    fn live(&self, suite: &str) -> Release {
        let text = fs::read_to_string(self.repo.join(format!("dists/{suite}/InRelease"))).unwrap();
        Release::parse(&cleartext(&text).unwrap()).unwrap()
    }
}

#[test]
fn an_intact_repository_passes_from_its_directory_and_over_http() {
    let p = published();
    let [from_dir, over_http] = p.verify_all(&p.keyring(), None).try_into().unwrap();
    let from_dir = from_dir.unwrap();
    let suites: Vec<&str> = from_dir.suites.iter().map(|s| s.suite.as_str()).collect();
    assert_eq!(suites, ["stable", "testing"], "every suite of a directory");
    let stable = &from_dir.suites[0];
    assert_eq!(stable.signed_by, p.key.fingerprint);
    assert_eq!((stable.indexes, stable.by_hash), (6, 12));
    assert_eq!((stable.packages, stable.pool_files), (2, 2));
    let sizes: u64 = three_debs()[..2]
        .iter()
        .map(|d| fs::metadata(d).unwrap().len())
        .sum();
    assert_eq!(stable.pool_bytes, sizes);
    // A web server cannot be listed: the suite its .sources names, the one published last.
    let over_http = over_http.unwrap();
    assert_eq!(over_http.suites.len(), 1);
    assert_eq!(over_http.suites[0], from_dir.suites[1]);
    for r in p.verify_all(&p.keyring(), Some("stable")) {
        assert_eq!(r.unwrap().suites, [from_dir.suites[0].clone()]);
    }
    // Every pool file over HTTP, once.
    let requests = p.mirror.requests();
    for deb in three_debs() {
        let name = deb.file_name().unwrap().to_string_lossy();
        assert!(
            requests.iter().any(|r| r.ends_with(&*name)),
            "{name}: {requests:?}"
        );
    }
}

#[test]
fn a_repository_signed_while_rotating_keys_passes_with_either_key() {
    let dir = TempDir::new().unwrap();
    let repo = dir.path().join("repo");
    let old = repo_key(&dir.path().join("keys"), "old", now() - 7200);
    let new = repo_key(&dir.path().join("keys"), "new", now() - 3600);
    let signers: [&Signer; 2] = [&old.signer, &new.signer];
    repo::publish(
        &repo,
        &three_debs()[..1],
        &signers,
        &PublishOptions::new(now() - 5),
        &Quiet,
    )
    .unwrap();
    let location = Location::parse(&repo.display().to_string()).unwrap();
    let opts = VerifyOptions {
        suite: None,
        now: now(),
    };
    for k in [&old, &new] {
        let keyring = Keyring::load(&k.armored).unwrap();
        let verified = repo::verify(&location, &keyring, &opts, &Quiet).unwrap();
        assert_eq!(verified.suites[0].signed_by, k.fingerprint);
    }
}

#[test]
fn a_missing_pool_file_is_named() {
    let p = published();
    let pool = "pool/main/c/containerd-stack/containerd-stack_2.3.4-1_arm64.deb";
    fs::remove_file(p.repo.join(pool)).unwrap();
    p.assert_named(
        "stable",
        pool,
        "missing: the entry of containerd-stack 2.3.4-1 (arm64) in ",
    );
}

#[test]
fn a_pool_file_with_other_bytes_is_named() {
    let p = published();
    let pool = "pool/main/c/containerd-stack/containerd-stack_2.3.4-1_amd64.deb";
    let mut bytes = fs::read(p.repo.join(pool)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(p.repo.join(pool), &bytes).unwrap();
    p.assert_named("stable", pool, "has sha256 ");
}

#[test]
fn a_truncated_index_is_named() {
    let p = published();
    let index = "dists/stable/main/binary-amd64/Packages";
    let listed = p.live("stable").files[0].size;
    let bytes = fs::read(p.repo.join(index)).unwrap();
    fs::write(p.repo.join(index), &bytes[..bytes.len() / 2]).unwrap();
    p.assert_named(
        "stable",
        index,
        &format!("has {} bytes, InRelease lists {listed}", bytes.len() / 2),
    );
}

#[test]
fn a_stale_by_hash_copy_is_named() {
    let p = published();
    // A copy left over from another generation under the current one's name: what an
    // upload in the wrong order leaves behind.
    let r = p.live("stable");
    let xz = r
        .files
        .iter()
        .find(|f| f.path == "main/binary-arm64/Packages.xz")
        .unwrap();
    let copy = format!(
        "dists/stable/main/binary-arm64/by-hash/SHA512/{}",
        xz.sha512.as_ref().unwrap()
    );
    let other = fs::read(p.repo.join("dists/stable/main/binary-amd64/Packages.xz")).unwrap();
    fs::write(p.repo.join(&copy), other).unwrap();
    p.assert_named("stable", &copy, "stale: its content (sha256 ");
}

#[test]
fn a_foreign_signature_is_named() {
    let p = published();
    let dir = TempDir::new().unwrap();
    let other = repo_key(dir.path(), "other", now() - 3600);
    let foreign = Keyring::load(&other.keyring).unwrap();
    for (location, result) in p
        .locations()
        .iter()
        .zip(p.verify_all(&foreign, Some("stable")))
    {
        let e = result.unwrap_err().to_string();
        let expected = format!("{}: ", location.shown("dists/stable/InRelease"));
        assert!(e.starts_with(&expected), "{e}");
        assert!(e.contains(&other.keyring.display().to_string()), "{e}");
    }
    // The same repository re-signed by another key: the signature is what is at fault.
    let rel = "dists/stable/InRelease";
    let text = cleartext(&fs::read_to_string(p.repo.join(rel)).unwrap()).unwrap();
    let resigned = Signer::clearsign(&[&other.signer], &text, now() - 5).unwrap();
    fs::write(p.repo.join(rel), resigned).unwrap();
    p.assert_named("stable", rel, "no valid signature by any of the 1 keys");
}

#[test]
fn an_unsigned_or_half_copied_release_is_named() {
    let p = published();
    // Release uploaded again from another publish, its signatures not: apt falls back to
    // Release when InRelease cannot be fetched, and would find a bad signature.
    let release = "dists/testing/Release";
    let mut text = fs::read_to_string(p.repo.join(release)).unwrap();
    text = text.replace("Suite: testing", "Suite: testing\nX-Edited: yes");
    fs::write(p.repo.join(release), text).unwrap();
    p.assert_named("testing", "dists/testing/Release.gpg", "BAD signature");
    fs::remove_file(p.repo.join("dists/testing/InRelease")).unwrap();
    p.assert_named(
        "testing",
        "dists/testing/InRelease",
        "missing: apt reads it first",
    );
}

/// The `containerd-stack` command, as a user runs it.
fn command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_containerd-stack"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_passes_an_intact_copy_and_exits_non_zero_naming_the_file_at_fault() {
    let p = published();
    let keyring = p.key.keyring.display().to_string();
    let url = p.mirror.url();
    let out = command(&["repo", "verify", "--repo", &url, "--keyring", &keyring]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dists/testing: signed by "), "{stdout}");
    assert!(stdout.ends_with(&format!("verified {url}/\n")), "{stdout}");

    let pool = "pool/main/c/containerd-stack/containerd-stack_2.3.4-2_amd64.deb";
    fs::remove_file(p.repo.join(pool)).unwrap();
    let out = command(&["repo", "verify", "--repo", &url, "--keyring", &keyring]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: {url}/{pool}: missing: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A URL without a .sources file names no suite: the hint says how to name one.
    fs::remove_file(p.repo.join("containerd-stack.sources")).unwrap();
    let out = command(&["repo", "verify", "--repo", &url, "--keyring", &keyring]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.trim_end().ends_with("; pass --suite"), "{stderr}");
}

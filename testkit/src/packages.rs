//! Real packages and signing keys for repository tests: packages built by the library's own
//! pipeline from a generated upstream release served on loopback, so each carries what a
//! real build carries (control file, debconf templates, maintainer scripts); keys with their
//! public halves written as apt and gpgv read them.

use std::path::{Path, PathBuf};

use containerd_stack::deb::compress::Compression;
use containerd_stack::fetch::FetchOptions;
use containerd_stack::listener::Quiet;
use containerd_stack::sign::{generate, KeyAlgorithm, Signer};
use containerd_stack::stack::ComponentKind;
use containerd_stack::{build, BuildOptions, DebArch, Stack};

use crate::{FakeRelease, Mirror};

/// Builds one package per `(revision, architecture)` under `dir` (emptied first), all at
/// the same timestamp: the same version and architecture always gives the same bytes.
pub fn build_debs(dir: &Path, wanted: &[(u32, DebArch)]) -> Vec<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    let mut arches: Vec<DebArch> = wanted.iter().map(|(_, a)| *a).collect();
    arches.sort();
    arches.dedup();
    let release = FakeRelease::write(&dir.join("mirror"), &arches);
    let mirror = Mirror::serve(dir.join("mirror"));
    wanted
        .iter()
        .map(|&(revision, arch)| {
            let text = release
                .stack_toml(&ComponentKind::ALL)
                .replace("revision = \"1\"", &format!("revision = \"{revision}\""));
            let stack = Stack::parse(&text, Path::new("stack.toml")).expect("generated stack");
            let tag = format!("{revision}-{arch}");
            let opts = BuildOptions {
                arches: vec![arch],
                out_dir: dir.join(format!("out-{tag}")),
                fetch: FetchOptions {
                    mirror: Some(mirror.url()),
                    cache_dir: dir.join("cache"),
                    offline: false,
                },
                compression: Compression::Gzip,
                level: 6,
                source_date_epoch: Some(1_700_000_000),
                threads: 1,
                signer: None,
            };
            build(&stack, &opts, &Quiet)
                .expect("building a package from the generated release")
                .remove(0)
                .path
        })
        .collect()
}

/// A signing key, with its public half as apt and gpgv read it.
pub struct RepoKey {
    pub signer: Signer,
    /// The binary keyring (`Signed-By:`).
    pub keyring: PathBuf,
    /// The same public key, ASCII-armoured.
    pub armored: PathBuf,
    pub fingerprint: String,
}

/// A fresh Ed25519 key for `name <name@example.org>`, made `created` (Unix seconds), its
/// public halves written into `dir` as `<name>.gpg` and `<name>.asc`.
pub fn repo_key(dir: &Path, name: &str, created: u64) -> RepoKey {
    let k = generate(
        &format!("{name} <{name}@example.org>"),
        KeyAlgorithm::Ed25519,
        None,
        u32::try_from(created).expect("a 32-bit time"),
    )
    .expect("key generation");
    std::fs::create_dir_all(dir).unwrap();
    let keyring = dir.join(format!("{name}.gpg"));
    let armored = dir.join(format!("{name}.asc"));
    std::fs::write(&keyring, &k.public_binary).unwrap();
    std::fs::write(&armored, &k.public_armored).unwrap();
    let signer = Signer::load(
        k.secret_armored.as_bytes(),
        None,
        Path::new(&format!("{name}.secret.asc")),
        created,
    )
    .expect("a fresh key signs");
    RepoKey {
        signer,
        keyring,
        armored,
        fingerprint: k.fingerprint,
    }
}

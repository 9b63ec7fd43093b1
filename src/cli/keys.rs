//! `containerd-stack keygen` and `containerd-stack debsig-policy`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use containerd_stack::sign::{debsig_files, generate, public_key_of, KeyAlgorithm};

use super::{now, write_new};

/// The files `keygen` writes in `--out`.
pub const SECRET_KEY: &str = "signing-key.secret.asc";
pub const PUBLIC_KEYRING: &str = "signing-key.gpg";
pub const PUBLIC_ARMORED: &str = "signing-key.asc";

#[derive(Parser)]
pub struct KeygenArgs {
    /// Directory for the key files.
    #[arg(long)]
    out: PathBuf,
    /// The key's user ID, "Name <email>".
    #[arg(long)]
    uid: String,
    /// Protect the secret key with the passphrase on the first line of this file.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// ed25519 (default) or rsa4096.
    #[arg(long, default_value = "ed25519")]
    algorithm: String,
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let algorithm = match args.algorithm.as_str() {
        "ed25519" => KeyAlgorithm::Ed25519,
        "rsa4096" => KeyAlgorithm::Rsa4096,
        other => bail!("--algorithm {other}: expected ed25519 or rsa4096"),
    };
    let passphrase = match &args.passphrase_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        None => None,
    };
    let secret_path = args.out.join(SECRET_KEY);
    if secret_path.exists() {
        bail!(
            "{}: a secret key is already there; refusing to overwrite it",
            secret_path.display()
        );
    }
    let created = u32::try_from(now()).context("the clock is past 2106")?;
    let key = generate(&args.uid, algorithm, passphrase.as_deref(), created)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    write_new(&secret_path, key.secret_armored.as_bytes(), 0o600)?;
    write_new(&args.out.join(PUBLIC_KEYRING), &key.public_binary, 0o644)?;
    write_new(
        &args.out.join(PUBLIC_ARMORED),
        key.public_armored.as_bytes(),
        0o644,
    )?;
    println!("fingerprint {}", key.fingerprint);
    println!("secret key     {} (mode 0600)", secret_path.display());
    println!("public keyring {}", args.out.join(PUBLIC_KEYRING).display());
    println!("public key     {}", args.out.join(PUBLIC_ARMORED).display());
    Ok(())
}

#[derive(Parser)]
pub struct DebsigPolicyArgs {
    /// The signing key (public or secret half).
    #[arg(long)]
    key: PathBuf,
    /// Root of the tree to write (`DIR/etc/debsig/…`, `DIR/usr/share/debsig/…`).
    #[arg(long)]
    out: PathBuf,
    /// The policy's origin name.
    #[arg(long, default_value = "containerd-stack")]
    origin: String,
}

pub fn debsig_policy(args: DebsigPolicyArgs) -> Result<()> {
    let bytes =
        std::fs::read(&args.key).with_context(|| format!("{}: cannot read", args.key.display()))?;
    let (key, fingerprint) = public_key_of(&bytes, &args.key)?;
    for (rel, content) in debsig_files(&key, &args.origin)? {
        let path = args.out.join(&rel);
        std::fs::create_dir_all(path.parent().expect("nested path"))
            .with_context(|| format!("{}: cannot create", path.display()))?;
        std::fs::write(&path, content)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        println!("{}", path.display());
    }
    println!("debsig-verify policy for {fingerprint}");
    Ok(())
}

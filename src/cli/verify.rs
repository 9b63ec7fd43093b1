//! `containerd-stack verify DEB`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use containerd_stack::sign::Keyring;
use containerd_stack::verify::{verify_deb, Signature};

#[derive(Parser)]
pub struct Args {
    /// The package to check.
    deb: PathBuf,
    /// Public keyring (binary or armoured) to check the signature against.
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let keyring = match &args.keyring {
        Some(k) => Some(Keyring::load(k)?),
        None => None,
    };
    let r = verify_deb(&args.deb, keyring.as_ref())?;
    println!(
        "{}: {} {} {}: structure ok, {} files match md5sums",
        args.deb.display(),
        r.package,
        r.version,
        r.architecture,
        r.files_checked
    );
    match r.signature {
        Signature::Valid { fingerprint } => println!("signature: good, by {fingerprint}"),
        Signature::Unchecked => println!("signature: present, not checked (pass --keyring)"),
        Signature::Unsigned => println!("signature: none"),
    }
    Ok(())
}

//! `containerd-stack lock`: fills or checks stack.toml's sha256 pins from upstream's checksum
//! files, or lists the architectures they make buildable.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use containerd_stack::fetch::{FetchOptions, Fetcher};
use containerd_stack::lock::{lock, write_manifest, LockOptions};
use containerd_stack::sign::Keyring;
use containerd_stack::stack::ComponentKind;
use containerd_stack::Stack;

use super::build_deb::parse_arches;

#[derive(Parser)]
pub struct Args {
    /// The stack manifest, rewritten in place.
    #[arg(long, value_name = "FILE", default_value = "stack.toml")]
    stack: PathBuf,
    /// Architecture to lock (repeatable), or `all`; default: those already pinned.
    #[arg(long = "arch", value_name = "ARCH")]
    arches: Vec<String>,
    /// Fetch `https://github.com/<path>` from `<URL>/<path>` instead.
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// Change nothing; exit non-zero when stack.toml and upstream disagree.
    #[arg(long)]
    check: bool,
    /// Move a component to a new version and lock it (repeatable).
    #[arg(long, value_name = "COMPONENT=VERSION")]
    bump: Vec<String>,
    /// runc's maintainer keyring; default: runc.keyring at the release tag.
    #[arg(long, value_name = "FILE")]
    runc_keyring: Option<PathBuf>,
    /// Change nothing and fetch nothing: print the architectures stack.toml pins containerd
    /// and runc for (what `build-deb --arch all` builds) as a JSON array.
    #[arg(long, conflicts_with_all = ["arches", "mirror", "check", "bump", "runc_keyring"])]
    list_arches: bool,
}

pub fn run(args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.stack)
        .with_context(|| format!("{}: cannot read", args.stack.display()))?;
    let stack = Stack::parse(&text, &args.stack)?;
    if args.list_arches {
        println!("{}", serde_json::to_string(&stack.pinned_arches())?);
        return Ok(());
    }
    let arches = if args.arches.is_empty() {
        Vec::new()
    } else {
        parse_arches(&args.arches, &stack)?
    };
    let mut bumps = Vec::new();
    for b in &args.bump {
        let (name, version) = b
            .split_once('=')
            .with_context(|| format!("--bump {b}: expected COMPONENT=VERSION"))?;
        let kind = ComponentKind::from_key(name).with_context(|| {
            format!(
                "--bump {b}: unknown component {name:?} (containerd, runc, cni-plugins, crictl)"
            )
        })?;
        bumps.push((kind, version.to_owned()));
    }
    let runc_keyring = match &args.runc_keyring {
        Some(p) => Some(Keyring::load(p)?),
        None => None,
    };
    let cache_dir = std::env::temp_dir();
    let fetcher = Fetcher::new(FetchOptions {
        mirror: args.mirror,
        cache_dir,
        offline: false,
    })?;
    let locked = lock(
        &text,
        &args.stack,
        &LockOptions {
            arches,
            bumps,
            runc_keyring,
        },
        &fetcher,
    )?;
    for c in &locked.changes {
        match &c.old {
            Some(old) => println!("{}: {old} -> {}", c.key, c.new),
            None => println!("{}: (none) -> {}", c.key, c.new),
        }
    }
    if args.check {
        if !locked.changes.is_empty() {
            bail!(
                "{}: {} pin(s) differ from upstream; run `containerd-stack lock` to update",
                args.stack.display(),
                locked.changes.len()
            );
        }
        println!("{}: every pin matches upstream", args.stack.display());
        return Ok(());
    }
    if locked.changes.is_empty() {
        println!("{}: already up to date", args.stack.display());
    } else {
        write_manifest(&args.stack, &locked.text)?;
    }
    Ok(())
}

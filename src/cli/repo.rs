//! `containerd-stack repo publish`: flags → `containerd_stack::repo::publish`, then what was done
//! and the two commands that set a client up; `repo verify`: flags →
//! `containerd_stack::repo::verify`, then what was checked.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use containerd_stack::repo::{self, PublishOptions, CLIENT_NAME, PAGE, PLACEHOLDER_URL};
use containerd_stack::sign::{Keyring, Signer};

use super::now;
use super::progress::Terminal;

#[derive(Parser)]
pub struct Args {
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Add packages to a signed apt repository of static files (created if missing).
    Publish(PublishArgs),
    /// Check a repository (a directory or a URL) the way apt would: signatures, every
    /// index and its by-hash copies, every pool file.
    Verify(VerifyArgs),
}

#[derive(Parser)]
struct VerifyArgs {
    /// The repository: its directory, or the URL it is served at (http:// or https://).
    #[arg(long, value_name = "DIR|URL")]
    repo: String,
    /// The public keys to trust, binary or armoured: the keyring clients are given.
    #[arg(long, value_name = "FILE")]
    keyring: PathBuf,
    /// Only this suite (default: every suite of a directory; for a URL, the one its
    /// containerd-stack.sources names).
    #[arg(long)]
    suite: Option<String>,
    /// Print each step.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Parser)]
struct PublishArgs {
    /// The repository's root directory: what the web server, bucket or Pages site serves.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Armoured secret key to sign with; repeat it to sign with several keys while rotating.
    #[arg(long = "sign-key", value_name = "FILE", required = true)]
    sign_keys: Vec<PathBuf>,
    /// Passphrase (first line of FILE): once for every key, or once per --sign-key in order.
    #[arg(long = "sign-passphrase-file", value_name = "FILE")]
    sign_passphrase_files: Vec<PathBuf>,
    /// `dists/<SUITE>/`, and the Suite: field.
    #[arg(long, default_value = "stable")]
    suite: String,
    /// Codename: field; default: the repository's, else the suite.
    #[arg(long)]
    codename: Option<String>,
    #[arg(long, default_value = "main")]
    component: String,
    /// Origin: field; default: the repository's, else containerd-stack.
    #[arg(long)]
    origin: Option<String>,
    /// Label: field; default: the repository's, else containerd-stack.
    #[arg(long)]
    label: Option<String>,
    /// Keep only the N newest versions of each package and architecture (default: all).
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Write Valid-Until: DAYS after Date (0: none; default: as long as before). Clients
    /// refuse the repository after that: publish again, even with no package, before then.
    #[arg(long, value_name = "DAYS")]
    valid_for: Option<u32>,
    /// The URL clients use, written into containerd-stack.sources (default: the one already
    /// there, else a placeholder to replace).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Allow changing Origin, Label or Codename (every client must then run
    /// `apt-get update --allow-releaseinfo-change` once).
    #[arg(long)]
    allow_release_info_change: bool,
    /// Print every file written or removed.
    #[arg(long, short)]
    verbose: bool,
    /// The packages to add; none just re-signs with a new Date (and Valid-Until).
    #[arg(value_name = "DEB")]
    debs: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        RepoCommand::Publish(a) => publish(a),
        RepoCommand::Verify(a) => verify(a),
    }
}

fn publish(args: PublishArgs) -> Result<()> {
    let now = now();
    let passphrases = &args.sign_passphrase_files;
    if passphrases.len() > 1 && passphrases.len() != args.sign_keys.len() {
        bail!(
            "{} --sign-passphrase-file for {} --sign-key: give one for all keys or one per key",
            passphrases.len(),
            args.sign_keys.len()
        );
    }
    let signers = args
        .sign_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let pass = passphrases.get(i).or(passphrases.first());
            Signer::load_file(key, pass.map(PathBuf::as_path), now)
        })
        .collect::<containerd_stack::Result<Vec<_>>>()?;
    let opts = PublishOptions {
        suite: args.suite,
        codename: args.codename,
        component: args.component,
        origin: args.origin,
        label: args.label,
        keep: args.keep,
        valid_for_days: args.valid_for,
        url: args.url,
        allow_release_info_change: args.allow_release_info_change,
        now,
    };
    let listener = Terminal::new(args.verbose);
    let plan = repo::publish(
        &args.repo,
        &args.debs,
        &signers.iter().collect::<Vec<_>>(),
        &opts,
        &listener,
    );
    listener.finish();
    let plan = plan?;
    for p in &plan.added {
        println!("added    {p}");
    }
    for p in &plan.already {
        println!("already  {p} (same bytes)");
    }
    for d in &plan.dropped {
        println!("dropped  {d} (--keep)");
    }
    let r = &plan.release;
    println!(
        "published dists/{}: {} {} ({}), signed by {}",
        r.suite,
        r.components.join(" "),
        r.architectures.join(" "),
        containerd_stack::render::rfc2822(r.date),
        signers
            .iter()
            .map(Signer::fingerprint)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    if plan.url == PLACEHOLDER_URL {
        println!(
            "Replace {PLACEHOLDER_URL} with where {} is served (or publish again with --url), then on each client:",
            args.repo.display()
        );
    } else {
        println!("On each client:");
    }
    for c in &plan.client_commands {
        println!("  {c}");
    }
    println!("  sudo apt-get update && sudo apt-get install {CLIENT_NAME}");
    println!();
    println!(
        "{} shows the packages, the signing keys and the install-time settings.",
        args.repo.join(PAGE).display()
    );
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
    let keyring = Keyring::load(&args.keyring)?;
    let location = repo::Location::parse(&args.repo)?;
    let opts = repo::VerifyOptions {
        suite: args.suite,
        now: now(),
    };
    let listener = Terminal::new(args.verbose);
    let verified = repo::verify(&location, &keyring, &opts, &listener);
    listener.finish();
    for s in verified?.suites {
        let valid = s
            .valid_until
            .map(|v| format!(", valid until {}", containerd_stack::render::rfc2822(v)))
            .unwrap_or_default();
        println!(
            "dists/{}: signed by {} ({}{valid}); {} index files and {} by-hash copies; {} package entries, {} pool files ({} bytes): all as listed",
            s.suite,
            s.signed_by,
            containerd_stack::render::rfc2822(s.date),
            s.indexes,
            s.by_hash,
            s.packages,
            s.pool_files,
            s.pool_bytes
        );
    }
    println!("verified {}", location.shown(""));
    Ok(())
}

//! The `containerd-stack` command line: flags are parsed here and handed to the library;
//! what the user sees (progress, results, one-line errors with a hint) is decided here and
//! nowhere else.

mod build_deb;
mod docs;
mod init;
mod keys;
mod lock;
mod progress;
mod repo;
mod verify;

use std::sync::OnceLock;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use containerd_stack::stack::{ComponentKind, Stack};

#[derive(Parser)]
#[command(
    name = "containerd-stack",
    about = "Build upstream containerd, runc, CNI plugins and crictl into signed, reproducible Debian packages, and publish them into a signed apt repository"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch, verify, lay out, render and package the stack as .deb files.
    BuildDeb(build_deb::Args),
    /// Fill stack.toml's sha256 pins from upstream's checksum files (or check them).
    Lock(lock::Args),
    /// Create an OpenPGP signing key for packages and the repository.
    Keygen(keys::KeygenArgs),
    /// Write the policy and keyring debsig-verify needs for a signing key.
    DebsigPolicy(keys::DebsigPolicyArgs),
    /// Check a .deb's structure, checksums and signature.
    Verify(verify::Args),
    /// Publish packages into a signed apt repository, or check one.
    Repo(repo::Args),
    /// Write a starter stack.toml (and, with --templates, the templates) into a directory.
    Init(init::Args),
    /// Write the manual pages.
    Man(docs::ManArgs),
    /// Print a shell's completions.
    Completions(docs::CompletionsArgs),
}

/// The command's definition, with the version line that names the default pins.
pub fn command() -> clap::Command {
    static VERSION: OnceLock<String> = OnceLock::new();
    let version = VERSION.get_or_init(version_line);
    Cli::command().version(version.as_str())
}

/// `0.1.0 (default pins: containerd 2.3.4, runc 1.4.3, cni-plugins 1.9.1, crictl 1.36.0)`.
fn version_line() -> String {
    let stack = Stack::default_stack();
    let pins: Vec<String> = ComponentKind::ALL
        .into_iter()
        .filter_map(|k| stack.component(k))
        .map(|c| format!("{} {}", c.kind, c.version))
        .collect();
    format!(
        "{} (default pins: {})",
        env!("CARGO_PKG_VERSION"),
        pins.join(", ")
    )
}

pub fn run() -> Result<()> {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .unwrap();
    match cli.command {
        Command::BuildDeb(args) => build_deb::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Keygen(args) => keys::keygen(args),
        Command::DebsigPolicy(args) => keys::debsig_policy(args),
        Command::Verify(args) => verify::run(args),
        Command::Repo(args) => repo::run(args),
        Command::Init(args) => init::run(args),
        Command::Man(args) => docs::man(args),
        Command::Completions(args) => docs::completions(args),
    }
}

/// What to do about a library error, in this command line's terms.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    use containerd_stack::Error;
    let e = e.chain().find_map(|c| c.downcast_ref::<Error>())?;
    Some(match e {
        Error::Unpinned { arch, .. } => {
            format!("run `containerd-stack lock --arch {arch}`, or add the pin to stack.toml")
        }
        Error::NoArchitecture(_) => "pass --arch".into(),
        Error::Offline { .. } => {
            "run once without --offline to fill the cache, or use a file:// --mirror".into()
        }
        Error::Passphrase { .. } => "pass --sign-passphrase-file".into(),
        Error::NoSigningKey => "pass --sign-key".into(),
        Error::ReleaseInfoChange { .. } => {
            "pass --allow-release-info-change to change it anyway".into()
        }
        Error::NoSuite { .. } => "pass --suite".into(),
        _ => return None,
    })
}

/// The current time, for checking that a key has not expired and for a repository's Date
/// (never an mtime of anything built).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates `path` with `mode` from the start (a secret is never readable by others, even
/// for a moment) and writes it whole; an existing file is never overwritten.
pub fn write_new(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    f.sync_all()
        .with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn hints_name_the_flag_that_helps() {
        let e = anyhow::Error::from(containerd_stack::Error::Unpinned {
            component: ComponentKind::Runc,
            arch: containerd_stack::DebArch::Riscv64,
        });
        assert_eq!(
            hint(&e).unwrap(),
            "run `containerd-stack lock --arch riscv64`, or add the pin to stack.toml"
        );
        let e = anyhow::Error::from(containerd_stack::Error::NoSigningKey).context("publishing");
        assert_eq!(hint(&e).unwrap(), "pass --sign-key");
        assert!(hint(&anyhow::anyhow!("something else")).is_none());
    }

    #[test]
    fn the_version_names_each_default_pin() {
        let v = version_line();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        for c in &Stack::default_stack().components {
            assert!(v.contains(&format!("{} {}", c.kind, c.version)), "{v}");
        }
    }
}

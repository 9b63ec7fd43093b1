//! `lock`: fills stack.toml's sha256 tables from upstream's own checksum files. Three
//! formats exist: `hash  name` (containerd's `.sha256sum`, the CNI plugins' `.sha256`),
//! a bare hash (crictl's `.sha256`), and runc's clear-signed `runc.sha256sum`, whose
//! signature is checked against runc's maintainer keyring before any line is believed.
//! The manifest is edited in place with toml_edit, so comments and order survive.

use std::collections::BTreeMap;
use std::path::Path;

use pgp::composed::CleartextSignedMessage;
use serde::Serialize;

use crate::arch::DebArch;
use crate::component::Sums;
use crate::error::{Error, IoContext, Result};
use crate::fetch::Fetcher;
use crate::sign::Keyring;
use crate::stack::{Component, ComponentKind, Sha256, Stack};

/// Checksum files and keyrings are small; anything bigger is not one.
const MAX_SUMS_BYTES: u64 = 1 << 20;

/// Where a component's maintainer keyring comes from when none is given: the file at the
/// root of its repository, at the release's tag (`opencontainers/runc/raw/v1.4.3/runc.keyring`).
pub fn keyring_path(kind: ComponentKind, version: &str, keyring: &str) -> String {
    format!("{}/raw/v{version}/{keyring}", kind.spec().repo)
}

#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Architectures to lock; empty means every architecture already pinned in the stack.
    pub arches: Vec<DebArch>,
    /// `COMPONENT=VERSION` moves: the component's old pins are dropped.
    pub bumps: Vec<(ComponentKind, String)>,
    /// runc's keyring; `None` fetches it with [`keyring_path`].
    pub runc_keyring: Option<Keyring>,
}

/// One pin that differs between the manifest and upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub key: String,
    pub old: Option<String>,
    pub new: String,
}

#[derive(Debug)]
pub struct Locked {
    /// The manifest text with every pin filled in.
    pub text: String,
    pub changes: Vec<Change>,
}

/// Computes the locked manifest for `text` (read from `path`), fetching checksum files
/// through `fetcher`.
pub fn lock(text: &str, path: &Path, opts: &LockOptions, fetcher: &Fetcher) -> Result<Locked> {
    let manifest_err = |message: String| Error::Manifest {
        path: path.to_owned(),
        message,
    };
    // Validate first, so the edit below works on a manifest known to be well-formed.
    let mut stack = Stack::parse(text, path)?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| manifest_err(e.to_string().replace('\n', " ")))?;

    let default_arches: Vec<DebArch> = {
        let mut a: Vec<DebArch> = stack
            .components
            .iter()
            .flat_map(|c| c.sha256.keys().copied())
            .collect();
        a.sort();
        a.dedup();
        a
    };

    for (kind, version) in &opts.bumps {
        let c = stack
            .components
            .iter_mut()
            .find(|c| c.kind == *kind)
            .ok_or_else(|| {
                manifest_err(format!(
                    "has no [components.{kind}] to move to version {version}"
                ))
            })?;
        c.version = version.clone();
        c.sha256.clear();
        let table = &mut doc["components"][kind.key()];
        table["version"] = toml_edit::value(version.clone());
        if let Some(t) = table.get_mut("sha256").and_then(|t| t.as_table_like_mut()) {
            t.clear();
        }
    }
    // Re-validate the bumped versions.
    Stack::parse(&doc.to_string(), path)?;

    let arches = if opts.arches.is_empty() {
        default_arches
    } else {
        opts.arches.clone()
    };
    if arches.is_empty() {
        return Err(Error::NoArchitecture("lock"));
    }

    let mut changes = Vec::new();
    for c in &stack.components {
        let sums = upstream_sums(c, &arches, opts, fetcher)?;
        for (arch, sha) in sums {
            let old = c.sha256.get(&arch).map(|s| s.to_string());
            if old.as_deref() == Some(sha.as_str()) {
                continue;
            }
            let table = &mut doc["components"][c.kind.key()];
            if table.get("sha256").is_none() {
                table["sha256"] = toml_edit::table();
            }
            table["sha256"][arch.as_str()] = toml_edit::value(sha.to_string());
            changes.push(Change {
                key: format!("components.{}.sha256.{arch}", c.kind),
                old,
                new: sha.to_string(),
            });
        }
    }
    let text = doc.to_string();
    Stack::parse(&text, path)?;
    Ok(Locked { text, changes })
}

/// Upstream's published sha256 of `component`'s asset for each arch.
fn upstream_sums(
    component: &Component,
    arches: &[DebArch],
    opts: &LockOptions,
    fetcher: &Fetcher,
) -> Result<BTreeMap<DebArch, Sha256>> {
    let spec = component.kind.spec();
    let v = &component.version;
    let mut out = BTreeMap::new();
    match spec.sums {
        Sums::Beside { suffix } => {
            for &arch in arches {
                let asset = spec.asset_name(v, arch.go_arch());
                let shown = format!("{asset}{suffix}");
                let sums_path = spec.download_path(v, &shown);
                let body = fetcher.fetch_unpinned(&sums_path, MAX_SUMS_BYTES)?;
                let text = String::from_utf8(body).map_err(|_| Error::Fetch {
                    url: sums_path.clone(),
                    message: "checksum file is not UTF-8 text".into(),
                })?;
                out.insert(arch, find_sum(&text, &asset, &shown)?);
            }
        }
        Sums::ClearSigned { file, keyring } => {
            // One signed file for every arch, checked once before any line is believed.
            let sums_path = spec.download_path(v, file);
            let fetched;
            let keyring = match &opts.runc_keyring {
                Some(k) => k,
                None => {
                    let path = keyring_path(component.kind, v, keyring);
                    let bytes = fetcher.fetch_unpinned(&path, MAX_SUMS_BYTES)?;
                    fetched = Keyring::parse(&bytes, &path)?;
                    &fetched
                }
            };
            let signed = fetcher.fetch_unpinned(&sums_path, MAX_SUMS_BYTES)?;
            let text = verify_clearsigned(&signed, keyring, file)?;
            for &arch in arches {
                let asset = spec.asset_name(v, arch.go_arch());
                out.insert(arch, find_sum(&text, &asset, file)?);
            }
        }
    }
    Ok(out)
}

/// Checks a clear-signed message against every key (primary and subkeys) of `keyring` and
/// returns the signed text; an error when no key made any of its signatures.
pub fn verify_clearsigned(signed: &[u8], keyring: &Keyring, shown: &str) -> Result<String> {
    let bad = |message: String| Error::Binary {
        file: shown.to_owned(),
        message,
    };
    let text = std::str::from_utf8(signed).map_err(|_| bad("is not UTF-8 text".into()))?;
    if !text
        .trim_start()
        .starts_with("-----BEGIN PGP SIGNED MESSAGE-----")
    {
        return Err(bad(
            "is not clear-signed; refusing to believe unsigned checksums".into(),
        ));
    }
    let (msg, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| bad(format!("cannot parse the clear-signed message: {e}")))?;
    let keys = keyring.keys();
    if keys.is_empty() {
        return Err(bad(format!(
            "the keyring {} holds no public key",
            keyring.shown()
        )));
    }
    for key in keys {
        if msg.verify(&key.primary_key).is_ok() {
            return Ok(msg.signed_text().replace("\r\n", "\n"));
        }
        for sub in &key.public_subkeys {
            if sub.verify_bindings(&key.primary_key).is_ok() && msg.verify(&sub.key).is_ok() {
                return Ok(msg.signed_text().replace("\r\n", "\n"));
            }
        }
    }
    Err(bad(format!(
        "no valid signature by any of the {} keys in the keyring; the file may have been tampered with",
        keys.len()
    )))
}

/// The sha256 for `file_name` in a checksum file: a `hash  name` line (`*name` for binary
/// mode) or, when the file is a single bare hash, that hash.
pub fn find_sum(text: &str, file_name: &str, shown: &str) -> Result<Sha256> {
    let bad = |message: String| Error::Binary {
        file: shown.to_owned(),
        message,
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for line in &lines {
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if name.trim_start_matches('*') == file_name {
            return Sha256::parse(&hash.to_ascii_lowercase()).ok_or_else(|| {
                bad(format!(
                    "the line for {file_name} has no valid sha256: {hash:?}"
                ))
            });
        }
    }
    if let [only] = lines[..] {
        if !only.contains(char::is_whitespace) {
            return Sha256::parse(&only.to_ascii_lowercase())
                .ok_or_else(|| bad(format!("expected a sha256, found {only:?}")));
        }
    }
    Err(bad(format!("has no sha256 for {file_name}")))
}

/// Writes `text` to `path` atomically (a temporary file beside it, then a rename).
pub fn write_manifest(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".stack.toml.")
        .tempfile_in(dir)
        .at(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).at(tmp.path())?;
    tmp.as_file().sync_all().at(tmp.path())?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .at(tmp.path())?;
    }
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "9d68969855fbf676cdb8ed758e420fb048d61f984f61de3e53eddfebe484d168";

    #[test]
    fn all_three_plain_formats() {
        let two = format!("{H}  containerd-2.3.4-linux-amd64.tar.gz\n");
        assert_eq!(
            find_sum(&two, "containerd-2.3.4-linux-amd64.tar.gz", "x")
                .unwrap()
                .as_str(),
            H
        );
        let star = format!("{H} *runc.arm64\n{}  runc.amd64\n", "1".repeat(64));
        assert_eq!(find_sum(&star, "runc.arm64", "x").unwrap().as_str(), H);
        assert_eq!(
            find_sum(&star, "runc.amd64", "x").unwrap().as_str(),
            "1".repeat(64)
        );
        assert_eq!(
            find_sum(&format!("{}\n", H.to_uppercase()), "crictl.tgz", "x")
                .unwrap()
                .as_str(),
            H
        );
    }

    #[test]
    fn missing_or_bad_lines_are_named() {
        let e = find_sum(&format!("{H}  other\n"), "runc.s390x", "runc.sha256sum").unwrap_err();
        assert_eq!(
            e.to_string(),
            "runc.sha256sum: has no sha256 for runc.s390x"
        );
        let e = find_sum("abc  runc.s390x\n", "runc.s390x", "runc.sha256sum").unwrap_err();
        assert!(e.to_string().contains("no valid sha256"), "{e}");
        assert!(find_sum("", "x", "f").is_err());
    }

    #[test]
    fn unsigned_text_is_refused() {
        let e = verify_clearsigned(
            format!("{H}  runc.amd64\n").as_bytes(),
            &Keyring::parse(b"", "empty.gpg").unwrap(),
            "runc.sha256sum",
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not clear-signed"), "{e}");
    }
}

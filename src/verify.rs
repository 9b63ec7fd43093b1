//! `verify`: checks a `.deb` the way a careful user would before trusting it — ar member
//! order, `debian-binary`, the control fields, every file against `md5sums`, and the
//! debsigs `_gpgorigin` signature against a keyring — and says plainly what is wrong.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::deb::read::{check_layout, read_deb};
use crate::error::{Error, IoContext, Result};
use crate::sign::Keyring;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Signature {
    Unsigned,
    /// Signed, but no keyring was given to check it against.
    Unchecked,
    Valid {
        fingerprint: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub files_checked: usize,
    pub signature: Signature,
}

pub fn verify_deb(path: &Path, keyring: Option<&Keyring>) -> Result<Report> {
    let shown = path.display().to_string();
    let bad = |entry: &str, message: String| Error::Archive {
        archive: shown.clone(),
        entry: entry.to_owned(),
        message,
    };
    // The framing first: member order, and sizes that add up to the file.
    check_layout(path)?;
    let deb = read_deb(path)?;
    let names: Vec<&str> = deb.members.iter().map(|m| m.0.as_str()).collect();
    if deb.debian_binary != b"2.0\n" {
        return Err(bad(
            "debian-binary",
            format!(
                "is {:?}, expected \"2.0\\n\"",
                String::from_utf8_lossy(&deb.debian_binary)
            ),
        ));
    }
    let fields = deb.control_fields();
    for f in [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Description",
    ] {
        if fields.get(f).is_none_or(|v| v.is_empty()) {
            return Err(bad("control", format!("has no {f} field")));
        }
    }

    let md5sums = deb
        .control_files
        .get("md5sums")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .ok_or_else(|| bad("md5sums", "is missing from the control member".into()))?;
    let conffiles: Vec<String> = deb
        .control_files
        .get("conffiles")
        .map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut listed = BTreeMap::new();
    for line in md5sums.lines() {
        let (sum, file) = line
            .split_once("  ")
            .ok_or_else(|| bad("md5sums", format!("malformed line {line:?}")))?;
        listed.insert(file.to_owned(), sum.to_owned());
    }
    let mut checked = 0;
    for e in deb.data.iter().filter(|e| e.kind.is_file()) {
        let rel = e.path.trim_start_matches("./");
        match listed.remove(rel) {
            Some(sum) if sum == e.md5 => checked += 1,
            Some(sum) => {
                return Err(bad(
                    rel,
                    format!(
                        "md5 is {}, but md5sums says {sum}: the data was altered",
                        e.md5
                    ),
                ))
            }
            None if conffiles.iter().any(|c| c.trim_start_matches('/') == rel) => {}
            None => return Err(bad(rel, "is not listed in md5sums".into())),
        }
    }
    if let Some(file) = listed.keys().next() {
        return Err(bad(
            file,
            "is listed in md5sums but not in the data member".into(),
        ));
    }

    let signature = match (names.contains(&"_gpgorigin"), keyring) {
        (false, _) => Signature::Unsigned,
        (true, None) => Signature::Unchecked,
        (true, Some(keyring)) => {
            let (signed, sig) = signed_members(path)?;
            let what = format!("{}: entry _gpgorigin", path.display());
            let fingerprint = crate::sign::verify_detached(&sig, &signed[..], keyring, &what)?;
            Signature::Valid { fingerprint }
        }
    };
    Ok(Report {
        package: fields["Package"].clone(),
        version: fields["Version"].clone(),
        architecture: fields["Architecture"].clone(),
        files_checked: checked,
        signature,
    })
}

/// The bytes debsigs signs (the first three members' contents) and the `_gpgorigin` member.
fn signed_members(path: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let file = File::open(path).at(path)?;
    let mut ar = ar::Archive::new(BufReader::new(file));
    let (mut signed, mut sig) = (Vec::new(), Vec::new());
    let mut index = 0;
    while let Some(member) = ar.next_entry() {
        let mut member = member.map_err(|e| Error::Archive {
            archive: path.display().to_string(),
            entry: "(ar)".into(),
            message: e.to_string(),
        })?;
        let target = match (index, member.header().identifier()) {
            (0..=2, _) => &mut signed,
            (_, b"_gpgorigin") => &mut sig,
            _ => {
                index += 1;
                continue;
            }
        };
        member.read_to_end(target).at(path)?;
        index += 1;
    }
    Ok((signed, sig))
}

//! OpenPGP keys and signatures, in pure Rust (rPGP). The only module that reads secret key
//! material. Keys are v4 (Ed25519 "legacy" or RSA), signatures are v4 with SHA-512 and
//! carry both the issuer fingerprint and the issuer key ID, which is what gpgv and sqv on
//! Debian and Ubuntu accept. Signature times are given by the caller, never read from the
//! clock, and Ed25519 and RSA PKCS#1 signatures are deterministic: the same key, data and
//! time give the same bytes.

use std::io::Read;
use std::path::Path;

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, Timestamp};
use serde::Serialize as SerdeSerialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, SerdeSerialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// EdDSA over Ed25519 in its v4 ("legacy") encoding: what gpgv accepts.
    Ed25519,
    Rsa4096,
}

/// A freshly generated key, ready to be written out.
pub struct GeneratedKey {
    /// The armoured secret key.
    pub secret_armored: String,
    /// The public key as a binary keyring, for `/etc/apt/keyrings/` and debsig.
    pub public_binary: Vec<u8>,
    pub public_armored: String,
    pub fingerprint: String,
}

/// Public keys read from a keyring file (binary or armoured, with any text around the
/// armoured blocks, as runc's `runc.keyring` has), with where they came from.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    shown: String,
}

impl Keyring {
    /// Parses `bytes`; `shown` (a path or URL) names the keyring in errors.
    pub fn parse(bytes: &[u8], shown: impl std::fmt::Display) -> Result<Keyring> {
        const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        const END: &str = "-----END PGP PUBLIC KEY BLOCK-----";
        let shown = shown.to_string();
        let what = || format!("{shown}: cannot parse a public key");
        let mut keys = Vec::new();
        match std::str::from_utf8(bytes) {
            Ok(text) if text.contains(BEGIN) => {
                let mut rest = text;
                while let Some(start) = rest.find(BEGIN) {
                    let end = rest[start..]
                        .find(END)
                        .map(|e| start + e + END.len())
                        .ok_or_else(|| Error::Key {
                            path: shown.clone().into(),
                            message: "an armoured key block is not terminated".into(),
                        })?;
                    let (key, _) = SignedPublicKey::from_armor_single(&rest.as_bytes()[start..end])
                        .map_err(Error::pgp(what()))?;
                    keys.push(key);
                    rest = &rest[end..];
                }
            }
            _ => {
                for key in SignedPublicKey::from_bytes_many(bytes).map_err(Error::pgp(what()))? {
                    keys.push(key.map_err(Error::pgp(what()))?);
                }
            }
        }
        Ok(Keyring { keys, shown })
    }

    /// Reads and parses the keyring file `path`.
    pub fn load(path: &Path) -> Result<Keyring> {
        use crate::error::IoContext;
        Keyring::parse(&std::fs::read(path).at(path)?, path.display())
    }

    pub fn keys(&self) -> &[SignedPublicKey] {
        &self.keys
    }

    /// The path or URL it was read from.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// Generates a v4 signing key; `created` is its creation time (Unix seconds).
pub fn generate(
    uid: &str,
    algorithm: KeyAlgorithm,
    passphrase: Option<&str>,
    created: u32,
) -> Result<GeneratedKey> {
    let mut rng = rand::thread_rng();
    let key_type = match algorithm {
        KeyAlgorithm::Ed25519 => KeyType::Ed25519Legacy,
        KeyAlgorithm::Rsa4096 => KeyType::Rsa(4096),
    };
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(key_type)
        .can_certify(true)
        .can_sign(true)
        .created_at(Timestamp::from_secs(created))
        .preferred_hash_algorithms(
            [HashAlgorithm::Sha512, HashAlgorithm::Sha256]
                .into_iter()
                .collect(),
        )
        .primary_user_id(uid.to_owned());
    if let Some(p) = passphrase {
        params.passphrase(Some(p.to_owned()));
    }
    let key = params
        .build()
        .map_err(|e| Error::invalid("key parameters", uid, e.to_string()))?
        .generate(&mut rng)
        .map_err(Error::pgp("key generation"))?;
    let public = key.to_public_key();
    Ok(GeneratedKey {
        secret_armored: key
            .to_armored_string(ArmorOptions::default())
            .map_err(Error::pgp("armouring the secret key"))?,
        public_binary: public
            .to_bytes()
            .map_err(Error::pgp("serialising the public key"))?,
        public_armored: public
            .to_armored_string(ArmorOptions::default())
            .map_err(Error::pgp("armouring the public key"))?,
        fingerprint: hex::encode_upper(key.fingerprint().as_bytes()),
    })
}

/// A secret key that has been checked to be able to sign.
pub struct Signer {
    key: SignedSecretKey,
    password: Password,
    /// The key file, for error messages.
    shown: String,
}

impl std::fmt::Debug for Signer {
    // Never the key material: only which key it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.fingerprint())
    }
}

impl Signer {
    /// Loads an armoured (or binary) secret key. `at` is the time the key will sign at: an
    /// expired key is refused. Errors name the file and never contain key material.
    pub fn load(bytes: &[u8], passphrase: Option<&str>, shown: &Path, at: u64) -> Result<Signer> {
        let bad = |message: String| Error::Key {
            path: shown.to_owned(),
            message,
        };
        let parsed =
            if bytes.starts_with(b"-----BEGIN") || bytes.iter().take(64).all(|b| b.is_ascii()) {
                let text = String::from_utf8_lossy(bytes);
                if text.contains("BEGIN PGP PUBLIC KEY BLOCK") {
                    return Err(bad("is a public key; signing needs the secret key".into()));
                }
                SignedSecretKey::from_armor_single(bytes).map(|(k, _)| k)
            } else {
                SignedSecretKey::from_bytes(bytes)
            };
        let key = match parsed {
            Ok(k) => k,
            Err(_) if SignedPublicKey::from_bytes(bytes).is_ok() => {
                return Err(bad("is a public key; signing needs the secret key".into()))
            }
            Err(e) => return Err(bad(format!("not an OpenPGP secret key: {e}"))),
        };
        let password = passphrase
            .map(Password::from)
            .unwrap_or_else(Password::empty);

        // Key flags and expiry live on the self-signatures of the user IDs.
        let self_sigs: Vec<_> = key
            .details
            .users
            .iter()
            .flat_map(|u| u.signatures.iter())
            .collect();
        let can_sign = self_sigs.iter().any(|s| s.key_flags().sign());
        if !can_sign {
            return Err(bad(
                "the key is not marked for signing (no signing key flag on its primary key)".into(),
            ));
        }
        let created = key.primary_key.created_at().as_secs() as u64;
        if let Some(expiry) = self_sigs
            .iter()
            .filter_map(|s| s.key_expiration_time())
            .map(|d| d.as_secs())
            .max()
        {
            if expiry != 0 && created + expiry as u64 <= at {
                return Err(bad(format!(
                    "the key expired at {} (Unix time), before the signing time {at}; extend or replace it",
                    created + expiry as u64
                )));
            }
        }
        // Unlocking proves the passphrase now, rather than at the first signature.
        let locked = || match passphrase {
            Some(_) => bad("wrong passphrase".into()),
            None => Error::Passphrase {
                path: shown.to_owned(),
            },
        };
        key.primary_key
            .unlock(&password, |_, _| Ok(()))
            .map_err(|_| locked())?
            .map_err(|_| locked())?;
        Ok(Signer {
            key,
            password,
            shown: shown.display().to_string(),
        })
    }

    pub fn load_file(path: &Path, passphrase_file: Option<&Path>, at: u64) -> Result<Signer> {
        use crate::error::IoContext;
        let bytes = std::fs::read(path).at(path)?;
        let passphrase = match passphrase_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).at(p)?;
                Some(text.trim_end_matches(['\n', '\r']).to_owned())
            }
            None => None,
        };
        Signer::load(&bytes, passphrase.as_deref(), path, at)
    }

    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.key.fingerprint().as_bytes())
    }

    pub fn public_key(&self) -> SignedPublicKey {
        self.key.to_public_key()
    }

    /// The primary user ID (`Name <email>`), as the key's holder chose it.
    pub fn user_id(&self) -> Option<String> {
        let user = self.key.details.users.first()?;
        Some(String::from_utf8_lossy(user.id.id()).into_owned())
    }

    /// When the key was made, Unix seconds: of two keys in a rotation, the newer one is the
    /// one being moved to.
    pub fn created(&self) -> u64 {
        u64::from(self.key.primary_key.created_at().as_secs())
    }

    fn config(&self, typ: SignatureType, time: u64) -> Result<SignatureConfig> {
        // gpg refuses a signature older than its key ("Time conflict"): a package dated by
        // SOURCE_DATE_EPOCH before the key existed is signed at the key's creation instead,
        // which is still the same for every build with that key.
        let time = time.max(u64::from(self.key.primary_key.created_at().as_secs()));
        let time = u32::try_from(time).map_err(|_| {
            Error::invalid(
                "signature time",
                time.to_string(),
                "must be before 2106 (a 32-bit Unix time)",
            )
        })?;
        let mut config = SignatureConfig::v4(typ, self.key.algorithm(), HashAlgorithm::Sha512);
        let sub = |d| Subpacket::regular(d).map_err(Error::pgp("signature subpacket"));
        config.hashed_subpackets = vec![
            sub(SubpacketData::SignatureCreationTime(Timestamp::from_secs(
                time,
            )))?,
            sub(SubpacketData::IssuerFingerprint(self.key.fingerprint()))?,
        ];
        config.unhashed_subpackets =
            vec![sub(SubpacketData::IssuerKeyId(self.key.legacy_key_id()))?];
        Ok(config)
    }

    /// A binary detached signature over `data`, made at `time`.
    pub fn detached(&self, data: impl Read, time: u64) -> Result<Vec<u8>> {
        let sig = self
            .config(SignatureType::Binary, time)?
            .sign(&self.key.primary_key, &self.password, data)
            .map_err(|e| self.err(e))?;
        DetachedSignature::new(sig)
            .to_bytes()
            .map_err(|e| self.err(e))
    }

    /// An ASCII-armoured detached signature (apt's `Release.gpg`).
    pub fn detached_armored(&self, data: impl Read, time: u64) -> Result<String> {
        let sig = self
            .config(SignatureType::Binary, time)?
            .sign(&self.key.primary_key, &self.password, data)
            .map_err(|e| self.err(e))?;
        DetachedSignature::new(sig)
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| self.err(e))
    }

    /// Clear-signs `text` with several signers at once (apt's `InRelease`; several keys
    /// while a key is being rotated).
    pub fn clearsign(signers: &[&Signer], text: &str, time: u64) -> Result<String> {
        let msg = CleartextSignedMessage::new_many(text, |normalized| {
            signers
                .iter()
                .map(|s| {
                    s.config(SignatureType::Text, time)
                        .map_err(|e| pgp::errors::Error::Message {
                            message: e.to_string(),
                            backtrace: None,
                        })?
                        .sign(&s.key.primary_key, &s.password, normalized.as_bytes())
                })
                .collect()
        })
        .map_err(Error::pgp("clear-signing"))?;
        msg.to_armored_string(ArmorOptions::default())
            .map_err(Error::pgp("armouring"))
    }

    /// Detached signatures by every signer over `data`, in one ASCII-armoured block (apt's
    /// `Release.gpg` while a key is being rotated: one good signature from a trusted key is
    /// enough for apt).
    pub fn detached_armored_many(signers: &[&Signer], data: &[u8], time: u64) -> Result<String> {
        let sigs = signers
            .iter()
            .map(|s| {
                let sig = s
                    .config(SignatureType::Binary, time)?
                    .sign(&s.key.primary_key, &s.password, data)
                    .map_err(|e| s.err(e))?;
                Ok(DetachedSignature::new(sig))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::new();
        pgp::armor::write(
            &sigs,
            pgp::armor::BlockType::Signature,
            &mut out,
            None,
            true,
        )
        .map_err(Error::pgp("armouring the signatures"))?;
        Ok(String::from_utf8(out).expect("armour is ASCII"))
    }

    fn err(&self, e: pgp::errors::Error) -> Error {
        Error::pgp(format!("{}: signing failed", self.shown))(e)
    }
}

/// The public keys of `signers` as one binary keyring (what apt's `Signed-By:` and gpgv's
/// `--keyring` read) and as one ASCII-armoured block.
pub fn public_keyring(signers: &[&Signer]) -> Result<(Vec<u8>, String)> {
    let keys: Vec<SignedPublicKey> = signers.iter().map(|s| s.public_key()).collect();
    let binary = keys
        .to_bytes()
        .map_err(Error::pgp("serialising the public keys"))?;
    let mut armored = Vec::new();
    pgp::armor::write(
        &keys,
        pgp::armor::BlockType::PublicKey,
        &mut armored,
        None,
        true,
    )
    .map_err(Error::pgp("armouring the public keys"))?;
    Ok((binary, String::from_utf8(armored).expect("armour is ASCII")))
}

/// The public key of a key file that holds either half, and its fingerprint.
pub fn public_key_of(bytes: &[u8], shown: &Path) -> Result<(SignedPublicKey, String)> {
    let text = String::from_utf8_lossy(bytes);
    let key = if text.contains("BEGIN PGP PRIVATE KEY BLOCK") {
        SignedSecretKey::from_armor_single(bytes)
            .map(|(k, _)| k.to_public_key())
            .map_err(Error::pgp(format!(
                "{}: not an OpenPGP key",
                shown.display()
            )))?
    } else {
        Keyring::parse(bytes, shown.display())?
            .keys
            .into_iter()
            .next()
            .ok_or_else(|| Error::Key {
                path: shown.to_owned(),
                message: "holds no OpenPGP key".into(),
            })?
    };
    let fingerprint = hex::encode_upper(key.fingerprint().as_bytes());
    Ok((key, fingerprint))
}

/// The files debsig-verify needs to check packages signed by `key`, as
/// `(path relative to the root, content)`: a policy under
/// `etc/debsig/policies/<KEYID>/` and the binary keyring under
/// `usr/share/debsig/keyrings/<KEYID>/`.
pub fn debsig_files(key: &SignedPublicKey, origin: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let fingerprint = hex::encode_upper(key.fingerprint().as_bytes());
    let id = &fingerprint[fingerprint.len() - 16..];
    let policy = format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE Policy SYSTEM "https://www.debian.org/debsig/1.0/policy.dtd">
<Policy xmlns="https://www.debian.org/debsig/1.0/">
  <Origin Name="{origin}" id="{id}" Description="{origin} packages"/>
  <Selection>
    <Required Type="origin" File="debsig.gpg" id="{id}"/>
  </Selection>
  <Verification MinOptional="0">
    <Required Type="origin" File="debsig.gpg" id="{id}"/>
  </Verification>
</Policy>
"#
    );
    let keyring = key
        .to_bytes()
        .map_err(Error::pgp("serialising the public key"))?;
    Ok(vec![
        (
            format!("etc/debsig/policies/{id}/{origin}.pol"),
            policy.into_bytes(),
        ),
        (
            format!("usr/share/debsig/keyrings/{id}/debsig.gpg"),
            keyring,
        ),
    ])
}

/// Checks a binary or armoured detached signature over `data` against every key (primary
/// and subkeys) of `keyring`; `what` names the signature in errors (a file, or a member of
/// one). Returns the fingerprint of the key that made it.
pub fn verify_detached(
    signature: &[u8],
    data: impl Read,
    keyring: &Keyring,
    what: &str,
) -> Result<String> {
    let not_one = || Error::pgp(format!("{what}: not an OpenPGP signature"));
    // While a key is being rotated one block holds a signature by each key, and any one of
    // them by a key of the keyring is enough, as for apt.
    let sigs = if signature.starts_with(b"-----BEGIN") {
        DetachedSignature::from_armor_many(signature)
            .map_err(not_one())?
            .0
            .collect::<std::result::Result<Vec<_>, _>>()
    } else {
        DetachedSignature::from_bytes_many(signature)
            .map_err(not_one())?
            .collect::<std::result::Result<Vec<_>, _>>()
    }
    .map_err(not_one())?;
    if sigs.is_empty() {
        return Err(Error::Signature {
            what: what.to_owned(),
            message: "holds no signature".into(),
        });
    }
    let mut bytes = Vec::new();
    let mut data = data;
    data.read_to_end(&mut bytes).map_err(|source| Error::Io {
        path: what.into(),
        source,
    })?;
    for sig in &sigs {
        for key in &keyring.keys {
            if sig.verify(&key.primary_key, &bytes).is_ok() {
                return Ok(hex::encode_upper(key.fingerprint().as_bytes()));
            }
            for sub in &key.public_subkeys {
                if sub.verify_bindings(&key.primary_key).is_ok()
                    && sig.verify(&sub.key, &bytes).is_ok()
                {
                    return Ok(hex::encode_upper(key.fingerprint().as_bytes()));
                }
            }
        }
    }
    Err(Error::Signature {
        what: what.to_owned(),
        message: format!(
            "BAD signature: made by none of the {} key(s) in {}, or the data changed",
            keyring.keys.len(),
            keyring.shown
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_reproducibly_and_verifies() {
        let k = generate(
            "Test <t@example.org>",
            KeyAlgorithm::Ed25519,
            None,
            1_700_000_000,
        )
        .unwrap();
        assert!(k
            .secret_armored
            .starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
        assert!(
            matches!(k.public_binary[0], 0x98 | 0x99 | 0xC6),
            "{:#x}",
            k.public_binary[0]
        );
        let s = Signer::load(
            k.secret_armored.as_bytes(),
            None,
            Path::new("k.asc"),
            1_800_000_000,
        )
        .unwrap();
        assert_eq!(s.fingerprint(), k.fingerprint);
        let a = s.detached(&b"hello"[..], 1_750_000_000).unwrap();
        let b = s.detached(&b"hello"[..], 1_750_000_000).unwrap();
        assert_eq!(a, b, "same key, data and time must give the same signature");
        let keyring = Keyring::parse(&k.public_binary, "k.gpg").unwrap();
        assert_eq!(
            verify_detached(&a, &b"hello"[..], &keyring, "sig").unwrap(),
            k.fingerprint
        );
        let e = verify_detached(&a, &b"hellO"[..], &keyring, "sig").unwrap_err();
        assert_eq!(
            e.to_string(),
            "sig: BAD signature: made by none of the 1 key(s) in k.gpg, or the data changed"
        );
        let other = generate(
            "Other <o@example.org>",
            KeyAlgorithm::Ed25519,
            None,
            1_700_000_000,
        )
        .unwrap();
        let other_keyring = Keyring::parse(other.public_armored.as_bytes(), "other.asc").unwrap();
        assert!(verify_detached(&a, &b"hello"[..], &other_keyring, "sig").is_err());

        // A Release.gpg made while rotating: the second signature is the one that counts.
        let o = Signer::load(other.secret_armored.as_bytes(), None, Path::new("o"), 0).unwrap();
        let both = Signer::detached_armored_many(&[&s, &o], b"hello", 1_750_000_000).unwrap();
        assert_eq!(
            verify_detached(
                both.as_bytes(),
                &b"hello"[..],
                &other_keyring,
                "Release.gpg"
            )
            .unwrap(),
            other.fingerprint
        );
    }

    #[test]
    fn passphrases_and_public_keys_are_checked_at_load() {
        let k = generate(
            "Test <t@example.org>",
            KeyAlgorithm::Ed25519,
            Some("s3cret"),
            1_700_000_000,
        )
        .unwrap();
        let p = Path::new("signing.asc");
        let e = Signer::load(k.secret_armored.as_bytes(), Some("wrong"), p, 1_800_000_000)
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "signing.asc: wrong passphrase");
        assert!(Signer::load(
            k.secret_armored.as_bytes(),
            Some("s3cret"),
            p,
            1_800_000_000
        )
        .is_ok());
        let e = Signer::load(k.secret_armored.as_bytes(), None, p, 1_800_000_000)
            .err()
            .unwrap();
        assert!(e.to_string().contains("protected by a passphrase"), "{e}");
        let e = Signer::load(k.public_armored.as_bytes(), None, p, 0)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "signing.asc: is a public key; signing needs the secret key"
        );
        let e = Signer::load(&k.public_binary, None, p, 0)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "signing.asc: is a public key; signing needs the secret key"
        );
        assert!(!e.contains("PRIVATE"));
    }

    #[test]
    fn clearsigned_text_carries_every_signer() {
        let a = generate(
            "A <a@example.org>",
            KeyAlgorithm::Ed25519,
            None,
            1_700_000_000,
        )
        .unwrap();
        let b = generate(
            "B <b@example.org>",
            KeyAlgorithm::Ed25519,
            None,
            1_700_000_000,
        )
        .unwrap();
        let sa = Signer::load(a.secret_armored.as_bytes(), None, Path::new("a"), 0).unwrap();
        let sb = Signer::load(b.secret_armored.as_bytes(), None, Path::new("b"), 0).unwrap();
        let signed =
            Signer::clearsign(&[&sa, &sb], "Origin: x\nSuite: stable\n", 1_750_000_000).unwrap();
        assert!(signed.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n"));
        for k in [&a, &b] {
            let keyring = Keyring::parse(&k.public_binary, "k.gpg").unwrap();
            let text =
                crate::lock::verify_clearsigned(signed.as_bytes(), &keyring, "InRelease").unwrap();
            assert_eq!(text, "Origin: x\nSuite: stable\n");
        }
    }
}

//! Throwaway OpenPGP keys for tests: signing keys made by the library, and a maintainer
//! key that clear-signs checksum files the way runc's release process does.

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedSecretKey,
};
use pgp::types::Password;
use std::path::Path;

use containerd_stack::sign::{generate, GeneratedKey, KeyAlgorithm, Signer};

/// A fresh signing key for `uid` made by the library (Ed25519, as `keygen` makes it),
/// created at `created` (Unix seconds), and the [`Signer`] loaded from its armoured secret.
pub fn signer(uid: &str, created: u64) -> (GeneratedKey, Signer) {
    let at = u32::try_from(created).expect("a creation time before 2106");
    let key = generate(uid, KeyAlgorithm::Ed25519, None, at).expect("key generation");
    let signer = Signer::load(key.secret_armored.as_bytes(), None, Path::new(uid), created)
        .expect("a generated key loads");
    (key, signer)
}

/// A fresh Ed25519 (legacy, v4) signing key for `uid`.
pub fn test_key(uid: &str) -> SignedSecretKey {
    let mut rng = rand::thread_rng();
    SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(uid.to_owned())
        .build()
        .expect("valid key parameters")
        .generate(&mut rng)
        .expect("key generation")
}

/// The public half, armoured, with a line of text before it as runc.keyring has.
pub fn keyring(keys: &[&SignedSecretKey]) -> String {
    keys.iter()
        .map(|k| {
            format!(
                "pub   ed25519 test key\n\n{}\n",
                k.to_public_key()
                    .to_armored_string(ArmorOptions::default())
                    .expect("armour")
            )
        })
        .collect()
}

/// `text` clear-signed by `key`.
pub fn clearsign(key: &SignedSecretKey, text: &str) -> String {
    let rng = rand::thread_rng();
    CleartextSignedMessage::sign(rng, text, &key.primary_key, &Password::empty())
        .expect("signing")
        .to_armored_string(ArmorOptions::default())
        .expect("armour")
}

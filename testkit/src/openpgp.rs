//! Throwaway OpenPGP keys for tests: a maintainer key that clear-signs checksum files the
//! way runc's release process does.

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedSecretKey,
};
use pgp::types::Password;

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

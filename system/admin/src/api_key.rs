//! API key material: `ply_ak_<id>.<secret>` with 32 random bytes of secret, stored only as an
//! HMAC-SHA256 under `PLYSTRA_API_KEY_SECRET` and verified in constant time. During rotation the
//! previous secrets still verify; new keys always use the primary.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The prefix of every API key.
pub const PREFIX: &str = "ply_ak_";

/// A freshly minted key: the plaintext (shown once) and what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedKey {
    /// The key's ID (`ak_…`).
    pub id: String,
    /// `ply_ak_<id>.<secret>`: returned once, never stored.
    pub plaintext: String,
    /// HMAC of the secret under the primary server secret, hex.
    pub hash: String,
}

/// The server secrets keys are hashed under.
#[derive(Clone)]
pub struct KeySecrets {
    primary: Vec<u8>,
    previous: Vec<Vec<u8>>,
}

impl std::fmt::Debug for KeySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySecrets")
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

/// A presented key split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey {
    /// The key's ID.
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl PresentedKey {
    /// Splits `ply_ak_<id>.<secret>`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('.')?;
        let valid_id = id.starts_with("ak_")
            && id.len() > 3
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        (valid_id && secret.len() >= 43).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

impl KeySecrets {
    /// The primary secret (`PLYSTRA_API_KEY_SECRET`) and the previous ones
    /// (`PLYSTRA_API_KEY_SECRET_PREVIOUS`, a comma list).
    pub fn new(primary: &str, previous: &str) -> Self {
        Self {
            primary: primary.as_bytes().to_vec(),
            previous: previous
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        }
    }

    fn mac(secret: &[u8], value: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Mints a key with ID `id`.
    pub fn mint(&self, id: &str) -> MintedKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        MintedKey {
            id: id.to_owned(),
            plaintext: format!("{PREFIX}{id}.{secret}"),
            hash: hex::encode(Self::mac(&self.primary, &secret)),
        }
    }

    /// Whether `secret` matches the stored hash under the primary or any previous secret.
    pub fn verify(&self, secret: &str, stored_hash: &str) -> bool {
        let Ok(stored) = hex::decode(stored_hash) else {
            return false;
        };
        std::iter::once(&self.primary)
            .chain(self.previous.iter())
            .fold(false, |found, key| {
                found | bool::from(Self::mac(key, secret).ct_eq(&stored))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_and_verify_and_carry_enough_entropy() {
        let secrets = KeySecrets::new("primary-secret-0123456789abcdef0123", "");
        let key = secrets.mint("ak_test1");
        let presented = PresentedKey::parse(&key.plaintext).unwrap();
        assert_eq!(presented.id, "ak_test1");
        assert!(URL_SAFE_NO_PAD.decode(&presented.secret).unwrap().len() >= 32);
        assert!(secrets.verify(&presented.secret, &key.hash));
        assert!(!secrets.verify("wrong", &key.hash));
        assert!(!key.hash.contains(&presented.secret));
        assert_ne!(secrets.mint("ak_test1").plaintext, key.plaintext);
    }

    #[test]
    fn rotation_accepts_previous_secrets_and_mints_with_the_primary() {
        let old = KeySecrets::new("old-secret", "");
        let key = old.mint("ak_rot");
        let secret = PresentedKey::parse(&key.plaintext).unwrap().secret;
        let rotated = KeySecrets::new("new-secret", "older, old-secret");
        assert!(
            rotated.verify(&secret, &key.hash),
            "previous secret still verifies"
        );
        let fresh = rotated.mint("ak_new");
        let fresh_secret = PresentedKey::parse(&fresh.plaintext).unwrap().secret;
        assert!(
            !old.verify(&fresh_secret, &fresh.hash),
            "new keys use the primary"
        );
        assert!(KeySecrets::new("new-secret", "").verify(&fresh_secret, &fresh.hash));
        assert!(
            !KeySecrets::new("new-secret", "").verify(&secret, &key.hash),
            "dropping the previous secret retires old keys"
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "ply_ak_",
            "ply_ak_ak_x",
            "ak_x.secret",
            "ply_ak_ak_x.short",
            "ply_ak_bad!.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad:?}");
        }
    }
}

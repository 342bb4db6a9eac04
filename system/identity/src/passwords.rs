//! Passwords: Argon2id hashes in the PHC string format, a minimum length, and verification that
//! takes the same time whether or not the user exists.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use plystra_contracts::ApiError;
use rand::RngCore;

/// The shortest password accepted, in characters.
pub const MIN_LENGTH: usize = 12;
/// The longest password accepted, in characters (hashing cost stays bounded).
pub const MAX_LENGTH: usize = 1024;

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Checks the password policy; the error names the `password` field and never echoes it.
pub fn check(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    if len > MAX_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!("must be at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// The Argon2id hash of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| internal())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| internal())
}

/// Whether `password` matches `encoded`. With no hash (unknown user, no password set) it still
/// verifies against a fixed hash, so the answer takes the same time, and returns false.
pub fn verify(password: &str, encoded: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let (encoded, real) = match encoded {
        Some(e) => (e, true),
        None => (
            DUMMY
                .get_or_init(|| hash("not-a-password-anyone-has").unwrap_or_default())
                .as_str(),
            false,
        ),
    };
    let Ok(parsed) = PasswordHash::new(encoded) else {
        return false;
    };
    let ok = hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// Hashes on the blocking pool (Argon2 is deliberately slow).
pub async fn hash_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|_| internal())?
}

/// Verifies on the blocking pool.
pub async fn verify_blocking(password: String, encoded: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, encoded.as_deref()))
        .await
        .unwrap_or(false)
}

fn internal() -> ApiError {
    ApiError::new(
        plystra_contracts::ErrorCode::InternalError,
        "internal error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery", Some(&a)));
        assert!(!verify("wrong horse battery", Some(&a)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("correct horse battery", Some("garbage")));
    }

    #[test]
    fn the_policy_needs_twelve_characters() {
        assert!(check("elevenchars").is_err());
        assert!(check("twelve chars").is_ok());
        let err = check("short").unwrap_err();
        assert!(err.details["fields"]["password"].is_string());
        assert!(!err.message.contains("short"));
    }
}

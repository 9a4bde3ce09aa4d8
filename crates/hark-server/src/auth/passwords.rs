//! Argon2id password hashing, off the async threads (it is deliberately slow).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::error::ApiError;

use std::sync::OnceLock;

/// Verified against when a username is unknown, so both paths cost the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"no such user")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

pub const MIN_PASSWORD_LEN: usize = 8;

pub async fn hash(password: String) -> Result<String, ApiError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::bad_request(format!(
            "password: must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// True when `password` matches `stored`; with no stored hash it still spends the time.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let known = stored.is_some();
    let matched = tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false);
    known && matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_fail() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(stored.clone())).await);
        assert!(!verify("wrong horse!".into(), Some(stored)).await);
        assert!(!verify("anything".into(), None).await);
        assert!(hash("short".into()).await.is_err());
    }
}

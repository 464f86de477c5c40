//! Secrets: generation, hashing of API keys, and the seam that seals endpoint secrets
//! before they reach the store.
//!
//! Every endpoint secret passes through [`SecretBox`] on its way into and out of the
//! store, so that encryption at rest (AES-GCM under a versioned master key, SPEC SEC-2)
//! is a new `SecretBox` implementation and touches no caller. Today's implementation,
//! [`PlainBox`], tags the bytes with version 0 and stores them as they are.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of Standard Webhooks secrets.
pub const WHSEC_PREFIX: &str = "whsec_";
/// Prefix of GatePulse API keys.
pub const API_KEY_PREFIX: &str = "gpk_";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed secret has unknown key version {0}")]
    UnknownVersion(u8),
    #[error("sealed secret is empty")]
    Empty,
}

/// Seals secrets for storage. Implementations must be deterministic in what they can
/// open: every sealed value carries the version of the key that sealed it.
pub trait SecretBox: Send + Sync + std::fmt::Debug {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8>;
    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// Version-0 box: no encryption, one version byte in front.
#[derive(Debug, Default)]
pub struct PlainBox;

impl SecretBox for PlainBox {
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + 1);
        out.push(0);
        out.extend_from_slice(plaintext);
        out
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match sealed.split_first() {
            Some((0, rest)) => Ok(rest.to_vec()),
            Some((v, _)) => Err(CryptoError::UnknownVersion(*v)),
            None => Err(CryptoError::Empty),
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A new Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_webhook_secret() -> String {
    format!("{WHSEC_PREFIX}{}", STANDARD.encode(random_bytes::<32>()))
}

/// Checks a user-supplied `whsec_` secret: base64 of 24 to 64 bytes.
pub fn validate_webhook_secret(secret: &str) -> Result<(), &'static str> {
    let Some(body) = secret.strip_prefix(WHSEC_PREFIX) else {
        return Err("must start with `whsec_`");
    };
    match STANDARD.decode(body) {
        Ok(bytes) if (24..=64).contains(&bytes.len()) => Ok(()),
        Ok(_) => Err("must encode between 24 and 64 bytes"),
        Err(_) => Err("must be base64 after `whsec_`"),
    }
}

/// A new API key secret: `gpk_` + 32 random bytes in URL-safe base64.
pub fn generate_api_key() -> String {
    format!(
        "{API_KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    )
}

/// A new admin token for `--dev`.
pub fn generate_admin_token() -> String {
    format!("gpadm_{}", URL_SAFE_NO_PAD.encode(random_bytes::<24>()))
}

/// SHA-256 of an API key, hex encoded. Keys carry 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Constant-time comparison for tokens.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_box_round_trips_and_rejects_unknown_versions() {
        let b = PlainBox;
        let sealed = b.seal(b"whsec_abc");
        assert_eq!(b.open(&sealed).unwrap(), b"whsec_abc");
        assert!(matches!(
            b.open(&[7, 1]),
            Err(CryptoError::UnknownVersion(7))
        ));
        assert!(matches!(b.open(&[]), Err(CryptoError::Empty)));
    }

    #[test]
    fn generated_secrets_validate() {
        assert!(validate_webhook_secret(&generate_webhook_secret()).is_ok());
        assert!(validate_webhook_secret("whsec_short").is_err());
        assert!(validate_webhook_secret("nope").is_err());
        let key = generate_api_key();
        assert!(key.starts_with("gpk_"));
        assert_eq!(hash_api_key(&key).len(), 64);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}

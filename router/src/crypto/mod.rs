//! Secrets: generation, hashing of API keys, and sealing at rest.
//!
//! Every stored secret (endpoint signing secrets, custom header values) is sealed by
//! [`Keyring`] (AES-256-GCM under a versioned master key, bound to its record: see
//! [`keyring`]); API keys are stored only as hashes; the admin token is never stored.

pub mod keyring;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use keyring::{Aad, CryptoError, Field, KeyError, Keyring, Sealing, generate_key};

/// Prefix of Standard Webhooks secrets.
pub const WHSEC_PREFIX: &str = "whsec_";
/// Prefix of Standard Webhooks Ed25519 signing (private) keys: `whsk_` + base64 of the
/// 32-byte seed. Only GatePulse holds them, sealed.
pub const WHSK_PREFIX: &str = "whsk_";
/// Prefix of Standard Webhooks Ed25519 public keys: `whpk_` + base64 of the 32 bytes.
pub const WHPK_PREFIX: &str = "whpk_";
/// Prefix of GatePulse API keys.
pub const API_KEY_PREFIX: &str = "gpk_";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A new Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_webhook_secret() -> String {
    format!("{WHSEC_PREFIX}{}", STANDARD.encode(random_bytes::<32>()))
}

/// A new Ed25519 signing key for `v1a` signatures: `whsk_` + base64 of a 32-byte seed.
pub fn generate_signing_key() -> String {
    format!("{WHSK_PREFIX}{}", STANDARD.encode(random_bytes::<32>()))
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

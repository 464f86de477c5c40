//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! `webhook-signature` holds space-separated entries, any of which a receiver may
//! match:
//! - `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the
//!   base64-decoded part of a `whsec_` secret (symmetric: the receiver holds the
//!   secret);
//! - `v1a,` + base64(Ed25519 signature of the same content), by the endpoint's
//!   `whsk_` signing key (asymmetric: the receiver holds only the `whpk_` public key,
//!   which cannot sign).
//!
//! During a rotation every still-valid secret or key signs, current first, so
//! receivers holding either accept the message. `v1` entries come before `v1a` ones.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::Sha256;

use crate::crypto::{WHPK_PREFIX, WHSEC_PREFIX, WHSK_PREFIX};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("secret is not a whsec_ secret")]
    NotWhsec,
    #[error("secret is not valid base64")]
    NotBase64,
    #[error("signing key is not a whsk_ key of 32 bytes in base64")]
    NotWhsk,
    #[error("no secret to sign with")]
    NoSecret,
}

/// An Ed25519 key pair from a `whsk_` signing key.
fn key_pair(signing_key: &str) -> Result<Ed25519KeyPair, SignError> {
    let body = signing_key
        .strip_prefix(WHSK_PREFIX)
        .ok_or(SignError::NotWhsk)?;
    let seed = STANDARD.decode(body).map_err(|_| SignError::NotWhsk)?;
    if seed.len() != 32 {
        return Err(SignError::NotWhsk);
    }
    Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| SignError::NotWhsk)
}

/// The `whpk_` public key of a `whsk_` signing key: what receivers verify `v1a`
/// signatures with.
pub fn public_key(signing_key: &str) -> Result<String, SignError> {
    let pair = key_pair(signing_key)?;
    Ok(format!(
        "{WHPK_PREFIX}{}",
        STANDARD.encode(pair.public_key().as_ref())
    ))
}

/// Signs with one or more decoded secrets and signing keys (current first).
#[derive(Clone)]
pub struct Signer {
    hmac: Vec<Vec<u8>>,
    ed25519: Vec<Arc<Ed25519KeyPair>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("v1", &self.hmac.len())
            .field("v1a", &self.ed25519.len())
            .finish()
    }
}

impl Signer {
    /// Signs `v1` only, with these `whsec_` secrets.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Result<Self, SignError> {
        Self::with_keys(secrets, std::iter::empty())
    }

    /// Signs `v1` with each `whsec_` secret and `v1a` with each `whsk_` signing key;
    /// at least one of either.
    pub fn with_keys<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
        signing_keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SignError> {
        let hmac = secrets
            .into_iter()
            .map(|s| {
                let body = s.strip_prefix(WHSEC_PREFIX).ok_or(SignError::NotWhsec)?;
                STANDARD.decode(body).map_err(|_| SignError::NotBase64)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ed25519 = signing_keys
            .into_iter()
            .map(|k| key_pair(k).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if hmac.is_empty() && ed25519.is_empty() {
            return Err(SignError::NoSecret);
        }
        Ok(Self { hmac, ed25519 })
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let mut out = String::with_capacity((self.hmac.len() + 2 * self.ed25519.len()) * 48);
        for key in &self.hmac {
            // HMAC accepts keys of any length, so this cannot fail.
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                continue;
            };
            mac.update(msg_id.as_bytes());
            mac.update(b".");
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(body);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            STANDARD.encode_string(mac.finalize().into_bytes(), &mut out);
        }
        if !self.ed25519.is_empty() {
            // Ed25519 hashes its message twice, so it needs the content in one piece.
            let mut content = Vec::with_capacity(msg_id.len() + ts.len() + 2 + body.len());
            content.extend_from_slice(msg_id.as_bytes());
            content.push(b'.');
            content.extend_from_slice(ts.as_bytes());
            content.push(b'.');
            content.extend_from_slice(body);
            for pair in &self.ed25519 {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str("v1a,");
                STANDARD.encode_string(pair.sign(&content), &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature vectors every SDK also checks (`sdk/conformance/`), so the
    /// router, the JS and the Python SDK can never disagree on what is signed.
    #[test]
    fn signs_every_shared_conformance_vector() {
        assert!(signs_vectors("webhook-signatures.json") >= 18);
        // Ed25519 is deterministic: the generator's signatures are the router's.
        assert!(signs_vectors("webhook-signatures-v1a.json") >= 5);
    }

    /// Signs every case of one vector file that has a `signing` part; how many.
    fn signs_vectors(file: &str) -> usize {
        let path = format!("{}/../sdk/conformance/{file}", env!("CARGO_MANIFEST_DIR"));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut checked = 0;
        for case in doc["cases"].as_array().unwrap() {
            let Some(signing) = case["signing"].as_object() else {
                continue;
            };
            let list = |name: &str| -> Vec<&str> {
                signing
                    .get(name)
                    .and_then(|v| v.as_array())
                    .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
                    .unwrap_or_default()
            };
            let signer = Signer::with_keys(list("secrets"), list("signing_keys")).unwrap();
            let sig = signer.sign(
                signing["id"].as_str().unwrap(),
                signing["timestamp"].as_i64().unwrap(),
                signing["body"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(
                sig, case["headers"]["webhook-signature"],
                "case {}",
                case["name"]
            );
            checked += 1;
        }
        checked
    }

    #[test]
    fn v1a_signatures_verify_with_the_public_key_only() {
        use ring::signature::{ED25519, UnparsedPublicKey};
        let key = crate::crypto::generate_signing_key();
        let public = public_key(&key).unwrap();
        let raw = STANDARD
            .decode(public.strip_prefix(WHPK_PREFIX).unwrap())
            .unwrap();
        let secret = crate::crypto::generate_webhook_secret();
        let header = Signer::with_keys([secret.as_str()], [key.as_str()])
            .unwrap()
            .sign("msg_1", 1700000000, b"{\"a\":1}");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2, "{header}");
        assert!(entries[0].starts_with("v1,"), "{header}");
        let sig = STANDARD
            .decode(entries[1].strip_prefix("v1a,").unwrap())
            .unwrap();
        let verifier = UnparsedPublicKey::new(&ED25519, &raw);
        assert!(verifier.verify(b"msg_1.1700000000.{\"a\":1}", &sig).is_ok());
        assert!(
            verifier
                .verify(b"msg_1.1700000000.{\"a\":2}", &sig)
                .is_err()
        );
        // v1a alone; a rotation signs with both keys, current first.
        let next = crate::crypto::generate_signing_key();
        let rotated = Signer::with_keys(std::iter::empty(), [next.as_str(), key.as_str()])
            .unwrap()
            .sign("msg_1", 1700000000, b"{\"a\":1}");
        let parts: Vec<&str> = rotated.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1a,")));
        assert_eq!(parts[1], entries[1]);
        assert_ne!(public_key(&next).unwrap(), public);
    }

    #[test]
    fn malformed_signing_keys_are_refused() {
        for bad in ["", "whsec_AAAA", "whsk_not base64", "whsk_AAAA"] {
            assert_eq!(public_key(bad), Err(SignError::NotWhsk), "{bad}");
            assert!(Signer::with_keys(std::iter::empty(), [bad]).is_err());
        }
    }

    /// The example from the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_reference_test_vector() {
        let signer = Signer::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).unwrap();
        let sig = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let a = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let b = crate::crypto::generate_webhook_secret();
        let both = Signer::new([b.as_str(), a]).unwrap().sign("m", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], Signer::new([a]).unwrap().sign("m", 1, b"{}"));
        assert!(Signer::new(["nope"]).is_err());
        assert!(Signer::new(std::iter::empty::<&str>()).is_err());
    }
}

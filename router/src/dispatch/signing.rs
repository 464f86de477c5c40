//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
//! where the key is the base64-decoded part of a `whsec_` secret. During a secret
//! rotation every still-valid secret signs, and the signatures are space separated, so
//! receivers verifying with either secret accept the message.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::WHSEC_PREFIX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("secret is not a whsec_ secret")]
    NotWhsec,
    #[error("secret is not valid base64")]
    NotBase64,
    #[error("no secret to sign with")]
    NoSecret,
}

/// Signs with one or more decoded secrets (current first).
#[derive(Clone)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Signer {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Result<Self, SignError> {
        let keys = secrets
            .into_iter()
            .map(|s| {
                let body = s.strip_prefix(WHSEC_PREFIX).ok_or(SignError::NotWhsec)?;
                STANDARD.decode(body).map_err(|_| SignError::NotBase64)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SignError::NoSecret);
        }
        Ok(Self { keys })
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let mut out = String::with_capacity(self.keys.len() * 48);
        for key in &self.keys {
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
            out.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
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
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sdk/conformance/webhook-signatures.json"
        );
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut checked = 0;
        for case in doc["cases"].as_array().unwrap() {
            let Some(signing) = case["signing"].as_object() else {
                continue;
            };
            let secrets: Vec<&str> = signing["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let sig = Signer::new(secrets).unwrap().sign(
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
        assert!(checked >= 18, "only {checked} signing cases");
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

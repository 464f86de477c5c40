//! Master keys and the sealing of stored secrets (SPEC SEC-2).
//!
//! A sealed value is AES-256-GCM under one version of the master key, bound by its
//! associated data to the record and field it belongs to ([`Aad`]), so a ciphertext
//! copied into another record — or another field of the same one — fails to open.
//! Records hold it as standard base64 of
//!
//! ```text
//! 0x01 | key version (u32, big endian) | nonce (12 bytes) | ciphertext ‖ tag (16 bytes)
//! ```
//!
//! Stores written before encryption at rest hold `0x00 | plaintext` (the old
//! `PlainBox` form): [`Keyring::open`] still reads it, only so that the startup
//! migration can seal it; nothing new is ever written that way.
//!
//! Key material never leaves this module: callers hold a [`Keyring`] and see versions.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;

/// Leading byte of a value sealed before encryption at rest (read, never written).
const FORMAT_PLAIN: u8 = 0;
/// Leading byte of an AES-256-GCM sealed value.
const FORMAT_AES_GCM: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes of one master key.
pub const KEY_LEN: usize = 32;

/// Why a sealed value cannot be opened or made.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed value is not base64")]
    NotBase64,
    #[error("sealed value is empty or truncated")]
    Truncated,
    #[error("sealed value has unknown format {0}")]
    UnknownFormat(u8),
    #[error("sealed with master key version {0}, which is not configured")]
    MissingKey(u32),
    #[error("sealed value does not open under key version {0} for this record")]
    Forged(u32),
    #[error("sealed value is not UTF-8")]
    NotUtf8,
    #[error("encryption failed")]
    Seal,
}

/// Why the configured master keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no master key configured")]
    None,
    #[error("master key entry {entry}: {reason}")]
    Bad { entry: usize, reason: String },
    #[error("master key version {0} is given twice with different keys")]
    Conflict(u32),
    #[error("master key file {path}: {reason}")]
    File { path: String, reason: String },
}

/// What a sealed value was sealed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sealing {
    /// Written before encryption at rest: plaintext, to be sealed by the migration.
    Plain,
    /// AES-256-GCM under this master key version.
    Key(u32),
}

/// The field of a record a secret belongs to: part of its associated data.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// An endpoint signing secret (current or rotated-out).
    Secret,
    /// An endpoint's Ed25519 signing key (`whsk_`, current or rotated-out).
    SigningKey,
    /// The value of the custom header with this name (compared case-insensitively).
    Header(&'a str),
}

/// The record a sealed value belongs to. The backend stores the same bytes whatever it
/// is (redb, PostgreSQL), so a value survives `gp store copy` as long as its ids do.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub tenant: &'a str,
    pub endpoint: &'a str,
    pub field: Field<'a>,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"gatepulse/sealed/v1\0");
        out.extend_from_slice(self.tenant.as_bytes());
        out.push(0);
        out.extend_from_slice(self.endpoint.as_bytes());
        out.push(0);
        match self.field {
            Field::Secret => out.extend_from_slice(b"secret"),
            Field::SigningKey => out.extend_from_slice(b"signing_key"),
            Field::Header(name) => {
                out.extend_from_slice(b"header:");
                out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            }
        }
        out
    }
}

/// Every configured master key version; the newest seals, any opens.
pub struct Keyring {
    keys: BTreeMap<u32, Aes256Gcm>,
    current: u32,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl Keyring {
    /// The keys in `inline` (the `master_key` setting) and in the file at `file` (the
    /// `master_key_file` setting), merged. See [`parse_keys`] for the format.
    pub fn load(inline: &str, file: Option<&Path>) -> Result<Self, KeyError> {
        let mut keys = parse_keys(inline)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let from_file = parse_keys(&text).map_err(|e| KeyError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for (version, key) in from_file {
                match keys.get(&version) {
                    Some(k) if *k != key => return Err(KeyError::Conflict(version)),
                    _ => {
                        keys.insert(version, key);
                    }
                }
            }
        }
        Self::from_keys(keys)
    }

    fn from_keys(keys: BTreeMap<u32, [u8; KEY_LEN]>) -> Result<Self, KeyError> {
        let current = *keys.keys().next_back().ok_or(KeyError::None)?;
        let keys = keys
            .into_iter()
            .map(|(v, k)| (v, Aes256Gcm::new(&k.into())))
            .collect();
        Ok(Self { keys, current })
    }

    /// The version new values are sealed with: the highest configured.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// Every configured version, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Whether `version` is configured.
    pub fn has(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    /// Seals `plaintext` for the field `aad` names, under the current key with a fresh
    /// random nonce, as the base64 text records hold.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Result<String, CryptoError> {
        let cipher = self.keys.get(&self.current).ok_or(CryptoError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad.bytes();
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(FORMAT_AES_GCM);
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(STANDARD.encode(out))
    }

    /// Opens a value sealed for the field `aad` names (or, from an old store, a
    /// plaintext one).
    pub fn open(&self, aad: Aad<'_>, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| CryptoError::NotBase64)?;
        match Self::parse(&bytes)? {
            Parsed::Plain(plain) => Ok(plain.to_vec()),
            Parsed::AesGcm {
                version,
                nonce,
                ciphertext,
            } => {
                let cipher = self
                    .keys
                    .get(&version)
                    .ok_or(CryptoError::MissingKey(version))?;
                let aad = aad.bytes();
                cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| CryptoError::Forged(version))
            }
        }
    }

    /// [`Keyring::open`] of a text secret.
    pub fn open_string(&self, aad: Aad<'_>, sealed: &str) -> Result<String, CryptoError> {
        String::from_utf8(self.open(aad, sealed)?).map_err(|_| CryptoError::NotUtf8)
    }

    /// What `sealed` was sealed with, without opening it.
    pub fn sealing(sealed: &str) -> Result<Sealing, CryptoError> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| CryptoError::NotBase64)?;
        Ok(match Self::parse(&bytes)? {
            Parsed::Plain(_) => Sealing::Plain,
            Parsed::AesGcm { version, .. } => Sealing::Key(version),
        })
    }

    fn parse(bytes: &[u8]) -> Result<Parsed<'_>, CryptoError> {
        match bytes.split_first() {
            None => Err(CryptoError::Truncated),
            Some((&FORMAT_PLAIN, rest)) => Ok(Parsed::Plain(rest)),
            Some((&FORMAT_AES_GCM, _)) => {
                if bytes.len() < HEADER_LEN + TAG_LEN {
                    return Err(CryptoError::Truncated);
                }
                let mut version = [0u8; 4];
                version.copy_from_slice(&bytes[1..5]);
                Ok(Parsed::AesGcm {
                    version: u32::from_be_bytes(version),
                    nonce: &bytes[5..HEADER_LEN],
                    ciphertext: &bytes[HEADER_LEN..],
                })
            }
            Some((&other, _)) => Err(CryptoError::UnknownFormat(other)),
        }
    }
}

enum Parsed<'a> {
    Plain(&'a [u8]),
    AesGcm {
        version: u32,
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
}

/// Parses master keys: entries separated by commas or new lines, each
/// `<version>:<base64 of 32 bytes>` (a `v` before the version is allowed); blank
/// entries and lines starting with `#` are ignored. A single entry without a version is
/// version 1. Versions start at 1.
pub fn parse_keys(spec: &str) -> Result<BTreeMap<u32, [u8; KEY_LEN]>, KeyError> {
    let entries: Vec<&str> = spec
        .split(['\n', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with('#'))
        .collect();
    let mut keys = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let bad = |reason: &str| KeyError::Bad {
            entry: i + 1,
            reason: reason.to_owned(),
        };
        let (version, material) = match entry.split_once(':') {
            Some((v, k)) => {
                let v = v.trim().trim_start_matches(['v', 'V']);
                let version: u32 = v
                    .parse()
                    .map_err(|_| bad("the version before `:` must be a number"))?;
                (version, k.trim())
            }
            None if entries.len() == 1 => (1, *entry),
            None => return Err(bad("give each key a version: `<version>:<key>`")),
        };
        if version == 0 {
            return Err(bad("versions start at 1"));
        }
        let decoded = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(material).ok())
            .ok_or_else(|| bad("the key must be base64 (try `gp secrets generate-key`)"))?;
        let key: [u8; KEY_LEN] = decoded
            .try_into()
            .map_err(|_| bad("the key must be 32 bytes (256 bits) once decoded"))?;
        if keys.insert(version, key).is_some_and(|k| k != key) {
            return Err(KeyError::Conflict(version));
        }
    }
    Ok(keys)
}

/// A new master key entry, `<version>:<base64>`, as `master_key` and key files take it.
pub fn generate_key(version: u32) -> String {
    let mut key = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    format!("{version}:{}", STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &str) -> Keyring {
        Keyring::load(spec, None).unwrap()
    }

    const AAD: Aad<'static> = Aad {
        tenant: "ten_1",
        endpoint: "ep_1",
        field: Field::Secret,
    };

    #[test]
    fn seals_under_the_newest_key_and_opens_under_any() {
        let (k1, k2) = (generate_key(1), generate_key(2));
        let old = ring(&k1);
        let sealed = old.seal(AAD, b"whsec_abc").unwrap();
        assert_eq!(Keyring::sealing(&sealed).unwrap(), Sealing::Key(1));
        let both = ring(&format!("{k2},{k1}"));
        assert_eq!(both.current_version(), 2);
        assert_eq!(both.open(AAD, &sealed).unwrap(), b"whsec_abc");
        let resealed = both.seal(AAD, b"whsec_abc").unwrap();
        assert_eq!(Keyring::sealing(&resealed).unwrap(), Sealing::Key(2));
        // The old key alone no longer opens what the new one sealed, and says why.
        assert!(matches!(
            old.open(AAD, &resealed),
            Err(CryptoError::MissingKey(2))
        ));
    }

    #[test]
    fn nonces_are_fresh_and_plaintext_does_not_show() {
        let r = ring(&generate_key(1));
        let a = r.seal(AAD, b"whsec_same").unwrap();
        let b = r.seal(AAD, b"whsec_same").unwrap();
        assert_ne!(a, b);
        let raw = STANDARD.decode(&a).unwrap();
        assert!(!raw.windows(10).any(|w| w == b"whsec_same"));
    }

    #[test]
    fn a_value_moved_to_another_record_or_field_fails() {
        let r = ring(&generate_key(3));
        let sealed = r.seal(AAD, b"token").unwrap();
        for other in [
            Aad {
                tenant: "ten_2",
                ..AAD
            },
            Aad {
                endpoint: "ep_2",
                ..AAD
            },
            Aad {
                field: Field::Header("authorization"),
                ..AAD
            },
        ] {
            assert!(matches!(
                r.open(other, &sealed),
                Err(CryptoError::Forged(3))
            ));
        }
        // Header names bind case-insensitively, as HTTP compares them.
        let h = Aad {
            field: Field::Header("Authorization"),
            ..AAD
        };
        let sealed = r.seal(h, b"Bearer x").unwrap();
        let lower = Aad {
            field: Field::Header("authorization"),
            ..AAD
        };
        assert_eq!(r.open(lower, &sealed).unwrap(), b"Bearer x");
    }

    #[test]
    fn tampering_and_truncation_are_refused() {
        let r = ring(&generate_key(1));
        let sealed = r.seal(AAD, b"whsec_abc").unwrap();
        let mut raw = STANDARD.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(matches!(
            r.open(AAD, &STANDARD.encode(&raw)),
            Err(CryptoError::Forged(1))
        ));
        assert!(matches!(
            r.open(AAD, &STANDARD.encode(&raw[..10])),
            Err(CryptoError::Truncated)
        ));
        assert!(matches!(r.open(AAD, ""), Err(CryptoError::Truncated)));
        assert!(matches!(r.open(AAD, "%%"), Err(CryptoError::NotBase64)));
        assert!(matches!(
            r.open(AAD, &STANDARD.encode([9, 1, 2])),
            Err(CryptoError::UnknownFormat(9))
        ));
    }

    #[test]
    fn legacy_plaintext_still_opens_for_the_migration() {
        let r = ring(&generate_key(1));
        let legacy = STANDARD.encode(b"\0whsec_old");
        assert_eq!(Keyring::sealing(&legacy).unwrap(), Sealing::Plain);
        assert_eq!(r.open(AAD, &legacy).unwrap(), b"whsec_old");
    }

    #[test]
    fn key_specs_are_parsed_strictly() {
        let k = STANDARD.encode([7u8; 32]);
        assert_eq!(parse_keys(&k).unwrap().keys().collect::<Vec<_>>(), [&1]);
        let two = parse_keys(&format!("# keys\nv1:{k}\n\n2:{k}\n")).unwrap();
        assert_eq!(two.keys().copied().collect::<Vec<_>>(), [1, 2]);
        let url_safe = URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert!(parse_keys(&format!("4:{url_safe}")).is_ok());
        assert!(matches!(parse_keys(""), Ok(m) if m.is_empty()));
        for bad in [
            format!("0:{k}"),
            format!("x:{k}"),
            "1:short".to_owned(),
            format!("{k},{k}"),
            format!("1:{}", STANDARD.encode([1u8; 16])),
        ] {
            assert!(
                matches!(parse_keys(&bad), Err(KeyError::Bad { .. })),
                "{bad}"
            );
        }
        let other = STANDARD.encode([8u8; 32]);
        assert!(matches!(
            parse_keys(&format!("1:{k},1:{other}")),
            Err(KeyError::Conflict(1))
        ));
        assert!(matches!(Keyring::load("", None), Err(KeyError::None)));
    }

    #[test]
    fn key_files_merge_with_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let (k1, k2) = (generate_key(1), generate_key(2));
        std::fs::write(&path, format!("{k2}\n")).unwrap();
        let r = Keyring::load(&k1, Some(&path)).unwrap();
        assert_eq!(r.versions(), [1, 2]);
        assert_eq!(r.current_version(), 2);
        let shown = format!("{r:?}");
        assert!(!shown.contains(k1.split_once(':').unwrap().1));
        let missing = dir.path().join("absent");
        assert!(matches!(
            Keyring::load(&k1, Some(&missing)),
            Err(KeyError::File { .. })
        ));
    }
}

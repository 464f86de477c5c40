//! The `gatepulse.plugin` custom section, built at compile time: the macros place its
//! bytes in a `#[link_section]` static, which must be a constant of known length.
//! `concat!` cannot splice in [`SDK_VERSION`] (a const, not a literal, and it must be
//! the SDK's version, not that of the crate expanding the macro), so const functions
//! assemble the bytes, and refuse at compile time a name the server would refuse at
//! upload (such a name never needs escaping in JSON).

use crate::SDK_VERSION;

const PREFIX: &str = r#"{"name":""#;
const MIDDLE: &str = r#"","abi":1,"sdk":""#;
const SUFFIX: &str = r#""}"#;
const MAX_NAME: usize = 64;

/// The section's length for plugin `name`; panics (a compile error in a const) if
/// the name is not one the server accepts at upload: 1 to 64 lowercase ASCII
/// letters, digits, `-` and `_`, starting with a letter or digit.
pub const fn metadata_len(name: &str) -> usize {
    let bytes = name.as_bytes();
    assert!(
        !bytes.is_empty() && bytes.len() <= MAX_NAME,
        "a plugin name is 1 to 64 characters"
    );
    assert!(
        bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit(),
        "a plugin name starts with a lowercase letter or a digit"
    );
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        assert!(
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_',
            "a plugin name may contain only lowercase ASCII letters, digits, '-' and '_'"
        );
        i += 1;
    }
    PREFIX.len() + bytes.len() + MIDDLE.len() + SDK_VERSION.len() + SUFFIX.len()
}

/// `{"name":"<name>","abi":1,"sdk":"<SDK_VERSION>"}` as bytes; `N` must be
/// [`metadata_len`]`(name)`.
pub const fn metadata<const N: usize>(name: &str) -> [u8; N] {
    assert!(N == metadata_len(name), "metadata length mismatch");
    let mut out = [0u8; N];
    let mut at = put(&mut out, 0, PREFIX);
    at = put(&mut out, at, name);
    at = put(&mut out, at, MIDDLE);
    at = put(&mut out, at, SDK_VERSION);
    put(&mut out, at, SUFFIX);
    out
}

const fn put<const N: usize>(out: &mut [u8; N], at: usize, text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        out[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_section_is_the_json_the_abi_specifies() {
        const BYTES: [u8; metadata_len("redact")] = metadata("redact");
        let doc: Value = serde_json::from_slice(&BYTES).unwrap();
        assert_eq!(
            doc,
            json!({"name": "redact", "abi": crate::ABI_VERSION, "sdk": crate::SDK_VERSION})
        );
    }

    #[test]
    fn names_the_server_would_refuse_do_not_compile() {
        let too_long = "x".repeat(65);
        let refused = [
            "",
            "a\"b",
            "a\\b",
            "caf\u{e9}",
            "with space",
            "Redact",
            "-x",
            "a.b",
            &too_long,
        ];
        for bad in refused {
            assert!(
                std::panic::catch_unwind(|| metadata_len(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            metadata_len("hostile-wrong_abi2"),
            metadata_len("x") + "hostile-wrong_abi2".len() - 1
        );
    }
}

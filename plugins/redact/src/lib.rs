//! `redact`: removes, masks or hashes fields of the body before it leaves.
//!
//! ```json
//! {"fields": ["customer.email", "card.number", "items[].ssn"], "mode": "mask", "keep_last": 4}
//! ```
//!
//! - `fields`: dotted paths into the body. `name[]` steps into every element of the
//!   array `name` (one level: `a[][]` is refused); a bare `[]` segment is every
//!   element of the array at that point (`[].ssn` for a body that is an array).
//!   Paths that are absent from a body are skipped.
//! - `mode`: `remove` (default) deletes the key (`items[]` as the last segment empties
//!   the array); `mask` replaces the value with `"****"`; `hash` replaces it with the
//!   hex SHA-256 of `salt` followed by the value (a string's UTF-8 bytes, any other
//!   value's compact JSON). `null` values are left as they are by `mask` and `hash`.
//! - `keep_last` (mask): keep that many trailing characters of strings at least
//!   twice as long, e.g. `"****4242"`.
//! - `salt` (hash): so that common values cannot be looked up in a table of hashes.
//!
//! Emits the redacted body, or passes it through when no field was present.

use gatepulse_plugin_sdk::prelude::*;
use sha2::{Digest, Sha256};

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RedactConfig {
    fields: Vec<String>,
    mode: Mode,
    keep_last: usize,
    salt: String,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Remove,
    Mask,
    Hash,
}

/// One segment of a field path.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    /// An object key.
    Key(&'a str),
    /// Every element of the array under this key (the current value when empty).
    Each(&'a str),
}

fn transform(event: Event, config: RedactConfig) -> Result<Output, Error> {
    if config.fields.is_empty() {
        return Err(Error::msg("config `fields` is empty: nothing to redact"));
    }
    let paths = config
        .fields
        .iter()
        .map(|f| parse_path(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = event.payload;
    let redacted: usize = paths
        .iter()
        .map(|steps| redact(&mut body, steps, &config))
        .sum();
    Ok(if redacted == 0 {
        Output::Pass
    } else {
        Output::Emit(body)
    })
}

fn parse_path(path: &str) -> Result<Vec<Step<'_>>, Error> {
    let bad = |why: &str| Error::msg(format!("field path `{path}`: {why}"));
    if path.is_empty() {
        return Err(bad("empty"));
    }
    path.split('.')
        .map(|segment| {
            let (key, each) = match segment.strip_suffix("[]") {
                Some(key) => (key, true),
                None => (segment, false),
            };
            if key.contains(['[', ']']) {
                return Err(bad("only `name[]` (one array level) is supported"));
            }
            match (key.is_empty(), each) {
                (true, false) => Err(bad("empty segment")),
                (_, true) => Ok(Step::Each(key)),
                (false, false) => Ok(Step::Key(key)),
            }
        })
        .collect()
}

/// Redacts what `steps` names under `at`; returns how many values it changed.
fn redact(at: &mut Value, steps: &[Step<'_>], config: &RedactConfig) -> usize {
    let Some((step, rest)) = steps.split_first() else {
        return 0;
    };
    match *step {
        Step::Key(key) => {
            let Value::Object(map) = at else { return 0 };
            match (rest.is_empty(), config.mode) {
                // `shift_remove` keeps the other keys in order.
                (true, Mode::Remove) => usize::from(map.shift_remove(key).is_some()),
                (true, _) => map.get_mut(key).map_or(0, |v| replace(v, config)),
                (false, _) => map.get_mut(key).map_or(0, |v| redact(v, rest, config)),
            }
        }
        Step::Each(key) => {
            let items = match at {
                Value::Array(items) if key.is_empty() => items,
                Value::Object(map) => match map.get_mut(key) {
                    Some(Value::Array(items)) => items,
                    _ => return 0,
                },
                _ => return 0,
            };
            match (rest.is_empty(), config.mode) {
                (true, Mode::Remove) => std::mem::take(items).len(),
                (true, _) => items.iter_mut().map(|v| replace(v, config)).sum(),
                (false, _) => items.iter_mut().map(|v| redact(v, rest, config)).sum(),
            }
        }
    }
}

/// Masks or hashes one value in place; 1 if it changed it.
fn replace(value: &mut Value, config: &RedactConfig) -> usize {
    if value.is_null() {
        return 0;
    }
    *value = Value::String(match config.mode {
        Mode::Hash => hash(value, &config.salt),
        Mode::Mask | Mode::Remove => mask(value, config.keep_last),
    });
    1
}

fn mask(value: &Value, keep_last: usize) -> String {
    let mut masked = String::from("****");
    if let Value::String(s) = value {
        let len = s.chars().count();
        if keep_last > 0 && len >= keep_last.saturating_mul(2) {
            masked.extend(s.chars().skip(len - keep_last));
        }
    }
    masked
}

fn hash(value: &Value, salt: &str) -> String {
    let mut sha = Sha256::new();
    sha.update(salt.as_bytes());
    match value {
        Value::String(s) => sha.update(s.as_bytes()),
        other => sha.update(other.to_string().as_bytes()),
    }
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

gatepulse_plugin_sdk::export_transform!(transform, name = "redact");

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::testing;

    /// Runs the plugin on `payload` with `config`.
    fn check(payload: Value, config: Value) -> Result<Output, Error> {
        testing::run(
            transform,
            &testing::event("orders.created", payload),
            &config.to_string(),
        )
    }

    fn order() -> Value {
        json!({
            "id": "ord_1",
            "customer": {"name": "Ada", "email": "ada@example.com"},
            "card": {"number": "4242424242424242", "brand": "visa"},
            "items": [{"sku": "A", "ssn": "123-45-6789"}, {"sku": "B"}, {"sku": "C", "ssn": null}]
        })
    }

    #[test]
    fn remove_deletes_keys_and_keeps_the_order_of_the_rest() {
        let out = check(
            order(),
            json!({"fields": ["customer.email", "items[].ssn", "card"]}),
        );
        let Ok(Output::Emit(body)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            body.to_string(),
            r#"{"id":"ord_1","customer":{"name":"Ada"},"items":[{"sku":"A"},{"sku":"B"},{"sku":"C"}]}"#
        );
    }

    #[test]
    fn mask_replaces_values_keeping_a_tail_only_of_long_strings() {
        let out = check(
            order(),
            json!({"fields": ["card.number", "customer.name", "items[].ssn"], "mode": "mask", "keep_last": 4}),
        )
        .unwrap();
        let Output::Emit(body) = out else {
            panic!("{out:?}")
        };
        assert_eq!(body["card"]["number"], "****4242");
        // "Ada" is shorter than twice keep_last: nothing of it is shown.
        assert_eq!(body["customer"]["name"], "****");
        assert_eq!(body["items"][0]["ssn"], "****6789");
        assert_eq!(body["items"][2]["ssn"], Value::Null);
        assert_eq!(body["card"]["brand"], "visa");
    }

    #[test]
    fn hash_is_hex_sha256_of_salt_and_value() {
        let out = check(
            json!({"a": "abc", "n": 42, "s": "abc"}),
            json!({"fields": ["a", "n"], "mode": "hash"}),
        );
        assert_eq!(
            out,
            Ok(Output::Emit(json!({
                // sha256("abc"), the FIPS 180-2 test vector.
                "a": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "n": hash(&json!("42"), ""),
                "s": "abc"
            })))
        );
        let salted = check(
            json!({"a": "bc"}),
            json!({"fields": ["a"], "mode": "hash", "salt": "a"}),
        );
        assert_eq!(
            salted,
            Ok(Output::Emit(json!({
                "a": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            })))
        );
    }

    #[test]
    fn arrays_at_the_root_and_as_the_last_segment() {
        assert_eq!(
            check(
                json!([{"ssn": 1}, {"ssn": 2}]),
                json!({"fields": ["[].ssn"], "mode": "mask"})
            ),
            Ok(Output::Emit(json!([{"ssn": "****"}, {"ssn": "****"}])))
        );
        assert_eq!(
            check(json!({"tags": ["x", "y"]}), json!({"fields": ["tags[]"]})),
            Ok(Output::Emit(json!({"tags": []})))
        );
        assert_eq!(
            check(
                json!({"tags": ["x", null]}),
                json!({"fields": ["tags[]"], "mode": "mask"})
            ),
            Ok(Output::Emit(json!({"tags": ["****", null]})))
        );
    }

    #[test]
    fn absent_fields_pass_the_body_through() {
        let cases = [
            json!({"fields": ["customer.phone"]}),
            json!({"fields": ["id.deeper"]}),
            json!({"fields": ["customer[].email"]}),
            json!({"fields": ["nothing[].here"], "mode": "hash"}),
        ];
        for config in cases {
            assert_eq!(check(order(), config.clone()), Ok(Output::Pass), "{config}");
        }
    }

    #[test]
    fn bad_configs_are_errors() {
        let cases = [
            (json!({}), "config `fields` is empty: nothing to redact"),
            (
                json!({"fields": ["a..b"]}),
                "field path `a..b`: empty segment",
            ),
            (json!({"fields": [""]}), "field path ``: empty"),
            (
                json!({"fields": ["m[][].x"]}),
                "field path `m[][].x`: only `name[]` (one array level) is supported",
            ),
        ];
        for (config, want) in cases {
            assert_eq!(check(order(), config), Err(Error::msg(want)));
        }
        let unknown_mode = check(order(), json!({"fields": ["id"], "mode": "shred"}));
        assert!(
            unknown_mode
                .unwrap_err()
                .message()
                .starts_with("invalid plugin config: unknown variant `shred`")
        );
    }

    #[test]
    fn paths_parse_into_steps() {
        assert_eq!(
            parse_path("items[].ssn").unwrap(),
            vec![Step::Each("items"), Step::Key("ssn")]
        );
        assert_eq!(
            parse_path("[].a").unwrap(),
            vec![Step::Each(""), Step::Key("a")]
        );
    }
}

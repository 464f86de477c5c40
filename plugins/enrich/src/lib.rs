//! `enrich`: adds fields derived from the event to the body, or drops the event when
//! a flag is not set.
//!
//! ```json
//! {
//!   "add": {
//!     "received_topic": "topic",
//!     "event_id": "event_id",
//!     "payload_sha256": "payload_sha256",
//!     "amount_eur": {"cents_to_units": "payload.amount_cents"},
//!     "customer": {"copy": "payload.customer.name"}
//!   },
//!   "into": "_meta",
//!   "drop_unless": "payload.live"
//! }
//! ```
//!
//! - `add`: body key → source, in this order: `"topic"`, `"event_id"`,
//!   `"created_at"`, `"payload_sha256"` (hex SHA-256 of the payload's compact JSON as
//!   received), `{"copy": path}` (any value of the input document),
//!   `{"cents_to_units": path}` (a number divided by 100). A source path that is
//!   absent or `null` adds nothing. Existing keys are overwritten.
//! - `into`: put the fields in this object of the body (created if absent) instead
//!   of at its top level.
//! - `drop_unless`: a path into the input document; the event is dropped (DROP)
//!   unless the value there is `true`.
//!
//! Passes the body through when there is nothing to add. The body must be an object.

use gatepulse_plugin_sdk::prelude::*;
use gatepulse_plugin_sdk::serde_json::{self, Map};
use sha2::{Digest, Sha256};

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct EnrichConfig {
    /// A JSON map, not a `BTreeMap`: fields are added in the order written.
    add: Map<String, Value>,
    into: Option<String>,
    drop_unless: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Source {
    Topic,
    EventId,
    CreatedAt,
    PayloadSha256,
    Copy(String),
    CentsToUnits(String),
}

fn transform(event: Event, config: EnrichConfig) -> Result<Output, Error> {
    if let Some(flag) = &config.drop_unless
        && event.get(flag).as_deref() != Some(&Value::Bool(true))
    {
        return Ok(Output::Drop);
    }
    let mut derived = Map::new();
    for (key, source) in &config.add {
        let source: Source = serde_json::from_value(source.clone())
            .map_err(|e| Error::msg(format!("config `add.{key}`: {e}")))?;
        if let Some(value) = derive(&event, &source)? {
            derived.insert(key.clone(), value);
        }
    }
    if derived.is_empty() {
        return Ok(Output::Pass);
    }
    let mut body = event.payload;
    let Value::Object(top) = &mut body else {
        return Err(Error::msg(
            "the body is not a JSON object; enrich adds fields to objects",
        ));
    };
    let target = match &config.into {
        None => top,
        Some(into) => match top
            .entry(into.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(inner) => inner,
            _ => return Err(Error::msg(format!("body field `{into}` is not an object"))),
        },
    };
    target.extend(derived);
    Ok(Output::Emit(body))
}

fn derive(event: &Event, source: &Source) -> Result<Option<Value>, Error> {
    let text = |s: &String| Ok(Some(Value::String(s.clone())));
    match source {
        Source::Topic => text(&event.topic),
        Source::EventId => text(&event.event_id),
        Source::CreatedAt => text(&event.created_at),
        Source::PayloadSha256 => {
            let digest = Sha256::digest(serde_json::to_vec(&event.payload)?);
            Ok(Some(Value::String(
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            )))
        }
        Source::Copy(path) => Ok(event
            .get(path)
            .filter(|v| !v.is_null())
            .map(|v| v.into_owned())),
        Source::CentsToUnits(path) => match event.get(path).as_deref() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                let cents = n
                    .as_i64()
                    .map(|i| i as f64)
                    .or_else(|| n.as_f64())
                    .unwrap_or(f64::NAN);
                Ok(serde_json::Number::from_f64(cents / 100.0).map(Value::Number))
            }
            Some(other) => Err(Error::msg(format!(
                "`{path}` is {other}, not a number of cents"
            ))),
        },
    }
}

gatepulse_plugin_sdk::export_transform!(transform, name = "enrich");

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::testing;

    fn check(payload: Value, config: Value) -> Result<Output, Error> {
        testing::run(
            transform,
            &testing::event("orders.created", payload),
            &config.to_string(),
        )
    }

    fn emitted(out: Result<Output, Error>) -> Value {
        match out {
            Ok(Output::Emit(body)) => body,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn adds_derived_fields_in_config_order() {
        let body = emitted(check(
            json!({"id": 1, "amount_cents": 1999}),
            json!({"add": {
                "received_topic": "topic",
                "event_id": "event_id",
                "created_at": "created_at",
                "amount_eur": {"cents_to_units": "payload.amount_cents"},
                "order": {"copy": "payload.id"}
            }}),
        ));
        assert_eq!(
            body.to_string(),
            r#"{"id":1,"amount_cents":1999,"received_topic":"orders.created","event_id":"evt_test","created_at":"2026-01-01T00:00:00Z","amount_eur":19.99,"order":1}"#
        );
    }

    #[test]
    fn payload_sha256_hashes_the_compact_payload() {
        let body = emitted(check(
            json!({"b": 1, "a": [true]}),
            json!({"add": {"h": "payload_sha256"}, "into": "_meta"}),
        ));
        let want: String = Sha256::digest(br#"{"b":1,"a":[true]}"#)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(body, json!({"b": 1, "a": [true], "_meta": {"h": want}}));
    }

    #[test]
    fn drop_unless_keeps_only_events_whose_flag_is_true() {
        let config = json!({"drop_unless": "payload.live", "add": {"t": "topic"}});
        let cases = [
            (json!({"live": true}), true),
            (json!({"live": false}), false),
            (json!({"live": "true"}), false),
            (json!({}), false),
        ];
        for (payload, kept) in cases {
            let out = check(payload.clone(), config.clone());
            assert_eq!(out != Ok(Output::Drop), kept, "{payload}: {out:?}");
        }
    }

    #[test]
    fn nothing_to_add_passes_the_body_through() {
        assert_eq!(check(json!({"a": 1}), json!({})), Ok(Output::Pass));
        assert_eq!(
            check(
                json!({"a": null}),
                json!({"add": {"x": {"copy": "payload.a"}, "y": {"cents_to_units": "payload.b"}}})
            ),
            Ok(Output::Pass)
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (
                json!([1]),
                json!({"add": {"t": "topic"}}),
                "the body is not a JSON object; enrich adds fields to objects",
            ),
            (
                json!({"m": 1}),
                json!({"add": {"t": "topic"}, "into": "m"}),
                "body field `m` is not an object",
            ),
            (
                json!({"c": "12"}),
                json!({"add": {"e": {"cents_to_units": "payload.c"}}}),
                "`payload.c` is \"12\", not a number of cents",
            ),
        ];
        for (payload, config, want) in cases {
            assert_eq!(check(payload, config), Err(Error::msg(want)));
        }
        let unknown = check(json!({}), json!({"add": {"x": "topics"}})).unwrap_err();
        assert!(
            unknown
                .message()
                .starts_with("config `add.x`: unknown variant `topics`"),
            "{unknown}"
        );
    }
}

//! The input document of ABI v1: one event as the plugin sees it. The payload is the
//! delivery's current body, after the subscription's mapping and earlier plugins.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path;

/// `{"topic": …, "event_id": …, "created_at": …, "payload": …}`. Fields the host may
/// add in later minor versions are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's topic, e.g. `orders.created`.
    pub topic: String,
    /// The event id (`evt_…`), stable across retries and replays.
    pub event_id: String,
    /// When GatePulse accepted the event, RFC 3339 in UTC.
    pub created_at: String,
    /// The current body.
    pub payload: Value,
}

impl Event {
    /// The value at a dotted path into the input document: `topic`, `event_id`,
    /// `created_at`, `payload` or `payload.<path>` (see [`path::lookup`]).
    pub fn get(&self, path: &str) -> Option<Cow<'_, Value>> {
        let (head, rest) = path.split_once('.').unwrap_or((path, ""));
        let text = |s: &String| (rest.is_empty()).then(|| Cow::Owned(Value::String(s.clone())));
        match head {
            "topic" => text(&self.topic),
            "event_id" => text(&self.event_id),
            "created_at" => text(&self.created_at),
            "payload" => path::lookup(&self.payload, rest).map(Cow::Borrowed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        serde_json::from_value(json!({
            "topic": "orders.created",
            "event_id": "evt_1",
            "created_at": "2026-01-01T00:00:00Z",
            "payload": {"id": 7, "lines": [{"sku": "A"}]},
            "added_later": true
        }))
        .unwrap()
    }

    #[test]
    fn get_reads_the_envelope_and_the_payload() {
        let e = event();
        let get = |p| e.get(p).map(Cow::into_owned);
        assert_eq!(get("topic"), Some(json!("orders.created")));
        assert_eq!(get("event_id"), Some(json!("evt_1")));
        assert_eq!(get("created_at"), Some(json!("2026-01-01T00:00:00Z")));
        assert_eq!(get("payload.id"), Some(json!(7)));
        assert_eq!(get("payload.lines.0.sku"), Some(json!("A")));
        assert_eq!(get("payload"), Some(e.payload.clone()));
        assert_eq!(get("topic.x"), None);
        assert_eq!(get("payload.nope"), None);
        assert_eq!(get("other"), None);
    }

    #[test]
    fn the_four_fields_are_required() {
        let missing = json!({"topic": "t", "event_id": "e", "created_at": "c"});
        assert!(serde_json::from_value::<Event>(missing).is_err());
    }
}

//! The tenant stream (SPEC STR-1..4, docs/streaming.md): every event a tenant publishes,
//! every delivery attempt's status and every audit record of the tenant, in one order
//! given by the tenant's stream cursor, served over SSE by `GET /v1/stream`.
//!
//! - [`StreamItem`]: one position of the stream with its SSE frame, built once and
//!   shared by every client that sends it.
//! - [`hub::StreamHub`]: live fan-out. The store publishes each committed item to it
//!   (only when the tenant has listeners), after the commit is durable.
//! - [`session`]: one client's connection: history from the store within the backfill
//!   limits, then live items, with a gap-free handoff between the two.
//!
//! Cursors are dense per tenant: the publishing or attempt-recording transaction
//! assigns the next one, so a client that sees cursor `n + 2` right after `n` knows it
//! missed `n + 1` and re-reads it from the store.

pub mod hub;
pub mod session;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::store::Event;

/// The topic of delivery-attempt statuses (SPEC STR-3).
pub const STATUS_TOPIC: &str = "deliveries.status";

/// The topic of audit records (SPEC SEC-3): sent only to clients whose token may
/// read the audit log.
pub const AUDIT_TOPIC: &str = "audit";

/// Leadership notices (`Streams::announce_cluster`): sent only to streams whose topic
/// pattern names them (`gatepulse.cluster`, `gatepulse.*`), without a cursor.
pub const CLUSTER_TOPIC: &str = "gatepulse.cluster";

/// Topics publishers may not use: the stream's own.
pub fn is_reserved_topic(topic: &str) -> bool {
    topic == STATUS_TOPIC || topic == AUDIT_TOPIC || topic.starts_with("gatepulse.")
}

/// One stream position, ready to send.
#[derive(Debug)]
pub struct StreamItem {
    pub cursor: u64,
    pub topic: Box<str>,
    /// Unix ms the item was written.
    pub created_at: i64,
    /// `id:`, `event:` and `data:` lines and the blank line ending the frame.
    pub frame: Bytes,
}

/// The `data` of an event item: the event as `GET /v1/events/{id}` shows it.
#[derive(Serialize)]
struct EventData<'a> {
    id: &'a str,
    topic: &'a str,
    cursor: u64,
    payload: &'a RawValue,
    idempotency_key: Option<&'a str>,
    created_at: String,
}

/// The `data` of a `deliveries.status` item (API.md, "Streaming").
#[derive(Debug, Serialize)]
pub struct StatusData<'a> {
    pub attempt_id: &'a str,
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    pub endpoint_id: &'a str,
    pub subscription_id: &'a str,
    /// The delivery's status after the attempt: succeeded, retrying, dead or cancelled.
    pub status: &'a str,
    pub attempt: u32,
    pub http_code: Option<u16>,
    pub latency_ms: u64,
    pub error_kind: Option<&'a str>,
    pub at: String,
}

impl StreamItem {
    /// An event's item.
    pub fn from_event(event: &Event) -> Self {
        let data = EventData {
            id: event.id.as_str(),
            topic: &event.topic,
            cursor: event.cursor,
            payload: &event.payload,
            idempotency_key: event.idempotency_key.as_deref(),
            created_at: crate::clock::rfc3339(event.created_at),
        };
        // Serializing borrowed strings and a raw value cannot fail.
        let json = serde_json::to_string(&data).unwrap_or_default();
        Self::new(event.cursor, &event.topic, event.created_at, &json)
    }

    /// An item whose data is already JSON text.
    pub fn new(cursor: u64, topic: &str, created_at: i64, data: &str) -> Self {
        Self {
            cursor,
            topic: topic.into(),
            created_at,
            frame: frame(Some(cursor), topic, data),
        }
    }
}

/// An SSE frame. Line breaks in `data` (a published payload may be pretty-printed)
/// become several `data:` lines, which the client joins back with `\n`.
pub fn frame(id: Option<u64>, event: &str, data: &str) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + event.len() + 40);
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.to_string().as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    let mut rest = data;
    loop {
        out.extend_from_slice(b"data: ");
        match rest.find(['\n', '\r']) {
            None => {
                out.extend_from_slice(rest.as_bytes());
                out.push(b'\n');
                break;
            }
            Some(i) => {
                out.extend_from_slice(&rest.as_bytes()[..i]);
                out.push(b'\n');
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_id_event_and_data() {
        let f = frame(Some(7), "order.created", r#"{"a":1}"#);
        assert_eq!(
            &f[..],
            b"id: 7\nevent: order.created\ndata: {\"a\":1}\n\n".as_slice()
        );
    }

    #[test]
    fn line_breaks_in_data_become_data_lines() {
        let f = frame(None, "x", "{\n \"a\": 1\r\n}\r");
        assert_eq!(
            &f[..],
            b"event: x\ndata: {\ndata:  \"a\": 1\ndata: }\ndata: \n\n".as_slice()
        );
    }

    #[test]
    fn reserved_topics() {
        assert!(is_reserved_topic("deliveries.status"));
        assert!(is_reserved_topic("gatepulse.reset"));
        assert!(is_reserved_topic("audit"));
        assert!(!is_reserved_topic("audit.created"));
        assert!(!is_reserved_topic("deliveries.created"));
    }
}

//! Typed, prefixed resource ids (`evt_…`, `ep_…`, …).
//!
//! An id is a type prefix plus 26 Crockford base32 characters: 48 bits of milliseconds
//! since the Unix epoch followed by 80 random bits. Ids of one type therefore sort by
//! creation time, which the store relies on for ordered listings and time-ordered
//! pagination cursors. Ids are opaque to clients (API.md).

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Encodes 128 bits (48-bit time, 80-bit randomness) as 26 base32 characters.
fn encode_128(value: u128, out: &mut String) {
    // 26 chars * 5 bits = 130 bits; the first char carries the top 3 bits.
    for i in (0..26).rev() {
        let idx = ((value >> (i * 5)) & 0x1f) as usize;
        out.push(CROCKFORD[idx] as char);
    }
}

/// Generates the 26-character body of a new id for the given time.
fn new_body(now_ms: i64) -> String {
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut value: u128 = (u128::from(now_ms.max(0) as u64) & 0xffff_ffff_ffff) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut s = String::with_capacity(26);
    encode_128(value, &mut s);
    s
}

/// True when `body` looks like an id body of `len` Crockford characters.
fn valid_body(body: &str, len: usize) -> bool {
    body.len() == len && body.bytes().all(|b| CROCKFORD.contains(&b))
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        id_type!($(#[$doc])* $name, $prefix, 26);

        impl $name {
            /// A new id for an object created at `now_ms`.
            pub fn generate(now_ms: i64) -> Self {
                let mut s = String::with_capacity(Self::PREFIX.len() + 26);
                s.push_str(Self::PREFIX);
                s.push_str(&new_body(now_ms));
                Self(s)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $body_len:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The type prefix, including the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// Parses an id from user input; `None` when it is not an id of this type.
            pub fn parse(s: &str) -> Option<Self> {
                let body = s.strip_prefix(Self::PREFIX)?;
                valid_body(body, $body_len).then(|| Self(s.to_owned()))
            }

            /// Wraps a string already known to be an id (read back from the store).
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A tenant: the isolation unit.
    TenantId, "ten_"
);
id_type!(
    /// An API key (the id, never the secret).
    KeyId, "key_"
);
id_type!(
    /// An audit log record.
    AuditId, "aud_"
);
id_type!(
    /// An HTTP or inbox destination.
    EndpointId, "ep_"
);
id_type!(
    /// A subscription: endpoint + topic patterns + filter + transform.
    SubscriptionId, "sub_"
);
id_type!(
    /// A published event.
    EventId, "evt_"
);
id_type!(
    /// One event for one subscription: the event's id body followed by a 4-character
    /// sequence number, so an event's deliveries share a key prefix (and sort by
    /// event time) without a separate index.
    DeliveryId, "dlv_", 30
);

impl DeliveryId {
    /// The largest sequence number one event's delivery ids can carry (four base-32
    /// digits): creating more would wrap around onto existing ids.
    pub const MAX_SEQ: u32 = (1 << 20) - 1;

    /// The `seq`-th delivery of `event` (seq <= [`DeliveryId::MAX_SEQ`]).
    pub fn for_event(event: &EventId, seq: u32) -> Self {
        let mut s = Self::event_prefix(event);
        for i in (0..4).rev() {
            s.push(CROCKFORD[((seq >> (i * 5)) & 0x1f) as usize] as char);
        }
        Self(s)
    }

    /// The sequence number at the end of a delivery id made by [`Self::for_event`].
    pub fn seq_of(id: &str) -> Option<u32> {
        let tail = id.get(id.len().checked_sub(4)?..)?;
        tail.bytes().try_fold(0u32, |acc, b| {
            CROCKFORD
                .iter()
                .position(|c| *c == b)
                .map(|v| (acc << 5) | v as u32)
        })
    }

    /// A listing cursor just before every delivery of the events created at or after
    /// `ms`: the last possible id of the millisecond before, and past its sequence.
    pub fn cursor_before_time(ms: i64) -> String {
        let before = u128::from(ms.saturating_sub(1).max(0) as u64) & 0xffff_ffff_ffff;
        let value = (before << 80) | ((1u128 << 80) - 1);
        let mut s = String::with_capacity(Self::PREFIX.len() + 27);
        s.push_str(Self::PREFIX);
        encode_128(value, &mut s);
        s.push('\u{7f}');
        s
    }

    /// When the event of a delivery (id or listing cursor) was created, in Unix ms.
    pub fn event_time_ms(id: &str) -> Option<i64> {
        let body = id.strip_prefix(Self::PREFIX)?.get(..26)?;
        let value = body.bytes().try_fold(0u128, |acc, b| {
            let digit = CROCKFORD.iter().position(|c| *c == b)?;
            Some((acc << 5) | digit as u128)
        })?;
        i64::try_from(value >> 80).ok()
    }

    /// The common prefix of every delivery id of `event`.
    pub fn event_prefix(event: &EventId) -> String {
        let body = &event.as_str()[EventId::PREFIX.len()..];
        let mut s = String::with_capacity(Self::PREFIX.len() + 30);
        s.push_str(Self::PREFIX);
        s.push_str(body);
        s
    }
}
id_type!(
    /// One HTTP try of a delivery.
    AttemptId, "att_"
);
id_type!(
    /// A recorded replay.
    ReplayId, "rpl_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_types() {
        let id = EventId::generate(1_700_000_000_000);
        assert!(id.as_str().starts_with("evt_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert_eq!(EventId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(EndpointId::parse(id.as_str()), None);
        assert_eq!(EventId::parse("evt_short"), None);
        assert_eq!(EventId::parse("evt_IIIIIIIIIIIIIIIIIIIIIIIIII"), None);
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let a = EventId::generate(1_000);
        let b = EventId::generate(2_000);
        let c = EventId::generate(1_000_000_000_000);
        assert!(a < b && b < c);
    }

    #[test]
    fn a_time_cursor_starts_right_before_that_millisecond() {
        let at = 1_700_000_000_123;
        let before = DeliveryId::for_event(&EventId::generate(at - 1), DeliveryId::MAX_SEQ);
        let first = DeliveryId::for_event(&EventId::generate(at), 0);
        let cursor = DeliveryId::cursor_before_time(at);
        assert!(before.as_str() < cursor.as_str(), "{before} {cursor}");
        assert!(cursor.as_str() < first.as_str(), "{cursor} {first}");
        assert_eq!(DeliveryId::event_time_ms(first.as_str()), Some(at));
        assert_eq!(DeliveryId::event_time_ms(&cursor), Some(at - 1));
        assert_eq!(DeliveryId::event_time_ms("evt_x"), None);
    }

    #[test]
    fn delivery_ids_extend_their_event_id() {
        let e = EventId::generate(5_000);
        let d0 = DeliveryId::for_event(&e, 0);
        let d1 = DeliveryId::for_event(&e, 1);
        let d31 = DeliveryId::for_event(&e, 32);
        assert!(d0 < d1 && d1 < d31);
        assert!(d0.as_str().starts_with(&DeliveryId::event_prefix(&e)));
        assert_eq!(DeliveryId::parse(d31.as_str()), Some(d31.clone()));
        assert_eq!(DeliveryId::parse(&d31.as_str()[..30]), None);
        let later = DeliveryId::for_event(&EventId::generate(6_000), 0);
        assert!(d31 < later);
    }
}

//! The borrowed view of one event that filters and expressions read.
//!
//! Owns `Event`, `Meta`, `Headers` and the `HeaderLookup` trait. Everything is borrowed
//! so the router builds a view per event with zero copies; this module knows nothing of
//! how events are stored or received.

use std::fmt;

use serde_json::Value;

/// The event as the filter sees it. Cheap to build (`Copy`, all borrowed).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// `topic`.
    pub topic: &'a str,
    /// `payload…`: the parsed JSON payload.
    pub payload: &'a Value,
    /// `headers["name"]`, looked up case-insensitively.
    pub headers: Headers<'a>,
    /// `meta.id`, `meta.time`, `meta.source`.
    pub meta: Meta<'a>,
}

impl<'a> Event<'a> {
    /// An event with no headers and no meta fields.
    pub fn new(topic: &'a str, payload: &'a Value) -> Self {
        Event {
            topic,
            payload,
            headers: Headers::None,
            meta: Meta::default(),
        }
    }

    pub fn with_headers(self, headers: impl Into<Headers<'a>>) -> Self {
        Event {
            headers: headers.into(),
            ..self
        }
    }

    pub fn with_meta(self, meta: Meta<'a>) -> Self {
        Event { meta, ..self }
    }
}

/// Envelope fields. A `None` field is missing (comparisons with it are false).
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta<'a> {
    /// `meta.id`: the server-assigned event id.
    pub id: Option<&'a str>,
    /// `meta.time`: the event time as an RFC 3339 string (compared as a string).
    pub time: Option<&'a str>,
    /// `meta.source`: who published the event.
    pub source: Option<&'a str>,
}

/// Looks a header up by name. Implementations must match names ASCII
/// case-insensitively and return the first value when a name repeats.
pub trait HeaderLookup {
    fn header(&self, name: &str) -> Option<&str>;
}

/// Where header values come from.
#[derive(Clone, Copy, Default)]
pub enum Headers<'a> {
    /// No headers: every `headers[...]` is missing.
    #[default]
    None,
    /// Name/value pairs, searched linearly (first match wins).
    Pairs(&'a [(String, String)]),
    /// Any other map, e.g. the router's own header type.
    Lookup(&'a dyn HeaderLookup),
}

impl<'a> Headers<'a> {
    /// The first value of `name`, matched ASCII case-insensitively.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        match self {
            Headers::None => None,
            Headers::Pairs(pairs) => pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            Headers::Lookup(lookup) => lookup.header(name),
        }
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Headers::None => f.write_str("Headers::None"),
            Headers::Pairs(pairs) => f.debug_tuple("Headers::Pairs").field(pairs).finish(),
            Headers::Lookup(_) => f.write_str("Headers::Lookup(..)"),
        }
    }
}

impl<'a> From<&'a [(String, String)]> for Headers<'a> {
    fn from(pairs: &'a [(String, String)]) -> Self {
        Headers::Pairs(pairs)
    }
}

impl<'a> From<&'a Vec<(String, String)>> for Headers<'a> {
    fn from(pairs: &'a Vec<(String, String)>) -> Self {
        Headers::Pairs(pairs)
    }
}

impl<'a, T: HeaderLookup> From<&'a T> for Headers<'a> {
    fn from(lookup: &'a T) -> Self {
        Headers::Lookup(lookup)
    }
}

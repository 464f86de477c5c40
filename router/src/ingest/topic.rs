//! Topics and topic patterns.
//!
//! A topic is a dot-separated list of non-empty segments (`orders.created`,
//! `billing.invoice.paid`). A pattern is a topic whose segments may also be:
//!
//! - `*`: exactly one segment (`orders.*` matches `orders.created`, not
//!   `orders.created.v2` and not `orders`);
//! - `#`: zero or more segments (`orders.#` matches `orders`, `orders.created` and
//!   `orders.created.v2`; `#` alone matches every topic).
//!
//! This is the AMQP topic-exchange syntax, so it reads the same to RabbitMQ users.
//! Matching is linear in the number of segments (no backtracking blow-up).

use std::fmt;

/// Most segments in a topic or pattern.
pub const MAX_SEGMENTS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than {0} bytes")]
    TooLong(usize),
    #[error("has more than {MAX_SEGMENTS} segments")]
    TooManySegments,
    #[error("has an empty segment (two dots in a row, or a leading or trailing dot)")]
    EmptySegment,
    #[error(
        "segment {0:?} has a character that is not allowed (letters, digits, `_`, `-`, `:` and `/` are)"
    )]
    BadCharacter(String),
    #[error("wildcards `*` and `#` are allowed in patterns only, as whole segments")]
    Wildcard,
}

fn check_segment_chars(seg: &str) -> Result<(), TopicError> {
    let ok = seg
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '/'));
    if ok {
        Ok(())
    } else {
        Err(TopicError::BadCharacter(seg.to_owned()))
    }
}

/// Validates a published topic.
pub fn validate_topic(topic: &str, max_bytes: usize) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > max_bytes {
        return Err(TopicError::TooLong(max_bytes));
    }
    let mut count = 0;
    for seg in topic.split('.') {
        count += 1;
        if count > MAX_SEGMENTS {
            return Err(TopicError::TooManySegments);
        }
        if seg.is_empty() {
            return Err(TopicError::EmptySegment);
        }
        if seg.contains(['*', '#']) {
            return Err(TopicError::Wildcard);
        }
        check_segment_chars(seg)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    One,
    Many,
}

/// A compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    source: Box<str>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No wildcard: plain equality.
    Exact,
    /// Literal segments then a final `#`: `prefix` or `prefix.` + anything.
    Prefix(Box<str>),
    /// Any mix of wildcards.
    General(Vec<Seg>),
}

impl TopicPattern {
    pub fn parse(source: &str, max_bytes: usize) -> Result<Self, TopicError> {
        if source.is_empty() {
            return Err(TopicError::Empty);
        }
        if source.len() > max_bytes {
            return Err(TopicError::TooLong(max_bytes));
        }
        let mut segs = Vec::new();
        for seg in source.split('.') {
            if segs.len() == MAX_SEGMENTS {
                return Err(TopicError::TooManySegments);
            }
            segs.push(match seg {
                "" => return Err(TopicError::EmptySegment),
                "*" => Seg::One,
                "#" => Seg::Many,
                s if s.contains(['*', '#']) => return Err(TopicError::Wildcard),
                s => {
                    check_segment_chars(s)?;
                    Seg::Lit(s.into())
                }
            });
        }
        let wild = |s: &Seg| !matches!(s, Seg::Lit(_));
        let kind = match segs.iter().position(wild) {
            None => Kind::Exact,
            Some(i) if i == segs.len() - 1 && segs[i] == Seg::Many && i > 0 => {
                Kind::Prefix(source[..source.len() - 2].into())
            }
            Some(_) => Kind::General(segs),
        };
        Ok(Self {
            source: source.into(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard (it matches only itself).
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, Kind::Exact)
    }

    pub fn matches(&self, topic: &str) -> bool {
        match &self.kind {
            Kind::Exact => &*self.source == topic,
            Kind::Prefix(prefix) => {
                topic == &**prefix
                    || (topic.len() > prefix.len()
                        && topic.starts_with(&**prefix)
                        && topic.as_bytes()[prefix.len()] == b'.')
            }
            Kind::General(segs) => general_match(segs, topic),
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Dynamic programming over (pattern segment, topic segment): `reach[j]` is true when
/// the pattern prefix seen so far can consume exactly the first `j` topic segments.
fn general_match(segs: &[Seg], topic: &str) -> bool {
    let mut parts: [&str; MAX_SEGMENTS] = [""; MAX_SEGMENTS];
    let mut n = 0;
    for part in topic.split('.') {
        if n == MAX_SEGMENTS {
            return false;
        }
        parts[n] = part;
        n += 1;
    }
    let parts = &parts[..n];
    let mut reach = [false; MAX_SEGMENTS + 1];
    reach[0] = true;
    for seg in segs {
        let mut next = [false; MAX_SEGMENTS + 1];
        match seg {
            Seg::Many => {
                let mut any = false;
                for j in 0..=n {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            Seg::One => next[1..=n].copy_from_slice(&reach[..n]),
            Seg::Lit(lit) => {
                for j in 0..n {
                    next[j + 1] = reach[j] && parts[j] == &**lit;
                }
            }
        }
        reach = next;
    }
    reach[n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The topic-pattern cases the SDKs share (`sdk/conformance/topic-patterns.json`).
    #[test]
    fn matches_the_shared_conformance_cases() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sdk/conformance/topic-patterns.json"
        );
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            check(
                case["pattern"].as_str().unwrap(),
                case["topic"].as_str().unwrap(),
                case["matches"].as_bool().unwrap(),
            );
        }
    }

    fn check(pattern: &str, topic: &str, expected: bool) {
        let p = TopicPattern::parse(pattern, 255).unwrap();
        assert_eq!(p.matches(topic), expected, "{pattern} vs {topic}");
    }

    #[test]
    fn pattern_table() {
        let cases = [
            ("orders.created", "orders.created", true),
            ("orders.created", "orders.created.v2", false),
            ("orders.*", "orders.created", true),
            ("orders.*", "orders", false),
            ("orders.*", "orders.created.v2", false),
            ("orders.#", "orders", true),
            ("orders.#", "orders.created", true),
            ("orders.#", "orders.created.v2", true),
            ("orders.#", "ordersx.created", false),
            ("orders.#", "ordersx", false),
            ("#", "anything.at.all", true),
            ("*", "one", true),
            ("*", "one.two", false),
            ("*.created", "orders.created", true),
            ("*.created", "orders.updated", false),
            ("#.created", "created", true),
            ("#.created", "a.b.created", true),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.b.c", false),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b", true),
            ("#.#", "x.y", true),
        ];
        for (p, t, e) in cases {
            check(p, t, e);
        }
    }

    #[test]
    fn invalid_topics_and_patterns_are_refused() {
        assert_eq!(validate_topic("", 255), Err(TopicError::Empty));
        assert_eq!(validate_topic("a..b", 255), Err(TopicError::EmptySegment));
        assert_eq!(validate_topic("a.*", 255), Err(TopicError::Wildcard));
        assert_eq!(
            validate_topic("a b", 255),
            Err(TopicError::BadCharacter("a b".into()))
        );
        assert_eq!(validate_topic("abc", 2), Err(TopicError::TooLong(2)));
        assert!(validate_topic("billing/v1.invoice:paid", 255).is_ok());
        assert_eq!(
            TopicPattern::parse("orders.cr*", 255),
            Err(TopicError::Wildcard)
        );
        let deep = vec!["a"; 33].join(".");
        assert_eq!(
            validate_topic(&deep, 1000),
            Err(TopicError::TooManySegments)
        );
    }

    /// A slow reference matcher for the property test.
    fn reference(segs: &[&str], parts: &[&str]) -> bool {
        match (segs.first(), parts.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(&"#"), _) => {
                reference(&segs[1..], parts) || (!parts.is_empty() && reference(segs, &parts[1..]))
            }
            (Some(_), None) => false,
            (Some(&"*"), Some(_)) => reference(&segs[1..], &parts[1..]),
            (Some(s), Some(p)) => s == p && reference(&segs[1..], &parts[1..]),
        }
    }

    proptest! {
        #[test]
        fn matcher_agrees_with_reference(
            pat in proptest::collection::vec(prop_oneof!["a", "b", "\\*", "#"], 1..6),
            top in proptest::collection::vec(prop_oneof!["a", "b", "c"], 1..7),
        ) {
            let pattern = pat.join(".");
            let topic = top.join(".");
            let compiled = TopicPattern::parse(&pattern, 255).unwrap();
            let segs: Vec<&str> = pat.iter().map(String::as_str).collect();
            let parts: Vec<&str> = top.iter().map(String::as_str).collect();
            prop_assert_eq!(compiled.matches(&topic), reference(&segs, &parts));
        }
    }
}

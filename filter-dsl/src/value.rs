//! JSON semantics shared by comparisons: exact number ordering, equality, set keys.
//!
//! Owns `ValueRef` (a borrowed view of whatever a path or literal evaluates to) and the
//! rules "numbers compare as numbers, int vs float exactly; strings compare by code
//! point; nothing is ever converted between types". Knows nothing of syntax.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A borrowed value produced by evaluating a path or literal: either a JSON value from
/// the payload (or the expression's own literal) or a string from the event envelope
/// (topic, header value, meta field).
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Json(&'a Value),
    Str(&'a str),
}

impl<'a> ValueRef<'a> {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            ValueRef::Json(Value::String(s)) => Some(s),
            ValueRef::Json(_) => None,
        }
    }

    /// The JSON value, if this came from JSON.
    pub fn as_json(&self) -> Option<&'a Value> {
        match self {
            ValueRef::Json(v) => Some(v),
            ValueRef::Str(_) => None,
        }
    }

    /// An owned copy (allocates; for callers that need to keep the value).
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Json(v) => (*v).clone(),
            ValueRef::Str(s) => Value::String((*s).to_string()),
        }
    }
}

/// Equality with JSON semantics (see `json_eq`).
impl PartialEq for ValueRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_str(), other.as_str()) {
            (Some(a), Some(b)) => a == b,
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => match (self.as_json(), other.as_json()) {
                (Some(a), Some(b)) => json_eq(a, b),
                _ => false,
            },
        }
    }
}

/// Ordering for `< <= > >=`: numbers with numbers, strings with strings, else `None`.
pub(crate) fn order(a: ValueRef<'_>, b: ValueRef<'_>) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return Some(x.cmp(y));
    }
    match (a.as_json(), b.as_json()) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => num_cmp(x, y),
        _ => None,
    }
}

/// Payloads parsed by serde_json are at most 128 levels deep; stay below anyway.
const MAX_EQ_DEPTH: usize = 256;

/// JSON equality where numbers compare by value (`1 == 1.0`) and arrays/objects compare
/// element-wise.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    json_eq_at(a, b, 0)
}

fn json_eq_at(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_EQ_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq_at(p, q, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq_at(v, w, depth + 1)))
        }
        _ => false,
    }
}

fn as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// 2^127 as f64: floats at or beyond this are outside i128.
const I128_EDGE: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

/// Exact comparison of two JSON numbers, including u64 vs i64 vs f64.
pub(crate) fn num_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => cmp_int_float(x, b.as_f64()?),
        (None, Some(y)) => cmp_int_float(y, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= I128_EDGE {
        return Some(Ordering::Less);
    }
    if f < -I128_EDGE {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range, so the cast is exact for the integral part.
    let whole_int = whole as i128;
    match i.cmp(&whole_int) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

/// A hashable key under which equal numbers collide: `1`, `1.0` and `1e0` share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NumKey {
    Int(i128),
    Float(u64),
}

impl NumKey {
    pub(crate) fn of(n: &Number) -> Option<NumKey> {
        if let Some(i) = as_int(n) {
            return Some(NumKey::Int(i));
        }
        let f = n.as_f64()?;
        if f.fract() == 0.0 && f > -I128_EDGE && f < I128_EDGE {
            Some(NumKey::Int(f as i128))
        } else {
            Some(NumKey::Float(f.to_bits()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn numbers_compare_exactly_across_representations() {
        assert_eq!(num_cmp(&n("1"), &n("1.0")), Some(Ordering::Equal));
        assert_eq!(
            num_cmp(&n("18446744073709551615"), &n("18446744073709551614")),
            Some(Ordering::Greater)
        );
        assert_eq!(
            num_cmp(&n("18446744073709551615"), &n("1.8446744073709552e19")),
            Some(Ordering::Less)
        );
        assert_eq!(
            num_cmp(&n("-9223372036854775808"), &n("18446744073709551615")),
            Some(Ordering::Less)
        );
        assert_eq!(num_cmp(&n("2"), &n("2.5")), Some(Ordering::Less));
        assert_eq!(num_cmp(&n("-2"), &n("-2.5")), Some(Ordering::Greater));
        assert_eq!(num_cmp(&n("1e308"), &n("5")), Some(Ordering::Greater));
        assert_eq!(NumKey::of(&n("1.0")), NumKey::of(&n("1")));
        assert_ne!(NumKey::of(&n("1.5")), NumKey::of(&n("1")));
    }
}

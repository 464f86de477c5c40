//! The exact size of a JSON value as `serde_json` writes it compactly, without writing
//! it: what the output limit and the write budget are measured in.

use std::fmt::{self, Write as _};

use gatepulse_filter_dsl::ValueRef;
use serde_json::{Number, Value};

/// Bytes of `serde_json::to_vec(v)`.
pub(crate) fn json_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => number_len(n),
        Value::String(s) => str_len(s),
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(json_len).sum::<usize>()
        }
        Value::Object(map) => {
            2 + map.len().saturating_sub(1)
                + map
                    .iter()
                    .map(|(k, v)| str_len(k) + 1 + json_len(v))
                    .sum::<usize>()
        }
    }
}

pub(crate) fn ref_len(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Json(v) => json_len(v),
        ValueRef::Str(s) => str_len(s),
    }
}

/// A JSON string with its quotes and escapes (serde_json escapes `"`, `\` and control
/// characters; `\b \t \n \f \r` take two bytes, the others six).
fn str_len(s: &str) -> usize {
    // Most strings need no escape; this count vectorises, the exact one below does not.
    let special = s
        .bytes()
        .filter(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .count();
    if special == 0 {
        return s.len() + 2;
    }
    let extra: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0x00..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len() + extra + 2
}

fn number_len(n: &Number) -> usize {
    if let Some(u) = n.as_u64() {
        return digits(u);
    }
    if let Some(i) = n.as_i64() {
        return 1 + digits(i.unsigned_abs());
    }
    // Floats: serde_json's Display and serializer both use ryu.
    let mut counter = Counter(0);
    let _ = write!(counter, "{n}");
    counter.0
}

fn digits(mut u: u64) -> usize {
    let mut n = 1;
    while u >= 10 {
        u /= 10;
        n += 1;
    }
    n
}

struct Counter(usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_serde_json_exactly() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(1e300),
            json!(-0.0),
            json!(100.0),
            json!("plain"),
            json!("quote\" back\\ nl\n tab\t bell\u{7} del\u{7f} é 🎉"),
            json!([]),
            json!({}),
            json!([1, "a", null, [true], {"k": {"x\"y": []}}]),
        ] {
            assert_eq!(json_len(&v), serde_json::to_vec(&v).unwrap().len(), "{v}");
        }
    }
}

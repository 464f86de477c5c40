//! Dotted paths into JSON values: `customer.address.city`, `items.0.sku`. Object keys
//! are split on `.` (so keys containing a dot cannot be named); a segment that is a
//! number indexes an array.

use serde_json::Value;

/// The value at `path` under `value`; the empty path is `value` itself.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |at, segment| match at {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_walks_objects_and_array_indexes() {
        let doc = json!({"a": {"b": [10, {"c": "x"}]}, "n": null});
        let cases = [
            ("", Some(&doc)),
            ("a.b.0", Some(&json!(10))),
            ("a.b.1.c", Some(&json!("x"))),
            ("n", Some(&Value::Null)),
            ("a.b.2", None),
            ("a.b.x", None),
            ("a.missing", None),
            ("a.b.0.deeper", None),
        ];
        for (path, want) in cases {
            assert_eq!(lookup(&doc, path), want, "path {path:?}");
        }
    }
}

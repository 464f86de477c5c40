//! Fuzz target: compile arbitrary text; when it compiles, evaluate it against a payload
//! taken from the rest of the input and check the canonical form re-parses unchanged.
//!
//! Input layout: `<expression> NUL <JSON payload>` (the payload part is optional).

#![no_main]

use gatepulse_filter_dsl::{Event, Filter, Limits, Meta};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (src, payload_text) = text.split_once('\0').unwrap_or((text, "{}"));
    let limits = Limits::default();
    let Ok(filter) = Filter::compile(src, &limits) else {
        return;
    };

    let payload: Value = serde_json::from_str(payload_text).unwrap_or(Value::Null);
    let headers = vec![("X-Forwarded-For".to_string(), "10.0.0.1".to_string())];
    let event = Event::new("orders.created", &payload)
        .with_headers(&headers)
        .with_meta(Meta {
            id: Some("evt_1"),
            time: Some("2026-11-26T10:00:00Z"),
            source: None,
        });
    let verdict = filter.matches(&event);

    // The canonical form may be longer (spacing, `1e3` → `1000.0`) and may add a
    // parenthesis after `!`, so re-parse it with room to spare; the tree must be equal.
    let printed = filter.to_string();
    let roomy = Limits {
        max_source_len: limits.max_source_len * 8,
        max_depth: limits.max_depth + 8,
        ..limits
    };
    let again = Filter::compile(&printed, &roomy).expect("canonical form compiles");
    assert_eq!(
        again.ast(),
        filter.ast(),
        "canonical form {printed:?} re-parsed differently"
    );
    assert_eq!(again.matches(&event), verdict);
});

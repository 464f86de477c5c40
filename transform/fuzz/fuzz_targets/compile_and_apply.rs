//! Fuzz target: compile arbitrary JSON as a mapping spec; when it compiles, apply it to
//! a payload taken from the rest of the input, with small limits, and check the
//! promises: no panic, the three apply paths agree, and an unlimited output fits
//! `max_output_bytes`.
//!
//! Input layout: `<spec JSON> NUL <payload JSON>` (the payload part is optional).

#![no_main]

use gatepulse_transform::{Context, Mapping, MappingLimits, Meta};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (spec_text, payload_text) = text.split_once('\0').unwrap_or((text, "{}"));
    let Ok(spec) = serde_json::from_str::<Value>(spec_text) else {
        return;
    };
    let limits = MappingLimits {
        max_output_bytes: 4096,
        max_steps: 2_000,
        max_value_bytes: 1024,
        max_array_len: 50,
        ..MappingLimits::default()
    };
    let mapping = match Mapping::compile(&spec, &limits) {
        Ok(m) => m,
        Err(e) => {
            // Every error names a field of the spec and says something.
            assert!(e.pointer().is_empty() || e.pointer().starts_with('/'));
            assert!(!e.message().is_empty());
            return;
        }
    };
    let payload: Value = serde_json::from_str(payload_text).unwrap_or(Value::Null);
    let ctx = Context::new("orders.created").with_meta(Meta {
        id: Some("evt_1"),
        time: Some("2026-11-26T10:00:00Z"),
        source: None,
    });
    let out = mapping.apply(&payload, &ctx);
    let (explained, _) = mapping.explain(&payload, &ctx);
    assert_eq!(explained, out);
    match mapping.apply_to_vec(payload, &ctx) {
        Ok(body) => {
            assert!(out.limited.is_none());
            assert!(body.len() <= limits.max_output_bytes);
            assert_eq!(body, serde_json::to_vec(&out.value).expect("a Value serializes"));
        }
        Err(limited) => assert_eq!(Some(limited.kind), out.limited.map(|l| l.kind)),
    }
});

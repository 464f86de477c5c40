//! Property tests: applying never panics and never exceeds its limits, whatever the
//! payload and the (valid) spec; and the ops keep their promises — a removed path is
//! gone, a rename moves the value unchanged, a copy duplicates it, a set can be read
//! back, keep only keeps what was there, the output size check is exact.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000` for a long run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatepulse_transform::{Context, Mapping, MappingLimits, Meta, OpStatus};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

const KEYS: [&str; 5] = ["a", "b", "c", "items", "k y"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(str::to_string)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        "[a-zA-Z0-9 @.\"\\\\\n\u{1}é]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// A path below a root, as segments (key or index) and as text.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segs() -> impl Strategy<Value = Vec<Seg>> {
    prop::collection::vec(
        prop_oneof![3 => key().prop_map(Seg::Key), 1 => (0usize..3).prop_map(Seg::Index)],
        1..4,
    )
}

fn key_segs() -> impl Strategy<Value = Vec<Seg>> {
    prop::collection::vec(key().prop_map(Seg::Key), 1..4)
}

fn text(root: &str, segs: &[Seg]) -> String {
    let mut out = root.to_string();
    for s in segs {
        match s {
            Seg::Key(k) if k.contains(' ') => out.push_str(&format!("[{}]", json!(k))),
            Seg::Key(k) => out.push_str(&format!(".{k}")),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn get<'a>(v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for s in segs {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

const EXPRS: [&str; 16] = [
    "payload.a",
    "payload.a + 1",
    "lower(payload.b)",
    "sha256(payload.a)",
    "concat(payload.a, \"-\", payload.b)",
    "template(\"{payload.a}/{payload.items}\")",
    "len(payload.items)",
    "payload.a * payload.b / 3",
    "to_number(payload.c)",
    "to_string(payload)",
    "coalesce(payload.a, payload.b, 0)",
    "if(payload.a > 1, payload.b, payload.c)",
    "split(to_string(payload.a), \"1\")",
    "format_time(payload.a, \"%Y-%m-%d\")",
    "round(payload.a, 2)",
    "join(payload.items, \",\")",
];

const CONDS: [&str; 6] = [
    "payload.a > 1",
    "exists(payload.b)",
    "payload.a",
    "any(payload.items, it == 1)",
    "lower(to_string(payload.c)) starts_with \"a\"",
    "!payload.b",
];

const ELEM_EXPRS: [&str; 5] = [
    "it",
    "it.a",
    "concat(it.a, payload.b)",
    "it * 2",
    "to_string(it)",
];

const ELEM_CONDS: [&str; 4] = [
    "it.a > 0",
    "it == 1",
    "exists(it.b)",
    "type_of(it) == \"object\"",
];

fn when() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(CONDS.to_vec()).prop_map(|c| Some(c.to_string())),
    ]
}

/// A valid op at the top level (or inside a map, with `it` as the root).
fn op(element: bool) -> BoxedStrategy<Value> {
    let root = if element { "it" } else { "payload" };
    let path = segs().prop_map(move |s| text(root, &s)).boxed();
    let expr = if element {
        prop::sample::select(ELEM_EXPRS.to_vec()).boxed()
    } else {
        prop::sample::select(EXPRS.to_vec()).boxed()
    };
    let with_when = move |mut op: Value, when: Option<String>| {
        if let Some(w) = when
            && !element
        {
            op["when"] = json!(w);
        }
        op
    };
    let leaf = prop_oneof![
        (path.clone(), json_value(), when())
            .prop_map(move |(p, v, w)| with_when(json!({"op": "set", "path": p, "value": v}), w)),
        (path.clone(), expr.clone(), when())
            .prop_map(move |(p, e, w)| with_when(json!({"op": "set", "path": p, "expr": e}), w)),
        (path.clone(), json_value(), when()).prop_map(move |(p, v, w)| with_when(
            json!({"op": "default", "path": p, "value": v}),
            w
        )),
        (path.clone(), path.clone(), when())
            .prop_map(move |(f, t, w)| with_when(json!({"op": "rename", "from": f, "to": t}), w)),
        (path.clone(), path.clone(), when())
            .prop_map(move |(f, t, w)| with_when(json!({"op": "copy", "from": f, "to": t}), w)),
        (prop::collection::vec(path.clone(), 1..3), when())
            .prop_map(move |(ps, w)| with_when(json!({"op": "remove", "paths": ps}), w)),
        (
            prop::collection::vec(prop::collection::vec(key(), 1..3), 1..3),
            when()
        )
            .prop_map(move |(ks, w)| {
                let paths: Vec<String> = ks
                    .iter()
                    .map(|k| {
                        let s: Vec<Seg> = k.iter().cloned().map(Seg::Key).collect();
                        text(root, &s)
                    })
                    .collect();
                with_when(json!({"op": "keep", "paths": paths}), w)
            }),
        (
            path.clone(),
            prop::collection::vec(path.clone(), 1..3),
            when()
        )
            .prop_map(move |(p, f, w)| with_when(
                json!({"op": "coalesce", "path": p, "from": f}),
                w
            )),
    ];
    if element {
        return leaf.boxed();
    }
    let path = segs().prop_map(|s| text("payload", &s)).boxed();
    prop_oneof![
        6 => leaf,
        1 => (path.clone(), prop::collection::vec(op(true), 1..4), when())
            .prop_map(move |(p, ops, w)| with_when(json!({"op": "map", "path": p, "ops": ops}), w)),
        1 => (path, prop::sample::select(ELEM_CONDS.to_vec()), when())
            .prop_map(move |(p, c, w)| with_when(json!({"op": "filter", "path": p, "where": c}), w)),
    ]
    .boxed()
}

fn spec() -> impl Strategy<Value = Value> {
    prop::collection::vec(op(false), 0..8).prop_map(|ops| json!({"version": 1, "ops": ops}))
}

fn ctx() -> Context<'static> {
    Context::new("orders.created").with_meta(Meta {
        id: Some("evt_1"),
        time: Some("2026-11-26T10:00:00Z"),
        source: None,
    })
}

fn compile(spec: &Value, limits: &MappingLimits) -> Mapping {
    Mapping::compile(spec, limits)
        .unwrap_or_else(|e| panic!("generated spec did not compile: {e}\n{spec:#}"))
}

proptest! {
    #![proptest_config(config())]

    /// Any valid spec on any payload: no panic, deterministic, and either within
    /// max_output_bytes or reported as limited.
    #[test]
    fn apply_never_panics_and_stays_within_its_limits(
        spec in spec(),
        payload in json_value(),
        max_output in 16usize..2048,
        max_steps in 1u64..400,
        max_array in 0usize..4,
    ) {
        let limits = MappingLimits {
            max_output_bytes: max_output,
            max_steps,
            max_array_len: max_array,
            max_value_bytes: 256,
            ..MappingLimits::default()
        };
        let Ok(mapping) = Mapping::compile(&spec, &limits) else {
            // Only `rename`/`copy` onto their own path are refused among generated specs.
            return Ok(());
        };
        let ctx = ctx();
        let out = mapping.apply(&payload, &ctx);
        let bytes = serde_json::to_vec(&out.value).unwrap().len();
        if out.limited.is_none() {
            prop_assert!(bytes <= max_output, "{bytes} > {max_output}");
        }
        prop_assert_eq!(&mapping.apply(&payload, &ctx), &out);
        match mapping.apply_to_vec(payload.clone(), &ctx) {
            Ok(bytes) => {
                prop_assert!(out.limited.is_none());
                prop_assert!(bytes.len() <= max_output);
                prop_assert_eq!(bytes, serde_json::to_vec(&out.value).unwrap());
            }
            Err(limited) => prop_assert_eq!(Some(limited.kind), out.limited.as_ref().map(|l| l.kind)),
        }
        let (explained, report) = mapping.explain(&payload, &ctx);
        prop_assert_eq!(&explained, &out);
        prop_assert!(report.len() <= spec["ops"].as_array().unwrap().len());
    }

    /// With default limits, small payloads and specs never hit a limit.
    #[test]
    fn default_limits_leave_small_mappings_alone(spec in spec(), payload in json_value()) {
        let Ok(mapping) = Mapping::compile(&spec, &MappingLimits::default()) else {
            return Ok(());
        };
        let out = mapping.apply(&payload, &ctx());
        prop_assert!(out.limited.is_none(), "{:?}", out.limited);
    }

    /// The output size check is exact: an output of exactly max_output_bytes passes,
    /// one byte less fails.
    #[test]
    fn output_size_is_measured_exactly(payload in json_value()) {
        let len = serde_json::to_vec(&payload).unwrap().len();
        let spec = json!({"version": 1, "ops": []});
        let exact = MappingLimits { max_output_bytes: len, ..MappingLimits::default() };
        let out = compile(&spec, &exact).apply(&payload, &ctx());
        prop_assert!(out.limited.is_none());
        prop_assert_eq!(&out.value, &payload);
        let under = MappingLimits { max_output_bytes: len - 1, ..MappingLimits::default() };
        let out = compile(&spec, &under).apply(&payload, &ctx());
        prop_assert_eq!(out.limited.map(|l| l.kind.code()), Some("output_too_large"));
        prop_assert_eq!(out.value, Value::Null);
    }

    /// After `remove`, the path is missing — as seen by the output and by expressions.
    /// (Object keys only: removing an array element moves the next one into its place.)
    #[test]
    fn remove_then_get_is_missing(payload in json_value(), path in key_segs()) {
        let p = text("payload", &path);
        let spec = json!({"version": 1, "ops": [
            {"op": "remove", "path": p},
            {"op": "set", "path": "payload.__probe", "expr": format!("exists({p})")},
        ]});
        let out = compile(&spec, &MappingLimits::default()).apply(&payload, &ctx());
        let mut value = out.value;
        let probe = value.as_object_mut().and_then(|m| m.remove("__probe"));
        // The probe is written unless the payload is not an object.
        if payload.is_object() {
            prop_assert_eq!(probe, Some(json!(false)));
        }
        prop_assert!(get(&value, &path).is_none());
    }

    /// `rename` moves the value unchanged and leaves nothing at `from`.
    #[test]
    fn rename_preserves_the_value(payload in object(), from in segs()) {
        let before = get(&payload, &from).cloned();
        let spec = json!({"version": 1, "ops": [
            {"op": "rename", "from": text("payload", &from), "to": "payload.__moved"},
        ]});
        let (out, report) = compile(&spec, &MappingLimits::default()).explain(&payload, &ctx());
        match before {
            Some(v) => {
                prop_assert_eq!(report[0].status, OpStatus::Applied);
                prop_assert_eq!(out.value.get("__moved"), Some(&v));
            }
            None => {
                prop_assert_eq!(report[0].status.code(), "skipped_missing");
                prop_assert_eq!(&out.value, &payload);
            }
        }
    }

    /// `copy` leaves the source alone and puts an equal value at `to`.
    #[test]
    fn copy_duplicates_the_value(payload in object(), from in segs()) {
        let before = get(&payload, &from).cloned();
        let spec = json!({"version": 1, "ops": [
            {"op": "copy", "from": text("payload", &from), "to": "payload.__copy"},
        ]});
        let out = compile(&spec, &MappingLimits::default()).apply(&payload, &ctx());
        prop_assert_eq!(out.value.get("__copy").cloned(), before.clone());
        if let Some(v) = before {
            prop_assert_eq!(get(&out.value, &from), Some(&v));
        }
    }

    /// A `set` that applied can be read back at its path; one that did not changed
    /// nothing.
    #[test]
    fn set_then_get(payload in json_value(), path in segs(), v in json_value()) {
        let spec = json!({"version": 1, "ops": [
            {"op": "set", "path": text("payload", &path), "value": v},
        ]});
        let (out, report) = compile(&spec, &MappingLimits::default()).explain(&payload, &ctx());
        if report[0].status == OpStatus::Applied {
            prop_assert_eq!(get(&out.value, &path), Some(&v));
        } else {
            prop_assert_eq!(report[0].status.code(), "skipped_blocked");
            prop_assert_eq!(&out.value, &payload);
        }
    }

    /// `keep` only keeps values that were in the input, at the same place, and every
    /// listed path that existed is still there.
    #[test]
    fn keep_is_a_projection(payload in json_value(), paths in prop::collection::vec(prop::collection::vec(key(), 1..3), 1..4)) {
        let segs: Vec<Vec<Seg>> = paths.iter().map(|p| p.iter().cloned().map(Seg::Key).collect()).collect();
        let texts: Vec<String> = segs.iter().map(|s| text("payload", s)).collect();
        let spec = json!({"version": 1, "ops": [{"op": "keep", "paths": texts}]});
        let out = compile(&spec, &MappingLimits::default()).apply(&payload, &ctx());
        for s in &segs {
            prop_assert_eq!(get(&out.value, s), get(&payload, s));
        }
        fn within(out: &Value, input: &Value) -> bool {
            match (out, input) {
                (Value::Object(o), Value::Object(i)) => o.iter().all(|(k, v)| i.get(k).is_some_and(|w| within(v, w))),
                _ => out == input,
            }
        }
        let empty = json!({});
        prop_assert!(out.value == empty || within(&out.value, &payload));
    }
}

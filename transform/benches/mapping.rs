//! Cost of mapping ops on a ~1 KB event (criterion).
//!
//! Run: `cargo bench -p gatepulse-transform -- --warm-up-time 1 --measurement-time 3`.
//! Target on one core: a top-level op ≤ 200 ns. Each `x20/…` case applies a mapping of
//! twenty ops of one kind with `apply_owned` to a fresh copy of the payload made just
//! before, outside the timing (and dropped outside it), one iteration per timing so
//! the copy is warm in cache as a freshly parsed payload would be. `x20/none` is the
//! same with no op — what every apply costs besides its ops (measuring the output
//! size, plus the timer) — so one op costs (case − `x20/none`) / 20.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gatepulse_transform::{Context, Mapping, MappingLimits, Meta};
use serde_json::{Value, json};

/// A ~1 KB order event.
fn payload() -> Value {
    json!({
        "id": "ord_01HZX3K9Q8W7E6R5T4Y3U2I1O0",
        "type": "order.created",
        "created_at": "2026-11-26T10:00:00Z",
        "amount_cents": 25990,
        "currency": null,
        "status": "paid",
        "customer": {
            "id": "cus_8f2b1c",
            "email": "  Alice.Smith@Example.com ",
            "full_name": null,
            "first_name": "Alice",
            "last_name": "Smith",
            "phone": "+41 44 000 00 00",
            "ssn": "123-45-6789",
            "address": {"line1": "Bahnhofstrasse 1", "city": "Zürich", "zip": "8001", "country": "CH"}
        },
        "items": [
            {"sku": "SKU-0001", "name": "Widget", "qty": 2, "unit_cents": 9995},
            {"sku": "SKU-0002", "name": "Gadget", "qty": 1, "unit_cents": 6000},
            {"sku": "PROMO", "name": "Gift", "qty": 1, "unit_cents": 0}
        ],
        "shipping": {"method": "express", "cents": 0, "eta_days": 2},
        "metadata": {"campaign": "black-friday", "channel": "web", "ab_bucket": "B", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "internal": {"risk_score": 12, "reviewed_by": null, "notes": "none"},
        "client": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},
        "tags": ["vip", "newsletter"]
    })
}

const REALISTIC: &str = r#"{"version": 1, "ops": [
  {"op": "set", "path": "payload.customer.email_hash", "expr": "sha256(lower(trim(payload.customer.email)))"},
  {"op": "remove", "paths": ["payload.customer.email", "payload.customer.ssn", "payload.customer.phone", "payload.internal"]},
  {"op": "coalesce", "path": "payload.customer.name", "from": ["payload.customer.full_name", "payload.customer.first_name"]},
  {"op": "rename", "from": "payload.amount_cents", "to": "payload.amount.cents"},
  {"op": "set", "path": "payload.amount.value", "expr": "payload.amount.cents / 100"},
  {"op": "default", "path": "payload.currency", "value": "EUR"},
  {"op": "filter", "path": "payload.items", "where": "it.unit_cents > 0"},
  {"op": "map", "path": "payload.items", "ops": [{"op": "set", "path": "it.line_cents", "expr": "it.qty * it.unit_cents"}]},
  {"op": "set", "path": "payload.express", "value": true, "when": "payload.shipping.method == \"express\""},
  {"op": "keep", "paths": ["payload.id", "payload.type", "payload.amount", "payload.currency", "payload.customer", "payload.items", "payload.express"]}
]}"#;

fn mapping(ops: Value) -> Mapping {
    Mapping::compile(
        &json!({"version": 1, "ops": ops}),
        &MappingLimits::default(),
    )
    .unwrap()
}

/// Twenty leaf paths of `payload()`, for `remove` ×20.
const LEAVES: [&str; 20] = [
    "id",
    "type",
    "created_at",
    "amount_cents",
    "currency",
    "status",
    "customer.id",
    "customer.email",
    "customer.full_name",
    "customer.first_name",
    "customer.last_name",
    "customer.phone",
    "customer.ssn",
    "customer.address.line1",
    "customer.address.city",
    "customer.address.zip",
    "customer.address.country",
    "shipping.method",
    "shipping.cents",
    "shipping.eta_days",
];

/// `n` ops made by `f(i)`.
fn times(n: usize, f: impl Fn(usize) -> Value) -> Value {
    Value::Array((0..n).map(f).collect())
}

fn bench_ops(c: &mut Criterion) {
    let payload = payload();
    assert!((900..1300).contains(&serde_json::to_vec(&payload).unwrap().len()));
    let ctx = Context::new("orders.created").with_meta(Meta {
        id: Some("evt_1"),
        time: Some("2026-11-26T10:00:00Z"),
        source: None,
    });

    // `x20/…`: twenty ops of one kind in one mapping, so that the cost of one op is
    // (time − `x20/none`) / 20, with the fixed cost of an apply and the timer's noise
    // spread over twenty.
    let n = 20;
    let cases = [
        ("x20/none", json!([])),
        (
            "x20/set_literal_new_field",
            times(
                n,
                |i| json!({"op": "set", "path": format!("payload.f{i}"), "value": "shop"}),
            ),
        ),
        (
            "x20/set_literal_overwrite",
            times(
                n,
                |_| json!({"op": "set", "path": "payload.status", "value": "settled"}),
            ),
        ),
        (
            "x20/set_literal_nested_new",
            times(
                n,
                |i| json!({"op": "set", "path": format!("payload.customer.address.f{i}"), "value": 1}),
            ),
        ),
        (
            "x20/rename",
            times(n, |i| {
                if i % 2 == 0 {
                    json!({"op": "rename", "from": "payload.amount_cents", "to": "payload.amount"})
                } else {
                    json!({"op": "rename", "from": "payload.amount", "to": "payload.amount_cents"})
                }
            }),
        ),
        (
            "x20/rename_nested",
            times(n, |i| {
                if i % 2 == 0 {
                    json!({"op": "rename", "from": "payload.customer.address.city", "to": "payload.city"})
                } else {
                    json!({"op": "rename", "from": "payload.city", "to": "payload.customer.address.city"})
                }
            }),
        ),
        (
            "x20/remove",
            times(
                n,
                |i| json!({"op": "remove", "path": format!("payload.{}", LEAVES[i])}),
            ),
        ),
        (
            "x20/copy",
            times(
                n,
                |i| json!({"op": "copy", "from": "payload.customer.id", "to": format!("payload.c{i}")}),
            ),
        ),
        (
            "x20/default_present",
            times(
                n,
                |_| json!({"op": "default", "path": "payload.status", "value": "new"}),
            ),
        ),
        (
            "x20/set_when_false",
            times(
                n,
                |_| json!({"op": "set", "path": "payload.x", "value": 1, "when": "payload.status == \"refunded\""}),
            ),
        ),
        (
            "x20/set_expr_arith",
            times(
                n,
                |i| json!({"op": "set", "path": format!("payload.a{i}"), "expr": "payload.amount_cents / 100"}),
            ),
        ),
        (
            "x20/set_expr_template",
            times(
                n,
                |i| json!({"op": "set", "path": format!("payload.t{i}"), "expr": "template(\"Order {payload.id} ({payload.status})\")"}),
            ),
        ),
        (
            "x20/set_expr_sha256",
            times(
                n,
                |i| json!({"op": "set", "path": format!("payload.h{i}"), "expr": "sha256(lower(trim(payload.customer.email)))"}),
            ),
        ),
        (
            "x1/keep",
            json!([{"op": "keep", "paths": ["payload.id", "payload.amount_cents", "payload.customer.id"]}]),
        ),
        (
            "x1/map_3_elements",
            json!([{"op": "map", "path": "payload.items", "ops": [{"op": "set", "path": "it.line_cents", "expr": "it.qty * it.unit_cents"}]}]),
        ),
        (
            "x1/filter_3_elements",
            json!([{"op": "filter", "path": "payload.items", "where": "it.unit_cents > 0"}]),
        ),
    ];
    for (name, ops) in cases {
        let m = mapping(ops);
        let (out, report) = m.explain(&payload, &ctx);
        assert!(!out.is_limited(), "{name}");
        assert!(
            report.iter().all(|r| r.status.code() == "applied")
                || name.contains("present")
                || name.contains("when_false"),
            "{name}: {report:?}"
        );
        c.bench_function(name, |b| {
            b.iter_batched(
                || payload.clone(),
                |p| black_box(&m).apply_owned(p, black_box(&ctx)),
                BatchSize::PerIteration,
            )
        });
    }

    let spec: Value = serde_json::from_str(REALISTIC).unwrap();
    let realistic = Mapping::compile(&spec, &MappingLimits::default()).unwrap();
    let out = realistic.apply(&payload, &ctx);
    assert!(!out.is_limited());
    assert_eq!(out.value["items"].as_array().map(Vec::len), Some(2));
    let none = mapping(json!([]));
    c.bench_function("mapping/realistic_10_ops", |b| {
        b.iter_batched(
            || payload.clone(),
            |p| black_box(&realistic).apply_owned(p, black_box(&ctx)),
            BatchSize::PerIteration,
        )
    });
    // The delivery path end to end (the payload copy made outside the timing): apply,
    // write the body, drop the document.
    for (name, m) in [("none", &none), ("realistic_10_ops", &realistic)] {
        c.bench_function(&format!("body/{name}/apply_owned+to_vec"), |b| {
            b.iter_batched(
                || payload.clone(),
                |p| {
                    let out = black_box(m).apply_owned(p, black_box(&ctx));
                    serde_json::to_vec(&out.value).unwrap()
                },
                BatchSize::PerIteration,
            )
        });
        c.bench_function(&format!("body/{name}/apply_to_vec"), |b| {
            b.iter_batched(
                || payload.clone(),
                |p| black_box(m).apply_to_vec(p, black_box(&ctx)).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    c.bench_function("mapping/realistic_10_ops_with_copy", |b| {
        b.iter(|| black_box(&realistic).apply(black_box(&payload), black_box(&ctx)))
    });
    c.bench_function("payload/clone_1kb", |b| {
        b.iter_batched(
            || (),
            |()| black_box(&payload).clone(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("compile/realistic_10_ops", |b| {
        b.iter(|| Mapping::compile(black_box(&spec), &MappingLimits::default()).unwrap())
    });
}

criterion_group!(benches, bench_ops);
criterion_main!(benches);

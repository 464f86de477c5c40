//! Cost of mapping ops on a ~1 KB event (criterion).
//!
//! Run: `cargo bench -p gatepulse-transform -- --warm-up-time 1 --measurement-time 3`.
//! Target on one core: a top-level op ≤ 200 ns. Each `op/…` case applies a one-op
//! mapping with `apply_owned` to a fresh copy of the payload made outside the timing
//! (and dropped outside it); `op/none` is the same with no op — what every apply costs
//! on top of its ops (mostly measuring the output size) — so an op costs its case minus
//! `op/none`.

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
        "internal": {"risk_score": 12, "reviewed_by": null, "notes": "none"}
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

fn bench_ops(c: &mut Criterion) {
    let payload = payload();
    assert!((900..1300).contains(&serde_json::to_vec(&payload).unwrap().len()));
    let ctx = Context::new("orders.created").with_meta(Meta {
        id: Some("evt_1"),
        time: Some("2026-11-26T10:00:00Z"),
        source: None,
    });

    let cases = [
        ("op/none", json!([])),
        (
            "op/set_literal",
            json!([{"op": "set", "path": "payload.source", "value": "shop"}]),
        ),
        (
            "op/set_literal_overwrite",
            json!([{"op": "set", "path": "payload.status", "value": "settled"}]),
        ),
        (
            "op/rename",
            json!([{"op": "rename", "from": "payload.amount_cents", "to": "payload.amount"}]),
        ),
        (
            "op/rename_nested",
            json!([{"op": "rename", "from": "payload.amount_cents", "to": "payload.amount.cents"}]),
        ),
        (
            "op/remove",
            json!([{"op": "remove", "path": "payload.customer.ssn"}]),
        ),
        (
            "op/copy",
            json!([{"op": "copy", "from": "payload.customer.id", "to": "payload.customer_id"}]),
        ),
        (
            "op/default_present",
            json!([{"op": "default", "path": "payload.status", "value": "new"}]),
        ),
        (
            "op/set_when_false",
            json!([{"op": "set", "path": "payload.x", "value": 1, "when": "payload.status == \"refunded\""}]),
        ),
        (
            "op/set_expr_arith",
            json!([{"op": "set", "path": "payload.amount", "expr": "payload.amount_cents / 100"}]),
        ),
        (
            "op/set_expr_template",
            json!([{"op": "set", "path": "payload.title", "expr": "template(\"Order {payload.id} ({payload.status})\")"}]),
        ),
        (
            "op/set_expr_sha256",
            json!([{"op": "set", "path": "payload.customer.email_hash", "expr": "sha256(lower(trim(payload.customer.email)))"}]),
        ),
        (
            "op/keep",
            json!([{"op": "keep", "paths": ["payload.id", "payload.amount_cents", "payload.customer.id"]}]),
        ),
        (
            "op/map_3_elements",
            json!([{"op": "map", "path": "payload.items", "ops": [{"op": "set", "path": "it.line_cents", "expr": "it.qty * it.unit_cents"}]}]),
        ),
        (
            "op/filter_3_elements",
            json!([{"op": "filter", "path": "payload.items", "where": "it.unit_cents > 0"}]),
        ),
    ];
    for (name, ops) in cases {
        let m = mapping(ops);
        assert!(!m.apply(&payload, &ctx).is_limited(), "{name}");
        c.bench_function(name, |b| {
            b.iter_batched(
                || payload.clone(),
                |p| black_box(&m).apply_owned(p, black_box(&ctx)),
                BatchSize::SmallInput,
            )
        });
    }

    let spec: Value = serde_json::from_str(REALISTIC).unwrap();
    let realistic = Mapping::compile(&spec, &MappingLimits::default()).unwrap();
    let out = realistic.apply(&payload, &ctx);
    assert!(!out.is_limited());
    assert_eq!(out.value["items"].as_array().map(Vec::len), Some(2));
    c.bench_function("mapping/realistic_10_ops", |b| {
        b.iter_batched(
            || payload.clone(),
            |p| black_box(&realistic).apply_owned(p, black_box(&ctx)),
            BatchSize::SmallInput,
        )
    });
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

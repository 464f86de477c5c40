//! Evaluation and compile cost of typical filters (criterion).
//!
//! Run: `cargo bench -p gatepulse-filter-dsl -- --warm-up-time 1 --measurement-time 3`.
//! Targets on one core: simple comparison ≤ 100 ns, 4-clause ≤ 300 ns, 1,000 filters on
//! one event ≤ 100 µs.

// Bench code: setup may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gatepulse_filter_dsl::{Event, Filter, Limits, Meta};
use serde_json::{Value, json};

const FOUR_CLAUSES: &str = r#"topic == "orders.created" && payload.amount > 100 && payload.currency in ["USD", "EUR"] && payload.customer.email ends_with "@example.com""#;

fn payload() -> Value {
    let items: Vec<Value> = (0..100)
        .map(|i| json!({ "sku": format!("SKU-{i}"), "qty": i % 5, "price": i as f64 * 1.5 }))
        .collect();
    json!({
        "amount": 250,
        "currency": "USD",
        "status": "paid",
        "sku": "SKU-0099",
        "customer": { "email": "alice@example.com", "tier": "tier-7", "country": "DE" },
        "items": items,
    })
}

fn compile(src: &str) -> Filter {
    Filter::compile(src, &Limits::default()).unwrap()
}

fn bench_eval(c: &mut Criterion) {
    let payload = payload();
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let event = Event::new("orders.created", &payload)
        .with_headers(&headers)
        .with_meta(Meta {
            id: Some("evt_1"),
            time: Some("2026-11-26T10:00:00Z"),
            source: Some("shop"),
        });

    let simple = compile(r#"payload.currency == "USD""#);
    let four = compile(FOUR_CLAUSES);
    let list: Vec<String> = (0..100).map(|i| format!("\"SKU-{i:04}\"")).collect();
    let in_list = compile(&format!("payload.sku in [{}]", list.join(", ")));
    let regex = compile(r#"matches(payload.customer.email, "^[a-z0-9._%+-]+@example\\.com$")"#);
    let any = compile(r#"any(payload.items, it.sku == "SKU-99" && it.qty > 2)"#);
    for f in [&simple, &four, &in_list, &regex, &any] {
        assert!(f.matches(&event), "{f}");
    }

    c.bench_function("eval/simple_equality", |b| {
        b.iter(|| black_box(&simple).matches(black_box(&event)))
    });
    c.bench_function("eval/four_clauses", |b| {
        b.iter(|| black_box(&four).matches(black_box(&event)))
    });
    c.bench_function("eval/in_list_100", |b| {
        b.iter(|| black_box(&in_list).matches(black_box(&event)))
    });
    c.bench_function("eval/regex", |b| {
        b.iter(|| black_box(&regex).matches(black_box(&event)))
    });
    c.bench_function("eval/any_100_elements", |b| {
        b.iter(|| black_box(&any).matches(black_box(&event)))
    });

    // 1,000 subscriptions with varied filters, one event: the router's fan-out cost.
    let filters: Vec<Filter> = (0..1000)
        .map(|i| {
            let src = match i % 5 {
                0 => format!(r#"topic == "orders.created" && payload.amount > {i}"#),
                1 => format!(r#"payload.customer.tier == "tier-{}" || payload.status == "refunded""#, i % 10),
                2 => format!(r#"payload.currency in ["USD", "EUR", "GBP"] && payload.customer.country not in ["C{i}"]"#),
                3 => format!(r#"like(topic, "orders.*") && payload.customer.email iends_with "@example.com" && between(payload.amount, {i}, 10000)"#),
                _ => format!(r#"exists(payload.coupon) || headers["content-type"] starts_with "application/" && meta.source == "shop-{i}""#),
            };
            compile(&src)
        })
        .collect();
    c.bench_function("eval/1000_filters_one_event", |b| {
        b.iter(|| {
            black_box(&filters)
                .iter()
                .filter(|f| f.matches(black_box(&event)))
                .count()
        })
    });

    c.bench_function("compile/four_clauses", |b| {
        b.iter(|| Filter::compile(black_box(FOUR_CLAUSES), &Limits::default()).unwrap())
    });
}

criterion_group!(benches, bench_eval);
criterion_main!(benches);

//! Cost of running a plugin on a 1 KB event, fuel and epoch deadline on (the
//! defaults): on a warm instance, on a fresh instance, and instantiation alone.
//! The plugin is a minimal one that reads its input and writes it back (the ABI's
//! own cost); set `GATEPULSE_BENCH_PLUGIN=path/to/plugin.wasm` (and optionally
//! `GATEPULSE_BENCH_CONFIG='{…}'`) to measure a real plugin too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use gatepulse_plugin_host::{Host, Limits, Outcome};

const ECHO: &str = r#"(module
  (import "gatepulse_v1" "input_len" (func $input_len (result i32)))
  (import "gatepulse_v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "gatepulse_v1" "output_write" (func $output_write (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "gatepulse_transform") (result i32) (local $n i32)
    (local.set $n (call $input_len))
    (drop (call $input_read (i32.const 1024) (local.get $n)))
    (drop (call $output_write (i32.const 1024) (local.get $n)))
    (i32.const 0)))"#;

fn event_1k() -> Vec<u8> {
    let pad = "x".repeat(880);
    format!(
        r#"{{"topic":"orders.created","event_id":"evt_01M8BXTEVJ0T8AA472S0813FQ1","created_at":"2026-11-26T12:00:00.000Z","payload":{{"id":"ord_1","amount":4200,"customer":{{"email":"a@example.com"}},"note":"{pad}"}}}}"#
    )
    .into_bytes()
}

/// A ~1 KB order with many small fields (what the harness's transform scenarios
/// send): parsing it costs a plugin more than one long string does.
fn order_1k() -> Vec<u8> {
    let pad = "x".repeat(450);
    format!(
        r#"{{"topic":"orders.created","event_id":"evt_01M8BXTEVJ0T8AA472S0813FQ1","created_at":"2026-11-26T12:00:00.000Z","payload":{{"w":1,"n":7,"amount":42,"sent_us":1234567,"id":"ord_1_7","status":"paid","amount_cents":4299,"customer":{{"id":"cus_1_7","email":" Customer.7@Example.COM ","name":"Customer 7","tier":"gold","ssn":"123-45-6789","address":{{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}}}},"items":[{{"sku":"SKU-1","qty":1,"price":1250}},{{"sku":"SKU-2","qty":2,"price":800}},{{"sku":"PROMO","qty":0,"price":0}}],"data":"{pad}"}}}}"#
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let host = Host::new(Limits::default()).unwrap();
    let input = event_1k();
    assert!((1000..1100).contains(&input.len()));
    let echo = host.load(&wat::parse_str(ECHO).unwrap()).unwrap();
    assert!(matches!(
        echo.call(&input, b"{}").outcome,
        Ok(Outcome::Emit(_))
    ));
    let mut g = c.benchmark_group("plugin");
    g.bench_function("echo_1k_warm", |b| b.iter(|| echo.call(&input, b"{}")));
    g.bench_function("echo_1k_fresh_instance", |b| {
        b.iter(|| echo.call_fresh(&input, b"{}"))
    });
    g.bench_function("instantiate", |b| b.iter(|| echo.instantiate_only()));
    if let Ok(path) = std::env::var("GATEPULSE_BENCH_PLUGIN") {
        let config = std::env::var("GATEPULSE_BENCH_CONFIG").unwrap_or_else(|_| "{}".into());
        let real = host.load(&std::fs::read(&path).unwrap()).unwrap();
        let r = real.call(&input, config.as_bytes());
        assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        let name = real.meta.name.clone().unwrap_or_else(|| "plugin".into());
        g.bench_function(format!("{name}_1k_warm"), |b| {
            b.iter(|| real.call(&input, config.as_bytes()))
        });
        g.bench_function(format!("{name}_1k_fresh_instance"), |b| {
            b.iter(|| real.call_fresh(&input, config.as_bytes()))
        });
        let order = order_1k();
        assert!(real.call(&order, config.as_bytes()).outcome.is_ok());
        g.bench_function(format!("{name}_order_1k_warm"), |b| {
            b.iter(|| real.call(&order, config.as_bytes()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The sandbox against hand-written modules (WAT): the ABI round trip, every refusal
//! at load time, and every way a running plugin can misbehave, each contained and
//! named. The example and hostile plugins built from `plugins/` are exercised by the
//! end-to-end tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use gatepulse_plugin_host::{CallError, Host, Limits, LoadError, Outcome, Plugin};

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

fn host() -> Host {
    Host::new(Limits::default()).unwrap()
}

/// Reads the input to offset 1024, then runs `body` with the input length in local 0.
fn plugin(body: &str) -> String {
    format!(
        r#"(module
  (import "gatepulse_v1" "input_len" (func $input_len (result i32)))
  (import "gatepulse_v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "gatepulse_v1" "output_write" (func $output_write (param i32 i32) (result i32)))
  (import "gatepulse_v1" "error" (func $error (param i32 i32)))
  (import "gatepulse_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 0) "not json{{")
  (data (i32.const 16) "boom: bad input")
  (func (export "gatepulse_transform") (result i32) (local $n i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $n (call $input_len))
    (drop (call $input_read (i32.const 1024) (local.get $n)))
    {body}))"#
    )
}

const ECHO: &str = "(drop (call $output_write (i32.const 1024) (local.get $n))) (i32.const 0)";

#[test]
fn a_plugin_reads_its_input_and_emits_its_output() {
    let h = host();
    let p = h.load(&wasm(&plugin(ECHO))).unwrap();
    let input = br#"{"topic":"a","payload":{"x":1}}"#;
    let r = p.call(input, b"{}");
    assert_eq!(r.outcome, Ok(Outcome::Emit(input.to_vec())));
    assert!(r.fuel_used > 0);
    // The same bytes compile once: both plugins share the compiled module, each with
    // its own warm instances.
    let again = h.load(&wasm(&plugin(ECHO))).unwrap();
    assert!(p.shares_module_with(&again));
    assert!(!std::sync::Arc::ptr_eq(&p, &again));
    assert_eq!(h.cached_modules(), 1);
    assert_eq!(p.sha256.len(), 64);
}

#[test]
fn drop_pass_and_error_are_outcomes() {
    let h = host();
    let drop = h.load(&wasm(&plugin("(i32.const 1)"))).unwrap();
    assert_eq!(drop.call(b"{}", b"{}").outcome, Ok(Outcome::Drop));
    let pass = h.load(&wasm(&plugin("(i32.const 2)"))).unwrap();
    assert_eq!(pass.call(b"{}", b"{}").outcome, Ok(Outcome::Pass));
    let err = h
        .load(&wasm(&plugin(
            "(call $error (i32.const 16) (i32.const 15)) (i32.const 3)",
        )))
        .unwrap();
    assert_eq!(
        err.call(b"{}", b"{}").outcome,
        Err(CallError::Guest("boom: bad input".into()))
    );
    let odd = h.load(&wasm(&plugin("(i32.const 7)"))).unwrap();
    assert_eq!(odd.call(b"{}", b"{}").outcome, Err(CallError::BadReturn(7)));
    let not_json = h
        .load(&wasm(&plugin(
            "(drop (call $output_write (i32.const 0) (i32.const 9))) (i32.const 0)",
        )))
        .unwrap();
    let r = not_json.call(b"{}", b"{}").outcome;
    assert!(matches!(r, Err(CallError::OutputNotJson(_))), "{r:?}");
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_and_the_host_goes_on() {
    let h = host();
    let looping = h
        .load(&wasm(&plugin("(loop $l (br $l)) (i32.const 0)")))
        .unwrap();
    let r = looping.call(b"{}", b"{}");
    assert_eq!(
        r.outcome,
        Err(CallError::OutOfFuel {
            fuel: Limits::default().fuel
        })
    );
    assert_eq!(r.outcome.unwrap_err().kind(), "plugin_out_of_fuel");
    // Other plugins are unaffected.
    let echo = h.load(&wasm(&plugin(ECHO))).unwrap();
    assert_eq!(
        echo.call(b"[1]", b"{}").outcome,
        Ok(Outcome::Emit(b"[1]".to_vec()))
    );
}

/// A host whose fuel never runs out, so only the 30 ms deadline can stop the endless
/// loop it has loaded.
fn endless_loop_with_a_30ms_deadline() -> (Host, Arc<Plugin>) {
    let h = Host::new(Limits {
        fuel: u64::MAX / 4,
        deadline: Duration::from_millis(30),
        ..Limits::default()
    })
    .unwrap();
    let looping = h
        .load(&wasm(&plugin("(loop $l (br $l)) (i32.const 0)")))
        .unwrap();
    (h, looping)
}

#[test]
fn a_loop_with_unlimited_fuel_meets_the_deadline() {
    let (_host, looping) = endless_loop_with_a_30ms_deadline();
    let r = looping.call(b"{}", b"{}");
    assert_eq!(r.outcome, Err(CallError::Deadline { ms: 30 }));
    // The deadline is per call: the next call gets a fresh one.
    let r = looping.call(b"{}", b"{}");
    assert_eq!(r.outcome, Err(CallError::Deadline { ms: 30 }));
}

#[test]
fn an_idle_epoch_ticker_sleeps_and_a_call_still_meets_its_deadline() {
    let (h, looping) = endless_loop_with_a_30ms_deadline();
    // With no call running the ticker goes to sleep (after ~100 ms)...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !h.epoch_ticker_asleep() {
        assert!(
            std::time::Instant::now() < deadline,
            "the ticker never slept"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...and a call that finds it asleep wakes it: the endless loop is still cut.
    let r = looping.call(b"{}", b"{}");
    assert_eq!(r.outcome, Err(CallError::Deadline { ms: 30 }));
    // Calls after it sleeps again behave the same.
    while !h.epoch_ticker_asleep() {
        assert!(
            std::time::Instant::now() < deadline,
            "the ticker never slept again"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let echo = h.load(&wasm(&plugin(ECHO))).unwrap();
    assert_eq!(
        echo.call(b"[1]", b"{}").outcome,
        Ok(Outcome::Emit(b"[1]".to_vec()))
    );
    let r = looping.call(b"{}", b"{}");
    assert_eq!(r.outcome, Err(CallError::Deadline { ms: 30 }));
}

#[test]
fn growing_memory_past_the_cap_is_stopped() {
    let h = Host::new(Limits {
        memory_bytes: 4 << 20,
        ..Limits::default()
    })
    .unwrap();
    let bomb = h
        .load(&wasm(&plugin(
            "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable",
        )))
        .unwrap();
    let r = bomb.call(b"{}", b"{}");
    assert_eq!(r.outcome, Err(CallError::MemoryLimit { limit: 4 << 20 }));
    // A module asking for more than the cap up front is refused at load.
    let big = wasm(&plugin(ECHO).replace(
        "(memory (export \"memory\") 2)",
        "(memory (export \"memory\") 100)",
    ));
    let r = h.load(&big);
    assert!(matches!(r, Err(LoadError::MemoryTooLarge { .. })), "{r:?}");
}

#[test]
fn output_past_the_cap_stops_the_plugin() {
    let h = Host::new(Limits {
        max_output_bytes: 100_000,
        ..Limits::default()
    })
    .unwrap();
    // Writes 64 KiB chunks forever, ignoring the -1.
    let flood = h
        .load(&wasm(&plugin(
            "(loop $l (drop (call $output_write (i32.const 0) (i32.const 65536))) (br $l)) (i32.const 0)",
        )))
        .unwrap();
    let r = flood.call(b"{}", b"{}");
    assert_eq!(r.outcome, Err(CallError::OutputTooLarge { limit: 100_000 }));
}

#[test]
fn oversized_input_is_refused_before_the_call() {
    let h = Host::new(Limits {
        max_input_bytes: 10,
        ..Limits::default()
    })
    .unwrap();
    let echo = h.load(&wasm(&plugin(ECHO))).unwrap();
    let r = echo.call(&[b' '; 11], b"{}");
    assert_eq!(
        r.outcome,
        Err(CallError::InputTooLarge {
            size: 11,
            limit: 10
        })
    );
}

#[test]
fn a_trap_names_its_cause_and_a_reported_error_wins() {
    let h = host();
    let trap = h.load(&wasm(&plugin("unreachable"))).unwrap();
    let r = trap.call(b"{}", b"{}").outcome;
    assert!(
        matches!(&r, Err(CallError::Trap(m)) if m.contains("unreachable")),
        "{r:?}"
    );
    // What a panicking SDK plugin does: report, then trap.
    let panic = h
        .load(&wasm(&plugin(
            "(call $error (i32.const 16) (i32.const 15)) unreachable",
        )))
        .unwrap();
    let r = panic.call(b"{}", b"{}").outcome;
    assert!(
        matches!(&r, Err(CallError::Guest(m)) if m.starts_with("boom: bad input")),
        "{r:?}"
    );
}

#[test]
fn logs_are_kept_up_to_the_caps() {
    let h = Host::new(Limits {
        max_log_lines: 3,
        max_log_line_bytes: 4,
        ..Limits::default()
    })
    .unwrap();
    let chatty = h
        .load(&wasm(&plugin(
            "(loop $l (call $log (i32.const 2) (i32.const 16) (i32.const 15)) (br $l)) (i32.const 2)",
        )))
        .unwrap();
    let r = chatty.call(b"{}", b"{}");
    // It loops until its fuel or time runs out; the logs stay bounded.
    assert!(
        matches!(
            r.outcome,
            Err(CallError::OutOfFuel { .. } | CallError::Deadline { .. })
        ),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.logs.len(), 3);
    assert_eq!(r.logs[0].message, "boom");
    assert_eq!(r.logs[0].level, 2);
}

#[test]
fn modules_outside_the_abi_are_refused_at_load() {
    let h = host();
    let v0 = wasm(&plugin(ECHO).replace(
        "(import \"gatepulse_v1\" \"input_len\"",
        "(import \"gatepulse_v0\" \"input_len\"",
    ));
    assert_eq!(h.load(&v0).unwrap_err(), LoadError::AbiVersion { found: 0 });
    let env = wasm(&plugin(ECHO).replace(
        "(import \"gatepulse_v1\" \"log\"",
        "(import \"env\" \"log\"",
    ));
    assert!(matches!(
        h.load(&env).unwrap_err(),
        LoadError::ForbiddenImport { module, .. } if module == "env"
    ));
    let unknown =
        wasm(&plugin(ECHO).replace("\"gatepulse_v1\" \"log\"", "\"gatepulse_v1\" \"clock\""));
    assert!(matches!(
        h.load(&unknown).unwrap_err(),
        LoadError::UnknownAbiFunction { .. }
    ));
    let no_entry = wasm(r#"(module (memory (export "memory") 1))"#);
    assert_eq!(
        h.load(&no_entry).unwrap_err(),
        LoadError::MissingExport("gatepulse_transform")
    );
    let bad_entry =
        wasm(r#"(module (memory (export "memory") 1) (func (export "gatepulse_transform")))"#);
    assert_eq!(h.load(&bad_entry).unwrap_err(), LoadError::BadEntry);
    let wrong_meta = wasm(
        r#"(module (@custom "gatepulse.plugin" "{\"name\":\"x\",\"abi\":2}")
            (memory (export "memory") 1) (func (export "gatepulse_transform") (result i32) i32.const 2))"#,
    );
    assert_eq!(
        h.load(&wrong_meta).unwrap_err(),
        LoadError::AbiVersion { found: 2 }
    );
    assert!(matches!(
        h.load(b"\0asm garbage"),
        Err(LoadError::NotWasm(_))
    ));
    assert_eq!(
        h.load(&wasm("(component)")).unwrap_err(),
        LoadError::Component
    );
}

#[test]
fn metadata_comes_from_the_custom_section() {
    let h = host();
    let p = h
        .load(&wasm(
            r#"(module (@custom "gatepulse.plugin" "{\"name\":\"redact\",\"abi\":1,\"sdk\":\"0.1.0\"}")
                (memory (export "memory") 1) (func (export "gatepulse_transform") (result i32) i32.const 2))"#,
        ))
        .unwrap();
    assert_eq!(p.meta.name.as_deref(), Some("redact"));
    assert_eq!(p.meta.sdk.as_deref(), Some("0.1.0"));
    assert_eq!(p.meta.abi, 1);
    assert!(!p.meta.uses_wasi);
}

#[test]
fn wasi_imports_get_stubs_that_grant_nothing() {
    let h = host();
    // Calls fd_write; passes only if it answered ENOTCAPABLE (76).
    let writes = h
        .load(&wasm(
            r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "gatepulse_transform") (result i32)
    (if (result i32) (i32.eq (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const 76))
      (then (i32.const 2)) (else (i32.const 7)))))"#,
        ))
        .unwrap();
    assert!(writes.meta.uses_wasi);
    assert_eq!(writes.call(b"{}", b"{}").outcome, Ok(Outcome::Pass));
    let exits = h
        .load(&wasm(
            r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "gatepulse_transform") (result i32) (call $exit (i32.const 0)) (i32.const 0)))"#,
        ))
        .unwrap();
    let r = exits.call(b"{}", b"{}").outcome;
    assert!(
        matches!(&r, Err(CallError::Trap(m)) if m.contains("proc_exit")),
        "{r:?}"
    );
}

#[test]
fn warm_instances_keep_state_and_fresh_ones_do_not() {
    let h = host();
    // Emits its call count (a global) as JSON.
    let counter = h
        .load(&wasm(&plugin(
            "(i32.store8 (i32.const 200) (i32.add (i32.const 48) (global.get $calls)))
             (drop (call $output_write (i32.const 200) (i32.const 1))) (i32.const 0)",
        )))
        .unwrap();
    let outs: Vec<_> = (0..3).map(|_| counter.call(b"{}", b"{}").outcome).collect();
    assert_eq!(
        outs,
        vec![
            Ok(Outcome::Emit(b"1".to_vec())),
            Ok(Outcome::Emit(b"2".to_vec())),
            Ok(Outcome::Emit(b"3".to_vec()))
        ]
    );
    for _ in 0..2 {
        assert_eq!(
            counter.call_fresh(b"{}", b"{}").outcome,
            Ok(Outcome::Emit(b"1".to_vec()))
        );
    }
}

#[test]
fn a_trapped_instance_is_not_reused() {
    let h = host();
    // Traps on its second call; a reused instance would trap again on the third.
    let flaky = h
        .load(&wasm(&plugin(
            "(if (i32.eq (global.get $calls) (i32.const 2)) (then unreachable)) (i32.const 2)",
        )))
        .unwrap();
    assert_eq!(flaky.call(b"{}", b"{}").outcome, Ok(Outcome::Pass));
    assert!(flaky.call(b"{}", b"{}").outcome.is_err());
    assert_eq!(flaky.call(b"{}", b"{}").outcome, Ok(Outcome::Pass));
}

#[test]
fn calls_run_in_parallel_from_many_threads() {
    let h = host();
    let echo = h.load(&wasm(&plugin(ECHO))).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let echo = echo.clone();
            s.spawn(move || {
                for i in 0..200 {
                    let input = format!("[{t},{i}]");
                    assert_eq!(
                        echo.call(input.as_bytes(), b"{}").outcome,
                        Ok(Outcome::Emit(input.into_bytes()))
                    );
                }
            });
        }
    });
}

#[test]
fn an_unused_module_is_freed_and_warm_instances_stay_within_their_limits() {
    let h = Host::new(Limits {
        max_warm_per_plugin: 2,
        max_warm_total: 3,
        ..Limits::default()
    })
    .unwrap();
    let a = h.load(&wasm(&plugin(ECHO))).unwrap();
    let b = h.load(&wasm(&plugin("(i32.const 2)"))).unwrap();
    assert_eq!(h.cached_modules(), 2);
    // Concurrent calls leave several instances; each plugin keeps at most two warm,
    // both together at most three.
    std::thread::scope(|s| {
        for p in [&a, &a, &a, &b, &b, &b] {
            s.spawn(move || {
                for _ in 0..20 {
                    assert!(p.call(b"{}", b"{}").outcome.is_ok());
                }
            });
        }
    });
    assert!(a.warm_instances() <= 2 && b.warm_instances() <= 2);
    assert!(h.warm_instances() <= 3, "{}", h.warm_instances());
    assert_eq!(h.warm_instances(), a.warm_instances() + b.warm_instances());
    drop(a);
    assert_eq!(
        h.warm_instances(),
        b.warm_instances(),
        "a's warm instances went with it"
    );
    assert_eq!(h.cached_modules(), 1, "nobody uses a's module any more");
}

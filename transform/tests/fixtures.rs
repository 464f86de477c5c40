//! Table-driven tests: every case in `tests/fixtures/ops_*.json` goes through `check`
//! (apply, compared with the expected output and op report), every case in
//! `tests/fixtures/errors.json` through `check_error` (code, pointer, line, column).
//!
//! An apply case is `{"name", "input", "ops" | "spec", "expected", "context"?,
//! "limits"?, "report"?, "limited"?}`: `ops` is shorthand for `{"version": 1, "ops":
//! ops}`; `report` lists each top-level op's status code; `limited` is the expected
//! run-time limit code (`expected` is then the value `Output` holds).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gatepulse_transform::{Context, Mapping, MappingLimits, Meta};
use serde_json::{Value, json};

fn fixture_files(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spec_of(case: &Value) -> Value {
    match (case.get("spec"), case.get("ops")) {
        (Some(spec), _) => spec.clone(),
        (None, Some(ops)) => json!({"version": 1, "ops": ops}),
        _ => panic!("case without spec or ops: {case}"),
    }
}

/// Limits: the defaults with the case's overrides (a few run-time fields).
fn limits_of(case: &Value) -> MappingLimits {
    let mut limits = MappingLimits::default();
    if let Some(l) = case.get("limits") {
        let get = |k: &str| l.get(k).and_then(Value::as_u64);
        if let Some(v) = get("max_output_bytes") {
            limits.max_output_bytes = v as usize;
        }
        if let Some(v) = get("max_array_len") {
            limits.max_array_len = v as usize;
        }
        if let Some(v) = get("max_value_bytes") {
            limits.max_value_bytes = v as usize;
        }
        if let Some(v) = get("max_steps") {
            limits.max_steps = v;
        }
        if let Some(v) = get("max_ops") {
            limits.max_ops = v as usize;
        }
        if let Some(v) = get("max_paths") {
            limits.max_paths = v as usize;
        }
        if let Some(v) = get("max_literal_bytes") {
            limits.max_literal_bytes = v as usize;
        }
        if let Some(v) = get("max_total_nodes") {
            limits.max_total_nodes = v as usize;
        }
    }
    limits
}

/// The one assertion every apply fixture goes through.
fn check(case: &Value, origin: &str) {
    let name = case["name"].as_str().unwrap_or("?");
    let origin = format!("{origin}: {name}");
    let spec = spec_of(case);
    let mapping = Mapping::compile(&spec, &limits_of(case)).unwrap_or_else(|e| {
        panic!(
            "{origin}: did not compile: [{}] {e}\n{}",
            e.code(),
            e.excerpt().unwrap_or("")
        )
    });
    let c = case.get("context").cloned().unwrap_or(json!({}));
    let topic = c["topic"].as_str().unwrap_or("orders.created");
    let ctx = Context::new(topic).with_meta(Meta {
        id: Some(c["id"].as_str().unwrap_or("evt_1")),
        time: Some(c["time"].as_str().unwrap_or("2026-11-26T10:00:00Z")),
        source: None,
    });
    let input = &case["input"];
    let (out, report) = mapping.explain(input, &ctx);
    assert_eq!(out.value, case["expected"], "{origin}: output");
    let limited = out.limited.as_ref().map(|l| l.kind.code());
    assert_eq!(
        limited,
        case.get("limited").and_then(Value::as_str),
        "{origin}: limited ({:?})",
        out.limited
    );
    if let Some(expected) = case.get("report") {
        let got: Vec<&str> = report.iter().map(|r| r.status.code()).collect();
        let expected: Vec<&str> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(got, expected, "{origin}: report");
    }
    // apply, apply_owned and explain agree.
    assert_eq!(mapping.apply(input, &ctx), out, "{origin}: apply");
    assert_eq!(
        mapping.apply_owned(input.clone(), &ctx),
        out,
        "{origin}: apply_owned"
    );
    match mapping.apply_to_vec(input.clone(), &ctx) {
        Ok(bytes) => {
            assert!(out.limited.is_none(), "{origin}: apply_to_vec");
            assert_eq!(
                bytes,
                serde_json::to_vec(&out.value).unwrap(),
                "{origin}: apply_to_vec"
            );
        }
        Err(limited) => assert_eq!(
            Some(limited.kind),
            out.limited.as_ref().map(|l| l.kind),
            "{origin}: apply_to_vec"
        ),
    }
}

/// Checks one compile-error case; the mismatch, if any, as a message.
fn check_error(case: &Value, origin: &str) -> Option<String> {
    let name = case["name"].as_str().unwrap_or("?");
    let spec = spec_of(case);
    let err = match Mapping::compile(&spec, &limits_of(case)) {
        Ok(_) => return Some(format!("{origin}: {name}: should not compile")),
        Err(e) => e,
    };
    let got = json!({
        "code": err.code(),
        "pointer": err.pointer(),
        "line": err.position().map(|p| p.line),
        "column": err.position().map(|p| p.column),
    });
    let expected = json!({
        "code": case["code"],
        "pointer": case["pointer"],
        "line": case.get("line").cloned().unwrap_or(Value::Null),
        "column": case.get("column").cloned().unwrap_or(Value::Null),
    });
    if got != expected {
        return Some(format!(
            "{origin}: {name}: got {got}, expected {expected}: {err}"
        ));
    }
    assert!(!err.message().is_empty());
    // The problem fields carry the same facts.
    let problem = err.to_json();
    assert_eq!(problem["code"], case["code"], "{origin}: {name}");
    assert_eq!(problem["pointer"], case["pointer"], "{origin}: {name}");
    None
}

#[test]
fn apply_fixtures() {
    let mut n = 0;
    for file in fixture_files("ops_") {
        let origin = file.file_name().unwrap().to_string_lossy().to_string();
        let fx = load(&file);
        for case in fx["cases"].as_array().unwrap() {
            check(case, &origin);
            n += 1;
        }
    }
    assert!(n >= 80, "only {n} apply fixtures");
}

#[test]
fn compile_error_fixtures() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/errors.json");
    let fx = load(&file);
    let cases = fx["cases"].as_array().unwrap();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| check_error(case, "errors.json"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 40, "only {} error fixtures", cases.len());
}

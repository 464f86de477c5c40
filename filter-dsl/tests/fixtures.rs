//! Table-driven tests: every case in `tests/fixtures/*.json` goes through `check`
//! (evaluation) or `check_error` (compile errors).
//!
//! Each evaluation case is also printed (`Display`), re-compiled and re-evaluated, so
//! the canonical form is exercised on every fixture.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gatepulse_filter_dsl::{Event, Filter, Limits, Meta};
use serde_json::Value;

/// An event as written in a fixture file; owns what `Event` borrows.
struct OwnedEvent {
    topic: String,
    payload: Value,
    headers: Vec<(String, String)>,
    meta: [Option<String>; 3],
}

impl OwnedEvent {
    fn from_json(v: &Value) -> OwnedEvent {
        let headers = v["headers"]
            .as_array()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_str().unwrap().to_string(),
                            p[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let meta_field = |name: &str| v["meta"][name].as_str().map(str::to_string);
        OwnedEvent {
            topic: v["topic"].as_str().unwrap().to_string(),
            payload: v["payload"].clone(),
            headers,
            meta: [meta_field("id"), meta_field("time"), meta_field("source")],
        }
    }

    fn view(&self) -> Event<'_> {
        Event::new(&self.topic, &self.payload)
            .with_headers(&self.headers)
            .with_meta(Meta {
                id: self.meta[0].as_deref(),
                time: self.meta[1].as_deref(),
                source: self.meta[2].as_deref(),
            })
    }
}

/// The one assertion every evaluation fixture goes through.
fn check(expr: &str, event: &Event<'_>, expected: bool, origin: &str) {
    let limits = Limits::default();
    let filter = match Filter::compile(expr, &limits) {
        Ok(f) => f,
        Err(e) => panic!(
            "{origin}: `{expr}` did not compile: [{}] {}\n{}",
            e.code(),
            e,
            e.caret_excerpt()
        ),
    };
    assert_eq!(
        filter.matches(event),
        expected,
        "{origin}: `{expr}` should be {expected}"
    );
    let printed = filter.to_string();
    let reparsed = Filter::compile(&printed, &limits)
        .unwrap_or_else(|e| panic!("{origin}: canonical `{printed}` did not compile: {e}"));
    assert_eq!(
        reparsed.ast(),
        filter.ast(),
        "{origin}: `{printed}` re-parsed differently"
    );
    assert_eq!(
        reparsed.matches(event),
        expected,
        "{origin}: canonical `{printed}`"
    );
}

/// The one assertion every error fixture goes through.
fn check_error(expr: &str, code: &str, line: usize, column: usize, origin: &str) {
    match Filter::compile(expr, &Limits::default()) {
        Ok(f) => panic!("{origin}: `{expr}` compiled (as `{f}`) but should fail with {code}"),
        Err(e) => {
            let pos = e.position();
            assert_eq!(
                (e.code(), pos.line, pos.column),
                (code, line, column),
                "{origin}: `{expr}`: got {} at {}: {}\n{}",
                e.code(),
                pos,
                e.message(),
                e.caret_excerpt()
            );
            // Messages never leak grammar rule names.
            for leak in [
                "EOI",
                "or_expr",
                "and_expr",
                "cmp_op",
                "field_seg",
                "Rule::",
            ] {
                assert!(
                    !e.message().contains(leak),
                    "{origin}: message leaks `{leak}`: {e}"
                );
            }
            // The caret sits under the reported column.
            let excerpt = e.caret_excerpt();
            let caret_line = excerpt.lines().last().unwrap_or("");
            assert!(caret_line.ends_with('^'), "{origin}: {excerpt}");
        }
    }
}

fn fixture_files(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures named {prefix}*.json");
    files
}

fn load(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn evaluation_fixtures() {
    let mut total = 0;
    for path in fixture_files("eval_") {
        let doc = load(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (i, case) in doc["cases"].as_array().unwrap().iter().enumerate() {
            let event_name = case[0].as_str().unwrap();
            let owned = OwnedEvent::from_json(&doc["events"][event_name]);
            let expr = case[1].as_str().unwrap();
            let expected = case[2].as_bool().unwrap();
            check(expr, &owned.view(), expected, &format!("{name} case {i}"));
            total += 1;
        }
    }
    assert!(total > 100, "only {total} evaluation cases");
}

#[test]
fn error_fixtures() {
    for path in fixture_files("errors") {
        let doc = load(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (i, case) in doc["cases"].as_array().unwrap().iter().enumerate() {
            check_error(
                case[0].as_str().unwrap(),
                case[1].as_str().unwrap(),
                case[2].as_u64().unwrap() as usize,
                case[3].as_u64().unwrap() as usize,
                &format!("{name} case {i}"),
            );
        }
    }
}

//! Keeps `docs/mapping.md` honest: every JSON example runs (a spec compiles; an
//! `ops`/`input`/`output` example produces exactly its output), every expression in
//! the expression sections compiles, and every error and limit code is documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatepulse_filter_dsl::{Formula, FormulaOptions, Limits};
use gatepulse_transform::{Context, Mapping, MappingLimits, Meta};
use serde_json::{Value, json};

fn reference() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/mapping.md");
    std::fs::read_to_string(path).unwrap()
}

/// The fenced blocks of one language, each with the section (`## N`/`### N.M`) it is in.
fn blocks(doc: &str, lang: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    // None: outside a block; Some(None): inside another language's; Some(Some(body)).
    let mut inside: Option<Option<String>> = None;
    for line in doc.lines() {
        if line.starts_with("```") {
            inside = match inside.take() {
                Some(Some(body)) => {
                    out.push((section.clone(), body));
                    None
                }
                Some(None) => None,
                None if line == format!("```{lang}") => Some(Some(String::new())),
                None => Some(None),
            };
            continue;
        }
        match &mut inside {
            Some(Some(body)) => {
                body.push_str(line);
                body.push('\n');
            }
            Some(None) => {}
            None => {
                if let Some(rest) = line.strip_prefix("### ").or(line.strip_prefix("## ")) {
                    section = rest.to_string();
                }
            }
        }
    }
    out
}

#[test]
fn json_examples_run() {
    let doc = reference();
    let ctx = Context::new("orders.created").with_meta(Meta {
        id: Some("evt_1"),
        time: Some("2026-11-26T10:00:00Z"),
        source: None,
    });
    let mut specs = 0;
    let mut runs = 0;
    for (section, body) in blocks(&doc, "json") {
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{section}: a json block does not parse: {e}\n{body}"));
        if v.get("version").is_some() {
            Mapping::compile(&v, &MappingLimits::default())
                .unwrap_or_else(|e| panic!("{section}: spec does not compile: {e}\n{body}"));
            specs += 1;
        } else if let (Some(ops), Some(input), Some(output)) =
            (v.get("ops"), v.get("input"), v.get("output"))
        {
            let spec = json!({"version": 1, "ops": ops});
            let mapping = Mapping::compile(&spec, &MappingLimits::default())
                .unwrap_or_else(|e| panic!("{section}: example does not compile: {e}\n{body}"));
            let out = mapping.apply(input, &ctx);
            assert!(out.limited.is_none(), "{section}: {:?}", out.limited);
            assert_eq!(&out.value, output, "{section}: example output\n{body}");
            runs += 1;
        }
    }
    assert!(specs >= 1 && runs >= 10, "{specs} specs, {runs} examples");
}

#[test]
fn expression_examples_compile() {
    let doc = reference();
    let mut n = 0;
    for (section, body) in blocks(&doc, "text") {
        if !section.starts_with("4.") {
            continue;
        }
        for line in body.lines() {
            let code = match line.find(" #") {
                Some(i) => &line[..i],
                None => line,
            }
            .trim();
            if code.is_empty() || code.starts_with('(') {
                continue;
            }
            let options = FormulaOptions {
                element: false,
                condition: false,
            };
            Formula::compile(code, &Limits::default(), options)
                .unwrap_or_else(|e| panic!("{section}: `{code}` does not compile: {e}"));
            n += 1;
        }
    }
    assert!(n >= 15, "only {n} expression examples");
}

#[test]
fn every_code_is_documented() {
    let doc = reference();
    for code in [
        "invalid_spec",
        "unsupported_version",
        "missing_field",
        "unknown_field",
        "unknown_op",
        "conflicting_fields",
        "invalid_path",
        "read_only_path",
        "invalid_op",
        "too_many_ops",
        "too_many_paths",
        "literal_too_large",
        "too_complex",
        "nesting_too_deep",
    ] {
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "{code} missing from the error table"
        );
    }
    for code in [
        "output_too_large",
        "array_too_long",
        "value_too_large",
        "steps_exhausted",
        "skipped_when",
        "skipped_missing",
        "skipped_present",
        "skipped_blocked",
        "skipped_not_array",
    ] {
        assert!(doc.contains(&format!("`{code}`")), "{code} not documented");
    }
}

#[test]
fn documented_defaults_are_the_defaults() {
    let doc = reference();
    let d = MappingLimits::default();
    for (field, value) in [
        ("max_ops", d.max_ops as u64),
        ("max_paths", d.max_paths as u64),
        ("max_literal_bytes", d.max_literal_bytes as u64),
        ("max_total_nodes", d.max_total_nodes as u64),
        ("max_output_bytes", d.max_output_bytes as u64),
        ("max_array_len", d.max_array_len as u64),
        ("max_value_bytes", d.max_value_bytes as u64),
        ("max_steps", d.max_steps),
    ] {
        assert!(
            doc.contains(&format!("| `{field}` | {value} |")),
            "{field} = {value} is not what docs/mapping.md says"
        );
    }
}

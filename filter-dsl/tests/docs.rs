//! Keeps `docs/filter-dsl.md` honest: every example line in its `text` blocks that is
//! meant to be a filter compiles, and every error code the crate can return is listed.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatepulse_filter_dsl::{Filter, Limits};

fn reference() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/filter-dsl.md");
    std::fs::read_to_string(path).unwrap()
}

/// Lines of the ```text blocks, without `# notes`; the caret example is skipped.
fn text_block_lines(doc: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_block = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_block = line == "```text";
            continue;
        }
        if !in_block || line.trim().is_empty() || line.trim_start().starts_with('^') {
            continue;
        }
        let code = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        lines.push(code.trim().to_string());
    }
    lines
}

#[test]
fn documented_examples_compile() {
    let doc = reference();
    let lines = text_block_lines(&doc);
    assert!(lines.len() > 15, "found only {} examples", lines.len());
    // The one deliberately broken example (the caret excerpt).
    let broken = ["payload.amount 100"];
    for line in lines {
        let result = Filter::compile(&line, &Limits::default());
        if broken.contains(&line.as_str()) {
            assert!(result.is_err(), "`{line}` should not compile");
        } else if let Err(e) = result {
            panic!("doc example `{line}` does not compile: [{}] {e}", e.code());
        }
    }
}

#[test]
fn every_error_code_is_documented() {
    let doc = reference();
    for code in [
        "syntax_error",
        "expression_too_long",
        "nesting_too_deep",
        "too_many_nodes",
        "chain_too_long",
        "path_too_long",
        "list_too_long",
        "string_too_long",
        "too_many_regexes",
        "regex_invalid",
        "regex_too_big",
        "type_error",
        "invalid_argument",
        "invalid_number",
        "unknown_function",
        "unknown_name",
        "it_outside_quantifier",
        "nested_quantifier",
    ] {
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "{code} missing from the error table"
        );
    }
}

//! One test per compile-time limit (each refused quickly with its own code), plus the
//! evaluation-time array bound and the linear-time regex guarantee.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gatepulse_filter_dsl::{Event, Filter, FilterError, Limits};
use serde_json::json;

/// Generous even for unoptimised test builds on a slow machine; the point is "no
/// quadratic blow-up, no deep recursion", not a benchmark.
const QUICK: Duration = Duration::from_millis(250);

fn roomy() -> Limits {
    Limits {
        max_source_len: 2 * 1024 * 1024,
        ..Limits::default()
    }
}

/// Compiles `src`, asserting it fails fast with `code`.
fn refused(src: &str, limits: &Limits, code: &str) -> FilterError {
    let start = Instant::now();
    let result = Filter::compile(src, limits);
    let elapsed = start.elapsed();
    let err = match result {
        Ok(f) => panic!(
            "compiled but should fail with {code}: {}",
            f.to_string().len()
        ),
        Err(e) => e,
    };
    assert_eq!(err.code(), code, "{err}");
    assert!(elapsed < QUICK, "{code} took {elapsed:?}");
    err
}

fn chain(n: usize, op: &str) -> String {
    vec!["payload.a == 1"; n].join(op)
}

#[test]
fn defaults_are_documented_values() {
    let l = Limits::default();
    assert_eq!(l.max_source_len, 4096);
    assert_eq!(l.max_depth, 32);
    assert_eq!(l.max_nodes, 256);
    assert_eq!(l.max_chain_terms, 64);
    assert_eq!(l.max_path_segments, 16);
    assert_eq!(l.max_list_len, 256);
    assert_eq!(l.max_string_len, 1024);
    assert_eq!(l.max_regexes, 4);
    assert_eq!(l.max_regex_size, 256 * 1024);
    assert_eq!(l.max_regex_dfa_size, 1024 * 1024);
    assert_eq!(l.max_array_iterations, 1000);
}

#[test]
fn one_megabyte_expression_is_expression_too_long() {
    let src = format!("payload.x == \"{}\"", "a".repeat(1024 * 1024));
    let err = refused(&src, &Limits::default(), "expression_too_long");
    assert_eq!(err.position().offset, 4096);
}

#[test]
fn ten_thousand_nested_parentheses_are_nesting_too_deep() {
    let src = format!("{}payload.x == 1{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = refused(&src, &roomy(), "nesting_too_deep");
    assert_eq!(err.position().column, 33);
    // Unbalanced, and brackets instead of parentheses: same answer, no recursion.
    refused(&"(".repeat(1_000_000), &roomy(), "nesting_too_deep");
    refused(
        &format!("payload.x in {}", "[".repeat(100_000)),
        &roomy(),
        "nesting_too_deep",
    );
}

#[test]
fn nesting_at_the_limit_compiles_and_one_more_does_not() {
    let ok = format!("{}payload.x == 1{}", "(".repeat(32), ")".repeat(32));
    assert!(Filter::compile(&ok, &Limits::default()).is_ok());
    let deep = format!("{}payload.x == 1{}", "(".repeat(33), ")".repeat(33));
    refused(&deep, &Limits::default(), "nesting_too_deep");
    // `!` chains count as nesting too.
    refused(
        &format!("{}exists(payload.x)", "!".repeat(40)),
        &Limits::default(),
        "nesting_too_deep",
    );
    refused(
        &format!("{}exists(payload.x)", "!".repeat(100_000)),
        &roomy(),
        "nesting_too_deep",
    );
}

#[test]
fn max_depth_is_clamped_to_the_hard_maximum() {
    let limits = Limits {
        max_depth: usize::MAX,
        ..roomy()
    };
    let src = format!("{}payload.x == 1{}", "(".repeat(10_000), ")".repeat(10_000));
    refused(&src, &limits, "nesting_too_deep");
}

#[test]
fn too_many_nodes() {
    // 40 groups of 4 comparisons: chains stay short, the node count does not.
    let group = format!("({})", chain(4, " && "));
    let src = vec![group; 40].join(" || ");
    refused(&src, &roomy(), "too_many_nodes");
}

#[test]
fn chain_too_long() {
    let limits = Limits {
        max_nodes: 10_000,
        ..roomy()
    };
    assert!(Filter::compile(&chain(64, " || "), &limits).is_ok());
    let err = refused(&chain(65, " || "), &limits, "chain_too_long");
    assert_eq!(err.position().offset, 64 * "payload.a == 1 || ".len());
    refused(&chain(65, " && "), &limits, "chain_too_long");
}

#[test]
fn hundred_segment_path_is_path_too_long() {
    let path = format!("payload{}", ".a".repeat(100));
    refused(&format!("{path} == 1"), &Limits::default(), "path_too_long");
    let sixteen = format!("payload{} == 1", ".a".repeat(16));
    assert!(Filter::compile(&sixteen, &Limits::default()).is_ok());
    let seventeen = format!("payload{} == 1", "[0]".repeat(17));
    refused(&seventeen, &Limits::default(), "path_too_long");
}

#[test]
fn hundred_thousand_element_list_is_list_too_long() {
    let items: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let src = format!("payload.x in [{}]", items.join(","));
    refused(&src, &roomy(), "list_too_long");
    let at_limit = format!("payload.x in [{}]", items[..256].join(","));
    assert!(Filter::compile(&at_limit, &Limits::default()).is_ok());
    let over = format!("payload.x in [{}]", items[..257].join(","));
    refused(&over, &roomy(), "list_too_long");
}

#[test]
fn string_too_long() {
    let ok = format!("payload.x == \"{}\"", "é".repeat(512));
    assert!(Filter::compile(&ok, &Limits::default()).is_ok());
    let long = format!("payload.x == \"{}\"", "a".repeat(1025));
    let err = refused(&long, &Limits::default(), "string_too_long");
    assert_eq!(err.position().column, 14);
    refused(
        &format!("payload[\"{}\"] == 1", "k".repeat(2000)),
        &Limits::default(),
        "string_too_long",
    );
}

#[test]
fn too_many_regexes() {
    let four = ["matches(payload.a, \"x\")"; 4].join(" || ");
    assert!(Filter::compile(&four, &Limits::default()).is_ok());
    let five = ["matches(payload.a, \"x\")"; 5].join(" || ");
    let err = refused(&five, &Limits::default(), "too_many_regexes");
    assert_eq!(
        err.position().column,
        4 * "matches(payload.a, \"x\") || ".len() + 1
    );
}

#[test]
fn huge_regex_is_regex_too_big() {
    refused(
        "matches(payload.x, \"a{10000}{10000}\")",
        &Limits::default(),
        "regex_too_big",
    );
    refused(
        "matches(payload.x, \"\\\\w{500}\")",
        &Limits::default(),
        "regex_too_big",
    );
}

#[test]
fn invalid_regex_is_regex_invalid() {
    let err = refused(
        "matches(payload.x, \"(a\")",
        &Limits::default(),
        "regex_invalid",
    );
    assert!(err.message().contains("unclosed group"), "{err}");
}

#[test]
fn catastrophic_backtracking_regex_is_accepted_and_linear() {
    let filter = Filter::compile("matches(payload.s, \"(a+)+$\")", &Limits::default()).unwrap();
    let text = format!("{}!", "a".repeat(50_000));
    let payload = json!({ "s": text });
    let start = Instant::now();
    // `$` after `(a+)+` still matches at the very end (an empty suffix), so this is true;
    // the point is that it answers quickly.
    let _ = filter.matches(&Event::new("t", &payload));
    let bounded = Filter::compile("matches(payload.s, \"^(a+)+$\")", &Limits::default()).unwrap();
    assert!(!bounded.matches(&Event::new("t", &payload)));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn arrays_longer_than_the_iteration_bound_make_quantifiers_false() {
    let limits = Limits::default();
    let any = Filter::compile("any(payload.xs, it == 0)", &limits).unwrap();
    let all = Filter::compile("all(payload.xs, it >= 0)", &limits).unwrap();
    let member = Filter::compile("0 in payload.xs", &limits).unwrap();
    let not_member = Filter::compile("-1 not in payload.xs", &limits).unwrap();
    let at_limit = json!({ "xs": (0..1000).collect::<Vec<u32>>() });
    let over = json!({ "xs": (0..1001).collect::<Vec<u32>>() });
    for f in [&any, &all, &member, &not_member] {
        assert!(f.matches(&Event::new("t", &at_limit)), "{f} at the limit");
        assert!(!f.matches(&Event::new("t", &over)), "{f} over the limit");
    }
    let small = Limits {
        max_array_iterations: 2,
        ..Limits::default()
    };
    let any = Filter::compile("any(payload.xs, it == 0)", &small).unwrap();
    assert!(!any.matches(&Event::new("t", &json!({ "xs": [0, 1, 2] }))));
}

#[test]
fn every_limit_has_its_own_code() {
    let codes = [
        refused(&"a".repeat(5000), &Limits::default(), "expression_too_long").code(),
        refused(&"(".repeat(50), &Limits::default(), "nesting_too_deep").code(),
        refused(
            &vec![format!("({})", chain(4, " && ")); 40].join(" || "),
            &roomy(),
            "too_many_nodes",
        )
        .code(),
        refused(
            &chain(65, " || "),
            &Limits {
                max_nodes: 1000,
                ..roomy()
            },
            "chain_too_long",
        )
        .code(),
        refused(
            &format!("payload{} == 1", ".a".repeat(17)),
            &Limits::default(),
            "path_too_long",
        )
        .code(),
        refused(
            &format!("payload.x in [{}]", vec!["1"; 300].join(",")),
            &Limits::default(),
            "list_too_long",
        )
        .code(),
        refused(
            &format!("payload.x == \"{}\"", "a".repeat(2000)),
            &Limits::default(),
            "string_too_long",
        )
        .code(),
        refused(
            &["matches(payload.a, \"x\")"; 5].join(" || "),
            &Limits::default(),
            "too_many_regexes",
        )
        .code(),
        refused(
            "matches(payload.x, \"a{10000}{10000}\")",
            &Limits::default(),
            "regex_too_big",
        )
        .code(),
    ];
    let mut unique = codes.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());
}

#[test]
fn nesting_at_the_hard_maximum_fits_on_a_test_thread_stack() {
    // Test threads have 2 MiB stacks; the router's are at least that.
    let limits = Limits {
        max_depth: usize::MAX,
        ..roomy()
    };
    let depth = gatepulse_filter_dsl::HARD_MAX_DEPTH;
    let parens = format!("{}payload.x == 1{}", "(".repeat(depth), ")".repeat(depth));
    let filter = Filter::compile(&parens, &limits).unwrap();
    assert!(filter.matches(&Event::new("t", &json!({ "x": 1 }))));
    // Alternating `!(` nests both the parser and the evaluator.
    let nots = format!(
        "{}payload.x == 1{}",
        "!(".repeat(depth / 2),
        ")".repeat(depth / 2)
    );
    let filter = Filter::compile(&nots, &limits).unwrap();
    assert!(filter.matches(&Event::new("t", &json!({ "x": 1 }))));
    let _ = filter.to_string();
}

#[test]
fn adversarial_nesting_parses_in_linear_time() {
    // Shapes that make a backtracking grammar re-parse nested arguments at every level
    // (2^depth work); each must be answered quickly, balanced or not.
    let templates = [
        ("f(", ")"),
        ("exists(", ")"),
        ("between(payload, ", ")"),
        ("any(payload, ", ")"),
        ("cidr(payload, ", ")"),
        ("matches(payload, ", ")"),
        ("(", ")"),
        ("!(", ")"),
        ("payload.x == f(", ")"),
        ("payload.x starts_with f(", ")"),
        ("payload.x in [", "]"),
    ];
    for (open, close) in templates {
        for depth in [16, 31, 32] {
            for tail in ["payload.x == 1", "1", "payload.x", "payload.x ==", ""] {
                let balanced = format!("{}{tail}{}", open.repeat(depth), close.repeat(depth));
                let unbalanced = format!("{}{tail}", open.repeat(depth));
                for src in [balanced, unbalanced] {
                    let start = Instant::now();
                    let _ = Filter::compile(&src, &Limits::default());
                    assert!(
                        start.elapsed() < QUICK,
                        "{src:?} took {:?}",
                        start.elapsed()
                    );
                }
            }
        }
    }
}

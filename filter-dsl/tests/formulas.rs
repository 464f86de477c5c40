//! Formulas (the mapping engine's expressions), table-driven: every case in
//! `tests/fixtures/formulas.json` goes through `check`, every case in
//! `tests/fixtures/formula_errors.json` through `check_error`.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatepulse_filter_dsl::{Budget, BudgetHit, Event, Formula, FormulaOptions, Limits, Meta, Val};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn budget() -> Budget {
    Budget::new(100_000, 64 * 1024)
}

/// The one assertion every evaluation case goes through. `expected: None` = missing.
fn check(src: &str, event: &Event<'_>, it: Option<&Value>, expected: Option<&Value>) {
    let options = FormulaOptions {
        element: it.is_some(),
        condition: false,
    };
    let formula = Formula::compile(src, &Limits::default(), options).unwrap_or_else(|e| {
        panic!(
            "`{src}` did not compile: [{}] {e}\n{}",
            e.code(),
            e.caret_excerpt()
        )
    });
    let budget = budget();
    let got = formula.eval(event, it, &budget).into_value();
    assert_eq!(got.as_ref(), expected, "`{src}`");
    assert_eq!(budget.hit(), None, "`{src}` hit a budget bound");
}

fn check_error(src: &str, options: FormulaOptions, code: &str, line: u64, column: u64) {
    let err = match Formula::compile(src, &Limits::default(), options) {
        Ok(_) => panic!("`{src}` should not compile"),
        Err(e) => e,
    };
    assert_eq!(
        (
            err.code(),
            err.position().line as u64,
            err.position().column as u64
        ),
        (code, line, column),
        "`{src}`: {err}\n{}",
        err.caret_excerpt()
    );
}

#[test]
fn formula_fixtures() {
    let fx = fixture("formulas.json");
    let e = &fx["event"];
    let headers: Vec<(String, String)> = e["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    let event = Event::new(e["topic"].as_str().unwrap(), &e["payload"])
        .with_headers(&headers)
        .with_meta(Meta {
            id: e["meta"]["id"].as_str(),
            time: e["meta"]["time"].as_str(),
            source: None,
        });
    let mut n = 0;
    for case in fx["cases"].as_array().unwrap() {
        check(case[0].as_str().unwrap(), &event, None, Some(&case[1]));
        n += 1;
    }
    for case in fx["missing"].as_array().unwrap() {
        check(case.as_str().unwrap(), &event, None, None);
        n += 1;
    }
    for case in fx["element"].as_array().unwrap() {
        check(
            case[1].as_str().unwrap(),
            &event,
            Some(&case[0]),
            Some(&case[2]),
        );
        n += 1;
    }
    assert!(n > 150, "only {n} cases");
}

#[test]
fn formula_error_fixtures() {
    let fx = fixture("formula_errors.json");
    for (key, condition) in [("cases", false), ("conditions", true)] {
        for case in fx[key].as_array().unwrap() {
            check_error(
                case[0].as_str().unwrap(),
                FormulaOptions {
                    element: false,
                    condition,
                },
                case[1].as_str().unwrap(),
                case[2].as_u64().unwrap(),
                case[3].as_u64().unwrap(),
            );
        }
    }
}

#[test]
fn values_borrow_from_the_event_when_they_can() {
    let payload = json!({"customer": {"email": "  a@b.c "}});
    let event = Event::new("t", &payload);
    let limits = Limits::default();
    let b = budget();
    let trimmed = Formula::compile(
        "trim(payload.customer.email)",
        &limits,
        FormulaOptions::default(),
    )
    .unwrap();
    match trimmed.eval(&event, None, &b) {
        Val::Ref(r) => assert_eq!(r.as_str(), Some("a@b.c")),
        other => panic!("expected a borrowed value, got {other:?}"),
    }
    let already_lower = Formula::compile(
        "lower(payload.customer.email)",
        &limits,
        FormulaOptions::default(),
    )
    .unwrap();
    assert!(matches!(already_lower.eval(&event, None, &b), Val::Ref(_)));
}

#[test]
fn conditions_accept_booleans_and_unknowns() {
    let limits = Limits::default();
    let cond = FormulaOptions {
        element: false,
        condition: true,
    };
    for src in [
        "payload.a",
        "payload.a == 1",
        "if(payload.a, true, false)",
        "!payload.a",
        "true",
        "coalesce(payload.a, false)",
    ] {
        Formula::compile(src, &limits, cond).unwrap_or_else(|e| panic!("`{src}`: {e}"));
    }
}

#[test]
fn results_larger_than_the_value_bound_are_missing_and_reported() {
    let payload = json!({"s": "x".repeat(1000), "arr": (0..1000).collect::<Vec<u32>>()});
    let event = Event::new("t", &payload);
    let limits = Limits::default();
    for src in [
        "concat(payload.s, payload.s)",
        "replace(payload.s, \"x\", \"yy\")",
        "payload.s + payload.s",
        "template(\"{payload.s}{payload.s}\")",
        "split(payload.s, \"\")",
        "to_string(payload.arr)",
    ] {
        let f = Formula::compile(src, &limits, FormulaOptions::default()).unwrap();
        let b = Budget::new(100_000, 1500);
        assert!(f.eval(&event, None, &b).is_missing(), "`{src}`");
        assert_eq!(b.hit(), Some(BudgetHit::ValueTooLarge), "`{src}`");
    }
}

#[test]
fn running_out_of_steps_makes_values_missing() {
    let items: Vec<Value> = (0..1000).map(|i| json!({"n": i})).collect();
    let payload = json!({"items": items});
    let event = Event::new("t", &payload);
    let f = Formula::compile(
        "any(payload.items, it.n == 999)",
        &Limits::default(),
        FormulaOptions::default(),
    )
    .unwrap();
    let plenty = Budget::new(10_000, 1024);
    assert!(f.eval(&event, None, &plenty).is_true());
    let scarce = Budget::new(500, 1024);
    assert!(f.eval(&event, None, &scarce).is_missing());
    assert_eq!(scarce.hit(), Some(BudgetHit::Steps));
    assert_eq!(scarce.remaining_steps(), 0);
}

fn roomy() -> Limits {
    Limits {
        max_depth: usize::MAX,
        max_source_len: 1 << 20,
        max_nodes: 100_000,
        ..Limits::default()
    }
}

#[test]
fn formula_nesting_at_the_hard_maximum_fits_on_a_test_thread_stack() {
    // Run explicitly on a 2 MiB thread (the smallest stack the router or a test uses).
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let depth = gatepulse_filter_dsl::HARD_MAX_FORMULA_DEPTH;
            let payload = json!({"x": 1, "s": "A"});
            let event = Event::new("t", &payload);
            let b = budget();
            for (open, inner, close) in [
                ("(", "payload.x + 1", ")"),
                ("lower(", "payload.s", ")"),
                ("-(", "payload.x", ")"),
                ("!(", "payload.x == 1", ")"),
                ("if(true, ", "payload.x", ", 0)"),
                ("concat(", "payload.s", ", \"\")"),
            ] {
                let src = format!("{}{inner}{}", open.repeat(depth), close.repeat(depth));
                let f = Formula::compile(&src, &roomy(), FormulaOptions::default())
                    .unwrap_or_else(|e| panic!("{src}: {e}"));
                assert!(!f.eval(&event, None, &b).is_missing(), "{src}");
                let deeper = format!(
                    "{}{inner}{}",
                    open.repeat(depth + 1),
                    close.repeat(depth + 1)
                );
                let err =
                    Formula::compile(&deeper, &roomy(), FormulaOptions::default()).unwrap_err();
                assert_eq!(err.code(), "nesting_too_deep", "{deeper}");
            }
        })
        .unwrap();
    worker.join().unwrap();
}

#[test]
fn hostile_formulas_are_refused_quickly() {
    let quick = std::time::Duration::from_millis(250);
    let limits = Limits::default();
    let cases = [
        ("(".repeat(4_000), "nesting_too_deep"),
        ("lower(".repeat(600), "nesting_too_deep"),
        ("1 + ".repeat(2_000) + "1", "expression_too_long"),
        (format!("{}1", "-".repeat(100)), "nesting_too_deep"),
        (format!("{}1", "!".repeat(100)), "nesting_too_deep"),
        (vec!["1"; 100].join(" + "), "chain_too_long"),
        (vec!["payload.a"; 300].join(" * "), "chain_too_long"),
        (
            format!("template(\"{}\")", "{(".repeat(40) + &")}".repeat(40)),
            "syntax_error",
        ),
        (
            format!("concat({})", vec!["payload.a"; 17].join(", ")),
            "syntax_error",
        ),
    ];
    for (src, code) in cases {
        let start = std::time::Instant::now();
        let err = Formula::compile(&src, &limits, FormulaOptions::default()).unwrap_err();
        assert!(
            start.elapsed() < quick,
            "{} took {:?}",
            &src[..20.min(src.len())],
            start.elapsed()
        );
        assert_eq!(err.code(), code, "{}…: {err}", &src[..40.min(src.len())]);
    }
    // Nodes across template holes count against one limit.
    let holes = format!("template(\"{}\")", "{payload.a}".repeat(90));
    let small = Limits {
        max_nodes: 50,
        ..Limits::default()
    };
    let err = Formula::compile(&holes, &small, FormulaOptions::default()).unwrap_err();
    assert_eq!(err.code(), "too_many_nodes");
}

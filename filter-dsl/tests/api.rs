//! The public surface: `Expr` values, header lookup, canonical printing, error shape.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatepulse_filter_dsl::{Event, Expr, Filter, HeaderLookup, Limits, Meta, ValueRef};
use serde_json::json;

#[test]
fn expr_evaluates_paths_and_literals_without_copying() {
    let payload = json!({ "customer": { "email": "a@b.c", "tags": ["x"] }, "n": 1.5 });
    let headers = vec![("X-Trace".to_string(), "t-1".to_string())];
    let event = Event::new("orders.created", &payload)
        .with_headers(&headers)
        .with_meta(Meta {
            id: Some("evt_9"),
            time: None,
            source: None,
        });
    let limits = Limits::default();

    let email = Expr::compile("payload.customer.email", &limits).unwrap();
    let value = email.eval_value(&event).unwrap();
    assert_eq!(value.as_str(), Some("a@b.c"));
    // Borrowed straight from the payload.
    assert!(std::ptr::eq(
        value.as_json().unwrap(),
        &payload["customer"]["email"]
    ));

    let tags = Expr::compile("payload[\"customer\"].tags", &limits).unwrap();
    assert_eq!(tags.eval_value(&event).unwrap().to_value(), json!(["x"]));

    let trace = Expr::compile("headers[\"x-trace\"]", &limits).unwrap();
    assert_eq!(trace.eval_value(&event).unwrap().as_str(), Some("t-1"));
    assert_eq!(
        Expr::compile("meta.id", &limits)
            .unwrap()
            .eval_value(&event)
            .unwrap()
            .as_str(),
        Some("evt_9")
    );
    assert_eq!(
        Expr::compile("topic", &limits)
            .unwrap()
            .eval_value(&event)
            .unwrap()
            .as_str(),
        Some("orders.created")
    );

    let literal = Expr::compile("[1, \"two\", null]", &limits).unwrap();
    assert_eq!(
        literal.eval_value(&event).unwrap().to_value(),
        json!([1, "two", null])
    );
    assert!(
        Expr::compile("payload.missing", &limits)
            .unwrap()
            .eval_value(&event)
            .is_none()
    );
    assert!(
        Expr::compile("meta.time", &limits)
            .unwrap()
            .eval_value(&event)
            .is_none()
    );

    // JSON equality on ValueRef: 1.5 == 1.5, string from header == JSON string.
    let n = Expr::compile("payload.n", &limits).unwrap();
    assert_eq!(n.eval_value(&event), Some(ValueRef::Json(&json!(1.5))));
    assert_eq!(
        trace.eval_value(&event),
        Some(ValueRef::Json(&json!("t-1")))
    );
    assert_eq!(email.to_string(), "payload.customer.email");
}

#[test]
fn expr_rejects_conditions_and_it() {
    let limits = Limits::default();
    assert_eq!(
        Expr::compile("payload.a == 1", &limits).unwrap_err().code(),
        "syntax_error"
    );
    assert_eq!(
        Expr::compile("it.x", &limits).unwrap_err().code(),
        "it_outside_quantifier"
    );
    assert_eq!(
        Expr::compile(
            "payload.x.y.z",
            &Limits {
                max_path_segments: 2,
                ..limits
            }
        )
        .unwrap_err()
        .code(),
        "path_too_long"
    );
}

struct UpperCaseMap(Vec<(&'static str, &'static str)>);

impl HeaderLookup for UpperCaseMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

#[test]
fn headers_can_come_from_any_lookup() {
    let map = UpperCaseMap(vec![("CONTENT-TYPE", "application/json")]);
    let payload = json!({});
    let event = Event::new("t", &payload).with_headers(&map);
    let filter = Filter::compile(
        "headers[\"content-type\"] starts_with \"application/\"",
        &Limits::default(),
    )
    .unwrap();
    assert!(filter.matches(&event));
    assert!(!filter.matches(&Event::new("t", &payload)));
}

#[test]
fn display_prints_canonical_source() {
    let cases = [
        (
            "payload.a==1&&payload.b==2",
            "payload.a == 1 && payload.b == 2",
        ),
        (
            "(payload.a==1||payload.b==2)&&topic==\"x\"",
            "(payload.a == 1 || payload.b == 2) && topic == \"x\"",
        ),
        (
            "payload.a == 1 || (payload.b == 2 || payload.c == 3)",
            "payload.a == 1 || (payload.b == 2 || payload.c == 3)",
        ),
        ("!payload.a == 1", "!(payload.a == 1)"),
        ("! ! exists( payload.a )", "!!exists(payload.a)"),
        (
            "payload[\"a\"][\"b.c\"][0] in [1,2.5,\"x\",null,true]",
            "payload.a[\"b.c\"][0] in [1, 2.5, \"x\", null, true]",
        ),
        (
            "payload.s   not    in   payload.list",
            "payload.s not in payload.list",
        ),
        ("payload.s ICONTAINS \"x\"", ""),
        (
            "payload.s icontains \"tab\\there \\u00e9 \\\"q\\\"\"",
            "payload.s icontains \"tab\\there é \\\"q\\\"\"",
        ),
        (
            "any( payload.items , it.sku starts_with \"A\" )",
            "any(payload.items, it.sku starts_with \"A\")",
        ),
        (
            "cidr(payload.ip,[\"10.0.0.0/8\",\"::1\"])",
            "cidr(payload.ip, [\"10.0.0.0/8\", \"::1\"])",
        ),
        (
            "between(payload.n, -1, 1e3)",
            "between(payload.n, -1, 1000.0)",
        ),
    ];
    for (src, want) in cases {
        match Filter::compile(src, &Limits::default()) {
            Ok(f) => assert_eq!(f.to_string(), want, "{src}"),
            Err(e) => assert!(want.is_empty(), "{src}: {e}"),
        }
    }
}

#[test]
fn errors_carry_code_position_message_and_caret() {
    let err = Filter::compile(
        "payload.amount > 10 &&\n  \"é\" == payload.amount 100",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "syntax_error");
    let pos = err.position();
    assert_eq!((pos.line, pos.column), (2, 25));
    assert_eq!(
        pos.offset,
        "payload.amount > 10 &&\n  \"é\" == payload.amount ".len()
    );
    assert_eq!(
        err.message(),
        "expected `&&`, `||` or the end of the expression after `payload.amount`, found `100`"
    );
    assert_eq!(
        err.caret_excerpt(),
        "  \"é\" == payload.amount 100\n                        ^"
    );
    assert!(err.to_string().ends_with("(at line 2, column 25)"), "{err}");

    let err = Filter::compile("payload.amount 100", &Limits::default()).unwrap_err();
    assert!(
        err.message().starts_with("expected a comparison operator"),
        "{err}"
    );
    assert!(err.message().contains("after `payload.amount`"), "{err}");
}

#[test]
fn caret_excerpt_of_a_long_line_stays_short() {
    let src = format!("{} ?", ["payload.a == 1"; 60].join(" || "));
    let limits = Limits {
        max_chain_terms: 100,
        max_source_len: 10_000,
        max_nodes: 1000,
        ..Limits::default()
    };
    let err = Filter::compile(&src, &limits).unwrap_err();
    let excerpt = err.caret_excerpt();
    let first = excerpt.lines().next().unwrap();
    assert!(first.chars().count() <= 121, "{excerpt}");
    assert!(excerpt.lines().last().unwrap().ends_with('^'));
    let caret_col = excerpt.lines().last().unwrap().chars().count();
    assert_eq!(first.chars().nth(caret_col - 1), Some('?'), "{excerpt}");
}

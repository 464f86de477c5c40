//! Property tests: arbitrary input never panics the compiler, random trees survive
//! print → re-parse unchanged, and evaluation never panics on random JSON.

// Test code: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatepulse_filter_dsl::ast::{
    CidrArg, CmpOp, InRhs, Node, Operand, Path, Quantifier, Root, Segment, StrOp,
};
use gatepulse_filter_dsl::{Event, Filter, Limits, Meta, parse};
use proptest::prelude::*;
use serde_json::{Number, Value, json};

/// Large enough that generated trees never hit a limit (the limits have their own tests).
fn generous() -> Limits {
    Limits {
        max_source_len: 1 << 20,
        max_nodes: 100_000,
        max_chain_terms: 1_000,
        max_list_len: 1_000,
        max_string_len: 1 << 16,
        max_regexes: 1_000,
        ..Limits::default()
    }
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
        "[a-z_][a-z0-9_]{0,6}",
        Just(String::new()),
        Just("dotted.key".to_string()),
        Just("ключ 🎉".to_string()),
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        Just(Number::from(0)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_string().prop_map(Value::String),
        number().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn segments() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(
        prop_oneof![
            any_string().prop_map(Segment::Field),
            (0usize..5).prop_map(Segment::Index),
        ],
        0..4,
    )
}

/// A path whose value type is unknown at compile time (payload, or `it` inside).
fn data_path(in_quantifier: bool) -> BoxedStrategy<Path> {
    let payload = segments().prop_map(|segments| Path {
        root: Root::Payload,
        segments,
    });
    if in_quantifier {
        prop_oneof![
            payload,
            segments().prop_map(|segments| Path {
                root: Root::It,
                segments,
            })
        ]
        .boxed()
    } else {
        payload.boxed()
    }
}

/// Any path, including the string-typed envelope ones.
fn any_path(in_quantifier: bool) -> BoxedStrategy<Path> {
    prop_oneof![
        3 => data_path(in_quantifier),
        1 => Just(Path { root: Root::Topic, segments: vec![] }),
        1 => any_string().prop_map(|h| Path { root: Root::Headers, segments: vec![Segment::Field(h)] }),
        1 => prop::sample::select(vec!["id", "time", "source"]).prop_map(|m| Path {
            root: Root::Meta,
            segments: vec![Segment::Field(m.to_string())],
        }),
    ]
    .boxed()
}

fn leaf(in_quantifier: bool) -> BoxedStrategy<Node> {
    let cmp_op = prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ]);
    let str_op = prop::sample::select(vec![StrOp::StartsWith, StrOp::EndsWith, StrOp::Contains]);
    let q = in_quantifier;
    let compare = (
        cmp_op,
        data_path(q),
        prop_oneof![
            scalar().prop_map(Operand::Literal),
            prop::collection::vec(scalar(), 0..3).prop_map(|v| Operand::Literal(Value::Array(v))),
            data_path(q).prop_map(Operand::Path),
        ],
    )
        .prop_map(|(op, left, right)| {
            // Ordering operators only take numbers and strings.
            let right = match right {
                Operand::Literal(Value::Number(_) | Value::String(_)) | Operand::Path(_) => right,
                _ if op.is_ordering() => Operand::Literal(json!(1)),
                other => other,
            };
            Node::Compare {
                op,
                left: Operand::Path(left),
                right,
            }
        });
    let in_list = (
        any::<bool>(),
        data_path(q),
        prop_oneof![
            prop::collection::vec(scalar(), 0..5).prop_map(InRhs::List),
            data_path(q).prop_map(InRhs::Path),
        ],
    )
        .prop_map(|(negated, left, right)| Node::In {
            negated,
            left: Operand::Path(left),
            right,
        });
    let str_test = (str_op, any::<bool>(), any_path(q), any_string()).prop_map(
        |(op, case_insensitive, left, needle)| Node::StrTest {
            op,
            case_insensitive,
            left: Operand::Path(left),
            needle,
        },
    );
    let exists = any_path(q).prop_map(Node::Exists);
    let matches = (
        any_path(q),
        prop::sample::select(vec!["^a", "b+$", "[0-9]{2}", "(?i)x", "é|ü"]),
    )
        .prop_map(|(p, re)| Node::Matches(p, re.to_string()));
    let like = (any_path(q), any_string()).prop_map(|(p, g)| Node::Like(p, g));
    let between = (data_path(q), any::<i32>(), any::<i32>())
        .prop_map(|(p, a, b)| Node::Between(p, Number::from(a.min(b)), Number::from(a.max(b))));
    let cidr = (
        any_path(q),
        prop::sample::select(vec!["10.0.0.0/8", "::1/128", "0.0.0.0/0", "192.168.1.7"]),
        any::<bool>(),
    )
        .prop_map(|(p, net, many)| {
            let arg = if many {
                CidrArg::Many(vec![net.to_string(), "2001:db8::/32".to_string()])
            } else {
                CidrArg::One(net.to_string())
            };
            Node::Cidr(p, arg)
        });
    prop_oneof![
        compare, in_list, str_test, exists, matches, like, between, cidr
    ]
    .boxed()
}

fn tree(in_quantifier: bool) -> BoxedStrategy<Node> {
    leaf(in_quantifier)
        .prop_recursive(4, 24, 3, move |inner| {
            let mut options = vec![
                prop::collection::vec(inner.clone(), 2..4)
                    .prop_map(Node::Or)
                    .boxed(),
                prop::collection::vec(inner.clone(), 2..4)
                    .prop_map(Node::And)
                    .boxed(),
                inner.clone().prop_map(|n| Node::Not(Box::new(n))).boxed(),
            ];
            if !in_quantifier {
                options.push(
                    (any::<bool>(), data_path(false), tree(true))
                        .prop_map(|(all, path, predicate)| Node::Quantifier {
                            kind: if all {
                                Quantifier::All
                            } else {
                                Quantifier::Any
                            },
                            path,
                            predicate: Box::new(predicate),
                        })
                        .boxed(),
                );
            }
            prop::strategy::Union::new(options)
        })
        .boxed()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        any_string().prop_map(Value::String),
        prop::sample::select(vec!["10.1.2.3", "::1", "2001:db8::5", "a", "A-1"])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    any_string(),
                    prop::sample::select(vec![
                        "a".to_string(),
                        "b".to_string(),
                        "items".to_string()
                    ])
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Fragments that make random inputs reach deep into the grammar.
fn dsl_soup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "payload",
        "topic",
        "headers",
        "meta",
        "it",
        ".",
        "a",
        "id",
        "[",
        "]",
        "\"x\"",
        "\"",
        "\\",
        "0",
        "1.5e3",
        "-",
        "(",
        ")",
        ",",
        "==",
        "!=",
        "<",
        ">=",
        "!",
        "&&",
        "||",
        "in",
        "not in",
        "starts_with",
        "icontains",
        "exists",
        "matches",
        "like",
        "between",
        "cidr",
        "any",
        "all",
        "true",
        "null",
        "\"10.0.0.0/8\"",
        "\"(a+)+$\"",
        " ",
        "\n",
        "é",
        "🎉",
        "\u{0}",
    ]);
    prop::collection::vec(tokens, 0..40).prop_map(|t| t.concat())
}

fn sample_event(payload: &Value) -> Event<'_> {
    static HEADERS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let headers = HEADERS.get_or_init(|| vec![("X-A".to_string(), "10.0.0.1".to_string())]);
    Event::new("orders.created", payload)
        .with_headers(headers)
        .with_meta(Meta {
            id: Some("e1"),
            time: None,
            source: Some("s"),
        })
}

proptest! {
    // 512 cases by default; PROPTEST_CASES=100000 for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = Filter::compile(&src, &Limits::default());
    }

    #[test]
    fn dsl_like_text_never_panics_and_what_compiles_round_trips(src in dsl_soup(), payload in json_value()) {
        match Filter::compile(&src, &Limits::default()) {
            Ok(filter) => {
                let _ = filter.matches(&sample_event(&payload));
                let printed = filter.to_string();
                let again = parse(&printed, &generous());
                prop_assert_eq!(again.as_ref().ok(), Some(filter.ast()), "printed: {}", printed);
            }
            Err(e) => {
                // Errors are well-formed: a real position, a caret, no grammar jargon.
                let pos = e.position();
                prop_assert!(pos.offset <= src.len() && src.is_char_boundary(pos.offset));
                prop_assert!(pos.line >= 1 && pos.column >= 1);
                prop_assert!(e.caret_excerpt().ends_with('^'));
                prop_assert!(!e.message().is_empty());
                for leak in ["EOI", "or_expr", "cmp_op", "field_seg", "lparen"] {
                    prop_assert!(!e.message().contains(leak), "{}", e.message());
                }
            }
        }
    }

    #[test]
    fn printed_trees_reparse_to_the_same_tree(node in tree(false)) {
        let printed = node.to_string();
        match parse(&printed, &generous()) {
            Ok(back) => prop_assert_eq!(back, node, "printed: {}", printed),
            Err(e) => prop_assert!(false, "`{}` did not parse: {} {}", printed, e.code(), e),
        }
    }

    #[test]
    fn evaluation_never_panics_on_random_json(node in tree(false), payload in json_value()) {
        let filter = Filter::compile(&node.to_string(), &generous()).unwrap();
        let event = sample_event(&payload);
        let first = filter.matches(&event);
        // Deterministic, and a clone behaves the same.
        prop_assert_eq!(filter.clone().matches(&event), first);
    }
}

/// Tokens of the formula language, so random sequences often compile.
fn formula_text() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "payload",
        "payload.a",
        "payload.s",
        "payload.items",
        "payload.n",
        ".a",
        "[0]",
        "it",
        "it.x",
        "topic",
        "meta.id",
        "(",
        ")",
        ",",
        " ",
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "<",
        "!",
        "&&",
        "||",
        "in",
        "[1, \"a\"]",
        "1",
        "0",
        "-1",
        "2.5",
        "1e308",
        "\"x\"",
        "\"\"",
        "null",
        "true",
        "lower(",
        "upper(",
        "trim(",
        "len(",
        "substring(",
        "replace(",
        "concat(",
        "join(",
        "split(",
        "to_string(",
        "to_number(",
        "to_bool(",
        "round(",
        "floor(",
        "abs(",
        "min(",
        "max(",
        "sha256(",
        "hmac_sha256(",
        "unix_time(",
        "type_of(",
        "coalesce(",
        "if(",
        "format_time(",
        "\"%Y-%m-%d\"",
        "\"rfc3339\"",
        "template(\"a{",
        "}b\")",
        "template(\"{payload.s}\")",
        "exists(",
        "any(payload.items, ",
        "matches(",
        "\"^a\"",
        "starts_with",
    ]);
    prop::collection::vec(token, 0..14).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    /// Formulas: arbitrary token soup never panics the compiler; whatever compiles
    /// evaluates without panicking on random JSON, inside its budget.
    #[test]
    fn formula_text_never_panics(src in formula_text(), payload in json_value(), it in json_value(), element: bool) {
        use gatepulse_filter_dsl::{Budget, Formula, FormulaOptions};
        let options = FormulaOptions { element, condition: false };
        if let Ok(f) = Formula::compile(&src, &Limits::default(), options) {
            let event = Event::new("orders.created", &payload);
            let budget = Budget::new(10_000, 4096);
            let v = f.eval(&event, if element { Some(&it) } else { None }, &budget);
            if let Some(v) = v.into_value() {
                prop_assert!(serde_json::to_vec(&v).is_ok());
            }
        }
    }
}

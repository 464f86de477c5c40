//! Source text → checked syntax tree.
//!
//! Owns the pest parser and the walk that turns pest pairs into `ast::Node`, enforcing
//! every compile-time rule that needs a source position: the tree limits (nodes, chain
//! terms, path segments, list and string sizes, regex count and size), name resolution
//! (`topic`, `payload`, `headers`, `meta`, `it`, function names) and the type errors
//! that are visible without an event. The pre-scan in `limits.rs` runs first, so the
//! recursion here is bounded by the nesting limit. Evaluation lives in `program.rs`.

use std::collections::HashMap;

use pest::Parser as _;
use pest::iterators::Pair;
use regex::Regex;
use serde_json::Value;

use crate::ast::{CidrArg, CmpOp, InRhs, Node, Operand, Path, Quantifier, Root, Segment, StrOp};
use crate::cidr::Net;
use crate::error::{self, ErrorCode, FilterError};
use crate::limits::{self, Limits};
use crate::value::num_cmp;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
pub(crate) struct DslParser;

/// Compiled regexes, keyed by (is a case-insensitive literal, source).
pub(crate) type RegexCache = HashMap<(bool, String), Regex>;

/// A parsed filter plus the regexes built while checking it (so they compile once).
pub(crate) struct Parsed<T> {
    pub(crate) tree: T,
    pub(crate) regexes: RegexCache,
}

/// Parses and checks a filter.
pub(crate) fn parse_filter(src: &str, limits: &Limits) -> Result<Parsed<Node>, FilterError> {
    limits::prescan(src, limits)?;
    let top = parse_rule(src, Rule::filter)?;
    let mut builder = Builder::new(src, limits);
    let tree = match top.into_inner().find(|p| p.as_rule() == Rule::or_expr) {
        Some(expr) => builder.or_expr(expr, 0)?,
        None => return Err(builder.error(ErrorCode::SyntaxError, 0, "empty expression")),
    };
    Ok(Parsed {
        tree,
        regexes: builder.regexes,
    })
}

/// Parses and checks a value expression (a path or a literal).
pub(crate) fn parse_value(src: &str, limits: &Limits) -> Result<Operand, FilterError> {
    limits::prescan(src, limits)?;
    let top = parse_rule(src, Rule::value_expr)?;
    let mut builder = Builder::new(src, limits);
    match top.into_inner().find(|p| p.as_rule() != Rule::EOI) {
        Some(pair) => Ok(builder.operand(pair)?.0),
        None => Err(builder.error(ErrorCode::SyntaxError, 0, "empty expression")),
    }
}

/// Parses a path on its own (a mapping target such as `payload.customer["e-mail"]`);
/// `allow_it` lets it start with `it` (the element inside a mapping's `map` op).
pub(crate) fn parse_path(src: &str, limits: &Limits, allow_it: bool) -> Result<Path, FilterError> {
    limits::prescan(src, limits)?;
    let top = parse_rule(src, Rule::path_only)?;
    let mut builder = Builder::new(src, limits);
    builder.in_quantifier = allow_it;
    match top.into_inner().find(|p| p.as_rule() == Rule::path) {
        Some(pair) => builder.path(pair),
        None => Err(builder.error(ErrorCode::SyntaxError, 0, "expected a path")),
    }
}

pub(crate) fn parse_rule(src: &str, rule: Rule) -> Result<Pair<'_, Rule>, FilterError> {
    let formula = rule == Rule::formula;
    let mut pairs =
        DslParser::parse(rule, src).map_err(|e| error::from_pest_in(src, &e, formula))?;
    pairs
        .next()
        .ok_or_else(|| FilterError::new(ErrorCode::SyntaxError, src, 0, "empty expression".into()))
}

/// What is known about an operand's type before seeing an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaticType {
    Unknown,
    String,
    Number,
    Bool,
    Null,
    List,
    /// The result of arithmetic in a formula: a number, or `null` (division by zero, a
    /// non-finite result). Compares like a number, and like a value with `null`.
    NumOrNull,
}

impl StaticType {
    pub(crate) fn of_value(v: &Value) -> StaticType {
        match v {
            Value::Null => StaticType::Null,
            Value::Bool(_) => StaticType::Bool,
            Value::Number(_) => StaticType::Number,
            Value::String(_) => StaticType::String,
            Value::Array(_) | Value::Object(_) => StaticType::List,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            StaticType::Unknown => "value",
            StaticType::String => "string",
            StaticType::Number => "number",
            StaticType::Bool => "boolean",
            StaticType::Null => "null",
            StaticType::List => "list",
            StaticType::NumOrNull => "number",
        }
    }
}

pub(crate) struct Builder<'s, 'l> {
    pub(crate) src: &'s str,
    pub(crate) limits: &'l Limits,
    pub(crate) nodes: usize,
    pub(crate) regex_count: usize,
    pub(crate) regexes: RegexCache,
    /// Inside the predicate of `any`/`all`: `it` is allowed, another quantifier is not.
    pub(crate) in_quantifier: bool,
}

impl<'s, 'l> Builder<'s, 'l> {
    pub(crate) fn new(src: &'s str, limits: &'l Limits) -> Self {
        Builder {
            src,
            limits,
            nodes: 0,
            regex_count: 0,
            regexes: HashMap::new(),
            in_quantifier: false,
        }
    }

    pub(crate) fn error(
        &self,
        code: ErrorCode,
        offset: usize,
        message: impl Into<String>,
    ) -> FilterError {
        FilterError::new(code, self.src, offset, message.into())
    }

    /// Counts one tree node and fails once there are too many.
    pub(crate) fn count(&mut self, at: usize) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.error(
                ErrorCode::TooManyNodes,
                at,
                format!(
                    "expression has more than {} parts (conditions, paths and values)",
                    self.limits.max_nodes
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_depth(&self, depth: usize, at: usize) -> Result<(), FilterError> {
        let max = self.limits.depth();
        if depth > max {
            return Err(self.error(
                ErrorCode::NestingTooDeep,
                at,
                format!("expression is nested more than {max} levels deep"),
            ));
        }
        Ok(())
    }

    // ---- conditions -------------------------------------------------------

    fn or_expr(&mut self, pair: Pair<'s, Rule>, depth: usize) -> Result<Node, FilterError> {
        let terms: Vec<Pair<'s, Rule>> = pair
            .into_inner()
            .filter(|p| p.as_rule() == Rule::and_expr)
            .collect();
        self.chain(terms, depth, "||", Node::Or, Self::and_expr)
    }

    fn and_expr(&mut self, pair: Pair<'s, Rule>, depth: usize) -> Result<Node, FilterError> {
        let terms: Vec<Pair<'s, Rule>> = pair
            .into_inner()
            .filter(|p| p.as_rule() == Rule::unary)
            .collect();
        self.chain(terms, depth, "&&", Node::And, Self::unary)
    }

    fn chain(
        &mut self,
        terms: Vec<Pair<'s, Rule>>,
        depth: usize,
        op: &str,
        make: fn(Vec<Node>) -> Node,
        term: fn(&mut Self, Pair<'s, Rule>, usize) -> Result<Node, FilterError>,
    ) -> Result<Node, FilterError> {
        if let Some(extra) = terms.get(self.limits.max_chain_terms) {
            return Err(self.error(
                ErrorCode::ChainTooLong,
                extra.as_span().start(),
                format!(
                    "more than {} terms joined by `{op}`; use `in [...]` for long lists of values",
                    self.limits.max_chain_terms
                ),
            ));
        }
        if terms.len() == 1 {
            let mut terms = terms;
            return match terms.pop() {
                Some(only) => term(self, only, depth),
                None => Err(self.error(ErrorCode::SyntaxError, 0, "empty expression")),
            };
        }
        let at = terms.first().map_or(0, |p| p.as_span().start());
        self.check_depth(depth + 1, at)?;
        self.count(at)?;
        let mut nodes = Vec::with_capacity(terms.len());
        for pair in terms {
            nodes.push(term(self, pair, depth + 1)?);
        }
        Ok(make(nodes))
    }

    fn unary(&mut self, pair: Pair<'s, Rule>, depth: usize) -> Result<Node, FilterError> {
        let mut nots = 0usize;
        let mut primary = None;
        for inner in pair.into_inner() {
            if inner.as_rule() == Rule::not_op {
                nots += 1;
                self.check_depth(depth + nots, inner.as_span().start())?;
                self.count(inner.as_span().start())?;
            } else {
                primary = Some(inner);
            }
        }
        let Some(primary) = primary else {
            return Err(self.error(ErrorCode::SyntaxError, 0, "expected a condition"));
        };
        let mut node = self.primary(primary, depth + nots)?;
        for _ in 0..nots {
            node = Node::Not(Box::new(node));
        }
        Ok(node)
    }

    fn primary(&mut self, pair: Pair<'s, Rule>, depth: usize) -> Result<Node, FilterError> {
        let at = pair.as_span().start();
        match pair.as_rule() {
            Rule::group => match pair.into_inner().find(|p| p.as_rule() == Rule::or_expr) {
                Some(inner) => self.or_expr(inner, depth),
                None => Err(self.error(ErrorCode::SyntaxError, at, "expected a condition")),
            },
            Rule::comparison => self.comparison(pair, depth),
            _ => Err(self.error(ErrorCode::SyntaxError, at, "expected a condition")),
        }
    }

    fn comparison(&mut self, pair: Pair<'s, Rule>, depth: usize) -> Result<Node, FilterError> {
        let at = pair.as_span().start();
        let parts: Vec<Pair<'s, Rule>> = pair.into_inner().collect();
        self.check_depth(depth, at)?;
        match parts.as_slice() {
            // A function call is a condition on its own; any other operand is not.
            [call] if call.as_rule() == Rule::call => {
                self.count(at)?;
                self.call(call.clone(), depth)
            }
            [bare] => Err(error::expected_operator(self.src, bare.as_span().end())),
            [left, op, right] => {
                self.count(at)?;
                self.binary(left, op, right)
            }
            _ => Err(self.error(ErrorCode::SyntaxError, at, "expected a comparison")),
        }
    }

    /// `name(args…)` as a condition: checks the name, the arity and each argument.
    fn call(&mut self, pair: Pair<'s, Rule>, depth: usize) -> Result<Node, FilterError> {
        let at = pair.as_span().start();
        let mut inner = pair.clone().into_inner();
        let name = inner.next().map_or("", |p| p.as_str());
        let args: Vec<Pair<'s, Rule>> = inner.filter(|p| p.as_rule() == Rule::or_expr).collect();
        let Some(usage) = usage(name) else {
            return Err(self.call_error(pair, false));
        };
        let arity = match name {
            "exists" => 1,
            "between" => 3,
            _ => 2,
        };
        if args.len() != arity {
            return Err(self.call_error(pair, false));
        }
        if matches!(name, "any" | "all") && self.in_quantifier {
            return Err(self.error(
                ErrorCode::NestedQuantifier,
                at,
                "any(...)/all(...) cannot be nested: the predicate sees one array level",
            ));
        }
        let path = self.path_arg(&args[0], name, usage)?;
        match name {
            "exists" => Ok(Node::Exists(path)),
            "matches" => {
                let (pattern, pat_at) = self.string_arg(&args[1], name)?;
                self.regex_count += 1;
                if self.regex_count > self.limits.max_regexes {
                    return Err(self.error(
                        ErrorCode::TooManyRegexes,
                        at,
                        format!(
                            "more than {} `matches(...)` calls in one expression",
                            self.limits.max_regexes
                        ),
                    ));
                }
                self.regex(&pattern, false, pat_at)?;
                Ok(Node::Matches(path, pattern))
            }
            "like" => {
                let (pattern, _) = self.string_arg(&args[1], name)?;
                Ok(Node::Like(path, pattern))
            }
            "between" => {
                self.not_a_string(&path, "between", at)?;
                let (low, low_at) = self.number_arg(&args[1])?;
                let (high, _) = self.number_arg(&args[2])?;
                if num_cmp(&low, &high) == Some(std::cmp::Ordering::Greater) {
                    return Err(self.error(
                        ErrorCode::InvalidArgument,
                        low_at,
                        format!(
                            "between(..., {low}, {high}) can never match: the low bound is above the high bound"
                        ),
                    ));
                }
                Ok(Node::Between(path, low, high))
            }
            "cidr" => {
                let net_at = args[1].as_span().start();
                let value = match arg_operand(&args[1]) {
                    Some(operand) => self.operand(operand)?.0,
                    None => Operand::Literal(Value::Null),
                };
                let arg = match value {
                    Operand::Literal(Value::String(s)) => {
                        self.net(&s, net_at)?;
                        CidrArg::One(s)
                    }
                    Operand::Literal(Value::Array(items)) if !items.is_empty() => {
                        let mut nets = Vec::with_capacity(items.len());
                        for item in items {
                            let Value::String(s) = item else {
                                return Err(self.error(
                                    ErrorCode::TypeError,
                                    net_at,
                                    "cidr(...) takes a network string like \"10.0.0.0/8\" or a list of them",
                                ));
                            };
                            self.net(&s, net_at)?;
                            nets.push(s);
                        }
                        CidrArg::Many(nets)
                    }
                    _ => {
                        return Err(self.error(
                            ErrorCode::TypeError,
                            net_at,
                            "cidr(...) takes a network string like \"10.0.0.0/8\" or a non-empty list of them",
                        ));
                    }
                };
                Ok(Node::Cidr(path, arg))
            }
            _ => {
                // any / all
                if matches!(path.root, Root::Topic | Root::Headers | Root::Meta) {
                    return Err(self.error(
                        ErrorCode::TypeError,
                        args[0].as_span().start(),
                        format!("`{path}` is a string, not an array"),
                    ));
                }
                self.in_quantifier = true;
                let predicate = self.or_expr(args[1].clone(), depth + 1);
                self.in_quantifier = false;
                Ok(Node::Quantifier {
                    kind: if name == "all" {
                        Quantifier::All
                    } else {
                        Quantifier::Any
                    },
                    path,
                    predicate: Box::new(predicate?),
                })
            }
        }
    }

    /// A call that cannot be what it looks like: an unknown function, a known one with
    /// the wrong number of arguments, or (`as_operand`) a condition used as a value.
    fn call_error(&self, pair: Pair<'s, Rule>, as_operand: bool) -> FilterError {
        let at = pair.as_span().start();
        let name = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::name)
            .map_or("", |p| p.as_str());
        let Some(usage) = usage(name) else {
            return self.error(
                ErrorCode::UnknownFunction,
                at,
                format!(
                    "unknown function `{name}`; the functions are exists, matches, like, between, cidr, any and all"
                ),
            );
        };
        if as_operand {
            self.error(
                ErrorCode::TypeError,
                at,
                format!(
                    "{name}(...) is a condition, not a value: use it on its own, as in {usage} && ..."
                ),
            )
        } else {
            self.error(
                ErrorCode::SyntaxError,
                at,
                format!("wrong arguments for {name}(...): it is written {usage}"),
            )
        }
    }

    fn binary(
        &mut self,
        left: &Pair<'s, Rule>,
        op: &Pair<'s, Rule>,
        right: &Pair<'s, Rule>,
    ) -> Result<Node, FilterError> {
        let op_at = op.as_span().start();
        let right_at = right.as_span().start();
        let (left_op, left_ty) = self.operand(left.clone())?;
        match op.as_rule() {
            Rule::cmp_op => {
                let cmp = match op.as_str() {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let (right_op, right_ty) = self.operand(right.clone())?;
                self.check_compare(cmp, left_ty, right_ty, op_at)?;
                Ok(Node::Compare {
                    op: cmp,
                    left: left_op,
                    right: right_op,
                })
            }
            Rule::in_op | Rule::not_in_op => {
                let negated = op.as_rule() == Rule::not_in_op;
                let rhs = if right.as_rule() == Rule::path {
                    let path = self.path(right.clone())?;
                    if matches!(path.root, Root::Topic | Root::Headers | Root::Meta) {
                        return Err(self.error(
                            ErrorCode::TypeError,
                            right_at,
                            format!(
                                "`{path}` is a string, not an array; `in` needs a list or an array"
                            ),
                        ));
                    }
                    InRhs::Path(path)
                } else {
                    let (value, _) = self.operand(right.clone())?;
                    let Operand::Literal(Value::Array(items)) = value else {
                        return Err(self.error(
                            ErrorCode::SyntaxError,
                            right_at,
                            "expected a list",
                        ));
                    };
                    if left_ty == StaticType::List {
                        return Err(self.error(
                            ErrorCode::TypeError,
                            left.as_span().start(),
                            "the left side of `in [...]` is one value, not a list (lists hold strings, numbers, booleans and null)",
                        ));
                    }
                    self.check_in_list(left_ty, &items, right_at)?;
                    InRhs::List(items)
                };
                Ok(Node::In {
                    negated,
                    left: left_op,
                    right: rhs,
                })
            }
            Rule::str_op => {
                let spelled = op.as_str();
                let case_insensitive = spelled.starts_with('i');
                let str_op = match spelled.trim_start_matches('i') {
                    "starts_with" => StrOp::StartsWith,
                    "ends_with" => StrOp::EndsWith,
                    _ => StrOp::Contains,
                };
                if !matches!(left_ty, StaticType::Unknown | StaticType::String) {
                    return Err(self.error(
                        ErrorCode::TypeError,
                        left.as_span().start(),
                        format!(
                            "`{spelled}` tests strings; the left side is a {}",
                            left_ty.name()
                        ),
                    ));
                }
                let (right_op, _) = self.operand(right.clone())?;
                let Operand::Literal(Value::String(needle)) = right_op else {
                    return Err(self.error(
                        ErrorCode::TypeError,
                        right_at,
                        format!("the right side of `{spelled}` must be a string in double quotes"),
                    ));
                };
                if case_insensitive && str_op == StrOp::Contains {
                    self.regex(&needle, true, right_at)?;
                }
                Ok(Node::StrTest {
                    op: str_op,
                    case_insensitive,
                    left: left_op,
                    needle,
                })
            }
            _ => Err(self.error(
                ErrorCode::SyntaxError,
                op_at,
                "expected a comparison operator",
            )),
        }
    }

    pub(crate) fn check_compare(
        &self,
        op: CmpOp,
        left: StaticType,
        right: StaticType,
        at: usize,
    ) -> Result<(), FilterError> {
        let sym = op.as_str();
        if op.is_ordering() {
            for side in [left, right] {
                if !matches!(
                    side,
                    StaticType::Unknown
                        | StaticType::String
                        | StaticType::Number
                        | StaticType::NumOrNull
                ) {
                    return Err(self.error(
                        ErrorCode::TypeError,
                        at,
                        format!("`{sym}` compares numbers or strings, not a {}", side.name()),
                    ));
                }
            }
        }
        let maybe_null_number = |a: StaticType, b: StaticType| {
            a == StaticType::NumOrNull
                && matches!(
                    b,
                    StaticType::Number | StaticType::Null | StaticType::NumOrNull
                )
        };
        if left != StaticType::Unknown
            && right != StaticType::Unknown
            && left != right
            && !maybe_null_number(left, right)
            && !maybe_null_number(right, left)
        {
            let outcome = if op == CmpOp::Ne { "true" } else { "false" };
            return Err(self.error(
                ErrorCode::TypeError,
                at,
                format!(
                    "comparing a {} with a {} using `{sym}` is always {outcome}: values are never converted between types",
                    left.name(),
                    right.name()
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_in_list(
        &self,
        left: StaticType,
        items: &[Value],
        at: usize,
    ) -> Result<(), FilterError> {
        if items.is_empty()
            || matches!(
                left,
                StaticType::Unknown | StaticType::List | StaticType::NumOrNull
            )
        {
            return Ok(());
        }
        if items.iter().any(|v| StaticType::of_value(v) == left) {
            return Ok(());
        }
        Err(self.error(
            ErrorCode::TypeError,
            at,
            format!(
                "the left side is a {} but the list holds no {} values, so `in` can never match",
                left.name(),
                left.name()
            ),
        ))
    }

    pub(crate) fn not_a_string(
        &self,
        path: &Path,
        func: &str,
        at: usize,
    ) -> Result<(), FilterError> {
        if matches!(path.root, Root::Topic | Root::Headers | Root::Meta) {
            return Err(self.error(
                ErrorCode::TypeError,
                at,
                format!("{func}(...) tests numbers; `{path}` is a string"),
            ));
        }
        Ok(())
    }

    // ---- arguments ---------------------------------------------------------

    fn path_arg(
        &mut self,
        arg: &Pair<'s, Rule>,
        name: &str,
        usage: &str,
    ) -> Result<Path, FilterError> {
        match arg_operand(arg) {
            Some(p) if p.as_rule() == Rule::path => self.path(p),
            _ => Err(self.error(
                ErrorCode::SyntaxError,
                arg.as_span().start(),
                format!("the first argument of {name}(...) must be a path: {usage}"),
            )),
        }
    }

    fn string_arg(
        &mut self,
        arg: &Pair<'s, Rule>,
        func: &str,
    ) -> Result<(String, usize), FilterError> {
        let at = arg.as_span().start();
        if let Some(operand) = arg_operand(arg)
            && let Operand::Literal(Value::String(s)) = self.operand(operand)?.0
        {
            return Ok((s, at));
        }
        Err(self.error(
            ErrorCode::TypeError,
            at,
            format!("the pattern of {func}(...) must be a string in double quotes"),
        ))
    }

    fn number_arg(
        &mut self,
        arg: &Pair<'s, Rule>,
    ) -> Result<(serde_json::Number, usize), FilterError> {
        let at = arg.as_span().start();
        if let Some(operand) = arg_operand(arg)
            && let Operand::Literal(Value::Number(n)) = self.operand(operand)?.0
        {
            return Ok((n, at));
        }
        Err(self.error(
            ErrorCode::TypeError,
            at,
            format!(
                "between(...) bounds must be number literals, not `{}`",
                arg.as_str()
            ),
        ))
    }

    pub(crate) fn net(&self, text: &str, at: usize) -> Result<Net, FilterError> {
        Net::parse(text).map_err(|why| {
            self.error(
                ErrorCode::InvalidArgument,
                at,
                format!("invalid network for cidr(...): {why}"),
            )
        })
    }

    pub(crate) fn regex(
        &mut self,
        source: &str,
        literal_ci: bool,
        at: usize,
    ) -> Result<(), FilterError> {
        let key = (literal_ci, source.to_string());
        if self.regexes.contains_key(&key) {
            return Ok(());
        }
        let built = if literal_ci {
            build_regex(&regex::escape(source), true, self.limits)
        } else {
            build_regex(source, false, self.limits)
        };
        match built {
            Ok(re) => {
                self.regexes.insert(key, re);
                Ok(())
            }
            Err(regex::Error::CompiledTooBig(limit)) => Err(self.error(
                ErrorCode::RegexTooBig,
                at,
                format!("regex compiles to more than {limit} bytes; simplify it (large repetition counts are the usual cause)"),
            )),
            Err(e) => {
                let text = e.to_string();
                let why = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("error: "))
                    .unwrap_or("invalid regex");
                Err(self.error(
                    ErrorCode::RegexInvalid,
                    at,
                    format!("invalid regex: {why}"),
                ))
            }
        }
    }

    // ---- operands ----------------------------------------------------------

    pub(crate) fn operand(
        &mut self,
        pair: Pair<'s, Rule>,
    ) -> Result<(Operand, StaticType), FilterError> {
        let at = pair.as_span().start();
        let value = match pair.as_rule() {
            Rule::path => {
                let path = self.path(pair)?;
                let ty = match path.root {
                    Root::Topic | Root::Headers | Root::Meta => StaticType::String,
                    Root::Payload | Root::It => StaticType::Unknown,
                };
                return Ok((Operand::Path(path), ty));
            }
            Rule::call => return Err(self.call_error(pair, true)),
            Rule::list => {
                let mut items = Vec::new();
                for item in pair.into_inner() {
                    if matches!(
                        item.as_rule(),
                        Rule::lbracket | Rule::rbracket | Rule::comma
                    ) {
                        continue;
                    }
                    if items.len() >= self.limits.max_list_len {
                        return Err(limits::list_too_long(
                            self.src,
                            item.as_span().start(),
                            self.limits.max_list_len,
                        ));
                    }
                    items.push(self.scalar(item)?);
                }
                Value::Array(items)
            }
            _ => self.scalar(pair)?,
        };
        self.count(at)?;
        let ty = StaticType::of_value(&value);
        Ok((Operand::Literal(value), ty))
    }

    pub(crate) fn scalar(&self, pair: Pair<'s, Rule>) -> Result<Value, FilterError> {
        let at = pair.as_span().start();
        match pair.as_rule() {
            Rule::string => self.string(&pair).map(Value::String),
            Rule::number => parse_number(pair.as_str())
                .map(Value::Number)
                .ok_or_else(|| {
                    self.error(
                        ErrorCode::InvalidNumber,
                        at,
                        format!("number `{}` is out of range", pair.as_str()),
                    )
                }),
            Rule::true_lit => Ok(Value::Bool(true)),
            Rule::false_lit => Ok(Value::Bool(false)),
            Rule::null_lit => Ok(Value::Null),
            _ => Err(self.error(ErrorCode::SyntaxError, at, "expected a literal")),
        }
    }

    pub(crate) fn string(&self, pair: &Pair<'s, Rule>) -> Result<String, FilterError> {
        let at = pair.as_span().start();
        // The grammar accepted exactly JSON string syntax; serde_json decodes escapes and
        // rejects lone surrogates.
        let decoded: String = serde_json::from_str(pair.as_str()).map_err(|_| {
            self.error(
                ErrorCode::SyntaxError,
                at,
                "invalid escape in string (a \\u escape is not a valid character)",
            )
        })?;
        if decoded.len() > self.limits.max_string_len {
            return Err(self.error(
                ErrorCode::StringTooLong,
                at,
                format!(
                    "string is {} bytes long; the limit is {} bytes",
                    decoded.len(),
                    self.limits.max_string_len
                ),
            ));
        }
        Ok(decoded)
    }

    pub(crate) fn path(&mut self, pair: Pair<'s, Rule>) -> Result<Path, FilterError> {
        let at = pair.as_span().start();
        let text = pair.as_str();
        let mut inner = pair.into_inner();
        let root_name = inner.next().map_or("", |p| p.as_str());
        let root = match root_name {
            "topic" => Root::Topic,
            "payload" => Root::Payload,
            "headers" => Root::Headers,
            "meta" => Root::Meta,
            "it" if self.in_quantifier => Root::It,
            "it" => {
                return Err(self.error(
                    ErrorCode::ItOutsideQuantifier,
                    at,
                    "`it` is the current element and only exists inside any(...) or all(...)",
                ));
            }
            other => {
                return Err(self.error(
                    ErrorCode::UnknownName,
                    at,
                    format!(
                        "unknown name `{other}`; a path starts with topic, payload, headers or meta (strings need double quotes)"
                    ),
                ));
            }
        };
        let mut segments = Vec::new();
        for seg in inner {
            let seg_at = seg.as_span().start();
            if segments.len() >= self.limits.max_path_segments {
                return Err(self.error(
                    ErrorCode::PathTooLong,
                    seg_at,
                    format!(
                        "path has more than {} segments",
                        self.limits.max_path_segments
                    ),
                ));
            }
            let rule = seg.as_rule();
            let Some(part) = seg.into_inner().next() else {
                return Err(self.error(ErrorCode::SyntaxError, seg_at, "expected a path segment"));
            };
            let segment = match rule {
                Rule::field_seg => Segment::Field(part.as_str().to_string()),
                Rule::key_seg => Segment::Field(self.string(&part)?),
                _ => match part.as_str().parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => {
                        return Err(self.error(
                            ErrorCode::InvalidNumber,
                            seg_at,
                            format!("array index `{}` is too large", part.as_str()),
                        ));
                    }
                },
            };
            segments.push(segment);
        }
        match root {
            Root::Topic if !segments.is_empty() => {
                return Err(self.error(
                    ErrorCode::TypeError,
                    at,
                    "`topic` is a string and has no fields",
                ));
            }
            Root::Headers => match segments.as_slice() {
                [Segment::Field(_)] => {}
                [] | [Segment::Index(_)] => {
                    return Err(self.error(
                        ErrorCode::TypeError,
                        at,
                        "name a header: headers[\"x-request-id\"]",
                    ));
                }
                _ => {
                    return Err(self.error(
                        ErrorCode::TypeError,
                        at,
                        format!("`{text}`: a header value is a string and has no fields"),
                    ));
                }
            },
            Root::Meta => {
                match segments.as_slice() {
                    [Segment::Field(f)] if matches!(f.as_str(), "id" | "time" | "source") => {}
                    _ => {
                        return Err(self.error(
                        ErrorCode::UnknownName,
                        at,
                        format!("unknown field `{text}`; meta has meta.id, meta.time and meta.source"),
                    ));
                    }
                }
            }
            _ => {}
        }
        self.count(at)?;
        Ok(Path { root, segments })
    }
}

/// Builds a regex under the configured limits. `ci` makes it case-insensitive.
pub(crate) fn build_regex(pattern: &str, ci: bool, limits: &Limits) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(ci)
        .size_limit(limits.max_regex_size)
        .dfa_size_limit(limits.max_regex_dfa_size)
        .nest_limit(64)
        .build()
}

/// A number literal as JSON would hold it: an integer when it has no fraction or
/// exponent and fits u64/i64, otherwise an f64. Floats are parsed exactly (std's
/// correctly rounded parser), so printing and re-parsing gives the same value.
pub(crate) fn parse_number(text: &str) -> Option<serde_json::Number> {
    let integral = !text.contains(['.', 'e', 'E']);
    if integral {
        if let Ok(u) = text.parse::<u64>() {
            return Some(u.into());
        }
        if let Ok(i) = text.parse::<i64>() {
            return Some(i.into());
        }
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

/// How each function is written, for error messages; `None` for unknown names.
fn usage(name: &str) -> Option<&'static str> {
    Some(match name {
        "exists" => "exists(path)",
        "matches" => "matches(path, \"regex\")",
        "like" => "like(path, \"glob*\")",
        "between" => "between(path, low, high)",
        "cidr" => "cidr(path, \"10.0.0.0/8\")",
        "any" => "any(path, condition on it)",
        "all" => "all(path, condition on it)",
        _ => return None,
    })
}

/// The operand inside a call argument, when the argument is just a value (a path or a
/// literal) rather than a condition: or_expr → and_expr → unary → comparison → operand.
fn arg_operand<'s>(arg: &Pair<'s, Rule>) -> Option<Pair<'s, Rule>> {
    fn only<'s>(pair: Pair<'s, Rule>) -> Option<Pair<'s, Rule>> {
        let mut inner = pair.into_inner();
        let first = inner.next()?;
        match inner.next() {
            None => Some(first),
            Some(_) => None,
        }
    }
    let and_expr = only(arg.clone())?;
    let unary = only(and_expr)?;
    let comparison = only(unary)?;
    if comparison.as_rule() != Rule::comparison {
        return None;
    }
    only(comparison)
}

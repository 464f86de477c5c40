//! Formula source → checked, compiled tree (`F`).
//!
//! Owns the walk over the formula rules of the grammar. It reuses the filter parser's
//! `Builder` for everything the two languages share — paths and their roots, literals,
//! strings, node counting and nesting depth, regexes, CIDR networks, the static checks
//! of comparisons and `in` lists — so a formula accepts exactly what a filter accepts
//! in those places, with the same errors. What is new here: arithmetic, value
//! functions, `if`/`coalesce`/`template`/`format_time`, and the static type rules that
//! go with them.

use pest::iterators::Pair;
use serde_json::Value;

use crate::ast::{CidrArg, CmpOp, Operand, Root};
use crate::error::{ErrorCode, FilterError};
use crate::glob::Glob;
use crate::limits::{self, Limits};
use crate::parser::{Builder, Rule, StaticType, parse_rule};
use crate::program::{LitSet, Pred, cpath};
use crate::value::num_cmp;

use super::eval::{F, Part, TimeFormat};
use super::func::{self, MAX_VARIADIC};
use super::num::ArithOp;
use super::template::{self, OffsetMap, Piece};
use super::{FormulaOptions, HARD_MAX_FORMULA_DEPTH};

type R<T> = Result<T, FilterError>;
type Typed = (F, StaticType);

pub(crate) struct Compiled {
    pub(crate) tree: F,
    pub(crate) nodes: usize,
}

pub(crate) fn compile(src: &str, limits: &Limits, options: FormulaOptions) -> R<Compiled> {
    let limits = Limits {
        max_depth: limits.max_depth.min(HARD_MAX_FORMULA_DEPTH),
        ..limits.clone()
    };
    limits::prescan(src, &limits)?;
    let top = parse_rule(src, Rule::formula)?;
    let mut fb = FBuilder::new(src, &limits, options.element);
    let Some(expr) = top.into_inner().find(|p| p.as_rule() == Rule::f_or) else {
        return Err(fb.b.error(ErrorCode::SyntaxError, 0, "empty expression"));
    };
    let (tree, ty) = fb.or(expr, 0).map_err(|e| friendlier(src, e))?;
    if options.condition && !is_condition(ty) {
        return Err(fb.b.error(
            ErrorCode::TypeError,
            0,
            format!(
                "a condition must be true or false, and this is always a {}; compare it, e.g. `… == \"x\"`",
                ty.name()
            ),
        ));
    }
    Ok(Compiled {
        tree,
        nodes: fb.b.nodes,
    })
}

/// Rewords the filter messages that say less than they should in a formula.
fn friendlier(src: &str, e: FilterError) -> FilterError {
    if e.kind() == ErrorCode::ItOutsideQuantifier {
        return FilterError::new(
            e.kind(),
            src,
            e.position().offset,
            "`it` is the current array element: it exists inside any(...)/all(...) and in the ops of a mapping's `map` and `filter`".into(),
        );
    }
    e
}

fn is_condition(ty: StaticType) -> bool {
    matches!(ty, StaticType::Bool | StaticType::Unknown)
}

struct FBuilder<'s, 'l> {
    b: Builder<'s, 'l>,
    /// Inside the predicate of `any`/`all` (which cannot nest).
    in_any: bool,
}

impl<'s, 'l> FBuilder<'s, 'l> {
    fn new(src: &'s str, limits: &'l Limits, element: bool) -> Self {
        let mut b = Builder::new(src, limits);
        b.in_quantifier = element;
        FBuilder { b, in_any: false }
    }

    fn type_error(&self, at: usize, message: impl Into<String>) -> FilterError {
        self.b.error(ErrorCode::TypeError, at, message)
    }

    fn need_condition(&self, ty: StaticType, at: usize, what: &str) -> R<()> {
        if is_condition(ty) {
            Ok(())
        } else {
            Err(self.type_error(
                at,
                format!(
                    "{what} takes a condition (true or false), and this is always a {}",
                    ty.name()
                ),
            ))
        }
    }

    fn chain_limit(&self, terms: usize, extra_at: usize, sym: &str) -> R<()> {
        if terms > self.b.limits.max_chain_terms {
            return Err(self.b.error(
                ErrorCode::ChainTooLong,
                extra_at,
                format!(
                    "more than {} terms joined by `{sym}`",
                    self.b.limits.max_chain_terms
                ),
            ));
        }
        Ok(())
    }

    // ---- logic -------------------------------------------------------------

    fn or(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        self.logic(pair, depth, true)
    }

    fn logic(&mut self, pair: Pair<'s, Rule>, depth: usize, is_or: bool) -> R<Typed> {
        let (term_rule, sym) = if is_or {
            (Rule::f_and, "`||`")
        } else {
            (Rule::f_not, "`&&`")
        };
        let terms: Vec<Pair<'s, Rule>> = pair
            .into_inner()
            .filter(|p| p.as_rule() == term_rule)
            .collect();
        if let Some(extra) = terms.get(self.b.limits.max_chain_terms) {
            self.chain_limit(terms.len(), extra.as_span().start(), &sym[1..sym.len() - 1])?;
        }
        let at = terms.first().map_or(0, |p| p.as_span().start());
        if terms.len() == 1 {
            let Some(only) = terms.into_iter().next() else {
                return Err(self.b.error(ErrorCode::SyntaxError, at, "expected a value"));
            };
            return self.term(only, depth, is_or);
        }
        self.b.check_depth(depth + 1, at)?;
        self.b.count(at)?;
        let mut out = Vec::with_capacity(terms.len());
        for term in terms {
            let term_at = term.as_span().start();
            let (f, ty) = self.term(term, depth + 1, is_or)?;
            self.need_condition(ty, term_at, sym)?;
            out.push(f);
        }
        let f = if is_or {
            F::Or(out.into_boxed_slice())
        } else {
            F::And(out.into_boxed_slice())
        };
        Ok((f, StaticType::Bool))
    }

    fn term(&mut self, pair: Pair<'s, Rule>, depth: usize, is_or: bool) -> R<Typed> {
        if is_or {
            self.logic(pair, depth, false)
        } else {
            self.not(pair, depth)
        }
    }

    fn not(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        let mut nots = 0usize;
        let mut inner = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::not_op {
                nots += 1;
                self.b.check_depth(depth + nots, p.as_span().start())?;
                self.b.count(p.as_span().start())?;
            } else {
                inner = Some(p);
            }
        }
        let Some(inner) = inner else {
            return Err(self.b.error(ErrorCode::SyntaxError, 0, "expected a value"));
        };
        let inner_at = inner.as_span().start();
        let (mut f, ty) = self.cmp(inner, depth + nots)?;
        if nots == 0 {
            return Ok((f, ty));
        }
        self.need_condition(ty, inner_at, "`!`")?;
        for _ in 0..nots {
            f = F::Not(Box::new(f));
        }
        Ok((f, StaticType::Bool))
    }

    // ---- comparisons --------------------------------------------------------

    fn cmp(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        let at = pair.as_span().start();
        let mut parts: Vec<Pair<'s, Rule>> = pair.into_inner().collect();
        if parts.len() == 1
            && let Some(only) = parts.pop()
        {
            return self.sum(only, depth);
        }
        let [left, op, right] = <[Pair<'s, Rule>; 3]>::try_from(parts).map_err(|_| {
            self.b
                .error(ErrorCode::SyntaxError, at, "expected a comparison")
        })?;
        self.b.check_depth(depth, at)?;
        self.b.count(at)?;
        let (left_at, op_at, right_at) = (
            left.as_span().start(),
            op.as_span().start(),
            right.as_span().start(),
        );
        let (lf, lt) = self.sum(left, depth)?;
        let f = match op.as_rule() {
            Rule::cmp_op => {
                let cmp = match op.as_str() {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let (rf, rt) = self.sum(right, depth)?;
                self.b.check_compare(cmp, lt, rt, op_at)?;
                F::Cmp(cmp, Box::new([lf, rf]))
            }
            Rule::in_op | Rule::not_in_op => {
                let negated = op.as_rule() == Rule::not_in_op;
                if right.as_rule() == Rule::path {
                    let path = self.b.path(right)?;
                    if matches!(path.root, Root::Topic | Root::Headers | Root::Meta) {
                        return Err(self.type_error(
                            right_at,
                            format!(
                                "`{path}` is a string, not an array; `in` needs a list or an array"
                            ),
                        ));
                    }
                    F::InPath {
                        negated,
                        left: Box::new(lf),
                        path: cpath(&path),
                        max: self.b.limits.max_array_iterations,
                    }
                } else {
                    let (value, _) = self.b.operand(right)?;
                    let Operand::Literal(Value::Array(items)) = value else {
                        return Err(self.b.error(
                            ErrorCode::SyntaxError,
                            right_at,
                            "expected a list",
                        ));
                    };
                    if lt == StaticType::List {
                        return Err(self.type_error(
                            left_at,
                            "the left side of `in [...]` is one value, not a list (lists hold strings, numbers, booleans and null)",
                        ));
                    }
                    self.b.check_in_list(lt, &items, right_at)?;
                    F::InList {
                        negated,
                        left: Box::new(lf),
                        set: Box::new(LitSet::new(&items)),
                    }
                }
            }
            Rule::str_op => {
                let spelled = op.as_str();
                if !matches!(lt, StaticType::Unknown | StaticType::String) {
                    return Err(self.type_error(
                        left_at,
                        format!(
                            "`{spelled}` tests strings; the left side is a {}",
                            lt.name()
                        ),
                    ));
                }
                let Some(needle) = self.string_literal(&right)? else {
                    return Err(self.type_error(
                        right_at,
                        format!("the right side of `{spelled}` must be a string in double quotes"),
                    ));
                };
                let left = Box::new(lf);
                let lowered =
                    || -> Box<str> { needle.chars().flat_map(char::to_lowercase).collect() };
                match spelled {
                    "starts_with" => F::StartsWith(left, needle.as_str().into()),
                    "ends_with" => F::EndsWith(left, needle.as_str().into()),
                    "contains" => F::Contains(left, needle.as_str().into()),
                    "istarts_with" => F::IStartsWith(left, lowered()),
                    "iends_with" => F::IEndsWith(left, lowered()),
                    _ => {
                        self.b.regex(&needle, true, right_at)?;
                        let regex = self.cached_regex(&needle, true, right_at)?;
                        F::IContains(left, regex)
                    }
                }
            }
            _ => {
                return Err(self.b.error(
                    ErrorCode::SyntaxError,
                    op_at,
                    "expected a comparison operator",
                ));
            }
        };
        Ok((f, StaticType::Bool))
    }

    fn cached_regex(&self, source: &str, ci: bool, at: usize) -> R<regex::Regex> {
        self.b
            .regexes
            .get(&(ci, source.to_string()))
            .cloned()
            .ok_or_else(|| self.b.error(ErrorCode::RegexInvalid, at, "invalid regex"))
    }

    // ---- arithmetic ---------------------------------------------------------

    fn sum(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        self.arith(pair, depth, true)
    }

    /// `f_sum` (`+ -`) or `f_prod` (`* / %`): a flat left-to-right chain.
    fn arith(&mut self, pair: Pair<'s, Rule>, depth: usize, is_sum: bool) -> R<Typed> {
        let at = pair.as_span().start();
        let mut inner: Vec<Pair<'s, Rule>> = pair.into_inner().collect();
        let next = |this: &mut Self, p: Pair<'s, Rule>, d: usize| {
            if is_sum {
                this.arith(p, d, false)
            } else {
                this.neg(p, d)
            }
        };
        if inner.len() == 1
            && let Some(only) = inner.pop()
        {
            return next(self, only, depth);
        }
        let terms = inner.len().div_ceil(2);
        if terms > self.b.limits.max_chain_terms {
            let extra_at = inner
                .get(2 * self.b.limits.max_chain_terms)
                .map_or(at, |p| p.as_span().start());
            self.chain_limit(
                terms,
                extra_at,
                if is_sum { "+ and -" } else { "*, / and %" },
            )?;
        }
        self.b.check_depth(depth + 1, at)?;
        self.b.count(at)?;
        let mut pairs = inner.into_iter();
        let Some(first) = pairs.next() else {
            return Err(self.b.error(ErrorCode::SyntaxError, at, "expected a value"));
        };
        let first_at = first.as_span().start();
        let (first, mut ty) = next(self, first, depth + 1)?;
        let mut rest = Vec::with_capacity(terms - 1);
        while let (Some(op), Some(term)) = (pairs.next(), pairs.next()) {
            let op_at = op.as_span().start();
            let term_at = term.as_span().start();
            let aop = match op.as_str() {
                "+" => ArithOp::Add,
                "-" => ArithOp::Sub,
                "*" => ArithOp::Mul,
                "/" => ArithOp::Div,
                _ => ArithOp::Rem,
            };
            let (f, term_ty) = next(self, term, depth + 1)?;
            // The left side is everything so far, which starts at the first term.
            ty = self.arith_type(aop, op.as_str(), (ty, first_at), (term_ty, term_at), op_at)?;
            rest.push((aop, f));
        }
        Ok((F::Arith(Box::new(first), rest.into_boxed_slice()), ty))
    }

    /// The static type of `left op right`, or a type error when it can never work.
    fn arith_type(
        &self,
        op: ArithOp,
        sym: &str,
        (left, left_at): (StaticType, usize),
        (right, right_at): (StaticType, usize),
        op_at: usize,
    ) -> R<StaticType> {
        use StaticType as T;
        let numeric = |t: StaticType| matches!(t, T::Unknown | T::Number | T::NumOrNull);
        if op == ArithOp::Add {
            let addable =
                |t: StaticType| matches!(t, T::Unknown | T::Number | T::NumOrNull | T::String);
            for (t, at) in [(left, left_at), (right, right_at)] {
                if !addable(t) {
                    return Err(self.type_error(
                        at,
                        format!("`+` adds numbers or joins strings, not a {}", t.name()),
                    ));
                }
            }
            return match (left, right) {
                (T::String, T::Number | T::NumOrNull) | (T::Number | T::NumOrNull, T::String) => {
                    Err(self.type_error(
                        op_at,
                        "`+` adds two numbers or joins two strings; use concat(...) to join a string and a number",
                    ))
                }
                (T::String, _) | (_, T::String) => Ok(T::String),
                // Two unknowns may be two strings.
                (T::Unknown, T::Unknown) => Ok(T::Unknown),
                // A number, or null for a non-finite result.
                _ => Ok(T::NumOrNull),
            };
        }
        for (t, at) in [(left, left_at), (right, right_at)] {
            if !numeric(t) {
                return Err(self.type_error(
                    at,
                    format!("`{sym}` works on numbers, not on a {}", t.name()),
                ));
            }
        }
        // `/` and `%` by zero are null; any overflow past f64 is null.
        Ok(T::NumOrNull)
    }

    fn neg(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        let mut negs = 0usize;
        let mut atom = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::neg_op {
                negs += 1;
                self.b.check_depth(depth + negs, p.as_span().start())?;
                self.b.count(p.as_span().start())?;
            } else {
                atom = Some(p);
            }
        }
        let Some(atom) = atom else {
            return Err(self.b.error(ErrorCode::SyntaxError, 0, "expected a value"));
        };
        let atom_at = atom.as_span().start();
        let (mut f, ty) = self.atom(atom, depth + negs)?;
        if negs == 0 {
            return Ok((f, ty));
        }
        if !matches!(
            ty,
            StaticType::Unknown | StaticType::Number | StaticType::NumOrNull
        ) {
            return Err(self.type_error(
                atom_at,
                format!("`-` negates a number, not a {}", ty.name()),
            ));
        }
        for _ in 0..negs {
            f = F::Neg(Box::new(f));
        }
        Ok((f, StaticType::Number))
    }

    fn atom(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        let at = pair.as_span().start();
        match pair.as_rule() {
            Rule::f_group => match pair.into_inner().find(|p| p.as_rule() == Rule::f_or) {
                Some(inner) => self.or(inner, depth),
                None => Err(self.b.error(ErrorCode::SyntaxError, at, "expected a value")),
            },
            Rule::f_call => self.call(pair, depth),
            Rule::path => {
                let path = self.b.path(pair)?;
                let ty = match path.root {
                    Root::Topic | Root::Headers | Root::Meta => StaticType::String,
                    Root::Payload | Root::It => StaticType::Unknown,
                };
                Ok((F::Path(cpath(&path)), ty))
            }
            _ => match self.b.operand(pair)? {
                (Operand::Literal(v), ty) => Ok((F::Lit(v), ty)),
                (Operand::Path(path), _) => Ok((F::Path(cpath(&path)), StaticType::Unknown)),
            },
        }
    }

    // ---- calls -------------------------------------------------------------

    fn call(&mut self, pair: Pair<'s, Rule>, depth: usize) -> R<Typed> {
        let at = pair.as_span().start();
        let mut inner = pair.into_inner();
        let name = inner.next().map_or("", |p| p.as_str());
        let args: Vec<Pair<'s, Rule>> = inner.filter(|p| p.as_rule() == Rule::f_or).collect();
        self.b.check_depth(depth + 1, at)?;
        self.b.count(at)?;
        let d = depth + 1;
        match name {
            "exists" | "matches" | "like" | "between" | "cidr" | "any" | "all" => {
                self.path_function(name, at, &args, d)
            }
            "if" => {
                self.arity(name, "if(condition, then, else)", at, args.len(), 3, 3)?;
                let cond_at = args[0].as_span().start();
                let (cond, cond_ty) = self.or(args[0].clone(), d)?;
                self.need_condition(cond_ty, cond_at, "if(...)")?;
                let (then, then_ty) = self.or(args[1].clone(), d)?;
                let (otherwise, else_ty) = self.or(args[2].clone(), d)?;
                let ty = if then_ty == else_ty {
                    then_ty
                } else {
                    StaticType::Unknown
                };
                Ok((F::If(Box::new([cond, then, otherwise])), ty))
            }
            "coalesce" => {
                self.arity(name, "coalesce(a, b, …)", at, args.len(), 1, MAX_VARIADIC)?;
                let mut out = Vec::with_capacity(args.len());
                for arg in args {
                    out.push(self.or(arg, d)?.0);
                }
                Ok((F::Coalesce(out.into_boxed_slice()), StaticType::Unknown))
            }
            "template" => self.template(at, &args, d),
            "format_time" => {
                self.arity(
                    name,
                    "format_time(time, \"%Y-%m-%d\")",
                    at,
                    args.len(),
                    2,
                    2,
                )?;
                let t_at = args[0].as_span().start();
                let (t, t_ty) = self.or(args[0].clone(), d)?;
                if !matches!(
                    t_ty,
                    StaticType::Unknown
                        | StaticType::String
                        | StaticType::Number
                        | StaticType::NumOrNull
                ) {
                    return Err(self.type_error(
                        t_at,
                        format!(
                            "format_time(...) takes an RFC 3339 string or Unix seconds, not a {}",
                            t_ty.name()
                        ),
                    ));
                }
                let fmt_at = args[1].as_span().start();
                let Some(fmt) = self.string_literal(&args[1])? else {
                    return Err(self.type_error(
                        fmt_at,
                        "the format of format_time(...) must be a string in double quotes, e.g. \"%Y-%m-%d\" or \"rfc3339\"",
                    ));
                };
                let format = time_format(&fmt).map_err(|why| {
                    self.b.error(
                        ErrorCode::InvalidArgument,
                        fmt_at,
                        format!("invalid time format: {why}"),
                    )
                })?;
                Ok((
                    F::FormatTime(Box::new(t), Box::new(format)),
                    StaticType::String,
                ))
            }
            _ => {
                let Some(sig) = func::lookup(name) else {
                    return Err(self.b.error(
                        ErrorCode::UnknownFunction,
                        at,
                        format!(
                            "unknown function `{name}`; formulas have {}",
                            func::ALL_FUNCTIONS
                        ),
                    ));
                };
                self.arity(name, sig.usage, at, args.len(), sig.min, sig.max)?;
                let mut out = Vec::with_capacity(args.len());
                for (i, arg) in args.into_iter().enumerate() {
                    let arg_at = arg.as_span().start();
                    let (f, ty) = self.or(arg, d)?;
                    let kind = sig.args[i.min(sig.args.len() - 1)];
                    if !kind.accepts(ty) {
                        return Err(self.type_error(
                            arg_at,
                            format!(
                                "argument {} of {} must be {}, not a {}",
                                i + 1,
                                sig.usage,
                                kind.describe(),
                                ty.name()
                            ),
                        ));
                    }
                    out.push(f);
                }
                Ok((F::Call(sig.func, out.into_boxed_slice()), sig.result))
            }
        }
    }

    fn arity(
        &self,
        name: &str,
        usage: &str,
        at: usize,
        got: usize,
        min: usize,
        max: usize,
    ) -> R<()> {
        if got < min || got > max {
            let takes = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, b) if b == a + 1 => format!("{a} or {b}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(self.b.error(
                ErrorCode::SyntaxError,
                at,
                format!(
                    "wrong number of arguments for {name}(...): it takes {takes}, not {got}; it is written {usage}"
                ),
            ));
        }
        Ok(())
    }

    /// The filter's functions: the first argument is a path, the rest literals (and a
    /// condition on `it` for any/all). Compiled to exactly the filter's predicates.
    fn path_function(
        &mut self,
        name: &str,
        at: usize,
        args: &[Pair<'s, Rule>],
        depth: usize,
    ) -> R<Typed> {
        let (usage, arity) = match name {
            "exists" => ("exists(path)", 1),
            "matches" => ("matches(path, \"regex\")", 2),
            "like" => ("like(path, \"glob*\")", 2),
            "between" => ("between(path, low, high)", 3),
            "cidr" => ("cidr(path, \"10.0.0.0/8\")", 2),
            "any" => ("any(path, condition on it)", 2),
            _ => ("all(path, condition on it)", 2),
        };
        self.arity(name, usage, at, args.len(), arity, arity)?;
        if matches!(name, "any" | "all") && self.in_any {
            return Err(self.b.error(
                ErrorCode::NestedQuantifier,
                at,
                "any(...)/all(...) cannot be nested: the predicate sees one array level",
            ));
        }
        let path_at = args[0].as_span().start();
        let path = match single_atom(&args[0]) {
            Some(p) if p.as_rule() == Rule::path => self.b.path(p)?,
            _ => {
                return Err(self.b.error(
                    ErrorCode::SyntaxError,
                    path_at,
                    format!("the first argument of {name}(...) must be a path: {usage}"),
                ));
            }
        };
        let pred = match name {
            "exists" => Pred::Exists(cpath(&path)),
            "matches" => {
                let pat_at = args[1].as_span().start();
                let Some(pattern) = self.string_literal(&args[1])? else {
                    return Err(self.type_error(
                        pat_at,
                        "the pattern of matches(...) must be a string in double quotes",
                    ));
                };
                self.b.regex_count += 1;
                if self.b.regex_count > self.b.limits.max_regexes {
                    return Err(self.b.error(
                        ErrorCode::TooManyRegexes,
                        at,
                        format!(
                            "more than {} `matches(...)` calls in one expression",
                            self.b.limits.max_regexes
                        ),
                    ));
                }
                self.b.regex(&pattern, false, pat_at)?;
                Pred::Matches(cpath(&path), self.cached_regex(&pattern, false, pat_at)?)
            }
            "like" => {
                let pat_at = args[1].as_span().start();
                let Some(pattern) = self.string_literal(&args[1])? else {
                    return Err(self.type_error(
                        pat_at,
                        "the pattern of like(...) must be a string in double quotes",
                    ));
                };
                Pred::Like(cpath(&path), Glob::new(&pattern))
            }
            "between" => {
                self.b.not_a_string(&path, "between", at)?;
                let (low, low_at) = self.number_literal(&args[1])?;
                let (high, _) = self.number_literal(&args[2])?;
                if num_cmp(&low, &high) == Some(std::cmp::Ordering::Greater) {
                    return Err(self.b.error(
                        ErrorCode::InvalidArgument,
                        low_at,
                        format!(
                            "between(..., {low}, {high}) can never match: the low bound is above the high bound"
                        ),
                    ));
                }
                Pred::Between(cpath(&path), low, high)
            }
            "cidr" => {
                let net_at = args[1].as_span().start();
                let value = match single_atom(&args[1]) {
                    Some(p) if p.as_rule() != Rule::path && p.as_rule() != Rule::f_call => {
                        match self.b.operand(p)?.0 {
                            Operand::Literal(v) => v,
                            Operand::Path(_) => Value::Null,
                        }
                    }
                    _ => Value::Null,
                };
                let texts = match value {
                    Value::String(s) => CidrArg::One(s),
                    Value::Array(items) if !items.is_empty() => {
                        let mut nets = Vec::with_capacity(items.len());
                        for item in items {
                            let Value::String(s) = item else {
                                return Err(self.type_error(
                                    net_at,
                                    "cidr(...) takes a network string like \"10.0.0.0/8\" or a list of them",
                                ));
                            };
                            nets.push(s);
                        }
                        CidrArg::Many(nets)
                    }
                    _ => {
                        return Err(self.type_error(
                            net_at,
                            "cidr(...) takes a network string like \"10.0.0.0/8\" or a non-empty list of them",
                        ));
                    }
                };
                let texts = match texts {
                    CidrArg::One(s) => vec![s],
                    CidrArg::Many(v) => v,
                };
                let mut nets = Vec::with_capacity(texts.len());
                for text in &texts {
                    nets.push(self.b.net(text, net_at)?);
                }
                Pred::Cidr(cpath(&path), nets.into_boxed_slice())
            }
            _ => {
                if matches!(path.root, Root::Topic | Root::Headers | Root::Meta) {
                    return Err(
                        self.type_error(path_at, format!("`{path}` is a string, not an array"))
                    );
                }
                let pred_at = args[1].as_span().start();
                let saved = self.b.in_quantifier;
                self.b.in_quantifier = true;
                self.in_any = true;
                let result = self.or(args[1].clone(), depth + 1);
                self.b.in_quantifier = saved;
                self.in_any = false;
                let (inner, ty) = result?;
                self.need_condition(ty, pred_at, &format!("{name}(...)"))?;
                let max = self.b.limits.max_array_iterations;
                let f = if name == "any" {
                    F::Any(cpath(&path), Box::new(inner), max)
                } else {
                    F::All(cpath(&path), Box::new(inner), max)
                };
                return Ok((f, StaticType::Bool));
            }
        };
        Ok((F::Pred(Box::new(pred)), StaticType::Bool))
    }

    /// The decoded string when `pair` is just a string literal, `None` when it is
    /// anything else.
    fn string_literal(&mut self, pair: &Pair<'s, Rule>) -> R<Option<String>> {
        match single_atom(pair) {
            Some(p) if p.as_rule() == Rule::string => {
                self.b.count(p.as_span().start())?;
                self.b.string(&p).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn number_literal(&mut self, pair: &Pair<'s, Rule>) -> R<(serde_json::Number, usize)> {
        let at = pair.as_span().start();
        if let Some(p) = single_atom(pair)
            && p.as_rule() == Rule::number
            && let Value::Number(n) = self.b.scalar(p)?
        {
            return Ok((n, at));
        }
        Err(self.type_error(
            at,
            format!(
                "between(...) bounds must be number literals, not `{}`",
                pair.as_str()
            ),
        ))
    }

    // ---- template ------------------------------------------------------------

    fn template(&mut self, at: usize, args: &[Pair<'s, Rule>], depth: usize) -> R<Typed> {
        self.arity(
            "template",
            "template(\"Hello {payload.name}\")",
            at,
            args.len(),
            1,
            1,
        )?;
        let lit = match single_atom(&args[0]) {
            Some(p) if p.as_rule() == Rule::string => p,
            _ => {
                return Err(self.type_error(
                    args[0].as_span().start(),
                    "template(...) takes a string literal such as \"Hello {payload.name}\"",
                ));
            }
        };
        self.b.count(lit.as_span().start())?;
        let text = self.b.string(&lit)?;
        let raw = lit.as_str();
        let body_start = lit.as_span().start() + 1;
        let map = OffsetMap::new(raw.get(1..raw.len().saturating_sub(1)).unwrap_or(""));
        let source_at = |offset: usize| body_start + map.source(offset);
        let pieces = template::split(&text).map_err(|(offset, msg)| {
            self.b.error(ErrorCode::SyntaxError, source_at(offset), msg)
        })?;
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match piece {
                Piece::Text(t) => parts.push(Part::Text(t.into_boxed_str())),
                Piece::Hole(src, offset) => {
                    let f = self
                        .hole(src, depth)
                        .map_err(|e| self.relocate(&e, source_at(offset + e.position().offset)))?;
                    parts.push(Part::Hole(f));
                }
            }
        }
        Ok((F::Template(parts.into_boxed_slice()), StaticType::String))
    }

    /// Compiles one `{…}` of a template with this builder's counters and scope.
    fn hole(&mut self, src: &str, depth: usize) -> R<F> {
        let remaining = Limits {
            max_depth: self.b.limits.depth().saturating_sub(depth),
            ..self.b.limits.clone()
        };
        limits::prescan(src, &remaining)?;
        let top = parse_rule(src, Rule::formula)?;
        let Some(expr) = top.into_inner().find(|p| p.as_rule() == Rule::f_or) else {
            return Err(FilterError::new(
                ErrorCode::SyntaxError,
                src,
                0,
                "empty expression".into(),
            ));
        };
        let mut sub = FBuilder {
            b: Builder::new(src, self.b.limits),
            in_any: self.in_any,
        };
        sub.b.in_quantifier = self.b.in_quantifier;
        sub.b.nodes = self.b.nodes;
        sub.b.regex_count = self.b.regex_count;
        let result = sub.or(expr, depth + 1);
        self.b.nodes = sub.b.nodes;
        self.b.regex_count = sub.b.regex_count;
        result.map(|(f, _)| f)
    }

    /// The same error, re-positioned in this builder's source.
    fn relocate(&self, e: &FilterError, offset: usize) -> FilterError {
        FilterError::new(e.kind(), self.b.src, offset, e.message().to_string())
    }
}

/// The atom inside an argument when the argument is nothing but that atom (a path, a
/// literal, a call, a parenthesised group), descending the single-child rule chain.
fn single_atom<'s>(pair: &Pair<'s, Rule>) -> Option<Pair<'s, Rule>> {
    let mut current = pair.clone();
    loop {
        match current.as_rule() {
            Rule::f_or
            | Rule::f_and
            | Rule::f_not
            | Rule::f_cmp
            | Rule::f_sum
            | Rule::f_prod
            | Rule::f_neg => {
                let mut inner = current.into_inner();
                let first = inner.next()?;
                if inner.next().is_some() {
                    return None;
                }
                current = first;
            }
            _ => return Some(current),
        }
    }
}

fn time_format(fmt: &str) -> Result<TimeFormat, String> {
    if fmt.eq_ignore_ascii_case("rfc3339") {
        return Ok(TimeFormat::Rfc3339);
    }
    time::format_description::parse_strftime_owned(fmt)
        .map(TimeFormat::Items)
        .map_err(|e| e.to_string())
}

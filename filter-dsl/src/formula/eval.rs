//! The compiled formula tree and its evaluation.
//!
//! Owns `F` (what a formula compiles to), `Val` (what it evaluates to) and the rules
//! that make evaluation total: a missing operand makes a comparison false and a value
//! missing; `&&`, `||`, `!` and conditions look for exactly `true`. Recursion is bounded
//! by the nesting limit, iteration by `max_array_iterations` and the budget's steps.

use regex::Regex;
use serde_json::{Number, Value};
use time::format_description::OwnedFormatItem;

use crate::ast::CmpOp;
use crate::program::{CPath, LitSet, Pred, Scope, iends_with, istarts_with};
use crate::value::{ValueRef, order};

use super::Budget;
use super::func::{self, Func};
use super::num::{self, ArithOp};

pub(crate) static TRUE: Value = Value::Bool(true);
pub(crate) static FALSE: Value = Value::Bool(false);
pub(crate) static NULL: Value = Value::Null;

/// What a formula evaluates to.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    /// No value: a missing path, or an operation that has no result for its operands
    /// (`lower(5)`, `"a" - 1`, `to_number("abc")`). Written as nothing by the mapping
    /// engine (a `set` of a missing value leaves its target alone).
    Missing,
    /// Borrowed from the event, the current element or the formula's own literals.
    Ref(ValueRef<'a>),
    /// Computed by the formula.
    Owned(Value),
}

impl<'a> Val<'a> {
    pub(crate) fn bool(b: bool) -> Val<'a> {
        Val::Ref(ValueRef::Json(if b { &TRUE } else { &FALSE }))
    }

    pub(crate) fn null() -> Val<'a> {
        Val::Ref(ValueRef::Json(&NULL))
    }

    pub(crate) fn str(s: &'a str) -> Val<'a> {
        Val::Ref(ValueRef::Str(s))
    }

    pub(crate) fn string(s: String) -> Val<'a> {
        Val::Owned(Value::String(s))
    }

    /// Whether there is no value.
    pub fn is_missing(&self) -> bool {
        matches!(self, Val::Missing)
    }

    /// Whether the value is exactly the boolean `true`.
    pub fn is_true(&self) -> bool {
        matches!(self.json(), Some(Value::Bool(true)))
    }

    /// The value as owned JSON (copies a borrowed value), or `None` when missing.
    pub fn into_value(self) -> Option<Value> {
        match self {
            Val::Missing => None,
            Val::Ref(r) => Some(r.to_value()),
            Val::Owned(v) => Some(v),
        }
    }

    pub(crate) fn view(&self) -> Option<ValueRef<'_>> {
        match self {
            Val::Missing => None,
            Val::Ref(r) => Some(*r),
            Val::Owned(v) => Some(ValueRef::Json(v)),
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Missing => None,
            Val::Ref(r) => r.as_str(),
            Val::Owned(Value::String(s)) => Some(s),
            Val::Owned(_) => None,
        }
    }

    /// The JSON value, when there is one (a borrowed envelope string is not JSON).
    pub(crate) fn json(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::Ref(r) => r.as_json(),
            Val::Owned(v) => Some(v),
        }
    }

    pub(crate) fn number(&self) -> Option<&Number> {
        match self.json() {
            Some(Value::Number(n)) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn is_null_or_missing(&self) -> bool {
        matches!(self, Val::Missing) || matches!(self.json(), Some(Value::Null))
    }
}

/// The output of `format_time`: RFC 3339, or a compiled strftime-style description.
#[derive(Debug)]
pub(crate) enum TimeFormat {
    Rfc3339,
    Items(OwnedFormatItem),
}

/// One piece of a `template("…{expr}…")`.
#[derive(Debug)]
pub(crate) enum Part {
    Text(Box<str>),
    Hole(F),
}

/// A compiled formula node.
#[derive(Debug)]
pub(crate) enum F {
    Lit(Value),
    Path(CPath),
    Not(Box<F>),
    And(Box<[F]>),
    Or(Box<[F]>),
    Cmp(CmpOp, Box<[F; 2]>),
    InList {
        negated: bool,
        left: Box<F>,
        set: Box<LitSet>,
    },
    InPath {
        negated: bool,
        left: Box<F>,
        path: CPath,
        max: usize,
    },
    StartsWith(Box<F>, Box<str>),
    EndsWith(Box<F>, Box<str>),
    Contains(Box<F>, Box<str>),
    /// Needle already lower-cased.
    IStartsWith(Box<F>, Box<str>),
    IEndsWith(Box<F>, Box<str>),
    IContains(Box<F>, Regex),
    /// `exists`, `matches`, `like`, `between`, `cidr`: exactly the filter's predicates.
    Pred(Box<Pred>),
    Any(CPath, Box<F>, usize),
    All(CPath, Box<F>, usize),
    /// `first op1 t1 op2 t2 …`, left to right (a flat chain, not a deep tree).
    Arith(Box<F>, Box<[(ArithOp, F)]>),
    Neg(Box<F>),
    Call(Func, Box<[F]>),
    If(Box<[F; 3]>),
    Coalesce(Box<[F]>),
    FormatTime(Box<F>, Box<TimeFormat>),
    Template(Box<[Part]>),
}

/// What an evaluation sees: the event (and element), and the budget it spends.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a, 'b> {
    pub(crate) scope: Scope<'a>,
    pub(crate) budget: &'b Budget,
}

impl<'a> Cx<'a, '_> {
    fn with_it(self, it: &'a Value) -> Self {
        Cx {
            scope: Scope {
                event: self.scope.event,
                it: Some(it),
            },
            budget: self.budget,
        }
    }
}

impl F {
    pub(crate) fn eval<'a>(&'a self, cx: Cx<'a, '_>) -> Val<'a> {
        if !cx.budget.take(1) {
            return Val::Missing;
        }
        match self {
            F::Lit(v) => Val::Ref(ValueRef::Json(v)),
            F::Path(path) => path.resolve(cx.scope).map_or(Val::Missing, Val::Ref),
            F::Not(inner) => Val::bool(!inner.eval(cx).is_true()),
            F::And(terms) => Val::bool(terms.iter().all(|t| t.eval(cx).is_true())),
            F::Or(terms) => Val::bool(terms.iter().any(|t| t.eval(cx).is_true())),
            F::Cmp(op, sides) => {
                let [left, right] = sides.as_ref();
                let (l, r) = (left.eval(cx), right.eval(cx));
                let (Some(l), Some(r)) = (l.view(), r.view()) else {
                    return Val::bool(false);
                };
                Val::bool(match op {
                    CmpOp::Eq => l == r,
                    CmpOp::Ne => l != r,
                    CmpOp::Lt => order(l, r).is_some_and(|o| o.is_lt()),
                    CmpOp::Le => order(l, r).is_some_and(|o| o.is_le()),
                    CmpOp::Gt => order(l, r).is_some_and(|o| o.is_gt()),
                    CmpOp::Ge => order(l, r).is_some_and(|o| o.is_ge()),
                })
            }
            F::InList { negated, left, set } => {
                let v = left.eval(cx);
                Val::bool(v.view().is_some_and(|v| set.contains(v) != *negated))
            }
            F::InPath {
                negated,
                left,
                path,
                max,
            } => {
                let v = left.eval(cx);
                let (Some(v), Some(items)) = (v.view(), path.array(cx.scope, *max)) else {
                    return Val::bool(false);
                };
                if !cx.budget.take(items.len() as u64) {
                    return Val::Missing;
                }
                Val::bool(items.iter().any(|item| v == ValueRef::Json(item)) != *negated)
            }
            F::StartsWith(left, needle) => str_test(left, cx, |s| s.starts_with(&**needle)),
            F::EndsWith(left, needle) => str_test(left, cx, |s| s.ends_with(&**needle)),
            F::Contains(left, needle) => str_test(left, cx, |s| s.contains(&**needle)),
            F::IStartsWith(left, needle) => str_test(left, cx, |s| istarts_with(s, needle)),
            F::IEndsWith(left, needle) => str_test(left, cx, |s| iends_with(s, needle)),
            F::IContains(left, regex) => str_test(left, cx, |s| regex.is_match(s)),
            F::Pred(pred) => Val::bool(pred.eval(cx.scope)),
            F::Any(path, inner, max) => quantify(path, inner, *max, cx, true),
            F::All(path, inner, max) => quantify(path, inner, *max, cx, false),
            F::Arith(first, rest) => {
                let mut acc = first.eval(cx);
                for (op, term) in rest.iter() {
                    acc = num::arith(*op, acc, term.eval(cx), cx.budget);
                }
                acc
            }
            F::Neg(inner) => num::neg(inner.eval(cx)),
            F::Call(func, args) => func::call(*func, args, cx),
            F::If(parts) => {
                let [cond, then, otherwise] = parts.as_ref();
                if cond.eval(cx).is_true() {
                    then.eval(cx)
                } else {
                    otherwise.eval(cx)
                }
            }
            F::Coalesce(args) => {
                for arg in args.iter() {
                    let v = arg.eval(cx);
                    if !v.is_null_or_missing() {
                        return v;
                    }
                }
                Val::null()
            }
            F::FormatTime(t, format) => func::format_time(t.eval(cx), format),
            F::Template(parts) => template(parts, cx),
        }
    }
}

fn str_test<'a>(left: &'a F, cx: Cx<'a, '_>, test: impl FnOnce(&str) -> bool) -> Val<'a> {
    Val::bool(left.eval(cx).as_str().is_some_and(test))
}

fn quantify<'a>(path: &'a CPath, inner: &'a F, max: usize, cx: Cx<'a, '_>, any: bool) -> Val<'a> {
    let Some(items) = path.array(cx.scope, max) else {
        return Val::bool(false);
    };
    if !cx.budget.take(items.len() as u64) {
        return Val::Missing;
    }
    let holds = |item: &'a Value| inner.eval(cx.with_it(item)).is_true();
    Val::bool(if any {
        items.iter().any(holds)
    } else {
        items.iter().all(holds)
    })
}

fn template<'a>(parts: &'a [Part], cx: Cx<'a, '_>) -> Val<'a> {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Hole(f) => {
                if let Some(v) = f.eval(cx).view()
                    && !func::push_text(&mut out, v, cx.budget)
                {
                    return Val::Missing;
                }
            }
        }
        if !cx.budget.fits(out.len()) {
            return Val::Missing;
        }
    }
    Val::string(out)
}

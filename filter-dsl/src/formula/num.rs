//! Arithmetic on JSON numbers: exact on integers, IEEE on floats, total everywhere.
//!
//! Owns the rules: integers (anything serde_json holds as i64/u64) are computed exactly
//! in i128 and stay integers while the result fits i64/u64 (otherwise they become
//! floats); any float operand makes the result a float; `/` of two integers is an
//! integer when it divides exactly; division or remainder by zero, and any non-finite
//! result, is `null`. `+` also joins two strings. Anything else is missing.

use serde_json::{Number, Value};

use super::Budget;
use super::eval::Val;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A number taken apart for arithmetic.
#[derive(Debug, Clone, Copy)]
pub(crate) enum N {
    Int(i128),
    Float(f64),
}

impl N {
    pub(crate) fn of(n: &Number) -> N {
        if let Some(i) = n.as_i64() {
            N::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            N::Int(i128::from(u))
        } else {
            N::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            N::Int(i) => i as f64,
            N::Float(f) => f,
        }
    }

    /// Back to JSON: integers that fit i64/u64 stay integers, others become floats;
    /// NaN and infinities become `null`.
    pub(crate) fn to_value(self) -> Value {
        match self {
            N::Int(i) => {
                if let Ok(v) = i64::try_from(i) {
                    Value::Number(v.into())
                } else if let Ok(v) = u64::try_from(i) {
                    Value::Number(v.into())
                } else {
                    float(i as f64)
                }
            }
            N::Float(f) => float(f),
        }
    }
}

pub(crate) fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

pub(crate) fn arith<'a>(op: ArithOp, a: Val<'a>, b: Val<'a>, budget: &Budget) -> Val<'a> {
    if let (Some(x), Some(y)) = (a.number(), b.number()) {
        return Val::Owned(number_op(op, N::of(x), N::of(y)));
    }
    if op == ArithOp::Add
        && let (Some(x), Some(y)) = (a.as_str(), b.as_str())
    {
        let len = x.len() + y.len();
        if !budget.fits(len) {
            return Val::Missing;
        }
        let mut out = String::with_capacity(len);
        out.push_str(x);
        out.push_str(y);
        return Val::string(out);
    }
    Val::Missing
}

fn number_op(op: ArithOp, x: N, y: N) -> Value {
    if let (N::Int(a), N::Int(b)) = (x, y) {
        let exact = match op {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => {
                if b == 0 {
                    return Value::Null;
                }
                if a % b == 0 { Some(a / b) } else { None }
            }
            ArithOp::Rem => {
                if b == 0 {
                    return Value::Null;
                }
                Some(a % b)
            }
        };
        if let Some(v) = exact {
            return N::Int(v).to_value();
        }
    }
    let (a, b) = (x.as_f64(), y.as_f64());
    let v = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => {
            if b == 0.0 {
                return Value::Null;
            }
            a / b
        }
        ArithOp::Rem => {
            if b == 0.0 {
                return Value::Null;
            }
            a % b
        }
    };
    float(v)
}

pub(crate) fn neg(v: Val<'_>) -> Val<'_> {
    match v.number() {
        Some(n) => Val::Owned(match N::of(n) {
            N::Int(i) => N::Int(-i).to_value(),
            N::Float(f) => float(-f),
        }),
        None => Val::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(op: ArithOp, a: Value, b: Value) -> Value {
        let budget = Budget::new(100, 1000);
        arith(op, Val::Owned(a), Val::Owned(b), &budget)
            .into_value()
            .unwrap_or(json!("MISSING"))
    }

    #[test]
    fn integers_stay_exact_and_overflow_to_floats() {
        assert_eq!(op(ArithOp::Add, json!(1), json!(2)), json!(3));
        assert_eq!(
            op(ArithOp::Add, json!(i64::MAX), json!(1)),
            json!(9_223_372_036_854_775_808u64)
        );
        assert_eq!(
            op(ArithOp::Mul, json!(u64::MAX), json!(u64::MAX)),
            json!((u64::MAX as f64) * (u64::MAX as f64))
        );
        assert_eq!(
            op(ArithOp::Sub, json!(0), json!(u64::MAX)),
            json!(-1.8446744073709552e19)
        );
        assert_eq!(op(ArithOp::Div, json!(6), json!(3)), json!(2));
        assert_eq!(op(ArithOp::Div, json!(7), json!(2)), json!(3.5));
        assert_eq!(op(ArithOp::Rem, json!(-7), json!(3)), json!(-1));
        assert_eq!(
            op(ArithOp::Add, json!(0.1), json!(0.2)),
            json!(0.30000000000000004)
        );
    }

    #[test]
    fn division_by_zero_and_non_finite_results_are_null() {
        assert_eq!(op(ArithOp::Div, json!(1), json!(0)), Value::Null);
        assert_eq!(op(ArithOp::Rem, json!(1), json!(0)), Value::Null);
        assert_eq!(op(ArithOp::Div, json!(1.5), json!(0.0)), Value::Null);
        assert_eq!(op(ArithOp::Mul, json!(1e308), json!(10)), Value::Null);
    }

    #[test]
    fn plus_joins_strings_and_nothing_else_mixes() {
        assert_eq!(op(ArithOp::Add, json!("a"), json!("b")), json!("ab"));
        assert_eq!(op(ArithOp::Add, json!("a"), json!(1)), json!("MISSING"));
        assert_eq!(op(ArithOp::Sub, json!("a"), json!("b")), json!("MISSING"));
        assert_eq!(op(ArithOp::Add, json!(null), json!(1)), json!("MISSING"));
        assert_eq!(op(ArithOp::Add, json!(true), json!(1)), json!("MISSING"));
    }

    #[test]
    fn negation() {
        assert_eq!(neg(Val::Owned(json!(5))).into_value(), Some(json!(-5)));
        assert_eq!(
            neg(Val::Owned(json!(i64::MIN))).into_value(),
            Some(json!(9_223_372_036_854_775_808u64))
        );
        assert_eq!(neg(Val::Owned(json!(-0.5))).into_value(), Some(json!(0.5)));
        assert!(neg(Val::Owned(json!("1"))).is_missing());
    }
}

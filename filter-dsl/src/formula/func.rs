//! Value functions of formulas: their signatures (checked at compile time) and their
//! run-time behaviour (total: a wrong type or an impossible conversion is missing).
//!
//! Owns the function table (`SIGNATURES`), text rendering shared by `concat`,
//! `template` and `join`, hashing and time conversion. Every function that builds a
//! string or an array checks the budget's value size before (or while) building it.

use std::fmt::Write as _;
use std::io;

use hmac::{Hmac, Mac};
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::parser::{StaticType, parse_number};
use crate::value::{ValueRef, num_cmp};

use super::Budget;
use super::eval::{Cx, F, TimeFormat, Val};
use super::num::{self, N};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Lower,
    Upper,
    Trim,
    Len,
    Substring,
    Replace,
    Concat,
    Join,
    Split,
    ToString,
    ToNumber,
    ToBool,
    Round,
    Floor,
    Ceil,
    Abs,
    Min,
    Max,
    Sha256,
    HmacSha256,
    UnixTime,
    TypeOf,
}

/// What an argument may be, as far as the compiler can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    Any,
    Str,
    Num,
    StrOrNum,
    /// A string, an array or an object (`len`).
    Sized,
    List,
}

impl Arg {
    pub(crate) fn accepts(self, ty: StaticType) -> bool {
        use StaticType as T;
        match self {
            Arg::Any => true,
            Arg::Str => matches!(ty, T::Unknown | T::String),
            Arg::Num => matches!(ty, T::Unknown | T::Number | T::NumOrNull),
            Arg::StrOrNum => matches!(ty, T::Unknown | T::String | T::Number | T::NumOrNull),
            Arg::Sized => matches!(ty, T::Unknown | T::String | T::List),
            Arg::List => matches!(ty, T::Unknown | T::List),
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Arg::Any => "a value",
            Arg::Str => "a string",
            Arg::Num => "a number",
            Arg::StrOrNum => "a string or a number",
            Arg::Sized => "a string, an array or an object",
            Arg::List => "an array",
        }
    }
}

/// A value function: name, arity, argument kinds (the last repeats for variadic
/// functions), result type and how it is written.
pub(crate) struct Signature {
    pub(crate) name: &'static str,
    pub(crate) func: Func,
    pub(crate) min: usize,
    pub(crate) max: usize,
    pub(crate) args: &'static [Arg],
    pub(crate) result: StaticType,
    pub(crate) usage: &'static str,
}

/// Most arguments of a variadic function (`concat`, `min`, `max`, `coalesce`).
pub(crate) const MAX_VARIADIC: usize = 16;

use StaticType as T;

pub(crate) const SIGNATURES: &[Signature] = &[
    sig(
        "lower",
        Func::Lower,
        1,
        1,
        &[Arg::Str],
        T::String,
        "lower(string)",
    ),
    sig(
        "upper",
        Func::Upper,
        1,
        1,
        &[Arg::Str],
        T::String,
        "upper(string)",
    ),
    sig(
        "trim",
        Func::Trim,
        1,
        1,
        &[Arg::Str],
        T::String,
        "trim(string)",
    ),
    sig(
        "len",
        Func::Len,
        1,
        1,
        &[Arg::Sized],
        T::Number,
        "len(string or array)",
    ),
    sig(
        "substring",
        Func::Substring,
        2,
        3,
        &[Arg::Str, Arg::Num, Arg::Num],
        T::String,
        "substring(string, start[, length])",
    ),
    sig(
        "replace",
        Func::Replace,
        3,
        3,
        &[Arg::Str, Arg::Str, Arg::Str],
        T::String,
        "replace(string, \"from\", \"to\")",
    ),
    sig(
        "concat",
        Func::Concat,
        1,
        MAX_VARIADIC,
        &[Arg::Any],
        T::String,
        "concat(a, b, …)",
    ),
    sig(
        "join",
        Func::Join,
        2,
        2,
        &[Arg::List, Arg::Str],
        T::String,
        "join(array, \", \")",
    ),
    sig(
        "split",
        Func::Split,
        2,
        2,
        &[Arg::Str, Arg::Str],
        T::List,
        "split(string, \",\")",
    ),
    sig(
        "to_string",
        Func::ToString,
        1,
        1,
        &[Arg::Any],
        T::String,
        "to_string(value)",
    ),
    sig(
        "to_number",
        Func::ToNumber,
        1,
        1,
        &[Arg::Any],
        T::Number,
        "to_number(value)",
    ),
    sig(
        "to_bool",
        Func::ToBool,
        1,
        1,
        &[Arg::Any],
        T::Bool,
        "to_bool(value)",
    ),
    sig(
        "round",
        Func::Round,
        1,
        2,
        &[Arg::Num, Arg::Num],
        T::Number,
        "round(number[, digits])",
    ),
    sig(
        "floor",
        Func::Floor,
        1,
        1,
        &[Arg::Num],
        T::Number,
        "floor(number)",
    ),
    sig(
        "ceil",
        Func::Ceil,
        1,
        1,
        &[Arg::Num],
        T::Number,
        "ceil(number)",
    ),
    sig(
        "abs",
        Func::Abs,
        1,
        1,
        &[Arg::Num],
        T::Number,
        "abs(number)",
    ),
    sig(
        "min",
        Func::Min,
        1,
        MAX_VARIADIC,
        &[Arg::Num],
        T::Number,
        "min(a, b, …)",
    ),
    sig(
        "max",
        Func::Max,
        1,
        MAX_VARIADIC,
        &[Arg::Num],
        T::Number,
        "max(a, b, …)",
    ),
    sig(
        "sha256",
        Func::Sha256,
        1,
        1,
        &[Arg::StrOrNum],
        T::String,
        "sha256(value)",
    ),
    sig(
        "hmac_sha256",
        Func::HmacSha256,
        2,
        2,
        &[Arg::Str, Arg::StrOrNum],
        T::String,
        "hmac_sha256(\"key\", value)",
    ),
    sig(
        "unix_time",
        Func::UnixTime,
        1,
        1,
        &[Arg::StrOrNum],
        T::Number,
        "unix_time(time)",
    ),
    sig(
        "type_of",
        Func::TypeOf,
        1,
        1,
        &[Arg::Any],
        T::String,
        "type_of(value)",
    ),
];

const fn sig(
    name: &'static str,
    func: Func,
    min: usize,
    max: usize,
    args: &'static [Arg],
    result: StaticType,
    usage: &'static str,
) -> Signature {
    Signature {
        name,
        func,
        min,
        max,
        args,
        result,
        usage,
    }
}

pub(crate) fn lookup(name: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.name == name)
}

/// Every function a formula may call, for the `unknown_function` message.
pub(crate) const ALL_FUNCTIONS: &str = "lower, upper, trim, len, substring, replace, concat, \
     template, join, split, to_string, to_number, to_bool, round, floor, ceil, abs, min, max, \
     sha256, hmac_sha256, format_time, unix_time, type_of, coalesce, if, exists, matches, \
     like, between, cidr, any and all";

// ---------------------------------------------------------------------------
// Run time.

pub(crate) fn call<'a>(func: Func, args: &'a [F], cx: Cx<'a, '_>) -> Val<'a> {
    let arg = |i: usize| args.get(i).map_or(Val::Missing, |f| f.eval(cx));
    let budget = cx.budget;
    match func {
        Func::Lower => map_str(arg(0), budget, |s| {
            if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
                Some(if s.is_ascii() {
                    s.to_ascii_lowercase()
                } else {
                    s.to_lowercase()
                })
            } else {
                None
            }
        }),
        Func::Upper => map_str(arg(0), budget, |s| {
            if s.bytes().any(|b| b.is_ascii_lowercase() || !b.is_ascii()) {
                Some(if s.is_ascii() {
                    s.to_ascii_uppercase()
                } else {
                    s.to_uppercase()
                })
            } else {
                None
            }
        }),
        Func::Trim => match arg(0) {
            Val::Ref(r) => r.as_str().map_or(Val::Missing, |s| Val::str(s.trim())),
            Val::Owned(Value::String(s)) => {
                let t = s.trim();
                if t.len() == s.len() {
                    Val::Owned(Value::String(s))
                } else {
                    Val::string(t.to_string())
                }
            }
            _ => Val::Missing,
        },
        Func::Len => {
            let v = arg(0);
            let len = match v.view() {
                Some(r) => match (r.as_str(), r.as_json()) {
                    (Some(s), _) => s.chars().count(),
                    (None, Some(Value::Array(a))) => a.len(),
                    (None, Some(Value::Object(o))) => o.len(),
                    _ => return Val::Missing,
                },
                None => return Val::Missing,
            };
            Val::Owned(Value::Number(Number::from(len as u64)))
        }
        Func::Substring => {
            let s = arg(0);
            let start = integer(&arg(1));
            let length = if args.len() > 2 {
                match integer(&arg(2)) {
                    Some(n) if n >= 0 => Some(n),
                    _ => return Val::Missing,
                }
            } else {
                None
            };
            let Some(start) = start else {
                return Val::Missing;
            };
            map_slice(s, |text| substring(text, start, length))
        }
        Func::Replace => {
            let (s, from, to) = (arg(0), arg(1), arg(2));
            let (Some(text), Some(from), Some(to)) = (s.as_str(), from.as_str(), to.as_str())
            else {
                return Val::Missing;
            };
            if from.is_empty() || !text.contains(from) {
                return s;
            }
            let count = text.matches(from).count();
            let len =
                (text.len() - count * from.len()).saturating_add(count.saturating_mul(to.len()));
            if !budget.fits(len) {
                return Val::Missing;
            }
            Val::string(text.replace(from, to))
        }
        Func::Concat => {
            let mut out = String::new();
            for f in args {
                if let Some(v) = f.eval(cx).view()
                    && (!push_text(&mut out, v, budget) || !budget.fits(out.len()))
                {
                    return Val::Missing;
                }
            }
            Val::string(out)
        }
        Func::Join => {
            let (list, sep) = (arg(0), arg(1));
            let (Some(Value::Array(items)), Some(sep)) = (list.json(), sep.as_str()) else {
                return Val::Missing;
            };
            if !budget.take(items.len() as u64) {
                return Val::Missing;
            }
            let mut out = String::new();
            let mut first = true;
            for item in items.iter().filter(|v| !v.is_null()) {
                if !first {
                    out.push_str(sep);
                }
                first = false;
                if !push_text(&mut out, ValueRef::Json(item), budget) || !budget.fits(out.len()) {
                    return Val::Missing;
                }
            }
            Val::string(out)
        }
        Func::Split => {
            let (s, sep) = (arg(0), arg(1));
            let (Some(text), Some(sep)) = (s.as_str(), sep.as_str()) else {
                return Val::Missing;
            };
            // Each element costs its bytes plus quotes and a comma.
            let parts = if sep.is_empty() {
                text.chars().count()
            } else {
                text.matches(sep).count() + 1
            };
            let size = text.len() + 3 * parts + 2;
            if !budget.fits(size) || !budget.take(parts as u64) {
                return Val::Missing;
            }
            let items: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep)
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Val::Owned(Value::Array(items))
        }
        Func::ToString => {
            let v = arg(0);
            match v.view() {
                None => Val::Missing,
                Some(r) if r.as_str().is_some() => v,
                Some(r) => {
                    let mut out = String::new();
                    if !push_json(&mut out, r, budget) {
                        return Val::Missing;
                    }
                    Val::string(out)
                }
            }
        }
        Func::ToNumber => {
            let v = arg(0);
            if v.number().is_some() {
                return v;
            }
            if let Some(s) = v.as_str() {
                return parse_number(s.trim())
                    .map_or(Val::Missing, |n| Val::Owned(Value::Number(n)));
            }
            match v.json() {
                Some(Value::Bool(b)) => Val::Owned(Value::Number(Number::from(u8::from(*b)))),
                _ => Val::Missing,
            }
        }
        Func::ToBool => {
            let v = arg(0);
            if let Some(s) = v.as_str() {
                return if s.eq_ignore_ascii_case("true") {
                    Val::bool(true)
                } else if s.eq_ignore_ascii_case("false") {
                    Val::bool(false)
                } else {
                    Val::Missing
                };
            }
            match v.json() {
                Some(Value::Bool(b)) => Val::bool(*b),
                Some(Value::Number(n)) => Val::bool(N::of(n).as_f64() != 0.0),
                Some(Value::Null) => Val::bool(false),
                _ => Val::Missing,
            }
        }
        Func::Round => {
            let v = arg(0);
            let digits = if args.len() > 1 {
                match integer(&arg(1)) {
                    Some(d) if (-15..=15).contains(&d) => d,
                    _ => return Val::Missing,
                }
            } else {
                0
            };
            round_to(v, digits)
        }
        Func::Floor => whole(arg(0), f64::floor),
        Func::Ceil => whole(arg(0), f64::ceil),
        Func::Abs => match arg(0).number().map(N::of) {
            Some(N::Int(i)) => Val::Owned(N::Int(i.abs()).to_value()),
            Some(N::Float(f)) => Val::Owned(num::float(f.abs())),
            None => Val::Missing,
        },
        Func::Min | Func::Max => {
            let want = if func == Func::Min {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
            let mut best: Option<Val<'a>> = None;
            for f in args {
                let v = f.eval(cx);
                let Some(n) = v.number() else {
                    return Val::Missing;
                };
                let better = match best.as_ref().and_then(|b| b.number()) {
                    Some(b) => num_cmp(n, b) == Some(want),
                    None => true,
                };
                if better {
                    best = Some(v);
                }
            }
            best.unwrap_or(Val::Missing)
        }
        Func::Sha256 => {
            let v = arg(0);
            match hash_input(&v) {
                Some(bytes) => Val::string(hex(&Sha256::digest(bytes.as_bytes()))),
                None => Val::Missing,
            }
        }
        Func::HmacSha256 => {
            let (key, v) = (arg(0), arg(1));
            let (Some(key), Some(msg)) = (key.as_str(), hash_input(&v)) else {
                return Val::Missing;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
                return Val::Missing;
            };
            mac.update(msg.as_bytes());
            Val::string(hex(&mac.finalize().into_bytes()))
        }
        Func::UnixTime => match datetime(&arg(0)) {
            Some(t) => Val::Owned(Value::Number(t.unix_timestamp().into())),
            None => Val::Missing,
        },
        Func::TypeOf => {
            let name = match arg(0).view() {
                None => "missing",
                Some(ValueRef::Str(_)) => "string",
                Some(ValueRef::Json(v)) => match v {
                    Value::Null => "null",
                    Value::Bool(_) => "boolean",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                },
            };
            Val::str(name)
        }
    }
}

/// Applies a string → maybe-new-string function; `None` from `f` means "unchanged".
fn map_str<'a>(v: Val<'a>, budget: &Budget, f: impl FnOnce(&str) -> Option<String>) -> Val<'a> {
    let Some(s) = v.as_str() else {
        return Val::Missing;
    };
    match f(s) {
        None => v,
        Some(out) if budget.fits(out.len()) => Val::string(out),
        Some(_) => Val::Missing,
    }
}

/// Applies a function that picks a sub-slice, borrowing when the input was borrowed.
fn map_slice<'a>(v: Val<'a>, f: impl FnOnce(&str) -> &str) -> Val<'a> {
    match v {
        Val::Ref(r) => r.as_str().map_or(Val::Missing, |s| Val::str(f(s))),
        Val::Owned(Value::String(s)) => Val::string(f(&s).to_string()),
        _ => Val::Missing,
    }
}

/// Characters `start..start+length` (`start` < 0 counts from the end); clamped to the
/// string, never an error.
fn substring(text: &str, start: i64, length: Option<i64>) -> &str {
    let count = text.chars().count() as i64;
    let from = if start < 0 {
        (count + start).max(0)
    } else {
        start.min(count)
    };
    let to = match length {
        Some(n) => from.saturating_add(n).min(count),
        None => count,
    };
    let byte_at = |chars: i64| {
        text.char_indices()
            .nth(chars as usize)
            .map_or(text.len(), |(i, _)| i)
    };
    let (a, b) = (byte_at(from), byte_at(to));
    text.get(a..b).unwrap_or("")
}

/// An integral number as i64 (`2` and `2.0` both), else `None`.
fn integer(v: &Val<'_>) -> Option<i64> {
    let n = v.number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(f as i64)
    } else {
        None
    }
}

fn round_to(v: Val<'_>, digits: i64) -> Val<'_> {
    let Some(n) = v.number().map(N::of) else {
        return Val::Missing;
    };
    match n {
        N::Int(i) if digits >= 0 => Val::Owned(N::Int(i).to_value()),
        N::Int(i) => {
            let factor = 10i128.pow(digits.unsigned_abs() as u32);
            let half = factor / 2;
            let rounded = if i >= 0 {
                (i + half) / factor * factor
            } else {
                (i - half) / factor * factor
            };
            Val::Owned(N::Int(rounded).to_value())
        }
        N::Float(f) if digits == 0 => Val::Owned(integral(f.round())),
        N::Float(f) if digits < 0 => {
            let factor = 10f64.powi(-digits as i32);
            Val::Owned(integral((f / factor).round() * factor))
        }
        N::Float(f) => {
            let factor = 10f64.powi(digits as i32);
            Val::Owned(num::float((f * factor).round() / factor))
        }
    }
}

fn whole(v: Val<'_>, f: fn(f64) -> f64) -> Val<'_> {
    match v.number().map(N::of) {
        Some(N::Int(i)) => Val::Owned(N::Int(i).to_value()),
        Some(N::Float(x)) => Val::Owned(integral(f(x))),
        None => Val::Missing,
    }
}

/// A float known to be whole: an integer when it fits i64/u64 exactly.
fn integral(f: f64) -> Value {
    if f.is_finite() && f.abs() < 9.0e15 {
        Value::Number(Number::from(f as i64))
    } else {
        num::float(f)
    }
}

/// The text hashed by `sha256`/`hmac_sha256`: a string's bytes, a number's JSON text.
fn hash_input(v: &Val<'_>) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    v.number().map(Number::to_string)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A time given as an RFC 3339 string or as Unix seconds (integer or fractional), in UTC.
fn datetime(v: &Val<'_>) -> Option<OffsetDateTime> {
    if let Some(s) = v.as_str() {
        return OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .map(|t| t.to_offset(UtcOffset::UTC));
    }
    match N::of(v.number()?) {
        N::Int(i) => OffsetDateTime::from_unix_timestamp(i64::try_from(i).ok()?).ok(),
        N::Float(f) => {
            if !f.is_finite() || f.abs() > 1.0e15 {
                return None;
            }
            OffsetDateTime::from_unix_timestamp_nanos((f * 1e9).round() as i128).ok()
        }
    }
}

pub(crate) fn format_time<'a>(v: Val<'a>, format: &TimeFormat) -> Val<'a> {
    let Some(t) = datetime(&v) else {
        return Val::Missing;
    };
    let text = match format {
        TimeFormat::Rfc3339 => t.format(&Rfc3339),
        TimeFormat::Items(items) => t.format(items),
    };
    text.map_or(Val::Missing, Val::string)
}

/// Appends the text form of `v` — strings as they are, numbers and booleans as JSON
/// writes them, arrays and objects as compact JSON, `null` as nothing. False when the
/// budget's value size would be exceeded.
pub(crate) fn push_text(out: &mut String, v: ValueRef<'_>, budget: &Budget) -> bool {
    if let Some(s) = v.as_str() {
        out.push_str(s);
        return budget.fits(out.len());
    }
    match v.as_json() {
        Some(Value::Null) | None => true,
        Some(Value::Bool(b)) => {
            out.push_str(if *b { "true" } else { "false" });
            true
        }
        Some(Value::Number(n)) => {
            let _ = write!(out, "{n}");
            true
        }
        Some(_) => push_json(out, v, budget),
    }
}

/// Appends compact JSON for `v`, stopping once the budget's value size is passed.
fn push_json(out: &mut String, v: ValueRef<'_>, budget: &Budget) -> bool {
    let limit = budget.max_value_bytes().saturating_sub(out.len());
    let mut w = Bounded {
        buf: Vec::new(),
        limit,
    };
    let ok = match v {
        ValueRef::Str(s) => serde_json::to_writer(&mut w, s).is_ok(),
        ValueRef::Json(j) => serde_json::to_writer(&mut w, j).is_ok(),
    };
    if !ok {
        budget.fail(super::BudgetHit::ValueTooLarge);
        return false;
    }
    match String::from_utf8(w.buf) {
        Ok(s) => {
            out.push_str(&s);
            true
        }
        Err(_) => false,
    }
}

/// A writer that refuses to grow past `limit` bytes.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(io::Error::other("value too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_clamps_and_counts_characters() {
        assert_eq!(substring("héllo", 1, Some(3)), "éll");
        assert_eq!(substring("héllo", -2, None), "lo");
        assert_eq!(substring("héllo", 10, Some(3)), "");
        assert_eq!(substring("héllo", -10, Some(2)), "hé");
        assert_eq!(substring("héllo", 0, Some(0)), "");
        assert_eq!(substring("", 0, None), "");
    }

    #[test]
    fn every_signature_has_a_unique_name_and_is_listed() {
        for (i, s) in SIGNATURES.iter().enumerate() {
            assert!(SIGNATURES[..i].iter().all(|o| o.name != s.name));
            assert!(ALL_FUNCTIONS.contains(s.name), "{}", s.name);
            assert!(s.min <= s.max && !s.args.is_empty());
        }
    }
}

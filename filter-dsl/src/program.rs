//! Checked syntax tree → compiled predicate, and its evaluation against one event.
//!
//! Owns everything done once per filter so that evaluation is cheap: header names and
//! meta fields resolved to direct accessors, `in` lists turned into sets, regexes and
//! globs compiled, case-insensitive needles lowered. Evaluation is a bounded recursion
//! over a tree whose depth the limits cap; it never allocates for comparisons, `in`
//! lists and string tests, never loops beyond `max_array_iterations`, never panics.

use std::collections::HashSet;

use regex::Regex;
use serde_json::{Number, Value};

use crate::ast::{CidrArg, CmpOp, InRhs, Node, Operand, Path, Quantifier, Root, Segment, StrOp};
use crate::cidr::Net;
use crate::error::{ErrorCode, FilterError};
use crate::event::Event;
use crate::glob::Glob;
use crate::limits::Limits;
use crate::parser::{RegexCache, build_regex};
use crate::value::{NumKey, ValueRef, num_cmp, order};

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Or(Box<[Pred]>),
    And(Box<[Pred]>),
    Not(Box<Pred>),
    Cmp {
        op: CmpOp,
        left: Opnd,
        right: Opnd,
    },
    InList {
        negated: bool,
        left: Opnd,
        /// Boxed: sets are large and rare; keeping `Pred` small keeps chains dense.
        set: Box<LitSet>,
    },
    InPath {
        negated: bool,
        left: Opnd,
        path: CPath,
        max: usize,
    },
    StartsWith(Opnd, Box<str>),
    EndsWith(Opnd, Box<str>),
    Contains(Opnd, Box<str>),
    /// Needle already lower-cased char by char.
    IStartsWith(Opnd, Box<str>),
    IEndsWith(Opnd, Box<str>),
    IContains(Opnd, Regex),
    Exists(CPath),
    Matches(CPath, Regex),
    Like(CPath, Glob),
    Between(CPath, Number, Number),
    Cidr(CPath, Box<[Net]>),
    Any(CPath, Box<Pred>, usize),
    All(CPath, Box<Pred>, usize),
}

/// A compiled operand.
#[derive(Debug, Clone)]
pub(crate) enum Opnd {
    Path(CPath),
    Lit(Value),
}

/// A compiled path: the root resolved to a direct accessor, segments pre-split.
#[derive(Debug, Clone)]
pub(crate) enum CPath {
    Topic,
    Payload(Box<[Segment]>),
    It(Box<[Segment]>),
    Header(Box<str>),
    MetaId,
    MetaTime,
    MetaSource,
}

/// Lists at or below this size are scanned; larger ones are hashed.
const SCAN_MAX: usize = 8;

/// The literal values of an `in` list, grouped by type.
#[derive(Debug, Clone, Default)]
pub(crate) struct LitSet {
    strings: Small<Box<str>>,
    numbers: Small<NumKey>,
    null: bool,
    true_: bool,
    false_: bool,
}

/// A set that is a short vector when small (faster than hashing a few items).
#[derive(Debug, Clone)]
enum Small<T: std::hash::Hash + Eq> {
    Scan(Box<[T]>),
    Hashed(HashSet<T>),
}

impl<T: std::hash::Hash + Eq> Default for Small<T> {
    fn default() -> Self {
        Small::Scan(Box::new([]))
    }
}

impl<T: std::hash::Hash + Eq> Small<T> {
    fn from_vec(items: Vec<T>) -> Self {
        if items.len() <= SCAN_MAX {
            Small::Scan(items.into_boxed_slice())
        } else {
            Small::Hashed(items.into_iter().collect())
        }
    }
}

impl Small<Box<str>> {
    fn contains_str(&self, s: &str) -> bool {
        match self {
            Small::Scan(items) => items.iter().any(|i| &**i == s),
            Small::Hashed(set) => set.contains(s),
        }
    }
}

impl Small<NumKey> {
    fn contains_key(&self, k: &NumKey) -> bool {
        match self {
            Small::Scan(items) => items.contains(k),
            Small::Hashed(set) => set.contains(k),
        }
    }
}

impl LitSet {
    pub(crate) fn new(items: &[Value]) -> LitSet {
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        let mut set = LitSet::default();
        for item in items {
            match item {
                Value::String(s) => strings.push(s.as_str().into()),
                Value::Number(n) => numbers.extend(NumKey::of(n)),
                Value::Null => set.null = true,
                Value::Bool(true) => set.true_ = true,
                Value::Bool(false) => set.false_ = true,
                // Lists hold scalars only (the grammar guarantees it).
                Value::Array(_) | Value::Object(_) => {}
            }
        }
        set.strings = Small::from_vec(strings);
        set.numbers = Small::from_vec(numbers);
        set
    }

    pub(crate) fn contains(&self, v: ValueRef<'_>) -> bool {
        if let Some(s) = v.as_str() {
            return self.strings.contains_str(s);
        }
        match v.as_json() {
            Some(Value::Number(n)) => NumKey::of(n).is_some_and(|k| self.numbers.contains_key(&k)),
            Some(Value::Null) => self.null,
            Some(Value::Bool(true)) => self.true_,
            Some(Value::Bool(false)) => self.false_,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Compilation.

pub(crate) struct Compiler<'c> {
    pub(crate) regexes: &'c RegexCache,
    pub(crate) limits: &'c Limits,
}

impl Compiler<'_> {
    pub(crate) fn pred(&self, node: &Node) -> Result<Pred, FilterError> {
        Ok(match node {
            Node::Or(terms) => Pred::Or(self.preds(terms)?),
            Node::And(terms) => Pred::And(self.preds(terms)?),
            Node::Not(inner) => Pred::Not(Box::new(self.pred(inner)?)),
            Node::Compare { op, left, right } => Pred::Cmp {
                op: *op,
                left: opnd(left),
                right: opnd(right),
            },
            Node::In {
                negated,
                left,
                right: InRhs::List(items),
            } => Pred::InList {
                negated: *negated,
                left: opnd(left),
                set: Box::new(LitSet::new(items)),
            },
            Node::In {
                negated,
                left,
                right: InRhs::Path(path),
            } => Pred::InPath {
                negated: *negated,
                left: opnd(left),
                path: cpath(path),
                max: self.limits.max_array_iterations,
            },
            Node::StrTest {
                op,
                case_insensitive,
                left,
                needle,
            } => {
                let left = opnd(left);
                let lowered =
                    || -> Box<str> { needle.chars().flat_map(char::to_lowercase).collect() };
                match (op, case_insensitive) {
                    (StrOp::StartsWith, false) => Pred::StartsWith(left, needle.as_str().into()),
                    (StrOp::EndsWith, false) => Pred::EndsWith(left, needle.as_str().into()),
                    (StrOp::Contains, false) => Pred::Contains(left, needle.as_str().into()),
                    (StrOp::StartsWith, true) => Pred::IStartsWith(left, lowered()),
                    (StrOp::EndsWith, true) => Pred::IEndsWith(left, lowered()),
                    (StrOp::Contains, true) => Pred::IContains(left, self.regex(needle, true)?),
                }
            }
            Node::Exists(path) => Pred::Exists(cpath(path)),
            Node::Matches(path, pattern) => Pred::Matches(cpath(path), self.regex(pattern, false)?),
            Node::Like(path, pattern) => Pred::Like(cpath(path), Glob::new(pattern)),
            Node::Between(path, low, high) => Pred::Between(cpath(path), low.clone(), high.clone()),
            Node::Cidr(path, arg) => {
                let texts: Vec<&str> = match arg {
                    CidrArg::One(one) => vec![one.as_str()],
                    CidrArg::Many(many) => many.iter().map(String::as_str).collect(),
                };
                let mut nets = Vec::with_capacity(texts.len());
                for text in texts {
                    let net = Net::parse(text)
                        .map_err(|why| FilterError::new(ErrorCode::InvalidArgument, "", 0, why))?;
                    nets.push(net);
                }
                Pred::Cidr(cpath(path), nets.into_boxed_slice())
            }
            Node::Quantifier {
                kind,
                path,
                predicate,
            } => {
                let inner = Box::new(self.pred(predicate)?);
                let max = self.limits.max_array_iterations;
                match kind {
                    Quantifier::Any => Pred::Any(cpath(path), inner, max),
                    Quantifier::All => Pred::All(cpath(path), inner, max),
                }
            }
        })
    }

    fn preds(&self, nodes: &[Node]) -> Result<Box<[Pred]>, FilterError> {
        nodes.iter().map(|n| self.pred(n)).collect()
    }

    /// The regex the parser already built, or (never expected) a fresh build.
    fn regex(&self, source: &str, literal_ci: bool) -> Result<Regex, FilterError> {
        if let Some(re) = self.regexes.get(&(literal_ci, source.to_string())) {
            return Ok(re.clone());
        }
        let pattern = if literal_ci {
            regex::escape(source)
        } else {
            source.to_string()
        };
        build_regex(&pattern, literal_ci, self.limits)
            .map_err(|e| FilterError::new(ErrorCode::RegexInvalid, "", 0, e.to_string()))
    }
}

pub(crate) fn opnd(operand: &Operand) -> Opnd {
    match operand {
        Operand::Path(path) => Opnd::Path(cpath(path)),
        Operand::Literal(value) => Opnd::Lit(value.clone()),
    }
}

pub(crate) fn cpath(path: &Path) -> CPath {
    let first_field = match path.segments.first() {
        Some(Segment::Field(f)) => f.as_str(),
        _ => "",
    };
    match path.root {
        Root::Topic => CPath::Topic,
        Root::Payload => CPath::Payload(path.segments.clone().into_boxed_slice()),
        Root::It => CPath::It(path.segments.clone().into_boxed_slice()),
        Root::Headers => CPath::Header(first_field.into()),
        Root::Meta => match first_field {
            "id" => CPath::MetaId,
            "time" => CPath::MetaTime,
            _ => CPath::MetaSource,
        },
    }
}

// ---------------------------------------------------------------------------
// Evaluation.

/// What a condition can see: the event and, inside `any`/`all`, the element.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) event: &'a Event<'a>,
    pub(crate) it: Option<&'a Value>,
}

pub(crate) fn walk<'a>(mut value: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    for segment in segments {
        value = match (segment, value) {
            (Segment::Field(key), Value::Object(map)) => map.get(key.as_str())?,
            (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

impl CPath {
    pub(crate) fn resolve<'a>(&self, scope: Scope<'a>) -> Option<ValueRef<'a>> {
        let event = scope.event;
        match self {
            CPath::Topic => Some(ValueRef::Str(event.topic)),
            CPath::Payload(segments) => walk(event.payload, segments).map(ValueRef::Json),
            CPath::It(segments) => walk(scope.it?, segments).map(ValueRef::Json),
            CPath::Header(name) => event.headers.get(name).map(ValueRef::Str),
            CPath::MetaId => event.meta.id.map(ValueRef::Str),
            CPath::MetaTime => event.meta.time.map(ValueRef::Str),
            CPath::MetaSource => event.meta.source.map(ValueRef::Str),
        }
    }

    pub(crate) fn array<'a>(&self, scope: Scope<'a>, max: usize) -> Option<&'a [Value]> {
        match self.resolve(scope)?.as_json()? {
            Value::Array(items) if items.len() <= max => Some(items),
            _ => None,
        }
    }

    fn string<'a>(&self, scope: Scope<'a>) -> Option<&'a str> {
        self.resolve(scope)?.as_str()
    }
}

impl Opnd {
    pub(crate) fn resolve<'a>(&'a self, scope: Scope<'a>) -> Option<ValueRef<'a>> {
        match self {
            Opnd::Path(path) => path.resolve(scope),
            Opnd::Lit(value) => Some(ValueRef::Json(value)),
        }
    }

    fn string<'a>(&'a self, scope: Scope<'a>) -> Option<&'a str> {
        self.resolve(scope)?.as_str()
    }
}

impl Pred {
    pub(crate) fn eval<'a>(&'a self, scope: Scope<'a>) -> bool {
        match self {
            Pred::Or(terms) => terms.iter().any(|t| t.eval(scope)),
            Pred::And(terms) => terms.iter().all(|t| t.eval(scope)),
            Pred::Not(inner) => !inner.eval(scope),
            Pred::Cmp { op, left, right } => {
                let (Some(l), Some(r)) = (left.resolve(scope), right.resolve(scope)) else {
                    return false;
                };
                match op {
                    CmpOp::Eq => l == r,
                    CmpOp::Ne => l != r,
                    CmpOp::Lt => order(l, r).is_some_and(|o| o.is_lt()),
                    CmpOp::Le => order(l, r).is_some_and(|o| o.is_le()),
                    CmpOp::Gt => order(l, r).is_some_and(|o| o.is_gt()),
                    CmpOp::Ge => order(l, r).is_some_and(|o| o.is_ge()),
                }
            }
            Pred::InList { negated, left, set } => match left.resolve(scope) {
                Some(v) => set.contains(v) != *negated,
                None => false,
            },
            Pred::InPath {
                negated,
                left,
                path,
                max,
            } => {
                let (Some(v), Some(items)) = (left.resolve(scope), path.array(scope, *max)) else {
                    return false;
                };
                items.iter().any(|item| v == ValueRef::Json(item)) != *negated
            }
            Pred::StartsWith(left, needle) => {
                left.string(scope).is_some_and(|s| s.starts_with(&**needle))
            }
            Pred::EndsWith(left, needle) => {
                left.string(scope).is_some_and(|s| s.ends_with(&**needle))
            }
            Pred::Contains(left, needle) => {
                left.string(scope).is_some_and(|s| s.contains(&**needle))
            }
            Pred::IStartsWith(left, needle) => {
                left.string(scope).is_some_and(|s| istarts_with(s, needle))
            }
            Pred::IEndsWith(left, needle) => {
                left.string(scope).is_some_and(|s| iends_with(s, needle))
            }
            Pred::IContains(left, regex) => left.string(scope).is_some_and(|s| regex.is_match(s)),
            Pred::Exists(path) => path.resolve(scope).is_some(),
            Pred::Matches(path, regex) => path.string(scope).is_some_and(|s| regex.is_match(s)),
            Pred::Like(path, glob) => path.string(scope).is_some_and(|s| glob.is_match(s)),
            Pred::Between(path, low, high) => match path.resolve(scope).and_then(|v| v.as_json()) {
                Some(Value::Number(n)) => {
                    num_cmp(n, low).is_some_and(|o| o.is_ge())
                        && num_cmp(n, high).is_some_and(|o| o.is_le())
                }
                _ => false,
            },
            Pred::Cidr(path, nets) => path
                .string(scope)
                .is_some_and(|s| nets.iter().any(|net| net.contains(s))),
            Pred::Any(path, inner, max) => path.array(scope, *max).is_some_and(|items| {
                items.iter().any(|item| {
                    inner.eval(Scope {
                        event: scope.event,
                        it: Some(item),
                    })
                })
            }),
            Pred::All(path, inner, max) => path.array(scope, *max).is_some_and(|items| {
                items.iter().all(|item| {
                    inner.eval(Scope {
                        event: scope.event,
                        it: Some(item),
                    })
                })
            }),
        }
    }
}

/// `hay` starts with `needle_lower` once both are lower-cased char by char. No
/// allocation; when the needle is ASCII and so are the bytes it lines up with, a plain
/// byte comparison gives the same answer.
pub(crate) fn istarts_with(hay: &str, needle_lower: &str) -> bool {
    let n = needle_lower.len();
    if needle_lower.is_ascii()
        && let Some(head) = hay.as_bytes().get(..n)
        && head.is_ascii()
    {
        return head.eq_ignore_ascii_case(needle_lower.as_bytes());
    }
    let mut chars = hay.chars().flat_map(char::to_lowercase);
    needle_lower.chars().all(|c| chars.next() == Some(c))
}

/// Like `istarts_with`, from the end.
pub(crate) fn iends_with(hay: &str, needle_lower: &str) -> bool {
    let n = needle_lower.len();
    if needle_lower.is_ascii()
        && let Some(start) = hay.len().checked_sub(n)
        && let Some(tail) = hay.as_bytes().get(start..)
        && tail.is_ascii()
    {
        return tail.eq_ignore_ascii_case(needle_lower.as_bytes());
    }
    let mut chars = hay.chars().rev().flat_map(|c| c.to_lowercase().rev());
    needle_lower.chars().rev().all(|c| chars.next() == Some(c))
}

#[cfg(test)]
mod tests {
    use super::{iends_with, istarts_with};

    #[test]
    fn case_insensitive_affixes_agree_on_ascii_and_unicode_paths() {
        assert!(istarts_with("Alice@x", "alice"));
        assert!(!istarts_with("Ali", "alice"));
        assert!(istarts_with("ÀLICE", "àl"));
        // Kelvin sign lower-cases to ASCII `k`: the fast path must not say no.
        assert!(istarts_with("\u{212A}ey", "key"));
        assert!(iends_with("x@EXAMPLE.com", "@example.com"));
        assert!(!iends_with("com", "@example.com"));
        assert!(iends_with("MONKEY\u{212A}", "k"));
        assert!(iends_with("ΣΊΣΥΦΟΣ", "υφοσ"));
        assert!(istarts_with("", ""));
        assert!(iends_with("abc", ""));
    }
}

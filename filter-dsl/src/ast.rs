//! The syntax tree of a filter: plain data, structural equality, canonical printing.
//!
//! Owns the shape of the language (what a condition, an operand or a path is) and its
//! canonical text form (`Display`). It does not parse (see `parser.rs`), check limits or
//! evaluate (see `program.rs`); nodes carry no source positions so that two trees
//! compare equal when they mean the same thing, which is what the print → re-parse
//! property test relies on.

use std::fmt::{self, Write as _};

use serde_json::Value;

/// A boolean condition (the whole filter, or a part of it).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `a || b || …` (two or more terms).
    Or(Vec<Node>),
    /// `a && b && …` (two or more terms).
    And(Vec<Node>),
    /// `!a`.
    Not(Box<Node>),
    /// `left <op> right` for `== != < <= > >=`.
    Compare {
        op: CmpOp,
        left: Operand,
        right: Operand,
    },
    /// `left in [..]`, `left not in [..]`, `left in path`, `left not in path`.
    In {
        negated: bool,
        left: Operand,
        right: InRhs,
    },
    /// `left starts_with "x"` and friends; `case_insensitive` is the `i…` variant.
    StrTest {
        op: StrOp,
        case_insensitive: bool,
        left: Operand,
        needle: String,
    },
    /// `exists(path)`.
    Exists(Path),
    /// `matches(path, "regex")`.
    Matches(Path, String),
    /// `like(path, "glob*")`.
    Like(Path, String),
    /// `between(path, low, high)`, inclusive; both bounds are numbers.
    Between(Path, serde_json::Number, serde_json::Number),
    /// `cidr(path, "10.0.0.0/8")` or `cidr(path, ["10.0.0.0/8", "::1/128"])`.
    Cidr(Path, CidrArg),
    /// `any(path, predicate)` / `all(path, predicate)`; `it` is the element.
    Quantifier {
        kind: Quantifier,
        path: Path,
        predicate: Box<Node>,
    },
}

/// One side of a comparison: a path into the event or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    /// A literal: string, number, bool, null or a list of those (never an object).
    Literal(Value),
}

/// Right-hand side of `in` / `not in`.
#[derive(Debug, Clone, PartialEq)]
pub enum InRhs {
    /// A list literal of scalars.
    List(Vec<Value>),
    /// A path that should resolve to an array.
    Path(Path),
}

/// The second argument of `cidr`.
#[derive(Debug, Clone, PartialEq)]
pub enum CidrArg {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// `< <= > >=`: only numbers with numbers and strings with strings.
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

impl StrOp {
    /// The operator's spelling, with the `i` prefix when case-insensitive.
    pub fn spelling(self, case_insensitive: bool) -> &'static str {
        match (self, case_insensitive) {
            (StrOp::StartsWith, false) => "starts_with",
            (StrOp::EndsWith, false) => "ends_with",
            (StrOp::Contains, false) => "contains",
            (StrOp::StartsWith, true) => "istarts_with",
            (StrOp::EndsWith, true) => "iends_with",
            (StrOp::Contains, true) => "icontains",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantifier {
    Any,
    All,
}

/// A path: a root and pre-split segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub root: Root,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    /// `topic` (a string; takes no segments).
    Topic,
    /// `payload…` (the JSON payload).
    Payload,
    /// `headers["name"]` (exactly one segment; case-insensitive name).
    Headers,
    /// `meta.id`, `meta.time`, `meta.source` (exactly one segment).
    Meta,
    /// `it…`: the current element inside `any(...)` / `all(...)`.
    It,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Topic => "topic",
            Root::Payload => "payload",
            Root::Headers => "headers",
            Root::Meta => "meta",
            Root::It => "it",
        }
    }
}

/// One step of a path: an object key (`.name` or `["any key"]`) or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Field(String),
    Index(usize),
}

// ---------------------------------------------------------------------------
// Canonical printing.
//
// The printed form re-parses to an equal tree: `||` inside `||` and any chain inside
// `&&` are parenthesised (the parser keeps parenthesised groups as their own node),
// and `!` is always followed by a call, another `!` or a parenthesised group.

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Or(terms) => {
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    if matches!(term, Node::Or(_)) {
                        write!(f, "({term})")?;
                    } else {
                        write!(f, "{term}")?;
                    }
                }
                Ok(())
            }
            Node::And(terms) => {
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" && ")?;
                    }
                    if matches!(term, Node::Or(_) | Node::And(_)) {
                        write!(f, "({term})")?;
                    } else {
                        write!(f, "{term}")?;
                    }
                }
                Ok(())
            }
            Node::Not(inner) => match inner.as_ref() {
                Node::Not(_)
                | Node::Exists(_)
                | Node::Matches(..)
                | Node::Like(..)
                | Node::Between(..)
                | Node::Cidr(..)
                | Node::Quantifier { .. } => write!(f, "!{inner}"),
                _ => write!(f, "!({inner})"),
            },
            Node::Compare { op, left, right } => {
                write!(f, "{left} {} {right}", op.as_str())
            }
            Node::In {
                negated,
                left,
                right,
            } => {
                let op = if *negated { "not in" } else { "in" };
                write!(f, "{left} {op} {right}")
            }
            Node::StrTest {
                op,
                case_insensitive,
                left,
                needle,
            } => {
                write!(f, "{left} {} ", op.spelling(*case_insensitive))?;
                write_json_string(f, needle)
            }
            Node::Exists(path) => write!(f, "exists({path})"),
            Node::Matches(path, re) => {
                write!(f, "matches({path}, ")?;
                write_json_string(f, re)?;
                f.write_char(')')
            }
            Node::Like(path, glob) => {
                write!(f, "like({path}, ")?;
                write_json_string(f, glob)?;
                f.write_char(')')
            }
            Node::Between(path, lo, hi) => write!(f, "between({path}, {lo}, {hi})"),
            Node::Cidr(path, arg) => {
                write!(f, "cidr({path}, ")?;
                match arg {
                    CidrArg::One(net) => write_json_string(f, net)?,
                    CidrArg::Many(nets) => {
                        f.write_char('[')?;
                        for (i, net) in nets.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write_json_string(f, net)?;
                        }
                        f.write_char(']')?;
                    }
                }
                f.write_char(')')
            }
            Node::Quantifier {
                kind,
                path,
                predicate,
            } => {
                let name = match kind {
                    Quantifier::Any => "any",
                    Quantifier::All => "all",
                };
                write!(f, "{name}({path}, {predicate})")
            }
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Path(path) => write!(f, "{path}"),
            Operand::Literal(value) => write_literal(f, value),
        }
    }
}

impl fmt::Display for InRhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InRhs::List(items) => write_list(f, items),
            InRhs::Path(path) => write!(f, "{path}"),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root.as_str())?;
        for segment in &self.segments {
            match segment {
                Segment::Field(name) if is_identifier(name) => write!(f, ".{name}")?,
                Segment::Field(name) => {
                    f.write_char('[')?;
                    write_json_string(f, name)?;
                    f.write_char(']')?;
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: printable after a `.` without quoting.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn write_literal(f: &mut impl fmt::Write, value: &Value) -> fmt::Result {
    match value {
        Value::Null => f.write_str("null"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Number(n) => write!(f, "{n}"),
        Value::String(s) => write_json_string(f, s),
        Value::Array(items) => write_list(f, items),
        // Literals are never objects; print something that cannot re-parse silently.
        Value::Object(_) => f.write_str("{…}"),
    }
}

fn write_list(f: &mut impl fmt::Write, items: &[Value]) -> fmt::Result {
    f.write_char('[')?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_literal(f, item)?;
    }
    f.write_char(']')
}

/// JSON string escaping (the grammar accepts exactly JSON escapes).
pub(crate) fn write_json_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

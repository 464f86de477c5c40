//! Why a mapping spec did not compile: a stable code, where (a JSON pointer into the
//! spec, plus a line/column inside an expression or path string) and a human message.
//!
//! Owns `CompileError` and the mapping's own codes. Expression and path errors keep
//! the filter language's codes (`syntax_error`, `type_error`, …) so one table of codes
//! serves filters and mappings. Applying a mapping has no errors (see `apply.rs`).

use std::fmt;

use gatepulse_filter_dsl::{FilterError, Position};
use serde_json::{Value, json};

/// The mapping engine's own error codes (expression errors use the filter language's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The spec, an op or a field has the wrong JSON shape.
    InvalidSpec,
    /// `version` is not 1.
    UnsupportedVersion,
    /// A field that the op (or the spec) does not take.
    UnknownField,
    /// A field the op needs is absent.
    MissingField,
    /// `op` names no operation.
    UnknownOp,
    /// Two fields that exclude each other (`value` and `expr`; `path` and `paths`).
    ConflictingFields,
    /// A path that cannot be used where it is (the root where a field is needed, an
    /// index in `keep`, `payload…` inside `map`, `it…` outside it).
    InvalidPath,
    /// A path into `topic`, `meta` or `headers` used as a target.
    ReadOnlyPath,
    /// An op that cannot do anything (`rename` onto itself).
    InvalidOp,
    /// More ops than `max_ops`.
    TooManyOps,
    /// A path list longer than `max_paths` (or empty).
    TooManyPaths,
    /// A literal `value` larger than `max_literal_bytes`.
    LiteralTooLarge,
    /// More expression nodes in total than `max_total_nodes`.
    TooComplex,
    /// A `map` or `filter` inside a `map`.
    NestingTooDeep,
}

impl ErrorCode {
    /// Stable machine-readable code (documented in docs/mapping.md).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidSpec => "invalid_spec",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::ConflictingFields => "conflicting_fields",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::ReadOnlyPath => "read_only_path",
            ErrorCode::InvalidOp => "invalid_op",
            ErrorCode::TooManyOps => "too_many_ops",
            ErrorCode::TooManyPaths => "too_many_paths",
            ErrorCode::LiteralTooLarge => "literal_too_large",
            ErrorCode::TooComplex => "too_complex",
            ErrorCode::NestingTooDeep => "nesting_too_deep",
        }
    }
}

/// Why a mapping spec did not compile.
///
/// `pointer` is an RFC 6901 JSON pointer into the spec (`/ops/3/expr`); `position` is
/// set when the problem is inside an expression or path string (line and column of
/// that string, 1-based). [`CompileError::to_json`] gives the fields a problem+json
/// body needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    // Boxed: compile results pass through many frames; keep the error one pointer wide.
    inner: Box<Inner>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    code: &'static str,
    pointer: String,
    op: Option<usize>,
    position: Option<Position>,
    message: String,
    excerpt: Option<String>,
}

impl CompileError {
    pub(crate) fn new(code: ErrorCode, pointer: &Ptr, message: impl Into<String>) -> Self {
        CompileError {
            inner: Box::new(Inner {
                code: code.as_str(),
                pointer: pointer.to_string(),
                op: pointer.op(),
                position: None,
                message: message.into(),
                excerpt: None,
            }),
        }
    }

    /// An expression or path error, at `pointer` (the string that holds the source).
    pub(crate) fn in_source(pointer: &Ptr, e: &FilterError) -> Self {
        CompileError {
            inner: Box::new(Inner {
                code: e.code(),
                pointer: pointer.to_string(),
                op: pointer.op(),
                position: Some(e.position()),
                message: e.message().to_string(),
                excerpt: Some(e.caret_excerpt()),
            }),
        }
    }

    /// Replaces the message (keeping code and position).
    pub(crate) fn reworded(mut self, message: impl Into<String>) -> Self {
        self.inner.message = message.into();
        self
    }

    /// Stable machine-readable code: one of the mapping codes
    /// ([`ErrorCode::as_str`]) or, inside an expression or path, a filter-language
    /// code such as `syntax_error` or `type_error`.
    pub fn code(&self) -> &'static str {
        self.inner.code
    }

    /// JSON pointer to the offending part of the spec, e.g. `/ops/3/expr`.
    pub fn pointer(&self) -> &str {
        &self.inner.pointer
    }

    /// Index of the top-level op the error is in (for `/ops/2/ops/0/path`, 2).
    pub fn op_index(&self) -> Option<usize> {
        self.inner.op
    }

    /// Line and column (and byte offset) inside the expression or path string.
    pub fn position(&self) -> Option<Position> {
        self.inner.position
    }

    /// The human message, without pointer or position.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The offending expression line with a `^` under the column.
    pub fn excerpt(&self) -> Option<&str> {
        self.inner.excerpt.as_deref()
    }

    /// The fields of a problem+json body:
    /// `{"code", "detail", "pointer", "op", "position": {"line", "column", "offset"},
    /// "excerpt"}` (`op`, `position` and `excerpt` only when known).
    pub fn to_json(&self) -> Value {
        let this = &self.inner;
        let mut out = json!({
            "code": this.code,
            "detail": this.message,
            "pointer": this.pointer,
        });
        if let Value::Object(map) = &mut out {
            if let Some(op) = this.op {
                map.insert("op".into(), json!(op));
            }
            if let Some(p) = this.position {
                map.insert(
                    "position".into(),
                    json!({"line": p.line, "column": p.column, "offset": p.offset}),
                );
            }
            if let Some(excerpt) = &this.excerpt {
                map.insert("excerpt".into(), json!(excerpt));
            }
        }
        out
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let this = &self.inner;
        let pointer = if this.pointer.is_empty() {
            "/"
        } else {
            &this.pointer
        };
        write!(f, "{pointer}")?;
        if let Some(p) = this.position {
            write!(f, " ({p})")?;
        }
        write!(f, ": {}", this.message)
    }
}

impl std::error::Error for CompileError {}

/// A JSON pointer being built while walking the spec.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ptr {
    parts: Vec<String>,
}

impl Ptr {
    pub(crate) fn root() -> Ptr {
        Ptr::default()
    }

    pub(crate) fn key(&self, key: &str) -> Ptr {
        let mut parts = self.parts.clone();
        parts.push(key.replace('~', "~0").replace('/', "~1"));
        Ptr { parts }
    }

    pub(crate) fn index(&self, i: usize) -> Ptr {
        let mut parts = self.parts.clone();
        parts.push(i.to_string());
        Ptr { parts }
    }

    /// The top-level op index (`/ops/N/…`).
    pub(crate) fn op(&self) -> Option<usize> {
        match self.parts.as_slice() {
            [ops, n, ..] if ops == "ops" => n.parse().ok(),
            _ => None,
        }
    }
}

impl fmt::Display for Ptr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            write!(f, "/{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_and_know_their_op() {
        let p = Ptr::root().key("ops").index(3).key("a/b~c");
        assert_eq!(p.to_string(), "/ops/3/a~1b~0c");
        assert_eq!(p.op(), Some(3));
        assert_eq!(Ptr::root().key("version").op(), None);
        assert_eq!(Ptr::root().to_string(), "");
    }

    #[test]
    fn problem_fields() {
        let e = CompileError::new(
            ErrorCode::UnknownOp,
            &Ptr::root().key("ops").index(1).key("op"),
            "unknown op",
        );
        assert_eq!(
            e.to_json(),
            json!({"code": "unknown_op", "detail": "unknown op", "pointer": "/ops/1/op", "op": 1})
        );
        assert_eq!(e.to_string(), "/ops/1/op: unknown op");
    }
}

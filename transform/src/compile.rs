//! Mapping spec (JSON) → compiled ops, with every problem reported as a `CompileError`
//! pointing at the field that causes it.
//!
//! Owns the spec format: the fields of the spec and of each op, which ones are
//! required, which exclude each other, which paths may be written where, and the
//! compile-time limits (ops, path lists, literal size, expression nodes, nesting).
//! Unknown fields are errors. Expressions and paths are compiled by the filter
//! language crate; this module decides their context (`it` or not, condition or
//! value) and positions their errors inside the spec.

use gatepulse_filter_dsl::ast::Root;
use gatepulse_filter_dsl::{Formula, FormulaOptions, parse_path};
use serde_json::{Map, Value};

use crate::error::{CompileError, ErrorCode, Ptr};
use crate::limits::MappingLimits;
use crate::op::{Kind, Op, Source};
use crate::path::{KeepTree, Target};
use crate::size::json_len;

/// The spec version this engine reads.
pub const SPEC_VERSION: u64 = 1;

/// Every op name, for messages.
const OP_NAMES: &str = "set, default, rename (or move), copy, remove, keep, coalesce, map, filter";

type R<T> = Result<T, CompileError>;

/// Where an op sits: at the top (writes `payload…`) or inside a `map` (writes `it…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Element,
}

/// What a path is used for, for the messages about roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Write,
    Read,
}

pub(crate) struct Compiled {
    pub(crate) ops: Box<[Op]>,
    pub(crate) op_count: usize,
    pub(crate) nodes: usize,
}

pub(crate) fn compile(spec: &Value, limits: &MappingLimits) -> R<Compiled> {
    let mut c = Compiler {
        limits,
        ops: 0,
        nodes: 0,
    };
    let root = Ptr::root();
    let Value::Object(obj) = spec else {
        return Err(CompileError::new(
            ErrorCode::InvalidSpec,
            &root,
            "a mapping is a JSON object: {\"version\": 1, \"ops\": [ ... ]}",
        ));
    };
    c.fields(obj, &root, &["version", "ops", "comment"], "a mapping")?;
    c.comment(obj, &root)?;
    match obj.get("version") {
        None => {
            return Err(CompileError::new(
                ErrorCode::MissingField,
                &root.key("version"),
                "`version` is required: this engine reads \"version\": 1",
            ));
        }
        Some(v) if v.as_u64() == Some(SPEC_VERSION) => {}
        Some(v) => {
            return Err(CompileError::new(
                ErrorCode::UnsupportedVersion,
                &root.key("version"),
                format!("mapping version {v} is not supported: this engine reads version 1"),
            ));
        }
    }
    let ops_ptr = root.key("ops");
    let items = match obj.get("ops") {
        None => {
            return Err(CompileError::new(
                ErrorCode::MissingField,
                &ops_ptr,
                "`ops` is required: a list of operations, applied in order",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(CompileError::new(
                ErrorCode::InvalidSpec,
                &ops_ptr,
                "`ops` is a list of operations: [{\"op\": \"set\", ...}, ...]",
            ));
        }
    };
    let ops = c.ops(items, &ops_ptr, Level::Top)?;
    Ok(Compiled {
        ops,
        op_count: c.ops,
        nodes: c.nodes,
    })
}

struct Compiler<'l> {
    limits: &'l MappingLimits,
    /// Ops so far, nested ones included.
    ops: usize,
    /// Expression nodes so far.
    nodes: usize,
}

impl Compiler<'_> {
    fn ops(&mut self, items: &[Value], ptr: &Ptr, level: Level) -> R<Box<[Op]>> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.op(item, &ptr.index(i), level)?);
        }
        Ok(out.into_boxed_slice())
    }

    fn op(&mut self, v: &Value, ptr: &Ptr, level: Level) -> R<Op> {
        self.ops += 1;
        if self.ops > self.limits.max_ops {
            return Err(CompileError::new(
                ErrorCode::TooManyOps,
                ptr,
                format!(
                    "a mapping has at most {} ops (those inside map included)",
                    self.limits.max_ops
                ),
            ));
        }
        let Value::Object(obj) = v else {
            return Err(CompileError::new(
                ErrorCode::InvalidSpec,
                ptr,
                "an op is an object: {\"op\": \"set\", \"path\": \"payload.x\", \"value\": 1}",
            ));
        };
        let name = match obj.get("op") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(CompileError::new(
                    ErrorCode::InvalidSpec,
                    &ptr.key("op"),
                    format!("`op` is a string naming the operation: one of {OP_NAMES}"),
                ));
            }
            None => {
                return Err(CompileError::new(
                    ErrorCode::MissingField,
                    &ptr.key("op"),
                    format!("every op names its operation in `op`: one of {OP_NAMES}"),
                ));
            }
        };
        let fields: &[&str] = match name {
            "set" | "default" => &["path", "value", "expr"],
            "rename" | "move" | "copy" => &["from", "to"],
            "remove" => &["path", "paths"],
            "keep" => &["paths"],
            "coalesce" => &["path", "from"],
            "map" => &["path", "ops"],
            "filter" => &["path", "where"],
            _ => {
                return Err(CompileError::new(
                    ErrorCode::UnknownOp,
                    &ptr.key("op"),
                    format!("unknown op `{name}`; the ops are {OP_NAMES}"),
                ));
            }
        };
        let mut allowed = vec!["op"];
        allowed.extend_from_slice(fields);
        allowed.extend_from_slice(&["when", "comment"]);
        self.fields(obj, ptr, &allowed, &format!("a `{name}` op"))?;
        self.comment(obj, ptr)?;
        if matches!(name, "map" | "filter") && level == Level::Element {
            return Err(CompileError::new(
                ErrorCode::NestingTooDeep,
                &ptr.key("op"),
                "map and filter work one level deep: the ops of a map cannot map or filter again",
            ));
        }
        let when = match self.opt_str(obj, ptr, "when")? {
            Some(src) => Some(self.formula(src, &ptr.key("when"), level, true)?),
            None => None,
        };
        let kind = match name {
            "set" | "default" => {
                let target =
                    self.target(self.req_str(obj, ptr, "path")?, &ptr.key("path"), level)?;
                let value = self.source(obj, ptr, level, name)?;
                if name == "set" {
                    Kind::Set { target, value }
                } else {
                    Kind::Default { target, value }
                }
            }
            "rename" | "move" | "copy" => {
                let from_ptr = ptr.key("from");
                let from_src = self.req_str(obj, ptr, "from")?;
                let from = self.path(from_src, &from_ptr, level, Use::Read)?;
                let to = self.target(self.req_str(obj, ptr, "to")?, &ptr.key("to"), level)?;
                if from.segs() == to.segs() {
                    return Err(CompileError::new(
                        ErrorCode::InvalidOp,
                        &ptr.key("to"),
                        format!("`from` and `to` are the same path; this {name} would do nothing"),
                    ));
                }
                if name == "copy" {
                    Kind::Copy { from, to }
                } else {
                    Kind::Rename { from, to }
                }
            }
            "remove" => {
                let targets = match (obj.get("path"), obj.get("paths")) {
                    (Some(_), Some(_)) => {
                        return Err(CompileError::new(
                            ErrorCode::ConflictingFields,
                            &ptr.key("paths"),
                            "give `path` (one) or `paths` (a list), not both",
                        ));
                    }
                    (Some(_), None) => {
                        let p = ptr.key("path");
                        vec![self.target(self.req_str(obj, ptr, "path")?, &p, level)?]
                    }
                    (None, Some(_)) => self.path_list(obj, ptr, "paths", level, Use::Write)?,
                    (None, None) => {
                        return Err(CompileError::new(
                            ErrorCode::MissingField,
                            &ptr.key("path"),
                            "remove needs `path` (one path) or `paths` (a list)",
                        ));
                    }
                };
                for (i, t) in targets.iter().enumerate() {
                    if t.is_root() {
                        let at = if obj.contains_key("paths") {
                            ptr.key("paths").index(i)
                        } else {
                            ptr.key("path")
                        };
                        return Err(CompileError::new(
                            ErrorCode::InvalidPath,
                            &at,
                            "remove takes a path inside the document, not the document itself; use keep or set to replace it",
                        ));
                    }
                }
                Kind::Remove {
                    targets: targets.into_boxed_slice(),
                }
            }
            "keep" => {
                let paths = self.path_list(obj, ptr, "paths", level, Use::Write)?;
                for (i, t) in paths.iter().enumerate() {
                    if t.is_root() || t.has_index() {
                        return Err(CompileError::new(
                            ErrorCode::InvalidPath,
                            &ptr.key("paths").index(i),
                            "keep lists object fields to keep (e.g. \"payload.customer.email\"): no array indexes, and not the whole document",
                        ));
                    }
                }
                Kind::Keep {
                    tree: KeepTree::new(&paths),
                }
            }
            "coalesce" => {
                let target =
                    self.target(self.req_str(obj, ptr, "path")?, &ptr.key("path"), level)?;
                let from = self.path_list(obj, ptr, "from", level, Use::Read)?;
                Kind::Coalesce {
                    target,
                    from: from.into_boxed_slice(),
                }
            }
            "map" => {
                let target = self.path(
                    self.req_str(obj, ptr, "path")?,
                    &ptr.key("path"),
                    level,
                    Use::Write,
                )?;
                let ops_ptr = ptr.key("ops");
                let items = match obj.get("ops") {
                    Some(Value::Array(items)) if !items.is_empty() => items,
                    Some(_) => {
                        return Err(CompileError::new(
                            ErrorCode::InvalidSpec,
                            &ops_ptr,
                            "`ops` of a map is a non-empty list of ops applied to each element (`it`)",
                        ));
                    }
                    None => {
                        return Err(CompileError::new(
                            ErrorCode::MissingField,
                            &ops_ptr,
                            "map needs `ops`: the ops applied to each element (`it`)",
                        ));
                    }
                };
                let ops = self.ops(items, &ops_ptr, Level::Element)?;
                Kind::Map { target, ops }
            }
            _ => {
                let target = self.path(
                    self.req_str(obj, ptr, "path")?,
                    &ptr.key("path"),
                    level,
                    Use::Write,
                )?;
                let cond_src = self.req_str(obj, ptr, "where")?;
                let cond = self.formula(cond_src, &ptr.key("where"), Level::Element, true)?;
                Kind::Filter { target, cond }
            }
        };
        Ok(Op {
            kind,
            when,
            pointer: ptr.to_string().into_boxed_str(),
        })
    }

    /// Refuses fields outside `allowed`.
    fn fields(&self, obj: &Map<String, Value>, ptr: &Ptr, allowed: &[&str], what: &str) -> R<()> {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                let list = allowed
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(CompileError::new(
                    ErrorCode::UnknownField,
                    &ptr.key(key),
                    format!("unknown field `{key}`: {what} takes {list}"),
                ));
            }
        }
        Ok(())
    }

    fn comment(&self, obj: &Map<String, Value>, ptr: &Ptr) -> R<()> {
        match obj.get("comment") {
            None | Some(Value::String(_)) => Ok(()),
            Some(_) => Err(CompileError::new(
                ErrorCode::InvalidSpec,
                &ptr.key("comment"),
                "`comment` is a string (a note for people; it does nothing)",
            )),
        }
    }

    fn opt_str<'v>(&self, obj: &'v Map<String, Value>, ptr: &Ptr, key: &str) -> R<Option<&'v str>> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(CompileError::new(
                ErrorCode::InvalidSpec,
                &ptr.key(key),
                format!("`{key}` is a string"),
            )),
        }
    }

    fn req_str<'v>(&self, obj: &'v Map<String, Value>, ptr: &Ptr, key: &str) -> R<&'v str> {
        self.opt_str(obj, ptr, key)?.ok_or_else(|| {
            CompileError::new(
                ErrorCode::MissingField,
                &ptr.key(key),
                format!("this op needs `{key}`"),
            )
        })
    }

    /// `value` (a literal) or `expr` (an expression), exactly one.
    fn source(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &Ptr,
        level: Level,
        name: &str,
    ) -> R<Source> {
        match (obj.get("value"), obj.get("expr")) {
            (Some(_), Some(_)) => Err(CompileError::new(
                ErrorCode::ConflictingFields,
                &ptr.key("expr"),
                format!(
                    "a {name} op takes `value` (a JSON literal) or `expr` (an expression), not both"
                ),
            )),
            (Some(value), None) => {
                let bytes = json_len(value);
                if bytes > self.limits.max_literal_bytes {
                    return Err(CompileError::new(
                        ErrorCode::LiteralTooLarge,
                        &ptr.key("value"),
                        format!(
                            "the value is {bytes} bytes of JSON; the limit is {}",
                            self.limits.max_literal_bytes
                        ),
                    ));
                }
                Ok(Source::Literal {
                    value: value.clone(),
                    bytes,
                })
            }
            (None, Some(_)) => {
                let src = self.req_str(obj, ptr, "expr")?;
                Ok(Source::Expr(self.formula(
                    src,
                    &ptr.key("expr"),
                    level,
                    false,
                )?))
            }
            (None, None) => Err(CompileError::new(
                ErrorCode::MissingField,
                &ptr.key("value"),
                format!("a {name} op needs `value` (a JSON literal) or `expr` (an expression)"),
            )),
        }
    }

    fn formula(&mut self, src: &str, ptr: &Ptr, level: Level, condition: bool) -> R<Formula> {
        let options = FormulaOptions {
            element: level == Level::Element,
            condition,
        };
        let f = Formula::compile(src, &self.limits.expr, options).map_err(|e| {
            let err = CompileError::in_source(ptr, &e);
            if e.code() == "it_outside_quantifier" {
                err.reworded(
                    "`it` is the current array element: it exists in the ops of a map, in a filter's `where`, and inside any(...)/all(...)",
                )
            } else {
                err
            }
        })?;
        self.nodes += f.nodes();
        if self.nodes > self.limits.max_total_nodes {
            return Err(CompileError::new(
                ErrorCode::TooComplex,
                ptr,
                format!(
                    "the mapping's expressions have more than {} parts in total",
                    self.limits.max_total_nodes
                ),
            ));
        }
        Ok(f)
    }

    /// A path an op writes to.
    fn target(&self, src: &str, ptr: &Ptr, level: Level) -> R<Target> {
        self.path(src, ptr, level, Use::Write)
    }

    /// A path inside the document (`payload…`) or, inside a map, the element (`it…`).
    fn path(&self, src: &str, ptr: &Ptr, level: Level, usage: Use) -> R<Target> {
        let parsed = parse_path(src, &self.limits.expr, level == Level::Element).map_err(|e| {
            let err = CompileError::in_source(ptr, &e);
            match e.code() {
                "it_outside_quantifier" => err.reworded(
                    "`it` is the current element and exists only in the ops of a map; here paths start with `payload`",
                ),
                "unknown_name" if !src.contains(['.', '[']) || !src.starts_with(['t', 'p', 'h', 'm', 'i']) => err.reworded(format!(
                    "a path starts with its root: `payload.{src}` for a field of the document{}",
                    if level == Level::Element { ", `it.…` for a field of the element" } else { "" }
                )),
                "unknown_name" => err.reworded(
                    "a path starts with its root: `payload…` (the document), or `it…` inside a map",
                ),
                "syntax_error" if src.trim().contains(char::is_whitespace) => {
                    let message = format!(
                        "{}; a path has no spaces: write keys with spaces or other characters as payload[\"a b\"]",
                        e.message()
                    );
                    err.reworded(message)
                }
                _ => err,
            }
        })?;
        let expected = if level == Level::Top {
            Root::Payload
        } else {
            Root::It
        };
        if parsed.root == expected {
            return Ok(Target::new(&parsed.segments, src));
        }
        let (code, message) = match (parsed.root, level) {
            (Root::Topic | Root::Meta | Root::Headers, _) => (
                ErrorCode::ReadOnlyPath,
                match usage {
                    Use::Write => format!(
                        "`{}` is part of the event, not of the document: expressions can read it, ops cannot change it",
                        parsed.root.as_str()
                    ),
                    Use::Read => format!(
                        "paths here are inside the document; to use `{src}`, set it with an expression: {{\"op\": \"set\", \"path\": \"payload.x\", \"expr\": \"{src}\"}}"
                    ),
                },
            ),
            (Root::Payload, Level::Element) => (
                ErrorCode::InvalidPath,
                "the ops of a map change the element: write `it.…` (expressions can still read `payload.…`)".to_string(),
            ),
            _ => (
                ErrorCode::InvalidPath,
                "paths here start with `payload`".to_string(),
            ),
        };
        Err(CompileError::new(code, ptr, message))
    }

    fn path_list(
        &self,
        obj: &Map<String, Value>,
        ptr: &Ptr,
        key: &str,
        level: Level,
        usage: Use,
    ) -> R<Vec<Target>> {
        let list_ptr = ptr.key(key);
        let items = match obj.get(key) {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(CompileError::new(
                    ErrorCode::InvalidSpec,
                    &list_ptr,
                    format!("`{key}` is a list of paths: [\"payload.a\", \"payload.b.c\"]"),
                ));
            }
            None => {
                return Err(CompileError::new(
                    ErrorCode::MissingField,
                    &list_ptr,
                    format!("this op needs `{key}`: a list of paths"),
                ));
            }
        };
        if items.is_empty() || items.len() > self.limits.max_paths {
            return Err(CompileError::new(
                ErrorCode::TooManyPaths,
                &list_ptr,
                format!(
                    "`{key}` lists 1 to {} paths; it has {}",
                    self.limits.max_paths,
                    items.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_ptr = list_ptr.index(i);
            let Value::String(src) = item else {
                return Err(CompileError::new(
                    ErrorCode::InvalidSpec,
                    &item_ptr,
                    "a path is a string such as \"payload.customer.email\"",
                ));
            };
            out.push(self.path(src, &item_ptr, level, usage)?);
        }
        Ok(out)
    }
}

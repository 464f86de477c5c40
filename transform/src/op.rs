//! The compiled form of a mapping's operations: what `compile.rs` produces and
//! `apply.rs` runs. Plain data; every path is pre-split, every expression compiled.

use gatepulse_filter_dsl::Formula;
use serde_json::Value;

use crate::path::{KeepTree, Target};

/// One compiled op.
#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) kind: Kind,
    /// `when`: the op runs only when this is exactly `true`.
    pub(crate) when: Option<Formula>,
    /// Where the op is in the spec (`/ops/3`, `/ops/2/ops/0`), for reports.
    pub(crate) pointer: Box<str>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Set { target: Target, value: Source },
    Default { target: Target, value: Source },
    Rename { from: Target, to: Target },
    Copy { from: Target, to: Target },
    Remove { targets: Box<[Target]> },
    Keep { tree: KeepTree },
    Coalesce { target: Target, from: Box<[Target]> },
    Map { target: Target, ops: Box<[Op]> },
    Filter { target: Target, cond: Formula },
}

/// Where a `set`/`default` value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A JSON literal and its size in bytes (charged against the write budget).
    Literal {
        value: Value,
        bytes: usize,
    },
    Expr(Formula),
}

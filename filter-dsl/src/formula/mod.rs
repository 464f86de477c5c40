//! Formulas: the filter language extended into a value language for the mapping engine.
//!
//! Owns the formula dialect — everything a filter can say, plus arithmetic, value
//! functions (`lower`, `concat`, `template`, `sha256`, `format_time`, …) and bare values
//! (`payload.active` alone is a formula) — its compile step (positions, limits, static
//! type checks) and its evaluation to a JSON value. Filters are not affected: they parse
//! with their own rules and evaluate with `program.rs`; a formula reuses the filter's
//! paths, literals, comparison semantics and path functions (`exists`, `matches`, …).
//!
//! Evaluation never fails and never panics. A missing path, a type mismatch or an
//! impossible conversion yields [`Val::Missing`]; work and result sizes are bounded by a
//! [`Budget`] the caller passes in, and running out of it is reported there, never
//! as a panic or an error. Nothing here reads the clock: time functions format the
//! values they are given.

mod build;
mod eval;
mod func;
mod num;
mod template;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::FilterError;
use crate::event::Event;
use crate::limits::Limits;
use crate::program::Scope;
use crate::value::ValueRef;

pub use eval::Val;

/// Nesting depth of a formula is clamped to this (whatever `Limits::max_depth` says):
/// a formula's grammar has about twice as many rules per parenthesis as a filter's,
/// so this keeps pest's recursion as far from a thread stack's end as filters are.
pub const HARD_MAX_FORMULA_DEPTH: usize = 32;

/// How a formula is compiled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormulaOptions {
    /// `it` names the current array element at the top level (the ops of a mapping's
    /// `map`, the `where` of its `filter`). Otherwise `it` exists only inside
    /// `any(...)`/`all(...)`.
    pub element: bool,
    /// The formula decides something (`when`, `where`): a result that is known at
    /// compile time not to be a boolean (`lower(x)`, `1 + 2`, `"yes"`) is a `type_error`.
    pub condition: bool,
}

/// A compiled formula: cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Formula {
    inner: Arc<FormulaInner>,
}

#[derive(Debug)]
struct FormulaInner {
    source: Box<str>,
    tree: eval::F,
    nodes: usize,
}

impl Formula {
    /// Parses, checks every limit and static type rule, and compiles `src`.
    pub fn compile(
        src: &str,
        limits: &Limits,
        options: FormulaOptions,
    ) -> Result<Formula, FilterError> {
        let compiled = build::compile(src, limits, options)?;
        Ok(Formula {
            inner: Arc::new(FormulaInner {
                source: src.into(),
                tree: compiled.tree,
                nodes: compiled.nodes,
            }),
        })
    }

    /// Evaluates the formula. `it` is the current element when the formula was compiled
    /// with [`FormulaOptions::element`] (ignored otherwise). The result borrows from the
    /// event, the element or the formula's own literals when it can.
    pub fn eval<'a>(
        &'a self,
        event: &'a Event<'a>,
        it: Option<&'a Value>,
        budget: &Budget,
    ) -> Val<'a> {
        let cx = eval::Cx {
            scope: Scope { event, it },
            budget,
        };
        self.inner.tree.eval(cx)
    }

    /// Whether the formula evaluates to exactly `true` (anything else, missing included,
    /// is not true).
    pub fn test(&self, event: &Event<'_>, it: Option<&Value>, budget: &Budget) -> bool {
        let cx = eval::Cx {
            scope: Scope { event, it },
            budget,
        };
        self.inner.tree.eval(cx).is_true()
    }

    /// Syntax-tree nodes counted against `Limits::max_nodes` (template holes included).
    pub fn nodes(&self) -> usize {
        self.inner.nodes
    }

    /// The source text, as compiled.
    pub fn source(&self) -> &str {
        &self.inner.source
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.source)
    }
}

/// Why an evaluation stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetHit {
    /// More evaluation steps than the budget allows (one per node evaluated, one per
    /// array element examined).
    Steps,
    /// A computed string or array larger than the budget's value size.
    ValueTooLarge,
}

/// Run-time bounds for one or more evaluations (one mapping apply shares one budget).
///
/// Every evaluated node and every array element examined costs one step; when the
/// steps run out, or a function would build a string or array larger than
/// `max_value_bytes`, the value in question is [`Val::Missing`] and [`Budget::hit`]
/// says why. A budget is not `Sync`: make one per evaluation thread.
#[derive(Debug)]
pub struct Budget {
    steps: Cell<u64>,
    max_value_bytes: usize,
    hit: Cell<Option<BudgetHit>>,
}

impl Budget {
    pub fn new(max_steps: u64, max_value_bytes: usize) -> Budget {
        Budget {
            steps: Cell::new(max_steps),
            max_value_bytes,
            hit: Cell::new(None),
        }
    }

    /// The first bound that was hit, if any.
    pub fn hit(&self) -> Option<BudgetHit> {
        self.hit.get()
    }

    /// Steps left.
    pub fn remaining_steps(&self) -> u64 {
        self.steps.get()
    }

    /// The largest string or array (JSON bytes) a function may build.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Spends `n` steps on work outside formulas (the mapping engine charges one per
    /// op it runs). False, and [`BudgetHit::Steps`] recorded, when there are not
    /// enough left.
    pub fn spend(&self, n: u64) -> bool {
        self.take(n)
    }

    /// Takes `n` steps; false (and the hit recorded) when there are not enough left.
    pub(crate) fn take(&self, n: u64) -> bool {
        let left = self.steps.get();
        if left >= n {
            self.steps.set(left - n);
            true
        } else {
            self.steps.set(0);
            self.fail(BudgetHit::Steps);
            false
        }
    }

    /// Whether a value of `len` bytes may be built; records the hit when not.
    pub(crate) fn fits(&self, len: usize) -> bool {
        if len <= self.max_value_bytes {
            true
        } else {
            self.fail(BudgetHit::ValueTooLarge);
            false
        }
    }

    pub(crate) fn fail(&self, why: BudgetHit) {
        if self.hit.get().is_none() {
            self.hit.set(Some(why));
        }
    }
}

/// A borrowed JSON view of a value for callers outside this crate (e.g. size checks).
impl<'a> Val<'a> {
    /// The value as a [`ValueRef`], or `None` when missing.
    pub fn as_value_ref(&self) -> Option<ValueRef<'_>> {
        self.view()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn formula_is_send_sync_clone() {
        assert_send_sync_clone::<Formula>();
    }
}

//! GatePulse filter language: compile a subscription's filter once, evaluate it per event.
//!
//! This crate owns the language (a pest grammar), its compile-time complexity limits,
//! its error reporting (stable codes, line/column, caret excerpts) and a compiled
//! evaluator over a borrowed view of one event. It must not know about HTTP, tokio,
//! storage or any other GatePulse crate: the router builds an [`Event`] view and asks
//! [`Filter::matches`]; the mapping engine compiles [`Formula`]s — the same language
//! plus arithmetic and value functions — for its computed values and conditions, and
//! [`parse_path`] for the paths its operations write to.
//!
//! ```
//! use gatepulse_filter_dsl::{Event, Filter, Limits};
//!
//! let filter = Filter::compile(
//!     r#"topic == "orders.created" && payload.amount > 100"#,
//!     &Limits::default(),
//! )?;
//! let payload = serde_json::json!({ "amount": 250 });
//! assert!(filter.matches(&Event::new("orders.created", &payload)));
//! # Ok::<(), gatepulse_filter_dsl::FilterError>(())
//! ```
//!
//! The language reference (grammar, operators, semantics, limits, error codes) is
//! `docs/filter-dsl.md` at the repository root.

pub mod ast;
mod cidr;
mod error;
mod event;
mod formula;
mod glob;
mod limits;
mod parser;
mod program;
mod value;

use std::fmt;
use std::sync::Arc;

pub use error::{ErrorCode, FilterError, Position};
pub use event::{Event, HeaderLookup, Headers, Meta};
pub use formula::{Budget, BudgetHit, Formula, FormulaOptions, HARD_MAX_FORMULA_DEPTH, Val};
pub use limits::{HARD_MAX_DEPTH, Limits};
pub use value::ValueRef;

use program::{Compiler, Opnd, Pred, Scope};

/// A compiled filter: cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Filter {
    inner: Arc<FilterInner>,
}

#[derive(Debug)]
struct FilterInner {
    ast: ast::Node,
    pred: Pred,
}

impl Filter {
    /// Parses, checks every limit and type rule, and compiles `src`.
    pub fn compile(src: &str, limits: &Limits) -> Result<Filter, FilterError> {
        let parsed = parser::parse_filter(src, limits)?;
        let compiler = Compiler {
            regexes: &parsed.regexes,
            limits,
        };
        let pred = compiler.pred(&parsed.tree)?;
        Ok(Filter {
            inner: Arc::new(FilterInner {
                ast: parsed.tree,
                pred,
            }),
        })
    }

    /// Whether `event` passes the filter. Never fails: a missing field or a type
    /// mismatch makes the comparison involved false.
    pub fn matches(&self, event: &Event<'_>) -> bool {
        self.inner.pred.eval(Scope { event, it: None })
    }

    /// The checked syntax tree.
    pub fn ast(&self) -> &ast::Node {
        &self.inner.ast
    }
}

/// Prints the canonical source, which compiles to an equal tree.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.ast, f)
    }
}

/// Parses and checks `src` into a syntax tree without compiling it for evaluation.
pub fn parse(src: &str, limits: &Limits) -> Result<ast::Node, FilterError> {
    parser::parse_filter(src, limits).map(|parsed| parsed.tree)
}

/// Parses a path on its own, e.g. `payload.customer["e-mail"]` or `items[0].sku`
/// after a root. `allow_it` lets it start with `it` (a mapping's element); the other
/// roots are `topic`, `payload`, `headers` and `meta`, as in filters. Used by the
/// mapping engine for the paths its operations read and write.
pub fn parse_path(src: &str, limits: &Limits, allow_it: bool) -> Result<ast::Path, FilterError> {
    parser::parse_path(src, limits, allow_it)
}

/// A compiled value expression (a path such as `payload.customer.email`, or a literal),
/// for callers that need a value rather than a yes/no — e.g. the mapping engine.
#[derive(Debug, Clone)]
pub struct Expr {
    inner: Arc<ExprInner>,
}

#[derive(Debug)]
struct ExprInner {
    ast: ast::Operand,
    opnd: Opnd,
}

impl Expr {
    /// Parses and checks a path or literal under the same limits as filters.
    pub fn compile(src: &str, limits: &Limits) -> Result<Expr, FilterError> {
        let ast = parser::parse_value(src, limits)?;
        let opnd = program::opnd(&ast);
        Ok(Expr {
            inner: Arc::new(ExprInner { ast, opnd }),
        })
    }

    /// The value at the path (borrowed from the event), the literal (borrowed from the
    /// expression), or `None` when the path is missing.
    pub fn eval_value<'a>(&'a self, event: &'a Event<'a>) -> Option<ValueRef<'a>> {
        self.inner.opnd.resolve(Scope { event, it: None })
    }

    /// The checked syntax tree.
    pub fn ast(&self) -> &ast::Operand {
        &self.inner.ast
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.ast, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn filter_and_expr_are_send_sync_clone() {
        assert_send_sync_clone::<Filter>();
        assert_send_sync_clone::<Expr>();
    }
}

//! Running a compiled mapping on one payload. Never fails, never panics.
//!
//! Owns the run-time semantics of every op (what happens when a path is missing, a
//! target is blocked, a value is missing or a guard is false: the op is skipped, the
//! document unchanged by it) and the run-time limits: a step budget shared with the
//! expressions, a write budget (bytes the ops write, in total), the array length a
//! `map`/`filter` processes and the final output size. The first limit hit stops the
//! mapping and is reported in `Output::limited`; nothing here returns an error.

use std::fmt::Write as _;

use gatepulse_filter_dsl::{Budget, BudgetHit, Event, Headers, Meta};
use serde_json::{Map, Value};

use crate::limits::MappingLimits;
use crate::op::{Kind, Op, Source};
use crate::size::{json_len, ref_len};

/// What expressions see besides the payload: the event's envelope, exactly as filters
/// see it (`topic`, `meta.id`, `meta.time`, `meta.source`, `headers["…"]`).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub topic: &'a str,
    pub meta: Meta<'a>,
    pub headers: Headers<'a>,
}

impl<'a> Context<'a> {
    /// A context with only a topic (no meta fields, no headers).
    pub fn new(topic: &'a str) -> Self {
        Context {
            topic,
            meta: Meta::default(),
            headers: Headers::None,
        }
    }

    pub fn with_meta(self, meta: Meta<'a>) -> Self {
        Context { meta, ..self }
    }

    pub fn with_headers(self, headers: impl Into<Headers<'a>>) -> Self {
        Context {
            headers: headers.into(),
            ..self
        }
    }

    fn event<'p>(&self, payload: &'p Value) -> Event<'p>
    where
        'a: 'p,
    {
        Event::new(self.topic, payload)
            .with_headers(self.headers)
            .with_meta(self.meta)
    }
}

/// The result of applying a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The mapped payload. When `limited` is set it is the document as far as the
    /// mapping got (or `null` when the finished document was over `max_output_bytes`)
    /// and must not be delivered.
    pub value: Value,
    /// The run-time limit that stopped the mapping, if any.
    pub limited: Option<Limited>,
}

impl Output {
    pub fn is_limited(&self) -> bool {
        self.limited.is_some()
    }
}

/// A run-time limit that stopped a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub kind: LimitKind,
    /// The op that hit it (`/ops/3`, `/ops/2/ops/0`); `None` for the final output size.
    pub op: Option<String>,
    /// What happened, for people (e.g. in the attempt's error).
    pub detail: String,
}

/// Which run-time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// The output, or the total written by the ops, would pass `max_output_bytes`.
    OutputTooLarge,
    /// A `map`/`filter` array longer than `max_array_len`.
    ArrayTooLong,
    /// An expression would build a string or array larger than `max_value_bytes`.
    ValueTooLarge,
    /// More than `max_steps` evaluation steps.
    StepsExhausted,
}

impl LimitKind {
    /// Stable machine-readable code (documented in docs/mapping.md).
    pub fn code(self) -> &'static str {
        match self {
            LimitKind::OutputTooLarge => "output_too_large",
            LimitKind::ArrayTooLong => "array_too_long",
            LimitKind::ValueTooLarge => "value_too_large",
            LimitKind::StepsExhausted => "steps_exhausted",
        }
    }
}

/// What one top-level op did, from [`Mapping::explain`](crate::Mapping::explain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpReport {
    /// `/ops/N`.
    pub op: String,
    pub status: OpStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    /// The op changed (or may have changed) the document.
    Applied,
    /// The op did nothing, for this reason.
    Skipped(Skip),
    /// A run-time limit stopped the mapping at this op.
    Stopped(LimitKind),
}

/// Why an op did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// `when` was not `true`.
    When,
    /// Nothing at the path it reads (`from`, `path` of remove/map/filter, every
    /// `coalesce` source), or its expression had no value.
    Missing,
    /// The target path goes through a value of another kind, or a missing array
    /// element, so nothing could be written.
    Blocked,
    /// `default`: the target already had a non-null value.
    Present,
    /// `map`/`filter`: the value at `path` is not an array.
    NotArray,
}

impl OpStatus {
    /// A short stable word for reports: `applied`, `skipped_when`, `skipped_missing`,
    /// `skipped_blocked`, `skipped_present`, `skipped_not_array`, or the limit's code.
    pub fn code(self) -> &'static str {
        match self {
            OpStatus::Applied => "applied",
            OpStatus::Skipped(Skip::When) => "skipped_when",
            OpStatus::Skipped(Skip::Missing) => "skipped_missing",
            OpStatus::Skipped(Skip::Blocked) => "skipped_blocked",
            OpStatus::Skipped(Skip::Present) => "skipped_present",
            OpStatus::Skipped(Skip::NotArray) => "skipped_not_array",
            OpStatus::Stopped(kind) => kind.code(),
        }
    }
}

type Step = Result<OpStatus, Limited>;

/// Where an op writes: the document, or an element of the array a `map` is running
/// over (detached from the document while it runs; `payload` still reads the rest).
enum Place<'d> {
    Doc(&'d mut Value),
    Elem { doc: &'d Value, el: &'d mut Value },
}

impl Place<'_> {
    /// (`payload`, `it`) for expressions.
    fn reads(&self) -> (&Value, Option<&Value>) {
        match self {
            Place::Doc(doc) => (doc, None),
            Place::Elem { doc, el } => (doc, Some(el)),
        }
    }

    fn root(&mut self) -> &mut Value {
        match self {
            Place::Doc(doc) => doc,
            Place::Elem { el, .. } => el,
        }
    }

    fn root_ref(&self) -> &Value {
        match self {
            Place::Doc(doc) => doc,
            Place::Elem { el, .. } => el,
        }
    }
}

pub(crate) struct Run<'m, 'c> {
    limits: &'m MappingLimits,
    ctx: &'c Context<'c>,
    budget: Budget,
    /// Bytes the ops have written so far (values set, copied or computed, and the
    /// keys they created), bounded by `max_output_bytes`.
    written: usize,
    pub(crate) trace: Option<Vec<OpReport>>,
}

impl<'m, 'c> Run<'m, 'c> {
    pub(crate) fn new(limits: &'m MappingLimits, ctx: &'c Context<'c>, trace: bool) -> Self {
        Run {
            limits,
            ctx,
            budget: Budget::new(limits.max_steps, limits.max_value_bytes),
            written: 0,
            trace: trace.then(Vec::new),
        }
    }

    /// Runs every op in order on `doc`, then checks the output size.
    pub(crate) fn run(&mut self, ops: &[Op], mut doc: Value) -> Output {
        if let Some(limited) = self.run_ops(ops, &mut doc) {
            return Output {
                value: doc,
                limited: Some(limited),
            };
        }
        let bytes = json_len(&doc);
        if bytes > self.limits.max_output_bytes {
            return Output {
                value: Value::Null,
                limited: Some(self.too_large(format!(
                    "the mapped payload is {bytes} bytes; the limit is {} (max_output_bytes)",
                    self.limits.max_output_bytes
                ))),
            };
        }
        Output {
            value: doc,
            limited: None,
        }
    }

    /// Runs every op, then writes the output as compact JSON and checks its length (no
    /// separate measuring pass). The document is bounded while the ops run (the write
    /// budget), so the body written before the check is too.
    pub(crate) fn run_to_vec(&mut self, ops: &[Op], mut doc: Value) -> Result<Vec<u8>, Limited> {
        if let Some(limited) = self.run_ops(ops, &mut doc) {
            return Err(limited);
        }
        // Writing a `Value` cannot fail (its keys are strings); an empty body would be
        // refused by the length check anyway.
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        if body.is_empty() || body.len() > self.limits.max_output_bytes {
            return Err(self.too_large(format!(
                "the mapped payload is {} bytes; the limit is {} (max_output_bytes)",
                body.len(),
                self.limits.max_output_bytes
            )));
        }
        Ok(body)
    }

    /// Runs the ops in order; the limit that stopped them, if any.
    fn run_ops(&mut self, ops: &[Op], doc: &mut Value) -> Option<Limited> {
        for op in ops {
            let step = self.exec(op, Place::Doc(doc));
            let status = match &step {
                Ok(status) => *status,
                Err(limited) => OpStatus::Stopped(limited.kind),
            };
            if let Some(trace) = &mut self.trace {
                trace.push(OpReport {
                    op: op.pointer.to_string(),
                    status,
                });
            }
            if let Err(limited) = step {
                return Some(limited);
            }
        }
        None
    }

    fn too_large(&self, detail: String) -> Limited {
        Limited {
            kind: LimitKind::OutputTooLarge,
            op: None,
            detail,
        }
    }

    fn exec(&mut self, op: &Op, mut place: Place<'_>) -> Step {
        if !self.budget.spend(1) {
            return Err(self.budget_limit(op));
        }
        if let Some(when) = &op.when {
            let (payload, it) = place.reads();
            let event = self.ctx.event(payload);
            let pass = when.test(&event, it, &self.budget);
            if self.budget.hit().is_some() {
                return Err(self.budget_limit(op));
            }
            if !pass {
                return Ok(OpStatus::Skipped(Skip::When));
            }
        }
        match &op.kind {
            Kind::Set { target, value } => {
                let Some(v) = self.source(value, &place, op)? else {
                    return Ok(OpStatus::Skipped(Skip::Missing));
                };
                self.charge(target.key_bytes(), op)?;
                Ok(written(target.set(place.root(), v)))
            }
            Kind::Default { target, value } => {
                if target.get(place.root_ref()).is_some_and(|v| !v.is_null()) {
                    return Ok(OpStatus::Skipped(Skip::Present));
                }
                let Some(v) = self.source(value, &place, op)? else {
                    return Ok(OpStatus::Skipped(Skip::Missing));
                };
                self.charge(target.key_bytes(), op)?;
                Ok(written(target.set(place.root(), v)))
            }
            Kind::Rename { from, to } => {
                self.charge(to.key_bytes(), op)?;
                let root = place.root();
                let v = if from.is_root() {
                    std::mem::replace(root, Value::Object(Map::new()))
                } else {
                    match from.take(root) {
                        Some(v) => v,
                        None => return Ok(OpStatus::Skipped(Skip::Missing)),
                    }
                };
                match to.set(root, v) {
                    Ok(()) => Ok(OpStatus::Applied),
                    Err(v) => {
                        // Put it back where it was: nothing lost, nothing moved.
                        if from.is_root() {
                            *root = v;
                        } else {
                            from.restore(root, v);
                        }
                        Ok(OpStatus::Skipped(Skip::Blocked))
                    }
                }
            }
            Kind::Copy { from, to } => {
                let Some(src) = from.get(place.root_ref()) else {
                    return Ok(OpStatus::Skipped(Skip::Missing));
                };
                self.charge(json_len(src) + to.key_bytes(), op)?;
                let v = src.clone();
                Ok(written(to.set(place.root(), v)))
            }
            Kind::Remove { targets } => {
                let root = place.root();
                let mut removed = false;
                for target in targets.iter() {
                    removed |= target.take(root).is_some();
                }
                Ok(if removed {
                    OpStatus::Applied
                } else {
                    OpStatus::Skipped(Skip::Missing)
                })
            }
            Kind::Keep { tree } => {
                tree.apply(place.root());
                Ok(OpStatus::Applied)
            }
            Kind::Coalesce { target, from } => {
                let root = place.root_ref();
                let Some(src) = from
                    .iter()
                    .find_map(|f| f.get(root).filter(|v| !v.is_null()))
                else {
                    return Ok(OpStatus::Skipped(Skip::Missing));
                };
                self.charge(json_len(src) + target.key_bytes(), op)?;
                let v = src.clone();
                Ok(written(target.set(place.root(), v)))
            }
            Kind::Map { target, ops } => {
                let Place::Doc(doc) = place else {
                    // The compiler keeps map at the top level.
                    return Ok(OpStatus::Skipped(Skip::Blocked));
                };
                let mut items = match self.detach(target, doc, op)? {
                    Ok(items) => items,
                    Err(skip) => return Ok(OpStatus::Skipped(skip)),
                };
                let mut result = Ok(OpStatus::Applied);
                'elements: for el in items.iter_mut() {
                    for nested in ops.iter() {
                        if let Err(limited) = self.exec(nested, Place::Elem { doc: &*doc, el }) {
                            result = Err(limited);
                            break 'elements;
                        }
                    }
                }
                reattach(target, doc, items);
                result
            }
            Kind::Filter { target, cond } => {
                let Place::Doc(doc) = place else {
                    return Ok(OpStatus::Skipped(Skip::Blocked));
                };
                let mut items = match self.detach(target, doc, op)? {
                    Ok(items) => items,
                    Err(skip) => return Ok(OpStatus::Skipped(skip)),
                };
                let event = self.ctx.event(doc);
                let budget = &self.budget;
                let mut stopped = false;
                items.retain(|el| {
                    if stopped || !budget.spend(1) {
                        stopped = true;
                        return true;
                    }
                    let keep = cond.test(&event, Some(el), budget);
                    if budget.hit().is_some() {
                        stopped = true;
                        return true;
                    }
                    keep
                });
                reattach(target, doc, items);
                if stopped {
                    return Err(self.budget_limit(op));
                }
                Ok(OpStatus::Applied)
            }
        }
    }

    /// The value of a `set`/`default`, owned, charged against the write budget.
    /// `Ok(None)` when the expression has no value.
    fn source(
        &mut self,
        source: &Source,
        place: &Place<'_>,
        op: &Op,
    ) -> Result<Option<Value>, Limited> {
        match source {
            Source::Literal { value, bytes } => {
                self.charge(*bytes, op)?;
                Ok(Some(value.clone()))
            }
            Source::Expr(formula) => {
                let (payload, it) = place.reads();
                let event = self.ctx.event(payload);
                let val = formula.eval(&event, it, &self.budget);
                if self.budget.hit().is_some() {
                    return Err(self.budget_limit(op));
                }
                let Some(view) = val.as_value_ref() else {
                    return Ok(None);
                };
                let bytes = ref_len(view);
                self.charge(bytes, op)?;
                Ok(val.into_value())
            }
        }
    }

    /// Takes the array at `target` out of the document for a map/filter (it reads as
    /// `[]` meanwhile). The outer error is a limit; the inner one a reason to skip.
    #[allow(clippy::type_complexity)]
    fn detach(
        &self,
        target: &crate::path::Target,
        doc: &mut Value,
        op: &Op,
    ) -> Result<Result<Vec<Value>, Skip>, Limited> {
        match target.get_mut(doc) {
            None => Ok(Err(Skip::Missing)),
            Some(Value::Array(items)) => {
                if items.len() > self.limits.max_array_len {
                    return Err(Limited {
                        kind: LimitKind::ArrayTooLong,
                        op: Some(op.pointer.to_string()),
                        detail: format!(
                            "`{}` has {} elements; map and filter process at most {} (max_array_len)",
                            target.text(),
                            items.len(),
                            self.limits.max_array_len
                        ),
                    });
                }
                Ok(Ok(std::mem::take(items)))
            }
            Some(_) => Ok(Err(Skip::NotArray)),
        }
    }

    /// Counts `bytes` against the write budget.
    fn charge(&mut self, bytes: usize, op: &Op) -> Result<(), Limited> {
        self.written = self.written.saturating_add(bytes);
        if self.written > self.limits.max_output_bytes {
            return Err(Limited {
                kind: LimitKind::OutputTooLarge,
                op: Some(op.pointer.to_string()),
                detail: format!(
                    "the ops would write more than {} bytes in total (max_output_bytes)",
                    self.limits.max_output_bytes
                ),
            });
        }
        Ok(())
    }

    fn budget_limit(&self, op: &Op) -> Limited {
        let (kind, what) = match self.budget.hit() {
            Some(BudgetHit::ValueTooLarge) => (
                LimitKind::ValueTooLarge,
                format!(
                    "an expression would build a value larger than {} bytes (max_value_bytes)",
                    self.limits.max_value_bytes
                ),
            ),
            _ => (
                LimitKind::StepsExhausted,
                format!(
                    "the mapping took more than {} evaluation steps (max_steps)",
                    self.limits.max_steps
                ),
            ),
        };
        let mut detail = what;
        let _ = write!(detail, " at {}", op.pointer);
        Limited {
            kind,
            op: Some(op.pointer.to_string()),
            detail,
        }
    }
}

fn written(result: Result<(), Value>) -> OpStatus {
    match result {
        Ok(()) => OpStatus::Applied,
        Err(_) => OpStatus::Skipped(Skip::Blocked),
    }
}

/// Puts a detached array back (the ops of a map only write elements, so the path
/// still leads to the slot it came from).
fn reattach(target: &crate::path::Target, doc: &mut Value, items: Vec<Value>) {
    if let Some(slot) = target.get_mut(doc) {
        *slot = Value::Array(items);
    }
}

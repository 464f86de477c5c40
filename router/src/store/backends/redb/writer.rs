//! The single writer thread and its group commit.
//!
//! Every write is a job sent to one thread. The thread takes the first waiting job,
//! then every job already queued behind it (up to `commit_max_batch`, optionally
//! waiting `commit_max_wait` for more), runs them all inside one write transaction
//! and commits once: one fsync for the whole batch. Only after the commit does each
//! caller learn its result, so an `Ok` always means "on disk".
//!
//! A job must decide domain errors (not found, limit reached) before it writes
//! anything; a backend error aborts the whole batch and fails every job in it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use crate::store::{QueueSignal, StoreError, StoreResult};
use crate::stream::StreamItem;
use crate::stream::hub::StreamHub;
use crate::telemetry;

/// Delivers a job's result once the batch's commit outcome is known.
type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// Runs inside the batch's transaction; says whether the batch must abort.
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Finisher, bool) + Send>;

// Messages move once through the channel; boxing the large one would cost an
// allocation per publish, claim and outcome instead.
#[allow(clippy::large_enum_variant)]
pub(super) enum Msg {
    Job(Job),
    /// Hot-path operations (publish, claim, outcome) get their own messages so that
    /// all of them in one commit share a single opening of the tables (see
    /// [`super::queue::run_hot`]).
    Hot(HotOp),
    Stop,
}

/// A hot-path operation and where its answer goes.
pub(super) enum HotOp {
    /// One `append_events` call, already encoded by the caller.
    Append {
        events: Vec<super::queue::PreparedEvent>,
        limits: crate::store::AppendLimits,
        reply: oneshot::Sender<StoreResult<Vec<crate::store::Appended>>>,
    },
    Claim {
        claim: crate::store::Claim,
        reply: oneshot::Sender<StoreResult<Vec<crate::store::Delivery>>>,
    },
    Outcome {
        outcome: crate::store::Outcome,
        reply: oneshot::Sender<StoreResult<bool>>,
    },
}

/// A hot operation's result, in the order of the operations.
pub(super) enum HotResult {
    Append(Vec<crate::store::Appended>),
    Claim(Vec<crate::store::Delivery>),
    Outcome(bool),
}

impl HotOp {
    fn answer(self, result: StoreResult<HotResult>) {
        match (self, result) {
            (HotOp::Append { reply, .. }, Ok(HotResult::Append(v))) => drop(reply.send(Ok(v))),
            (HotOp::Claim { reply, .. }, Ok(HotResult::Claim(v))) => drop(reply.send(Ok(v))),
            (HotOp::Outcome { reply, .. }, Ok(HotResult::Outcome(v))) => drop(reply.send(Ok(v))),
            (HotOp::Append { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (HotOp::Claim { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (HotOp::Outcome { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (op, Ok(_)) => op.answer(Err(StoreError::Backend("mismatched result".into()))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct WriterOptions {
    pub max_batch: usize,
    pub max_wait: Duration,
    /// Write a `deliveries.status` stream item with every attempt outcome.
    pub stream_status: bool,
}

/// Where committed stream items go, and those waiting for a durable commit.
struct Live {
    hub: Arc<StreamHub>,
    /// Items of non-durable commits: published only once a durable commit covers
    /// them, so a client never sees a cursor a crash could hand out again.
    held: Vec<(Box<str>, Arc<StreamItem>)>,
}

/// The sending half, held by the store.
#[derive(Debug, Clone)]
pub(super) struct WriterHandle {
    tx: Sender<Msg>,
}

impl WriterHandle {
    pub(super) fn spawn(
        db: Arc<Database>,
        signal: Arc<QueueSignal>,
        hub: Arc<StreamHub>,
        options: WriterOptions,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("gp-store-writer".into())
            .spawn(move || {
                let mut live = Live {
                    hub,
                    held: Vec::new(),
                };
                run(&db, &rx, &signal, &mut live, options);
            })?;
        Ok((Self { tx }, handle))
    }

    /// Runs `f` in a write transaction shared with other callers; resolves after the
    /// commit is durable.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |txn| {
            let result = f(txn);
            let abort = matches!(
                result,
                Err(StoreError::Backend(_) | StoreError::Corrupt { .. })
            );
            let finish: Finisher = Box::new(move |commit| {
                // The caller may have gone away (client disconnected); the write
                // stands regardless.
                let _ = reply.send(commit.and(result));
            });
            (finish, abort)
        });
        self.tx
            .send(Msg::Job(job))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a hot-path operation; resolves after the commit that contains it.
    pub(super) async fn hot<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> HotOp,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Hot(make(reply)))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// The operations of one commit.
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    hot: Vec<HotOp>,
}

impl Batch {
    fn len(&self) -> usize {
        self.jobs.len() + self.hot.len()
    }

    /// Adds a message; false for `Stop`.
    fn push(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Job(job) => self.jobs.push(job),
            Msg::Hot(op) => self.hot.push(op),
            Msg::Stop => return false,
        }
        true
    }
}

/// Longest a commit without fsync may wait for the next durable one.
const MAX_NON_DURABLE: Duration = Duration::from_millis(50);

fn run(
    db: &Database,
    rx: &Receiver<Msg>,
    signal: &QueueSignal,
    live: &mut Live,
    options: WriterOptions,
) {
    let mut batch = Batch::default();
    let mut last_durable = Instant::now();
    // A non-durable commit is waiting for a durable one.
    let mut dirty = false;
    let mut stopping = false;
    while !stopping {
        let first = if dirty {
            match rx.recv_timeout(MAX_NON_DURABLE) {
                Ok(msg) => Ok(msg),
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: make the relaxed commits durable now.
                    commit_batch(db, &mut batch, signal, live, options, true);
                    last_durable = Instant::now();
                    dirty = false;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => Err(()),
            }
        } else {
            rx.recv().map_err(|_| ())
        };
        match first {
            Ok(msg) => {
                if !batch.push(msg) {
                    break;
                }
            }
            Err(()) => break,
        }
        // Everything already queued joins this commit.
        while batch.len() < options.max_batch {
            match rx.try_recv() {
                Ok(msg) => {
                    if !batch.push(msg) {
                        stopping = true;
                        break;
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    stopping = true;
                    break;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
            }
        }
        if !stopping && !options.max_wait.is_zero() && batch.len() < options.max_batch {
            let deadline = Instant::now() + options.max_wait;
            while batch.len() < options.max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(msg) => {
                        if !batch.push(msg) {
                            stopping = true;
                            break;
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
        }
        // Claims and outcomes alone need not be fsynced at once: losing them in a
        // crash only means a delivery is attempted again (at least once). Publishes
        // and every other write are durable when acknowledged.
        let durable = !batch.jobs.is_empty()
            || batch
                .hot
                .iter()
                .any(|op| matches!(op, HotOp::Append { .. }))
            || last_durable.elapsed() >= MAX_NON_DURABLE;
        if durable {
            last_durable = Instant::now();
        }
        dirty = !durable;
        commit_batch(db, &mut batch, signal, live, options, durable);
    }
    if dirty {
        commit_batch(db, &mut batch, signal, live, options, true);
    }
    // Jobs still queued after Stop are dropped: their callers see `Closed`.
}

/// A commit this slow is logged: every publish in it waited that long.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

/// Sends held items to the hub, each tenant's in cursor order.
fn publish(hub: &StreamHub, held: &mut Vec<(Box<str>, Arc<StreamItem>)>) {
    held.sort_by(|a, b| (&a.0, a.1.cursor).cmp(&(&b.0, b.1.cursor)));
    let mut rest = held.drain(..).peekable();
    while let Some((tenant, first)) = rest.next() {
        let mut items = vec![first];
        while let Some((_, item)) = rest.next_if(|(t, _)| *t == tenant) {
            items.push(item);
        }
        hub.publish(&tenant, items);
    }
}

fn commit_batch(
    db: &Database,
    batch: &mut Batch,
    signal: &QueueSignal,
    live: &mut Live,
    options: WriterOptions,
    durable: bool,
) {
    let size = batch.len();
    let started = Instant::now();
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            // Dropping the jobs and replies tells their callers the store failed.
            batch.jobs.clear();
            batch.hot.clear();
            tracing::error!(error = %e, "store: cannot begin write transaction");
            return;
        }
    };
    let mut txn = txn;
    if !durable && let Err(e) = txn.set_durability(redb::Durability::None) {
        tracing::warn!(error = %e, "store: cannot relax durability; committing durably");
    }
    let txn = txn;
    let mut finishers = Vec::with_capacity(size);
    let mut abort = false;
    for job in batch.jobs.drain(..) {
        let (finish, failed) = job(&txn);
        abort |= failed;
        finishers.push(finish);
    }
    let hot: Vec<HotOp> = batch.hot.drain(..).collect();
    let mut hot_results = Vec::new();
    let mut statuses = Vec::new();
    if !hot.is_empty() {
        match super::queue::run_hot(&txn, &hot, options.stream_status) {
            Ok((results, written)) => {
                hot_results = results;
                statuses = written;
            }
            Err(e) => {
                tracing::error!(error = %e, "store: hot batch failed");
                abort = true;
            }
        }
    }
    let work = started.elapsed();
    let outcome: StoreResult<()> = if abort {
        let _ = txn.abort();
        Err(StoreError::Backend(
            "write batch aborted after a storage failure; nothing in it was written".into(),
        ))
    } else {
        txn.commit().map_err(|e| StoreError::Backend(e.to_string()))
    };
    if let Err(e) = &outcome {
        tracing::error!(error = %e, batch = size, "store: commit failed");
    }
    let took = started.elapsed();
    if size > 0 {
        telemetry::record_commit(size, took);
    }
    if took >= SLOW_COMMIT {
        // Everything in the batch waited this long: worth a line in the log.
        tracing::warn!(
            ms = took.as_millis() as u64,
            work_ms = work.as_millis() as u64,
            batch = size,
            durable,
            "store: slow commit"
        );
    }
    let fail = |e: &StoreError| StoreError::Backend(e.to_string());
    for finish in finishers {
        finish(outcome.as_ref().map(|_| ()).map_err(fail));
    }
    // Items of a failed commit never existed. Held items of earlier non-durable
    // commits stay held until a durable commit succeeds.
    if outcome.is_ok() {
        let items = super::feed::live_items(&live.hub, &hot, &hot_results, statuses);
        live.held.extend(items);
        if durable && !live.held.is_empty() {
            publish(&live.hub, &mut live.held);
        }
    }
    if outcome.is_ok() {
        // Tell dispatchers which endpoints got new deliveries in this commit.
        signal.announce(hot.iter().flat_map(|op| {
            match op {
                HotOp::Append { events, .. } => events
                    .iter()
                    .flat_map(|e| {
                        e.deliveries
                            .iter()
                            .map(|(_, endpoint, _)| (e.tenant_id(), endpoint.clone()))
                    })
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            }
        }));
    }
    let mut results = hot_results.into_iter();
    for op in hot {
        let answer = match &outcome {
            Ok(()) => results
                .next()
                .unwrap_or_else(|| Err(StoreError::Backend("missing result".into()))),
            Err(e) => Err(fail(e)),
        };
        op.answer(answer);
    }
}

//! The single writer thread and its group commit.
//!
//! Every write is a job sent to one thread. The thread takes the first waiting job,
//! then every job already queued behind it (up to `commit_max_batch`, optionally
//! waiting `commit_max_wait` for more), runs them all inside one write transaction
//! and commits once: one fsync for the whole batch. Only after the commit does each
//! caller learn its result, so an `Ok` always means "on disk".
//!
//! A job must decide domain errors (not found, limit reached, a corrupt row it read)
//! before it writes anything: those fail the job alone. A job that fails with a
//! storage error or panics aborts the transaction; the publishes, claims and outcomes
//! that shared it are committed again without it (the other jobs of that batch fail
//! with a retryable error), so one bad job never fails the hot path beside it. A hot
//! operation that meets a corrupt row fails alone too (it reads before it writes).
//!
//! Bounds: at most `max_queued_writes` writes wait for the thread (callers wait for
//! room). If the thread itself dies, the store reports itself failed: every write is
//! refused with the reason and the server stops reporting ready.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redb::{Database, WriteTransaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::store::feed::{CommitFeed, Committed};
use crate::store::{StoreError, StoreResult};
use crate::stream::StreamItem;
use crate::telemetry;

/// Delivers a job's result once the batch's commit outcome is known.
type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// Runs inside the batch's transaction; says whether the batch must abort.
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Finisher, bool) + Send>;

// Messages move once through the channel; boxing the large one would cost an
// allocation per publish, claim and outcome instead.
#[allow(clippy::large_enum_variant)]
pub(super) enum Msg {
    Job(Job, OwnedSemaphorePermit),
    /// Hot-path operations (publish, claim, outcome) get their own messages so that
    /// all of them in one commit share a single opening of the tables (see
    /// [`super::queue::run_hot`]).
    Hot(HotOp, OwnedSemaphorePermit),
    Stop,
}

/// A hot-path operation and where its answer goes. An outcome (with its attempt) is
/// the large variant; it moves once, so it stays unboxed like [`Msg`].
#[allow(clippy::large_enum_variant)]
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
    /// Writes waiting for the thread at most; more callers wait for room.
    pub max_queued: usize,
    pub max_wait: Duration,
    /// Write a `deliveries.status` stream item with every attempt outcome.
    pub stream_status: bool,
}

/// Where commits are announced, and stream items waiting for a durable commit.
struct Live {
    feed: Arc<CommitFeed>,
    /// Items of non-durable commits: published only once a durable commit covers
    /// them, so a client never sees a cursor a crash could hand out again.
    held: Vec<(Box<str>, Arc<StreamItem>)>,
}

/// The sending half, held by the store.
#[derive(Debug, Clone)]
pub(super) struct WriterHandle {
    tx: Sender<Msg>,
    /// One permit per write waiting for (or in) the writer.
    room: Arc<Semaphore>,
    /// Set, with the reason, when the writer thread died: nothing can be written.
    failed: Arc<OnceLock<String>>,
}

impl WriterHandle {
    pub(super) fn spawn(
        db: Arc<Database>,
        feed: Arc<CommitFeed>,
        options: WriterOptions,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let failed = Arc::new(OnceLock::new());
        let on_panic = failed.clone();
        let handle = std::thread::Builder::new()
            .name("gp-store-writer".into())
            .spawn(move || {
                let mut live = Live {
                    feed,
                    held: Vec::new(),
                };
                let ran = catch_unwind(AssertUnwindSafe(|| {
                    run(&db, &rx, &mut live, options);
                }));
                if let Err(panic) = ran {
                    let reason = format!(
                        "the store's writer thread stopped after a panic ({}); restart \
                         the server",
                        panic_message(panic.as_ref())
                    );
                    tracing::error!(reason = %reason, "store: writer failed");
                    let _ = on_panic.set(reason);
                }
            })?;
        let room = Arc::new(Semaphore::new(options.max_queued.max(1)));
        Ok((Self { tx, room, failed }, handle))
    }

    /// `Some(reason)` once the writer thread has died.
    pub(super) fn failure(&self) -> Option<String> {
        self.failed.get().cloned()
    }

    /// The error for a write that could not be sent or answered.
    fn gone(&self) -> StoreError {
        match self.failure() {
            Some(reason) => StoreError::Failed(reason),
            None => StoreError::Closed,
        }
    }

    /// Waits for room in the writer's queue.
    async fn permit(&self) -> StoreResult<OwnedSemaphorePermit> {
        if let Some(reason) = self.failure() {
            return Err(StoreError::Failed(reason));
        }
        self.room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` in a write transaction shared with other callers; resolves after the
    /// commit is durable. `f` must return its domain errors, and `Corrupt` for a row it
    /// could not decode, before it writes anything: such an error fails `f` alone and
    /// the rest of the transaction commits. A `Backend` error or a panic aborts it.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let permit = self.permit().await?;
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |txn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(txn))).unwrap_or_else(|panic| {
                tracing::error!(
                    panic = panic_message(panic.as_ref()),
                    "store: a write panicked"
                );
                Err(StoreError::Backend(
                    "the write failed unexpectedly (logged); nothing of it was written".into(),
                ))
            });
            let abort = matches!(result, Err(StoreError::Backend(_)));
            let finish: Finisher = Box::new(move |commit| {
                // The caller may have gone away (client disconnected); the write
                // stands regardless.
                let _ = reply.send(commit.and(result));
            });
            (finish, abort)
        });
        self.tx
            .send(Msg::Job(job, permit))
            .map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Queues a hot-path operation; resolves after the commit that contains it.
    pub(super) async fn hot<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> HotOp,
    ) -> StoreResult<T> {
        let permit = self.permit().await?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Hot(make(reply), permit))
            .map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
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
    /// Their places in the writer's queue, given back once they are answered.
    permits: Vec<OwnedSemaphorePermit>,
}

impl Batch {
    fn len(&self) -> usize {
        self.jobs.len() + self.hot.len()
    }

    /// Adds a message; false for `Stop`.
    fn push(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Job(job, permit) => {
                self.jobs.push(job);
                self.permits.push(permit);
            }
            Msg::Hot(op, permit) => {
                self.hot.push(op);
                self.permits.push(permit);
            }
            Msg::Stop => return false,
        }
        true
    }
}

/// Longest a commit without fsync may wait for the next durable one.
const MAX_NON_DURABLE: Duration = Duration::from_millis(50);

fn run(db: &Database, rx: &Receiver<Msg>, live: &mut Live, options: WriterOptions) {
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
                    commit_batch(db, &mut batch, live, options, true);
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
        commit_batch(db, &mut batch, live, options, durable);
    }
    if dirty {
        commit_batch(db, &mut batch, live, options, true);
    }
    // Jobs still queued after Stop are dropped: their callers see `Closed`.
}

/// A commit this slow is logged: every publish in it waited that long.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

/// What one write transaction did.
struct Transacted {
    /// The jobs' answers, to be given the commit's outcome.
    finishers: Vec<Finisher>,
    /// A job failed (storage error, corrupt row, panic) and the transaction aborted.
    job_failed: bool,
    /// The hot operations' results (empty when the hot batch failed as a whole).
    hot_results: Vec<StoreResult<HotResult>>,
    statuses: Vec<super::feed::StatusRow>,
    outcome: StoreResult<()>,
    work: Duration,
}

/// Runs `jobs` and `hot` in one write transaction and commits it, unless something
/// in it failed.
fn transact(
    db: &Database,
    jobs: Vec<Job>,
    hot: &[HotOp],
    options: WriterOptions,
    durable: bool,
) -> Transacted {
    let started = Instant::now();
    let mut t = Transacted {
        finishers: Vec::with_capacity(jobs.len()),
        job_failed: false,
        hot_results: Vec::new(),
        statuses: Vec::new(),
        outcome: Ok(()),
        work: Duration::ZERO,
    };
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            tracing::error!(error = %e, "store: cannot begin write transaction");
            let failure = StoreError::Backend(format!("cannot begin a write transaction: {e}"));
            for job in jobs {
                // Never run: each caller learns the failure from its finisher.
                drop(job);
            }
            t.outcome = Err(failure);
            return t;
        }
    };
    if !durable && let Err(e) = txn.set_durability(redb::Durability::None) {
        tracing::warn!(error = %e, "store: cannot relax durability; committing durably");
    }
    let txn = txn;
    for job in jobs {
        let (finish, failed) = job(&txn);
        t.job_failed |= failed;
        t.finishers.push(finish);
    }
    let mut hot_failed = false;
    if !hot.is_empty() {
        let ran = catch_unwind(AssertUnwindSafe(|| {
            super::queue::run_hot(&txn, hot, options.stream_status)
        }));
        match ran {
            Ok(Ok((results, written))) => {
                t.hot_results = results;
                t.statuses = written;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "store: hot batch failed");
                hot_failed = true;
            }
            Err(panic) => {
                tracing::error!(
                    panic = panic_message(panic.as_ref()),
                    "store: hot batch panicked"
                );
                hot_failed = true;
            }
        }
    }
    t.work = started.elapsed();
    t.outcome = if t.job_failed || hot_failed {
        let _ = txn.abort();
        Err(StoreError::Backend(
            "write batch aborted after a storage failure; nothing in it was written".into(),
        ))
    } else {
        txn.commit().map_err(|e| StoreError::Backend(e.to_string()))
    };
    t
}

fn commit_batch(
    db: &Database,
    batch: &mut Batch,
    live: &mut Live,
    options: WriterOptions,
    durable: bool,
) {
    let size = batch.len();
    let started = Instant::now();
    let jobs = std::mem::take(&mut batch.jobs);
    let hot: Vec<HotOp> = batch.hot.drain(..).collect();
    // Given back when this function returns, after every answer.
    let _permits = std::mem::take(&mut batch.permits);
    let mut t = transact(db, jobs, &hot, options, durable);
    let fail = |e: &StoreError| StoreError::Backend(e.to_string());
    if t.outcome.is_err() && t.job_failed && !hot.is_empty() {
        // A failed job must not fail the publishes, claims and outcomes that happened
        // to share its transaction: the jobs get the failure, the rest runs again.
        for finish in std::mem::take(&mut t.finishers) {
            finish(t.outcome.as_ref().map(|_| ()).map_err(fail));
        }
        t = transact(db, Vec::new(), &hot, options, durable);
    }
    if let Err(e) = &t.outcome {
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
            work_ms = t.work.as_millis() as u64,
            batch = size,
            durable,
            "store: slow commit"
        );
    }
    let outcome = t.outcome;
    for finish in t.finishers {
        finish(outcome.as_ref().map(|_| ()).map_err(fail));
    }
    // Items of a failed commit never existed. Held items of earlier non-durable
    // commits stay held until a durable commit succeeds.
    if outcome.is_ok() {
        let items = super::feed::live_items(&live.feed, &hot, &t.hot_results, t.statuses);
        live.held.extend(items);
        let stream = if durable {
            std::mem::take(&mut live.held)
        } else {
            Vec::new()
        };
        // Which endpoints got new deliveries in this commit.
        let queued = hot
            .iter()
            .zip(&t.hot_results)
            .flat_map(|(op, result)| match (op, result) {
                (HotOp::Append { events, .. }, Ok(HotResult::Append(appended))) => events
                    .iter()
                    .zip(appended)
                    .filter(|(_, a)| matches!(a, crate::store::Appended::Stored(o) if !o.deduped))
                    .flat_map(|(e, _)| {
                        e.deliveries
                            .iter()
                            .map(|(_, endpoint, _)| (e.tenant_id(), endpoint.clone()))
                    })
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            });
        live.feed.announce(Committed {
            stream,
            queued: queued.collect(),
            changes: Vec::new(),
        });
    }
    let mut results = t.hot_results.into_iter();
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

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(max_queued: usize) -> (WriterHandle, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("w.redb")).unwrap());
        let (handle, _thread) = WriterHandle::spawn(
            db,
            CommitFeed::new(),
            WriterOptions {
                max_batch: 64,
                max_queued,
                max_wait: Duration::ZERO,
                stream_status: false,
            },
        )
        .unwrap();
        (handle, dir)
    }

    const T: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("t");

    fn put(key: &'static str) -> impl FnOnce(&WriteTransaction) -> StoreResult<()> + Send {
        move |txn| {
            txn.open_table(T)?.insert(key, 1)?;
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let (w, _dir) = writer(1024);
        let err = w
            .write(|_txn| -> StoreResult<()> { panic!("boom in a job") })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        w.write(put("after")).await.unwrap();
        assert_eq!(w.failure(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_meets_a_corrupt_row_fails_alone() {
        let (w, _dir) = writer(1024);
        // Many writes at once: they share batches with the failing one.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                if i == 25 {
                    let corrupt = || StoreError::Corrupt {
                        table: "t",
                        message: "bad".into(),
                    };
                    w.write(move |_txn| -> StoreResult<()> { Err(corrupt()) })
                        .await
                        .is_err()
                } else {
                    let key: &'static str = Box::leak(format!("k{i}").into_boxed_str());
                    w.write(put(key)).await.is_ok()
                }
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_writer_thread_fails_every_write_with_its_reason() {
        let (w, _dir) = writer(1024);
        // A finisher runs outside any job's guard: a panic there kills the thread.
        let permit = w.permit().await.unwrap();
        let job: Job = Box::new(|_txn| {
            let finish: Finisher = Box::new(|_| panic!("the writer itself fails"));
            (finish, false)
        });
        w.tx.send(Msg::Job(job, permit)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.failure().is_none() {
            assert!(Instant::now() < deadline, "the failure was never reported");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(w.failure().unwrap().contains("the writer itself fails"));
        let err = w.write(put("x")).await.unwrap_err();
        assert!(matches!(err, StoreError::Failed(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_queue_is_bounded() {
        let (w, _dir) = writer(2);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        // The first write holds the writer; the second waits in the queue. The second
        // is sent only once the first runs: spawned together, the second could be
        // written (and its place freed) before the first arrives.
        let first = tokio::spawn({
            let w = w.clone();
            async move {
                w.write(move |_txn| {
                    let _ = started.send(());
                    let _ = gate.lock().unwrap().recv();
                    Ok(())
                })
                .await
            }
        });
        running.await.unwrap();
        let second = tokio::spawn({
            let w = w.clone();
            async move { w.write(put("second")).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.room.available_permits() > 0 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A third caller waits for room rather than growing the queue.
        let third = tokio::spawn({
            let w = w.clone();
            async move { w.write(put("third")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished());
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        third.await.unwrap().unwrap();
    }
}

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
use crate::telemetry;

/// Delivers a job's result once the batch's commit outcome is known.
type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// Runs inside the batch's transaction; says whether the batch must abort.
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Finisher, bool) + Send>;

pub(super) enum Msg {
    Job(Job),
    /// Publishes get their own message so that a batch of them shares one pass over
    /// the publishing tables (see [`super::append_batch`]).
    Append(AppendOp),
    Stop,
}

/// One `append_events` call, already encoded by the caller.
pub(super) struct AppendOp {
    pub events: Vec<super::PreparedEvent>,
    pub window_ms: i64,
    pub reply: oneshot::Sender<StoreResult<Vec<crate::store::AppendOutcome>>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct WriterOptions {
    pub max_batch: usize,
    pub max_wait: Duration,
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
        options: WriterOptions,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("gp-store-writer".into())
            .spawn(move || run(&db, &rx, &signal, options))?;
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

    /// Queues a publish; resolves after the commit that contains it.
    pub(super) async fn append(
        &self,
        events: Vec<super::PreparedEvent>,
        window_ms: i64,
    ) -> StoreResult<Vec<crate::store::AppendOutcome>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Append(AppendOp {
                events,
                window_ms,
                reply,
            }))
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
    appends: Vec<AppendOp>,
}

impl Batch {
    fn len(&self) -> usize {
        self.jobs.len() + self.appends.len()
    }

    /// Adds a message; false for `Stop`.
    fn push(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Job(job) => self.jobs.push(job),
            Msg::Append(op) => self.appends.push(op),
            Msg::Stop => return false,
        }
        true
    }
}

fn run(db: &Database, rx: &Receiver<Msg>, signal: &QueueSignal, options: WriterOptions) {
    let mut batch = Batch::default();
    let mut stopping = false;
    while !stopping {
        match rx.recv() {
            Ok(msg) => {
                if !batch.push(msg) {
                    break;
                }
            }
            Err(_) => break,
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
        commit_batch(db, &mut batch, signal);
    }
    // Jobs still queued after Stop are dropped: their callers see `Closed`.
}

fn commit_batch(db: &Database, batch: &mut Batch, signal: &QueueSignal) {
    let size = batch.len();
    let started = Instant::now();
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            // Dropping the jobs and replies tells their callers the store failed.
            batch.jobs.clear();
            batch.appends.clear();
            tracing::error!(error = %e, "store: cannot begin write transaction");
            return;
        }
    };
    let mut finishers = Vec::with_capacity(size);
    let mut abort = false;
    for job in batch.jobs.drain(..) {
        let (finish, failed) = job(&txn);
        abort |= failed;
        finishers.push(finish);
    }
    let appends: Vec<AppendOp> = batch.appends.drain(..).collect();
    let mut append_results = Vec::new();
    if !appends.is_empty() {
        match super::append_batch(&txn, &appends) {
            Ok(results) => append_results = results,
            Err(e) => {
                tracing::error!(error = %e, "store: publish batch failed");
                abort = true;
            }
        }
    }
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
    telemetry::record_commit(size, started.elapsed());
    let fail = |e: &StoreError| StoreError::Backend(e.to_string());
    for finish in finishers {
        finish(outcome.as_ref().map(|_| ()).map_err(fail));
    }
    if outcome.is_ok() {
        // Tell dispatchers which endpoints got new deliveries in this commit.
        signal.announce(appends.iter().flat_map(|op| {
            op.events.iter().flat_map(|e| {
                e.deliveries
                    .iter()
                    .map(|(_, endpoint, _)| (e.tenant_id(), endpoint.clone()))
            })
        }));
    }
    let mut results = append_results.into_iter();
    for op in appends {
        let answer = match &outcome {
            Ok(()) => results
                .next()
                .unwrap_or_else(|| Err(StoreError::Backend("missing publish outcome".into()))),
            Err(e) => Err(fail(e)),
        };
        let _ = op.reply.send(answer);
    }
}

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

use crate::store::{StoreError, StoreResult};
use crate::telemetry;

/// Delivers a job's result once the batch's commit outcome is known.
type Finisher = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// Runs inside the batch's transaction; says whether the batch must abort.
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Finisher, bool) + Send>;

pub(super) enum Msg {
    Job(Job),
    Stop,
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
        options: WriterOptions,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("gp-store-writer".into())
            .spawn(move || run(&db, &rx, options))?;
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
        self.tx.send(Msg::Job(job)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

fn run(db: &Database, rx: &Receiver<Msg>, options: WriterOptions) {
    let mut batch: Vec<Job> = Vec::with_capacity(options.max_batch);
    let mut stopping = false;
    while !stopping {
        match rx.recv() {
            Ok(Msg::Job(job)) => batch.push(job),
            Ok(Msg::Stop) | Err(_) => break,
        }
        // Everything already queued joins this commit.
        while batch.len() < options.max_batch {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Stop) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
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
                    Ok(Msg::Job(job)) => batch.push(job),
                    Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
        }
        commit_batch(db, &mut batch);
    }
    // Jobs still queued after Stop are dropped: their callers see `Closed`.
}

fn commit_batch(db: &Database, batch: &mut Vec<Job>) {
    let size = batch.len();
    let started = Instant::now();
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let msg = e.to_string();
            for job in batch.drain(..) {
                drop(job);
            }
            tracing::error!(error = %msg, "store: cannot begin write transaction");
            return;
        }
    };
    let mut finishers = Vec::with_capacity(size);
    let mut abort = false;
    for job in batch.drain(..) {
        let (finish, failed) = job(&txn);
        abort |= failed;
        finishers.push(finish);
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
    for finish in finishers {
        finish(match &outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        });
    }
}

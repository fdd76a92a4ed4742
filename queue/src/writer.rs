//! The single writer thread: group commit.
//!
//! Every mutation is a `Job` sent over a channel. The writer takes whatever is waiting (up to
//! `max_batch`), applies it all in one write transaction, commits once (one fdatasync), and only
//! then answers each job. While it syncs, new jobs pile up and form the next batch, so the number
//! of fsyncs grows with time spent syncing, not with the number of sessions.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;

use redb::Durability;
use tokio::sync::{Notify, oneshot};

use crate::QueueError;
use crate::db::DbSlot;
use crate::store::WriteCtx;

/// A mutation waiting for the writer.
pub(crate) trait Job: Send {
    /// Applies the mutation inside the batch's transaction; an error aborts the whole batch.
    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> Result<(), QueueError>;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, batch: Result<(), QueueError>);
}

/// A job computing a `T` from the transaction and answering over a oneshot.
pub(crate) struct TypedJob<T, F> {
    work: Option<F>,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, QueueError>>,
}

impl<T, F> TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
{
    /// A job and the receiver its answer will arrive on.
    pub(crate) fn boxed(work: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, QueueError>>) {
        let (reply, rx) = oneshot::channel();
        let job = TypedJob {
            work: Some(work),
            output: None,
            reply,
        };
        (Box::new(job), rx)
    }
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
{
    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> Result<(), QueueError> {
        if let Some(work) = self.work.take() {
            self.output = Some(work(ctx)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, batch: Result<(), QueueError>) {
        let answer = match (batch, self.output) {
            (Ok(()), Some(output)) => Ok(output),
            (Ok(()), None) => Err(QueueError::Storage("job was not applied".into())),
            (Err(e), _) => Err(e),
        };
        // The caller may have given up (its future was dropped); the outcome stands anyway.
        let _ = self.reply.send(answer);
    }
}

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub ops: AtomicU64,
    pub failed_batches: AtomicU64,
    pub largest_batch: AtomicUsize,
    pub reopens: AtomicU64,
}

/// Snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Write transactions committed (each one fdatasync); batches that changed nothing
    /// (an idle `lease_due`) are not committed.
    pub commits: u64,
    /// Requests answered successfully.
    pub ops: u64,
    /// Batches that failed (commit error or injected failure) and were rolled back.
    pub failed_batches: u64,
    /// The most mutations one transaction carried.
    pub largest_batch: usize,
    /// Times the database was reopened after a failed batch (redb refuses writes after an
    /// I/O error until reopened).
    pub reopens: u64,
}

impl Counters {
    /// Reads every counter.
    pub(crate) fn snapshot(&self) -> QueueStats {
        QueueStats {
            commits: self.commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
        }
    }
}

/// What the writer thread needs.
pub(crate) struct Writer {
    pub db: Arc<DbSlot>,
    pub rx: Receiver<Box<dyn Job>>,
    pub max_batch: usize,
    pub fail_next_commits: Option<Arc<AtomicUsize>>,
    pub counters: Arc<Counters>,
    pub changed: Arc<Notify>,
}

/// What a successful batch did.
struct Applied {
    committed: bool,
    wake: bool,
}

impl Writer {
    /// Runs until every sender is dropped, finishing the jobs already queued.
    pub(crate) fn run(self) {
        let max_batch = self.max_batch.max(1);
        while let Ok(first) = self.rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < max_batch {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let outcome = match catch_unwind(AssertUnwindSafe(|| self.commit_batch(&mut jobs))) {
                Ok(outcome) => outcome,
                Err(_) => {
                    // A panicking predicate must not take the writer down; its transaction
                    // was dropped (aborted) while unwinding.
                    tracing::error!("queue writer panicked applying a batch; batch rolled back");
                    Err(QueueError::Storage(
                        "queue writer panicked; batch rolled back".into(),
                    ))
                }
            };
            let n = jobs.len();
            let outcome = match outcome {
                Ok(applied) => {
                    if applied.committed {
                        self.counters.commits.fetch_add(1, Ordering::Relaxed);
                    }
                    self.counters.ops.fetch_add(n as u64, Ordering::Relaxed);
                    self.counters.largest_batch.fetch_max(n, Ordering::Relaxed);
                    if applied.wake {
                        self.changed.notify_one();
                    }
                    Ok(())
                }
                Err(e) => {
                    self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, jobs = n, "queue batch failed; nothing of it was written");
                    self.reopen();
                    Err(e)
                }
            };
            for job in jobs {
                job.finish(outcome.clone());
            }
        }
    }

    /// After a failed batch: redb refuses every write after an I/O error until the file is
    /// opened again, so reopen it now; mail is accepted again as soon as the fault is gone.
    /// A reopen that fails leaves the database closed, and its next user tries again.
    fn reopen(&self) {
        match self.db.reopen() {
            Ok(()) => {
                self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("queue database reopened after a failed batch");
            }
            Err(e) => {
                tracing::error!(error = %e, "queue database could not be reopened; retrying at its next use");
            }
        }
    }

    /// Applies every job in one transaction and commits it durably.
    fn commit_batch(&self, jobs: &mut [Box<dyn Job>]) -> Result<Applied, QueueError> {
        // Reopens the database first if a storage error left it closed.
        let db = self.db.get()?;
        let mut txn = db.begin_write()?;
        // Immediate is redb's default; stated because the 250 after DATA depends on it.
        txn.set_durability(Durability::Immediate)
            .map_err(|e| QueueError::Storage(e.to_string()))?;
        let (dirty, wake, created) = {
            let mut ctx = WriteCtx::open(&txn)?;
            for job in jobs.iter_mut() {
                job.apply(&mut ctx)?;
            }
            (ctx.dirty, ctx.wake, std::mem::take(&mut ctx.created))
        };
        if !dirty {
            // Nothing to make durable: skip the fsync.
            txn.abort()?;
            return Ok(Applied {
                committed: false,
                wake: false,
            });
        }
        if self.take_injected_failure() {
            txn.abort()?;
            return Err(QueueError::Storage(
                "injected commit failure (test hook)".into(),
            ));
        }
        if let Err(e) = txn.commit() {
            // The commit may still have reached the file; its senders get 451, so the reopen
            // that follows removes these messages before anyone sees them.
            self.db.refuse(created);
            return Err(e.into());
        }
        Ok(Applied {
            committed: true,
            wake,
        })
    }

    /// Consumes one injected failure, if the test hook has any left.
    fn take_injected_failure(&self) -> bool {
        self.fail_next_commits.as_ref().is_some_and(|left| {
            left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        })
    }
}

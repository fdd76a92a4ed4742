//! The single writer thread: group commit.
//!
//! Every mutation is a `Job` sent over a channel. The writer takes whatever is waiting (up to
//! `max_batch`), applies it all in one write transaction, commits once (one fdatasync), and only
//! then answers each job. While it syncs, new jobs pile up and form the next batch, so the number
//! of fsyncs grows with time spent syncing, not with the number of sessions.
//!
//! Not every mutation needs its own fsync. Accepting mail, holds, releases and deletions by staff
//! are durable when answered. The scheduler's own bookkeeping, leases and attempt records, is
//! *relaxed*: a batch of only relaxed jobs commits with `Durability::None` (written, not synced),
//! and becomes durable with the next durable commit, or with an empty durable commit the writer
//! makes once it has been idle for `idle_flush` (50 ms). A crash before that rolls back to the last
//! durable state: leases are ended at open anyway, and a lost attempt record means the message
//! is tried again (a delivered one may be delivered twice; Postfix's queue manager, too, removes
//! a delivered queue file without an fsync). It never loses a message, and saves the one or two
//! fsyncs per message that delivery used to add to every acceptance.
//!
//! A batch whose durable jobs are all enqueues of small messages is made durable by the
//! acceptance journal instead (`journal.rs`): its records are appended and synced, and its
//! transaction commits relaxed. The next durable commit (a *checkpoint*) moves the journal's
//! watermark; one is made whenever relaxed state has waited `checkpoint_after`, busy or idle.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::Durability;
use tokio::sync::{Notify, oneshot};

use crate::QueueError;
use crate::db::DbSlot;
use crate::store::{JournalBatch, WriteCtx, set_journal_gen};

/// A mutation waiting for the writer.
pub(crate) trait Job: Send {
    /// Whether its answer must wait for an fsync (see the module's notes on relaxed jobs).
    fn durable(&self) -> bool;
    /// Applies the mutation inside the batch's transaction; an error aborts the whole batch.
    fn apply(&mut self, ctx: &mut WriteCtx<'_>) -> Result<(), QueueError>;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, batch: Result<(), QueueError>);
}

/// What to do with a committed job's output when its caller has gone.
pub(crate) type Orphan<T> = Box<dyn FnOnce(T) + Send>;

/// A job computing a `T` from the transaction and answering over a oneshot.
pub(crate) struct TypedJob<T, F> {
    durable: bool,
    work: Option<F>,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, QueueError>>,
    orphan: Option<Orphan<T>>,
}

impl<T, F> TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
{
    /// A job and the receiver its answer will arrive on.
    pub(crate) fn boxed(
        work: F,
        durable: bool,
        orphan: Option<Orphan<T>>,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, QueueError>>) {
        let (reply, rx) = oneshot::channel();
        let job = TypedJob {
            durable,
            work: Some(work),
            output: None,
            reply,
            orphan,
        };
        (Box::new(job), rx)
    }
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
{
    fn durable(&self) -> bool {
        self.durable
    }

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
        // The caller may have given up (its future was dropped); the outcome stands anyway,
        // and what it would have done with it is done here.
        if let Err(Ok(output)) = self.reply.send(answer)
            && let Some(orphan) = self.orphan
        {
            orphan(output);
        }
    }
}

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub relaxed_commits: AtomicU64,
    pub ops: AtomicU64,
    pub failed_batches: AtomicU64,
    pub largest_batch: AtomicUsize,
    pub reopens: AtomicU64,
    pub journaled: AtomicU64,
}

/// Snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Durable write transactions committed (each one fdatasync), the idle flushes of relaxed
    /// commits included; batches that changed nothing (an idle `lease_due`) are not committed.
    pub commits: u64,
    /// Relaxed write transactions committed (written, not synced: made durable by the next
    /// durable one).
    pub relaxed_commits: u64,
    /// Requests answered successfully.
    pub ops: u64,
    /// Batches that failed (commit error or injected failure) and were rolled back.
    pub failed_batches: u64,
    /// The most mutations one transaction carried.
    pub largest_batch: usize,
    /// Times the database was reopened after a failed batch (redb refuses writes after an
    /// I/O error until reopened).
    pub reopens: u64,
    /// Batches made durable by the acceptance journal (their commits are counted as relaxed).
    pub journaled: u64,
    /// Messages brought back from the acceptance journal, at open and by reopens.
    pub restored: u64,
}

impl Counters {
    /// Reads every counter.
    pub(crate) fn snapshot(&self) -> QueueStats {
        QueueStats {
            commits: self.commits.load(Ordering::Relaxed),
            relaxed_commits: self.relaxed_commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
            journaled: self.journaled.load(Ordering::Relaxed),
            restored: 0,
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
    /// The longest relaxed state waits for a durable commit while the writer is busy.
    pub checkpoint_after: Duration,
    /// How long the writer waits, idle, before making relaxed state durable.
    pub idle_flush: Duration,
}

/// What a successful batch did.
struct Applied {
    committed: bool,
    durable: bool,
    wake: bool,
}

impl Writer {
    /// Runs until every sender is dropped, finishing the jobs already queued.
    pub(crate) fn run(self) {
        let max_batch = self.max_batch.max(1);
        // Relaxed commits not yet made durable by a later durable one.
        let mut unsynced = false;
        loop {
            let first = if unsynced {
                match self.rx.recv_timeout(self.idle_flush) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        unsynced = !self.flush();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        self.flush();
                        return;
                    }
                }
            } else {
                match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
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
                    if applied.committed && applied.durable {
                        self.counters.commits.fetch_add(1, Ordering::Relaxed);
                        unsynced = false;
                    } else if applied.committed {
                        self.counters
                            .relaxed_commits
                            .fetch_add(1, Ordering::Relaxed);
                        unsynced = true;
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
                    // The reopen rolls back to the last durable commit: the relaxed ones
                    // since are gone (their messages are tried again), nothing to flush.
                    unsynced = false;
                    self.reopen();
                    Err(e)
                }
            };
            for job in jobs {
                job.finish(outcome.clone());
            }
        }
    }

    /// Makes the relaxed commits so far durable with an empty durable commit; false if it
    /// failed (tried again at the next idle moment; meanwhile they stay written, unsynced).
    fn flush(&self) -> bool {
        let done = (|| -> Result<(), QueueError> {
            let db = self.db.get()?;
            let mut journal = self.db.journal();
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| QueueError::Storage(e.to_string()))?;
            if let Some(j) = journal.as_ref() {
                set_journal_gen(&txn, j.generation() + 1)?;
            }
            txn.commit()?;
            if let Some(j) = journal.as_mut() {
                j.checkpointed(j.generation() + 1);
            }
            Ok(())
        })();
        match done {
            Ok(()) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "queue: making relaxed commits durable failed; retrying");
                false
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

    /// Applies every job in one transaction and commits it: durably when any job needs it and
    /// the journal cannot stand in for the commit's sync, or when a checkpoint is due.
    fn commit_batch(&self, jobs: &mut [Box<dyn Job>]) -> Result<Applied, QueueError> {
        // Reopens the database first if a storage error left it closed.
        let db = self.db.get()?;
        let mut journal = self.db.journal();
        let mut txn = db.begin_write()?;
        let durable_jobs = jobs.iter().filter(|j| j.durable()).count();
        let checkpoint = journal
            .as_ref()
            .and_then(|j| j.waiting())
            .is_some_and(|w| w >= self.checkpoint_after);
        let (dirty, wake, created, records, removed) = {
            let mut ctx = WriteCtx::open(&txn)?;
            if durable_jobs > 0
                && !checkpoint
                && let Some(j) = journal.as_ref().filter(|j| j.takes(0))
            {
                ctx.journal = Some(JournalBatch {
                    generation: j.generation(),
                    buf: Vec::new(),
                    count: 0,
                });
            }
            for job in jobs.iter_mut() {
                job.apply(&mut ctx)?;
            }
            (
                ctx.dirty,
                ctx.wake,
                std::mem::take(&mut ctx.created),
                ctx.journal.take(),
                std::mem::take(&mut ctx.removed),
            )
        };
        if !dirty {
            // Nothing to make durable: skip the fsync.
            txn.abort()?;
            return Ok(Applied {
                committed: false,
                durable: durable_jobs > 0,
                wake: false,
            });
        }
        // The journal stands in for the sync only if every durable job wrote its record.
        let mut appended = None;
        if let (Some(mut b), Some(j)) = (records, journal.as_mut())
            && b.count == durable_jobs
            && j.takes(b.buf.len())
        {
            let started = Instant::now();
            match j.append(&mut b.buf) {
                Ok(start) => appended = Some(start),
                Err(e) => {
                    tracing::warn!(error = %e, elapsed_us = started.elapsed().as_micros() as u64,
                    "acceptance journal not written; this batch commits durably instead")
                }
            }
        }
        let durable = (durable_jobs > 0 && appended.is_none()) || checkpoint;
        if durable && let Some(j) = journal.as_ref() {
            set_journal_gen(&txn, j.generation() + 1)?;
        }
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(|e| QueueError::Storage(e.to_string()))?;
        let failed = if self.take_injected_failure() {
            txn.abort()?;
            Some(QueueError::Storage(
                "injected commit failure (test hook)".into(),
            ))
        } else {
            txn.commit().err().map(QueueError::from)
        };
        if let Some(e) = failed {
            if let (Some(start), Some(j)) = (appended, journal.as_mut())
                && let Err(je) = j.retract(start)
            {
                tracing::warn!(error = %je, "acceptance journal: a failed batch's records could not be taken back; the reopen removes its messages");
            }
            // The commit may still have reached the file; its senders get 451, so the reopen
            // that follows removes these messages before anyone sees them.
            self.db.refuse(created);
            return Err(e);
        }
        if let Some(j) = journal.as_mut() {
            if durable {
                j.checkpointed(j.generation() + 1);
            } else {
                j.relaxed();
                // A killed process must not bring these back from the journal.
                j.note_removed(&removed);
            }
        }
        if appended.is_some() {
            self.counters.journaled.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Applied {
            committed: true,
            durable,
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

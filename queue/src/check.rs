//! The background check: reads the whole queue once after every open, in small snapshots,
//! while mail is already accepted and delivered, and has the writer repair what it finds.
//!
//! A crash cannot make the tables disagree (envelope, body, schedule entry and lease change in
//! one transaction), so open does not read them all before the queue serves: that took 51 s on
//! a queue of 100,000 messages. What a bug or a damaged disk could leave is looked for here
//! instead: envelopes that do not decode (quarantined), messages missing from the schedule
//! (which would never be delivered), leases that `leases` does not know (written by an older
//! ugem), bodies without an envelope (removed; nothing schedules them, so they are never
//! delivered) and envelopes without a body (quarantined). Killed part way, the next open starts
//! it again from the beginning; it only ever repairs, so that is safe.
//!
//! Each chunk is a short read transaction over [`CHUNK`] envelopes and the bodies between
//! their keys, walked side by side in key order. The thread rests between chunks as long as
//! the chunk took, so it uses at most about half a core and the writer is never kept waiting.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use redb::ReadableDatabase;
use tokio::sync::watch;

use crate::db::DbSlot;
use crate::store::{self, Problem};
use crate::writer::{Job, TypedJob};
use crate::{QueueError, QueueId};

/// Envelopes read per snapshot.
const CHUNK: usize = 1024;

/// What the check found, once it has finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Envelopes read.
    pub messages: usize,
    /// Problems found in the snapshots that were still there when the writer looked.
    pub repaired: usize,
}

/// The check thread's side.
pub(crate) struct Check {
    pub db: Arc<DbSlot>,
    pub jobs: Sender<Box<dyn Job>>,
    /// Dropped (or sent to) when the queue closes: the check stops at the next chunk.
    pub stop: Receiver<()>,
    /// Extra rest between chunks (tests slow the check down with it).
    pub pause: Duration,
    pub done: watch::Sender<Option<CheckReport>>,
}

impl Check {
    /// Runs the check to its end (or until the queue closes) and publishes the report.
    pub(crate) fn run(self) {
        let started = Instant::now();
        tracing::info!("queue check started");
        let mut report = CheckReport::default();
        let mut after: Option<u128> = None;
        loop {
            let chunk_started = Instant::now();
            let (next, problems, read) = match self.chunk(after) {
                Ok(found) => found,
                Err(e) => {
                    // The database is closed after a storage error; try again later.
                    tracing::warn!(error = %e, "queue check: reading failed; retrying");
                    if self.rest(Duration::from_secs(1)) {
                        return;
                    }
                    continue;
                }
            };
            report.messages += read;
            if !problems.is_empty() {
                match self.repair(problems) {
                    Ok(n) => report.repaired += n,
                    Err(QueueError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "queue check: repair failed; retrying");
                        if self.rest(Duration::from_secs(1)) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(next) = next else { break };
            after = Some(next);
            if self.rest(chunk_started.elapsed() + self.pause) {
                return;
            }
        }
        tracing::info!(
            messages = report.messages,
            repaired = report.repaired,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "queue check finished"
        );
        self.done.send_replace(Some(report));
    }

    /// Sleeps `d`; true if the queue is closing.
    fn rest(&self, d: Duration) -> bool {
        !matches!(self.stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    /// Reads the envelopes after `after` (at most [`CHUNK`]) and the bodies up to the last of
    /// them (all that remain, in the last chunk). Returns where the next chunk starts (None at
    /// the end), the problems seen and how many envelopes were read.
    #[allow(clippy::type_complexity)]
    fn chunk(
        &self,
        after: Option<u128>,
    ) -> Result<(Option<u128>, Vec<Problem>, usize), QueueError> {
        let db = self.db.get()?;
        let txn = db.begin_read()?;
        let envelopes = txn.open_table(store::ENVELOPES)?;
        let bodies = txn.open_table(store::BODIES)?;
        let schedule = txn.open_table(store::SCHEDULE)?;
        let leases = txn.open_table(store::LEASES)?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut problems = Vec::new();
        let mut keys = Vec::with_capacity(CHUNK);
        for entry in envelopes
            .range::<u128>((from, Bound::Unbounded))?
            .take(CHUNK)
        {
            let (key, raw) = entry?;
            let key = key.value();
            keys.push(key);
            let id = QueueId::from_key(key);
            match store::decode(key, raw.value()) {
                Err(_) => problems.push(Problem::Undecodable(id)),
                Ok(env) => {
                    if let Some(due) = env.schedule_key()
                        && schedule.get(due)?.is_none()
                    {
                        problems.push(Problem::Unscheduled(id));
                    }
                    if env.leased_until_ms.is_some() && leases.get(key)?.is_none() {
                        problems.push(Problem::UntrackedLease(id));
                    }
                }
            }
        }
        let last = if keys.len() == CHUNK {
            keys.last().copied()
        } else {
            None
        };
        let to = last.map_or(Bound::Unbounded, Bound::Included);
        // Both walks are in key order: a body key not among the envelopes' is an orphan, an
        // envelope key not among the bodies' has lost its body.
        let mut pending = keys.iter().copied().peekable();
        for entry in bodies.range::<u128>((from, to))? {
            let key = entry?.0.value();
            while let Some(&k) = pending.peek()
                && k < key
            {
                problems.push(Problem::Bodiless(QueueId::from_key(k)));
                pending.next();
            }
            if pending.peek() == Some(&key) {
                pending.next();
            } else {
                problems.push(Problem::Orphan(key));
            }
        }
        problems.extend(pending.map(|k| Problem::Bodiless(QueueId::from_key(k))));
        Ok((last, problems, keys.len()))
    }

    /// Has the writer repair `problems` (durably: repairs are rare) and waits for it.
    fn repair(&self, problems: Vec<Problem>) -> Result<usize, QueueError> {
        let (job, answer) = TypedJob::boxed(move |ctx| ctx.repair(&problems), true, None);
        self.jobs.send(job).map_err(|_| QueueError::Closed)?;
        answer.blocking_recv().map_err(|_| QueueError::Closed)?
    }
}

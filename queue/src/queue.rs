//! The `Queue` handle: reads straight from redb snapshots, mutations through the writer.

use std::fmt;
use std::fs::{DirBuilder, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{DatabaseError, ReadableDatabase, ReadableTable};
use tokio::sync::{Notify, watch};

use crate::check::{Check, CheckReport};
use crate::db::DbSlot;
use crate::disk;
use crate::fresh::Fresh;
use crate::journal::{JOURNAL_FILE, Journal};
use crate::store::{self, WriteCtx, replay_journal};
use crate::writer::{Counters, Job, Orphan, QueueStats, TypedJob, Writer};
use crate::{
    AttemptOutcome, Counts, Envelope, ListFilter, NewEnvelope, QueueError, QueueId, unix_ms,
};

/// The database file inside the queue directory.
pub const DB_FILE: &str = "queue.redb";

/// Settings of a queue.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Refuse new mail when less than this many bytes (plus the message) are free; default 100 MiB.
    pub min_free_bytes: u64,
    /// The most mutations one group commit carries; default 256.
    pub max_batch: usize,
    /// Memory the database may use to cache pages; default 64 MiB. Half of it at most holds
    /// the pages of a transaction being written (more goes to the file before the commit),
    /// so large messages do not pile up in memory (redb's own default is 1 GiB).
    pub cache_bytes: usize,
    /// For tests only: while this counter is above zero, each commit is rolled back instead,
    /// decrements it and fails as a `Storage` error (the path a full or failing disk takes).
    pub fail_next_commits: Option<Arc<AtomicUsize>>,
    /// For tests only: an extra rest between the chunks of the background check after open,
    /// so that a test can stop the process while the check is still running.
    pub check_pause: Duration,
    /// Make the 250 of small messages durable by the acceptance journal (`journal.rs`)
    /// rather than by a durable database commit; default on.
    pub journal: bool,
    /// The longest state made durable only by the journal (or not at all: the scheduler's
    /// relaxed bookkeeping) waits for a durable database commit while the writer is busy;
    /// default 200 ms. A crash repeats at most this much work.
    pub checkpoint_after: Duration,
    /// How long the writer, idle, waits before making such state durable; default 50 ms.
    pub idle_flush: Duration,
}

impl Default for QueueOptions {
    fn default() -> QueueOptions {
        QueueOptions {
            min_free_bytes: 100 * 1024 * 1024,
            max_batch: 256,
            cache_bytes: 64 << 20,
            fail_next_commits: None,
            check_pause: Duration::ZERO,
            journal: true,
            checkpoint_after: Duration::from_millis(200),
            idle_flush: Duration::from_millis(50),
        }
    }
}

/// The durable mail spool; cheap to clone, all clones share one database and one writer.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: Arc<DbSlot>,
    opts: QueueOptions,
    counters: Arc<Counters>,
    changed: Arc<Notify>,
    jobs: Option<Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    /// Dropped to stop the background check.
    stop_check: Option<Sender<()>>,
    check: Option<JoinHandle<()>>,
    checked: watch::Receiver<Option<CheckReport>>,
    /// New messages handed straight to the scheduler (`fresh.rs`).
    fresh: Arc<Fresh>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit; waiting for it
        // releases the database file, so the queue can be reopened as soon as the last
        // handle is gone (restart in tests, a clean shutdown in production). The check goes
        // first: it holds a sender of the writer's channel.
        drop(self.stop_check.take());
        if let Some(check) = self.check.take()
            && check.join().is_err()
        {
            tracing::error!("queue check thread panicked");
        }
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("queue writer thread panicked");
        }
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens (creating if needed) the queue in `dir`, recovers it, and starts its writer.
    pub fn open(dir: &Path, opts: QueueOptions) -> Result<Queue, QueueError> {
        // 0700: queued mail is nobody else's business.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| QueueError::Storage(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let existed = path.exists();
        // After a crash redb first walks and checksums the whole file (its repair): the one
        // part of opening that grows with the queue, logged apart.
        let started = Instant::now();
        let db = crate::db::open(&path, opts.cache_bytes).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => QueueError::Locked { path: path.clone() },
            other => QueueError::Storage(format!("opening {}: {other}", path.display())),
        })?;
        if !existed {
            // redb syncs the file's data, not the directory entry naming it.
            disk::sync_dir(dir)
                .map_err(|e| QueueError::Storage(format!("syncing {}: {e}", dir.display())))?;
        }

        let file_ms = started.elapsed().as_millis() as u64;
        let opened = Instant::now();
        // A journal left by a run that used it is replayed even with the journal now off:
        // its records hold messages that were answered 250.
        let mut journal = if opts.journal || dir.join(JOURNAL_FILE).exists() {
            Some(Journal::open(dir).map_err(|e| {
                QueueError::Storage(format!("opening {}: {e}", dir.join(JOURNAL_FILE).display()))
            })?)
        } else {
            None
        };
        let txn = db.begin_write()?;
        // The journal first: a restored message is then recovered like any other.
        let replayed = match journal.as_ref() {
            Some(j) => Some(replay_journal(&txn, j)?),
            None => None,
        };
        let (report, dirty) = {
            let mut ctx = WriteCtx::open(&txn)?;
            let report = ctx.recover(&txn)?;
            (report, ctx.dirty)
        };
        if dirty || replayed.is_some() {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        let restored = replayed.map_or(0, |(n, _)| n);
        if let (Some(j), Some((_, generation))) = (journal.as_mut(), replayed) {
            j.checkpointed(generation);
        }
        tracing::info!(
            dir = %dir.display(),
            format_found = report.format_found,
            leases_cleared = report.leases_cleared,
            restored_from_journal = restored,
            quarantined = report.quarantined.len(),
            file_ms,
            elapsed_ms = opened.elapsed().as_millis() as u64,
            "queue opened"
        );
        if !report.quarantined.is_empty() {
            tracing::error!(
                ids = ?report.quarantined,
                "queue records quarantined at open; inspect them before deleting"
            );
        }

        let journal = journal.filter(|_| opts.journal);
        let db = Arc::new(DbSlot::new(&path, db, opts.cache_bytes, journal));
        db.restored
            .fetch_add(restored as u64, std::sync::atomic::Ordering::Relaxed);
        let counters = Arc::new(Counters::default());
        let changed = Arc::new(Notify::new());
        let (jobs, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            rx,
            max_batch: opts.max_batch,
            fail_next_commits: opts.fail_next_commits.clone(),
            counters: counters.clone(),
            changed: changed.clone(),
            checkpoint_after: opts.checkpoint_after,
            idle_flush: opts.idle_flush,
        };
        let writer = std::thread::Builder::new()
            .name("ugem-queue-writer".into())
            .spawn(move || writer.run())?;
        let (stop_check, stop) = mpsc::channel();
        let (done, checked) = watch::channel(None);
        let check = Check {
            db: db.clone(),
            jobs: jobs.clone(),
            stop,
            pause: opts.check_pause,
            done,
        };
        let check = std::thread::Builder::new()
            .name("ugem-queue-check".into())
            .spawn(move || check.run())?;
        Ok(Queue {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db,
                opts,
                counters,
                changed,
                jobs: Some(jobs),
                writer: Some(writer),
                stop_check: Some(stop_check),
                check: Some(check),
                checked,
                fresh: Arc::default(),
            }),
        })
    }

    /// The queue directory as given to `open`.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Waits until the background check that follows every open has read the whole queue
    /// (and the writer has repaired what it found); see `check.rs`.
    pub async fn checked(&self) -> CheckReport {
        let mut rx = self.inner.checked.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(report) => report.unwrap_or_default(),
            // The check thread ended without a report: the queue is closing.
            Err(_) => CheckReport::default(),
        }
    }

    /// The background check's report once it has finished, None while it runs.
    pub fn check_report(&self) -> Option<CheckReport> {
        *self.inner.checked.borrow()
    }

    /// Counters of the group-commit writer.
    pub fn stats(&self) -> QueueStats {
        let mut stats = self.inner.counters.snapshot();
        stats.restored = self
            .inner
            .db
            .restored
            .load(std::sync::atomic::Ordering::Relaxed);
        stats
    }

    /// Sends a mutation to the writer and waits until its batch is durably committed (or
    /// failed).
    async fn submit<T, F>(&self, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
    {
        self.send_job(work, true).await
    }

    /// Like [`Queue::submit`], for the scheduler's own bookkeeping: answered once committed,
    /// made durable later (see the writer's notes on relaxed jobs).
    async fn submit_relaxed<T, F>(&self, work: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
    {
        self.send_job(work, false).await
    }

    async fn send_job<T, F>(&self, work: F, durable: bool) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
    {
        self.send_job_with(work, durable, None).await
    }

    /// [`Queue::send_job`] with what to do with the output should the caller be gone.
    async fn send_job_with<T, F>(
        &self,
        work: F,
        durable: bool,
        orphan: Option<Orphan<T>>,
    ) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, QueueError> + Send + 'static,
    {
        let (job, answer) = TypedJob::boxed(work, durable, orphan);
        let jobs = self.inner.jobs.as_ref().ok_or(QueueError::Closed)?;
        jobs.send(job).map_err(|_| QueueError::Closed)?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Stores a message durably; returns only once envelope and body are fsynced.
    ///
    /// When the scheduler has a slot free ([`Queue::offer_fresh`]) the message is stored
    /// leased and handed to it with its body (`fresh.rs`), so its delivery starts without
    /// another round trip through the writer.
    pub async fn enqueue(&self, env: NewEnvelope, body: Vec<u8>) -> Result<QueueId, QueueError> {
        self.check_room(u64::try_from(body.len()).unwrap_or(u64::MAX))?;
        let fresh = &self.inner.fresh;
        let lease = fresh.take();
        // A caller gone before the answer (a dropped future) must not leave a leased message
        // to wait for its lease to run out: the writer hands it over then.
        let orphan: Option<Orphan<_>> = lease.map(|_| {
            let fresh = fresh.clone();
            Box::new(
                move |(_, leased, body): (QueueId, Option<Envelope>, Vec<u8>)| {
                    if let Some(envelope) = leased {
                        fresh.hand(envelope, body);
                    }
                },
            ) as Orphan<_>
        });
        let stored = self
            .send_job_with(
                move |ctx| {
                    let (id, leased) = ctx.enqueue(env, &body, lease)?;
                    Ok((id, leased, body))
                },
                true,
                orphan,
            )
            .await;
        match stored {
            Ok((id, leased, body)) => {
                if let Some(envelope) = leased {
                    fresh.hand(envelope, body);
                }
                Ok(id)
            }
            Err(e) => {
                if lease.is_some() {
                    fresh.give_back();
                }
                Err(e)
            }
        }
    }

    /// The hand-off of new messages to the scheduler.
    pub(crate) fn fresh(&self) -> &Fresh {
        &self.inner.fresh
    }

    /// Stores a message whose body is `head` followed by the first `len` octets of `file`
    /// (a spool file the SMTP layer wrote a large message to); returns only once envelope and
    /// body are fsynced. The writer reads the file straight into the database page, so the
    /// body is never held in memory twice. The file is the caller's to remove afterwards.
    pub async fn enqueue_file(
        &self,
        env: NewEnvelope,
        head: Vec<u8>,
        file: File,
        len: u64,
    ) -> Result<QueueId, QueueError> {
        self.check_room((head.len() as u64).saturating_add(len))?;
        self.submit(move |ctx| ctx.enqueue_file(env, &head, &file, len))
            .await?
    }

    /// Refuses new mail while the queue's filesystem is below the floor: `DiskFull` unless
    /// `incoming` more octets still leave `min_free_bytes` free. Cheap (one statvfs); the
    /// SMTP layer asks it at MAIL and while spooling, so a client is not made to send a whole
    /// message only to be refused at its end.
    pub fn check_room(&self, incoming: u64) -> Result<(), QueueError> {
        let free = disk::free_bytes(&self.inner.dir).map_err(|e| {
            QueueError::Storage(format!("free space of {}: {e}", self.inner.dir.display()))
        })?;
        // The message itself must fit above the floor, or accepting it would break the floor.
        let floor = self.inner.opts.min_free_bytes.saturating_add(incoming);
        if free < floor {
            return Err(QueueError::DiskFull { free, floor });
        }
        Ok(())
    }

    /// The envelope of a queued message, or None if it is not (or no longer) queued.
    pub fn get(&self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        let db = self.inner.db.get()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::ENVELOPES)?;
        let Some(raw) = table.get(id.key())? else {
            return Ok(None);
        };
        store::decode(id.key(), raw.value())
            .map(Some)
            .map_err(|why| QueueError::Storage(format!("record {id} does not decode: {why}")))
    }

    /// The raw body of a queued message, or None if it is not queued.
    pub fn body(&self, id: QueueId) -> Result<Option<Vec<u8>>, QueueError> {
        let db = self.inner.db.get()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::BODIES)?;
        Ok(table.get(id.key())?.map(|raw| raw.value().to_vec()))
    }

    /// The messages passing `filter`, oldest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Envelope>, QueueError> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.for_each(|env| {
            if filter.matches(&env) {
                out.push(env);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Totals over the whole queue.
    pub fn counts(&self) -> Result<Counts, QueueError> {
        let now = unix_ms();
        let mut counts = Counts::default();
        self.for_each(|env| {
            counts.add(&env, now);
            true
        })?;
        Ok(counts)
    }

    /// When the earliest message that is not held is next due (its lease end while leased),
    /// so a scheduler can sleep until then instead of polling; None if nothing is scheduled.
    pub fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        let db = self.inner.db.get()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::SCHEDULE)?;
        Ok(table.first()?.map(|(key, _)| key.value().0))
    }

    /// Waits until a commit makes some message due sooner than before (enqueue, release,
    /// retry, an earlier reschedule). Meant for one scheduler: a wake-up that finds nobody
    /// waiting is kept for the next call, so check-then-wait misses nothing.
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Ids of records quarantined because they did not decode (envelope bytes kept as found).
    pub fn quarantined(&self) -> Result<Vec<QueueId>, QueueError> {
        let db = self.inner.db.get()?;
        let txn = db.begin_read()?;
        // Created by the first quarantine, not before.
        let table = match txn.open_table(store::QUARANTINE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut ids = Vec::new();
        for entry in table.iter()? {
            let (key, _) = entry?;
            ids.push(QueueId::from_key(key.value()));
        }
        Ok(ids)
    }

    /// Visits every decodable envelope in id order from one snapshot until `visit` says stop.
    fn for_each(&self, mut visit: impl FnMut(Envelope) -> bool) -> Result<(), QueueError> {
        let db = self.inner.db.get()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::ENVELOPES)?;
        for entry in table.iter()? {
            let (key, raw) = entry?;
            match store::decode(key.value(), raw.value()) {
                Ok(env) => {
                    if !visit(env) {
                        break;
                    }
                }
                Err(why) => {
                    // The writer quarantines it the next time it touches it, or at reopen.
                    tracing::error!(queue_id = %QueueId::from_key(key.value()), error = why,
                        "queue record does not decode; skipped");
                }
            }
        }
        Ok(())
    }

    /// Leases up to `max` due messages (not held, not under a live lease) until
    /// `now_ms + lease_ms`; a lease that runs out makes its message due again.
    pub async fn lease_due(
        &self,
        now_ms: u64,
        max: usize,
        lease_ms: u64,
    ) -> Result<Vec<Envelope>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Relaxed: every lease is ended at open, so a lost one changes nothing.
        self.submit_relaxed(move |ctx| ctx.lease_due(now_ms, max, lease_ms))
            .await
    }

    /// Records a delivery attempt and ends its lease. Returns the final envelope when every
    /// recipient is now final and the message was removed; None while it stays queued (or if
    /// it was deleted meanwhile).
    pub async fn record_attempt(
        &self,
        id: QueueId,
        outcome: AttemptOutcome,
    ) -> Result<Option<Envelope>, QueueError> {
        // Relaxed: a record lost in a crash means the attempt is made again (at worst a
        // duplicate delivery), never a lost message; bounces are enqueued durably first.
        self.submit_relaxed(move |ctx| ctx.record_attempt(id, outcome))
            .await
    }

    /// Holds a message with a reason (replacing an earlier one); false if it is not queued.
    pub async fn hold(&self, id: QueueId, reason: String) -> Result<bool, QueueError> {
        self.submit(move |ctx| ctx.hold(id, reason)).await
    }

    /// Holds a message that its lease holder gives back without an attempt
    /// (its sender is suspended), ending the lease so that a release makes
    /// it due at once; false if it is not queued. Only the lease holder may
    /// call this: a hold by anyone else keeps the lease of the attempt in
    /// flight, which records its outcome.
    pub async fn hold_leased(&self, id: QueueId, reason: String) -> Result<bool, QueueError> {
        self.submit(move |ctx| ctx.hold_leased(id, reason)).await
    }

    /// Releases a held message: due now (or sooner if it already was), its
    /// retry backoff started over; false if it is not queued or not held.
    pub async fn release(&self, id: QueueId) -> Result<bool, QueueError> {
        self.submit(move |ctx| ctx.release(id, unix_ms())).await
    }

    /// Holds every queued message `pred` accepts; returns how many were newly held (messages
    /// already held keep their reason). Used to hold a suspended scope's mail.
    pub async fn hold_where(
        &self,
        reason: String,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<usize, QueueError> {
        Ok(self.hold_matching(reason, pred).await?.len())
    }

    /// As [`Queue::hold_where`], returning the ids of the messages newly held.
    pub async fn hold_matching(
        &self,
        reason: String,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.submit(move |ctx| ctx.hold_where(&reason, &pred)).await
    }

    /// Releases every held message `pred` accepts, as [`Queue::release`]
    /// does; returns how many.
    pub async fn release_where(
        &self,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<usize, QueueError> {
        Ok(self.release_matching(pred).await?.len())
    }

    /// As [`Queue::release_where`], returning the ids of the messages released.
    pub async fn release_matching(
        &self,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.submit(move |ctx| ctx.release_where(&pred, unix_ms()))
            .await
    }

    /// Deletes a message (envelope and body); false if it is not queued.
    pub async fn delete(&self, id: QueueId) -> Result<bool, QueueError> {
        self.submit(move |ctx| ctx.delete(id)).await
    }

    /// Deletes every message `pred` accepts; returns how many.
    pub async fn delete_where(
        &self,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<usize, QueueError> {
        Ok(self.delete_matching(pred).await?.len())
    }

    /// As [`Queue::delete_where`], returning the ids of the messages deleted.
    pub async fn delete_matching(
        &self,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.submit(move |ctx| ctx.delete_where(&pred)).await
    }

    /// Makes every message `pred` accepts that is waiting (not held, not under a live lease)
    /// due at `now_ms`, however long its backoff still had to run; returns their ids.
    pub async fn retry_matching(
        &self,
        now_ms: u64,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.submit(move |ctx| ctx.retry_where(&pred, now_ms)).await
    }

    /// Requeues every message `pred` accepts that is not under a live lease: released if
    /// held, due at `now_ms`, its retry backoff started over; returns their ids.
    pub async fn requeue_matching(
        &self,
        now_ms: u64,
        pred: impl Fn(&Envelope) -> bool + Send + 'static,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.submit(move |ctx| ctx.requeue_where(&pred, now_ms))
            .await
    }

    /// Makes a message due at `now_ms` (a held one stays held); false if it is not queued.
    pub async fn retry(&self, id: QueueId, now_ms: u64) -> Result<bool, QueueError> {
        self.submit(move |ctx| ctx.retry(id, now_ms)).await
    }

    /// Makes every waiting message (not held, not leased) due at `now_ms`; returns how many.
    pub async fn retry_all(&self, now_ms: u64) -> Result<usize, QueueError> {
        self.submit(move |ctx| ctx.retry_all(now_ms)).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Direction;
    use redb::Database;

    /// A new envelope due at once, for the crate's tests.
    pub(crate) fn new_env() -> NewEnvelope {
        NewEnvelope {
            sender: "a@agency.example".into(),
            recipients: vec!["b@remote.example".into()],
            client_ip: None,
            helo: "h".into(),
            tls: None,
            domain: None,
            direction: Direction::Local,
            arrived_at_ms: 1_000,
            size: 1,
        }
    }

    /// Options without the free-space floor, for the crate's tests.
    pub(crate) fn opts() -> QueueOptions {
        QueueOptions {
            min_free_bytes: 0,
            ..QueueOptions::default()
        }
    }

    #[tokio::test]
    async fn a_panicking_predicate_fails_its_batch_but_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let id = q.enqueue(new_env(), b"x".to_vec()).await.unwrap();
        let err = q
            .hold_where("x".into(), |_| panic!("predicate bug"))
            .await
            .unwrap_err();
        assert!(matches!(err, QueueError::Storage(_)));
        assert!(q.get(id).unwrap().unwrap().held.is_none());
        assert!(q.hold(id, "y".into()).await.unwrap());
    }

    #[tokio::test]
    async fn the_check_after_open_repairs_the_schedule_and_drops_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let q = Queue::open(dir.path(), opts()).unwrap();
            q.enqueue(new_env(), b"x".to_vec()).await.unwrap()
        };
        let orphan = QueueId::from_parts(2, 2);
        {
            // A stale schedule entry, a missing one and an orphan body.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut schedule = txn.open_table(store::SCHEDULE).unwrap();
                schedule.retain(|_, _| false).unwrap();
                schedule.insert((5, orphan.key()), ()).unwrap();
                let mut bodies = txn.open_table(store::BODIES).unwrap();
                bodies.insert(orphan.key(), b"lost".as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let q = Queue::open(dir.path(), opts()).unwrap();
        // The missing entry, the orphan body; the stale entry goes when lease_due meets it.
        assert_eq!(q.checked().await.repaired, 2);
        assert!(q.body(orphan).unwrap().is_none());
        let leased = q.lease_due(1_000, 10, 10).await.unwrap();
        assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    }

    #[tokio::test]
    async fn envelope_without_body_is_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let q = Queue::open(dir.path(), opts()).unwrap();
            q.enqueue(new_env(), b"x".to_vec()).await.unwrap()
        };
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(store::BODIES)
                .unwrap()
                .remove(id.key())
                .unwrap();
            txn.commit().unwrap();
        }
        let q = Queue::open(dir.path(), opts()).unwrap();
        assert_eq!(q.checked().await.repaired, 1);
        assert!(q.get(id).unwrap().is_none());
        assert_eq!(q.quarantined().unwrap(), vec![id]);
        assert!(q.lease_due(u64::MAX, 10, 1).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_record_corrupted_while_open_is_quarantined_by_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), opts()).unwrap();
        let bad = q.enqueue(new_env(), b"x".to_vec()).await.unwrap();
        let good = q.enqueue(new_env(), b"y".to_vec()).await.unwrap();
        // Corrupt through the writer itself, as a bug would.
        q.submit(move |ctx| {
            ctx.put_raw_for_test(bad, b"garbage");
            Ok(())
        })
        .await
        .unwrap();
        assert!(q.get(bad).is_err(), "a read reports the damage");
        assert_eq!(q.list(&ListFilter::default()).unwrap().len(), 1);
        // One bad record does not fail the batch it is in.
        let leased = q.lease_due(1_000, 10, 10).await.unwrap();
        assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), vec![good]);
        assert_eq!(q.quarantined().unwrap(), vec![bad]);
        assert!(q.get(bad).unwrap().is_none());
    }
}

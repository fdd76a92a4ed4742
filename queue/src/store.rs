//! The redb layout and every change to it. Only this module touches tables, so the schedule
//! index stays consistent with the envelopes: all writes go through `WriteCtx::put`/`remove`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::{AttemptOutcome, Envelope, NewEnvelope, QueueError, QueueId};

/// Queue id -> serde_json envelope.
pub(crate) const ENVELOPES: TableDefinition<u128, &[u8]> = TableDefinition::new("envelopes");
/// Queue id -> raw message body.
pub(crate) const BODIES: TableDefinition<u128, &[u8]> = TableDefinition::new("bodies");
/// (due unix ms, queue id) -> (): messages that are not held, by when they are next due.
pub(crate) const SCHEDULE: TableDefinition<(u64, u128), ()> = TableDefinition::new("schedule");
/// Queue id -> raw envelope bytes that failed to decode, kept for staff to inspect.
pub(crate) const QUARANTINE: TableDefinition<u128, &[u8]> = TableDefinition::new("quarantine");
/// Queue id -> body of a quarantined envelope, so the message can still be recovered by hand.
pub(crate) const QUARANTINE_BODIES: TableDefinition<u128, &[u8]> =
    TableDefinition::new("quarantine_bodies");
/// Queue id -> lease end (unix ms): the messages under a lease, so that the next open ends
/// them without reading every envelope.
pub(crate) const LEASES: TableDefinition<u128, u64> = TableDefinition::new("leases");
/// Settings of the file itself; `format` is [`FORMAT`] once the file has been migrated to it,
/// `journal_gen` the acceptance journal's watermark (`journal.rs`).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The `meta` key of the journal's watermark.
const JOURNAL_GEN: &str = "journal_gen";

/// The journal generation the durable state of `txn`'s file has taken in (0 if none yet).
pub(crate) fn journal_gen(txn: &WriteTransaction) -> Result<u64, QueueError> {
    let meta = txn.open_table(META)?;
    let generation = meta.get(JOURNAL_GEN)?.map_or(0, |v| v.value());
    Ok(generation)
}

/// Stores the journal's watermark: this commit holds every record of earlier generations.
pub(crate) fn set_journal_gen(txn: &WriteTransaction, generation: u64) -> Result<(), QueueError> {
    txn.open_table(META)?.insert(JOURNAL_GEN, generation)?;
    Ok(())
}

/// Replays the journal's current generation into `txn` (messages not in the database come
/// back as they were accepted) and stores the next generation as the watermark: once `txn` commits
/// durably, the journal starts over in it. Returns how many came back and that generation.
pub(crate) fn replay_journal(
    txn: &WriteTransaction,
    journal: &crate::journal::Journal,
) -> Result<(usize, u64), QueueError> {
    let generation = journal_gen(txn)?;
    let (records, end) = journal
        .records(generation)
        .map_err(|e| QueueError::Storage(format!("reading {}: {e}", journal.path().display())))?;
    let mut back = 0;
    {
        let mut ctx = WriteCtx::open(txn)?;
        for r in records {
            let id = r.env.id;
            if ctx.replay(r.env, &r.body)? {
                tracing::info!(queue_id = %id, "message restored from the acceptance journal");
                back += 1;
            }
        }
    }
    if end == crate::journal::End::Torn {
        // The batch being appended when the process stopped: none of its senders got a 250.
        tracing::warn!(
            "the acceptance journal ends in an incomplete record (an append cut short); ignored"
        );
    }
    set_journal_gen(txn, generation + 1)?;
    Ok((back, generation + 1))
}

/// The journal records of one batch, while it may still be made durable by them.
pub(crate) struct JournalBatch {
    /// Their generation.
    pub generation: u64,
    /// The records ([`crate::journal::encode`]).
    pub buf: Vec<u8>,
    /// How many enqueues wrote one.
    pub count: usize,
}

/// The layout this code writes. 0 (no `meta` table): before `leases` existed, when every open
/// read every envelope to end the leases. 1: `leases` is kept with the envelopes.
pub(crate) const FORMAT: u64 = 1;

/// Releases a held message: due at `now_ms` at the latest, its retry backoff
/// started over (a hold is not the remote's fault). True if it was held.
fn release_now(env: &mut Envelope, now_ms: u64) -> bool {
    if env.held.take().is_none() {
        return false;
    }
    env.next_attempt_ms = env.next_attempt_ms.min(now_ms);
    env.backoff_since = env.attempts;
    true
}

/// Decodes a stored envelope, checking that it belongs under its key.
pub(crate) fn decode(key: u128, bytes: &[u8]) -> Result<Envelope, String> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if env.id.key() != key {
        return Err(format!(
            "record holds id {} under key {}",
            env.id,
            QueueId::from_key(key)
        ));
    }
    Ok(env)
}

/// Encodes an envelope for storage.
fn encode(env: &Envelope) -> Result<Vec<u8>, QueueError> {
    // Cannot fail for these types (string keys, no maps with non-string keys), but a failure
    // must not become a panic in the writer.
    serde_json::to_vec(env).map_err(|e| QueueError::Storage(format!("encoding envelope: {e}")))
}

/// What open-time recovery did, for the log line.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// The format the file had before this open.
    pub format_found: u64,
    pub leases_cleared: usize,
    pub quarantined: Vec<QueueId>,
}

/// A disagreement between the tables that the background check found in a snapshot; the
/// writer looks again in its own transaction before repairing anything (see [`WriteCtx::repair`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The envelope does not decode.
    Undecodable(QueueId),
    /// A message that is not held has no schedule entry, so it would never be delivered.
    Unscheduled(QueueId),
    /// A lease that `leases` does not know (written by an older ugem): the next open would not
    /// end it.
    UntrackedLease(QueueId),
    /// A body without an envelope.
    Orphan(u128),
    /// An envelope without a body.
    Bodiless(QueueId),
}

/// The tables of one write transaction (one group commit).
pub(crate) struct WriteCtx<'t> {
    envelopes: Table<'t, u128, &'static [u8]>,
    bodies: Table<'t, u128, &'static [u8]>,
    schedule: Table<'t, (u64, u128), ()>,
    leases: Table<'t, u128, u64>,
    /// For the quarantine tables, opened only when a record is quarantined (rare), not by
    /// every batch.
    txn: &'t WriteTransaction,
    /// Whether anything was written: a batch that wrote nothing needs no commit (no fsync),
    /// which keeps an idle scheduler's polling free.
    pub(crate) dirty: bool,
    /// Whether something may have become due sooner than the scheduler expects.
    pub(crate) wake: bool,
    /// Messages enqueued in this transaction: if its commit fails they were refused (451),
    /// and must not show up should the failed commit have reached the disk after all.
    pub(crate) created: Vec<QueueId>,
    /// The journal records of this batch's new messages, when the batch may use the journal.
    pub(crate) journal: Option<JournalBatch>,
    /// Messages removed in this transaction (a relaxed batch notes them in the journal).
    pub(crate) removed: Vec<QueueId>,
}

impl<'t> WriteCtx<'t> {
    /// Opens (creating on first use) the tables every batch uses.
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<WriteCtx<'t>, QueueError> {
        Ok(WriteCtx {
            envelopes: txn.open_table(ENVELOPES)?,
            bodies: txn.open_table(BODIES)?,
            schedule: txn.open_table(SCHEDULE)?,
            leases: txn.open_table(LEASES)?,
            txn,
            dirty: false,
            wake: false,
            created: Vec::new(),
            journal: None,
            removed: Vec::new(),
        })
    }

    /// Loads an envelope; a record that does not decode is quarantined and reads as absent,
    /// so that one bad record cannot fail the other requests of its batch.
    fn load(&mut self, id: QueueId) -> Result<Option<Envelope>, QueueError> {
        let raw = match self.envelopes.get(id.key())? {
            Some(guard) => guard.value().to_vec(),
            None => return Ok(None),
        };
        match decode(id.key(), &raw) {
            Ok(env) => Ok(Some(env)),
            Err(why) => {
                self.quarantine(id, &raw, &why)?;
                Ok(None)
            }
        }
    }

    /// Every decodable envelope, oldest first (undecodable ones are quarantined).
    fn load_all(&mut self) -> Result<Vec<Envelope>, QueueError> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for entry in self.envelopes.iter()? {
            let (key, value) = entry?;
            match decode(key.value(), value.value()) {
                Ok(env) => good.push(env),
                Err(why) => bad.push((QueueId::from_key(key.value()), value.value().to_vec(), why)),
            }
        }
        for (id, raw, why) in bad {
            self.quarantine(id, &raw, &why)?;
        }
        Ok(good)
    }

    /// Moves a broken record (and its body) out of the way, loudly.
    fn quarantine(&mut self, id: QueueId, raw: &[u8], why: &str) -> Result<(), QueueError> {
        tracing::error!(queue_id = %id, error = why, "queue record does not decode; quarantined");
        self.dirty = true;
        self.txn.open_table(QUARANTINE)?.insert(id.key(), raw)?;
        self.envelopes.remove(id.key())?;
        if let Some(body) = self.bodies.remove(id.key())? {
            self.txn
                .open_table(QUARANTINE_BODIES)?
                .insert(id.key(), body.value())?;
        }
        self.leases.remove(id.key())?;
        // Its schedule entry, if any, cannot be computed without the record; lease_due drops
        // entries whose envelope is gone.
        Ok(())
    }

    /// Stores `new`, moving its schedule entry from where `old` had it.
    fn put(&mut self, old: Option<&Envelope>, new: &Envelope) -> Result<(), QueueError> {
        let record = encode(new)?;
        self.put_encoded(old, new, &record)
    }

    /// [`WriteCtx::put`] with `new` already encoded as `record`.
    fn put_encoded(
        &mut self,
        old: Option<&Envelope>,
        new: &Envelope,
        record: &[u8],
    ) -> Result<(), QueueError> {
        self.dirty = true;
        self.envelopes.insert(new.id.key(), record)?;
        let old_key = old.and_then(Envelope::schedule_key);
        let new_key = new.schedule_key();
        if old_key != new_key {
            if let Some(key) = old_key {
                self.schedule.remove(key)?;
            }
            if let Some(key) = new_key {
                self.schedule.insert(key, ())?;
                // New, released, retried or rescheduled earlier: a sleeping scheduler must
                // look again.
                if old_key.is_none_or(|(old_due, _)| key.0 < old_due) {
                    self.wake = true;
                }
            }
        }
        let old_lease = old.and_then(|e| e.leased_until_ms);
        if old_lease != new.leased_until_ms {
            match new.leased_until_ms {
                Some(until) => {
                    self.leases.insert(new.id.key(), until)?;
                }
                None => {
                    self.leases.remove(new.id.key())?;
                }
            }
        }
        Ok(())
    }

    /// Removes a message entirely: envelope, body and schedule entry.
    fn remove(&mut self, env: &Envelope) -> Result<(), QueueError> {
        self.dirty = true;
        self.removed.push(env.id);
        self.envelopes.remove(env.id.key())?;
        self.bodies.remove(env.id.key())?;
        if let Some(key) = env.schedule_key() {
            self.schedule.remove(key)?;
        }
        if env.leased_until_ms.is_some() {
            self.leases.remove(env.id.key())?;
        }
        Ok(())
    }

    /// A new message id. Ids are made here, in the single writer, so key order is also commit
    /// order; the check guards against a restart that reuses a seed within the same millisecond.
    fn fresh_id(&self) -> Result<QueueId, QueueError> {
        loop {
            let id = QueueId::generate();
            if self.envelopes.get(id.key())?.is_none() {
                return Ok(id);
            }
        }
    }

    /// Stores a new message, due at its arrival time.
    ///
    /// With `lease` (a slot of [`crate::Queue::offer_fresh`]) it is stored leased until then and
    /// returned, for the scheduler that took it; no wake-up then, the scheduler has it already.
    pub(crate) fn enqueue(
        &mut self,
        new: NewEnvelope,
        body: &[u8],
        lease: Option<u64>,
    ) -> Result<(QueueId, Option<Envelope>), QueueError> {
        let id = self.fresh_id()?;
        let mut env = Envelope::new(id, new);
        let wake = self.wake;
        env.leased_until_ms = lease;
        // One encoding for the table and the journal.
        let record = encode(&env)?;
        self.put_encoded(None, &env, &record)?;
        if lease.is_some() {
            self.wake = wake;
        }
        self.bodies.insert(id.key(), body)?;
        self.created.push(id);
        if let Some(j) = self.journal.as_mut()
            && body.len() <= crate::journal::MAX_BODY
        {
            crate::journal::encode(&mut j.buf, j.generation, &record, body);
            j.count += 1;
        }
        Ok((id, lease.map(|_| env)))
    }

    /// Stores a message read back from the journal unless it is here already, as it was
    /// accepted: with the lease of its hand-off to the scheduler, if it had one. At open the
    /// recovery that follows ends that lease; at a reopen the delivery holding it is still
    /// running, and must not find its message leased to another.
    pub(crate) fn replay(&mut self, env: Envelope, body: &[u8]) -> Result<bool, QueueError> {
        if self.envelopes.get(env.id.key())?.is_some() {
            return Ok(false);
        }
        self.put(None, &env)?;
        self.bodies.insert(env.id.key(), body)?;
        Ok(true)
    }

    /// Stores a new message whose body is `head` followed by the first `len` octets of `file`,
    /// read straight into the database's page (no copy of the whole body in between).
    ///
    /// The outer error fails the batch (a database failure); the inner one is this message's
    /// own (its file could not be read), which leaves nothing of it behind and the rest of the
    /// batch untouched.
    pub(crate) fn enqueue_file(
        &mut self,
        new: NewEnvelope,
        head: &[u8],
        file: &File,
        len: u64,
    ) -> Result<Result<QueueId, QueueError>, QueueError> {
        let Some(total) = (head.len() as u64)
            .checked_add(len)
            .and_then(|t| usize::try_from(t).ok())
        else {
            return Ok(Err(QueueError::Storage("message too large".into())));
        };
        let id = self.fresh_id()?;
        let read = {
            let mut guard = self.bodies.insert_reserve(id.key(), total)?;
            let (h, rest) = guard.as_mut().split_at_mut(head.len());
            h.copy_from_slice(head);
            file.read_exact_at(rest, 0)
        };
        if let Err(e) = read {
            self.bodies.remove(id.key())?;
            return Ok(Err(QueueError::Storage(format!(
                "reading the spooled message: {e}"
            ))));
        }
        let env = Envelope::new(id, new);
        self.put(None, &env)?;
        self.created.push(id);
        Ok(Ok(id))
    }

    /// Leases up to `max` due messages until `now_ms + lease_ms`.
    pub(crate) fn lease_due(
        &mut self,
        now_ms: u64,
        max: usize,
        lease_ms: u64,
    ) -> Result<Vec<Envelope>, QueueError> {
        let mut due = Vec::new();
        for entry in self.schedule.range(..=(now_ms, u128::MAX))?.take(max) {
            let (key, _) = entry?;
            due.push(key.value());
        }
        let until = now_ms.saturating_add(lease_ms);
        let mut leased = Vec::with_capacity(due.len());
        for key in due {
            let Some(old) = self.load(QueueId::from_key(key.1))? else {
                // Left behind by a quarantined record.
                self.dirty = true;
                self.schedule.remove(key)?;
                continue;
            };
            if old.schedule_key() != Some(key) {
                // Should not happen; repair rather than lease on a stale index entry.
                tracing::warn!(queue_id = %old.id, "stale schedule entry repaired");
                self.dirty = true;
                self.schedule.remove(key)?;
                if let Some(right) = old.schedule_key() {
                    self.schedule.insert(right, ())?;
                }
                continue;
            }
            let mut env = old.clone();
            env.leased_until_ms = Some(until);
            self.put(Some(&old), &env)?;
            leased.push(env);
        }
        Ok(leased)
    }

    /// Applies a delivery attempt; removes the message once every recipient is final.
    pub(crate) fn record_attempt(
        &mut self,
        id: QueueId,
        outcome: AttemptOutcome,
    ) -> Result<Option<Envelope>, QueueError> {
        let Some(old) = self.load(id)? else {
            return Ok(None);
        };
        let mut env = old.clone();
        for update in outcome.recipients {
            let Some(rcpt) = env.recipients.get_mut(update.index) else {
                tracing::warn!(queue_id = %id, index = update.index, "attempt names no such recipient");
                continue;
            };
            if rcpt.status.is_final() {
                // A final recipient is never sent to again; a late duplicate result is ignored.
                continue;
            }
            rcpt.status = update.status;
            rcpt.last_error = update.last_error;
            rcpt.attempts = rcpt.attempts.saturating_add(1);
        }
        env.attempts = env.attempts.saturating_add(1);
        env.last_attempt_ms = Some(outcome.attempted_at_ms);
        env.next_attempt_ms = outcome.next_attempt_ms;
        env.leased_until_ms = None;
        if env.is_done() {
            self.remove(&old)?;
            Ok(Some(env))
        } else {
            self.put(Some(&old), &env)?;
            Ok(None)
        }
    }

    /// Applies `change` to one message; false if there is no such message.
    fn modify(
        &mut self,
        id: QueueId,
        change: impl FnOnce(&mut Envelope) -> bool,
    ) -> Result<bool, QueueError> {
        let Some(old) = self.load(id)? else {
            return Ok(false);
        };
        let mut env = old.clone();
        let changed = change(&mut env);
        if env != old {
            self.put(Some(&old), &env)?;
        }
        Ok(changed)
    }

    /// Applies `change` to every message `pred` accepts; returns the ids it changed.
    fn modify_where(
        &mut self,
        pred: &dyn Fn(&Envelope) -> bool,
        change: impl Fn(&mut Envelope) -> bool,
    ) -> Result<Vec<QueueId>, QueueError> {
        let mut changed = Vec::new();
        for old in self.load_all()? {
            if !pred(&old) {
                continue;
            }
            let mut env = old.clone();
            if change(&mut env) {
                changed.push(env.id);
            }
            if env != old {
                self.put(Some(&old), &env)?;
            }
        }
        Ok(changed)
    }

    /// Holds one message (replacing any earlier reason); false if there is no such message.
    pub(crate) fn hold(&mut self, id: QueueId, reason: String) -> Result<bool, QueueError> {
        self.modify(id, |env| {
            env.held = Some(reason);
            true
        })
    }

    /// Holds one message that its lease holder gives back unattempted,
    /// ending the lease: released, it is due at once, not when the lease
    /// would have run out. False if there is no such message.
    pub(crate) fn hold_leased(&mut self, id: QueueId, reason: String) -> Result<bool, QueueError> {
        self.modify(id, |env| {
            env.held = Some(reason);
            env.leased_until_ms = None;
            true
        })
    }

    /// Releases one message; true only if it was held.
    pub(crate) fn release(&mut self, id: QueueId, now_ms: u64) -> Result<bool, QueueError> {
        self.modify(id, |env| release_now(env, now_ms))
    }

    /// Holds every matching message not already held (those keep their first reason).
    pub(crate) fn hold_where(
        &mut self,
        reason: &str,
        pred: &dyn Fn(&Envelope) -> bool,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.modify_where(pred, |env| {
            if env.held.is_some() {
                return false;
            }
            env.held = Some(reason.to_owned());
            true
        })
    }

    /// Releases every matching held message.
    pub(crate) fn release_where(
        &mut self,
        pred: &dyn Fn(&Envelope) -> bool,
        now_ms: u64,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.modify_where(pred, |env| release_now(env, now_ms))
    }

    /// Deletes one message; false if there is no such message.
    pub(crate) fn delete(&mut self, id: QueueId) -> Result<bool, QueueError> {
        match self.load(id)? {
            Some(env) => {
                self.remove(&env)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Deletes every matching message.
    pub(crate) fn delete_where(
        &mut self,
        pred: &dyn Fn(&Envelope) -> bool,
    ) -> Result<Vec<QueueId>, QueueError> {
        let mut removed = Vec::new();
        for env in self.load_all()? {
            if pred(&env) {
                self.remove(&env)?;
                removed.push(env.id);
            }
        }
        Ok(removed)
    }

    /// Makes every matching message that is waiting (not held, not under a live lease) due at
    /// `now_ms`; returns their ids, those already due included.
    pub(crate) fn retry_where(
        &mut self,
        pred: &dyn Fn(&Envelope) -> bool,
        now_ms: u64,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.modify_where(pred, |env| {
            if env.held.is_some() || env.is_leased(now_ms) {
                return false;
            }
            env.next_attempt_ms = env.next_attempt_ms.min(now_ms);
            true
        })
    }

    /// Requeues every matching message not under a live lease: released if
    /// held, due at `now_ms`, its retry backoff started over (Postfix's
    /// `postsuper -r`: after an outage is fixed, mail that reached the
    /// longest backoff does not wait it out). Its lifetime still counts
    /// from arrival. Returns the ids it changed.
    pub(crate) fn requeue_where(
        &mut self,
        pred: &dyn Fn(&Envelope) -> bool,
        now_ms: u64,
    ) -> Result<Vec<QueueId>, QueueError> {
        self.modify_where(pred, |env| {
            if env.is_leased(now_ms) {
                return false;
            }
            env.held = None;
            env.next_attempt_ms = env.next_attempt_ms.min(now_ms);
            env.backoff_since = env.attempts;
            true
        })
    }

    /// Makes one message due at `now_ms`; false if there is no such message.
    pub(crate) fn retry(&mut self, id: QueueId, now_ms: u64) -> Result<bool, QueueError> {
        self.modify(id, |env| {
            env.next_attempt_ms = env.next_attempt_ms.min(now_ms);
            true
        })
    }

    /// Makes every waiting message (not held, not leased) due at `now_ms`.
    pub(crate) fn retry_all(&mut self, now_ms: u64) -> Result<usize, QueueError> {
        // Only messages due later can change, and the schedule finds exactly those.
        let mut later = Vec::new();
        for entry in self.schedule.range((now_ms.saturating_add(1), 0)..)? {
            let (key, _) = entry?;
            later.push(QueueId::from_key(key.value().1));
        }
        let mut count = 0;
        for id in later {
            let changed = self.modify(id, |env| {
                if env.held.is_some() || env.is_leased(now_ms) || env.next_attempt_ms <= now_ms {
                    return false;
                }
                env.next_attempt_ms = now_ms;
                true
            })?;
            if changed {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Ends a lease (the message is due again when its lease would not have been).
    fn end_lease(&mut self, old: &Envelope) -> Result<bool, QueueError> {
        if old.leased_until_ms.is_none() {
            return Ok(false);
        }
        let mut env = old.clone();
        env.leased_until_ms = None;
        self.put(Some(old), &env)?;
        Ok(true)
    }

    /// Recovery at open, in time proportional to the leases, not to the queue: ends every
    /// lease (this process holds the file exclusively, so their holders are gone). A file of
    /// an older format is migrated first. Everything else that a crash cannot cause but a bug
    /// or a damaged disk could (undecodable records, bodies without envelopes, messages missing
    /// from the schedule) is looked for by the background check (`check.rs`) while the
    /// gateway already serves.
    pub(crate) fn recover(&mut self, txn: &WriteTransaction) -> Result<Recovery, QueueError> {
        let mut report = Recovery::default();
        let mut meta = txn.open_table(META)?;
        report.format_found = meta.get("format")?.map_or(0, |v| v.value());
        if report.format_found < FORMAT {
            // Format 0 kept no `leases` table: find the leases in the envelopes, once.
            self.track_leases_of_format_0(&mut report)?;
            meta.insert("format", FORMAT)?;
            self.dirty = true;
        }
        let mut leased = Vec::new();
        for entry in self.leases.iter()? {
            leased.push(entry?.0.value());
        }
        for key in leased {
            self.dirty = true;
            match self.load(QueueId::from_key(key))? {
                Some(env) => {
                    if self.end_lease(&env)? {
                        report.leases_cleared += 1;
                    }
                }
                None => {
                    self.leases.remove(key)?;
                }
            }
        }
        Ok(report)
    }

    /// Migration from format 0: quarantines the envelopes that do not decode and enters every
    /// lease in `leases`, for [`WriteCtx::recover`] to end.
    fn track_leases_of_format_0(&mut self, report: &mut Recovery) -> Result<(), QueueError> {
        let mut bad = Vec::new();
        let mut leased = Vec::new();
        for entry in self.envelopes.iter()? {
            let (key, value) = entry?;
            match decode(key.value(), value.value()) {
                Ok(env) => {
                    if let Some(until) = env.leased_until_ms {
                        leased.push((key.value(), until));
                    }
                }
                Err(why) => bad.push((QueueId::from_key(key.value()), value.value().to_vec(), why)),
            }
        }
        for (id, raw, why) in bad {
            self.quarantine(id, &raw, &why)?;
            report.quarantined.push(id);
        }
        for (key, until) in leased {
            self.leases.insert(key, until)?;
        }
        Ok(())
    }

    /// Repairs what the background check found, after looking again in this transaction
    /// (the snapshot it read may be outdated); returns how many problems were real.
    pub(crate) fn repair(&mut self, problems: &[Problem]) -> Result<usize, QueueError> {
        let mut repaired = 0;
        for problem in problems {
            let done = match *problem {
                // Loading quarantines it if it still does not decode.
                Problem::Undecodable(id) => {
                    self.envelopes.get(id.key())?.is_some() && self.load(id)?.is_none()
                }
                Problem::Unscheduled(id) => match self.load(id)? {
                    Some(env) => match env.schedule_key() {
                        Some(key) if self.schedule.get(key)?.is_none() => {
                            tracing::error!(queue_id = %id,
                                "queued message missing from the schedule; scheduled again");
                            self.dirty = true;
                            self.wake = true;
                            self.schedule.insert(key, ())?;
                            true
                        }
                        _ => false,
                    },
                    None => false,
                },
                Problem::UntrackedLease(id) => match self.load(id)? {
                    Some(env)
                        if env.leased_until_ms.is_some()
                            && self.leases.get(id.key())?.is_none() =>
                    {
                        // Its holder is gone: the lease predates this open.
                        self.wake = true;
                        self.end_lease(&env)?
                    }
                    _ => false,
                },
                Problem::Orphan(key) => {
                    if self.envelopes.get(key)?.is_none() && self.bodies.remove(key)?.is_some() {
                        tracing::warn!(queue_id = %QueueId::from_key(key),
                            "body without envelope removed");
                        self.dirty = true;
                        true
                    } else {
                        false
                    }
                }
                Problem::Bodiless(id) => match self.load(id)? {
                    Some(env) if self.bodies.get(id.key())?.is_none() => {
                        let raw = encode(&env)?;
                        self.quarantine(id, &raw, "envelope without body")?;
                        if let Some(key) = env.schedule_key() {
                            self.schedule.remove(key)?;
                        }
                        true
                    }
                    _ => false,
                },
            };
            if done {
                repaired += 1;
            }
        }
        Ok(repaired)
    }
}

#[cfg(test)]
impl WriteCtx<'_> {
    /// Overwrites an envelope record with arbitrary bytes, to test damage handling.
    pub(crate) fn put_raw_for_test(&mut self, id: QueueId, raw: &[u8]) {
        self.dirty = true;
        self.envelopes.insert(id.key(), raw).unwrap();
    }
}

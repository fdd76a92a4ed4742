//! The shared database handle, reopened after a failed commit.
//!
//! After an I/O error redb poisons its handle: every later transaction fails until the file is
//! opened again. A gateway must not need a restart to accept mail once the fault is gone (an
//! EIO from a flaky disk, ENOSPC from a full one), so the writer reopens the file after every
//! failed batch. If that reopen fails too (the fault lasts), the slot stays closed and the next
//! user, reader or writer, tries again.
//!
//! Readers hold the read side of the lock for the whole of their transaction: redb read
//! transactions keep the file open, and a second open of the same file in one process fails,
//! so a reopen waits until no reader is inside.
//!
//! A commit that failed in its last fsync may still have reached the file. Messages enqueued by
//! a failed batch were refused (451), so every reopen first removes them, before any reader can
//! see them: the client retries, and the message must not also be delivered from here.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use redb::{Database, DatabaseError, Durability};

use crate::journal::Journal;
use crate::store::WriteCtx;
use crate::{QueueError, QueueId};

/// Opens (creating if needed) the queue's database with a page cache of `cache_bytes`.
pub(crate) fn open(path: &Path, cache_bytes: usize) -> Result<Database, DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

/// The one `Database` of a queue, behind a lock that allows swapping it.
pub(crate) struct DbSlot {
    path: PathBuf,
    cache_bytes: usize,
    db: RwLock<Option<Database>>,
    /// Messages of failed commits, removed at the next successful reopen.
    refused: Mutex<Vec<QueueId>>,
    /// The acceptance journal (`journal.rs`), None when turned off. Lock order: the
    /// database's lock first, then this one.
    journal: Mutex<Option<Journal>>,
    /// Messages brought back from the journal by reopens.
    pub(crate) restored: std::sync::atomic::AtomicU64,
}

/// A borrowed open database; keep it alive as long as any transaction begun from it.
pub(crate) struct DbRef<'a>(RwLockReadGuard<'a, Option<Database>>);

impl Deref for DbRef<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        // DbSlot::get hands out a DbRef only over Some.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("DbRef over a closed slot"))
    }
}

impl DbSlot {
    /// Wraps a database opened from `path`.
    pub(crate) fn new(
        path: &Path,
        db: Database,
        cache_bytes: usize,
        journal: Option<Journal>,
    ) -> DbSlot {
        DbSlot {
            path: path.to_path_buf(),
            cache_bytes,
            db: RwLock::new(Some(db)),
            refused: Mutex::new(Vec::new()),
            journal: Mutex::new(journal),
            restored: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The acceptance journal, for the writer (taken after [`DbSlot::get`]).
    pub(crate) fn journal(&self) -> MutexGuard<'_, Option<Journal>> {
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open database, reopening it first if a storage error closed it; a storage error
    /// while it cannot be reopened.
    pub(crate) fn get(&self) -> Result<DbRef<'_>, QueueError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return Ok(DbRef(guard));
        }
        drop(guard);
        if let Err(e) = self.reopen() {
            return Err(QueueError::Storage(format!(
                "queue database is closed after a storage error: {e}"
            )));
        }
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(QueueError::Storage(
                "queue database is closed after a storage error".into(),
            ));
        }
        Ok(DbRef(guard))
    }

    /// Records messages whose commit failed, to be removed at the reopen that follows.
    pub(crate) fn refuse(&self, ids: Vec<QueueId>) {
        if !ids.is_empty() {
            self.refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(ids);
        }
    }

    /// Closes the handle and opens the file again (redb repairs it if the failed commit left
    /// it needing so, and drops the relaxed commits since the last durable one), replays the
    /// acceptance journal (which holds every message those commits accepted), then removes
    /// the messages of failed commits. On failure the slot stays closed until the next attempt.
    pub(crate) fn reopen(&self) -> Result<(), QueueError> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        // Drop the poisoned handle first: the file can be open only once.
        drop(slot.take());
        let db = open(&self.path, self.cache_bytes).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => QueueError::Locked {
                path: self.path.clone(),
            },
            e => QueueError::Storage(format!("reopening {}: {e}", self.path.display())),
        })?;
        let mut journal = self.journal();
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| QueueError::Storage(e.to_string()))?;
        let replayed = match journal.as_ref() {
            Some(j) => Some(crate::store::replay_journal(&txn, j)?),
            None => None,
        };
        if !refused.is_empty() {
            let mut ctx = WriteCtx::open(&txn)?;
            for id in refused.iter() {
                if ctx.delete(*id)? {
                    tracing::warn!(queue_id = %id,
                        "removed a message whose commit failed (its sender got 451)");
                }
            }
        }
        if replayed.is_none() && refused.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        refused.clear();
        if let (Some(j), Some((back, generation))) = (journal.as_mut(), replayed) {
            j.checkpointed(generation);
            if back > 0 {
                self.restored
                    .fetch_add(back as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    messages = back,
                    "messages accepted since the last durable commit restored from the acceptance journal"
                );
            }
        }
        *slot = Some(db);
        Ok(())
    }
}

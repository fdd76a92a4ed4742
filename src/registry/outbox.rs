//! Fail-static writes: what this node decides on its own while the shared
//! store (PostgreSQL) cannot be reached. The decision takes effect here at
//! once (an automatic suspension is in this node's snapshot, so the sender
//! gets 451 and its mail is held), the write waits in the node's local
//! outbox ([`crate::store::local::outbox`]), and [`Registry::drain_outbox`]
//! replays it in order once the store answers. Replays are idempotent: a
//! suspension another node recorded meanwhile, an expiry of one already
//! ended, a claim already taken are not made twice. Staff changes are never
//! queued: they are refused while the store is down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{RETRIES, Registry, RegistryError, Snapshot};
use crate::model::domains::DomainStatus;
use crate::model::suspensions::Scope;
use crate::store::local::outbox::{PendingWrite, provisional_id};
use crate::store::{DomainWrite, Expect, LocalStore, StoreError};

/// The node's outbox of registry writes, as the registry holds it.
#[derive(Debug)]
pub struct Outbox {
    local: LocalStore,
    /// Woken on every new write, for the drain task.
    wake: Arc<tokio::sync::Notify>,
    /// Writes waiting (mirrors the table, for status without a read).
    pending: AtomicU64,
    /// Notice keys claimed here while the store was down: a notice goes out
    /// once from this node even though the store cannot say so.
    claimed: Mutex<HashSet<String>>,
}

impl Outbox {
    /// The outbox in `local`, with what it already holds (an earlier run's).
    pub fn new(local: LocalStore) -> Result<Outbox, StoreError> {
        let pending = local.pending_count()?;
        crate::metrics::set_store_pending_writes(pending);
        Ok(Outbox {
            local,
            wake: Arc::new(tokio::sync::Notify::new()),
            pending: AtomicU64::new(pending),
            claimed: Mutex::new(HashSet::new()),
        })
    }

    fn set_pending(&self, n: u64) {
        self.pending.store(n, Ordering::Relaxed);
        crate::metrics::set_store_pending_writes(n);
    }
}

/// Queues the notices kept in the outbox (the notifier, a floor above).
#[async_trait::async_trait]
pub trait KeptNotices: Send + Sync {
    /// Numbers and queues one kept notice; [`StoreError::Unavailable`]
    /// when the store is still out of reach (it stays kept).
    async fn queue(&self, notice: &serde_json::Value) -> Result<(), StoreError>;
}

/// True when `e` says the store could not be reached (not a conflict, not
/// a constraint): the only failure that sends a write to the outbox.
pub fn unreachable(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Store(StoreError::Unavailable(_)))
}

impl Registry {
    /// Writes waiting in this node's outbox for the shared store.
    pub fn pending_writes(&self) -> u64 {
        self.outbox
            .as_ref()
            .map_or(0, |o| o.pending.load(Ordering::Relaxed))
    }

    /// Notified whenever a write is queued (none without an outbox).
    pub fn outbox_wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.outbox.as_ref().map(|o| o.wake.clone())
    }

    /// Keeps `w` for the shared store, which `why` could not reach; returns
    /// its number. Without an outbox (the embedded store) the error stands.
    pub(crate) async fn defer(&self, w: PendingWrite, why: String) -> Result<u64, RegistryError> {
        let Some(o) = &self.outbox else {
            return Err(StoreError::Unavailable(why).into());
        };
        let local = o.local.clone();
        let kind = w.kind();
        let seq = tokio::task::spawn_blocking(move || local.push_pending(&w))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        let n = o.pending.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::set_store_pending_writes(n);
        o.wake.notify_one();
        tracing::warn!(write = kind, seq, pending = n, error = %why, "shared store unreachable: write kept in the local outbox until it answers");
        Ok(seq)
    }

    /// Claims notice `key` while the store is down: true the first time on
    /// this node (the claim is queued for the store), false after.
    pub(crate) async fn claim_while_down(
        &self,
        key: &str,
        now_ms: u64,
        why: String,
    ) -> Result<bool, RegistryError> {
        let Some(o) = &self.outbox else {
            return Err(StoreError::Unavailable(why).into());
        };
        if !o
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string())
        {
            return Ok(false);
        }
        self.defer(
            PendingWrite::Claim {
                key: key.to_string(),
                at_ms: now_ms,
            },
            why,
        )
        .await?;
        Ok(true)
    }

    /// Publishes the current snapshot with write `seq` applied (the
    /// decision in force here before the store has it).
    pub(crate) fn publish_pending(&self, seq: u64, w: &PendingWrite) {
        let mut snap = Snapshot::clone(&self.snapshot());
        apply(&mut snap, seq, w);
        *self.snap.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
    }

    /// Applies every waiting write to a snapshot freshly read from the
    /// store, so that a reload does not drop a decision not yet written.
    pub(crate) fn overlay(&self, snap: &mut Snapshot) {
        let Some(o) = &self.outbox else { return };
        if o.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        match o.local.pending_writes() {
            Ok(all) => {
                for (seq, w) in &all {
                    apply(snap, *seq, w);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the local outbox"),
        }
    }

    /// Writes what waits in the outbox to the store, oldest first, until it
    /// is empty (returns how many were written) or the store is still out
    /// of reach (the error; what is left stays for the next try). Notices
    /// go to `notice`, whose own unreachable store stops the drain too.
    pub async fn drain_outbox(&self, notices: &dyn KeptNotices) -> Result<usize, StoreError> {
        let Some(o) = &self.outbox else {
            return Ok(0);
        };
        if o.pending.load(Ordering::Relaxed) == 0 {
            return Ok(0);
        }
        // Between this node's changes, like a reload.
        let _one_at_a_time = self.lock().await;
        let mut done = 0;
        let mut result = Ok(());
        // One at a time from the table: a replay may rewrite the ones after
        // it (the store's id for a provisional one).
        while let Some((seq, w)) = o.local.first_pending()? {
            let remap = match &w {
                PendingWrite::Notice { notice } => notices.queue(notice).await.map(|()| None),
                w => self.replay(seq, w).await,
            };
            let remap = match remap {
                Ok(r) => r,
                Err(StoreError::Unavailable(m)) => {
                    result = Err(StoreError::Unavailable(m));
                    break;
                }
                Err(e) => {
                    // Never retried: it would block every write after it.
                    tracing::error!(seq, write = %serde_json::to_string(&w).unwrap_or_default(), error = %e, "write from the local outbox refused by the shared store; dropped");
                    None
                }
            };
            let local = o.local.clone();
            tokio::task::spawn_blocking(move || local.finish_pending(seq, remap))
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))??;
            done += 1;
            let left = o.pending.load(Ordering::Relaxed).saturating_sub(1);
            o.set_pending(left);
        }
        if done > 0 {
            o.set_pending(o.local.pending_count()?);
            if o.pending.load(Ordering::Relaxed) == 0 {
                o.claimed.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
            // The real ids replace the provisional ones.
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "registry not reloaded after the outbox was written");
            }
        }
        result.map(|()| done)
    }

    /// Writes one waiting write; returns the provisional id it replaces.
    async fn replay(&self, seq: u64, w: &PendingWrite) -> Result<Option<(u64, u64)>, StoreError> {
        match w {
            PendingWrite::StartSuspension { rec } => {
                let prov = provisional_id(seq);
                let mut rec = rec.clone();
                rec.id = 0;
                let id = match &rec.scope {
                    Scope::Sender(_) => match self.store.start_suspension(&rec, None).await {
                        Ok(r) => Some(r.id),
                        // Suspended meanwhile (another node): the same decision.
                        Err(StoreError::Conflict(_)) => self.active_id(&rec.scope).await?,
                        Err(e) => return Err(e),
                    },
                    Scope::Domain(d) => {
                        let mut tries = 0;
                        loop {
                            let Some(cur) = self.store.get_domain(d).await? else {
                                break None;
                            };
                            if cur.status != DomainStatus::Connected {
                                break self.active_id(&rec.scope).await?;
                            }
                            let expect = Expect::unchanged(&cur);
                            let dw = DomainWrite {
                                record: Self::with_status(
                                    cur,
                                    DomainStatus::Suspended,
                                    Some(rec.reason.clone()),
                                ),
                                expect,
                            };
                            match self.store.start_suspension(&rec, Some(&dw)).await {
                                Ok(r) => break Some(r.id),
                                Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                                Err(StoreError::Conflict(_)) => {
                                    break self.active_id(&rec.scope).await?;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                };
                Ok(id.map(|id| (prov, id)))
            }
            PendingWrite::EndSuspension { scope, how } => {
                match scope {
                    Scope::Sender(_) => match self.store.end_suspension(scope, how, None).await {
                        // Ended already (staff, another node): nothing to do.
                        Ok(_) | Err(StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    },
                    Scope::Domain(d) => {
                        let mut tries = 0;
                        loop {
                            let Some(cur) = self.store.get_domain(d).await? else {
                                break;
                            };
                            if cur.status != DomainStatus::Suspended {
                                break;
                            }
                            let expect = Expect::unchanged(&cur);
                            let dw = DomainWrite {
                                record: Self::with_status(cur, DomainStatus::Connected, None),
                                expect,
                            };
                            match self.store.end_suspension(scope, how, Some(&dw)).await {
                                Ok(_) | Err(StoreError::NotFound(_)) => break,
                                Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
                Ok(None)
            }
            PendingWrite::Audit { rec } => self.store.append_audit(rec).await.map(|_| None),
            PendingWrite::Claim { key, at_ms } => {
                self.store.claim_notice(key, *at_ms).await.map(|_| None)
            }
            PendingWrite::Listing { rec } => self.store.record_listing(rec).await.map(|_| None),
            PendingWrite::EndListing { address, list, at } => {
                match self.store.end_listing(*address, list, *at).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            PendingWrite::Notice { .. } => Ok(None),
        }
    }

    /// The id of the active suspension of `scope` on record, if any.
    async fn active_id(&self, scope: &Scope) -> Result<Option<u64>, StoreError> {
        Ok(self
            .store
            .list_suspensions()
            .await?
            .into_iter()
            .rev()
            .find(|s| s.is_active() && &s.scope == scope)
            .map(|s| s.id))
    }
}

/// Write `seq` as this node's snapshot shows it before the store has it.
fn apply(snap: &mut Snapshot, seq: u64, w: &PendingWrite) {
    match w {
        PendingWrite::StartSuspension { rec } => {
            if snap.suspensions.contains_key(&rec.scope) {
                return;
            }
            let mut rec = rec.clone();
            rec.id = provisional_id(seq);
            if let Scope::Domain(d) = &rec.scope
                && let Some(cur) = snap.domains.get(d)
            {
                if cur.status != DomainStatus::Connected {
                    return;
                }
                let mut dom = (**cur).clone();
                dom.status = DomainStatus::Suspended;
                dom.status_reason = Some(rec.reason.clone());
                dom.status_since = rec.started_at;
                snap.domains.insert(d.clone(), Arc::new(dom));
            }
            snap.suspensions.insert(rec.scope.clone(), Arc::new(rec));
        }
        PendingWrite::EndSuspension { scope, how } => {
            snap.suspensions.remove(scope);
            if let Scope::Domain(d) = scope
                && let Some(cur) = snap.domains.get(d)
                && cur.status == DomainStatus::Suspended
            {
                let mut dom = (**cur).clone();
                dom.status = DomainStatus::Connected;
                dom.status_reason = None;
                dom.status_since = how.at;
                snap.domains.insert(d.clone(), Arc::new(dom));
            }
        }
        _ => {}
    }
}

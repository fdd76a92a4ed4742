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

    /// True when the outbox already holds `w` as it is (a notice kept by an
    /// earlier round that retries what it could not finish).
    pub(crate) fn is_pending(&self, w: &PendingWrite) -> bool {
        let Some(o) = &self.outbox else { return false };
        if o.pending.load(Ordering::Relaxed) == 0 {
            return false;
        }
        o.local
            .pending_writes()
            .map(|all| all.iter().any(|(_, p)| p == w))
            .unwrap_or(false)
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
            let w = match w {
                Ok(w) => w,
                Err(e) => {
                    // Written by another build, or damaged: never replayable.
                    tracing::error!(seq, error = %e, "unreadable write in the local outbox; dropped");
                    let local = o.local.clone();
                    tokio::task::spawn_blocking(move || local.finish_pending(seq, None))
                        .await
                        .map_err(|e| StoreError::Backend(e.to_string()))??;
                    continue;
                }
            };
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
        o.set_pending(o.local.pending_count()?);
        if done > 0 {
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
            PendingWrite::Disconnect { domain, reason, at } => {
                self.replay_disconnect(domain, reason, *at).await?;
                Ok(None)
            }
            PendingWrite::Audit { rec } => self.store.append_audit(rec).await.map(|_| None),
            PendingWrite::Refused { rec } => {
                let real = self.store.append_refused(rec).await?;
                Ok(Some((provisional_id(seq), real)))
            }
            PendingWrite::RefusedCounts { updates } => {
                // One not yet renumbered was never written: nothing to count on.
                let known: Vec<_> = updates
                    .iter()
                    .filter(|u| !crate::store::local::outbox::is_provisional(u.seq))
                    .cloned()
                    .collect();
                self.store.update_refused(&known).await.map(|()| None)
            }
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

    /// A disconnection kept while the store was down, written as
    /// [`Registry::disconnect_domain`] does; nothing when the domain is
    /// disconnected already (or gone).
    async fn replay_disconnect(
        &self,
        name: &crate::domain::Domain,
        reason: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let scope = Scope::Domain(name.clone());
        let mut tries = 0;
        loop {
            let Some(cur) = self.store.get_domain(name).await? else {
                return Ok(());
            };
            let was = cur.status;
            if was == DomainStatus::Disconnected {
                return Ok(());
            }
            let expect = Expect::unchanged(&cur);
            let mut record =
                Self::with_status(cur, DomainStatus::Disconnected, Some(reason.to_string()));
            record.disconnect_on = None;
            let w = DomainWrite { record, expect };
            let written = if was == DomainStatus::Suspended {
                let how = crate::model::suspensions::Restoration {
                    by: "disconnect".into(),
                    at,
                    reason: Some(reason.to_string()),
                    held_mail: "disconnected".into(),
                };
                match self.store.end_suspension(&scope, &how, Some(&w)).await {
                    // Suspended without an active record: the domain write alone.
                    Err(StoreError::NotFound(_)) => self.store.put_domain(&w).await,
                    r => r.map(|_| ()),
                }
            } else {
                self.store.put_domain(&w).await
            };
            match written {
                Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                r => return r,
            }
        }
    }

    /// A disconnection agreed for a date, taking effect now: as
    /// [`Registry::disconnect_domain`], but kept in the outbox (in force
    /// here at once) when the store is out of reach.
    pub async fn disconnect_domain_as_agreed(
        &self,
        name: &crate::domain::Domain,
        reason: &str,
    ) -> Result<crate::model::domains::DomainRecord, RegistryError> {
        match self.disconnect_domain(name, reason).await {
            Err(RegistryError::Store(StoreError::Unavailable(why))) => {
                let _g = self.lock().await;
                let Some(cur) = self.get(name) else {
                    return Err(RegistryError::NotFound(format!("domain {name}")));
                };
                if cur.status == DomainStatus::Disconnected {
                    return Err(RegistryError::State(format!(
                        "domain {name} is already disconnected"
                    )));
                }
                let w = PendingWrite::Disconnect {
                    domain: name.clone(),
                    reason: reason.to_string(),
                    at: chrono::Utc::now(),
                };
                let seq = self.defer(w.clone(), why).await?;
                self.publish_pending(seq, &w);
                self.get(name)
                    .map(|d| (*d).clone())
                    .ok_or_else(|| RegistryError::NotFound(format!("domain {name}")))
            }
            r => r,
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
        PendingWrite::Disconnect { domain, reason, at } => {
            snap.suspensions.remove(&Scope::Domain(domain.clone()));
            if let Some(cur) = snap.domains.get(domain)
                && cur.status != DomainStatus::Disconnected
            {
                let mut dom = (**cur).clone();
                dom.status = DomainStatus::Disconnected;
                dom.status_reason = Some(reason.clone());
                dom.status_since = *at;
                dom.disconnect_on = None;
                snap.domains.insert(domain.clone(), Arc::new(dom));
            }
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicBool;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::applications::{ApplicationRecord, ApplicationStatus};
    use crate::model::audit::{AUTO, AuditFilter, AuditRecord, AuditSize, RefusedUpdate};
    use crate::model::changes::{ChangeRequest, ChangeStatus, DomainVersion};
    use crate::model::domains::DomainRecord;
    use crate::model::listings::GatewayListing;
    use crate::model::servers::ServerSuspension;
    use crate::model::sightings::UnregisteredServer;
    use crate::model::suspensions::{Restoration, SuspensionRecord};
    use crate::registry::{RestoreRequest, SuspendRequest};
    use crate::store::{RedbRegistry, RegistryStore};

    /// The embedded store, made out of reach at will (as PostgreSQL is when
    /// it stops).
    #[derive(Debug)]
    pub(crate) struct Flaky {
        pub(crate) inner: RedbRegistry,
        pub(crate) down: AtomicBool,
    }

    impl Flaky {
        /// Over `redb`, reachable.
        pub(crate) fn new(inner: RedbRegistry) -> Flaky {
            Flaky {
                inner,
                down: AtomicBool::new(false),
            }
        }

        fn up(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable(
                    "PostgreSQL: connection refused".into(),
                ));
            }
            Ok(())
        }
    }

    macro_rules! flaky {
        ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
            #[async_trait::async_trait]
            impl RegistryStore for Flaky {
                $( async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    self.up()?;
                    self.inner.$name($($arg),*).await
                } )*
            }
        };
    }

    flaky! {
        fn list_domains(&self) -> Vec<DomainRecord>;
        fn get_domain(&self, name: &crate::domain::Domain) -> Option<DomainRecord>;
        fn put_domain(&self, w: &DomainWrite) -> ();
        fn list_suspensions(&self) -> Vec<SuspensionRecord>;
        fn get_suspension(&self, id: u64) -> Option<SuspensionRecord>;
        fn start_suspension(&self, rec: &SuspensionRecord, domain: Option<&DomainWrite>) -> SuspensionRecord;
        fn end_suspension(&self, scope: &Scope, how: &Restoration, domain: Option<&DomainWrite>) -> SuspensionRecord;
        fn list_applications(&self) -> Vec<ApplicationRecord>;
        fn get_application(&self, id: u64) -> Option<ApplicationRecord>;
        fn insert_application(&self, rec: &ApplicationRecord) -> ApplicationRecord;
        fn update_application(&self, rec: &ApplicationRecord, expect: ApplicationStatus) -> ();
        fn append_audit(&self, rec: &AuditRecord) -> u64;
        fn append_refused(&self, rec: &AuditRecord) -> u64;
        fn update_refused(&self, updates: &[RefusedUpdate]) -> ();
        fn prune_refused_audit(&self, before: DateTime<Utc>) -> u64;
        fn audit_size(&self) -> AuditSize;
        fn list_audit(&self, limit: usize) -> Vec<AuditRecord>;
        fn query_audit(&self, filter: &AuditFilter) -> Vec<AuditRecord>;
        fn prune_audit(&self, before: DateTime<Utc>) -> u64;
        fn claim_notice(&self, key: &str, now_ms: u64) -> bool;
        fn prune_notices(&self, before_ms: u64) -> usize;
        fn next_notice_number(&self, year: i32) -> u64;
        fn put_domain_versioned(&self, w: &DomainWrite, previous: &DomainVersion) -> u64;
        fn list_domain_versions(&self, name: &crate::domain::Domain) -> Vec<DomainVersion>;
        fn insert_change_request(&self, rec: &ChangeRequest) -> ChangeRequest;
        fn update_change_request(&self, rec: &ChangeRequest, expect: ChangeStatus) -> ();
        fn get_change_request(&self, id: u64) -> Option<ChangeRequest>;
        fn list_change_requests(&self) -> Vec<ChangeRequest>;
        fn record_unregistered(&self, batch: &[UnregisteredServer]) -> Vec<UnregisteredServer>;
        fn list_unregistered(&self, domain: &crate::domain::Domain) -> Vec<UnregisteredServer>;
        fn start_server_suspension(&self, rec: &ServerSuspension) -> ServerSuspension;
        fn end_server_suspension(&self, address: std::net::IpAddr, how: &Restoration) -> ServerSuspension;
        fn list_server_suspensions(&self) -> Vec<ServerSuspension>;
        fn record_listing(&self, rec: &GatewayListing) -> (GatewayListing, bool);
        fn end_listing(&self, address: std::net::IpAddr, list: &str, at: DateTime<Utc>) -> GatewayListing;
        fn list_listings(&self) -> Vec<GatewayListing>;
    }

    /// No notices in these tests.
    pub(crate) struct NoNotices;

    #[async_trait::async_trait]
    impl KeptNotices for NoNotices {
        async fn queue(&self, _: &serde_json::Value) -> Result<(), StoreError> {
            Ok(())
        }
    }

    const SENDER: &str = "clerk@agency.example.kz";

    async fn setup() -> (tempfile::TempDir, Arc<Flaky>, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let (local, redb) = crate::store::open(dir.path()).unwrap();
        let store = Arc::new(Flaky {
            inner: redb,
            down: AtomicBool::new(false),
        });
        let r = Registry::open_with_outbox(store.clone(), local)
            .await
            .unwrap();
        r.add_domain(crate::registry::NewDomain {
            name: crate::domain::Domain::parse("agency.example.kz").unwrap(),
            owner: "Agency".into(),
            servers: vec!["192.0.2.10/32".parse().unwrap()],
            contacts: vec![crate::registry::parse_contact("IT <it@agency.example.kz>").unwrap()],
            inbound: None,
            shared_servers: false,
        })
        .await
        .unwrap();
        (dir, store, r)
    }

    fn auto(reason: &str) -> SuspendRequest {
        SuspendRequest {
            actor: AUTO.into(),
            rule: "novelty".into(),
            reason: reason.into(),
            evidence: serde_json::Value::Null,
            expires_at: None,
        }
    }

    fn sender() -> Scope {
        Scope::Sender(SENDER.into())
    }

    #[tokio::test]
    async fn an_automatic_suspension_while_down_is_in_force_at_once_and_written_when_back() {
        let (_d, store, r) = setup().await;
        store.down.store(true, Ordering::SeqCst);
        let rec = r.suspend_sender(SENDER, auto("flood")).await.unwrap();
        assert!(crate::store::local::outbox::is_provisional(rec.id));
        assert_eq!(r.snapshot().suspension(&sender()).unwrap().id, rec.id);
        // Its audit record names the provisional id.
        let mut audit = AuditRecord::auto(Utc::now(), "sender.suspend", SENDER, "flood");
        audit.after = Some(r.scope_state(&sender()));
        r.audit(audit).await;
        assert_eq!(r.pending_writes(), 2);
        // A reload that fails keeps it; still down, the drain keeps all.
        assert!(r.refresh().await.is_err());
        assert!(r.snapshot().suspension(&sender()).is_some());
        assert!(matches!(
            r.drain_outbox(&NoNotices).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(r.pending_writes(), 2);
        // Staff changes are refused meanwhile.
        assert!(matches!(
            r.suspend_sender(
                "other@agency.example.kz",
                SuspendRequest::manual("root", "x")
            )
            .await,
            Err(RegistryError::Store(StoreError::Unavailable(_)))
        ));

        store.down.store(false, Ordering::SeqCst);
        assert_eq!(r.drain_outbox(&NoNotices).await.unwrap(), 2);
        assert_eq!(r.pending_writes(), 0);
        let stored = store.inner.list_suspensions().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!crate::store::local::outbox::is_provisional(stored[0].id));
        // The snapshot has the store's id now, the audit record too.
        assert_eq!(r.snapshot().suspension(&sender()).unwrap().id, stored[0].id);
        let audit = store.inner.list_audit(10).await.unwrap();
        assert_eq!(audit[0].after.as_ref().unwrap()["suspension"], stored[0].id);
    }

    #[tokio::test]
    async fn a_reload_keeps_a_pending_decision_and_replays_do_not_duplicate() {
        let (_d, store, r) = setup().await;
        store.down.store(true, Ordering::SeqCst);
        r.suspend_sender(SENDER, auto("flood")).await.unwrap();
        store.down.store(false, Ordering::SeqCst);
        // A reload from a store that lacks it does not drop this node's
        // pending decision.
        r.refresh().await.unwrap();
        let pending = r.snapshot().suspension(&sender()).unwrap().id;
        assert!(crate::store::local::outbox::is_provisional(pending));
        // Meanwhile another node suspended the sender too: the replay finds
        // it and makes no second one.
        let other = SuspendRequest::manual("other-node", "seen there").into_record(sender());
        store.inner.start_suspension(&other, None).await.unwrap();
        assert_eq!(r.drain_outbox(&NoNotices).await.unwrap(), 1);
        let stored = store.inner.list_suspensions().await.unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored[0].actor, "other-node");
    }

    #[tokio::test]
    async fn an_expiry_while_down_ends_the_suspension_started_while_down() {
        let (_d, store, r) = setup().await;
        let domain = crate::domain::Domain::parse("agency.example.kz").unwrap();
        store.down.store(true, Ordering::SeqCst);
        r.suspend_sender(SENDER, auto("flood")).await.unwrap();
        r.suspend_domain(&domain, auto("senders")).await.unwrap();
        assert_eq!(
            r.get(&domain).unwrap().status,
            DomainStatus::Suspended,
            "in force here"
        );
        let expired = |_: ()| RestoreRequest {
            actor: AUTO.into(),
            reason: Some("the automatic suspension expired".into()),
            held_mail: "released".into(),
        };
        let ended = r.restore_sender(SENDER, expired(())).await.unwrap();
        assert!(ended.restored.is_some());
        r.restore_domain(&domain, expired(())).await.unwrap();
        assert!(r.snapshot().suspension(&sender()).is_none());
        assert_eq!(r.get(&domain).unwrap().status, DomainStatus::Connected);
        // Staff may not restore while down.
        assert!(
            r.restore_sender(
                SENDER,
                RestoreRequest {
                    actor: "root".into(),
                    reason: None,
                    held_mail: "released".into()
                }
            )
            .await
            .is_err()
        );

        store.down.store(false, Ordering::SeqCst);
        assert_eq!(r.drain_outbox(&NoNotices).await.unwrap(), 4);
        let stored = store.inner.list_suspensions().await.unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|s| !s.is_active()));
        let d = store.inner.get_domain(&domain).await.unwrap().unwrap();
        assert_eq!(d.status, DomainStatus::Connected);
        // Replaying again (a crash before the outbox was crossed off) changes nothing.
        let again = PendingWrite::EndSuspension {
            scope: sender(),
            how: stored[0].restored.clone().unwrap(),
        };
        assert_eq!(r.replay(99, &again).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_disconnection_agreed_for_today_takes_effect_while_down_and_is_written_once() {
        let (_d, store, r) = setup().await;
        let domain = crate::domain::Domain::parse("agency.example.kz").unwrap();
        store.down.store(true, Ordering::SeqCst);
        r.suspend_domain(&domain, auto("flood")).await.unwrap();
        let rec = r
            .disconnect_domain_as_agreed(&domain, "agreed for today")
            .await
            .unwrap();
        assert_eq!(rec.status, DomainStatus::Disconnected);
        assert!(
            r.snapshot()
                .suspension(&Scope::Domain(domain.clone()))
                .is_none()
        );
        // Not twice (the next housekeeping round).
        assert!(
            r.disconnect_domain_as_agreed(&domain, "again")
                .await
                .is_err()
        );
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(r.drain_outbox(&NoNotices).await.unwrap(), 2);
        let d = store.inner.get_domain(&domain).await.unwrap().unwrap();
        assert_eq!(d.status, DomainStatus::Disconnected);
        let s = store.inner.list_suspensions().await.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].restored.as_ref().unwrap().held_mail, "disconnected");
        assert_eq!(r.get(&domain).unwrap().status, DomainStatus::Disconnected);
    }

    #[tokio::test]
    async fn a_kept_notice_is_known_as_pending_so_a_retrying_round_keeps_one_copy() {
        let (_d, store, r) = setup().await;
        store.down.store(true, Ordering::SeqCst);
        let notice = |n: u32| PendingWrite::Notice {
            notice: serde_json::json!({"to": ["it@agency.example.kz"], "name": "reconfirm_reminder", "n": n}),
        };
        assert!(!r.is_pending(&notice(1)));
        r.defer(notice(1), "down".into()).await.unwrap();
        assert!(r.is_pending(&notice(1)));
        assert!(!r.is_pending(&notice(2)));
    }

    #[tokio::test]
    async fn an_unreadable_write_is_set_aside_not_retried_forever() {
        let dir = tempfile::tempdir().unwrap();
        let (local, redb) = crate::store::open(dir.path()).unwrap();
        local
            .push_pending_raw(br#"{"write":"from_a_newer_build"}"#)
            .unwrap();
        let claim = PendingWrite::Claim {
            key: "k".into(),
            at_ms: 1,
        };
        local.push_pending(&claim).unwrap();
        let r = Registry::open_with_outbox(Arc::new(redb), local.clone())
            .await
            .unwrap();
        assert_eq!(r.pending_writes(), 2);
        assert_eq!(r.drain_outbox(&NoNotices).await.unwrap(), 1);
        assert_eq!(r.pending_writes(), 0);
    }

    #[tokio::test]
    async fn claims_while_down_are_once_per_node_and_reach_the_store() {
        let (_d, store, r) = setup().await;
        store.down.store(true, Ordering::SeqCst);
        assert!(r.claim_notice("warn|x|day", 1).await.unwrap());
        assert!(!r.claim_notice("warn|x|day", 2).await.unwrap());
        store.down.store(false, Ordering::SeqCst);
        r.drain_outbox(&NoNotices).await.unwrap();
        // Another node asking now finds it taken.
        assert!(!store.inner.claim_notice("warn|x|day", 3).await.unwrap());
    }
}

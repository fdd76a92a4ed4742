//! Domain lifecycle: registration, suspension, restoration, disconnection.
//!
//! The registry keeps an in-memory snapshot of every domain and active
//! suspension so that the SMTP policy answers MAIL and RCPT without touching
//! the disk; every change is written to the store first, then published.

pub mod applications;
// Moved to the ground floor (config builds its defaults from it).
pub use crate::calendar;
pub mod changes;
pub mod checks;
mod contact;
pub mod copy;
pub mod follow;
pub mod listings;
pub mod outbox;
pub mod reconfirm;
pub mod reports;
pub mod schedule;
pub mod servers;
pub mod sightings;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::config::HostPort;
use crate::domain::Domain;
use crate::model::applications::ApplicantCategory;
use crate::model::audit::AUTO;
use crate::model::domains::{
    Contact, DirectRegistration, DomainLimits, DomainRecord, DomainStatus, SenderLimits,
};
use crate::model::suspensions::{Restoration, Scope, SuspensionRecord};
use crate::store::local::outbox::{PendingWrite, provisional_id};
use crate::store::{DomainWrite, Expect, RegistryStore, StoreError};

pub use contact::parse_contact;

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such domain (or sender suspension).
    #[error("{0} is not registered")]
    NotFound(String),
    /// Already registered.
    #[error("domain {0} is already registered")]
    Exists(Domain),
    /// Server ranges overlap another domain's.
    #[error(
        "server range {range} overlaps {other_range} of domain {other}; to share servers, register both domains with shared servers allowed (--shared-servers)"
    )]
    Overlap {
        /// The new range.
        range: IpNet,
        /// The domain that has it.
        other: Domain,
        /// Its range.
        other_range: IpNet,
    },
    /// The change does not fit the domain's status.
    #[error("{0}")]
    State(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What staff give to register a domain.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct NewDomain {
    /// The domain.
    pub name: Domain,
    /// Owner organization.
    #[serde(default)]
    pub owner: String,
    /// Mail-server IPs or CIDRs.
    #[serde(deserialize_with = "servers_de")]
    pub servers: Vec<IpNet>,
    /// Technical contacts.
    pub contacts: Vec<Contact>,
    /// Inbound next hop; default the first server, port 25.
    #[serde(default)]
    pub inbound: Option<HostPort>,
    /// Allow server ranges shared with other domains that allow it too.
    #[serde(default)]
    pub shared_servers: bool,
}

/// An immutable view of the registry, swapped whole on every change.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    domains: HashMap<Domain, Arc<DomainRecord>>,
    suspensions: HashMap<Scope, Arc<SuspensionRecord>>,
    /// Active suspensions of server addresses.
    servers: HashMap<std::net::IpAddr, Arc<crate::model::servers::ServerSuspension>>,
}

impl Snapshot {
    /// A registered domain.
    pub fn domain(&self, name: &Domain) -> Option<&Arc<DomainRecord>> {
        self.domains.get(name)
    }

    /// The active suspension of a scope.
    pub fn suspension(&self, scope: &Scope) -> Option<&Arc<SuspensionRecord>> {
        self.suspensions.get(scope)
    }

    /// The active suspension of a server address.
    pub fn server_suspension(
        &self,
        ip: &std::net::IpAddr,
    ) -> Option<&Arc<crate::model::servers::ServerSuspension>> {
        self.servers.get(ip)
    }

    /// Every active suspension.
    pub fn active_suspensions(&self) -> impl Iterator<Item = &Arc<SuspensionRecord>> {
        self.suspensions.values()
    }

    /// Number of registered domains.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// True when no domain is registered.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

/// The domain registry.
pub struct Registry {
    store: Arc<dyn RegistryStore>,
    snap: RwLock<Arc<Snapshot>>,
    /// Serializes this node's changes, so that its snapshots are published
    /// in order (other nodes' writes are caught by the store's conditions).
    change: tokio::sync::Mutex<()>,
    /// Unregistered servers noted by the SMTP path, not yet written.
    sightings: sightings::SightingBuffer,
    /// Automatic writes kept while a shared store is out of reach (none
    /// for the embedded store, which is never out of reach).
    outbox: Option<outbox::Outbox>,
    /// The local copy of the last registry read from a shared store (with
    /// the outbox: only a shared store can be out of reach at a start).
    copy: Option<copy::LocalCopy>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn check_text(field: &str, s: &str, max: usize) -> Result<(), RegistryError> {
    if s.len() > max || s.chars().any(|c| c.is_control()) {
        return Err(RegistryError::Invalid(format!(
            "{field} must be at most {max} characters without control characters"
        )));
    }
    Ok(())
}

/// How often a change read from the store is tried again when another
/// writer changed the record between the read and the write.
const RETRIES: usize = 3;

impl Registry {
    /// Loads every domain and active suspension from the store.
    pub async fn open(store: Arc<dyn RegistryStore>) -> Result<Registry, RegistryError> {
        Self::open_inner(store, None).await
    }

    /// Loads the registry from a shared store, keeping this node's
    /// automatic writes in `local`'s outbox while the store is out of reach
    /// (and the ones an earlier run left there in force until written).
    pub async fn open_with_outbox(
        store: Arc<dyn RegistryStore>,
        local: crate::store::LocalStore,
    ) -> Result<Registry, RegistryError> {
        let r = Self::build(store, outbox::Outbox::new(local.clone())?, local);
        r.reload().await?;
        Ok(r)
    }

    async fn open_inner(
        store: Arc<dyn RegistryStore>,
        outbox: Option<outbox::Outbox>,
    ) -> Result<Registry, RegistryError> {
        let r = Registry {
            store,
            snap: RwLock::new(Arc::new(Snapshot::default())),
            change: tokio::sync::Mutex::new(()),
            sightings: Default::default(),
            outbox,
            copy: None,
        };
        r.reload().await?;
        Ok(r)
    }

    /// A registry over a shared store with an empty snapshot, keeping its
    /// outbox and its local copy in `local`.
    fn build(
        store: Arc<dyn RegistryStore>,
        outbox: outbox::Outbox,
        local: crate::store::LocalStore,
    ) -> Registry {
        Registry {
            store,
            snap: RwLock::new(Arc::new(Snapshot::default())),
            change: tokio::sync::Mutex::new(()),
            sightings: Default::default(),
            outbox: Some(outbox),
            copy: Some(copy::LocalCopy::new(local)),
        }
    }

    /// Makes `snap` the current view.
    fn publish(&self, snap: Snapshot) {
        *self.snap.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
    }

    /// Rebuilds the snapshot from the store (and, with a shared store,
    /// saves it as the local copy when it changed).
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let domains = self.store.list_domains().await?;
        let suspensions: Vec<SuspensionRecord> = self
            .store
            .list_suspensions()
            .await?
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        let servers: Vec<_> = self
            .store
            .list_server_suspensions()
            .await?
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        let content = copy::Content::new(domains, suspensions, servers);
        let mut snap = content.snapshot();
        self.overlay(&mut snap);
        self.publish(snap);
        if let Some(c) = &self.copy {
            c.save(&content).await;
        }
        Ok(())
    }

    /// Rebuilds the snapshot from the store between this node's own
    /// changes (never in the middle of one, whose publication would then be
    /// overwritten by an older read).
    pub async fn refresh(&self) -> Result<(), RegistryError> {
        let _one_at_a_time = self.lock().await;
        self.reload().await
    }

    /// The current view (cheap: an Arc clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every domain, by name.
    pub fn list(&self) -> Vec<Arc<DomainRecord>> {
        let snap = self.snapshot();
        let mut v: Vec<_> = snap.domains.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One domain.
    pub fn get(&self, name: &Domain) -> Option<Arc<DomainRecord>> {
        self.snapshot().domain(name).cloned()
    }

    /// One suspension, active or ended, as on record.
    pub async fn suspension(&self, id: u64) -> Result<Option<SuspensionRecord>, RegistryError> {
        Ok(self.store.get_suspension(id).await?)
    }

    /// Claims the notice `key`: true the first time (on any node), false
    /// after, so that a notice goes out once.
    pub async fn claim_notice(&self, key: &str, now_ms: u64) -> Result<bool, RegistryError> {
        match self.store.claim_notice(key, now_ms).await {
            // Claimed here, and for the store once it answers.
            Err(StoreError::Unavailable(why)) => self.claim_while_down(key, now_ms, why).await,
            r => Ok(r?),
        }
    }

    /// Appends a record of the gateway's own decision to the audit trail; a
    /// failure is logged, never raised (the decision stands).
    pub async fn audit(&self, rec: crate::model::audit::AuditRecord) {
        let e = match self.store.append_audit(&rec).await {
            Ok(_) => return,
            Err(StoreError::Unavailable(why)) => {
                let (action, target) = (rec.action.clone(), rec.target.clone());
                match self.defer(PendingWrite::Audit { rec }, why).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::error!(%action, %target, error = %e, "audit record not written");
                        return;
                    }
                }
            }
            Err(e) => e,
        };
        tracing::error!(action = %rec.action, target = %rec.target, error = %e, "audit record not written");
    }

    /// A scope's state as the audit trail records it before and after a
    /// change: the domain's status, or whether the sender is suspended,
    /// with the active suspension's id.
    pub fn scope_state(&self, scope: &Scope) -> serde_json::Value {
        let snap = self.snapshot();
        let suspension = snap.suspension(scope).map(|s| s.id);
        let status = match scope {
            Scope::Domain(d) => snap
                .domain(d)
                .map(|r| r.status.to_string())
                .unwrap_or_else(|| "unregistered".into()),
            Scope::Sender(_) if suspension.is_some() => "suspended".into(),
            Scope::Sender(_) => "active".into(),
        };
        match suspension {
            Some(id) => serde_json::json!({"status": status, "suspension": id}),
            None => serde_json::json!({"status": status}),
        }
    }

    /// The next outgoing notice number of `year`, never given out before.
    pub async fn next_notice_number(&self, year: i32) -> Result<u64, RegistryError> {
        Ok(self.store.next_notice_number(year).await?)
    }

    /// Forgets notice claims older than `before_ms`.
    pub async fn prune_notices(&self, before_ms: u64) -> Result<usize, RegistryError> {
        Ok(self.store.prune_notices(before_ms).await?)
    }

    async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.change.lock().await
    }

    /// The domain as on record (not the snapshot: another node may have
    /// changed it).
    async fn stored(&self, name: &Domain) -> Result<DomainRecord, RegistryError> {
        self.store
            .get_domain(name)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("domain {name}")))
    }

    /// Reads the domain, lets `change` make the new record from it, and
    /// writes it if no other writer changed the domain meanwhile (else
    /// reads again, a few times).
    async fn modify_domain(
        &self,
        name: &Domain,
        change: impl Fn(DomainRecord) -> Result<DomainRecord, RegistryError>,
    ) -> Result<DomainRecord, RegistryError> {
        let mut tries = 0;
        loop {
            let cur = self.stored(name).await?;
            let expect = Expect::unchanged(&cur);
            let mut rec = change(cur)?;
            rec.updated_at = later_than(rec.updated_at, expect);
            let w = DomainWrite {
                record: rec,
                expect,
            };
            match self.store.put_domain(&w).await {
                Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                Err(e) => return Err(e.into()),
                Ok(()) => return Ok(w.record),
            }
        }
    }

    /// Registers a connected domain (tests and tools; staff go through
    /// [`Registry::add_domain_without_application`] or an application).
    pub async fn add_domain(&self, new: NewDomain) -> Result<DomainRecord, RegistryError> {
        self.register(new, |_| {}).await
    }

    /// Registers a connected domain without an application, marked with
    /// who did it, when and why.
    pub async fn add_domain_without_application(
        &self,
        new: NewDomain,
        direct: DirectRegistration,
        languages: Vec<crate::model::language::Lang>,
    ) -> Result<DomainRecord, RegistryError> {
        check_text("reason", &direct.reason, 1000)?;
        if direct.reason.trim().is_empty() {
            return Err(RegistryError::Invalid(
                "a reason is required to register a domain without an application".into(),
            ));
        }
        self.register(new, |rec| {
            rec.without_application = Some(direct);
            rec.languages = languages;
        })
        .await
    }

    /// Registers a connected domain from approved application `application`
    /// of an applicant of `category`.
    pub async fn add_domain_as(
        &self,
        new: NewDomain,
        category: Option<ApplicantCategory>,
        application: Option<u64>,
        languages: &[crate::model::language::Lang],
    ) -> Result<DomainRecord, RegistryError> {
        self.register(new, |rec| {
            rec.category = category;
            rec.application = application;
            rec.languages = languages.to_vec();
        })
        .await
    }

    /// Registers a connected domain, `mark`ed with how it came to be.
    async fn register(
        &self,
        new: NewDomain,
        mark: impl FnOnce(&mut DomainRecord),
    ) -> Result<DomainRecord, RegistryError> {
        let _g = self.lock().await;
        if self.snapshot().domains.contains_key(&new.name) {
            return Err(RegistryError::Exists(new.name));
        }
        self.check_new_domain(&new)?;
        let mut rec = DomainRecord::connected(
            new.name,
            new.owner,
            new.servers.iter().map(|n| n.trunc()).collect(),
            new.contacts,
            Utc::now(),
        );
        rec.inbound = new.inbound;
        rec.shared_servers = new.shared_servers;
        mark(&mut rec);
        let w = DomainWrite {
            record: rec,
            expect: Expect::Absent,
        };
        match self.store.put_domain(&w).await {
            Err(StoreError::Conflict(_)) => return Err(RegistryError::Exists(w.record.name)),
            r => r?,
        }
        self.reload().await?;
        Ok(w.record)
    }

    /// `rec` with a new status, as of now.
    fn with_status(
        mut rec: DomainRecord,
        status: DomainStatus,
        reason: Option<String>,
    ) -> DomainRecord {
        let now = Utc::now();
        rec.status = status;
        rec.status_reason = reason;
        rec.status_since = now;
        rec.updated_at = later_than(now, Expect::unchanged(&rec));
        rec
    }

    /// Connects a disconnected domain again with the data of a new approved
    /// application (servers, contacts and owner are replaced; history kept).
    pub async fn reconnect_domain(
        &self,
        new: NewDomain,
        category: Option<ApplicantCategory>,
        application: Option<u64>,
        languages: &[crate::model::language::Lang],
    ) -> Result<DomainRecord, RegistryError> {
        let _g = self.lock().await;
        self.check_new_domain(&new)?;
        let name = new.name.clone();
        let rec = self
            .modify_domain(&name, |cur| {
                if cur.status != DomainStatus::Disconnected {
                    return Err(RegistryError::State(format!(
                        "domain {} is {}, not disconnected",
                        new.name, cur.status
                    )));
                }
                let now = Utc::now();
                Ok(DomainRecord {
                    name: new.name.clone(),
                    owner: new.owner.clone(),
                    servers: new.servers.iter().map(|n| n.trunc()).collect(),
                    contacts: new.contacts.clone(),
                    inbound: new.inbound.clone(),
                    status: DomainStatus::Connected,
                    status_reason: None,
                    status_since: now,
                    shared_servers: new.shared_servers,
                    created_at: cur.created_at,
                    updated_at: now,
                    // Limits granted by staff outlive the reconnection.
                    limits: cur.limits,
                    senders: cur.senders.clone(),
                    // So are the header From settings.
                    header_from: cur.header_from.clone(),
                    category: category.or(cur.category),
                    disconnect_on: None,
                    allowed_servers: Vec::new(),
                    inbound_servers: Vec::new(),
                    application: application.or(cur.application),
                    // Reconnected through an application: the procedure was followed.
                    without_application: None,
                    // The new application's choice, else the one kept.
                    languages: if languages.is_empty() {
                        cur.languages.clone()
                    } else {
                        languages.to_vec()
                    },
                    // A new connection: the yearly cycle starts again.
                    confirmed: Some(crate::model::domains::Confirmation {
                        on: now.date_naive(),
                        by: "reconnection".into(),
                        at: now,
                    }),
                    reconfirm_reminded: None,
                })
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }

    /// The checks `add_domain` makes, minus "already registered": owner,
    /// servers, contacts, and no overlap with another live domain's servers.
    fn check_new_domain(&self, new: &NewDomain) -> Result<(), RegistryError> {
        check_text("owner", &new.owner, 300)?;
        if new.servers.is_empty() {
            return Err(RegistryError::Invalid(
                "at least one server IP or CIDR is needed".into(),
            ));
        }
        if new.contacts.is_empty() {
            return Err(RegistryError::Invalid(
                "at least one technical contact is needed".into(),
            ));
        }
        for c in &new.contacts {
            contact::validate(c).map_err(RegistryError::Invalid)?;
        }
        let snap = self.snapshot();
        for other in snap.domains.values() {
            if other.status == DomainStatus::Disconnected || other.name == new.name {
                continue;
            }
            for range in &new.servers {
                if let Some(o) = other.servers.iter().find(|o| overlaps(range, o))
                    && !(new.shared_servers && other.shared_servers)
                {
                    return Err(RegistryError::Overlap {
                        range: *range,
                        other: other.name.clone(),
                        other_range: *o,
                    });
                }
            }
        }
        Ok(())
    }

    /// Suspends a connected domain: new mail gets 451 4.7.1.
    pub async fn suspend_domain(
        &self,
        name: &Domain,
        s: SuspendRequest,
    ) -> Result<SuspensionRecord, RegistryError> {
        let _g = self.lock().await;
        check_text("reason", &s.reason, 1000)?;
        let scope = Scope::Domain(name.clone());
        let attempt = async {
            let mut tries = 0;
            let rec = loop {
                let cur = self.stored(name).await?;
                match cur.status {
                    DomainStatus::Connected => {}
                    DomainStatus::Suspended => {
                        return Err(RegistryError::State(format!(
                            "domain {name} is already suspended"
                        )));
                    }
                    DomainStatus::Disconnected => {
                        return Err(RegistryError::State(format!(
                            "domain {name} is disconnected"
                        )));
                    }
                }
                let rec = s.clone().into_record(scope.clone());
                let expect = Expect::unchanged(&cur);
                let w = DomainWrite {
                    record: Self::with_status(
                        cur,
                        DomainStatus::Suspended,
                        Some(rec.reason.clone()),
                    ),
                    expect,
                };
                match self.store.start_suspension(&rec, Some(&w)).await {
                    // Read again: the status says what the other writer did.
                    Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                    Err(StoreError::Conflict(m)) => return Err(RegistryError::State(m)),
                    r => break r?,
                }
            };
            Ok(rec)
        };
        let rec = match attempt.await {
            // The governor's own decision stands while the store is away.
            Err(RegistryError::Store(StoreError::Unavailable(why))) if s.actor == AUTO => {
                let snap = self.snapshot();
                match snap.domain(name).map(|d| d.status) {
                    Some(DomainStatus::Connected) => {}
                    Some(st) => {
                        return Err(RegistryError::State(format!("domain {name} is {st}")));
                    }
                    None => return Err(RegistryError::NotFound(format!("domain {name}"))),
                }
                return self.suspend_while_down(s.into_record(scope), why).await;
            }
            r => r?,
        };
        self.reload().await?;
        Ok(rec)
    }

    /// Ends a domain's suspension.
    pub async fn restore_domain(
        &self,
        name: &Domain,
        r: RestoreRequest,
    ) -> Result<DomainRecord, RegistryError> {
        let _g = self.lock().await;
        let scope = Scope::Domain(name.clone());
        let how = r.restoration();
        let attempt = async {
            let mut tries = 0;
            let rec = loop {
                let cur = self.stored(name).await?;
                if cur.status != DomainStatus::Suspended {
                    return Err(RegistryError::State(format!(
                        "domain {name} is {}, not suspended",
                        cur.status
                    )));
                }
                let expect = Expect::unchanged(&cur);
                let w = DomainWrite {
                    record: Self::with_status(cur, DomainStatus::Connected, None),
                    expect,
                };
                match self.store.end_suspension(&scope, &how, Some(&w)).await {
                    Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                    Err(StoreError::NotFound(_)) => {
                        return Err(RegistryError::NotFound(format!(
                            "an active suspension of {scope}"
                        )));
                    }
                    r => {
                        r?;
                        break w.record;
                    }
                }
            };
            Ok(rec)
        };
        let rec = match attempt.await {
            Err(RegistryError::Store(StoreError::Unavailable(why))) if how.by == AUTO => {
                self.restore_while_down(scope, how.clone(), why).await?;
                return self
                    .get(name)
                    .map(|d| (*d).clone())
                    .ok_or_else(|| RegistryError::NotFound(format!("domain {name}")));
            }
            r => r?,
        };
        self.reload().await?;
        Ok(rec)
    }

    /// Disconnects a domain for good: refused like an unregistered one.
    pub async fn disconnect_domain(
        &self,
        name: &Domain,
        reason: &str,
    ) -> Result<DomainRecord, RegistryError> {
        let _g = self.lock().await;
        check_text("reason", reason, 1000)?;
        let scope = Scope::Domain(name.clone());
        let mut tries = 0;
        let rec = loop {
            let cur = self.stored(name).await?;
            let was = cur.status;
            if was == DomainStatus::Disconnected {
                return Err(RegistryError::State(format!(
                    "domain {name} is already disconnected"
                )));
            }
            let expect = Expect::unchanged(&cur);
            let mut record =
                Self::with_status(cur, DomainStatus::Disconnected, Some(reason.to_string()));
            // Done now: a disconnection agreed for later is moot.
            record.disconnect_on = None;
            let w = DomainWrite { record, expect };
            let written = if was == DomainStatus::Suspended {
                let how = RestoreRequest {
                    actor: "disconnect".into(),
                    reason: Some(reason.to_string()),
                    held_mail: "disconnected".into(),
                }
                .restoration();
                self.store
                    .end_suspension(&scope, &how, Some(&w))
                    .await
                    .map(|_| ())
            } else {
                self.store.put_domain(&w).await
            };
            match written {
                Err(StoreError::Conflict(_)) if tries < RETRIES => tries += 1,
                Err(StoreError::NotFound(_)) => {
                    return Err(RegistryError::NotFound(format!(
                        "an active suspension of {scope}"
                    )));
                }
                r => {
                    r?;
                    break w.record;
                }
            }
        };
        self.reload().await?;
        Ok(rec)
    }

    /// Suspends one sender address.
    pub async fn suspend_sender(
        &self,
        address: &str,
        s: SuspendRequest,
    ) -> Result<SuspensionRecord, RegistryError> {
        let _g = self.lock().await;
        check_text("reason", &s.reason, 1000)?;
        let addr = normalize_sender(address)?;
        let rec = s.into_record(Scope::Sender(addr.clone()));
        let rec = match self.store.start_suspension(&rec, None).await {
            Err(StoreError::Conflict(_)) => {
                return Err(RegistryError::State(format!(
                    "sender {addr} is already suspended"
                )));
            }
            Err(StoreError::Unavailable(why)) if rec.actor == AUTO => {
                return self.suspend_while_down(rec, why).await;
            }
            r => r?,
        };
        self.reload().await?;
        Ok(rec)
    }

    /// Ends a sender's suspension.
    pub async fn restore_sender(
        &self,
        address: &str,
        r: RestoreRequest,
    ) -> Result<SuspensionRecord, RegistryError> {
        let _g = self.lock().await;
        let scope = Scope::Sender(normalize_sender(address)?);
        let how = r.restoration();
        let rec = match self.store.end_suspension(&scope, &how, None).await {
            Err(StoreError::Unavailable(why)) if how.by == AUTO => {
                return self.restore_while_down(scope, how, why).await;
            }
            Err(StoreError::NotFound(_)) => {
                return Err(RegistryError::NotFound(format!(
                    "an active suspension of {scope}"
                )));
            }
            r => r?,
        };
        self.reload().await?;
        Ok(rec)
    }

    /// An automatic suspension the store could not take: in force here at
    /// once (the snapshot has it, with a provisional id), written later.
    async fn suspend_while_down(
        &self,
        rec: SuspensionRecord,
        why: String,
    ) -> Result<SuspensionRecord, RegistryError> {
        if self.snapshot().suspension(&rec.scope).is_some() {
            return Err(RegistryError::State(format!(
                "{} is already suspended",
                rec.scope
            )));
        }
        let w = PendingWrite::StartSuspension { rec };
        let seq = self.defer(w.clone(), why).await?;
        self.publish_pending(seq, &w);
        let PendingWrite::StartSuspension { mut rec } = w else {
            unreachable!("made above")
        };
        rec.id = provisional_id(seq);
        Ok(rec)
    }

    /// An automatic end of a suspension (an expiry) the store could not
    /// take: in force here at once, written later. Returns the ended record
    /// as this node knows it.
    async fn restore_while_down(
        &self,
        scope: Scope,
        how: Restoration,
        why: String,
    ) -> Result<SuspensionRecord, RegistryError> {
        let Some(active) = self.snapshot().suspension(&scope).cloned() else {
            return Err(RegistryError::NotFound(format!(
                "an active suspension of {scope}"
            )));
        };
        let w = PendingWrite::EndSuspension {
            scope,
            how: how.clone(),
        };
        let seq = self.defer(w.clone(), why).await?;
        self.publish_pending(seq, &w);
        let mut ended = (*active).clone();
        ended.restored = Some(how);
        Ok(ended)
    }

    /// Sets (or with `None`, clears) a domain's governor overrides.
    pub async fn set_limits(
        &self,
        name: &Domain,
        limits: Option<DomainLimits>,
    ) -> Result<DomainRecord, RegistryError> {
        let _g = self.lock().await;
        if let Some(l) = &limits
            && let Some((k, _)) = l.values().into_iter().find(|(_, v)| *v == Some(0))
        {
            return Err(RegistryError::Invalid(format!("{k} must be at least 1")));
        }
        let limits = limits.filter(|l| *l != Default::default());
        let rec = self
            .modify_domain(name, |mut rec| {
                rec.limits = limits;
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }

    /// Sets the header From check of a domain (issue #18, item 2).
    pub async fn set_header_from(
        &self,
        name: &Domain,
        header_from: crate::model::domains::HeaderFrom,
    ) -> Result<DomainRecord, RegistryError> {
        let _g = self.lock().await;
        let rec = self
            .modify_domain(name, |mut rec| {
                rec.header_from = header_from.clone();
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }

    /// Declares a sender (with `Some`) or withdraws its declaration: its own
    /// limits replace its domain's, and it is not judged on novelty. The
    /// sender's domain must be registered.
    pub async fn set_sender_limits(
        &self,
        sender: &str,
        limits: Option<SenderLimits>,
    ) -> Result<DomainRecord, RegistryError> {
        let sender = sender.trim().to_ascii_lowercase();
        let domain = sender
            .rsplit_once('@')
            .and_then(|(l, d)| (!l.is_empty()).then_some(d))
            .ok_or_else(|| RegistryError::Invalid(format!("{sender:?} is not an address")))?;
        let name = Domain::parse(domain)
            .map_err(|e| RegistryError::Invalid(format!("{sender:?}: {e}")))?;
        if let Some(l) = &limits
            && let Some((k, _)) = l.values().into_iter().find(|(_, v)| *v == Some(0))
        {
            return Err(RegistryError::Invalid(format!("{k} must be at least 1")));
        }
        let _g = self.lock().await;
        let rec = self
            .modify_domain(&name, |mut rec| {
                match &limits {
                    Some(l) => {
                        rec.senders.insert(sender.clone(), l.clone());
                    }
                    None => {
                        if rec.senders.remove(&sender).is_none() {
                            return Err(RegistryError::NotFound(format!(
                                "a declaration of {sender}"
                            )));
                        }
                    }
                }
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }

    /// Every suspension; only active ones unless `history`.
    pub async fn suspensions(&self, history: bool) -> Result<Vec<SuspensionRecord>, RegistryError> {
        let mut all = self.store.list_suspensions().await?;
        if !history {
            all.retain(|s| s.is_active());
        }
        Ok(all)
    }
}

/// `at`, or just after the version `expect` names if `at` is not later: a
/// new version must differ from the one it replaces, even on a coarse clock.
fn later_than(at: DateTime<Utc>, expect: Expect) -> DateTime<Utc> {
    match expect {
        Expect::UpdatedAt(old) if at <= old => old + chrono::Duration::microseconds(1),
        _ => at,
    }
}

/// A suspension being made.
#[derive(Debug, Clone)]
pub struct SuspendRequest {
    /// Token name or `auto`.
    pub actor: String,
    /// Rule name or `manual`.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// Counters that tripped.
    pub evidence: serde_json::Value,
    /// Optional automatic end.
    pub expires_at: Option<DateTime<Utc>>,
}

impl SuspendRequest {
    /// A suspension by staff.
    pub fn manual(actor: &str, reason: &str) -> SuspendRequest {
        SuspendRequest {
            actor: actor.into(),
            rule: "manual".into(),
            reason: reason.into(),
            evidence: serde_json::Value::Null,
            expires_at: None,
        }
    }

    fn into_record(self, scope: Scope) -> SuspensionRecord {
        SuspensionRecord {
            id: 0,
            scope,
            rule: self.rule,
            reason: self.reason,
            evidence: self.evidence,
            actor: self.actor,
            started_at: Utc::now(),
            expires_at: self.expires_at,
            restored: None,
        }
    }
}

/// A restoration being made.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Token name or `auto`.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// What happens to held mail: `released` or `deleted`.
    pub held_mail: String,
}

impl RestoreRequest {
    /// How the suspension ends, as of now.
    fn restoration(self) -> Restoration {
        Restoration {
            by: self.actor,
            at: Utc::now(),
            reason: self.reason,
            held_mail: self.held_mail,
        }
    }
}

fn normalize_sender(address: &str) -> Result<String, RegistryError> {
    let a: crate::config::PlainAddress = address.parse().map_err(RegistryError::Invalid)?;
    Ok(format!("{}@{}", a.local.to_ascii_lowercase(), a.domain))
}

/// Parses a server address: an IP (a single host) or a CIDR range.
pub fn parse_server(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| format!("`{s}` is not an IP address or CIDR range"))
}

/// The widest server ranges staff may register without saying so
/// (`[registration] widest_server_range_v4` / `_v6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeLimits {
    /// Shortest IPv4 prefix length accepted.
    pub v4: u8,
    /// Shortest IPv6 prefix length accepted.
    pub v6: u8,
}

impl From<&crate::config::RegistrationSection> for RangeLimits {
    fn from(r: &crate::config::RegistrationSection) -> Self {
        RangeLimits {
            v4: r.widest_server_range_v4,
            v6: r.widest_server_range_v6,
        }
    }
}

/// Checks the servers staff set for a domain (domain add, application
/// intake and approval): no range wider than `limits` unless `allow_wide`,
/// never all addresses (/0), and an explicit inbound route when the default
/// one would be taken from a range (it would be the network address).
pub fn check_server_ranges(
    servers: &[IpNet],
    inbound: Option<&HostPort>,
    allow_wide: bool,
    limits: impl Into<RangeLimits>,
) -> Result<(), String> {
    let limits = limits.into();
    for s in servers {
        if s.prefix_len() == 0 {
            return Err(format!(
                "server {s} is every address: no domain may be relayed for from everywhere"
            ));
        }
        let (widest, key) = match s {
            IpNet::V4(_) => (limits.v4, "widest_server_range_v4"),
            IpNet::V6(_) => (limits.v6, "widest_server_range_v6"),
        };
        if s.prefix_len() < widest && !allow_wide {
            return Err(format!(
                "server range {s} is wider than /{widest} ([registration] {key}): every host in it could relay as the domain; give the mail servers' own addresses, or, if the whole range really is the agency's, allow it explicitly (--allow-wide-range; API: \"allow_wide_range\": true)"
            ));
        }
    }
    if inbound.is_none()
        && let Some(first) = servers.first()
        && first.prefix_len() < first.max_prefix_len()
    {
        return Err(format!(
            "the first server {first} is a range, so the default inbound route would be its network address {}:25; give the inbound next hop (--inbound HOST:PORT; API: \"inbound\")",
            first.network()
        ));
    }
    Ok(())
}

fn servers_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let v: Vec<String> = serde::Deserialize::deserialize(d)?;
    v.iter()
        .map(|s| parse_server(s).map_err(serde::de::Error::custom))
        .collect()
}

/// True when two networks share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests;

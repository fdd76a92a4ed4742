//! The registry's persistence, behind one trait: domains, suspensions,
//! applications, the audit trail and notice claims.
//!
//! The trait is shaped for a networked backend shared by several nodes:
//! reads and writes move whole records; every change that two writers
//! could race on is one call that the backend makes atomic (a write that
//! names the version it replaces, a suspension started only if none is
//! active, an application id allocated by the store, a notice claimed
//! once). A lost race is [`StoreError::Conflict`]; a backend that cannot be
//! reached is [`StoreError::Unavailable`].
//!
//! Every backend must pass the suite in [`crate::store::contract`].

pub mod postgres;
pub mod redb;

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::Domain;
use crate::model::applications::{ApplicationRecord, ApplicationStatus};
use crate::model::audit::{AuditFilter, AuditRecord, AuditSize, RefusedUpdate};
use crate::model::changes::{ChangeRequest, ChangeStatus, DomainVersion};
use crate::model::domains::DomainRecord;
use crate::model::listings::GatewayListing;
use crate::model::servers::ServerSuspension;
use crate::model::sightings::UnregisteredServer;
use crate::model::suspensions::{Restoration, Scope, SuspensionRecord};

/// The longest message a [`PeerLink`] carries, in bytes (PostgreSQL's
/// NOTIFY payload must stay under 8000).
pub const PEER_MESSAGE_MAX: usize = 7900;

/// Messages between the nodes sharing a store, best effort: a message sent
/// while the store is unreachable, or beyond the queue's room, is dropped,
/// and each node goes on alone meanwhile.
#[derive(Debug)]
pub struct PeerLink {
    /// Publishes one message (at most [`PEER_MESSAGE_MAX`] bytes) to every
    /// node, this one included; `try_send` it, never wait on it.
    pub send: tokio::sync::mpsc::Sender<String>,
    /// The messages of every node, as they arrive.
    pub received: tokio::sync::mpsc::Receiver<String>,
}

/// What a conditional domain write expects to find in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No record of that name: the write registers it.
    Absent,
    /// The record as read, named by its `updated_at`: the write replaces it.
    UpdatedAt(DateTime<Utc>),
}

impl Expect {
    /// The expectation that replaces `rec` as it was read.
    pub fn unchanged(rec: &DomainRecord) -> Expect {
        Expect::UpdatedAt(rec.updated_at)
    }
}

/// A whole domain record to write, and what it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainWrite {
    /// The record as it is to be stored.
    pub record: DomainRecord,
    /// What must be stored under its name for the write to happen.
    pub expect: Expect,
}

/// The registry's persistence; dyn-compatible, so the backend is picked at
/// run time (`Arc<dyn RegistryStore>`). Calls never block the runtime.
#[async_trait::async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// A feed that changes whenever another writer (another node) may have
    /// changed domains or suspensions, for a node to reload what it keeps
    /// in memory; `None` when this process is the only writer.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// A channel to the other nodes sharing this store, for messages that
    /// need no keeping (the governor's observations); `None` when this
    /// process is the only node.
    fn peer_link(&self) -> Option<PeerLink> {
        None
    }

    /// The governor's state shared by the nodes (scopes, recipient memory,
    /// webhook outbox); `None` when this process is the only node.
    fn shared_state(&self) -> Option<std::sync::Arc<dyn crate::store::SharedState>> {
        None
    }

    /// Every domain, by name.
    async fn list_domains(&self) -> Result<Vec<DomainRecord>, StoreError>;

    /// One domain, if registered.
    async fn get_domain(&self, name: &Domain) -> Result<Option<DomainRecord>, StoreError>;

    /// Writes a whole domain record if the stored one is what `w.expect`
    /// says; [`StoreError::Conflict`] otherwise (nothing written).
    async fn put_domain(&self, w: &DomainWrite) -> Result<(), StoreError>;

    /// Every suspension, active or ended, oldest first.
    async fn list_suspensions(&self) -> Result<Vec<SuspensionRecord>, StoreError>;

    /// One suspension by id.
    async fn get_suspension(&self, id: u64) -> Result<Option<SuspensionRecord>, StoreError>;

    /// Starts a suspension (the store assigns its id) and, with `domain`,
    /// writes that domain record in the same transaction. Returns the
    /// stored record. [`StoreError::Conflict`] (nothing written) when the
    /// scope already has an active suspension or the domain write's
    /// expectation fails.
    async fn start_suspension(
        &self,
        rec: &SuspensionRecord,
        domain: Option<&DomainWrite>,
    ) -> Result<SuspensionRecord, StoreError>;

    /// Ends the active suspension of `scope` with `how` and, with `domain`,
    /// writes that domain record in the same transaction. Returns the ended
    /// record. [`StoreError::NotFound`] when the scope has no active
    /// suspension, [`StoreError::Conflict`] when the domain write's
    /// expectation fails (nothing written either way).
    async fn end_suspension(
        &self,
        scope: &Scope,
        how: &Restoration,
        domain: Option<&DomainWrite>,
    ) -> Result<SuspensionRecord, StoreError>;

    /// Every application, oldest first.
    async fn list_applications(&self) -> Result<Vec<ApplicationRecord>, StoreError>;

    /// One application by id.
    async fn get_application(&self, id: u64) -> Result<Option<ApplicationRecord>, StoreError>;

    /// Stores a new application under an id the store assigns (ids only
    /// grow) and returns it as stored. [`StoreError::Conflict`] when its
    /// domain already has a pending application.
    async fn insert_application(
        &self,
        rec: &ApplicationRecord,
    ) -> Result<ApplicationRecord, StoreError>;

    /// Replaces a stored application if its stored status is still
    /// `expect`: [`StoreError::Conflict`] when it is not (another decision
    /// came first), [`StoreError::NotFound`] when there is no such id.
    async fn update_application(
        &self,
        rec: &ApplicationRecord,
        expect: ApplicationStatus,
    ) -> Result<(), StoreError>;

    /// Appends an audit record durably; returns its sequence number.
    async fn append_audit(&self, rec: &AuditRecord) -> Result<u64, StoreError>;

    /// Appends a record of refused calls, which may skip waiting for the
    /// disk (a crash may lose the last second of them); returns its number.
    async fn append_refused(&self, rec: &AuditRecord) -> Result<u64, StoreError>;

    /// Sets the counts and actions of refused-call records (other records
    /// and missing ones are left alone).
    async fn update_refused(&self, updates: &[RefusedUpdate]) -> Result<(), StoreError>;

    /// Deletes refused-call records made before `before` (staff actions
    /// stay); returns how many.
    async fn prune_refused_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// How many audit records there are and the bytes they take.
    async fn audit_size(&self) -> Result<AuditSize, StoreError>;

    /// The newest `limit` audit records, newest first.
    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// The audit records `filter` matches, newest first, at most its
    /// `limit` (every match without one).
    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes every audit record made before `before` (the retention);
    /// returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Claims the notice `key` at `now_ms`: true for the one caller that
    /// claims it first (on any node), false for every later one.
    async fn claim_notice(&self, key: &str, now_ms: u64) -> Result<bool, StoreError>;

    /// Forgets notice claims made before `before_ms`; returns how many.
    async fn prune_notices(&self, before_ms: u64) -> Result<usize, StoreError>;

    /// The next outgoing notice number of `year` (1, 2, ...): each number is
    /// given to one caller only, on any node, and never again.
    async fn next_notice_number(&self, year: i32) -> Result<u64, StoreError>;

    /// Writes a domain record as [`RegistryStore::put_domain`] does and, in
    /// the same transaction, keeps `previous` (the record it replaces) as
    /// the domain's next version; returns the version number the store
    /// assigned (1 for the first). Nothing is written on a conflict.
    async fn put_domain_versioned(
        &self,
        w: &DomainWrite,
        previous: &DomainVersion,
    ) -> Result<u64, StoreError>;

    /// Every kept version of a domain, oldest first.
    async fn list_domain_versions(&self, name: &Domain) -> Result<Vec<DomainVersion>, StoreError>;

    /// Stores a new change request under an id the store assigns and
    /// returns it. [`StoreError::Conflict`] when its domain already has a
    /// pending one.
    async fn insert_change_request(&self, rec: &ChangeRequest)
    -> Result<ChangeRequest, StoreError>;

    /// Replaces a change request if its stored status is still `expect`
    /// ([`StoreError::Conflict`] if not, [`StoreError::NotFound`] if no such id).
    async fn update_change_request(
        &self,
        rec: &ChangeRequest,
        expect: ChangeStatus,
    ) -> Result<(), StoreError>;

    /// One change request by id.
    async fn get_change_request(&self, id: u64) -> Result<Option<ChangeRequest>, StoreError>;

    /// Every change request, oldest first.
    async fn list_change_requests(&self) -> Result<Vec<ChangeRequest>, StoreError>;

    /// Merges a batch of unregistered-server sightings (counts added, first
    /// and last seen widened, the latest sample kept) in one step; returns
    /// the ones seen for the first time (for one caller only, on any node).
    async fn record_unregistered(
        &self,
        batch: &[UnregisteredServer],
    ) -> Result<Vec<UnregisteredServer>, StoreError>;

    /// Every unregistered address seen sending as `domain`, by address.
    async fn list_unregistered(
        &self,
        domain: &Domain,
    ) -> Result<Vec<UnregisteredServer>, StoreError>;

    /// Starts a suspension of a server address (the store assigns its id)
    /// and returns it; [`StoreError::Conflict`] when the address has an
    /// active one already (also when two start at once: one wins).
    async fn start_server_suspension(
        &self,
        rec: &ServerSuspension,
    ) -> Result<ServerSuspension, StoreError>;

    /// Ends the active suspension of `address` with `how`; returns it.
    /// [`StoreError::NotFound`] when there is none.
    async fn end_server_suspension(
        &self,
        address: std::net::IpAddr,
        how: &Restoration,
    ) -> Result<ServerSuspension, StoreError>;

    /// Every server suspension, active or ended, oldest first.
    async fn list_server_suspensions(&self) -> Result<Vec<ServerSuspension>, StoreError>;

    /// Records a listing of a gateway address: opens one (the store assigns
    /// its id) unless the address has an open one on the same list, whose
    /// last sighting, code and meaning are updated instead. Returns the
    /// stored record and true when it was opened by this call.
    async fn record_listing(
        &self,
        rec: &GatewayListing,
    ) -> Result<(GatewayListing, bool), StoreError>;

    /// Ends the open listing of `address` on `list` at `at` (delisted);
    /// [`StoreError::NotFound`] when there is none.
    async fn end_listing(
        &self,
        address: std::net::IpAddr,
        list: &str,
        at: DateTime<Utc>,
    ) -> Result<GatewayListing, StoreError>;

    /// Every gateway listing, open or ended, oldest first.
    async fn list_listings(&self) -> Result<Vec<GatewayListing>, StoreError>;

    /// Announces this node to the others sharing the store (a shared store
    /// keeps it; a node alone has no one to tell).
    async fn announce_node(
        &self,
        _node: &crate::model::nodes::NodeRecord,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The nodes sharing the store, as they last announced themselves
    /// (none for a store of one node).
    async fn list_nodes(&self) -> Result<Vec<crate::model::nodes::NodeRecord>, StoreError> {
        Ok(Vec::new())
    }
}

//! What the governor's nodes keep in a shared store beside the registry:
//! the scopes' state, the recipient memory and the webhook outbox. Plain
//! bytes and numbers cross this boundary (the store knows nothing of the
//! governor's types); the governor decides what they mean.
//!
//! Only a store shared by several nodes has this ([`super::RegistryStore::shared_state`]);
//! a node alone keeps all of it in its own redb file and data folder.

use crate::model::webhooks::WebhookJob;
use crate::store::StoreError;

/// One scope's saved state as a node wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRow {
    /// The scope's stored name ("d:x", "s:x").
    pub scope: String,
    /// Its state, JSON.
    pub state: Vec<u8>,
    /// The newest time the state speaks of (unix ms): the newer row wins.
    pub stamp_ms: u64,
}

/// The cluster's copy of the recipient memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryCopy {
    /// The newest snapshot (the memory's own file format), if any.
    pub snapshot: Option<Vec<u8>>,
    /// When it was taken (unix ms; 0 without one).
    pub taken_at_ms: u64,
    /// Journal chunks written since, oldest first, every node's.
    pub chunks: Vec<Vec<u8>>,
}

/// The governor's state in a store shared by the nodes.
#[async_trait::async_trait]
pub trait SharedState: Send + Sync + std::fmt::Debug {
    /// Writes scope states in one transaction, as written by `node`; a row
    /// never replaces a stored one whose stamp is newer.
    async fn save_scopes(&self, node: &str, rows: &[ScopeRow]) -> Result<(), StoreError>;

    /// Deletes the rows of `scopes` that `node` wrote last (another node
    /// that wrote one since still tracks that scope).
    async fn delete_scopes(&self, node: &str, scopes: &[String]) -> Result<u64, StoreError>;

    /// Deletes rows nobody wrote since `before_ms` (a node gone for good
    /// never evicts its own); returns how many.
    async fn prune_scopes(&self, before_ms: u64) -> Result<u64, StoreError>;

    /// Every stored scope state.
    async fn load_scopes(&self) -> Result<Vec<ScopeRow>, StoreError>;

    /// The cluster's recipient-memory seed: `mine` if no node set one yet
    /// (this node's is then the cluster's), else the one already set.
    async fn memory_seed(&self, node: &str, mine: [u64; 2]) -> Result<[u64; 2], StoreError>;

    /// Replaces the stored snapshot with one taken at `taken_at_ms` if the
    /// stored one is older than `older_than_ms` (so that nodes do not all
    /// upload one every time), and drops the journal chunks it supersedes
    /// (written before `taken_at_ms - margin_ms`). True if stored.
    async fn save_memory_snapshot(
        &self,
        node: &str,
        snapshot: &[u8],
        taken_at_ms: u64,
        older_than_ms: u64,
        margin_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Appends one journal chunk of `node`.
    async fn append_memory_chunk(
        &self,
        node: &str,
        at_ms: u64,
        chunk: &[u8],
    ) -> Result<(), StoreError>;

    /// The snapshot and the chunks written since `since_ms` (0: since the
    /// snapshot); chunks of `skip_node` are left out.
    async fn load_memory(
        &self,
        since_ms: u64,
        skip_node: Option<&str>,
    ) -> Result<MemoryCopy, StoreError>;

    /// Adds webhook jobs (each with its unique `key`); a job whose key is
    /// stored already is skipped, so moving the same job twice is harmless.
    async fn add_webhook_jobs(&self, jobs: &[WebhookJob]) -> Result<(), StoreError>;

    /// Claims up to `limit` jobs due at `now_ms` that no node holds (or
    /// whose holder's lease ran out) for `node` until `now_ms + lease_ms`;
    /// two nodes never claim one job at once.
    async fn claim_webhook_jobs(
        &self,
        node: &str,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError>;

    /// Removes a delivered (or given up) job, or with `retry` records the
    /// failed attempt and releases the lease.
    async fn finish_webhook_job(
        &self,
        id: u64,
        retry: Option<&WebhookJob>,
    ) -> Result<(), StoreError>;
}

//! Persistence. Two parts, kept apart because they will not always live in
//! the same place:
//!
//! - [`registry`]: the registry's records (domains, suspensions,
//!   applications, audit, notice claims), behind the async, dyn-compatible
//!   [`RegistryStore`] trait, so that the backend is picked at run time (the
//!   redb file today, a database shared by several nodes later). The redb
//!   backend ([`RedbRegistry`]) does its blocking work on tokio's blocking
//!   pool, inside the handle: callers just `.await`.
//! - [`local`]: what belongs to this node only (connection log, MTA-STS
//!   cache, governor state, webhook outbox), on the concrete [`LocalStore`],
//!   whose calls block.
//!
//! - [`shared`]: with a shared store, the governor's state that every node
//!   needs (scopes, recipient memory, webhook outbox), as bytes.
//!
//! Both open the one redb file `data_dir/ugem.redb` ([`open`]); nothing
//! outside this module touches redb. The records themselves are in
//! [`crate::model`].

pub mod contract;
mod db;
pub mod export;
pub mod local;
pub mod registry;
pub mod shared;

use std::path::{Path, PathBuf};

pub use db::SCHEMA_VERSION;
pub use local::LocalStore;
pub use registry::postgres::PgRegistry;
pub use registry::redb::RedbRegistry;
pub use registry::{DomainWrite, Expect, PEER_MESSAGE_MAX, PeerLink, RegistryStore};
pub use shared::{MemoryCopy, ScopeRow, SharedState};

/// Opens (or creates) `data_dir/ugem.redb`: the node-local store and the
/// registry's redb backend over the same file.
pub fn open(data_dir: &Path) -> Result<(LocalStore, RedbRegistry), StoreError> {
    let db = db::Db::open(data_dir, tables)?;
    Ok((LocalStore::new(db.clone()), RedbRegistry::new(db)))
}

/// Opens (creates when missing) every table of the store: new tables need
/// no schema bump.
fn tables(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(registry::redb::domains::TABLE)?;
    tx.open_table(registry::redb::suspensions::TABLE)?;
    tx.open_table(registry::redb::audit::TABLE)?;
    tx.open_table(local::connections::TABLE)?;
    tx.open_table(registry::redb::applications::TABLE)?;
    tx.open_table(local::governor::STATS)?;
    tx.open_table(registry::redb::notices::TABLE)?;
    tx.open_table(registry::redb::notices::NUMBERS)?;
    tx.open_table(local::webhooks::TABLE)?;
    tx.open_table(registry::redb::changes::VERSIONS)?;
    tx.open_table(registry::redb::changes::REQUESTS)?;
    tx.open_table(registry::redb::sightings::TABLE)?;
    tx.open_table(registry::redb::servers::TABLE)?;
    tx.open_table(registry::redb::listings::TABLE)?;
    tx.open_table(local::tlsrpt::TABLE)?;
    tx.open_table(local::outbox::TABLE)?;
    tx.open_table(local::registry_copy::TABLE)?;
    Ok(())
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (a running ugem) holds the store.
    #[error(
        "the store {path} is in use by another process (is another ugem running with data_dir {dir}?)"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// Its folder.
        dir: PathBuf,
    },
    /// The file is not a readable redb database.
    #[error("the store {path} is damaged or not a ugem store: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        detail: String,
    },
    /// Written by a newer ugem.
    #[error("the store was written by a newer ugem (schema {found}, this build knows {supported})")]
    SchemaTooNew {
        /// Version found.
        found: u64,
        /// Version this build writes.
        supported: u64,
    },
    /// A record could not be decoded.
    #[error("record {key} in {table} cannot be decoded: {detail}")]
    Decode {
        /// Table name.
        table: &'static str,
        /// Key, printed.
        key: String,
        /// serde's message.
        detail: String,
    },
    /// The backend cannot be reached or did not answer in time (a
    /// networked store); the call may be retried later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A conditional write found the stored record not as the caller read
    /// it: another writer (another node) was first.
    #[error("changed meanwhile: {0}")]
    Conflict(String),
    /// The record a call changes does not exist.
    #[error("no such record: {0}")]
    NotFound(String),
    /// Any other storage failure.
    #[error("storage error: {0}")]
    Backend(String),
}

macro_rules! backend_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Backend(e.to_string())
            }
        }
    )*};
}
backend_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

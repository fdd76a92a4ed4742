//! The node-local store: what this node keeps for itself and no other node
//! needs (the connection log, the MTA-STS policy cache, the governor's
//! detector state, the webhook outbox, the TLS-RPT day counts, the
//! registry writes waiting for an unreachable shared store, and the last
//! registry read from it). Calls block on disk I/O: from async
//! code, call them inside `spawn_blocking` when they write.

pub mod connections;
pub mod governor;
pub mod mta_sts;
pub mod outbox;
pub mod registry_copy;
pub mod tlsrpt;
pub mod webhooks;

use std::path::Path;

use super::StoreError;
use super::db::Db;

pub use connections::ConnectionLog;

/// Handle to the node-local store; cheap to clone.
#[derive(Clone, Debug)]
pub struct LocalStore {
    db: Db,
}

impl LocalStore {
    pub(super) fn new(db: Db) -> LocalStore {
        LocalStore { db }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// Size of the database file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.db.size_bytes()
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        self.db.schema_version()
    }
}

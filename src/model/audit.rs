//! The audit trail: every mutating admin call, who made it and how it ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Sequence number (assigned by the store).
    #[serde(default)]
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Token name, or `auto` for the gateway's own decisions.
    pub actor: String,
    /// What, e.g. `domain.suspend`.
    pub action: String,
    /// On what, e.g. the domain name.
    pub target: String,
    /// Client address of the API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `ok`, `denied` or `error: ...`.
    pub outcome: String,
    /// Refused calls folded into this record (same client, actor and
    /// minute); 1 for everything else.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The outcome of refused calls, whose records are compacted and pruned.
pub const DENIED: &str = "denied";

/// New count and actions of a refused-call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedUpdate {
    /// The record.
    pub seq: u64,
    /// Calls folded into it.
    pub count: u64,
    /// The actions they attempted, comma-separated.
    pub action: String,
}

/// Size of the audit table, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditSize {
    /// Records.
    pub records: u64,
    /// Bytes the records take in the store.
    pub bytes: u64,
}

//! The webhook outbox's jobs: events waiting to be POSTed.

use serde::{Deserialize, Serialize};

/// One event for one URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// Identifier (assigned by the store).
    #[serde(default)]
    pub id: u64,
    /// Unique across the nodes (random), so that moving a job from the
    /// local outbox into a shared one twice stores it once.
    #[serde(default)]
    pub key: String,
    /// Where it goes.
    pub url: String,
    /// The JSON event.
    pub body: serde_json::Value,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this time (unix ms).
    pub next_at_ms: u64,
}

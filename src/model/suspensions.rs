//! Suspensions of a domain or a sender, with their history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Domain;

/// What is suspended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Scope {
    /// A whole registered domain.
    Domain(Domain),
    /// One sender address (lowercased).
    Sender(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Domain(d) => write!(f, "domain {d}"),
            Scope::Sender(s) => write!(f, "sender {s}"),
        }
    }
}

/// How a suspension ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restoration {
    /// Token name, or `auto` for an expiry.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened to the held mail: `released` or `deleted`.
    pub held_mail: String,
}

/// One suspension, active or ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspensionRecord {
    /// Identifier (assigned by the store).
    #[serde(default)]
    pub id: u64,
    /// What is suspended.
    pub scope: Scope,
    /// The rule that tripped, or `manual`.
    pub rule: String,
    /// Human-readable reason.
    pub reason: String,
    /// The counters that tripped, for automatic suspensions.
    #[serde(default)]
    pub evidence: serde_json::Value,
    /// Token name, or `auto`.
    pub actor: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Optional automatic end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Set once restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restoration>,
}

impl SuspensionRecord {
    /// True while it has not been restored.
    pub fn is_active(&self) -> bool {
        self.restored.is_none()
    }
}

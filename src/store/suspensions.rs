//! Suspensions of a domain or a sender, with their history.

use chrono::{DateTime, Utc};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, all_values};
use crate::domain::Domain;

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("suspensions");

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

impl super::Numbered for SuspensionRecord {
    const NAME: &'static str = "suspensions";
    fn number(&self) -> u64 {
        self.id
    }
    fn set_number(&mut self, id: u64) {
        self.id = id;
    }
}

impl Store {
    /// Stores a new suspension and returns its id.
    pub fn insert_suspension(&self, rec: &SuspensionRecord) -> Result<u64, StoreError> {
        self.insert_numbered(TABLE, rec)
    }

    /// Replaces a stored suspension; it must exist.
    pub fn update_suspension(&self, rec: &SuspensionRecord) -> Result<(), StoreError> {
        self.replace_numbered(TABLE, rec)
    }

    /// One suspension by id.
    pub fn get_suspension(&self, id: u64) -> Result<Option<SuspensionRecord>, StoreError> {
        self.get_numbered(TABLE, id)
    }

    /// Every suspension, oldest first.
    pub fn list_suspensions(&self) -> Result<Vec<SuspensionRecord>, StoreError> {
        self.read(|tx| all_values(tx, TABLE, "suspensions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut rec = SuspensionRecord {
            id: 0,
            scope: Scope::Sender("bot@agency.example.kz".into()),
            rule: "manual".into(),
            reason: "phishing".into(),
            evidence: serde_json::json!({"recipients_per_hour": 5000}),
            actor: "ops".into(),
            started_at: Utc::now(),
            expires_at: None,
            restored: None,
        };
        rec.id = s.insert_suspension(&rec).unwrap();
        assert!(s.get_suspension(rec.id).unwrap().unwrap().is_active());
        rec.restored = Some(Restoration {
            by: "ops".into(),
            at: Utc::now(),
            reason: Some("password reset".into()),
            held_mail: "released".into(),
        });
        s.update_suspension(&rec).unwrap();
        let all = s.list_suspensions().unwrap();
        assert_eq!(all.len(), 1);
        assert!(!all[0].is_active());
        assert_eq!(all[0].evidence["recipients_per_hour"], 5000);
    }
}

//! The gateway nodes that share one registry: who they are and where their
//! admin API answers, so that a question about one node's own records (its
//! connection log) can be put to every node.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One node, as it last announced itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `store.node_name` (default `server.hostname`); unique per node.
    pub name: String,
    /// Where the other nodes reach its admin API (`http(s)://host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// When this run of the node started.
    pub started_at: DateTime<Utc>,
    /// Its latest announcement (every 30 s while it runs).
    pub seen_at: DateTime<Utc>,
}

/// A node silent for longer than this is taken as down.
pub const NODE_SILENT_AFTER_SECS: i64 = 120;

impl NodeRecord {
    /// Whether it announced itself recently enough to be asked.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        (now - self.seen_at).num_seconds() <= NODE_SILENT_AFTER_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_silent_for_two_minutes_is_down() {
        let now: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
        let mut n = NodeRecord {
            name: "mx1".into(),
            admin_url: Some("http://10.0.0.1:8025".into()),
            started_at: now,
            seen_at: now - chrono::Duration::seconds(119),
        };
        assert!(n.is_live(now));
        n.seen_at = now - chrono::Duration::seconds(121);
        assert!(!n.is_live(now));
    }
}

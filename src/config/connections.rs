//! `[connections]`: the connection log's retention.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::values::Span;

/// `[connections]`: the connection log.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsSection {
    /// How long session records are kept.
    pub retention: Span,
    /// How often old records are pruned.
    pub prune_interval: Span,
}

impl Default for ConnectionsSection {
    fn default() -> Self {
        ConnectionsSection {
            retention: Span(Duration::from_secs(90 * 86_400)),
            prune_interval: Span(Duration::from_secs(3600)),
        }
    }
}

impl ConnectionsSection {
    /// What is wrong with the section's values.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.retention.0 < Duration::from_secs(3600) {
            out.push(ConfigProblem::new(
                "connections.retention",
                "must be at least 1h",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_under_an_hour_is_refused() {
        assert!(ConnectionsSection::default().check().is_empty());
        let c = ConnectionsSection {
            retention: Span(Duration::from_secs(60)),
            ..ConnectionsSection::default()
        };
        assert_eq!(c.check()[0].key, "connections.retention");
    }
}

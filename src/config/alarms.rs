//! `[alarms]`: when the postmaster is told that the queue backs up.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::values::Span;

/// `[alarms]`: when the postmaster is told that the queue backs up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmsSection {
    /// Alert when more messages than this are queued.
    pub queue_size: usize,
    /// Alert when the oldest queued message is older than this.
    pub queue_age: Span,
    /// How often the queue is checked.
    pub check_interval: Span,
    /// While the condition lasts, repeat the alert this often.
    pub repeat: Span,
}

impl Default for AlarmsSection {
    fn default() -> Self {
        AlarmsSection {
            queue_size: 10_000,
            queue_age: Span(Duration::from_secs(3600)),
            check_interval: Span(Duration::from_secs(60)),
            repeat: Span(Duration::from_secs(3600)),
        }
    }
}

impl AlarmsSection {
    /// What is wrong with the section's values: nothing so far (every
    /// value that parses is usable), kept so every section answers alike.
    pub fn check(&self) -> Vec<ConfigProblem> {
        Vec::new()
    }
}

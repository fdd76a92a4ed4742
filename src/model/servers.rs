//! Suspension of one server address: a compromised mail server that hosts
//! several agencies' domains, refused (451) whichever domain it sends as.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::suspensions::Restoration;
use crate::domain::Domain;

/// One suspension of a server address, active or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSuspension {
    /// Assigned by the store.
    pub id: u64,
    /// The server's address.
    pub address: IpAddr,
    /// Why.
    pub reason: String,
    /// Who (token name).
    pub actor: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The domains registered with the address when it started (notified).
    pub domains: Vec<Domain>,
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restoration>,
}

impl ServerSuspension {
    /// True until restored.
    pub fn is_active(&self) -> bool {
        self.restored.is_none()
    }
}

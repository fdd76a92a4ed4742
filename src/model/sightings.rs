//! Servers the registry does not know: addresses that sent as a registered
//! domain and were refused for not being its registered servers, and the
//! time-limited allowances staff may grant one of them.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Domain;

/// An unregistered address seen sending as a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisteredServer {
    /// The domain it claimed (MAIL FROM).
    pub domain: Domain,
    /// The client address.
    pub address: IpAddr,
    /// First refusal.
    pub first_seen: DateTime<Utc>,
    /// Latest refusal.
    pub last_seen: DateTime<Utc>,
    /// Refused sessions.
    pub count: u64,
    /// One refusal as sent (the latest): its sender and reply.
    pub sample: String,
}

impl UnregisteredServer {
    /// Adds a later batch's sighting of the same address: counts add up,
    /// the seen-times widen, and the latest refusal stays as the sample.
    pub fn merge(&mut self, s: &UnregisteredServer) {
        self.first_seen = self.first_seen.min(s.first_seen);
        if s.last_seen >= self.last_seen {
            self.last_seen = s.last_seen;
            self.sample = s.sample.clone();
        }
        self.count = self.count.saturating_add(s.count);
    }
}

/// Staff let one address relay as the domain until a time: a server being
/// moved, before the change request is decided. Never granted automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAllowance {
    /// The address.
    pub address: IpAddr,
    /// The end of the allowance (the end of the local date staff gave).
    pub until: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Who granted it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

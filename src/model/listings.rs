//! Listings of the gateway's own addresses on blocklists: when one was seen,
//! on which list, with what reply, and when it ended.
//!
//! Two writers feed these records: the governor, when a remote server
//! refuses mail naming a gateway address as listed, and a blocklist watcher
//! that queries DNSBLs for the gateway's addresses. Both go through
//! `RegistryStore::record_listing` (one open record per address and list)
//! and `RegistryStore::end_listing`.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One listing of a gateway address, open or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayListing {
    /// Assigned by the store.
    #[serde(default)]
    pub id: u64,
    /// When it was first seen.
    pub at: DateTime<Utc>,
    /// The gateway address listed.
    pub address: IpAddr,
    /// The list (`zen.spamhaus.org`), or who refused when the reply names none.
    pub list: String,
    /// The code seen: an SMTP reply code (`554 5.7.1`) or a DNSBL answer (`127.0.0.2`).
    pub code: String,
    /// What the list or the remote said.
    pub meaning: String,
    /// What saw it: `refusal` (a remote server's reply) or `dnsbl` (a query).
    #[serde(default)]
    pub source: String,
    /// When it was last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    /// When it ended (delisted), once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delisted_at: Option<DateTime<Utc>>,
}

impl GatewayListing {
    /// True until delisted.
    pub fn is_open(&self) -> bool {
        self.delisted_at.is_none()
    }
}

//! The connection log's records: one per SMTP session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One reply that refused something during a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The command verb it answered (`MAIL`, `RCPT`, `DATA`, ...).
    pub command: String,
    /// Reply code.
    pub code: u16,
    /// Reply text, first line.
    pub text: String,
}

/// One SMTP session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// Session id (as in the logs).
    pub session: String,
    /// Client address.
    pub peer: String,
    /// EHLO/HELO name given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehlo: Option<String>,
    /// TLS version and cipher, when STARTTLS was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// Registered domain(s) the session's mail matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// MAIL commands.
    pub mail_count: u32,
    /// RCPT commands.
    pub rcpt_count: u32,
    /// Messages accepted (queued).
    pub messages: u32,
    /// Queue ids of the accepted messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_ids: Vec<String>,
    /// Every refusal, in order (capped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub ended_at: DateTime<Utc>,
    /// Bytes read from the client.
    pub bytes_in: u64,
    /// Bytes written to the client.
    pub bytes_out: u64,
    /// How it ended: `quit`, `timeout`, `error`, `limit`, ...
    pub close: String,
}

/// Filters for the connection log's listing (`LocalStore::list_connections`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConnectionFilter {
    /// Only sessions that matched this registered domain.
    pub domain: Option<String>,
    /// Only sessions from this IP.
    pub ip: Option<std::net::IpAddr>,
    /// Only sessions that started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

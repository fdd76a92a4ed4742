//! `[server]`: identity, storage, logging, shutdown.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::domain::Domain;
use crate::values::{ByteSize, PlainAddress, Span, parse_from_str};

/// `TimeoutStopSec` of the shipped unit (`systemd/ugem.service`); a test
/// checks that the two agree.
pub const UNIT_TIMEOUT_STOP: Duration = Duration::from_secs(60);
/// Bounds of `server.shutdown_timeout`: the largest leaves systemd 10 s
/// before it sends SIGKILL.
pub const MIN_SHUTDOWN: Duration = Duration::from_secs(1);
/// See [`MIN_SHUTDOWN`].
pub const MAX_SHUTDOWN: Duration = Duration::from_secs(50);
/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]`: identity and storage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// EHLO name and the name in our Received headers.
    #[serde(deserialize_with = "parse_from_str")]
    pub hostname: Domain,
    /// Folder of the embedded store and the queue.
    pub data_dir: PathBuf,
    /// Where alerts go; also the target of `RCPT TO:<postmaster>`.
    #[serde(deserialize_with = "parse_from_str")]
    pub postmaster: PlainAddress,
    /// Deliver mail for the postmaster address to the local Maildir
    /// `data_dir/mailbox` (read with `ugem mailbox`) instead of over SMTP.
    pub postmaster_mailbox: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Default log filter (tracing env-filter syntax); `RUST_LOG` overrides.
    pub log_level: String,
    /// The longest a shutdown (SIGTERM) may take: state saved, sessions
    /// answered `421 4.3.2`, deliveries in flight put back in the queue.
    /// Kept well under systemd's `TimeoutStopSec` (60 s in the shipped unit).
    pub shutdown_timeout: Span,
    /// Memory for the queue database's page cache.
    pub queue_cache_size: ByteSize,
    /// The 250 after DATA waits for an append to the queue's acceptance journal rather than
    /// for a durable commit of the queue database (`queue/src/journal.rs`).
    pub queue_journal: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            hostname: Domain::parse("mx.gateway.example").expect("valid default"),
            data_dir: PathBuf::from("var"),
            postmaster: "postmaster@gateway.example".parse().expect("valid default"),
            postmaster_mailbox: false,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            shutdown_timeout: Span(Duration::from_secs(20)),
            queue_cache_size: ByteSize(64 << 20),
            queue_journal: true,
        }
    }
}

impl ServerSection {
    /// What is wrong with the section's values.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if !(MIN_SHUTDOWN..=MAX_SHUTDOWN).contains(&self.shutdown_timeout.0) {
            out.push(ConfigProblem::new(
                "server.shutdown_timeout",
                format!(
                    "must lie between {}s and {}s (systemd's TimeoutStopSec in systemd/ugem.service is {}s and must stay above it)",
                    MIN_SHUTDOWN.as_secs(),
                    MAX_SHUTDOWN.as_secs(),
                    UNIT_TIMEOUT_STOP.as_secs()
                ),
            ));
        }
        // A filter that does not parse would be dropped silently by the
        // subscriber: said here, at start and on reload.
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            out.push(ConfigProblem::new(
                "server.log_level",
                format!("not a log filter ({e}): a level such as info, or target=level pairs"),
            ));
        }
        if self.queue_cache_size.0 < 1 << 20 {
            out.push(ConfigProblem::new(
                "server.queue_cache_size",
                "must be at least 1MiB",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_and_cache_bounds_are_checked() {
        assert!(ServerSection::default().check().is_empty());
        let s = ServerSection {
            shutdown_timeout: Span(MAX_SHUTDOWN + Duration::from_secs(1)),
            queue_cache_size: ByteSize(1000),
            log_level: "ugem=loud".into(),
            ..ServerSection::default()
        };
        let keys: Vec<String> = s.check().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "server.shutdown_timeout",
                "server.log_level",
                "server.queue_cache_size"
            ]
        );
    }
}

//! `[smtp]`: the inbound listener and its limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use super::lists::one_or_many;
use crate::values::{ByteSize, Span};

/// `[smtp]`: the inbound listener and its limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSection {
    /// Addresses to listen on.
    #[serde(deserialize_with = "one_or_many")]
    pub listen: Vec<SocketAddr>,
    /// Largest message accepted (advertised with SIZE).
    pub max_message_size: ByteSize,
    /// Recipients per message; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_line_length: usize,
    /// Longest text line in DATA, CRLF included (RFC 5322 allows 1000).
    pub max_data_line_length: usize,
    /// Largest header section.
    pub max_header_size: ByteSize,
    /// Most `Received:` headers before a message is taken for a loop.
    pub max_received_headers: usize,
    /// Time allowed for one command line (a total, not per read).
    pub command_timeout: Span,
    /// Time allowed for a whole DATA or BDAT transfer.
    pub data_timeout: Span,
    /// Time allowed for a whole session.
    pub session_timeout: Span,
    /// Errors after which the session gets 421 and is closed.
    pub max_errors: u32,
    /// Concurrent sessions in total.
    pub max_connections: usize,
    /// Concurrent sessions per client IP.
    pub max_connections_per_ip: usize,
    /// Free space below which the queue answers 452 4.3.1.
    pub min_free_space: ByteSize,
    /// Message data a session keeps in memory; beyond it, the message goes
    /// to a spool file under `data_dir/spool`.
    pub spool_threshold: ByteSize,
    /// PEM certificate chain; STARTTLS is offered when set (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Span,
    /// Ask a registered domain's server whether an inbound recipient exists
    /// before accepting it, so unknown users are refused at RCPT and the
    /// gateway never bounces to forged senders (backscatter).
    pub verify_recipients: bool,
    /// How long "exists" answers are remembered.
    pub verify_positive_ttl: Span,
    /// How long "unknown" answers are remembered.
    pub verify_negative_ttl: Span,
    /// Time allowed for one probe; then `verify_unsettled` applies.
    pub verify_timeout: Span,
    /// When the server cannot settle it (down, slow, 4xx): accept the
    /// recipient and queue (store-and-forward), or defer it with 450 4.1.1
    /// (Postfix's default) so the sender's MTA keeps the mail.
    pub verify_unsettled: VerifyUnsettled,
    /// Probes one client IP may cause per minute (a dictionary attack
    /// through the gateway); over it, `450 4.7.1`. Cached answers are free.
    pub verify_probes_per_minute: u32,
}

/// What an unsettled recipient verification does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VerifyUnsettled {
    /// Accept and queue.
    #[default]
    Accept,
    /// `450 4.1.1`: the sending MTA retries later.
    Defer,
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            listen: vec!["127.0.0.1:2525".parse().expect("valid default")],
            max_message_size: ByteSize(25 << 20),
            max_recipients: 100,
            max_line_length: 2048,
            max_data_line_length: 1000,
            max_header_size: ByteSize(100 << 10),
            max_received_headers: 50,
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(600)),
            session_timeout: Span(Duration::from_secs(1800)),
            max_errors: 10,
            max_connections: 1000,
            max_connections_per_ip: 50,
            min_free_space: ByteSize(100 << 20),
            spool_threshold: ByteSize(256 << 10),
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout: Span(Duration::from_secs(30)),
            verify_recipients: true,
            verify_positive_ttl: Span(Duration::from_secs(86_400)),
            verify_negative_ttl: Span(Duration::from_secs(3_600)),
            verify_timeout: Span(Duration::from_secs(10)),
            verify_unsettled: VerifyUnsettled::Accept,
            verify_probes_per_minute: 120,
        }
    }
}

impl SmtpSection {
    /// What is wrong with the section's values (and whether its
    /// certificate files can be read).
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: &str| out.push(ConfigProblem::new(key, message));
        if self.listen.is_empty() {
            bad("smtp.listen", "at least one address is needed");
        }
        if self.max_recipients == 0 {
            bad("smtp.max_recipients", "must be at least 1");
        }
        if self.max_message_size.0 < 65_536 {
            bad(
                "smtp.max_message_size",
                "must be at least 64KiB (RFC 5321 section 4.5.3.1.7)",
            );
        }
        if !(512..=65_536).contains(&self.max_line_length) {
            bad("smtp.max_line_length", "must lie between 512 and 65536");
        }
        if !(1000..=65_536).contains(&self.max_data_line_length) {
            bad(
                "smtp.max_data_line_length",
                "must lie between 1000 and 65536",
            );
        }
        if !(4096..=64 << 20).contains(&self.spool_threshold.0) {
            bad("smtp.spool_threshold", "must lie between 4KiB and 64MiB");
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            bad(
                "smtp.max_connections",
                "connection limits must be at least 1",
            );
        }
        for (key, span) in [
            ("smtp.command_timeout", self.command_timeout),
            ("smtp.data_timeout", self.data_timeout),
            ("smtp.session_timeout", self.session_timeout),
            ("smtp.tls_handshake_timeout", self.tls_handshake_timeout),
        ] {
            if span.0.is_zero() {
                bad(key, "must be longer than zero");
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bad("smtp.tls_key", "tls_cert is set but tls_key is not"),
            (None, Some(_)) => bad("smtp.tls_cert", "tls_key is set but tls_cert is not"),
            (Some(c), Some(k)) => {
                for (key, p) in [("smtp.tls_cert", c), ("smtp.tls_key", k)] {
                    if let Err(e) = std::fs::metadata(p) {
                        out.push(ConfigProblem::new(
                            key,
                            format!("cannot read {}: {e}", p.display()),
                        ));
                    }
                }
            }
            (None, None) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_certificate_pairs_are_checked() {
        assert!(SmtpSection::default().check().is_empty());
        let s = SmtpSection {
            listen: Vec::new(),
            max_recipients: 0,
            data_timeout: Span(Duration::ZERO),
            tls_key: Some("key.pem".into()),
            ..SmtpSection::default()
        };
        let keys: Vec<String> = s.check().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "smtp.listen",
                "smtp.max_recipients",
                "smtp.data_timeout",
                "smtp.tls_cert"
            ]
        );
    }
}

//! The connection log's records: one per SMTP session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One reply that refused something during a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The command line it answered, cut to 100 characters with anything
    /// unprintable replaced (`RCPT TO:<x@y>`; `AUTH` without its
    /// arguments); empty for a refusal no command caused (at connect).
    #[serde(default)]
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
    /// The domains its MAIL FROM addresses claimed, registered or not,
    /// accepted or refused (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimed: Vec<String>,
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
    /// Only sessions that matched this registered domain or whose MAIL
    /// FROM claimed it.
    pub domain: Option<String>,
    /// Only sessions from this IP.
    pub ip: Option<std::net::IpAddr>,
    /// Only sessions that started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
    /// `all`: every node sharing the registry is asked for its own log
    /// (the admin API only); default this node's.
    pub nodes: Option<NodeScope>,
}

/// Whose connection log a listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeScope {
    /// This node's own.
    Local,
    /// Every live node's, merged newest first.
    All,
}

/// Longest command line kept with a refusal.
pub const COMMAND_LOGGED_MAX: usize = 100;

/// A command line as the connection log keeps it: at most
/// [`COMMAND_LOGGED_MAX`] characters, printable ASCII (anything else is
/// `?`), and for `AUTH` the verb alone (its arguments may be credentials).
pub fn logged_command(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let verb_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    let line = if line[..verb_end].eq_ignore_ascii_case(b"AUTH") {
        &line[..verb_end]
    } else {
        line
    };
    line.iter()
        .take(COMMAND_LOGGED_MAX)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_cut_sanitised_and_credentials_left_out() {
        assert_eq!(
            logged_command(b"RCPT TO:<x@y.example>\r\n"),
            "RCPT TO:<x@y.example>"
        );
        assert_eq!(
            logged_command(b"MAIL FROM:<\x1b[31m@x>"),
            "MAIL FROM:<?[31m@x>"
        );
        assert_eq!(logged_command(b"auth PLAIN AGFsaWNlAHNlY3JldA=="), "auth");
        let long = format!("RCPT TO:<{}@x>", "a".repeat(300));
        assert_eq!(logged_command(long.as_bytes()).len(), COMMAND_LOGGED_MAX);
        // Old records without the field stay readable.
        let r: Refusal = serde_json::from_str(r#"{"code":550,"text":"no"}"#).unwrap();
        assert_eq!(r.command, "");
    }
}

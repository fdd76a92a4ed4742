//! Typed settings: a TOML file plus `UGEM_*` environment overrides.
//!
//! Loading happens in two passes so that `ugem check-config` can name every
//! problem at once: each key is first parsed on its own (so one bad value does
//! not hide the next), then the whole configuration is checked for problems
//! that span keys or touch the file system.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::domain::Domain;
use crate::values::parse_from_str;
pub use crate::values::{ByteSize, HostPort, PlainAddress, Span, TlsPolicy};

/// The configuration shipped in the binary; `ugem serve` uses it when no
/// `--config` is given (relative paths then resolve against the working folder).
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/ugem.toml");

/// `TimeoutStopSec` of the shipped unit (`systemd/ugem.service`); a test
/// checks that the two agree.
pub const UNIT_TIMEOUT_STOP: Duration = Duration::from_secs(60);
/// Bounds of `server.shutdown_timeout`: the largest leaves systemd 10 s
/// before it sends SIGKILL.
pub const MIN_SHUTDOWN: Duration = Duration::from_secs(1);
/// See [`MIN_SHUTDOWN`].
pub const MAX_SHUTDOWN: Duration = Duration::from_secs(50);

/// One problem in a configuration, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `smtp.listen`; empty for file-level problems.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// Where the configuration came from.
    pub source_name: String,
    /// The problems, in file order of sections.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} problem(s) in configuration {}:",
            self.problems.len(),
            self.source_name
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A list that may also be written as one string, comma-separated (as
/// environment variables are).
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?
    {
        Raw::One(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Raw::Many(v) => v,
    };
    items
        .iter()
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
        })
        .collect()
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[server]`: identity and storage.
#[derive(Debug, Clone, Deserialize)]
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
        }
    }
}

/// `[smtp]`: the inbound listener and its limits.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
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

/// `[delivery]`: outbound settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// DNS servers (`ip:port`); empty means the system resolver.
    #[serde(deserialize_with = "one_or_many")]
    pub nameservers: Vec<SocketAddr>,
    /// Static next hops by recipient domain, or `*` for all.
    pub routes: BTreeMap<String, HostPort>,
    /// Concurrent outbound connections in total.
    pub max_connections: usize,
    /// Concurrent connections to one destination (domain or next hop).
    pub max_connections_per_destination: usize,
    /// Message bodies held in memory by deliveries at once; a message
    /// larger than this is delivered alone.
    pub max_body_memory: ByteSize,
    /// First retry delay; doubles per attempt.
    pub min_backoff: Span,
    /// Longest retry delay.
    pub max_backoff: Span,
    /// Give up (bounce) after this long in the queue.
    pub max_queue_lifetime: Span,
    /// Send a delay warning to the sender once a message is this old (off when unset).
    pub delay_warning: Option<Span>,
    /// Connect timeout per address.
    pub connect_timeout: Span,
    /// Timeout for the greeting and each command reply (RFC 5321 4.5.3.2: 5 min).
    pub command_timeout: Span,
    /// Timeout for the reply after the end of data (RFC 5321 4.5.3.2: 10 min).
    pub data_timeout: Span,
    /// How long an idle connection is kept for the next message to the same place.
    pub idle_timeout: Span,
    /// STARTTLS toward remote servers: none, may (opportunistic), encrypt, verify.
    pub tls: TlsPolicy,
    /// Per recipient domain (or `.domain` for its subdomains): overrides `tls`.
    pub tls_policy: BTreeMap<String, TlsPolicy>,
    /// Extra trust anchors (PEM) for checking remote certificates, besides
    /// the system's: a national or private CA that partners' servers use.
    pub tls_ca_file: Option<PathBuf>,
    /// TCP port of MX targets: 25 on the internet; test labs change it.
    pub mx_port: u16,
    /// Honour recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// HTTPS port of MTA-STS policy hosts: 443 on the internet; labs change it.
    pub mta_sts_port: u16,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            nameservers: Vec::new(),
            routes: BTreeMap::new(),
            max_connections: 100,
            max_connections_per_destination: 10,
            max_body_memory: ByteSize(64 << 20),
            min_backoff: Span(Duration::from_secs(300)),
            max_backoff: Span(Duration::from_secs(4000)),
            max_queue_lifetime: Span(Duration::from_secs(5 * 86_400)),
            delay_warning: None,
            connect_timeout: Span(Duration::from_secs(30)),
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(600)),
            idle_timeout: Span(Duration::from_secs(10)),
            tls: TlsPolicy::May,
            tls_policy: BTreeMap::new(),
            tls_ca_file: None,
            mx_port: 25,
            mta_sts: true,
            mta_sts_port: 443,
        }
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Suspend, restore, queue operations.
    Operator,
    /// Everything.
    Admin,
}

/// One admin API token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who uses it; recorded as the actor in the audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The token in clear text.
    pub token: Option<String>,
    /// Or its SHA-256, as 64 hex digits (`printf %s TOKEN | sha256sum`).
    pub sha256: Option<String>,
}

/// `[admin]`: the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin API.
    #[serde(deserialize_with = "parse_from_str")]
    pub listen: SocketAddr,
    /// A single admin token (actor name `admin`); simplest setups.
    pub token: Option<String>,
    /// Named tokens with roles.
    pub tokens: Vec<TokenEntry>,
    /// PEM certificate chain; the API speaks HTTPS when set (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) the CLI trusts for the API's certificate, when
    /// it reads the address from this file; default: `tls_cert` itself and
    /// the system's CAs. `--ca` overrides it.
    pub tls_ca_file: Option<PathBuf>,
    /// How long audit records of refused calls (no token, unknown token,
    /// role too low) are kept; staff actions are kept for good.
    pub audit_refused_retention: Span,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:8025".parse().expect("valid default"),
            token: None,
            tokens: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca_file: None,
            audit_refused_retention: Span(Duration::from_secs(30 * 86_400)),
        }
    }
}

/// The token shipped in the embedded configuration.
pub const SHIPPED_TOKEN: &str = "change-me-now";

/// Clear-text tokens shorter than this are weak: refused beyond loopback.
pub const STRONG_TOKEN_LEN: usize = 20;

impl AdminSection {
    /// Whether the API listens on a loopback address only.
    pub fn is_loopback(&self) -> bool {
        self.listen.ip().is_loopback()
    }

    /// Whether the API speaks HTTPS.
    pub fn has_tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// Tokens that anyone could guess: the shipped one (also by its
    /// SHA-256) or clear-text ones shorter than [`STRONG_TOKEN_LEN`], with
    /// the key that holds each and why.
    pub fn weak_tokens(&self) -> Vec<(String, String)> {
        use sha2::Digest;
        let shipped_hash = hex::encode(sha2::Sha256::digest(SHIPPED_TOKEN.as_bytes()));
        let judge = |t: &str| -> Option<String> {
            if t == SHIPPED_TOKEN {
                Some(format!("`{SHIPPED_TOKEN}` is the token shipped with ugem"))
            } else if t.chars().count() < STRONG_TOKEN_LEN {
                Some(format!(
                    "the token has {} characters; at least {STRONG_TOKEN_LEN} are needed (e.g. `openssl rand -hex 24`)",
                    t.chars().count()
                ))
            } else {
                None
            }
        };
        let mut out = Vec::new();
        if let Some(t) = &self.token
            && let Some(why) = judge(t)
        {
            out.push(("admin.token".to_string(), why));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let why = match (&t.token, &t.sha256) {
                (Some(tok), _) => judge(tok),
                (None, Some(h)) if h.eq_ignore_ascii_case(&shipped_hash) => Some(format!(
                    "the sha256 is that of `{SHIPPED_TOKEN}`, the token shipped with ugem"
                )),
                _ => None,
            };
            if let Some(why) = why {
                out.push((format!("admin.tokens[{i}]"), why));
            }
        }
        out
    }
}

/// `[connections]`: the connection log.
#[derive(Debug, Clone, Deserialize)]
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

/// `[registration]`: the application workflow and its working-day calendar.
///
/// The default calendar is Kazakhstan's for 2026 and 2027 (see
/// `calendar`); the operator must review the lists every year.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSection {
    /// Public holidays; one on a Saturday or Sunday makes the next working day a day off.
    #[serde(deserialize_with = "one_or_many")]
    pub holidays: Vec<chrono::NaiveDate>,
    /// Days off that never move: religious holidays, weekdays off by a transfer decree.
    #[serde(deserialize_with = "one_or_many")]
    pub days_off: Vec<chrono::NaiveDate>,
    /// Saturdays and Sundays that a transfer decree makes working days.
    #[serde(deserialize_with = "one_or_many")]
    pub working_days: Vec<chrono::NaiveDate>,
    /// A decision is due this many working days after receipt.
    pub decision_days: u32,
    /// A rejected applicant may apply again after this many calendar days.
    pub resubmit_days: u32,
    /// How often pending applications are checked against their deadline.
    pub overdue_check_interval: Span,
    /// The gateway's public outbound addresses, which agencies' SPF records
    /// must authorize (checked in `application show` when set).
    #[serde(deserialize_with = "one_or_many")]
    pub gateway_addresses: Vec<std::net::IpAddr>,
    /// The operator's UTC offset: dates of receipt and decision are local dates.
    #[serde(deserialize_with = "parse_from_str")]
    pub utc_offset: UtcOffset,
    /// What happens to a disconnected domain's queued outbound mail.
    pub disconnect_queued: DisconnectQueued,
    /// Widest IPv4 server range (shortest prefix) staff may register
    /// without `--allow-wide-range`.
    pub widest_server_range_v4: u8,
    /// Widest IPv6 server range staff may register without `--allow-wide-range`.
    pub widest_server_range_v6: u8,
}

/// A disconnected domain's queued outbound mail: kept held for staff, or
/// bounced to its senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DisconnectQueued {
    /// Held until staff release or delete it.
    #[default]
    Hold,
    /// Returned to the senders with a DSN (5.7.1).
    Bounce,
}

impl Default for RegistrationSection {
    fn default() -> Self {
        RegistrationSection {
            holidays: crate::calendar::kazakhstan_holidays(),
            days_off: crate::calendar::kazakhstan_days_off(),
            working_days: Vec::new(),
            decision_days: 5,
            resubmit_days: 30,
            overdue_check_interval: Span(Duration::from_secs(3600)),
            gateway_addresses: Vec::new(),
            // Kazakhstan has one time zone, UTC+5, since 1 March 2024.
            utc_offset: UtcOffset(chrono::FixedOffset::east_opt(5 * 3600).expect("valid offset")),
            disconnect_queued: DisconnectQueued::Hold,
            widest_server_range_v4: 24,
            widest_server_range_v6: 48,
        }
    }
}

/// A fixed offset from UTC, written `+05:00` or `-03:30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset(pub chrono::FixedOffset);

impl FromStr for UtcOffset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a UTC offset like +05:00");
        let t = s.trim();
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(UtcOffset)
            .ok_or_else(bad)
    }
}

/// The whole configuration, with paths made absolute.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`
    pub server: ServerSection,
    /// `[smtp]`
    pub smtp: SmtpSection,
    /// `[delivery]`
    pub delivery: DeliverySection,
    /// `[admin]`
    pub admin: AdminSection,
    /// `[connections]`
    pub connections: ConnectionsSection,
    /// `[registration]`
    pub registration: RegistrationSection,
    /// `[alarms]`
    pub alarms: AlarmsSection,
    /// `[governor]`: rate limits, anomaly detection, automatic suspension.
    pub governor: crate::governor::settings::GovernorSection,
}

/// `[alarms]`: when the postmaster is told that the queue backs up.
#[derive(Debug, Clone, Deserialize)]
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

/// Where a configuration is read from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A TOML file; relative paths resolve against its folder.
    File(PathBuf),
    /// TOML text (the embedded default); relative paths resolve against `base`.
    Text {
        /// The TOML.
        text: String,
        /// Folder for relative paths.
        base: PathBuf,
    },
}

impl ConfigSource {
    fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Text { .. } => "(embedded default)".into(),
        }
    }
}

impl Config {
    /// Loads, overrides from the process environment, and validates.
    pub fn load(source: &ConfigSource) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(source, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        source: &ConfigSource,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<ConfigProblem>| ConfigError {
            source_name: source.name(),
            problems,
        };
        let (text, base) = match source {
            ConfigSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(vec![ConfigProblem {
                        key: String::new(),
                        message: format!("cannot read {}: {e}", path.display()),
                    }])
                })?;
                let base = path
                    .parent()
                    .map(|p| {
                        if p.as_os_str().is_empty() {
                            PathBuf::from(".")
                        } else {
                            p.to_path_buf()
                        }
                    })
                    .unwrap_or_else(|| PathBuf::from("."));
                (text, base)
            }
            ConfigSource::Text { text, base } => (text.clone(), base.clone()),
        };
        let base = std::path::absolute(&base).unwrap_or(base);

        let env_map: config::Map<String, String> = env
            .iter()
            // Only UGEM_<SECTION>__<KEY>: UGEM_CONFIG and UGEM_ADMIN_TOKEN are not keys.
            .filter(|(k, _)| k.strip_prefix("UGEM_").is_some_and(|r| r.contains("__")))
            .cloned()
            .collect();
        let built = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("UGEM")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_map)),
            )
            .build()
            .map_err(|e| {
                fail(vec![ConfigProblem {
                    key: String::new(),
                    message: format!("not valid TOML: {e}"),
                }])
            })?;
        let tree: serde_json::Value = built.try_deserialize().map_err(|e| {
            fail(vec![ConfigProblem {
                key: String::new(),
                message: e.to_string(),
            }])
        })?;

        let mut tree = tree;
        let retired = crate::governor::settings::strip_retired(&mut tree);
        let problems = check_keys(&tree);
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        let mut cfg: Config = serde_json::from_value(tree).map_err(|e| {
            fail(vec![ConfigProblem {
                key: String::new(),
                message: e.to_string(),
            }])
        })?;
        cfg.governor.retired = retired;
        cfg.resolve_paths(&base);
        let problems = cfg.check();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(fail(problems))
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.server.data_dir);
        if let Some(p) = self.smtp.tls_cert.as_mut() {
            abs(p);
        }
        if let Some(p) = self.smtp.tls_key.as_mut() {
            abs(p);
        }
        if let Some(p) = self.delivery.tls_ca_file.as_mut() {
            abs(p);
        }
        for p in [
            &mut self.admin.tls_cert,
            &mut self.admin.tls_key,
            &mut self.admin.tls_ca_file,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
    }

    /// What is allowed but unwise, for `check-config` and the log at start:
    /// a weak admin token on loopback, an API beyond loopback without TLS.
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        let a = &self.admin;
        let mut out = Vec::new();
        if a.is_loopback() {
            for (key, why) in a.weak_tokens() {
                out.push(ConfigProblem {
                    key,
                    message: format!(
                        "weak admin token: {why}; accepted only because admin.listen {} is loopback",
                        a.listen
                    ),
                });
            }
        } else if !a.has_tls() {
            out.push(ConfigProblem {
                key: "admin.listen".into(),
                message: format!(
                    "the admin API listens on {} beyond loopback without TLS: tokens cross the network in clear; set admin.tls_cert and admin.tls_key",
                    a.listen
                ),
            });
        }
        out
    }

    /// Checks that span keys or touch the file system.
    fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: key.into(),
                message,
            })
        };
        if let Err(e) = std::fs::create_dir_all(&self.server.data_dir) {
            bad(
                "server.data_dir",
                format!("cannot create {}: {e}", self.server.data_dir.display()),
            );
        } else if !self.server.data_dir.is_dir() {
            bad(
                "server.data_dir",
                format!("{} is not a folder", self.server.data_dir.display()),
            );
        }
        if self.smtp.listen.is_empty() {
            bad("smtp.listen", "at least one address is needed".into());
        }
        if self.admin.listen.port() != 0 && self.smtp.listen.contains(&self.admin.listen) {
            bad(
                "admin.listen",
                format!("{} is also in smtp.listen", self.admin.listen),
            );
        }
        if self.smtp.max_recipients == 0 {
            bad("smtp.max_recipients", "must be at least 1".into());
        }
        if self.smtp.max_message_size.0 < 65_536 {
            bad(
                "smtp.max_message_size",
                "must be at least 64KiB (RFC 5321 section 4.5.3.1.7)".into(),
            );
        }
        if !(512..=65_536).contains(&self.smtp.max_line_length) {
            bad(
                "smtp.max_line_length",
                "must lie between 512 and 65536".into(),
            );
        }
        if !(1000..=65_536).contains(&self.smtp.max_data_line_length) {
            bad(
                "smtp.max_data_line_length",
                "must lie between 1000 and 65536".into(),
            );
        }
        if !(4096..=64 << 20).contains(&self.smtp.spool_threshold.0) {
            bad(
                "smtp.spool_threshold",
                "must lie between 4KiB and 64MiB".into(),
            );
        }
        if !(MIN_SHUTDOWN..=MAX_SHUTDOWN).contains(&self.server.shutdown_timeout.0) {
            bad(
                "server.shutdown_timeout",
                format!(
                    "must lie between {}s and {}s (systemd's TimeoutStopSec in systemd/ugem.service is {}s and must stay above it)",
                    MIN_SHUTDOWN.as_secs(),
                    MAX_SHUTDOWN.as_secs(),
                    UNIT_TIMEOUT_STOP.as_secs()
                ),
            );
        }
        if self.server.queue_cache_size.0 < 1 << 20 {
            bad("server.queue_cache_size", "must be at least 1MiB".into());
        }
        if self.smtp.max_connections == 0 || self.smtp.max_connections_per_ip == 0 {
            bad(
                "smtp.max_connections",
                "connection limits must be at least 1".into(),
            );
        }
        for (key, span) in [
            ("smtp.command_timeout", self.smtp.command_timeout),
            ("smtp.data_timeout", self.smtp.data_timeout),
            ("smtp.session_timeout", self.smtp.session_timeout),
            (
                "smtp.tls_handshake_timeout",
                self.smtp.tls_handshake_timeout,
            ),
        ] {
            if span.0.is_zero() {
                bad(key, "must be longer than zero".into());
            }
        }
        match (&self.smtp.tls_cert, &self.smtp.tls_key) {
            (Some(_), None) => bad("smtp.tls_key", "tls_cert is set but tls_key is not".into()),
            (None, Some(_)) => bad("smtp.tls_cert", "tls_key is set but tls_cert is not".into()),
            (Some(c), Some(k)) => {
                for (key, p) in [("smtp.tls_cert", c), ("smtp.tls_key", k)] {
                    if let Err(e) = std::fs::metadata(p) {
                        bad(key, format!("cannot read {}: {e}", p.display()));
                    }
                }
            }
            (None, None) => {}
        }
        for key in self.delivery.routes.keys() {
            if key != "*" && Domain::parse(key).is_err() {
                bad(
                    &format!("delivery.routes.{key}"),
                    "route keys are domain names or \"*\"".into(),
                );
            }
        }
        for key in self.delivery.tls_policy.keys() {
            if let Err(e) = crate::values::check_key(key) {
                bad(&format!("delivery.tls_policy.{key}"), e);
            }
        }
        if let Some(p) = &self.delivery.tls_ca_file
            && let Err(e) = crate::trust::load_roots(p)
        {
            bad("delivery.tls_ca_file", e.to_string());
        }
        let d = &self.delivery;
        if d.max_connections == 0 || d.max_connections_per_destination == 0 {
            bad(
                "delivery.max_connections",
                "connection limits must be at least 1".into(),
            );
        }
        if d.max_body_memory.0 < 1 << 20 {
            bad("delivery.max_body_memory", "must be at least 1MiB".into());
        }
        if d.min_backoff.0.is_zero() || d.min_backoff > d.max_backoff {
            bad(
                "delivery.min_backoff",
                "must be above zero and at most delivery.max_backoff".into(),
            );
        }
        if d.max_queue_lifetime.0 < d.min_backoff.0 {
            bad(
                "delivery.max_queue_lifetime",
                "must be at least delivery.min_backoff".into(),
            );
        }
        if self.admin.token.is_none() && self.admin.tokens.is_empty() {
            bad(
                "admin.token",
                "no admin token: set admin.token or add [[admin.tokens]]".into(),
            );
        }
        if matches!(&self.admin.token, Some(t) if t.len() < 8) {
            bad("admin.token", "tokens must be at least 8 characters".into());
        }
        for (i, t) in self.admin.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{i}]");
            match (&t.token, &t.sha256) {
                (Some(_), Some(_)) | (None, None) => {
                    bad(&key, "give exactly one of `token` and `sha256`".into())
                }
                (Some(tok), None) if tok.len() < 8 => {
                    bad(&key, "tokens must be at least 8 characters".into())
                }
                (None, Some(h)) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    bad(&key, "sha256 must be 64 hex digits".into())
                }
                _ => {}
            }
            if t.name.trim().is_empty() {
                bad(&key, "name must not be empty".into());
            }
        }
        if !self.admin.is_loopback() {
            for (key, why) in self.admin.weak_tokens() {
                bad(
                    &key,
                    format!(
                        "weak admin token: {why}; refused because admin.listen {} is not loopback",
                        self.admin.listen
                    ),
                );
            }
        }
        match (&self.admin.tls_cert, &self.admin.tls_key) {
            (Some(_), None) => bad("admin.tls_key", "tls_cert is set but tls_key is not".into()),
            (None, Some(_)) => bad(
                "admin.tls_cert",
                "tls_key is set but tls_cert is not".into(),
            ),
            (Some(c), Some(k)) => {
                if let Err(e) = crate::tls::load(c, k) {
                    bad("admin.tls_cert", e.to_string());
                }
            }
            (None, None) => {}
        }
        if let Some(p) = &self.admin.tls_ca_file
            && let Err(e) = crate::trust::load_roots(p)
        {
            bad("admin.tls_ca_file", e.to_string());
        }
        if self.admin.audit_refused_retention.0 < Duration::from_secs(3600) {
            bad(
                "admin.audit_refused_retention",
                "must be at least 1h".into(),
            );
        }
        if self.connections.retention.0 < Duration::from_secs(3600) {
            bad("connections.retention", "must be at least 1h".into());
        }
        let r = &self.registration;
        if !(1..=60).contains(&r.decision_days) {
            bad(
                "registration.decision_days",
                "must lie between 1 and 60".into(),
            );
        }
        if !(1..=365).contains(&r.resubmit_days) {
            bad(
                "registration.resubmit_days",
                "must lie between 1 and 365".into(),
            );
        }
        if r.overdue_check_interval.0 < Duration::from_secs(60) {
            bad(
                "registration.overdue_check_interval",
                "must be at least 1m".into(),
            );
        }
        if !(8..=32).contains(&r.widest_server_range_v4) {
            bad(
                "registration.widest_server_range_v4",
                "must lie between 8 and 32 (a prefix length)".into(),
            );
        }
        if !(16..=128).contains(&r.widest_server_range_v6) {
            bad(
                "registration.widest_server_range_v6",
                "must lie between 16 and 128 (a prefix length)".into(),
            );
        }
        for day in &r.working_days {
            use chrono::Datelike;
            if !matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
                bad(
                    "registration.working_days",
                    format!(
                        "{day} is a {}: only Saturdays and Sundays can be made working days",
                        day.weekday()
                    ),
                );
            } else if r.holidays.contains(day) || r.days_off.contains(day) {
                bad(
                    "registration.working_days",
                    format!("{day} is also listed as a holiday or day off"),
                );
            }
        }
        for (key, message) in self.governor.problems() {
            bad(&key, message);
        }
        out
    }
}

/// Parses every known key on its own so that each bad key is reported.
fn check_keys(tree: &serde_json::Value) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    let Some(top) = tree.as_object() else {
        out.push(ConfigProblem {
            key: String::new(),
            message: "the configuration must be a table".into(),
        });
        return out;
    };
    for (section, value) in top {
        let result = match section.as_str() {
            "server" => check_section::<ServerSection>(section, value),
            "smtp" => check_section::<SmtpSection>(section, value),
            "delivery" => check_section::<DeliverySection>(section, value),
            "admin" => check_section::<AdminSection>(section, value),
            "connections" => check_section::<ConnectionsSection>(section, value),
            "alarms" => check_section::<AlarmsSection>(section, value),
            "governor" => {
                check_section::<crate::governor::settings::GovernorSection>(section, value)
            }
            "registration" => check_section::<RegistrationSection>(section, value),
            _ => vec![ConfigProblem {
                key: section.clone(),
                message: "unknown section (known: server, smtp, delivery, admin, connections, registration, alarms, governor)"
                    .into(),
            }],
        };
        out.extend(result);
    }
    out
}

/// Deserializes a section one key at a time (every field has a default).
fn check_section<T: DeserializeOwned>(
    section: &str,
    value: &serde_json::Value,
) -> Vec<ConfigProblem> {
    let Some(map) = value.as_object() else {
        return vec![ConfigProblem {
            key: section.into(),
            message: "must be a table".into(),
        }];
    };
    let mut out = Vec::new();
    for (key, v) in map {
        let mut one = serde_json::Map::new();
        one.insert(key.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(serde_json::Value::Object(one)) {
            let msg = e.to_string();
            let msg = if msg.starts_with("unknown field") {
                msg.replacen("unknown field", "unknown key", 1)
            } else {
                msg
            };
            out.push(ConfigProblem {
                key: format!("{section}.{key}"),
                message: msg,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ugem.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = Config::load_with_env(&ConfigSource::File(path), &env);
        drop(dir);
        r
    }

    const MINIMAL: &str = "[admin]\ntoken = \"0123456789\"\n";

    fn keys(e: &ConfigError) -> Vec<&str> {
        e.problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn embedded_default_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        assert!(cfg.server.data_dir.starts_with(dir.path()));
    }

    #[test]
    fn sizes_and_durations_take_units() {
        let cfg = load(
            &format!(
                "{MINIMAL}[smtp]\nmax_message_size = \"10MiB\"\ncommand_timeout = \"5m\"\nmax_header_size = 2048\n[connections]\nretention = \"30d\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.smtp.max_message_size.0, 10 << 20);
        assert_eq!(cfg.smtp.command_timeout.0, Duration::from_secs(300));
        assert_eq!(cfg.smtp.max_header_size.0, 2048);
        assert_eq!(cfg.connections.retention.0, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn every_bad_key_is_named() {
        let err = load(
            &format!(
                "{MINIMAL}[smtp]\nlisten = [\"nonsense\"]\nlisen = 1\ncommand_timeout = \"5 parsecs\"\nmax_message_size = \"12 furlongs\"\n[bogus]\nx = 1\n"
            ),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in [
            "smtp.listen",
            "smtp.lisen",
            "smtp.command_timeout",
            "smtp.max_message_size",
            "bogus",
        ] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
        let text = err.to_string();
        assert!(text.contains("unknown key `lisen`"), "{text}");
    }

    #[test]
    fn environment_overrides_reach_nested_keys() {
        let cfg = load(
            MINIMAL,
            &[
                ("UGEM_SMTP__LISTEN", "127.0.0.1:3525,127.0.0.1:3526"),
                ("UGEM_SMTP__MAX_RECIPIENTS", "7"),
                ("UGEM_SERVER__HOSTNAME", "gw.example.kz"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.smtp.listen.len(), 2);
        assert_eq!(cfg.smtp.listen[0].port(), 3525);
        assert_eq!(cfg.smtp.max_recipients, 7);
        assert_eq!(cfg.server.hostname.as_str(), "gw.example.kz");
    }

    #[test]
    fn bad_environment_value_names_key() {
        let err = load(MINIMAL, &[("UGEM_SMTP__MAX_RECIPIENTS", "many")]).unwrap_err();
        assert_eq!(keys(&err), vec!["smtp.max_recipients"], "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_file_folder() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("etc");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("ugem.toml");
        std::fs::write(&path, format!("{MINIMAL}[server]\ndata_dir = \"spool\"\n")).unwrap();
        let cfg = Config::load_with_env(&ConfigSource::File(path), &[]).unwrap();
        assert_eq!(
            cfg.server.data_dir,
            std::path::absolute(sub.join("spool")).unwrap()
        );
        assert!(cfg.server.data_dir.is_dir());
    }

    #[test]
    fn tls_policy_keys_and_the_ca_file_are_checked() {
        let err = load(
            &format!("{MINIMAL}[delivery.tls_policy]\n\"x.example\" = \"sometimes\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `sometimes`"),
            "{err}"
        );
        let err = load(
            &format!(
                "{MINIMAL}[delivery]\ntls_ca_file = \"missing-ca.pem\"\n[delivery.tls_policy]\n\"*.gov.kz\" = \"verify\"\n\".ok.example\" = \"encrypt\"\n"
            ),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in ["delivery.tls_ca_file", "delivery.tls_policy.*.gov.kz"] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
        assert!(!k.contains(&"delivery.tls_policy..ok.example"), "{err}");
        // A file that is not PEM is refused too.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = load(
            &format!(
                "{MINIMAL}[delivery]\ntls_ca_file = \"{}\"\n",
                junk.display()
            ),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no usable CA certificate"),
            "{err}"
        );
    }

    #[test]
    fn semantic_checks() {
        let err = load(
            "[smtp]\ntls_cert = \"missing.pem\"\nmax_recipients = 0\n[admin]\ntokens = [{ name = \"ops\", role = \"operator\", sha256 = \"xyz\" }]\n",
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in ["smtp.tls_key", "smtp.max_recipients", "admin.tokens[0]"] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
    }

    #[test]
    fn registration_defaults_and_the_embedded_lists_agree() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        let default = RegistrationSection::default();
        assert_eq!(embedded.registration.holidays, default.holidays);
        assert_eq!(embedded.registration.days_off, default.days_off);
        assert_eq!(embedded.registration.working_days, default.working_days);
        assert_eq!(embedded.registration.decision_days, 5);
        assert_eq!(embedded.registration.resubmit_days, 30);
        assert_eq!(embedded.registration.utc_offset, default.utc_offset);
        // Without the section, the shipped calendar applies.
        let cfg = load(MINIMAL, &[]).unwrap();
        assert_eq!(cfg.registration.holidays.len(), 26);
    }

    #[test]
    fn registration_keys_parse_and_bad_ones_are_named() {
        let cfg = load(
            &format!(
                "{MINIMAL}[registration]\nholidays = [2028-01-01, \"2028-01-02\"]\nworking_days = [2028-01-08]\ngateway_addresses = [\"203.0.113.25\", \"2001:db8::25\"]\nutc_offset = \"-03:30\"\n"
            ),
            &[("UGEM_REGISTRATION__DAYS_OFF", "2028-01-07,2028-04-10")],
        )
        .unwrap();
        let r = &cfg.registration;
        assert_eq!(r.holidays.len(), 2);
        assert_eq!(r.days_off[1].to_string(), "2028-04-10");
        assert_eq!(r.gateway_addresses.len(), 2);
        assert_eq!(r.utc_offset.0.local_minus_utc(), -(3 * 3600 + 30 * 60));

        let err = load(
            &format!(
                "{MINIMAL}[registration]\nholidays = [\"2028-02-30\"]\ndecision_days = 0\nutc_offset = \"UTC+5\"\nworking_days = [\"2028-01-03\"]\nresubmit = 30\n"
            ),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in [
            "registration.holidays",
            "registration.utc_offset",
            "registration.resubmit",
        ] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
        // Semantic checks come once every key parses.
        let err = load(
            &format!(
                "{MINIMAL}[registration]\ndecision_days = 0\nworking_days = [\"2028-01-03\", \"2028-01-01\"]\nholidays = [\"2028-01-01\"]\n"
            ),
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("registration.decision_days"), "{text}");
        assert!(text.contains("2028-01-03 is a Mon"), "{text}");
        assert!(text.contains("2028-01-01 is also listed"), "{text}");
    }

    #[test]
    fn weak_admin_tokens_are_refused_beyond_loopback_and_warned_on_it() {
        // The shipped configuration: loopback, so a warning, not a refusal.
        let dir = tempfile::tempdir().unwrap();
        let shipped = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        let w = shipped.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "admin.token");
        assert!(w[0].message.contains("change-me-now"), "{}", w[0]);
        // The same token on a routable address: refused, naming the key.
        let wide = |token_lines: &str| {
            load(
                &format!("[admin]\nlisten = \"0.0.0.0:8025\"\n{token_lines}"),
                &[],
            )
        };
        let err = wide("token = \"change-me-now\"\n").unwrap_err();
        assert_eq!(keys(&err), vec!["admin.token"], "{err}");
        assert!(err.to_string().contains("not loopback"), "{err}");
        // Short tokens, in either form, and the shipped one by its hash.
        let sha = "5f1a2ec0aefd0b2d5e4b3d7bbc3bcd86d4b0f6f6b4e6cc71a4b3e9d20ee6b58c";
        let err = wide(&format!(
            "tokens = [{{ name = \"ops\", role = \"operator\", token = \"0123456789abcdef\" }}, {{ name = \"x\", role = \"viewer\", sha256 = \"{}\" }}, {{ name = \"y\", role = \"viewer\", sha256 = \"{sha}\" }}]\n",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(SHIPPED_TOKEN.as_bytes()))
        ))
        .unwrap_err();
        assert_eq!(
            keys(&err),
            vec!["admin.tokens[0]", "admin.tokens[1]"],
            "{err}"
        );
        // A strong token beyond loopback starts, with a warning about TLS.
        let cfg = wide("token = \"0123456789abcdef0123456789\"\n").unwrap();
        let w = cfg.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("without TLS"), "{}", w[0]);
        // TLS needs both files, readable.
        let err = wide("token = \"0123456789abcdef0123456789\"\ntls_cert = \"missing.pem\"\n")
            .unwrap_err();
        assert_eq!(keys(&err), vec!["admin.tls_key"], "{err}");
        let err = wide(
            "token = \"0123456789abcdef0123456789\"\ntls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\n",
        )
        .unwrap_err();
        assert_eq!(keys(&err), vec!["admin.tls_cert"], "{err}");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("25MiB".parse::<ByteSize>().unwrap().0, 25 << 20);
        assert_eq!("10 MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        assert!("-1".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn host_ports() {
        let hp: HostPort = "Mail.Agency.kz:25".parse().unwrap();
        assert_eq!(hp.to_string(), "mail.agency.kz:25");
        let v6: HostPort = "[2001:db8::1]:2525".parse().unwrap();
        assert_eq!(v6.to_string(), "[2001:db8::1]:2525");
        assert!("mail.agency.kz".parse::<HostPort>().is_err());
        assert!("bad host:25".parse::<HostPort>().is_err());
    }
}

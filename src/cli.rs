//! The admin verbs of the `ugem` binary: each one is an admin API call,
//! printed as a table (or JSON with `--json`).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin::client::{AdminClient, ClientError, segment};
use crate::config::{Config, ConfigError, ConfigSource};

mod applications;
mod audit;
mod dkim;
mod header_from;
mod queue;
mod reports;
pub use applications::{ApplicationCmd, ApplicationSubmit};
pub use audit::{AuditArgs, AuditFormat};
pub use dkim::DkimCmd;
pub use reports::ReportArgs;
mod lifecycle;
pub use lifecycle::{ChangeArgs, ChangeRequestCmd, DomainUpdate};
pub use queue::{BulkFilter, QueueCmd};

/// Why a verb failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The configuration (used to find the API) is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The API answered something this client cannot read.
    #[error("{0}")]
    Answer(String),
}

/// The admin verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Registered domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Sender suspensions.
    #[command(subcommand)]
    Sender(SenderCmd),
    /// Suspension of one server address (hosting several agencies' domains).
    #[command(subcommand)]
    Server(ServerCmd),
    /// Suspensions of domains and senders.
    #[command(subcommand)]
    Suspension(SuspensionCmd),
    /// The mail queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Applications to connect a domain: submit, decide, follow deadlines.
    #[command(subcommand)]
    Application(ApplicationCmd),
    /// The connection log.
    Connections(ConnectionsArgs),
    /// Rate governors: counters, throttled scopes, suspension counts,
    /// gateway listings; one scope's state; replays of traffic.
    Governor(GovernorArgs),
    /// Inbound recipient verification.
    #[command(subcommand)]
    Recipient(RecipientCmd),
    /// MTA-STS policies in force for recipient domains.
    #[command(subcommand, name = "mta-sts")]
    MtaSts(MtaStsCmd),
    /// SMTP TLS reports (RFC 8460): send a day's reports now.
    #[command(subcommand)]
    Tlsrpt(TlsRptCmd),
    /// The postmaster's local mailbox (server.postmaster_mailbox): alarms,
    /// notices and mail for the postmaster when no mail server takes it.
    #[command(subcommand)]
    Mailbox(MailboxCmd),
    /// Read the configuration file again and apply what can change live
    /// (limits, routes, TLS policy, tokens, notices, log level, the STARTTLS
    /// certificate); lists the keys changed and those that need a restart.
    /// A file with problems is refused whole: the running one stays.
    Reload,
    /// DKIM keys of registered domains: generate, list, rotate.
    #[command(subcommand)]
    Dkim(dkim::DkimCmd),
    /// The audit trail: staff actions and the gateway's own (actor `auto`),
    /// filtered by actor, action, target and period; `--format csv|json` exports.
    Audit(Box<AuditArgs>),
    /// Reports for the authorised body over a period: applications,
    /// suspensions, listings, users, disconnections (text, CSV or JSON).
    Report(ReportArgs),
}

/// `ugem mailbox ...`
#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    /// Messages, newest first (SEEN: read with `show` already).
    List,
    /// One message's whole text; marks it read.
    Show {
        /// Its id, as `list` shows it.
        id: String,
    },
    /// Delete one message.
    Delete {
        /// Its id, as `list` shows it.
        id: String,
    },
}

/// `ugem domain ...`
#[derive(Subcommand, Debug)]
pub enum DomainCmd {
    /// Register a domain (connected at once).
    Add(DomainAdd),
    /// List registered domains.
    List,
    /// Show one domain.
    Show {
        /// The domain.
        domain: String,
    },
    /// Suspend a domain: its new mail gets 451, its queued mail is held.
    Suspend {
        /// The domain.
        domain: String,
        /// Why (sent to the contacts, kept in the history).
        #[arg(long)]
        reason: String,
    },
    /// End a domain's suspension.
    Restore {
        /// The domain.
        domain: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Delete the held mail instead of releasing it.
        #[arg(long)]
        delete_held: bool,
    },
    /// Show or set the domain's rate limits (overrides of `[governor]`).
    Limits(DomainLimitsArgs),
    /// Show or set which header From the domain's relayed mail may carry.
    #[command(name = "header-from")]
    HeaderFrom(header_from::HeaderFromArgs),
    /// Change a connected domain's data now (servers, contacts, owner, ...).
    Update(DomainUpdate),
    /// The domain's replaced versions, oldest first.
    History {
        /// The domain.
        domain: String,
    },
    /// Addresses that were refused sending as the domain (not its servers).
    Unregistered {
        /// The domain.
        domain: String,
    },
    /// Let one unregistered address relay as the domain until a date (never automatic).
    AllowServer {
        /// The domain.
        domain: String,
        /// The address.
        ip: String,
        /// The last local date it may relay, YYYY-MM-DD.
        #[arg(long, value_parser = lifecycle::parse_until)]
        until: chrono::NaiveDate,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Agencies' requests to change their data, decided in 5 working days.
    ChangeRequest {
        /// What to do.
        #[command(subcommand)]
        cmd: ChangeRequestCmd,
    },
    /// Disconnect a domain for good: now, or on an agreed date (--on), or
    /// cancel that date (--cancel).
    Disconnect {
        /// The domain.
        domain: String,
        /// Why (not needed with --cancel).
        #[arg(long, required_unless_present = "cancel")]
        reason: Option<String>,
        /// The agreed local date, YYYY-MM-DD; the contacts are reminded 5 and 1 working days before.
        #[arg(long, value_parser = parse_day, conflicts_with = "cancel")]
        on: Option<chrono::NaiveDate>,
        /// Cancel the scheduled disconnection.
        #[arg(long)]
        cancel: bool,
    },
    /// Record that the contacts confirmed the domain's data (the yearly
    /// re-confirmation); the next one is due a cycle later.
    Confirm {
        /// The domain.
        domain: String,
        /// The local date of the confirmation, YYYY-MM-DD (default: today).
        #[arg(long, value_parser = parse_day)]
        on: Option<chrono::NaiveDate>,
    },
    /// Domains whose yearly confirmation is due or overdue, earliest first.
    #[command(name = "reconfirm-due")]
    ReconfirmDue,
}

/// `ugem domain limits`: without values it shows the limits in force.
#[derive(Args, Debug)]
pub struct DomainLimitsArgs {
    /// The domain.
    pub domain: String,
    /// Messages per hour for the whole domain.
    #[arg(long)]
    pub messages_per_hour: Option<u32>,
    /// Outbound recipients per hour for the whole domain.
    #[arg(long)]
    pub recipients_per_hour: Option<u32>,
    /// Messages per hour for each sender of the domain.
    #[arg(long)]
    pub sender_messages_per_hour: Option<u32>,
    /// Outbound recipients per hour for each sender of the domain.
    #[arg(long)]
    pub sender_recipients_per_hour: Option<u32>,
    /// Messages per minute for each sender of the domain.
    #[arg(long)]
    pub sender_messages_per_minute: Option<u32>,
    /// Outbound recipients per minute for each sender of the domain.
    #[arg(long)]
    pub sender_recipients_per_minute: Option<u32>,
    /// Never-seen recipients per 5 minutes each sender may reach before its own peak counts.
    #[arg(long = "new-recipients-5min")]
    pub new_recipients_5min: Option<u32>,
    /// The same per hour.
    #[arg(long)]
    pub new_recipients_hour: Option<u32>,
    /// Never-seen recipients per hour of the whole domain (accountable senders left out).
    #[arg(long)]
    pub domain_new_recipients_hour: Option<u32>,
    /// Drop every override: back to the `[governor]` defaults.
    #[arg(long)]
    pub clear: bool,
}

/// `ugem domain add`
#[derive(Args, Debug)]
pub struct DomainAdd {
    /// The domain (internationalized names are stored as A-labels).
    pub domain: String,
    /// Mail-server IP or CIDR allowed to relay (repeatable).
    #[arg(long = "server", required = true, num_args = 1..)]
    pub servers: Vec<String>,
    /// Technical contact: `EMAIL` or `Full Name <EMAIL>; office=PHONE; mobile=PHONE` (repeatable).
    #[arg(long = "contact", required = true, num_args = 1..)]
    pub contacts: Vec<String>,
    /// Owner organization.
    #[arg(long, default_value = "")]
    pub owner: String,
    /// Inbound next hop HOST:PORT (default: first server, port 25).
    #[arg(long)]
    pub inbound: Option<String>,
    /// Allow server ranges shared with other domains that also allow it.
    #[arg(long)]
    pub shared_servers: bool,
    /// Accept server ranges wider than `[registration]
    /// widest_server_range_v4`/`_v6` (/24 and /48 by default).
    #[arg(long)]
    pub allow_wide_range: bool,
    /// Why the domain is registered without an application (required; kept
    /// on the domain with who and when).
    #[arg(long)]
    pub reason: String,
    /// Languages of the domain's notices, in order: `kk,ru`, `ru`, `en`, ...
    /// (default: `[notify] languages`).
    #[arg(long = "language", value_parser = lifecycle::parse_language_choice)]
    pub languages: Option<lifecycle::LanguageChoice>,
}

/// `ugem server ...`
#[derive(Subcommand, Debug)]
pub enum ServerCmd {
    /// Suspend a server address: 451 for its mail, whichever domain; its queued mail held.
    Suspend {
        /// The server's IP address.
        ip: String,
        /// Why (sent to the contacts of every domain registered with it).
        #[arg(long)]
        reason: String,
    },
    /// End a server address's suspension; its held mail is released.
    Restore {
        /// The server's IP address.
        ip: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Server suspensions (active, or all with --history).
    List {
        /// Ended ones too.
        #[arg(long)]
        history: bool,
    },
}

/// `ugem sender ...`
#[derive(Subcommand, Debug)]
pub enum SenderCmd {
    /// Suspend one sender address.
    Suspend {
        /// The address.
        address: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// End a sender's suspension.
    Restore {
        /// The address.
        address: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
        /// Delete the held mail instead of releasing it.
        #[arg(long)]
        delete_held: bool,
    },
    /// Show a sender's limits, or declare it (a bulk sender) with its own:
    /// a declared sender is bounded by its rates, not judged on how many of
    /// its recipients are new.
    Limits(SenderLimitsArgs),
}

/// `ugem sender limits`: without values it shows the limits in force.
#[derive(Args, Debug)]
pub struct SenderLimitsArgs {
    /// The address.
    pub address: String,
    /// Messages per minute.
    #[arg(long)]
    pub messages_per_minute: Option<u32>,
    /// Messages per hour.
    #[arg(long)]
    pub messages_per_hour: Option<u32>,
    /// Outbound recipients per minute.
    #[arg(long)]
    pub recipients_per_minute: Option<u32>,
    /// Outbound recipients per hour.
    #[arg(long)]
    pub recipients_per_hour: Option<u32>,
    /// Why it is declared (kept with the declaration).
    #[arg(long)]
    pub note: Option<String>,
    /// Declare it with its domain's limits (no values needed).
    #[arg(long)]
    pub declare: bool,
    /// Withdraw the declaration.
    #[arg(long)]
    pub clear: bool,
}

/// `ugem governor [...]`
#[derive(Args, Debug)]
pub struct GovernorArgs {
    /// What to do (default: the status).
    #[command(subcommand)]
    pub cmd: Option<GovernorCmd>,
}

/// `ugem governor ...`
#[derive(Subcommand, Debug)]
pub enum GovernorCmd {
    /// Counters, throttled scopes, suspension counts, gateway listings.
    Status,
    /// One scope's detector state: windows, peaks, rate cells, ladder.
    Scope {
        /// A sender address or a domain.
        scope: String,
    },
    /// Replays a trace of events (JSON lines) through the governor on a
    /// virtual clock, with this configuration's `[governor]`; prints every
    /// decision as a JSON line, then a summary line per sender. Runs here,
    /// not against the running gateway.
    Replay {
        /// The trace file (`-`: standard input).
        trace: std::path::PathBuf,
        /// Print only the summary lines.
        #[arg(long)]
        summary_only: bool,
    },
}

/// `ugem recipient ...`
#[derive(Subcommand, Debug)]
pub enum RecipientCmd {
    /// Forget the cached answer of the domain's server for an address (after
    /// a mailbox was created or removed), so the next RCPT asks again.
    Forget {
        /// The address.
        address: String,
    },
}

/// `ugem mta-sts ...`
#[derive(Subcommand, Debug)]
pub enum MtaStsCmd {
    /// The cached policies: domain, mode, MX patterns, expiry.
    List,
}

/// `ugem tlsrpt ...`
#[derive(Subcommand, Debug)]
pub enum TlsRptCmd {
    /// Send the TLS reports of a UTC day now, as the daily run does.
    Send {
        /// The day (YYYY-MM-DD); default yesterday.
        #[arg(long)]
        day: Option<String>,
    },
}

/// `ugem suspension ...`
#[derive(Subcommand, Debug)]
pub enum SuspensionCmd {
    /// Active suspensions (all with --history).
    List {
        /// Include ended suspensions.
        #[arg(long)]
        history: bool,
    },
}

/// `ugem connections`
#[derive(Args, Debug)]
pub struct ConnectionsArgs {
    /// Sessions that matched this registered domain or whose MAIL FROM claimed it.
    #[arg(long)]
    pub domain: Option<String>,
    /// Sessions from this client IP.
    #[arg(long)]
    pub ip: Option<String>,
    /// Sessions since this time (RFC 3339, e.g. 2026-11-29T08:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// At most N sessions.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Every node sharing the registry, not only this one (each keeps its
    /// own log); a NODE column says whose.
    #[arg(long)]
    pub all_nodes: bool,
}

/// Builds the API client from `--admin` or the configuration. An https API
/// must present a certificate that `ca` (`--ca`) vouches for, or else, with
/// the address taken from the configuration, `admin.tls_ca_file` or the
/// `admin.tls_cert` chain itself; the system's CAs are trusted as well.
pub fn client(
    src: &ConfigSource,
    admin: Option<&str>,
    ca: Option<&std::path::Path>,
) -> Result<AdminClient, CliError> {
    let token = std::env::var("UGEM_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let mut roots = crate::trust::system_certs().to_vec();
    let ca_roots = |p: &std::path::Path| {
        crate::trust::load_roots(p).map_err(|e| CliError::Usage(format!("--ca: {e}")))
    };
    if let Some(p) = ca {
        roots.extend(ca_roots(p)?);
    }
    if let Some(url) = admin {
        warn_clear_token(url, token.is_some());
        return Ok(AdminClient::with_roots(url, token, roots));
    }
    let cfg = Config::load(src)?;
    // On the gateway host the operator may rely on the configured single
    // token, as the config file is only readable by the ugem user and root.
    let token = token.or(cfg.admin.token.clone());
    let a = &cfg.admin;
    // A wildcard listener is reached on loopback.
    let mut addr = a.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if a.has_tls() { "https" } else { "http" };
    if ca.is_none() {
        // The configuration was checked: these files hold certificates.
        if let Some(p) = a.tls_ca_file.as_deref().or(a.tls_cert.as_deref())
            && let Ok(extra) = crate::trust::load_roots(p)
        {
            roots.extend(extra);
        }
    }
    let url = format!("{scheme}://{addr}");
    warn_clear_token(&url, token.is_some());
    Ok(AdminClient::with_roots(&url, token, roots))
}

/// Warns when a token would cross a network in clear.
fn warn_clear_token(url: &str, token: bool) {
    let Some(rest) = url.strip_prefix("http://") else {
        return;
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if token && !loopback {
        eprintln!(
            "ugem: warning: the admin token goes to {host} over plain http; serve the API over https (admin.tls_cert) and use an https:// address"
        );
    }
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// `ugem governor replay`: runs locally with the configuration's `[governor]`.
pub fn replay(
    src: &ConfigSource,
    trace: &std::path::Path,
    summary_only: bool,
) -> Result<(), CliError> {
    use std::io::{BufRead, Write};
    let cfg = Config::load(src)?;
    let reader: Box<dyn BufRead> = if trace.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(trace)
                .map_err(|e| CliError::Usage(format!("{}: {e}", trace.display())))?,
        ))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let started = std::time::Instant::now();
    let report = rt.block_on(async {
        let mut lines = reader.lines().enumerate();
        let mut first: Option<crate::governor::replay::TraceEvent> = None;
        let next = |lines: &mut dyn Iterator<Item = (usize, std::io::Result<String>)>| -> Result<Option<crate::governor::replay::TraceEvent>, CliError> {
            for (i, l) in lines {
                let l = l.map_err(|e| CliError::Usage(e.to_string()))?;
                if l.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(&l)
                    .map(Some)
                    .map_err(|e| CliError::Usage(format!("trace line {}: {e}", i + 1)));
            }
            Ok(None)
        };
        if let Some(ev) = next(&mut lines)? {
            first = Some(ev);
        }
        let Some(first) = first else {
            return Err(CliError::Usage("the trace is empty".into()));
        };
        let mut r = crate::governor::replay::Replayer::new(cfg, first.t())
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let stdout = std::io::stdout();
        let mut out = |d: &crate::governor::replay::Decision| {
            if !summary_only {
                let _ = writeln!(stdout.lock(), "{}", serde_json::to_string(d).unwrap_or_default());
            }
        };
        r.apply(first, &mut out)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        while let Some(ev) = next(&mut lines)? {
            r.apply(ev, &mut out)
                .await
                .map_err(|e| CliError::Usage(e.to_string()))?;
        }
        Ok(r.finish(&mut out).await)
    })?;
    let mut o = std::io::stdout().lock();
    for (sender, t) in &report.senders {
        let _ = writeln!(
            o,
            "{}",
            json!({"summary": "sender", "sender": sender, "tally": t})
        );
    }
    for (d, at) in &report.domains_suspended {
        let _ = writeln!(
            o,
            "{}",
            json!({"summary": "domain_suspended", "domain": d, "t": at})
        );
    }
    for m in &report.marks {
        let _ = writeln!(o, "{}", json!({"summary": "mark", "mark": m}));
    }
    let _ = writeln!(
        o,
        "{}",
        json!({
            "summary": "replay",
            "events": report.events,
            "virtual_seconds": report.span_ms / 1000,
            "decisions": report.decisions.len(),
            "gateway_listed": report.gateway_listed,
            "wall_seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// Runs one verb and prints its result.
pub fn run(c: &AdminClient, verb: Verb, as_json: bool) -> Result<(), CliError> {
    let out = match verb {
        Verb::Domain(cmd) => domain(c, cmd)?,
        Verb::Sender(SenderCmd::Suspend { address, reason }) => Output::Record(c.post(
            &format!("/api/v1/senders/{}/suspend", segment(&address)),
            &json!({ "reason": reason }),
        )?),
        Verb::Sender(SenderCmd::Restore {
            address,
            reason,
            delete_held,
        }) => Output::Record(c.post(
            &format!("/api/v1/senders/{}/restore", segment(&address)),
            &json!({ "reason": reason, "held_mail": if delete_held { "delete" } else { "release" } }),
        )?),
        Verb::Server(ServerCmd::Suspend { ip, reason }) => Output::Record(c.post(
            &format!("/api/v1/servers/{}/suspend", segment(&ip)),
            &json!({ "reason": reason }),
        )?),
        Verb::Server(ServerCmd::Restore { ip, reason }) => Output::Record(c.post(
            &format!("/api/v1/servers/{}/restore", segment(&ip)),
            &json!({ "reason": reason }),
        )?),
        Verb::Server(ServerCmd::List { history }) => Output::Table(
            c.get(&format!("/api/v1/servers/suspensions?history={history}"))?,
            &[
                ("ID", "/id"),
                ("SERVER", "/address"),
                ("DOMAINS", "/domains"),
                ("ACTOR", "/actor"),
                ("SINCE", "/started_at"),
                ("RESTORED", "/restored/at"),
                ("REASON", "/reason"),
            ],
        ),
        Verb::Suspension(SuspensionCmd::List { history }) => Output::Table(
            c.get(&format!("/api/v1/suspensions?history={history}"))?,
            &[
                ("ID", "/id"),
                ("SCOPE", "/scope/kind"),
                ("TARGET", "/scope/value"),
                ("RULE", "/rule"),
                ("ACTOR", "/actor"),
                ("SINCE", "/started_at"),
                ("RESTORED", "/restored/at"),
                ("BY", "/restored/by"),
                ("EXPIRES", "/expires_at"),
                ("REASON", "/reason"),
                ("EVIDENCE", "/evidence"),
            ],
        ),
        Verb::Queue(cmd) => return queue::run(c, cmd, as_json),
        Verb::Governor(GovernorArgs { cmd }) => match cmd {
            None | Some(GovernorCmd::Status) => Output::Record(c.get("/api/v1/governor")?),
            Some(GovernorCmd::Scope { scope }) => Output::Record(
                c.get(&format!("/api/v1/governor/scopes/{}", segment(&scope)))?,
            ),
            Some(GovernorCmd::Replay { .. }) => {
                return Err(CliError::Usage(
                    "replay runs locally: see ugem::cli::replay".into(),
                ));
            }
        },
        Verb::Sender(SenderCmd::Limits(a)) => {
            let path = format!("/api/v1/senders/{}/limits", segment(&a.address));
            let values = [
                ("messages_per_minute", a.messages_per_minute),
                ("messages_per_hour", a.messages_per_hour),
                ("recipients_per_minute", a.recipients_per_minute),
                ("recipients_per_hour", a.recipients_per_hour),
            ];
            if a.clear {
                Output::Record(c.delete(&path)?)
            } else if !a.declare && a.note.is_none() && values.iter().all(|(_, v)| v.is_none()) {
                Output::Record(c.get(&path)?)
            } else {
                // Start from the declaration in force, so one flag changes one limit.
                let mut body = c
                    .get(&path)?
                    .get("declared")
                    .cloned()
                    .filter(|v| v.is_object())
                    .unwrap_or_else(|| json!({}));
                for (k, v) in values {
                    if let Some(v) = v {
                        body[k] = json!(v);
                    }
                }
                if let Some(n) = a.note {
                    body["note"] = json!(n);
                }
                Output::Record(c.post(&path, &body)?)
            }
        }
        Verb::MtaSts(MtaStsCmd::List) => Output::Table(
            c.get("/api/v1/mta-sts")?,
            &[
                ("DOMAIN", "/domain"),
                ("MODE", "/mode"),
                ("MX", "/mx"),
                ("EXPIRES", "/expires_at"),
            ],
        ),
        Verb::Recipient(RecipientCmd::Forget { address }) => Output::Record(
            c.delete(&format!("/api/v1/verification/{}", segment(&address)))?,
        ),
        Verb::Application(cmd) => return applications::run(c, cmd, as_json),
        Verb::Report(a) => return reports::run(c, a, as_json),
        Verb::Dkim(cmd) => return dkim::run(c, cmd, as_json),
        Verb::Mailbox(MailboxCmd::List) => {
            let v = c.get("/api/v1/mailbox")?;
            if !as_json && v["enabled"] == json!(false) {
                eprintln!(
                    "ugem: server.postmaster_mailbox is off: mail for {} goes out over SMTP",
                    v["postmaster"].as_str().unwrap_or("the postmaster")
                );
            }
            if as_json {
                Output::Record(v)
            } else {
                Output::Table(
                    v["messages"].clone(),
                    &[
                        ("DELIVERED", "/delivered"),
                        ("SEEN", "/seen"),
                        ("FROM", "/from"),
                        ("SUBJECT", "/subject"),
                        ("SIZE", "/size"),
                        ("ID", "/id"),
                    ],
                )
            }
        }
        Verb::Mailbox(MailboxCmd::Show { id }) => {
            let v = c.get(&format!("/api/v1/mailbox/{}", segment(&id)))?;
            if as_json {
                Output::Record(v)
            } else {
                let mut out = std::io::stdout().lock();
                let _ = std::io::Write::write_all(
                    &mut out,
                    v["text"].as_str().unwrap_or_default().as_bytes(),
                );
                return Ok(());
            }
        }
        Verb::Mailbox(MailboxCmd::Delete { id }) => {
            Output::Record(c.delete(&format!("/api/v1/mailbox/{}", segment(&id)))?)
        }
        Verb::Connections(a) => {
            let all = a.all_nodes;
            let v = c.get(&format!(
                "/api/v1/connections{}",
                query(&[
                    ("domain", a.domain),
                    ("ip", a.ip),
                    ("since", a.since),
                    ("limit", Some(a.limit.to_string())),
                    ("nodes", all.then(|| "all".to_string())),
                ])
            ))?;
            if !all {
                Output::Table(with_refused_commands(v), &CONNECTION_COLUMNS[1..])
            } else {
                all_nodes_connections(v)
            }
        }
        Verb::Reload => Output::Record(c.post("/api/v1/reload", &json!({}))?),
        Verb::Tlsrpt(TlsRptCmd::Send { day }) => {
            let body = match day {
                Some(d) => json!({ "day": d }),
                None => json!({}),
            };
            Output::Record(c.post("/api/v1/tlsrpt/send", &body)?)
        }
        Verb::Audit(a) => match audit::run(c, *a)? {
            Some(out) => out,
            None => return Ok(()),
        },
    };
    out.print(as_json);
    Ok(())
}

/// Adds `last_refused` to each session record: its last refused command
/// and the reply code (`RCPT TO:<x@y> -> 550`).
/// Every node's connection log: the nodes that could not be asked are
/// named on stderr, the sessions tabled with their node.
fn all_nodes_connections(v: Value) -> Output {
    for n in v["nodes"].as_array().into_iter().flatten() {
        if n["ok"] != true {
            eprintln!(
                "warning: node {} not asked: {}",
                n["name"].as_str().unwrap_or("?"),
                n["error"].as_str().unwrap_or("?")
            );
        }
    }
    let rows = with_refused_commands(v["connections"].clone());
    Output::History(v, rows, CONNECTION_COLUMNS)
}

/// The connection log's columns; the first only for `--all-nodes`.
const CONNECTION_COLUMNS: &[(&str, &str)] = &[
    ("NODE", "/node"),
    ("STARTED", "/started_at"),
    ("PEER", "/peer"),
    ("EHLO", "/ehlo"),
    ("TLS", "/tls"),
    ("DOMAINS", "/domains"),
    ("CLAIMED", "/claimed"),
    ("MAIL", "/mail_count"),
    ("RCPT", "/rcpt_count"),
    ("MSGS", "/messages"),
    ("REFUSED", "/refusals"),
    ("LAST REFUSED", "/last_refused"),
    ("CLOSE", "/close"),
];

fn with_refused_commands(mut v: Value) -> Value {
    for r in v.as_array_mut().into_iter().flatten() {
        let last = r["refusals"].as_array().and_then(|a| a.last()).map(|f| {
            let cmd = f["command"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("(none)");
            format!("{cmd} -> {}", f["code"])
        });
        r["last_refused"] = json!(last);
    }
    v
}

/// Adds `arrived` (RFC 3339, UTC) next to each envelope's `arrived_at_ms`.
fn with_arrival_times(mut v: Value) -> Value {
    if let Some(items) = v.as_array_mut() {
        for e in items {
            let at = e["arrived_at_ms"].as_u64().map(crate::logging::rfc3339_ms);
            e["arrived"] = json!(at);
        }
    }
    v
}

/// Unix milliseconds from 2001-09-09 on (13 digits): smaller `*_ms`
/// numbers are durations or counts, not times.
const EPOCH_MS_FROM: u64 = 1_000_000_000_000;

/// The times in an answer as people read them: RFC 3339 in UTC to the
/// second (`2026-11-29T08:00:00Z`). A field `NAME_ms` holding unix
/// milliseconds (or null) becomes `NAME` (unless the answer has that too)
/// with the time; an RFC 3339 text loses its fraction of a second and any
/// other zone.
fn readable_times(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, val) in m {
                let name = k
                    .strip_suffix("_ms")
                    .filter(|name| !name.is_empty() && !m.contains_key(*name));
                match (name, val) {
                    (Some(name), Value::Number(n))
                        if n.as_u64().is_some_and(|n| n >= EPOCH_MS_FROM) =>
                    {
                        let ms = n.as_u64().unwrap_or_default();
                        out.insert(name.to_string(), json!(crate::logging::rfc3339_ms(ms)));
                    }
                    // No time (yet): shown as `-` under the same name.
                    (Some(name), Value::Null) => {
                        out.insert(name.to_string(), Value::Null);
                    }
                    _ => {
                        out.insert(k.clone(), readable_times(val));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(readable_times).collect()),
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => json!(
                t.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Err(_) => v.clone(),
        },
        other => other.clone(),
    }
}

fn domain(c: &AdminClient, cmd: DomainCmd) -> Result<Output, CliError> {
    const COLUMNS: &[(&str, &str)] = &[
        ("DOMAIN", "/name"),
        ("STATUS", "/status"),
        ("OWNER", "/owner"),
        ("SERVERS", "/servers"),
        ("SINCE", "/status_since"),
        ("DISCONNECT ON", "/disconnect_on/on"),
    ];
    Ok(match cmd {
        DomainCmd::Add(a) => {
            let contacts = a
                .contacts
                .iter()
                .map(|s| crate::registry::parse_contact(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::Usage(format!("--contact: {e}")))?;
            let body = json!({
                "name": a.domain,
                "owner": a.owner,
                "servers": a.servers,
                "contacts": contacts,
                "inbound": a.inbound,
                "shared_servers": a.shared_servers,
                "allow_wide_range": a.allow_wide_range,
                "reason": a.reason,
                "languages": a.languages.map(|l| l.0).unwrap_or_default(),
            });
            Output::Record(c.post("/api/v1/domains", &body)?)
        }
        DomainCmd::List => Output::Table(c.get("/api/v1/domains")?, COLUMNS),
        DomainCmd::Confirm { domain, on } => Output::Record(c.post(
            &format!("/api/v1/domains/{}/confirm", segment(&domain)),
            &json!({ "on": on }),
        )?),
        DomainCmd::ReconfirmDue => Output::Table(
            c.get("/api/v1/reconfirm-due")?,
            &[
                ("DOMAIN", "/domain"),
                ("OWNER", "/owner"),
                ("SINCE", "/since"),
                ("DUE", "/due"),
                ("REMINDED", "/reminded"),
            ],
        ),
        DomainCmd::Show { domain } => {
            Output::Record(c.get(&format!("/api/v1/domains/{}", segment(&domain)))?)
        }
        DomainCmd::Suspend { domain, reason } => Output::Record(c.post(
            &format!("/api/v1/domains/{}/suspend", segment(&domain)),
            &json!({ "reason": reason }),
        )?),
        DomainCmd::Restore {
            domain,
            reason,
            delete_held,
        } => Output::Record(c.post(
            &format!("/api/v1/domains/{}/restore", segment(&domain)),
            &json!({ "reason": reason, "held_mail": if delete_held { "delete" } else { "release" } }),
        )?),
        DomainCmd::Limits(a) => {
            let path = format!("/api/v1/domains/{}/limits", segment(&a.domain));
            let values = [
                ("messages_per_hour", a.messages_per_hour),
                ("recipients_per_hour", a.recipients_per_hour),
                ("sender_messages_per_hour", a.sender_messages_per_hour),
                ("sender_recipients_per_hour", a.sender_recipients_per_hour),
                ("sender_messages_per_minute", a.sender_messages_per_minute),
                ("sender_recipients_per_minute", a.sender_recipients_per_minute),
                ("new_recipients_5min", a.new_recipients_5min),
                ("new_recipients_hour", a.new_recipients_hour),
                ("domain_new_recipients_hour", a.domain_new_recipients_hour),
            ];
            if !a.clear && values.iter().all(|(_, v)| v.is_none()) {
                Output::Record(c.get(&path)?)
            } else {
                // Start from the overrides in force, so one flag changes one limit.
                let mut body = if a.clear {
                    json!({})
                } else {
                    c.get(&path)?
                        .get("overrides")
                        .cloned()
                        .filter(|v| v.is_object())
                        .unwrap_or_else(|| json!({}))
                };
                for (k, v) in values {
                    if let Some(v) = v {
                        body[k] = json!(v);
                    }
                }
                Output::Record(c.post(&path, &body)?)
            }
        }
        DomainCmd::HeaderFrom(a) => header_from::run(c, a)?,
        DomainCmd::Update(a) => lifecycle::update(c, a)?,
        DomainCmd::History { domain } => lifecycle::history(c, &domain)?,
        DomainCmd::ChangeRequest { cmd } => lifecycle::change_request(c, cmd)?,
        DomainCmd::Unregistered { domain } => lifecycle::unregistered(c, &domain)?,
        DomainCmd::AllowServer {
            domain,
            ip,
            until,
            reason,
        } => lifecycle::allow_server(c, &domain, &ip, until, &reason)?,
        DomainCmd::Disconnect {
            domain,
            reason,
            on,
            cancel,
        } => Output::Record(c.post(
            &format!("/api/v1/domains/{}/disconnect", segment(&domain)),
            &json!({ "reason": reason, "on": on, "cancel": cancel }),
        )?),
    })
}

fn parse_day(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// What a verb prints.
enum Output {
    /// One object, printed as `key: value` lines.
    Record(Value),
    /// A list, printed as a table with these (header, JSON pointer) columns.
    Table(Value, &'static [(&'static str, &'static str)]),
    /// A whole answer (`--json`) printed as a table of some of its rows.
    History(Value, Value, &'static [(&'static str, &'static str)]),
}

impl Output {
    fn print(&self, as_json: bool) {
        let v = match self {
            Output::Record(v) | Output::Table(v, _) | Output::History(v, _, _) => v,
        };
        if as_json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
            return;
        }
        match self {
            Output::Record(v) => print_record(&readable_times(v), ""),
            Output::Table(v, cols) | Output::History(_, v, cols) => {
                print_table(&readable_times(v), cols)
            }
        }
    }
}

/// A cell's text: scalars as they are, lists joined, objects summarized.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.iter().all(|x| !x.is_object()) => {
            let parts: Vec<String> = a.iter().map(|x| cell(Some(x))).collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(",")
            }
        }
        Some(Value::Array(a)) => a.len().to_string(),
        Some(other) => other.to_string(),
    }
}

fn print_table(v: &Value, cols: &[(&str, &str)]) {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| cols.iter().map(|(_, p)| cell(r.pointer(p))).collect())
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = cols.iter().map(|(h, _)| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count()).min(60);
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c: String = c.chars().take(60).collect();
                format!("{c:<w$}", w = widths[i])
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(cols.iter().map(|(h, _)| h.to_string()).collect());
    let n = rows.len();
    for r in rows {
        line(r);
    }
    if n == 0 {
        println!("(none)");
    }
}

fn print_record(v: &Value, indent: &str) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match val {
                    Value::Object(_) => {
                        println!("{indent}{k}:");
                        print_record(val, &format!("{indent}  "));
                    }
                    Value::Array(a) if a.iter().any(|x| x.is_object()) => {
                        println!("{indent}{k}:");
                        for x in a {
                            println!("{indent}  -");
                            print_record(x, &format!("{indent}    "));
                        }
                    }
                    _ => println!("{indent}{k}: {}", cell(Some(val))),
                }
            }
        }
        other => println!("{indent}{}", cell(Some(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_utc() {
        let v = json!({
            "id": "0193",
            "arrived_at_ms": 1_764_403_200_123u64,
            "next_attempt_ms": 1_764_403_500_000u64,
            "leased_until_ms": null,
            "timeout_ms": 30_000,
            "started_at": "2025-11-29T08:00:00.123456789Z",
            "local": "2025-11-29T13:00:00+05:00",
            "note": "not a time",
            "recipients": [{"last_attempt_ms": 1_764_403_200_000u64}],
        });
        let r = readable_times(&v);
        assert_eq!(r["arrived_at"], "2025-11-29T08:00:00Z");
        assert_eq!(r["next_attempt"], "2025-11-29T08:05:00Z");
        assert!(r.get("arrived_at_ms").is_none());
        assert_eq!(r["leased_until"], Value::Null);
        assert!(r.get("leased_until_ms").is_none());
        assert_eq!(r["timeout_ms"], 30_000);
        assert_eq!(r["started_at"], "2025-11-29T08:00:00Z");
        assert_eq!(r["local"], "2025-11-29T08:00:00Z");
        assert_eq!(r["note"], "not a time");
        assert_eq!(r["recipients"][0]["last_attempt"], "2025-11-29T08:00:00Z");
        let list = with_arrival_times(json!([{"arrived_at_ms": 1_764_403_200_000u64}]));
        assert_eq!(list[0]["arrived"], "2025-11-29T08:00:00Z");
    }
}

//! `ugem domain update|history|change-request ...`: changing a connected
//! domain's data from the terminal.

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliError, Output, query};
use crate::admin::client::{AdminClient, segment};
use crate::model::applications::ApplicantCategory;

/// The fields a change may set; absent ones stay as they are.
#[derive(Args, Debug)]
pub struct ChangeArgs {
    /// New mail-server IP or CIDR list (repeatable; replaces the whole list).
    #[arg(long = "server", num_args = 1..)]
    pub servers: Vec<String>,
    /// New technical contacts (repeatable; replaces the whole list).
    #[arg(long = "contact", num_args = 1..)]
    pub contacts: Vec<String>,
    /// New owner organization.
    #[arg(long)]
    pub owner: Option<String>,
    /// New category: state-body, local-government, state-legal-entity, quasi-public, critical-infrastructure.
    #[arg(long, value_parser = parse_category)]
    pub category: Option<ApplicantCategory>,
    /// New inbound next hop HOST:PORT.
    #[arg(long)]
    pub inbound: Option<String>,
    /// Inbound server `HOST:PORT` or `HOST:PORT;pref=N` (repeatable; replaces
    /// the list; tried by preference, lowest first; default 10, 20, ... in order).
    #[arg(long = "inbound-server", num_args = 1..)]
    pub inbound_servers: Vec<String>,
    /// Allow server ranges shared with other domains that also allow it.
    #[arg(long)]
    pub shared_servers: bool,
    /// Accept server ranges wider than `[registration] widest_server_range_v4`/`_v6`.
    #[arg(long)]
    pub allow_wide_range: bool,
    /// Languages of the domain's notices, in order: `kk,ru`, `ru`, `en`, ...;
    /// `default` for `[notify] languages`.
    #[arg(long = "language", value_parser = parse_language_choice)]
    pub languages: Option<LanguageChoice>,
    /// Why (kept in the history, sent to the contacts).
    #[arg(long)]
    pub reason: String,
}

/// `ugem domain update DOMAIN ...`
#[derive(Args, Debug)]
pub struct DomainUpdate {
    /// The domain.
    pub domain: String,
    /// What to change.
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// `ugem domain change-request ...`
#[derive(Subcommand, Debug)]
pub enum ChangeRequestCmd {
    /// Record an agency's request to change its data; decided in 5 working days.
    Submit {
        /// The domain.
        domain: String,
        /// What the agency asks to change.
        #[command(flatten)]
        change: ChangeArgs,
        /// Date of receipt, YYYY-MM-DD (default: today).
        #[arg(long, value_parser = parse_date)]
        received: Option<NaiveDate>,
    },
    /// List change requests, oldest first.
    List {
        /// Only this status: pending, approved, rejected.
        #[arg(long)]
        status: Option<String>,
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Approve: apply the change and notify the old and new contacts.
    Approve {
        /// Change request id.
        id: String,
        /// Accept server ranges wider than the configured limit.
        #[arg(long)]
        allow_wide_range: bool,
    },
    /// Reject with reasons.
    Reject {
        /// Change request id.
        id: String,
        /// The reasons.
        #[arg(long)]
        reason: String,
    },
}

fn parse_category(s: &str) -> Result<ApplicantCategory, String> {
    s.parse()
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// The API body of a change (only the fields given).
/// A domain's choice of notice languages on the command line; empty: the
/// configured default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageChoice(pub Vec<crate::model::language::Lang>);

/// Parses `kk,ru` (or `default`, the configured languages).
pub fn parse_language_choice(s: &str) -> Result<LanguageChoice, String> {
    if s.trim().eq_ignore_ascii_case("default") {
        return Ok(LanguageChoice(Vec::new()));
    }
    crate::model::language::parse_languages(s).map(LanguageChoice)
}

fn body(a: &ChangeArgs) -> Result<Value, CliError> {
    let mut b = json!({ "reason": a.reason });
    if let Some(l) = &a.languages {
        b["languages"] = json!(l.0);
    }
    if !a.servers.is_empty() {
        b["servers"] = json!(a.servers);
    }
    if !a.contacts.is_empty() {
        let contacts = a
            .contacts
            .iter()
            .map(|s| crate::registry::parse_contact(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::Usage(format!("--contact: {e}")))?;
        b["contacts"] = json!(contacts);
    }
    if let Some(o) = &a.owner {
        b["owner"] = json!(o);
    }
    if let Some(c) = a.category {
        b["category"] = json!(c);
    }
    if let Some(i) = &a.inbound {
        b["inbound"] = json!(i);
    }
    if !a.inbound_servers.is_empty() {
        let list = a
            .inbound_servers
            .iter()
            .enumerate()
            .map(|(i, s)| parse_inbound_server(s, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::Usage(format!("--inbound-server: {e}")))?;
        b["inbound_servers"] = json!(list);
    }
    if a.shared_servers {
        b["shared_servers"] = json!(true);
    }
    if a.allow_wide_range {
        b["allow_wide_range"] = json!(true);
    }
    Ok(b)
}

/// `ugem domain update`.
pub(super) fn update(c: &AdminClient, a: DomainUpdate) -> Result<Output, CliError> {
    Ok(Output::Record(c.post(
        &format!("/api/v1/domains/{}/update", segment(&a.domain)),
        &body(&a.change)?,
    )?))
}

/// `ugem domain history`: one row per replaced version.
pub(super) fn history(c: &AdminClient, domain: &str) -> Result<Output, CliError> {
    const COLUMNS: &[(&str, &str)] = &[
        ("VERSION", "/version"),
        ("REPLACED", "/replaced_at"),
        ("BY", "/by"),
        ("CHANGED", "/fields"),
        ("REASON", "/reason"),
    ];
    let v = c.get(&format!("/api/v1/domains/{}/history", segment(domain)))?;
    let rows: Vec<Value> = v["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut r| {
            let fields: Vec<Value> = r["changes"]
                .as_array()
                .map(|a| a.iter().map(|c| c["field"].clone()).collect())
                .unwrap_or_default();
            r["fields"] = json!(fields);
            r
        })
        .collect();
    Ok(Output::History(v, Value::Array(rows), COLUMNS))
}

/// `ugem domain change-request ...`.
pub(super) fn change_request(c: &AdminClient, cmd: ChangeRequestCmd) -> Result<Output, CliError> {
    const COLUMNS: &[(&str, &str)] = &[
        ("ID", "/id"),
        ("DOMAIN", "/domain"),
        ("STATUS", "/status"),
        ("RECEIVED", "/received_on"),
        ("DUE", "/decision_due"),
        ("OVERDUE", "/overdue"),
        ("REASON", "/reason"),
    ];
    let path = |id: &str, action: &str| {
        format!(
            "/api/v1/change-requests/{}/{action}",
            segment(id.trim_start_matches('#'))
        )
    };
    Ok(match cmd {
        ChangeRequestCmd::Submit {
            domain,
            change,
            received,
        } => {
            let mut b = body(&change)?;
            b["domain"] = json!(domain);
            if let Some(r) = received {
                b["received_on"] = json!(r);
            }
            Output::Record(c.post("/api/v1/change-requests", &b)?)
        }
        ChangeRequestCmd::List { status, domain } => Output::Table(
            c.get(&format!(
                "/api/v1/change-requests{}",
                query(&[("status", status), ("domain", domain)])
            ))?,
            COLUMNS,
        ),
        ChangeRequestCmd::Approve {
            id,
            allow_wide_range,
        } => Output::Record(c.post(
            &path(&id, "approve"),
            &json!({ "allow_wide_range": allow_wide_range }),
        )?),
        ChangeRequestCmd::Reject { id, reason } => {
            Output::Record(c.post(&path(&id, "reject"), &json!({ "reason": reason }))?)
        }
    })
}

/// `ugem domain unregistered`: addresses seen sending as the domain.
pub(super) fn unregistered(c: &AdminClient, domain: &str) -> Result<Output, CliError> {
    const COLUMNS: &[(&str, &str)] = &[
        ("ADDRESS", "/address"),
        ("FIRST SEEN", "/first_seen"),
        ("LAST SEEN", "/last_seen"),
        ("COUNT", "/count"),
        ("ALLOWED UNTIL", "/allowed_until"),
        ("SAMPLE", "/sample"),
    ];
    let v = c.get(&format!("/api/v1/domains/{}/unregistered", segment(domain)))?;
    let allowed = v["allowed_servers"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Value> = v["unregistered"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut r| {
            r["allowed_until"] = allowed
                .iter()
                .find(|a| a["address"] == r["address"])
                .map(|a| a["until"].clone())
                .unwrap_or(Value::Null);
            r
        })
        .collect();
    Ok(Output::History(v, Value::Array(rows), COLUMNS))
}

/// `ugem domain allow-server`.
pub(super) fn allow_server(
    c: &AdminClient,
    domain: &str,
    address: &str,
    until: NaiveDate,
    reason: &str,
) -> Result<Output, CliError> {
    Ok(Output::Record(c.post(
        &format!("/api/v1/domains/{}/allow-server", segment(domain)),
        &json!({ "address": address, "until": until, "reason": reason }),
    )?))
}

/// The `--until` date of `allow-server`.
pub(super) fn parse_until(s: &str) -> Result<NaiveDate, String> {
    parse_date(s)
}

/// `HOST:PORT` or `HOST:PORT;pref=N`; the `i`th one defaults to 10 * (i + 1).
fn parse_inbound_server(s: &str, i: usize) -> Result<Value, String> {
    let (hop, pref) = match s.split_once(';') {
        Some((hop, rest)) => {
            let n = rest
                .trim()
                .strip_prefix("pref=")
                .ok_or_else(|| format!("`{rest}`: expected pref=N"))?;
            let n: u16 = n
                .trim()
                .parse()
                .map_err(|_| format!("`{n}` is not a preference (0-65535)"))?;
            (hop.trim(), n)
        }
        None => (s.trim(), u16::try_from(10 * (i + 1)).unwrap_or(u16::MAX)),
    };
    let hp: crate::values::HostPort = hop.parse().map_err(|e| format!("`{hop}`: {e}"))?;
    Ok(json!({ "next_hop": hp, "preference": pref }))
}

//! `ugem application ...`: the registration workflow from the terminal.

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliError, print_table, query};
use crate::admin::client::{AdminClient, segment};
use crate::model::applications::{ApplicantCategory, ApplicationStatus, Channel};

/// `ugem application ...`
#[derive(Subcommand, Debug)]
pub enum ApplicationCmd {
    /// Record a received application; the decision is due in 5 working days.
    Submit(Box<ApplicationSubmit>),
    /// List applications, oldest first; overdue ones are marked.
    List {
        /// Only this status: pending, approved, rejected, withdrawn.
        #[arg(long, value_parser = parse_status)]
        status: Option<ApplicationStatus>,
        /// Only pending applications past their decision date.
        #[arg(long)]
        overdue: bool,
        /// Only applications for this domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Show one application with advice: DNS (MX, SPF), addresses, overlaps.
    Show {
        /// Application id.
        id: String,
    },
    /// Approve: connect the domain and notify its contacts.
    Approve {
        /// Application id.
        id: String,
        /// Allow server ranges shared with domains that also allow it.
        #[arg(long)]
        shared_servers: bool,
        /// Accept server ranges wider than the configured limit (not needed
        /// when the application was submitted with it).
        #[arg(long)]
        allow_wide_range: bool,
    },
    /// Reject with reasons (sent to the contacts); a new application waits 30 days.
    Reject {
        /// Application id.
        id: String,
        /// The reasons.
        #[arg(long)]
        reason: String,
    },
    /// Record that the applicant took the application back.
    Withdraw {
        /// Application id.
        id: String,
        /// Why (e.g. the applicant's letter).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `ugem application submit`
#[derive(Args, Debug)]
pub struct ApplicationSubmit {
    /// The e-mail domain to connect.
    #[arg(long)]
    pub domain: String,
    /// The organization that owns the domain.
    #[arg(long)]
    pub owner: String,
    /// state-body, local-government, state-legal-entity, quasi-public or critical-infrastructure.
    #[arg(long, value_parser = parse_category)]
    pub category: ApplicantCategory,
    /// The head of the organization, who signed the application.
    #[arg(long)]
    pub head: String,
    /// Mail-server IP or CIDR (repeatable).
    #[arg(long = "server", required = true, num_args = 1..)]
    pub servers: Vec<String>,
    /// Technical contact: `Full Name <EMAIL>; mobile=PHONE; office=PHONE` (repeatable).
    #[arg(long = "contact", required = true, num_args = 1..)]
    pub contacts: Vec<String>,
    /// Inbound next hop HOST:PORT (default: first server, port 25).
    #[arg(long)]
    pub inbound: Option<String>,
    /// Date of receipt, YYYY-MM-DD (default: today).
    #[arg(long, value_parser = parse_date)]
    pub received: Option<NaiveDate>,
    /// Accept server ranges wider than `[registration]
    /// widest_server_range_v4`/`_v6` (/24 and /48 by default).
    #[arg(long)]
    pub allow_wide_range: bool,
    /// The application's number, as on the form (with --form-date,
    /// --channel and --channel-ref; each contact then needs both phones).
    #[arg(long, requires_all = ["form_date", "channel", "channel_ref"])]
    pub form_number: Option<String>,
    /// The application's date, as on the form, YYYY-MM-DD.
    #[arg(long, value_parser = parse_date, requires = "form_number")]
    pub form_date: Option<NaiveDate>,
    /// How it came: portal or letter.
    #[arg(long, value_parser = parse_channel, requires = "form_number")]
    pub channel: Option<Channel>,
    /// The portal's ticket or the letter's registration reference.
    #[arg(long, requires = "form_number")]
    pub channel_ref: Option<String>,
    /// The attached document's reference (e.g. the scanned signed form's id).
    #[arg(long, requires = "form_number")]
    pub document: Option<String>,
    /// Languages of the applicant's notices, e.g. `ru` or `kk,ru` (kept by
    /// the domain once connected; default: `[notify] languages`).
    #[arg(long = "language", value_parser = super::lifecycle::parse_language_choice)]
    pub languages: Option<super::lifecycle::LanguageChoice>,
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.parse()
}

fn parse_category(s: &str) -> Result<ApplicantCategory, String> {
    s.parse()
}

fn parse_status(s: &str) -> Result<ApplicationStatus, String> {
    s.parse()
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

fn id_path(id: &str, action: &str) -> String {
    let id = id.trim_start_matches('#');
    if action.is_empty() {
        format!("/api/v1/applications/{}", segment(id))
    } else {
        format!("/api/v1/applications/{}/{action}", segment(id))
    }
}

/// Runs one `application` verb and prints its result.
pub fn run(c: &AdminClient, cmd: ApplicationCmd, as_json: bool) -> Result<(), CliError> {
    let (v, kind) = match cmd {
        ApplicationCmd::Submit(a) => {
            let contacts = a
                .contacts
                .iter()
                .map(|s| crate::registry::parse_contact(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::Usage(format!("--contact: {e}")))?;
            let mut body = json!({
                "domain": a.domain,
                "owner": a.owner,
                "category": a.category,
                "head": a.head,
                "servers": a.servers,
                "contacts": contacts,
                "inbound": a.inbound,
                "received_on": a.received,
                "allow_wide_range": a.allow_wide_range,
            });
            if let Some(l) = &a.languages {
                body["languages"] = json!(l.0);
            }
            // Only when given, so that a server from before the form takes the rest.
            if let Some(number) = a.form_number {
                body["form"] = json!({
                    "number": number,
                    "dated": a.form_date,
                    "channel": a.channel,
                    "reference": a.channel_ref,
                    "document": a.document,
                });
            }
            (c.post("/api/v1/applications", &body)?, Kind::One)
        }
        ApplicationCmd::List {
            status,
            overdue,
            domain,
        } => (
            c.get(&format!(
                "/api/v1/applications{}",
                query(&[
                    ("status", status.map(|s| s.to_string())),
                    ("overdue", overdue.then(|| "true".to_string())),
                    ("domain", domain),
                ])
            ))?,
            Kind::List,
        ),
        ApplicationCmd::Show { id } => (c.get(&id_path(&id, ""))?, Kind::One),
        ApplicationCmd::Approve {
            id,
            shared_servers,
            allow_wide_range,
        } => (
            c.post(
                &id_path(&id, "approve"),
                &json!({ "shared_servers": shared_servers, "allow_wide_range": allow_wide_range }),
            )?,
            Kind::Approval,
        ),
        ApplicationCmd::Reject { id, reason } => (
            c.post(&id_path(&id, "reject"), &json!({ "reason": reason }))?,
            Kind::One,
        ),
        ApplicationCmd::Withdraw { id, reason } => (
            c.post(&id_path(&id, "withdraw"), &json!({ "reason": reason }))?,
            Kind::One,
        ),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    match kind {
        Kind::List => print_list(&v),
        Kind::One => print_application(&v),
        Kind::Approval => {
            print_application(&v["application"]);
            let d = &v["domain"];
            println!(
                "domain:        {} {}{}",
                text(&d["name"]),
                text(&d["status"]),
                if v["reconnected"] == json!(true) {
                    " (connected again)"
                } else {
                    ""
                }
            );
            print_notice(&v["notice"]);
        }
    }
    Ok(())
}

enum Kind {
    List,
    One,
    Approval,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `pending`, `pending, OVERDUE` or the decided status.
fn status_text(v: &Value) -> String {
    let status = text(&v["status"]);
    if v["overdue"] == json!(true) {
        format!("{status}, OVERDUE")
    } else {
        status
    }
}

fn print_list(v: &Value) {
    let rows: Vec<Value> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    json!({
                        "id": r["id"],
                        "domain": r["domain"],
                        "status": status_text(r),
                        "category": r["category"],
                        "received": r["received_on"],
                        "due": r["decision_due"],
                        "left": r.get("working_days_left").cloned().unwrap_or(Value::Null),
                        "owner": r["owner"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    print_table(
        &Value::Array(rows),
        &[
            ("ID", "/id"),
            ("DOMAIN", "/domain"),
            ("STATUS", "/status"),
            ("CATEGORY", "/category"),
            ("RECEIVED", "/received"),
            ("DUE", "/due"),
            ("DAYS LEFT", "/left"),
            ("OWNER", "/owner"),
        ],
    );
}

fn contact_text(c: &Value) -> String {
    let mut s = if c["name"].as_str().unwrap_or("").is_empty() {
        text(&c["email"])
    } else {
        format!("{} <{}>", text(&c["name"]), text(&c["email"]))
    };
    if !c["mobile_phone"].is_null() {
        s.push_str(&format!("; mobile {}", text(&c["mobile_phone"])));
    }
    if !c["office_phone"].is_null() {
        s.push_str(&format!("; office {}", text(&c["office_phone"])));
    }
    s
}

/// One skipped day as the API gives it: `2026-03-09 Mon  day off for ... of 2026-03-08`.
fn skipped_day_text(d: &Value) -> String {
    let why = match d["why"].as_str().unwrap_or("") {
        "weekend" => "weekend".to_string(),
        "holiday" => format!("holiday: {}", text(&d["name"])),
        "moved_holiday" => format!("day off for {} of {}", text(&d["name"]), text(&d["from"])),
        "day_off" => format!("day off: {}", text(&d["name"])),
        other => other.to_string(),
    };
    format!("{} {}  {why}", text(&d["date"]), text(&d["weekday"]))
}

fn print_application(v: &Value) {
    let due = match v.get("working_days_left").and_then(Value::as_i64) {
        Some(0) => ", due today".to_string(),
        Some(n) if n > 0 => format!(", {n} working day(s) left"),
        Some(n) => format!(", overdue by {} working day(s)", -n),
        None => String::new(),
    };
    let domain = text(&v["domain"]);
    let (unicode, _) = idna::domain_to_unicode(&domain);
    let domain = if unicode != domain {
        format!("{domain} ({unicode})")
    } else {
        domain
    };
    println!(
        "application #{}  {domain}  {}{due}",
        text(&v["id"]),
        status_text(v)
    );
    let line = |k: &str, val: String| {
        let label = if k.is_empty() {
            String::new()
        } else {
            format!("{k}:")
        };
        println!("{label:<14} {val}");
    };
    line("owner", text(&v["owner"]));
    line("category", text(&v["category"]));
    line("head", text(&v["head"]));
    let servers: Vec<String> = v["servers"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    line("servers", servers.join(", "));
    if !v["inbound"].is_null() {
        line("inbound", text(&v["inbound"]));
    }
    for (i, c) in v["contacts"].as_array().into_iter().flatten().enumerate() {
        line(if i == 0 { "contacts" } else { "" }, contact_text(c));
    }
    let form = &v["form"];
    if !form.is_null() {
        line(
            "application",
            format!("No. {} of {}", text(&form["number"]), text(&form["dated"])),
        );
        line(
            "channel",
            format!("{} {}", text(&form["channel"]), text(&form["reference"])),
        );
        if !form["document"].is_null() {
            line("document", text(&form["document"]));
        }
    }
    line("received on", text(&v["received_on"]));
    line("decision due", text(&v["decision_due"]));
    // The days off the deadline skipped, so staff can check the count.
    for (i, d) in v["skipped_days"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        line(if i == 0 { "days off" } else { "" }, skipped_day_text(d));
    }
    line("submitted by", text(&v["submitted_by"]));
    if !v["decided_on"].is_null() {
        line(
            "decided",
            format!("{} by {}", text(&v["decided_on"]), text(&v["decided_by"])),
        );
    }
    if !v["reason"].is_null() {
        line("reason", text(&v["reason"]));
    }
    if !v["resubmit_from"].is_null() {
        line("resubmit from", text(&v["resubmit_from"]));
    }
    if !v["calendar_warning"].is_null() {
        line("WARNING", text(&v["calendar_warning"]));
    }
    if let Some(checks) = v["checks"].as_array() {
        println!("checks (advice only):");
        for c in checks {
            println!(
                "  {:<8} {:<15} {}",
                text(&c["verdict"]),
                text(&c["check"]),
                text(&c["detail"])
            );
        }
    }
    print_notice(&v["notice"]);
}

fn print_notice(n: &Value) {
    if n.is_null() {
        return;
    }
    let to: Vec<String> = n["to"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    if n["queued"].is_null() {
        println!(
            "notice:        NOT queued to {}: {}",
            to.join(", "),
            text(&n["error"])
        );
    } else {
        println!(
            "notice:        queued as {} to {}",
            text(&n["queued"]),
            to.join(", ")
        );
    }
}

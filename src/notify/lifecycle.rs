//! The words of the notices about a connected domain's lifecycle: its data
//! changed, a disconnection agreed for a date (scheduled, reminded,
//! cancelled).

use chrono::NaiveDate;

use super::notices::{Text, display_domain, footer};
use crate::config::Config;
use crate::model::changes::FieldChange;
use crate::model::domains::DomainRecord;

/// One changed field as people read it.
fn describe(c: &FieldChange) -> String {
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(o) => o
                    .get("email")
                    .and_then(|e| e.as_str())
                    .map(|e| match o.get("name").and_then(|n| n.as_str()) {
                        Some(n) if !n.is_empty() => format!("{n} <{e}>"),
                        _ => e.to_string(),
                    })
                    .unwrap_or_else(|| i.to_string()),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    format!(
        "  {}:\n    before: {}\n    now:    {}",
        c.field,
        show(&c.before),
        show(&c.after)
    )
}

/// To the old and new contacts: the domain's registered data changed.
pub fn domain_updated(
    cfg: &Config,
    after: &DomainRecord,
    changes: &[FieldChange],
    reason: &str,
) -> Text {
    let name = display_domain(&after.name);
    let lines: Vec<String> = changes.iter().map(describe).collect();
    let body = format!(
        "The registered data of the mail domain {name} ({owner}) at the mail gateway has been changed.\n\n\
         What changed:\n{lines}\n\n\
         Reason:\n{reason}\n\n\
         Mail keeps flowing; the gateway now relays for {name} only from the servers above. \
         If you did not ask for this change, contact the gateway's operator at once.\n{footer}",
        owner = after.owner,
        lines = lines.join("\n"),
        footer = footer(cfg),
    );
    Text {
        subject: format!("{name}: registered data changed at the mail gateway"),
        body,
    }
}

/// To the contacts: the domain will be disconnected on `on`.
pub fn disconnection_scheduled(
    cfg: &Config,
    domain: &DomainRecord,
    on: NaiveDate,
    reason: &str,
) -> Text {
    let name = display_domain(&domain.name);
    let body = format!(
        "The mail domain {name} ({owner}) will be disconnected from the mail gateway on {on} \
         (from the start of that day, {offset}).\n\n\
         Reason:\n{reason}\n\n\
         From then on the gateway refuses mail from and to {name} as from an unregistered domain. \
         You will be reminded before the date. Connecting the domain again takes a new application.\n{footer}",
        owner = domain.owner,
        offset = cfg.registration.utc_offset.0,
        footer = footer(cfg),
    );
    Text {
        subject: format!("{name}: disconnection from the mail gateway on {on}"),
        body,
    }
}

/// To the contacts: `days` working days remain before the disconnection.
pub fn disconnection_reminder(
    cfg: &Config,
    domain: &DomainRecord,
    on: NaiveDate,
    days: i64,
) -> Text {
    let name = display_domain(&domain.name);
    let body = format!(
        "Reminder: the mail domain {name} ({owner}) will be disconnected from the mail gateway on {on}, \
         in {days} working day(s).\n\n\
         Reason:\n{reason}\n{footer}",
        owner = domain.owner,
        reason = domain
            .disconnect_on
            .as_ref()
            .map(|s| s.reason.as_str())
            .unwrap_or("-"),
        footer = footer(cfg),
    );
    Text {
        subject: format!(
            "{name}: disconnection from the mail gateway on {on} (in {days} working day(s))"
        ),
        body,
    }
}

/// To the contacts: the scheduled disconnection is called off.
pub fn disconnection_cancelled(cfg: &Config, domain: &DomainRecord, on: NaiveDate) -> Text {
    let name = display_domain(&domain.name);
    let body = format!(
        "The disconnection of the mail domain {name} ({owner}) from the mail gateway, \
         scheduled for {on}, has been cancelled. The domain stays connected.\n{footer}",
        owner = domain.owner,
        footer = footer(cfg),
    );
    Text {
        subject: format!("{name}: scheduled disconnection cancelled"),
        body,
    }
}

/// To the contacts: addresses not registered for the domain tried to send
/// as it and were refused.
pub fn unregistered_servers(
    cfg: &Config,
    domain: &DomainRecord,
    seen: &[crate::model::sightings::UnregisteredServer],
) -> Text {
    let name = display_domain(&domain.name);
    let lines: Vec<String> = seen
        .iter()
        .map(|s| {
            format!(
                "  {} (first seen {}, {} refusal(s); e.g. {})",
                s.address,
                s.first_seen
                    .with_timezone(&cfg.registration.utc_offset.0)
                    .format("%Y-%m-%d %H:%M %:z"),
                s.count,
                s.sample
            )
        })
        .collect();
    let servers: Vec<String> = domain.servers.iter().map(|n| n.to_string()).collect();
    let body = format!(
        "The mail gateway refused mail sent as {name} from addresses that are not registered \
         mail servers of the domain:\n{lines}\n\n\
         The registered servers of {name} are: {servers}.\n\n\
         If one of these addresses is a mail server of yours (a new or moved server), apply \
         to change the domain's registered data (a change request with the new server \
         list); until then its mail is refused. If none of them is yours, someone is trying \
         to send mail in your name: no action is needed at the gateway, which keeps \
         refusing them, but check your domain's SPF and DMARC records.\n\
         You are told once per address.\n{footer}",
        lines = lines.join("\n"),
        servers = servers.join(", "),
        footer = footer(cfg),
    );
    Text {
        subject: format!("{name}: mail refused from unregistered servers"),
        body,
    }
}

/// To a hosted domain's contacts: its server address is suspended.
pub fn server_suspended(
    cfg: &Config,
    domain: &DomainRecord,
    s: &crate::model::servers::ServerSuspension,
    held: usize,
) -> Text {
    let name = display_domain(&domain.name);
    let others: Vec<String> = s
        .domains
        .iter()
        .filter(|d| **d != domain.name)
        .map(|d| d.to_string())
        .collect();
    let body = format!(
        "The mail server {ip}, registered for {name}, has been suspended at the mail gateway \
         since {since}.\n\nReason:\n{reason}\n\n\
         The gateway answers mail from this server with a temporary failure (451), whichever \
         domain it sends as, so your server keeps the mail and retries. {held} message(s) \
         from it already queued are held, not sent, until the suspension ends.{shared}\n\
         Mail from your other registered servers is not affected.\n{footer}",
        ip = s.address,
        since = s
            .started_at
            .with_timezone(&cfg.registration.utc_offset.0)
            .format("%Y-%m-%d %H:%M %:z"),
        reason = s.reason,
        shared = if others.is_empty() {
            String::new()
        } else {
            format!(
                "\nThe server also sends for: {}; their contacts are told as well.",
                others.join(", ")
            )
        },
        footer = footer(cfg),
    );
    Text {
        subject: format!(
            "{name}: mail server {} suspended at the mail gateway",
            s.address
        ),
        body,
    }
}

/// To a hosted domain's contacts: the server's suspension ended.
pub fn server_restored(
    cfg: &Config,
    domain: &DomainRecord,
    s: &crate::model::servers::ServerSuspension,
    released: usize,
) -> Text {
    let name = display_domain(&domain.name);
    let body = format!(
        "The suspension of the mail server {ip} (registered for {name}) at the mail gateway \
         has ended. Its mail is accepted again; {released} held message(s) are on their way.\n{footer}",
        ip = s.address,
        footer = footer(cfg),
    );
    Text {
        subject: format!(
            "{name}: mail server {} restored at the mail gateway",
            s.address
        ),
        body,
    }
}

/// To the contacts: a change request was rejected, with the reasons.
pub fn change_request_rejected(
    cfg: &Config,
    domain: &DomainRecord,
    req: &crate::model::changes::ChangeRequest,
) -> Text {
    let name = display_domain(&domain.name);
    let body = format!(
        "The request #{id} to change the registered data of the mail domain {name}, received \
         on {received}, has been rejected.\n\n\
         Reasons:\n{reasons}\n\n\
         The domain's registered data stay as they were; mail keeps flowing. \
         A new request may be sent at any time.\n{footer}",
        id = req.id,
        received = req.received_on,
        reasons = req.decision_reason.as_deref().unwrap_or("-"),
        footer = footer(cfg),
    );
    Text {
        subject: format!("{name}: change request #{} rejected", req.id),
        body,
    }
}

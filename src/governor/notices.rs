//! The words of the governor's notices (warning, throttle, suspension,
//! restore), kept together so they can be reviewed and translated at once.

use crate::config::Config;
use crate::notify::notices::Text;
use crate::store::suspensions::{Scope, SuspensionRecord};

use super::detector::Trip;
use super::settings::Step;

fn footer(cfg: &Config) -> String {
    format!(
        "\n--\nMail gateway {}\nQuestions: {}\nThis message was generated automatically.\n",
        cfg.server.hostname, cfg.server.postmaster
    )
}

fn evidence_text(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A rule tripped and the scope was warned or throttled.
pub fn early_step(cfg: &Config, scope: &Scope, step: Step, trip: &Trip) -> Text {
    let (subject, what) = match step {
        Step::Throttle => (
            format!("Mail gateway: {scope} throttled ({})", trip.rule),
            format!(
                "The mail gateway has tightened the rate limits of {scope} for {}: its mail \
                 is accepted more slowly (temporary 451 4.7.0 replies, the sending server \
                 retries). If the traffic continues, the gateway suspends it.",
                humantime::format_duration(cfg.governor.throttle_duration.0)
            ),
        ),
        _ => (
            format!("Mail gateway: unusual traffic from {scope} ({})", trip.rule),
            format!(
                "The mail gateway noticed unusual traffic from {scope}. Nothing is blocked \
                 yet; if it continues, the gateway throttles and then suspends it."
            ),
        ),
    };
    Text {
        subject,
        body: format!(
            "{what}\n\nWhat was seen: {}\n\nEvidence (rule {}):\n{}\n\n\
             If this traffic is legitimate (a planned mailing), ask {} to raise the limits \
             of your domain. If it is not, check the sending account for a compromise \
             (password reset, malware scan) now.\n{}",
            trip.summary,
            trip.rule,
            evidence_text(&trip.evidence),
            cfg.server.postmaster,
            footer(cfg)
        ),
    }
}

/// A scope was suspended automatically.
pub fn suspended(cfg: &Config, rec: &SuspensionRecord) -> Text {
    let restore = match &rec.scope {
        Scope::Domain(d) => format!("ugem domain restore {d}"),
        Scope::Sender(s) => format!("ugem sender restore {s}"),
    };
    let expiry = rec
        .expires_at
        .map(|t| {
            format!(
                "The suspension ends automatically at {}.\n",
                t.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .unwrap_or_default();
    Text {
        subject: format!("Mail gateway: {} suspended ({})", rec.scope, rec.rule),
        body: format!(
            "The mail gateway has suspended {scope} on {since} to protect the gateway's \
             reputation (suspension #{id}, rule {rule}).\n\n\
             Why: {reason}\n\n\
             Evidence:\n{evidence}\n\n\
             What this means: new mail from {scope} is refused with a temporary error \
             (451 4.7.1), so your mail server keeps it and retries; mail already in the \
             gateway's queue is held, not sent and not lost.\n{expiry}\n\
             How to get restored: find and fix the cause (a compromised account, a \
             misconfigured application, a bad recipient list), then reply to this message \
             or write to {pm} with what was done. Gateway staff restore the scope \
             (`{restore}`) and release or delete the held mail.\n{footer}",
            scope = rec.scope,
            since = rec.started_at.format("%Y-%m-%d %H:%M UTC"),
            id = rec.id,
            rule = rec.rule,
            reason = rec.reason,
            evidence = evidence_text(&rec.evidence),
            pm = cfg.server.postmaster,
            footer = footer(cfg),
        ),
    }
}

/// A suspension ended.
pub fn restored(cfg: &Config, rec: &SuspensionRecord) -> Text {
    let (by, why, held) = match &rec.restored {
        Some(r) => (
            r.by.clone(),
            r.reason.clone().unwrap_or_else(|| "-".into()),
            r.held_mail.clone(),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let by = if by == "auto" {
        "automatically (the suspension expired)".to_string()
    } else {
        format!("by {by}")
    };
    Text {
        subject: format!("Mail gateway: {} restored", rec.scope),
        body: format!(
            "The suspension #{id} of {scope} (rule {rule}, since {since}) was lifted {by}.\n\n\
             Reason: {why}\nHeld mail: {held}\n\n\
             Mail from {scope} is accepted again.\n{footer}",
            id = rec.id,
            scope = rec.scope,
            rule = rec.rule,
            since = rec.started_at.format("%Y-%m-%d %H:%M UTC"),
            footer = footer(cfg),
        ),
    }
}

/// A remote server refused mail because one of the gateway's own addresses
/// is on a blocklist: for the postmaster, whatever domain was sending.
pub fn gateway_listed(cfg: &Config, address: std::net::IpAddr, reply: &str, domain: &str) -> Text {
    Text {
        subject: format!("Mail gateway: address {address} is on a blocklist"),
        body: format!(
            "A remote server refused mail from the gateway {} because the gateway's address \
             {address} is on a blocklist. Every agency's mail to that server (and to others \
             using the same list) is now refused or delayed.\n\n\
             The refusal (while delivering mail of {domain}):\n  {reply}\n\n\
             These refusals are not counted against the sending domains: the listing is \
             about the gateway. What to do: look the address up at the list named in the \
             refusal, find the traffic that caused it (`ugem governor`, `ugem suspension \
             list --history`, the delivery log around the listing), stop it, and request \
             delisting. This notice is sent at most once a day per address.\n{}",
            cfg.server.hostname,
            footer(cfg)
        ),
    }
}

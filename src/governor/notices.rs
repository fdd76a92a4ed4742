//! The words of the governor's notices (warning, throttle, suspension,
//! restore), kept together so they can be reviewed and translated at once.

use crate::config::Config;
use crate::model::suspensions::{Scope, SuspensionRecord};
use crate::notify::notices::Text;

use super::detector::Trip;
use super::settings::Step;

fn footer(cfg: &Config) -> String {
    format!(
        "\n--\nMail gateway {}\nQuestions: {}\nThis message was generated automatically.\n",
        cfg.server.hostname, cfg.server.postmaster
    )
}

/// The evidence as "name: value" lines; the steps taken, one a line.
fn evidence_text(v: &serde_json::Value) -> String {
    let Some(m) = v.as_object() else {
        return serde_json::to_string_pretty(v).unwrap_or_default();
    };
    let mut out = String::new();
    for (k, v) in m {
        if k == "steps" {
            continue;
        }
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("  {}: {v}\n", k.replace('_', " ")));
    }
    if let Some(steps) = m.get("steps").and_then(|s| s.as_array()) {
        out.push_str("  steps so far:\n");
        for s in steps {
            let at = s["at_ms"]
                .as_u64()
                .map(|ms| {
                    super::clock::utc(ms)
                        .format("%Y-%m-%d %H:%M:%S UTC")
                        .to_string()
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "    {at}  {} ({})\n",
                s["step"].as_str().unwrap_or("?"),
                s["rule"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

/// What the agency's IT staff should look at, by rule.
pub fn advice(rule: &str) -> &'static str {
    match rule {
        "novelty" | "domain_novelty" => {
            "The account wrote to many addresses it never wrote to before, far more than it \
             ever did: the usual sign of a stolen password used to send spam. Reset the \
             password, end its open sessions, check its forwarding and inbox rules and the \
             device it is used from. If this was a planned mailing, ask the gateway staff to \
             declare the sender (`ugem sender limits`) before the next one."
        }
        "unknown_recipients" => {
            "Many recipients do not exist: a bought, old or guessed address list, or an \
             account used for spam. Check who sent to these addresses and why."
        }
        "rejections" => {
            "Receiving servers refused a large share of this mail for good, many as spam. \
             Check the account for a compromise and the content of what it sends."
        }
        "senders_suspended" => {
            "Several accounts of the domain were suspended: a wider compromise (a phishing \
             wave, a shared password, malware on the mail server) is likely."
        }
        _ => "Check the sending account and the server for a compromise.",
    }
}

/// A rule tripped and the scope was warned or throttled.
pub fn early_step(cfg: &Config, scope: &Scope, step: Step, trip: &Trip) -> Text {
    let (subject, what) = match step {
        Step::Throttle => (
            format!("Mail gateway: {scope} throttled ({})", trip.rule),
            format!(
                "The mail gateway has throttled {scope} for {}: mail to addresses it never \
                 wrote to before is deferred (temporary 451 4.7.0 replies, the sending server \
                 keeps it and retries). Mail to its usual correspondents still goes out. If it \
                 keeps trying new addresses, the gateway suspends it.",
                humantime::format_duration(cfg.governor.throttle_duration.0),
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
            "{what}\n\nWhat was seen: {}\n\nWhat to do: {}\n\nEvidence (rule {}):\n{}\n\
             If this traffic is legitimate (a planned mailing), ask {} to declare the sender \
             or raise the limits of your domain.\n{}",
            trip.summary,
            advice(trip.rule),
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
             What to look at: {advice}\n\n\
             Evidence:\n{evidence}\n\
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
            advice = advice(&rec.rule),
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

/// The blocklist watch found a gateway address listed: for the postmaster.
pub fn blocklist_listed(cfg: &Config, l: &crate::model::listings::GatewayListing) -> Text {
    let page = super::blocklists::lookup_page(&l.list)
        .map(|u| format!("\nLook it up and ask for removal at {u}.\n"))
        .unwrap_or_default();
    Text {
        subject: format!(
            "Mail gateway: address {} is listed on {}",
            l.address, l.list
        ),
        body: format!(
            "The blocklist watch of the gateway {host} found the gateway's address {addr} \
             listed on {zone}.\n\n  answer: {code} ({meaning})\n  seen at: {at}\n\n\
             Receivers that use this list refuse or delay mail from this address, whatever \
             agency sent it. What to do: find the traffic that caused it (`ugem governor`, \
             `ugem suspension list --history`, the delivery log), stop it, and request \
             delisting.{page}\nYou will get one more message when the listing ends.\n{footer}",
            host = cfg.server.hostname,
            addr = l.address,
            zone = l.list,
            code = l.code,
            meaning = l.meaning,
            at = l.at.format("%Y-%m-%d %H:%M UTC"),
            footer = footer(cfg),
        ),
    }
}

/// A listing the blocklist watch had found is gone: for the postmaster.
pub fn blocklist_delisted(cfg: &Config, l: &crate::model::listings::GatewayListing) -> Text {
    let until = l
        .delisted_at
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    Text {
        subject: format!(
            "Mail gateway: address {} is no longer listed on {}",
            l.address, l.list
        ),
        body: format!(
            "The gateway {host}'s address {addr} is no longer listed on {zone}.\n\n  \
             listed: {from} to {until}\n  answer was: {code} ({meaning})\n{footer}",
            host = cfg.server.hostname,
            addr = l.address,
            zone = l.list,
            from = l.at.format("%Y-%m-%d %H:%M UTC"),
            code = l.code,
            meaning = l.meaning,
            footer = footer(cfg),
        ),
    }
}

/// A blocklist refuses the watch's queries (public resolver, no
/// registration, too many queries): for the postmaster, once a day per list.
pub fn blocklist_refused(cfg: &Config, zone: &str, why: &str) -> Text {
    Text {
        subject: format!("Mail gateway: blocklist {zone} refuses the gateway's queries"),
        body: format!(
            "The blocklist watch of the gateway {host} cannot tell whether the gateway's \
             addresses are listed on {zone}: {why}.\n\n\
             Queries must come from a resolver of your own (delivery.nameservers), not a \
             public one; some lists also need the resolver's address registered (Barracuda) \
             or a key (Spamhaus DQS). See the README, \"The gateway on blocklists\". \
             `ugem governor` shows each list's state. This notice is sent at most once a \
             day per list.\n{footer}",
            host = cfg.server.hostname,
            footer = footer(cfg),
        ),
    }
}

//! The words of the notices about a connected domain's lifecycle: its data
//! changed, a disconnection agreed for a date (scheduled, reminded,
//! cancelled).

use chrono::NaiveDate;
use serde_json::json;

use super::notices::{Text, display_domain, local_time};
use crate::config::Config;
use crate::model::changes::FieldChange;
use crate::model::domains::DomainRecord;

/// One changed field as people read it: its name, before and now.
fn describe(c: &FieldChange) -> serde_json::Value {
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
    json!({ "field": c.field, "before": show(&c.before), "now": show(&c.after) })
}

/// To the old and new contacts: the domain's registered data changed.
pub fn domain_updated(
    _cfg: &Config,
    after: &DomainRecord,
    changes: &[FieldChange],
    reason: &str,
) -> Text {
    let changes: Vec<serde_json::Value> = changes.iter().map(describe).collect();
    Text::new(
        "domain_updated",
        json!({
            "name": display_domain(&after.name),
            "owner": after.owner,
            "changes": changes,
            "reason": reason,
        }),
    )
    .for_domain(after)
}

/// To the contacts: the domain will be disconnected on `on`.
pub fn disconnection_scheduled(
    cfg: &Config,
    domain: &DomainRecord,
    on: NaiveDate,
    reason: &str,
) -> Text {
    Text::new(
        "disconnection_scheduled",
        json!({
            "name": display_domain(&domain.name),
            "owner": domain.owner,
            "on": on.to_string(),
            "offset": cfg.registration.utc_offset.0.to_string(),
            "reason": reason,
        }),
    )
    .for_domain(domain)
}

/// To the contacts: `days` working days remain before the disconnection.
pub fn disconnection_reminder(
    _cfg: &Config,
    domain: &DomainRecord,
    on: NaiveDate,
    days: i64,
) -> Text {
    Text::new(
        "disconnection_reminder",
        json!({
            "name": display_domain(&domain.name),
            "owner": domain.owner,
            "on": on.to_string(),
            "days": days,
            "reason": domain
                .disconnect_on
                .as_ref()
                .map(|s| s.reason.as_str())
                .unwrap_or("-"),
        }),
    )
    .for_domain(domain)
}

/// To the contacts: the scheduled disconnection is called off.
pub fn disconnection_cancelled(_cfg: &Config, domain: &DomainRecord, on: NaiveDate) -> Text {
    Text::new(
        "disconnection_cancelled",
        json!({
            "name": display_domain(&domain.name),
            "owner": domain.owner,
            "on": on.to_string(),
        }),
    )
    .for_domain(domain)
}

/// To the contacts: addresses not registered for the domain tried to send
/// as it and were refused.
pub fn unregistered_servers(
    cfg: &Config,
    domain: &DomainRecord,
    seen: &[crate::model::sightings::UnregisteredServer],
) -> Text {
    let seen: Vec<serde_json::Value> = seen
        .iter()
        .map(|s| {
            json!({
                "address": s.address.to_string(),
                "first_seen": local_time(cfg, s.first_seen),
                "count": s.count,
                "sample": s.sample,
            })
        })
        .collect();
    let servers: Vec<String> = domain.servers.iter().map(|n| n.to_string()).collect();
    Text::new(
        "unregistered_servers",
        json!({
            "name": display_domain(&domain.name),
            "seen": seen,
            "servers": servers.join(", "),
        }),
    )
    .for_domain(domain)
}

/// To a hosted domain's contacts: its server address is suspended.
pub fn server_suspended(
    cfg: &Config,
    domain: &DomainRecord,
    s: &crate::model::servers::ServerSuspension,
    held: usize,
) -> Text {
    let others: Vec<String> = s
        .domains
        .iter()
        .filter(|d| **d != domain.name)
        .map(|d| d.to_string())
        .collect();
    Text::new(
        "server_suspended",
        json!({
            "name": display_domain(&domain.name),
            "ip": s.address.to_string(),
            "since": local_time(cfg, s.started_at),
            "reason": s.reason,
            "held": held,
            "others": others.join(", "),
        }),
    )
    .for_domain(domain)
}

/// To a hosted domain's contacts: the server's suspension ended.
pub fn server_restored(
    _cfg: &Config,
    domain: &DomainRecord,
    s: &crate::model::servers::ServerSuspension,
    released: usize,
) -> Text {
    Text::new(
        "server_restored",
        json!({
            "name": display_domain(&domain.name),
            "ip": s.address.to_string(),
            "released": released,
        }),
    )
    .for_domain(domain)
}

/// To the contacts: a change request was rejected, with the reasons.
pub fn change_request_rejected(
    _cfg: &Config,
    domain: &DomainRecord,
    req: &crate::model::changes::ChangeRequest,
) -> Text {
    Text::new(
        "change_request_rejected",
        json!({
            "name": display_domain(&domain.name),
            "id": req.id,
            "received": req.received_on.to_string(),
            "reasons": req.decision_reason.as_deref().unwrap_or("-"),
        }),
    )
    .for_domain(domain)
}

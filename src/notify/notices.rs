//! The registration notices: which template each one is and the values it
//! gets. The words are in `templates/notices/` (Kazakh, Russian, English),
//! where staff may also replace them (`[notify] templates_dir`).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::config::Config;
use crate::domain::Domain;
use crate::model::applications::ApplicationRecord;
use crate::model::domains::DomainRecord;
use crate::model::language::Lang;

/// A notice before it is written: its template, the values it gets and the
/// languages of its recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    /// The template: `templates/notices/<name>.<lang>.txt`.
    pub name: &'static str,
    /// The values the template may use (besides the common ones).
    pub vars: serde_json::Value,
    /// The recipients' languages in order; empty: `[notify] languages`.
    pub languages: Vec<Lang>,
    /// Part templates rendered first, each given to the notice's template
    /// as a value of its own name (the governor's advice).
    pub parts: Vec<&'static str>,
}

impl Text {
    /// A notice from template `name` with `vars`, in the default languages.
    pub fn new(name: &'static str, vars: serde_json::Value) -> Text {
        Text {
            name,
            vars,
            languages: Vec::new(),
            parts: Vec::new(),
        }
    }

    /// The same notice in `languages` (none: the default ones).
    pub fn in_languages(mut self, languages: &[Lang]) -> Text {
        self.languages = languages.to_vec();
        self
    }

    /// The same notice for `domain`'s contacts, in the domain's languages.
    pub fn for_domain(self, domain: &DomainRecord) -> Text {
        self.in_languages(&domain.languages)
    }

    /// The same notice with part template `part` rendered into it.
    pub fn with_part(mut self, part: &'static str) -> Text {
        self.parts.push(part);
        self
    }
}

/// The domain as people read it: the Unicode form of an IDN, with its A-label.
pub fn display_domain(d: &Domain) -> String {
    let (unicode, res) = idna::domain_to_unicode(d.as_str());
    if res.is_ok() && unicode != d.as_str() {
        format!("{unicode} ({d})")
    } else {
        d.to_string()
    }
}

/// A moment as the gateway's people read it: local time, with the offset.
pub fn local_time(cfg: &Config, t: DateTime<Utc>) -> String {
    t.with_timezone(&cfg.registration.utc_offset.0)
        .format("%Y-%m-%d %H:%M %:z")
        .to_string()
}

fn date_or_dash(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_else(|| "-".into())
}

/// To the contacts: the domain is connected.
pub fn application_approved(cfg: &Config, app: &ApplicationRecord, domain: &DomainRecord) -> Text {
    let servers: Vec<String> = domain.servers.iter().map(|s| s.to_string()).collect();
    let inbound = domain
        .inbound_route()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "-".into());
    let gw: Vec<String> = cfg
        .registration
        .gateway_addresses
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    Text::new(
        "application_approved",
        json!({
            "id": app.id,
            "name": display_domain(&app.domain),
            "owner": app.owner,
            "received": app.received_on.to_string(),
            "decided": date_or_dash(app.decided_on),
            "servers": servers.join(", "),
            "inbound": inbound,
            "gateway_addresses": gw.join(", "),
        }),
    )
    .for_domain(domain)
}

/// To the contacts: the application is rejected, with reasons and the lock.
pub fn application_rejected(
    cfg: &Config,
    app: &ApplicationRecord,
    resubmit_from: Option<NaiveDate>,
) -> Text {
    Text::new(
        "application_rejected",
        json!({
            "id": app.id,
            "name": display_domain(&app.domain),
            "owner": app.owner,
            "received": app.received_on.to_string(),
            "decided": date_or_dash(app.decided_on),
            "reason": app.reason.as_deref().unwrap_or("-"),
            "resubmit_from": resubmit_from.map(|d| d.to_string()),
            "resubmit_days": cfg.registration.resubmit_days,
        }),
    )
    .in_languages(&app.languages)
}

/// To the contacts: the domain is disconnected.
pub fn domain_disconnected(cfg: &Config, domain: &DomainRecord) -> Text {
    Text::new(
        "domain_disconnected",
        json!({
            "name": display_domain(&domain.name),
            "owner": domain.owner,
            "since": local_time(cfg, domain.status_since),
            "reason": domain.status_reason.as_deref().unwrap_or("-"),
        }),
    )
    .for_domain(domain)
}

/// To the postmaster: an application is due today or overdue.
pub fn deadline_alert(
    _cfg: &Config,
    app: &ApplicationRecord,
    today: NaiveDate,
    working_days_left: i64,
) -> Text {
    Text::new(
        "deadline_alert",
        json!({
            "id": app.id,
            "name": display_domain(&app.domain),
            "owner": app.owner,
            "category": app.category.description(),
            "received": app.received_on.to_string(),
            "by": app.submitted_by,
            "due": app.decision_due.to_string(),
            "overdue": today > app.decision_due,
            "days_late": (-working_days_left).max(0),
        }),
    )
}

/// To the postmaster: the working-day calendar lacks a year.
pub fn calendar_review(_cfg: &Config, years: &[i32]) -> Text {
    let years: Vec<String> = years.iter().map(|y| y.to_string()).collect();
    Text::new("calendar_review", json!({ "years": years.join(", ") }))
}

/// To the contacts: the yearly confirmation of the domain's data is due
/// (`due`, local date) since the connection or last confirmation `since`.
pub fn reconfirm_reminder(
    _cfg: &Config,
    domain: &DomainRecord,
    since: NaiveDate,
    due: NaiveDate,
) -> Text {
    let servers: Vec<String> = domain.servers.iter().map(|s| s.to_string()).collect();
    let contacts: Vec<String> = domain
        .contacts
        .iter()
        .map(|c| {
            if c.name.is_empty() {
                c.email.clone()
            } else {
                format!("{} <{}>", c.name, c.email)
            }
        })
        .collect();
    Text::new(
        "reconfirm_reminder",
        json!({
            "name": display_domain(&domain.name),
            "owner": domain.owner,
            "servers": servers,
            "contacts": contacts,
            "inbound": domain.inbound_route().map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            "since": since.to_string(),
            "due": due.to_string(),
        }),
    )
    .for_domain(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_domains_are_shown_in_both_forms() {
        let d = Domain::parse("министерство.қаз").unwrap();
        let s = display_domain(&d);
        assert!(s.starts_with("министерство.қаз (xn--"), "{s}");
        assert_eq!(display_domain(&Domain::parse("gov.kz").unwrap()), "gov.kz");
    }
}

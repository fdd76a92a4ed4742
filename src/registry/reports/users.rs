//! Connected users as of the period's end, by category: the registry
//! export (owner, head, contacts, servers, connected since, last application).

use serde_json::Value;

use super::{Context, Report, ReportKind, opt, val};
use crate::model::applications::{ApplicantCategory, ApplicationRecord, ApplicationStatus};
use crate::model::domains::{Contact, DomainRecord, DomainStatus};

const COLUMNS: &[&str] = &[
    "domain",
    "owner",
    "category",
    "head",
    "contacts",
    "servers",
    "status",
    "connected_since",
    "last_application",
    "last_application_received",
    "last_application_status",
];

/// `Name <email>; mobile ...; office ...`.
fn contact_text(c: &Contact) -> String {
    let mut s = if c.name.trim().is_empty() {
        c.email.clone()
    } else {
        format!("{} <{}>", c.name, c.email)
    };
    if let Some(p) = &c.mobile_phone {
        s.push_str(&format!(" mobile {p}"));
    }
    if let Some(p) = &c.office_phone {
        s.push_str(&format!(" office {p}"));
    }
    s
}

/// The users report: domains registered by the period's end and not
/// disconnected by then (their status is today's), each with its latest
/// application and the head who signed the latest approved one.
pub fn report(domains: &[DomainRecord], apps: &[ApplicationRecord], cx: &Context) -> Report {
    let mut r = Report::new(ReportKind::Users, cx, COLUMNS);
    r.set("total", 0u64);
    for c in ApplicantCategory::ALL {
        r.set(format!("category.{c}"), 0u64);
    }
    r.set("category.unknown", 0u64);
    let gone_by_end = |d: &DomainRecord| {
        d.status == DomainStatus::Disconnected && cx.local_date(d.status_since) <= cx.period.to
    };
    for d in domains
        .iter()
        .filter(|d| cx.local_date(d.created_at) <= cx.period.to && !gone_by_end(d))
    {
        let own: Vec<&ApplicationRecord> = apps
            .iter()
            .filter(|a| a.domain == d.name && a.received_on <= cx.period.to)
            .collect();
        let last = own.iter().max_by_key(|a| (a.received_on, a.id));
        let approved = own
            .iter()
            .filter(|a| a.status == ApplicationStatus::Approved)
            .max_by_key(|a| (a.received_on, a.id));
        let category = d.category.or(approved.map(|a| a.category));
        r.count("total");
        r.count(format!(
            "category.{}",
            category.map_or("unknown", |c| c.as_str())
        ));
        r.push(vec![
            val(&d.name),
            Value::from(d.owner.clone()),
            opt(category),
            opt(approved.map(|a| a.head.clone())),
            Value::from(d.contacts.iter().map(contact_text).collect::<Vec<_>>()),
            Value::from(d.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            Value::from(d.status.to_string()),
            val(d.created_at),
            opt(last.map(|a| a.id)),
            opt(last.map(|a| a.received_on)),
            opt(last.map(|a| a.status)),
        ]);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{application, at, cx, domain};
    use super::*;

    #[test]
    fn users_at_the_period_end_by_category() {
        let cx = cx("2026-01-01", "2026-06-30", "2026-12-01");
        let mut a = domain("a.gov.kz", "2026-02-01T00:00:00Z");
        a.category = Some(ApplicantCategory::QuasiPublic);
        let b = domain("b.gov.kz", "2026-03-01T00:00:00Z");
        let late = domain("c.gov.kz", "2026-07-01T00:00:00Z");
        let mut gone = domain("d.gov.kz", "2026-01-10T00:00:00Z");
        gone.status = DomainStatus::Disconnected;
        gone.status_since = at("2026-05-01T00:00:00Z");
        let mut gone_later = domain("e.gov.kz", "2026-01-10T00:00:00Z");
        gone_later.status = DomainStatus::Disconnected;
        gone_later.status_since = at("2026-08-01T00:00:00Z");
        let mut app = application(5, "b.gov.kz", "2026-02-20", "2026-02-27");
        app.status = ApplicationStatus::Approved;
        app.head = "A. Head".into();
        let r = report(&[a, b, late, gone, gone_later], &[app], &cx);
        let n = |k: &str| r.summary[k].as_u64().unwrap();
        assert_eq!(n("total"), 3);
        assert_eq!(
            (
                n("category.quasi_public"),
                n("category.state_body"),
                n("category.unknown")
            ),
            (1, 1, 1)
        );
        assert_eq!(r.rows[1]["head"], "A. Head");
        assert_eq!(r.rows[1]["last_application"], 5);
        assert_eq!(r.rows[2]["status"], "disconnected");
        assert!(
            r.rows[0]["contacts"][0]
                .as_str()
                .unwrap()
                .contains("<it@a.gov.kz>")
        );
    }
}

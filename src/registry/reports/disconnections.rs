//! Domains disconnected in the period, and disconnections agreed for a
//! date within it that have not happened yet.

use serde_json::Value;

use super::{Context, Report, ReportKind, opt, val};
use crate::model::domains::{DomainRecord, DomainStatus};

const COLUMNS: &[&str] = &[
    "domain", "owner", "category", "state", "date", "at", "reason", "by",
];

/// The disconnections report (from the domains' current records: a domain
/// disconnected and connected again since shows no longer).
pub fn report(domains: &[DomainRecord], cx: &Context) -> Report {
    let mut r = Report::new(ReportKind::Disconnections, cx, COLUMNS);
    r.set("disconnected", 0u64);
    r.set("scheduled", 0u64);
    for d in domains {
        if d.status == DomainStatus::Disconnected && cx.in_period(d.status_since) {
            r.count("disconnected");
            r.push(vec![
                val(&d.name),
                Value::from(d.owner.clone()),
                opt(d.category),
                Value::from("disconnected"),
                val(cx.local_date(d.status_since)),
                val(d.status_since),
                opt(d.status_reason.clone()),
                Value::Null,
            ]);
        } else if let Some(s) = d
            .disconnect_on
            .as_ref()
            .filter(|s| cx.period.contains(s.on))
        {
            r.count("scheduled");
            r.push(vec![
                val(&d.name),
                Value::from(d.owner.clone()),
                opt(d.category),
                Value::from("scheduled"),
                val(s.on),
                val(s.at),
                Value::from(s.reason.clone()),
                Value::from(s.by.clone()),
            ]);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, cx, domain};
    use super::*;
    use crate::model::domains::ScheduledDisconnection;

    #[test]
    fn done_and_scheduled_in_the_period() {
        let cx = cx("2026-05-01", "2026-05-31", "2026-05-20");
        let mut done = domain("a.gov.kz", "2026-01-01T00:00:00Z");
        done.status = DomainStatus::Disconnected;
        done.status_since = at("2026-05-05T08:00:00Z");
        done.status_reason = Some("left the network".into());
        let mut before = domain("b.gov.kz", "2026-01-01T00:00:00Z");
        before.status = DomainStatus::Disconnected;
        before.status_since = at("2026-04-05T08:00:00Z");
        let mut planned = domain("c.gov.kz", "2026-01-01T00:00:00Z");
        planned.disconnect_on = Some(ScheduledDisconnection {
            on: "2026-05-29".parse().unwrap(),
            reason: "contract ends".into(),
            by: "ops".into(),
            at: at("2026-05-10T00:00:00Z"),
            reminded: vec![],
        });
        let r = report(
            &[
                done,
                before,
                planned,
                domain("d.gov.kz", "2026-01-01T00:00:00Z"),
            ],
            &cx,
        );
        assert_eq!(r.summary["disconnected"], 1);
        assert_eq!(r.summary["scheduled"], 1);
        assert_eq!(r.rows[0]["reason"], "left the network");
        assert_eq!(r.rows[1]["state"], "scheduled");
    }
}

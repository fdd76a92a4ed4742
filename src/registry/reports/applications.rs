//! Applications received in the period: decided on time or late (against
//! their decision date), approved and rejected (with reasons), withdrawn,
//! and pending or overdue as of today.

use serde_json::Value;

use super::{Context, Report, ReportKind, opt, val};
use crate::model::applications::{ApplicantCategory, ApplicationRecord, ApplicationStatus};

/// How an application stands against its decision date.
pub fn timeliness(a: &ApplicationRecord, cx: &Context) -> &'static str {
    match (a.status, a.decided_on) {
        (ApplicationStatus::Pending, _) if cx.today() > a.decision_due => "overdue",
        (ApplicationStatus::Pending, _) => "pending",
        (ApplicationStatus::Withdrawn, _) => "withdrawn",
        (_, Some(d)) if d <= a.decision_due => "on_time",
        (_, Some(_)) => "late",
        (_, None) => "unknown",
    }
}

const COLUMNS: &[&str] = &[
    "id",
    "domain",
    "owner",
    "category",
    "received_on",
    "decision_due",
    "status",
    "decided_on",
    "timeliness",
    "decided_by",
    "reason",
];

/// The applications report.
pub fn report(apps: &[ApplicationRecord], cx: &Context) -> Report {
    let mut r = Report::new(ReportKind::Applications, cx, COLUMNS);
    for k in [
        "received",
        "approved",
        "rejected",
        "withdrawn",
        "pending",
        "overdue",
        "decided_on_time",
        "decided_late",
    ] {
        r.set(k, 0u64);
    }
    for c in ApplicantCategory::ALL {
        r.set(format!("category.{c}"), 0u64);
    }
    for a in apps.iter().filter(|a| cx.period.contains(a.received_on)) {
        let t = timeliness(a, cx);
        r.count("received");
        r.count(a.status.as_str());
        r.count(format!("category.{}", a.category));
        match t {
            "overdue" => r.count("overdue"),
            "on_time" => r.count("decided_on_time"),
            "late" => r.count("decided_late"),
            _ => {}
        }
        r.push(vec![
            Value::from(a.id),
            val(&a.domain),
            Value::from(a.owner.clone()),
            val(a.category),
            val(a.received_on),
            val(a.decision_due),
            val(a.status),
            opt(a.decided_on),
            Value::from(t),
            opt(a.decided_by.as_ref()),
            opt(a.reason.as_ref()),
        ]);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{application, cx};
    use super::*;

    #[test]
    fn counts_by_decision_and_deadline() {
        let cx = cx("2026-03-01", "2026-03-31", "2026-04-20");
        let mut on_time = application(1, "a.gov.kz", "2026-03-02", "2026-03-10");
        on_time.status = ApplicationStatus::Approved;
        on_time.decided_on = Some("2026-03-10".parse().unwrap());
        let mut late = application(2, "b.gov.kz", "2026-03-03", "2026-03-11");
        late.status = ApplicationStatus::Rejected;
        late.decided_on = Some("2026-03-12".parse().unwrap());
        late.reason = Some("no SPF, \"wrong\" servers".into());
        let overdue = application(3, "c.gov.kz", "2026-03-30", "2026-04-06");
        let mut outside = application(4, "d.gov.kz", "2026-04-01", "2026-04-08");
        outside.status = ApplicationStatus::Approved;
        let r = report(&[on_time, late, overdue, outside], &cx);
        let n = |k: &str| r.summary[k].as_u64().unwrap();
        assert_eq!(n("received"), 3);
        assert_eq!((n("approved"), n("rejected"), n("pending")), (1, 1, 1));
        assert_eq!(
            (n("decided_on_time"), n("decided_late"), n("overdue")),
            (1, 1, 1)
        );
        assert_eq!(n("withdrawn"), 0);
        assert_eq!(n("category.state_body"), 3);
        assert_eq!(r.rows.len(), 3);
        assert_eq!(r.rows[1]["timeliness"], "late");
        let csv = r.to_csv();
        assert!(
            csv.starts_with("id,domain,owner,category,received_on,"),
            "{csv}"
        );
        assert!(
            csv.contains("\"no SPF, \"\"wrong\"\" servers\"\r\n"),
            "{csv}"
        );
    }
}

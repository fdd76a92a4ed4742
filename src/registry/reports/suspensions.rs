//! Suspensions started in the period: by cause (the detector's rules or
//! staff), by scope (sender, domain, server address) and how long they lasted.

use serde_json::Value;

use super::{Context, Report, ReportKind, hours, opt, val};
use crate::model::servers::ServerSuspension;
use crate::model::suspensions::{Scope, SuspensionRecord};

const COLUMNS: &[&str] = &[
    "id",
    "scope",
    "target",
    "cause",
    "rule",
    "actor",
    "reason",
    "started_at",
    "ended_at",
    "ended_by",
    "duration_hours",
    "active",
];

/// The suspensions report; server suspensions' ids are prefixed `server-`.
pub fn report(sus: &[SuspensionRecord], servers: &[ServerSuspension], cx: &Context) -> Report {
    let mut r = Report::new(ReportKind::Suspensions, cx, COLUMNS);
    for k in [
        "total",
        "auto",
        "staff",
        "scope.domain",
        "scope.sender",
        "scope.server",
        "active",
        "ended",
    ] {
        r.set(k, 0u64);
    }
    let mut durations = Vec::new();
    for s in sus.iter().filter(|s| cx.in_period(s.started_at)) {
        let (scope, target) = match &s.scope {
            Scope::Domain(d) => ("domain", d.to_string()),
            Scope::Sender(a) => ("sender", a.clone()),
        };
        // Automatic suspensions are the detector's (actor `auto`).
        let cause = if s.actor == "auto" { "auto" } else { "staff" };
        let end = s.restored.as_ref().map(|x| x.at);
        let h = hours(s.started_at, end.unwrap_or(cx.now));
        tally(&mut r, scope, cause, end.is_some());
        if cause == "auto" {
            r.count(format!("rule.{}", s.rule));
        }
        if end.is_some() {
            durations.push(h);
        }
        r.push(vec![
            Value::from(s.id.to_string()),
            Value::from(scope),
            Value::from(target),
            Value::from(cause),
            Value::from(s.rule.clone()),
            Value::from(s.actor.clone()),
            Value::from(s.reason.clone()),
            val(s.started_at),
            opt(end),
            opt(s.restored.as_ref().map(|x| x.by.clone())),
            Value::from(h),
            Value::from(end.is_none()),
        ]);
    }
    for s in servers.iter().filter(|s| cx.in_period(s.started_at)) {
        let end = s.restored.as_ref().map(|x| x.at);
        let h = hours(s.started_at, end.unwrap_or(cx.now));
        tally(&mut r, "server", "staff", end.is_some());
        if end.is_some() {
            durations.push(h);
        }
        r.push(vec![
            Value::from(format!("server-{}", s.id)),
            Value::from("server"),
            Value::from(s.address.to_string()),
            Value::from("staff"),
            Value::from("manual"),
            Value::from(s.actor.clone()),
            Value::from(s.reason.clone()),
            val(s.started_at),
            opt(end),
            opt(s.restored.as_ref().map(|x| x.by.clone())),
            Value::from(h),
            Value::from(end.is_none()),
        ]);
    }
    if !durations.is_empty() {
        let mean = durations.iter().sum::<f64>() / durations.len() as f64;
        r.set("ended_mean_hours", (mean * 10.0).round() / 10.0);
        r.set(
            "ended_max_hours",
            durations.iter().copied().fold(0.0, f64::max),
        );
    }
    r
}

fn tally(r: &mut Report, scope: &str, cause: &str, ended: bool) {
    r.count("total");
    r.count(cause);
    r.count(format!("scope.{scope}"));
    r.count(if ended { "ended" } else { "active" });
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, cx};
    use super::*;
    use crate::model::suspensions::Restoration;

    fn sus(
        scope: Scope,
        actor: &str,
        rule: &str,
        start: &str,
        end: Option<&str>,
    ) -> SuspensionRecord {
        SuspensionRecord {
            id: 1,
            scope,
            rule: rule.into(),
            reason: "why".into(),
            evidence: Value::Null,
            actor: actor.into(),
            started_at: at(start),
            expires_at: None,
            restored: end.map(|e| Restoration {
                by: "ops".into(),
                at: at(e),
                reason: None,
                held_mail: "released".into(),
            }),
        }
    }

    #[test]
    fn by_cause_scope_and_duration() {
        let cx = cx("2026-05-01", "2026-05-31", "2026-06-10");
        let d = || Scope::Domain(crate::domain::Domain::parse("a.gov.kz").unwrap());
        let list = [
            sus(
                d(),
                "auto",
                "novelty",
                "2026-05-02T10:00:00Z",
                Some("2026-05-02T16:00:00Z"),
            ),
            sus(
                Scope::Sender("x@a.gov.kz".into()),
                "auto",
                "novelty",
                "2026-05-03T00:00:00Z",
                Some("2026-05-03T02:00:00Z"),
            ),
            sus(
                Scope::Sender("y@a.gov.kz".into()),
                "ops",
                "manual",
                "2026-05-20T00:00:00Z",
                None,
            ),
            sus(d(), "ops", "manual", "2026-04-30T00:00:00Z", None),
        ];
        let server = ServerSuspension {
            id: 7,
            address: "192.0.2.1".parse().unwrap(),
            reason: "compromised".into(),
            actor: "ops".into(),
            started_at: at("2026-05-31T12:00:00Z"),
            domains: vec![],
            restored: None,
        };
        let r = report(&list, &[server], &cx);
        let n = |k: &str| r.summary[k].as_u64().unwrap();
        assert_eq!((n("total"), n("auto"), n("staff")), (4, 2, 2));
        assert_eq!(
            (n("scope.domain"), n("scope.sender"), n("scope.server")),
            (1, 2, 1)
        );
        assert_eq!((n("active"), n("ended"), n("rule.novelty")), (2, 2, 2));
        assert_eq!(r.summary["ended_mean_hours"], 4.0);
        assert_eq!(r.summary["ended_max_hours"], 6.0);
        assert_eq!(r.rows[3]["id"], "server-7");
    }
}

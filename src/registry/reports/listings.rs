//! Listings of the gateway's own addresses that were open during the
//! period, from remote refusals and blocklist queries alike.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Context, Report, ReportKind, hours, opt, val};
use crate::model::listings::GatewayListing;

const COLUMNS: &[&str] = &[
    "id",
    "address",
    "list",
    "code",
    "meaning",
    "source",
    "listed_at",
    "last_seen",
    "delisted_at",
    "duration_hours",
];

/// The listings report: every listing that began before the period ended
/// and was not delisted before it began.
pub fn report(listings: &[GatewayListing], cx: &Context) -> Report {
    let mut r = Report::new(ReportKind::Listings, cx, COLUMNS);
    for k in ["total", "started_in_period", "delisted", "open"] {
        r.set(k, 0u64);
    }
    let mut addresses = BTreeSet::new();
    let overlaps = |l: &&GatewayListing| {
        cx.local_date(l.at) <= cx.period.to
            && l.delisted_at
                .is_none_or(|d| cx.local_date(d) >= cx.period.from)
    };
    for l in listings.iter().filter(overlaps) {
        r.count("total");
        if cx.in_period(l.at) {
            r.count("started_in_period");
        }
        r.count(if l.is_open() { "open" } else { "delisted" });
        r.count(format!("list.{}", l.list));
        r.count(format!("source.{}", l.source));
        addresses.insert(l.address);
        r.push(vec![
            Value::from(l.id),
            Value::from(l.address.to_string()),
            Value::from(l.list.clone()),
            Value::from(l.code.clone()),
            Value::from(l.meaning.clone()),
            Value::from(l.source.clone()),
            val(l.at),
            opt(l.last_seen),
            opt(l.delisted_at),
            Value::from(hours(l.at, l.delisted_at.unwrap_or(cx.now))),
        ]);
    }
    r.set("addresses", addresses.len() as u64);
    r
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, cx};
    use super::*;

    fn listing(list: &str, start: &str, end: Option<&str>) -> GatewayListing {
        GatewayListing {
            id: 1,
            at: at(start),
            address: "203.0.113.25".parse().unwrap(),
            list: list.into(),
            code: "554 5.7.1".into(),
            meaning: "listed".into(),
            source: "refusal".into(),
            last_seen: None,
            delisted_at: end.map(at),
        }
    }

    #[test]
    fn listings_open_during_the_period() {
        let cx = cx("2026-05-01", "2026-05-31", "2026-06-10");
        let r = report(
            &[
                listing(
                    "zen.spamhaus.org",
                    "2026-04-20T00:00:00Z",
                    Some("2026-05-02T00:00:00Z"),
                ),
                listing(
                    "zen.spamhaus.org",
                    "2026-04-01T00:00:00Z",
                    Some("2026-04-02T00:00:00Z"),
                ),
                listing("microsoft", "2026-05-10T00:00:00Z", None),
                listing("microsoft", "2026-06-01T00:00:00Z", None),
            ],
            &cx,
        );
        let n = |k: &str| r.summary[k].as_u64().unwrap();
        assert_eq!((n("total"), n("started_in_period")), (2, 1));
        assert_eq!((n("open"), n("delisted"), n("addresses")), (1, 1, 1));
        assert_eq!((n("list.zen.spamhaus.org"), n("list.microsoft")), (1, 1));
        assert_eq!(r.rows[0]["duration_hours"], 12.0 * 24.0);
    }
}

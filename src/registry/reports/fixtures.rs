//! Records and contexts for the reports' unit tests.

use chrono::{DateTime, FixedOffset, Utc};

use super::{Context, Period};
use crate::model::applications::ApplicationRecord;
use crate::model::domains::DomainRecord;

/// An instant written in RFC 3339.
pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// A context for the period `from`..=`to`, made at noon UTC on `today`, at UTC+5.
pub fn cx(from: &str, to: &str, today: &str) -> Context {
    Context {
        period: Period::new(from.parse().unwrap(), to.parse().unwrap()).unwrap(),
        now: at(&format!("{today}T12:00:00Z")),
        offset: FixedOffset::east_opt(5 * 3600).unwrap(),
    }
}

/// A pending application `id` for `domain`, received and due on those dates.
pub fn application(id: u64, domain: &str, received: &str, due: &str) -> ApplicationRecord {
    let mut a = crate::store::contract::application(domain);
    a.id = id;
    a.received_on = received.parse().unwrap();
    a.decision_due = due.parse().unwrap();
    a
}

/// A connected domain registered at `created`.
pub fn domain(name: &str, created: &str) -> DomainRecord {
    let mut d = crate::store::contract::domain(name);
    d.created_at = at(created);
    d.status_since = at(created);
    d
}

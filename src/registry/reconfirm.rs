//! The yearly re-confirmation of a connected domain's data: when it is due
//! (`[registration] reconfirm_every` after the connection or the last
//! confirmation), staff recording a confirmation, and the mark that the
//! cycle's reminder went out.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::{Registry, RegistryError};
use crate::domain::Domain;
use crate::model::domains::{Confirmation, DomainRecord, DomainStatus};

/// Where a domain stands in its confirmation cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cycle {
    /// The domain.
    pub domain: Domain,
    /// The owner organization.
    pub owner: String,
    /// The local date the cycle counts from: the last confirmation, or the
    /// connection.
    pub since: NaiveDate,
    /// The local date a confirmation is due.
    pub due: NaiveDate,
    /// Whether the contacts were reminded of this cycle's confirmation.
    pub reminded: bool,
}

/// The cycle of `rec`, with dates in the local time of `offset`.
pub fn cycle(rec: &DomainRecord, every: Duration, offset: chrono::FixedOffset) -> Cycle {
    let since = rec
        .confirmed
        .as_ref()
        .map(|c| c.on)
        .unwrap_or_else(|| rec.created_at.with_timezone(&offset).date_naive());
    let days = (every.as_secs() / 86_400).max(1);
    let due = since + chrono::Days::new(days);
    Cycle {
        domain: rec.name.clone(),
        owner: rec.owner.clone(),
        since,
        due,
        reminded: rec.reconfirm_reminded == Some(due),
    }
}

/// The domains (connected or suspended) whose confirmation is due on or
/// before `today`, earliest first.
pub fn overdue<'a>(
    domains: impl IntoIterator<Item = &'a DomainRecord>,
    every: Duration,
    offset: chrono::FixedOffset,
    today: NaiveDate,
) -> Vec<Cycle> {
    let mut out: Vec<Cycle> = domains
        .into_iter()
        .filter(|d| d.status != DomainStatus::Disconnected)
        .map(|d| cycle(d, every, offset))
        .filter(|c| c.due <= today)
        .collect();
    out.sort_by(|a, b| (a.due, &a.domain).cmp(&(b.due, &b.domain)));
    out
}

impl Registry {
    /// Records that the domain's contacts confirmed its data on `on` (a
    /// local date, not after `today`); the next cycle counts from it.
    pub async fn confirm_domain(
        &self,
        name: &Domain,
        on: NaiveDate,
        today: NaiveDate,
        by: &str,
    ) -> Result<DomainRecord, RegistryError> {
        if on > today {
            return Err(RegistryError::Invalid(format!(
                "{on} is in the future (today is {today})"
            )));
        }
        let _g = self.lock().await;
        let rec = self
            .modify_domain(name, |mut rec| {
                if rec.status == DomainStatus::Disconnected {
                    return Err(RegistryError::State(format!(
                        "domain {} is disconnected",
                        rec.name
                    )));
                }
                let now = Utc::now();
                rec.confirmed = Some(Confirmation {
                    on,
                    by: by.to_string(),
                    at: now,
                });
                rec.updated_at = now;
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }

    /// Marks that the contacts were reminded of the confirmation due on
    /// `due`; false when it was marked already or the cycle moved on.
    pub async fn mark_reconfirm_reminded(
        &self,
        name: &Domain,
        due: NaiveDate,
    ) -> Result<bool, RegistryError> {
        let _g = self.lock().await;
        let r = self
            .modify_domain(name, |mut rec| {
                if rec.reconfirm_reminded == Some(due) {
                    return Err(RegistryError::State("unchanged".into()));
                }
                rec.reconfirm_reminded = Some(due);
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await;
        match r {
            Ok(_) => {
                self.reload().await?;
                Ok(true)
            }
            Err(RegistryError::State(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(created: &str) -> DomainRecord {
        let t: chrono::DateTime<Utc> = created.parse().unwrap();
        let mut r: DomainRecord = serde_json::from_value(serde_json::json!({
            "name": "agency.example.kz", "owner": "Agency", "servers": ["192.0.2.1/32"],
            "contacts": [], "status": "connected", "status_since": t,
            "created_at": t, "updated_at": t,
        }))
        .unwrap();
        r.created_at = t;
        r
    }

    #[test]
    fn the_cycle_counts_from_the_local_connection_date_then_the_confirmation() {
        let year = Duration::from_secs(365 * 86400);
        let kz = chrono::FixedOffset::east_opt(5 * 3600).unwrap();
        // 20:00 UTC is already the next day in Astana.
        let mut r = rec("2025-03-01T20:00:00Z");
        let c = cycle(&r, year, kz);
        assert_eq!(c.since.to_string(), "2025-03-02");
        assert_eq!(c.due.to_string(), "2026-03-02");
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert!(overdue([&r], year, kz, day("2026-03-01")).is_empty());
        assert_eq!(overdue([&r], year, kz, day("2026-03-02")).len(), 1);
        r.reconfirm_reminded = Some(day("2026-03-02"));
        assert!(overdue([&r], year, kz, day("2026-03-02"))[0].reminded);
        r.confirmed = Some(Confirmation {
            on: day("2026-03-05"),
            by: "root".into(),
            at: Utc::now(),
        });
        let c = cycle(&r, year, kz);
        assert_eq!(c.due.to_string(), "2027-03-05");
        assert!(!c.reminded);
        assert!(overdue([&r], year, kz, day("2026-12-01")).is_empty());
        r.status = DomainStatus::Disconnected;
        assert!(overdue([&r], year, kz, day("2028-01-01")).is_empty());
    }
}

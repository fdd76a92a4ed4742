//! Disconnection on an agreed date: scheduled and cancelled by staff, its
//! reminders recorded on the domain so that each goes out once.

use chrono::{NaiveDate, Utc};

use super::{Registry, RegistryError, check_text};
use crate::domain::Domain;
use crate::model::domains::{DomainRecord, DomainStatus, ScheduledDisconnection};

impl Registry {
    /// Schedules the domain's disconnection for the local date `on` (not
    /// before `today`); replaces an earlier schedule.
    pub async fn schedule_disconnect(
        &self,
        name: &Domain,
        on: NaiveDate,
        today: NaiveDate,
        reason: &str,
        by: &str,
    ) -> Result<DomainRecord, RegistryError> {
        if reason.trim().is_empty() {
            return Err(RegistryError::Invalid("a reason is required".into()));
        }
        check_text("reason", reason, 1000)?;
        if on < today {
            return Err(RegistryError::Invalid(format!(
                "{on} is in the past (today is {today}); to disconnect now, leave out --on"
            )));
        }
        let _g = self.lock().await;
        let rec = self
            .modify_domain(name, |mut rec| {
                if rec.status == DomainStatus::Disconnected {
                    return Err(RegistryError::State(format!(
                        "domain {name} is already disconnected"
                    )));
                }
                rec.disconnect_on = Some(ScheduledDisconnection {
                    on,
                    reason: reason.trim().to_string(),
                    by: by.to_string(),
                    at: Utc::now(),
                    reminded: Vec::new(),
                });
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        Ok(rec)
    }

    /// Cancels the domain's scheduled disconnection; returns the domain and
    /// the schedule it had.
    pub async fn cancel_disconnect(
        &self,
        name: &Domain,
    ) -> Result<(DomainRecord, ScheduledDisconnection), RegistryError> {
        let _g = self.lock().await;
        let cancelled = std::sync::Mutex::new(None);
        let rec = self
            .modify_domain(name, |mut rec| {
                let Some(s) = rec.disconnect_on.take() else {
                    return Err(RegistryError::NotFound(format!(
                        "a scheduled disconnection of {name}"
                    )));
                };
                *cancelled.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await?;
        self.reload().await?;
        let s = cancelled
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| {
                RegistryError::NotFound(format!("a scheduled disconnection of {name}"))
            })?;
        Ok((rec, s))
    }

    /// Records that the reminder `days` working days before the scheduled
    /// date `on` went out; false when the schedule changed meanwhile or it
    /// was recorded already.
    pub async fn mark_disconnect_reminded(
        &self,
        name: &Domain,
        on: NaiveDate,
        days: u32,
    ) -> Result<bool, RegistryError> {
        let _g = self.lock().await;
        let marked = std::sync::atomic::AtomicBool::new(false);
        let r = self
            .modify_domain(name, |mut rec| {
                match rec.disconnect_on.as_mut() {
                    Some(s) if s.on == on && !s.reminded.contains(&days) => {
                        s.reminded.push(days);
                    }
                    _ => return Err(RegistryError::State("unchanged".into())),
                }
                marked.store(true, std::sync::atomic::Ordering::Relaxed);
                rec.updated_at = Utc::now();
                Ok(rec)
            })
            .await;
        match r {
            Ok(_) => {
                self.reload().await?;
                Ok(marked.into_inner())
            }
            Err(RegistryError::State(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Which reminder is due with `left` working days before the date: 5 (from
/// five working days before), 1 (from one), or none.
pub fn reminder_due(left: i64) -> Option<u32> {
    match left {
        i64::MIN..=0 => None,
        1 => Some(1),
        2..=5 => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_five_and_one_working_days_before() {
        assert_eq!(reminder_due(9), None);
        assert_eq!(reminder_due(5), Some(5));
        assert_eq!(reminder_due(2), Some(5));
        assert_eq!(reminder_due(1), Some(1));
        assert_eq!(reminder_due(0), None);
    }
}

//! Disconnection, the one home of its effects: the registry's record, the
//! domain's queued mail held or bounced (`[registration] disconnect_queued`),
//! the notice to its contacts. Staff call it at once (`domain disconnect`);
//! the housekeeping tick applies a disconnection agreed for a date once
//! that local date comes, and reminds the contacts before it.

use chrono::NaiveDate;

use super::Governor;
use super::clock::utc;
use crate::config::Config;
use crate::domain::Domain;
use crate::model::audit::AuditRecord;
use crate::model::domains::{DomainRecord, DomainStatus};
use crate::model::suspensions::Scope;
use crate::notify::contacts::{NoticeOutcome, notify_contacts};
use crate::registry::schedule::reminder_due;
use crate::registry::{Registry, RegistryError};

/// Why a disconnection failed.
#[derive(Debug, thiserror::Error)]
pub enum DisconnectError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Holding or releasing the queued mail failed (the domain is disconnected).
    #[error(transparent)]
    Queue(#[from] ugem_queue::QueueError),
}

/// Disconnects `domain` now with every effect; returns the record and
/// what became of the notice to its contacts. `agreed`: staff agreed it for
/// today earlier, so it also takes effect while the shared store is out of
/// reach (kept in the outbox); staff's own call is refused then.
pub async fn disconnect(
    registry: &Registry,
    queue: &ugem_queue::Queue,
    cfg: &Config,
    domain: &Domain,
    reason: &str,
    agreed: bool,
) -> Result<(DomainRecord, NoticeOutcome), DisconnectError> {
    let rec = if agreed {
        registry.disconnect_domain_as_agreed(domain, reason).await?
    } else {
        registry.disconnect_domain(domain, reason).await?
    };
    match cfg.registration.disconnect_queued {
        crate::config::DisconnectQueued::Hold => {
            let held = super::actions::hold_scope_mail(
                queue,
                &Scope::Domain(domain.clone()),
                &format!("domain {domain} disconnected: {reason}"),
            )
            .await?;
            tracing::info!(domain = %domain, held, "disconnected domain's queued mail held");
        }
        // Due now: the scheduler sees the domain disconnected and bounces.
        crate::config::DisconnectQueued::Bounce => {
            let d = domain.to_string();
            let released = queue
                .release_where(move |e| {
                    e.direction == ugem_queue::Direction::Outbound
                        && e.domain.as_deref() == Some(d.as_str())
                })
                .await?;
            queue.retry_all(ugem_queue::unix_ms()).await?;
            tracing::info!(domain = %domain, released, "disconnected domain's queued mail due now, to be bounced");
        }
    }
    // The contacts learn of it by mail; a failed notice is reported, not raised.
    let text = crate::notify::notices::domain_disconnected(cfg, &rec);
    let notice = notify_contacts(queue, registry, cfg, &rec.contacts, text).await;
    Ok((rec, notice))
}

impl Governor {
    /// Today's local date (`[registration] utc_offset`) by the governor's clock.
    fn local_today(&self) -> NaiveDate {
        utc(self.now_ms())
            .with_timezone(&self.cfg.current().registration.utc_offset.0)
            .date_naive()
    }

    /// One round: disconnects every domain whose agreed date has come and
    /// sends the reminders that are due (each once).
    pub async fn scheduled_disconnections(&self) {
        let today = self.local_today();
        let cfg = self.cfg.current();
        let r = &cfg.registration;
        let calendar = r.calendar();
        for d in self.registry.list() {
            let Some(s) = d.disconnect_on.clone() else {
                continue;
            };
            if d.status == DomainStatus::Disconnected {
                continue;
            }
            if s.on <= today {
                let reason = format!("disconnection agreed for {}: {}", s.on, s.reason);
                match disconnect(&self.registry, &self.queue, &cfg, &d.name, &reason, true).await {
                    Ok((rec, notice)) => {
                        tracing::warn!(
                            domain = %d.name,
                            on = %s.on,
                            notice = ?notice.queued,
                            "domain disconnected on its agreed date"
                        );
                        let audit = AuditRecord::auto(
                            rec.status_since,
                            "domain.disconnect",
                            d.name.as_str(),
                            &reason,
                        )
                        .change(
                            serde_json::json!({"status": d.status, "disconnect_on": s.on, "scheduled_by": s.by}),
                            serde_json::json!({"status": rec.status}),
                        );
                        self.registry.audit(audit).await;
                    }
                    Err(e) => {
                        tracing::error!(domain = %d.name, error = %e, "scheduled disconnection failed; retrying next round")
                    }
                }
                continue;
            }
            let left = calendar.working_days_between(today, s.on);
            let Some(days) = reminder_due(left) else {
                continue;
            };
            if s.reminded.contains(&days) {
                continue;
            }
            // Claimed first, so that two nodes do not both send it.
            let key = format!("disconnect-reminder|{}|{}|{days}", d.name, s.on);
            if !self
                .registry
                .claim_notice(&key, self.now_ms())
                .await
                .unwrap_or(true)
            {
                continue;
            }
            let text = crate::notify::lifecycle::disconnection_reminder(
                &self.cfg.current(),
                &d,
                s.on,
                left,
            );
            let notice = notify_contacts(
                &self.queue,
                &self.registry,
                &self.cfg.current(),
                &d.contacts,
                text,
            )
            .await;
            tracing::info!(domain = %d.name, on = %s.on, days_left = left, queued = ?notice.queued, "disconnection reminder");
            if let Err(e) = self
                .registry
                .mark_disconnect_reminded(&d.name, s.on, days)
                .await
            {
                tracing::warn!(domain = %d.name, error = %e, "reminder not recorded");
            }
        }
    }
}

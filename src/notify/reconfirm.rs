//! The yearly reminders to confirm a domain's data: once per cycle to the
//! contacts of every domain whose confirmation is due, restarts and other
//! nodes included (a claim in the store, then a mark on the domain).

use chrono::NaiveDate;

use super::contacts::notify_contacts;
use super::notices;
use crate::config::Config;
use crate::registry::reconfirm::overdue;
use crate::registry::{Registry, RegistryError};

/// One round: a reminder to each domain due for one on `today` (local)
/// that has not had this cycle's; returns how many were queued.
pub async fn remind_due(
    registry: &Registry,
    queue: &ugem_queue::Queue,
    cfg: &Config,
    today: NaiveDate,
) -> Result<usize, RegistryError> {
    let domains = registry.list();
    let due = overdue(
        domains.iter().map(|d| d.as_ref()),
        cfg.registration.reconfirm_every.0,
        cfg.registration.utc_offset.0,
        today,
    );
    let mut sent = 0;
    for c in due.into_iter().filter(|c| !c.reminded) {
        // Claimed first, so that two nodes (or a restart mid-round) do not
        // both send it; the mark below outlives the claim.
        let key = format!("reconfirm|{}|{}", c.domain, c.due);
        if !registry
            .claim_notice(&key, ugem_queue::unix_ms())
            .await
            .unwrap_or(true)
        {
            continue;
        }
        let Some(rec) = domains.iter().find(|d| d.name == c.domain) else {
            continue;
        };
        let text = notices::reconfirm_reminder(cfg, rec, c.since, c.due);
        let notice = notify_contacts(queue, registry, cfg, &rec.contacts, text).await;
        tracing::info!(domain = %c.domain, due = %c.due, queued = ?notice.queued, number = ?notice.number, "yearly confirmation reminder");
        if notice.queued.is_some() {
            sent += 1;
        }
        registry.mark_reconfirm_reminded(&c.domain, c.due).await?;
    }
    Ok(sent)
}

//! Flushes the SMTP path's buffered sightings of unregistered servers to
//! the store at each housekeeping tick, and tells each domain's contacts,
//! once per address, about the addresses seen for the first time.

use std::collections::BTreeMap;

use super::Governor;
use crate::domain::Domain;
use crate::model::sightings::UnregisteredServer;
use crate::notify::contacts::notify_contacts;

impl Governor {
    /// One round: the batch written, the new addresses notified.
    pub async fn flush_unregistered(&self) {
        let new = match self.registry.flush_unregistered().await {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(error = %e, "unregistered-server sightings not written; kept for the next round");
                return;
            }
        };
        let mut by_domain: BTreeMap<Domain, Vec<UnregisteredServer>> = BTreeMap::new();
        for s in new {
            by_domain.entry(s.domain.clone()).or_default().push(s);
        }
        for (domain, seen) in by_domain {
            let Some(rec) = self.registry.get(&domain) else {
                continue;
            };
            let addresses: Vec<String> = seen.iter().map(|s| s.address.to_string()).collect();
            tracing::warn!(domain = %domain, addresses = %addresses.join(","), "unregistered servers sending as a registered domain");
            let text =
                crate::notify::lifecycle::unregistered_servers(&self.cfg.current(), &rec, &seen);
            let notice = notify_contacts(
                &self.queue,
                &self.registry,
                &self.cfg.current(),
                &rec.contacts,
                text,
            )
            .await;
            tracing::info!(domain = %domain, queued = ?notice.queued, "contacts told of unregistered servers");
        }
    }
}

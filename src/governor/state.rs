//! What decides, kept: every scope's state (windows, peaks, rate cells,
//! throttles, ladder) in the store and the recipient memory on disk, saved
//! at every housekeeping tick (a kill -9 loses at most one interval), and
//! bounded (idle senders beyond `max_tracked_senders` are evicted).

use super::scopes::ScopeKey;
use super::{Governor, Tracked};

impl Governor {
    /// Loads the saved scope states.
    pub(crate) fn load(&self) {
        let rows = match self.local.load_governor_stats() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the detector state");
                return;
            }
        };
        for (k, v) in rows {
            match serde_json::from_slice::<Tracked>(&v) {
                Ok(mut t) => {
                    let sk = self.keyer.key(&k);
                    t.name = k;
                    self.scopes.shard(sk).insert(sk, t);
                }
                Err(e) => {
                    // A state of an older version: the scope starts over.
                    tracing::info!(scope = %k, error = %e, "detector state of an older version; starting over")
                }
            }
        }
    }

    /// Expiries, disconnections on their agreed date, eviction, state saving.
    pub(crate) async fn housekeeping(&self) {
        let now = self.now_ms();
        self.limits.retain_recent();
        self.lift_expired().await;
        self.scheduled_disconnections().await;
        self.flush_unregistered().await;
        self.evict(now);
        self.save(false).await;
        let before = now.saturating_sub(3 * 24 * 3600 * 1000);
        if let Err(e) = self.registry.prune_notices(before).await {
            tracing::warn!(error = %e, "cannot prune old notice claims");
        }
    }

    /// Bounds the tracked senders: the longest idle go first, never one
    /// that is throttled or whose rate cells still remember something.
    pub(crate) fn evict(&self, now: u64) {
        let max = self.cfg().governor.max_tracked_senders;
        let mut senders: Vec<(u64, ScopeKey)> = Vec::new();
        self.scopes.each_shard(|m| {
            senders.extend(
                m.iter()
                    .filter(|(_, t)| !t.is_domain())
                    .filter(|(_, t)| t.throttled_until_ms <= now && t.cells.idle(now))
                    .map(|(k, t)| (t.stats.last_seen_ms, *k)),
            )
        });
        let total = self.scopes.len();
        let domains = {
            let mut n = 0;
            self.scopes
                .each_shard(|m| n += m.values().filter(|t| t.is_domain()).count());
            n
        };
        let tracked_senders = total - domains;
        if tracked_senders <= max {
            return;
        }
        senders.sort();
        let excess = (tracked_senders - max).min(senders.len());
        let mut gone = Vec::with_capacity(excess);
        for (_, k) in senders.into_iter().take(excess) {
            if let Some(t) = self.scopes.shard(k).remove(&k) {
                gone.push(t.name);
            }
        }
        if self.state_dir.is_none() {
            return;
        }
        let store = self.local.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.delete_governor_stats(&gone) {
                tracing::warn!(error = %e, "cannot delete evicted detector state");
            }
        });
    }

    /// Writes the changed scopes' state (all of it when `all`) and the
    /// recipient memory's journal (a new snapshot when `all`).
    pub(crate) async fn save(&self, all: bool) {
        if self.state_dir.is_none() {
            // A replay keeps nothing.
            return;
        }
        let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
        self.scopes.each_shard(|m| {
            rows.extend(m.values_mut().filter(|t| all || t.dirty).map(|t| {
                t.dirty = false;
                (t.name.clone(), serde_json::to_vec(t).unwrap_or_default())
            }))
        });
        let store = self.local.clone();
        let memory = self.memory.clone();
        let r = tokio::task::spawn_blocking(move || {
            let m = if all {
                memory.snapshot()
            } else {
                memory.persist()
            };
            if let Err(e) = m {
                tracing::warn!(error = %e, "cannot save the recipient memory");
            }
            store.save_governor_stats(&rows)
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save detector state"),
            Err(e) => tracing::warn!(error = %e, "detector save task failed"),
        }
    }
}

//! What decides, kept: every scope's state (windows, peaks, rate cells,
//! throttles, ladder) in the store and the recipient memory on disk, saved
//! at every housekeeping tick (a kill -9 loses at most one interval), and
//! bounded (idle senders beyond `max_tracked_senders` are evicted). With a
//! shared store the same is written there too ([`super::shared`]).

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
        self.evicted_shared(&gone);
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
        let shared = self.shared.get().is_some();
        let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
        // The shared store needs only what changed, even at the last save.
        let mut changed: Vec<crate::store::ScopeRow> = Vec::new();
        self.scopes.each_shard(|m| {
            for t in m.values_mut().filter(|t| all || t.dirty) {
                let state = serde_json::to_vec(t).unwrap_or_default();
                if shared && t.dirty {
                    changed.push(crate::store::ScopeRow {
                        scope: t.name.clone(),
                        state: state.clone(),
                        stamp_ms: t.stats.last_seen_ms,
                    });
                }
                t.dirty = false;
                rows.push((t.name.clone(), state));
            }
        });
        let store = self.local.clone();
        let memory = self.memory.clone();
        let r = tokio::task::spawn_blocking(move || {
            // Pairs of a last snapshot are journaled for the cluster too.
            let m = if all {
                memory.persist().and_then(|p| memory.snapshot().map(|()| p))
            } else {
                memory.persist()
            };
            let pairs = m.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot save the recipient memory");
                Vec::new()
            });
            (store.save_governor_stats(&rows), pairs)
        })
        .await;
        let pairs = match r {
            Ok((Ok(()), pairs)) => pairs,
            Ok((Err(e), pairs)) => {
                tracing::warn!(error = %e, "cannot save detector state");
                pairs
            }
            Err(e) => {
                tracing::warn!(error = %e, "detector save task failed");
                Vec::new()
            }
        };
        self.save_shared(changed, pairs, all).await;
    }
}

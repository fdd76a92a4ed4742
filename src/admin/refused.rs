//! Refused admin calls (no token, an unknown one, a role too low) are
//! audited, but compacted, with a count:
//! - without a valid token: one record per client IP and minute, naming
//!   the actions tried, and at most [`MAX_RECORDS_PER_MINUTE`] such records
//!   a minute (the rest fold into one `(other clients)` record);
//! - a known token whose role is too low: one record per client, token,
//!   action and minute (the tokens and actions are few, and these are the
//!   refusals staff want to read one by one).
//!
//! Their targets come from the caller's URL, so they are cut short. They
//! are written without an fsync, and pruned after
//! `admin.audit_refused_retention`. A flood of unauthenticated requests
//! therefore costs one write per client and minute, not one per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;

use crate::model::audit::{AuditRecord, DENIED, RefusedUpdate};
use crate::store::local::outbox::{PendingWrite, is_provisional, provisional_id};
use crate::store::{RegistryStore, StoreError};

/// Records of unauthenticated clients written per minute.
pub const MAX_RECORDS_PER_MINUTE: usize = 20;
/// Records of refused calls of every kind written per minute; past it,
/// everything folds into the `(other clients)` record.
pub const MAX_ALL_RECORDS_PER_MINUTE: usize = 40;
/// Longest target kept from a refused call's URL, in characters.
pub const TARGET_MAX: usize = 64;
/// The client of the record that the calls past the per-minute cap fold into.
pub const OTHER_CLIENTS: &str = "(other clients)";
/// Distinct actions named in one record; more show as `…`.
const MAX_ACTIONS: usize = 12;
/// The actor of calls without a valid token.
pub const UNAUTHENTICATED: &str = "(unauthenticated)";

#[derive(Debug)]
struct Bucket {
    seq: u64,
    count: u64,
    /// Distinct actions attempted, in order.
    actions: Vec<&'static str>,
    /// More distinct actions than `actions` holds.
    more: bool,
    /// Whether count or actions changed since the record was last written.
    dirty: bool,
}

impl Bucket {
    fn action(&self) -> String {
        let mut a = self.actions.join(",");
        if self.more {
            a.push_str(",…");
        }
        a
    }

    fn update(&self) -> RefusedUpdate {
        RefusedUpdate {
            seq: self.seq,
            count: self.count,
            action: self.action(),
        }
    }
}

#[derive(Debug, Default)]
struct Minute {
    /// Minutes since the epoch.
    minute: i64,
    /// (client, actor, action for known tokens) -> its record this minute.
    buckets: HashMap<(String, String, &'static str), Bucket>,
    /// Buckets of unauthenticated clients this minute (the capped kind).
    anonymous: usize,
    /// Final state of an earlier minute's records not written yet.
    unwritten: Vec<RefusedUpdate>,
}

/// The compacting writer of refused-call records; shared by every request.
#[derive(Debug)]
pub struct RefusedLog {
    store: Arc<dyn RegistryStore>,
    /// Where records wait while a shared store is out of reach (none: they
    /// are only logged then).
    outbox: Option<Arc<crate::registry::Registry>>,
    /// Held across the store's writes: a minute's buckets learn their
    /// record's number from the write.
    state: tokio::sync::Mutex<Minute>,
}

/// `target` cut to [`TARGET_MAX`] characters, control characters replaced.
pub fn short_target(target: &str) -> String {
    let mut out: String = target
        .chars()
        .take(TARGET_MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if target.chars().nth(TARGET_MAX).is_some() {
        out.push('…');
    }
    out
}

impl RefusedLog {
    /// A log writing into `store`.
    pub fn new(store: Arc<dyn RegistryStore>) -> RefusedLog {
        RefusedLog {
            store,
            outbox: None,
            state: tokio::sync::Mutex::new(Minute::default()),
        }
    }

    /// The same log, keeping its records in `registry`'s outbox while the
    /// shared store is out of reach.
    pub fn with_outbox(mut self, registry: Arc<crate::registry::Registry>) -> RefusedLog {
        self.outbox = Some(registry);
        self
    }

    /// Records one refused call of `action` (a route's audit name); writes
    /// to the store now and then.
    pub async fn note(&self, client: IpAddr, actor: &str, action: &'static str, target: &str) {
        let now = Utc::now();
        let minute = now.timestamp().div_euclid(60);
        let mut m = self.state.lock().await;
        if m.minute != minute {
            // The minute's records are complete: write their final state.
            let done: Vec<RefusedUpdate> = m
                .buckets
                .values()
                .filter(|b| b.dirty)
                .map(Bucket::update)
                .collect();
            m.unwritten.extend(done);
            m.buckets.clear();
            m.anonymous = 0;
            m.minute = minute;
            self.write(&mut m.unwritten).await;
        }
        let anonymous = actor == UNAUTHENTICATED;
        let mut key = (
            client.to_string(),
            actor.to_string(),
            if anonymous { "" } else { action },
        );
        let mut target = short_target(target);
        if !m.buckets.contains_key(&key) {
            if (anonymous && m.anonymous >= MAX_RECORDS_PER_MINUTE)
                || m.buckets.len() >= MAX_ALL_RECORDS_PER_MINUTE
            {
                key = (OTHER_CLIENTS.to_string(), "*".to_string(), "");
                target = "*".into();
            } else if anonymous {
                m.anonymous += 1;
            }
        }
        if let Some(b) = m.buckets.get_mut(&key) {
            b.count += 1;
            b.dirty = true;
            if !b.actions.contains(&action) {
                if b.actions.len() < MAX_ACTIONS {
                    b.actions.push(action);
                } else {
                    b.more = true;
                }
            }
            return;
        }
        let rec = AuditRecord {
            seq: 0,
            at: now,
            actor: key.1.clone(),
            action: action.into(),
            target,
            client: Some(key.0.clone()),
            outcome: DENIED.into(),
            count: 1,
            reason: None,
            before: None,
            after: None,
        };
        let written = match self.store.append_refused(&rec).await {
            // Kept; the bucket counts on under the provisional number.
            Err(StoreError::Unavailable(why)) if self.outbox.is_some() => {
                let reg = self.outbox.as_ref().expect("checked");
                reg.defer(PendingWrite::Refused { rec }, why)
                    .await
                    .map(provisional_id)
                    .map_err(|e| StoreError::Backend(e.to_string()))
            }
            r => r,
        };
        match written {
            Ok(seq) => {
                m.buckets.insert(
                    key,
                    Bucket {
                        seq,
                        count: 1,
                        actions: vec![action],
                        more: false,
                        dirty: false,
                    },
                );
            }
            Err(e) => tracing::error!(error = %e, "audit record of a refused call not written"),
        }
    }

    /// Writes the counts and actions gathered since the last flush (every
    /// few seconds, and at shutdown).
    pub async fn flush(&self) {
        let mut m = self.state.lock().await;
        let now: Vec<RefusedUpdate> = m
            .buckets
            .values()
            .filter(|b| b.dirty)
            .map(Bucket::update)
            .collect();
        m.unwritten.extend(now);
        if self.write(&mut m.unwritten).await {
            for b in m.buckets.values_mut() {
                b.dirty = false;
            }
        }
    }

    /// Writes `updates` and empties it; false (keeping them) on failure.
    /// Counts of records still in the outbox (a provisional number) follow
    /// them there, so that they are written after the record.
    async fn write(&self, updates: &mut Vec<RefusedUpdate>) -> bool {
        if let Some(reg) = &self.outbox
            && updates.iter().any(|u| is_provisional(u.seq))
        {
            let (kept, rest): (Vec<_>, Vec<_>) =
                updates.drain(..).partition(|u| is_provisional(u.seq));
            *updates = rest;
            let w = PendingWrite::RefusedCounts { updates: kept };
            if let Err(e) = reg.defer(w, "records still in the outbox".into()).await {
                tracing::error!(error = %e, "counts of refused calls not kept");
            }
        }
        if updates.is_empty() {
            return true;
        }
        match self.store.update_refused(updates).await {
            Ok(()) => {
                updates.clear();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "counts of refused calls not written");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_calls_while_postgresql_is_down_are_kept_with_their_counts() {
        use crate::registry::outbox::tests::{Flaky, NoNotices};
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let (local, redb) = crate::store::open(dir.path()).unwrap();
        let store = Arc::new(Flaky::new(redb));
        let registry = Arc::new(
            crate::registry::Registry::open_with_outbox(store.clone(), local)
                .await
                .unwrap(),
        );
        let log = RefusedLog::new(store.clone()).with_outbox(registry.clone());
        store.down.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            log.note(
                "192.0.2.7".parse().unwrap(),
                UNAUTHENTICATED,
                "domain.suspend",
                "/x",
            )
            .await;
        }
        log.flush().await;
        // The record and its count wait, in that order.
        assert_eq!(registry.pending_writes(), 2);
        store.down.store(false, Ordering::SeqCst);
        registry.drain_outbox(&NoNotices).await.unwrap();
        let recs = store.inner.list_audit(10).await.unwrap();
        assert_eq!(recs.len(), 1, "{recs:#?}");
        assert_eq!(recs[0].count, 5);
        assert_eq!(recs[0].outcome, DENIED);
    }

    #[tokio::test]
    async fn one_record_per_client_and_a_cap_per_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn RegistryStore> = Arc::new(crate::store::open(dir.path()).unwrap().1);
        let log = RefusedLog::new(store.clone());
        let long = "y".repeat(5000);
        for _ in 0..50 {
            log.note(
                "192.0.2.7".parse().unwrap(),
                UNAUTHENTICATED,
                "domain.suspend",
                &long,
            )
            .await;
        }
        for i in 0..(MAX_RECORDS_PER_MINUTE as u32 + 30) {
            log.note(
                IpAddr::from([198, 51, 100, i as u8]),
                UNAUTHENTICATED,
                "queue.delete",
                "/x",
            )
            .await;
        }
        log.flush().await;
        let recs = store.list_audit(1000).await.unwrap();
        // Unless the minute turned during the loop, the cap holds exactly.
        assert!(recs.len() <= 2 * (MAX_RECORDS_PER_MINUTE + 1), "{recs:#?}");
        let total: u64 = recs.iter().map(|r| r.count).sum();
        assert_eq!(total, 50 + MAX_RECORDS_PER_MINUTE as u64 + 30);
        let first = recs
            .iter()
            .find(|r| r.client.as_deref() == Some("192.0.2.7"));
        let first = first.expect("the first client's record");
        assert!(first.count >= 1 && first.target.chars().count() <= TARGET_MAX + 1);
        // One client trying several actions: one record naming them all.
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        log.note(ip, UNAUTHENTICATED, "domain.add", "/api/v1/domains")
            .await;
        log.note(ip, UNAUTHENTICATED, "queue.delete", "/q").await;
        log.note(ip, UNAUTHENTICATED, "domain.add", "/d").await;
        // A known token's refusals: one record per action.
        log.note(ip, "desk", "domain.add", "/api/v1/domains").await;
        log.note(ip, "desk", "domain.add", "/api/v1/domains").await;
        log.note(ip, "desk", "queue.delete", "/q").await;
        log.flush().await;
        let recs = store.list_audit(1000).await.unwrap();
        let desk: Vec<_> = recs.iter().filter(|r| r.actor == "desk").collect();
        if desk.len() == 2 {
            assert_eq!(desk[1].action, "domain.add");
            assert_eq!(desk[1].count, 2);
            assert_eq!(desk[0].action, "queue.delete");
        }
        let anon: Vec<_> = recs
            .iter()
            .filter(|r| r.client.as_deref() == Some("192.0.2.8") && r.actor == UNAUTHENTICATED)
            .collect();
        if anon.len() == 1 {
            assert_eq!(anon[0].action, "domain.add,queue.delete");
            assert_eq!(anon[0].count, 3);
        }
    }
}

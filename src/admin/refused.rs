//! Refused admin calls (no token, an unknown one, a role too low) are
//! audited, but compacted: one record per client, actor and minute, with a
//! count, and at most [`MAX_RECORDS_PER_MINUTE`] such records a minute (the
//! rest fold into one `(other clients)` record). Their targets come from
//! the caller's URL, so they are cut short. They are written without an
//! fsync, and pruned after `admin.audit_refused_retention`.
//!
//! A flood of unauthenticated requests therefore costs one write per client
//! and minute, not one per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::Utc;

use crate::store::Store;
use crate::store::audit::{AuditRecord, DENIED};

/// Distinct refused-call records written per minute.
pub const MAX_RECORDS_PER_MINUTE: usize = 20;
/// Longest target kept from a refused call's URL, in characters.
pub const TARGET_MAX: usize = 64;
/// The client of the record that the calls past the per-minute cap fold into.
pub const OTHER_CLIENTS: &str = "(other clients)";

#[derive(Debug)]
struct Bucket {
    seq: u64,
    count: u64,
    written: u64,
}

#[derive(Debug, Default)]
struct Minute {
    /// Minutes since the epoch.
    minute: i64,
    /// (client, actor) -> its record this minute.
    buckets: HashMap<(String, String), Bucket>,
    /// Final counts of an earlier minute not written yet (a failed write).
    unwritten: Vec<(u64, u64)>,
}

/// The compacting writer of refused-call records; shared by every request.
#[derive(Debug)]
pub struct RefusedLog {
    store: Store,
    state: Mutex<Minute>,
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
    pub fn new(store: Store) -> RefusedLog {
        RefusedLog {
            store,
            state: Mutex::new(Minute::default()),
        }
    }

    /// Records one refused call. Blocks on the store now and then: call it
    /// off the async runtime.
    pub fn note(&self, client: IpAddr, actor: &str, action: &str, target: &str) {
        let now = Utc::now();
        let minute = now.timestamp().div_euclid(60);
        let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if m.minute != minute {
            // The minute's records are complete: write their final counts.
            let done: Vec<(u64, u64)> = m
                .buckets
                .values()
                .filter(|b| b.count != b.written)
                .map(|b| (b.seq, b.count))
                .collect();
            m.unwritten.extend(done);
            m.buckets.clear();
            m.minute = minute;
            self.write_counts(&mut m.unwritten);
        }
        let mut key = (client.to_string(), actor.to_string());
        let mut action = action.to_string();
        let mut target = short_target(target);
        if !m.buckets.contains_key(&key) && m.buckets.len() >= MAX_RECORDS_PER_MINUTE {
            key = (OTHER_CLIENTS.to_string(), "*".to_string());
            action = "*".into();
            target = "*".into();
        }
        if let Some(b) = m.buckets.get_mut(&key) {
            b.count += 1;
            return;
        }
        let rec = AuditRecord {
            seq: 0,
            at: now,
            actor: key.1.clone(),
            action,
            target,
            client: Some(key.0.clone()),
            outcome: DENIED.into(),
            count: 1,
        };
        match self.store.append_refused(&rec) {
            Ok(seq) => {
                m.buckets.insert(
                    key,
                    Bucket {
                        seq,
                        count: 1,
                        written: 1,
                    },
                );
            }
            Err(e) => tracing::error!(error = %e, "audit record of a refused call not written"),
        }
    }

    /// Writes the counts gathered since the last flush (every few seconds,
    /// and at shutdown).
    pub fn flush(&self) {
        let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now: Vec<(u64, u64)> = m
            .buckets
            .values()
            .filter(|b| b.count != b.written)
            .map(|b| (b.seq, b.count))
            .collect();
        m.unwritten.extend(now);
        if self.write_counts(&mut m.unwritten) {
            for b in m.buckets.values_mut() {
                b.written = b.count;
            }
        }
    }

    /// Writes `counts` and empties it; false (keeping them) on failure.
    fn write_counts(&self, counts: &mut Vec<(u64, u64)>) -> bool {
        match self.store.set_refused_counts(counts) {
            Ok(()) => {
                counts.clear();
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

    #[test]
    fn one_record_per_client_and_a_cap_per_minute() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = RefusedLog::new(store.clone());
        let long = "y".repeat(5000);
        for _ in 0..50 {
            log.note(
                "192.0.2.7".parse().unwrap(),
                "(unauthenticated)",
                "domain.suspend",
                &long,
            );
        }
        for i in 0..(MAX_RECORDS_PER_MINUTE as u32 + 30) {
            log.note(
                IpAddr::from([198, 51, 100, i as u8]),
                "(unauthenticated)",
                "queue.delete",
                "/x",
            );
        }
        log.flush();
        let recs = store.list_audit(1000).unwrap();
        // Unless the minute turned during the loop, the cap holds exactly.
        assert!(recs.len() <= 2 * (MAX_RECORDS_PER_MINUTE + 1), "{recs:#?}");
        let total: u64 = recs.iter().map(|r| r.count).sum();
        assert_eq!(total, 50 + MAX_RECORDS_PER_MINUTE as u64 + 30);
        let first = recs.iter().find(|r| r.client.as_deref() == Some("192.0.2.7"));
        let first = first.expect("the first client's record");
        assert!(first.count >= 1 && first.target.chars().count() <= TARGET_MAX + 1);
        assert!(recs.iter().any(|r| r.client.as_deref() == Some(OTHER_CLIENTS)));
    }
}

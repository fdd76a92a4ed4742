//! The audit trail: every mutating admin call, who made it and how it ended.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};

use super::{Store, StoreError, decode, encode, next_u64_key};
use crate::model::audit::{AuditRecord, AuditSize, DENIED, RefusedUpdate};

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

impl Store {
    /// Appends an audit record and returns its sequence number.
    pub fn append_audit(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let seq = next_u64_key(&t)?;
            let mut rec = rec.clone();
            rec.seq = seq;
            t.insert(seq, encode(&rec).as_slice())?;
            Ok(seq)
        })
    }

    /// Appends a record of refused calls without waiting for the disk (a
    /// crash may lose the last second of them); returns its sequence number.
    pub fn append_refused(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        self.write_lazy(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let seq = next_u64_key(&t)?;
            let mut rec = rec.clone();
            rec.seq = seq;
            t.insert(seq, encode(&rec).as_slice())?;
            Ok(seq)
        })
    }

    /// Sets the counts and actions of refused-call records, in one lazy
    /// transaction (other records are left alone).
    pub fn update_refused(&self, updates: &[RefusedUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write_lazy(|tx| {
            let mut t = tx.open_table(TABLE)?;
            for u in updates {
                let rec = match t.get(u.seq)? {
                    Some(v) => decode::<AuditRecord>("audit", u.seq, v.value())?,
                    None => continue,
                };
                if rec.outcome != DENIED || (rec.count == u.count && rec.action == u.action) {
                    continue;
                }
                let rec = AuditRecord {
                    count: u.count,
                    action: u.action.clone(),
                    ..rec
                };
                t.insert(u.seq, encode(&rec).as_slice())?;
            }
            Ok(())
        })
    }

    /// Deletes the records of refused calls made before `before` (staff
    /// actions stay); returns how many. Records are in time order, so the
    /// scan stops at the first one that is new enough.
    pub fn prune_refused_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let mut old = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let rec: AuditRecord = decode("audit", k.value(), v.value())?;
                if rec.at >= before {
                    break;
                }
                if rec.outcome == DENIED {
                    old.push(k.value());
                }
            }
            for k in &old {
                t.remove(*k)?;
            }
            Ok(old.len() as u64)
        })
    }

    /// How many audit records there are and the bytes they take.
    pub fn audit_size(&self) -> Result<AuditSize, StoreError> {
        use redb::ReadableTableMetadata;
        self.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let stats = t.stats()?;
            Ok(AuditSize {
                records: t.len()?,
                bytes: stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes(),
            })
        })
    }

    /// The newest `limit` records, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.iter()?.rev().take(limit) {
                let (k, v) = row?;
                out.push(decode("audit", k.value(), v.value())?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::audit::*;

    #[test]
    fn appends_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for i in 0..3 {
            let seq = s
                .append_audit(&AuditRecord {
                    seq: 0,
                    at: Utc::now(),
                    actor: "ops".into(),
                    action: "domain.suspend".into(),
                    target: format!("d{i}.example.kz"),
                    client: Some("127.0.0.1:5000".into()),
                    outcome: "ok".into(),
                    count: 1,
                })
                .unwrap();
            assert_eq!(seq, i + 1);
        }
        let recent = s.list_audit(2).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].target, "d2.example.kz");
        assert_eq!(recent[1].seq, 2);
    }

    #[test]
    fn refused_records_are_counted_and_pruned_staff_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let rec = |outcome: &str, age_days: i64| AuditRecord {
            seq: 0,
            at: Utc::now() - chrono::Duration::days(age_days),
            actor: "(unauthenticated)".into(),
            action: "domain.suspend".into(),
            target: "x".into(),
            client: Some("192.0.2.1".into()),
            outcome: outcome.into(),
            count: 1,
        };
        let old_denied = s.append_refused(&rec(DENIED, 40)).unwrap();
        let old_staff = s.append_audit(&rec("ok", 40)).unwrap();
        let new_denied = s.append_refused(&rec(DENIED, 1)).unwrap();
        let up = |seq, count| RefusedUpdate {
            seq,
            count,
            action: "domain.suspend,queue.delete".into(),
        };
        s.update_refused(&[up(new_denied, 57), up(old_staff, 9)])
            .unwrap();
        let pruned = s
            .prune_refused_audit(Utc::now() - chrono::Duration::days(30))
            .unwrap();
        assert_eq!(pruned, 1);
        let left = s.list_audit(10).unwrap();
        let seqs: Vec<u64> = left.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![new_denied, old_staff]);
        assert!(!seqs.contains(&old_denied));
        assert_eq!(left[0].count, 57);
        assert_eq!(left[0].action, "domain.suspend,queue.delete");
        assert_eq!(left[1].count, 1, "only refused records take a count");
        assert_eq!(left[1].action, "domain.suspend");
        assert_eq!(s.audit_size().unwrap().records, 2);
        // The count is left out of the JSON when it is 1.
        assert!(!serde_json::to_string(&left[1]).unwrap().contains("count"));
    }
}

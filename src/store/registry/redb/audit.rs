//! The audit trail: every mutating admin call, who made it and how it ended.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};

use crate::model::audit::{AuditFilter, AuditRecord, AuditSize, DENIED, RefusedUpdate};
use crate::store::StoreError;
use crate::store::db::{Db, decode, encode, next_u64_key};

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Appends an audit record and returns its sequence number.
pub(super) fn append_audit(db: &Db, rec: &AuditRecord) -> Result<u64, StoreError> {
    db.write(|tx| {
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
pub(super) fn append_refused(db: &Db, rec: &AuditRecord) -> Result<u64, StoreError> {
    db.write_lazy(|tx| {
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
pub(super) fn update_refused(db: &Db, updates: &[RefusedUpdate]) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    db.write_lazy(|tx| {
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
pub(super) fn prune_refused_audit(db: &Db, before: DateTime<Utc>) -> Result<u64, StoreError> {
    db.write(|tx| {
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
pub(super) fn audit_size(db: &Db) -> Result<AuditSize, StoreError> {
    use redb::ReadableTableMetadata;
    db.read(|tx| {
        let t = tx.open_table(TABLE)?;
        let stats = t.stats()?;
        Ok(AuditSize {
            records: t.len()?,
            bytes: stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes(),
        })
    })
}

/// The newest `limit` records, newest first.
pub(super) fn list_audit(db: &Db, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    db.read(|tx| {
        let t = tx.open_table(TABLE)?;
        let mut out = Vec::new();
        for row in t.iter()?.rev().take(limit) {
            let (k, v) = row?;
            out.push(decode("audit", k.value(), v.value())?);
        }
        Ok(out)
    })
}

/// The records `filter` matches, newest first, at most its limit.
pub(super) fn query_audit(db: &Db, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
    let limit = filter.limit.unwrap_or(usize::MAX);
    db.read(|tx| {
        let t = tx.open_table(TABLE)?;
        let mut out = Vec::new();
        for row in t.iter()?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row?;
            let rec: AuditRecord = decode("audit", k.value(), v.value())?;
            if filter.matches(&rec) {
                out.push(rec);
            }
        }
        Ok(out)
    })
}

/// Deletes every record made before `before`; returns how many. Records
/// are in time order, so the scan stops at the first one new enough.
pub(super) fn prune_audit(db: &Db, before: DateTime<Utc>) -> Result<u64, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let mut old = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let rec: AuditRecord = decode("audit", k.value(), v.value())?;
            if rec.at >= before {
                break;
            }
            old.push(k.value());
        }
        for k in &old {
            t.remove(*k)?;
        }
        Ok(old.len() as u64)
    })
}

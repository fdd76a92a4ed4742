//! The audit trail in PostgreSQL. Refused calls are written with
//! `synchronous_commit = off`: as on redb, a crash may lose the last moment
//! of them, never a staff action.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::{column, decode, json, pg_error};
use crate::model::audit::{AuditFilter, AuditRecord, AuditSize, DENIED, RefusedUpdate};
use crate::store::StoreError;

/// Appends `rec` under the next sequence number; `durable` waits for the
/// commit to reach the disk.
pub(super) async fn append(
    c: &mut Client,
    rec: &AuditRecord,
    durable: bool,
) -> Result<u64, StoreError> {
    let tx = c.transaction().await.map_err(pg_error)?;
    if !durable {
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(pg_error)?;
    }
    let row = tx
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('audit', 'seq'))",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let seq = row.get::<_, i64>(0);
    let mut rec = rec.clone();
    rec.seq = seq as u64;
    tx.execute(
        "INSERT INTO audit (seq, at, denied, record) VALUES ($1, $2, $3, $4)",
        &[&seq, &rec.at, &(rec.outcome == DENIED), &json(&rec)],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(rec.seq)
}

/// Sets the counts and actions of refused-call records in one lazy
/// transaction (other records and missing ones are left alone).
pub(super) async fn update_refused(
    c: &mut Client,
    updates: &[RefusedUpdate],
) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(pg_error)?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(pg_error)?;
    for u in updates {
        let Some(row) = tx
            .query_opt(
                "SELECT record FROM audit WHERE seq = $1 AND denied FOR UPDATE",
                &[&(u.seq as i64)],
            )
            .await
            .map_err(pg_error)?
        else {
            continue;
        };
        let rec: AuditRecord = decode("audit", u.seq, row.try_get(0).map_err(pg_error)?)?;
        if rec.count == u.count && rec.action == u.action {
            continue;
        }
        let rec = AuditRecord {
            count: u.count,
            action: u.action.clone(),
            ..rec
        };
        tx.execute(
            "UPDATE audit SET record = $2 WHERE seq = $1",
            &[&(u.seq as i64), &json(&rec)],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

/// Deletes refused-call records made before `before`; returns how many.
pub(super) async fn prune_refused(c: &Client, before: DateTime<Utc>) -> Result<u64, StoreError> {
    c.execute("DELETE FROM audit WHERE denied AND at < $1", &[&before])
        .await
        .map_err(pg_error)
}

/// Records and the bytes the audit table takes (with its indexes).
pub(super) async fn size(c: &Client) -> Result<AuditSize, StoreError> {
    let row = c
        .query_one(
            "SELECT count(*), pg_total_relation_size('audit') FROM audit",
            &[],
        )
        .await
        .map_err(pg_error)?;
    Ok(AuditSize {
        records: row.get::<_, i64>(0) as u64,
        bytes: row.get::<_, i64>(1) as u64,
    })
}

/// The newest `limit` records, newest first.
pub(super) async fn newest(c: &Client, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c
        .query(
            "SELECT record FROM audit ORDER BY seq DESC LIMIT $1",
            &[&limit],
        )
        .await
        .map_err(pg_error)?;
    rows.iter().map(|r| column("audit", r)).collect()
}

/// The records `filter` matches, newest first, at most its limit. The
/// period is narrowed by the database; the other conditions are the
/// filter's own, so both backends match alike.
pub(super) async fn query(
    c: &Client,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, StoreError> {
    let limit = filter.limit.unwrap_or(usize::MAX);
    let rows = c
        .query(
            "SELECT record FROM audit
             WHERE ($1::timestamptz IS NULL OR at >= $1)
               AND ($2::timestamptz IS NULL OR at < $2)
             ORDER BY seq DESC",
            &[&filter.from, &filter.to],
        )
        .await
        .map_err(pg_error)?;
    let mut out = Vec::new();
    for row in &rows {
        if out.len() >= limit {
            break;
        }
        let rec: AuditRecord = column("audit", row)?;
        if filter.matches(&rec) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Deletes every record made before `before` (the retention).
pub(super) async fn prune(c: &Client, before: DateTime<Utc>) -> Result<u64, StoreError> {
    c.execute("DELETE FROM audit WHERE at < $1", &[&before])
        .await
        .map_err(pg_error)
}

//! Domains, their kept versions and unregistered-server sightings in
//! PostgreSQL.

use tokio_postgres::{Client, Transaction};

use super::{column, json, pg_error};
use crate::domain::Domain;
use crate::model::changes::DomainVersion;
use crate::model::domains::DomainRecord;
use crate::model::sightings::UnregisteredServer;
use crate::store::StoreError;
use crate::store::registry::{DomainWrite, Expect};

/// Every domain, by name (byte order, as on redb).
pub(super) async fn list_domains(c: &Client) -> Result<Vec<DomainRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT record FROM domains ORDER BY name COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(pg_error)?;
    rows.iter().map(|r| column("domains", r)).collect()
}

/// One domain, if registered.
pub(super) async fn get_domain(
    c: &Client,
    name: &Domain,
) -> Result<Option<DomainRecord>, StoreError> {
    let row = c
        .query_opt(
            "SELECT record FROM domains WHERE name = $1",
            &[&name.as_str()],
        )
        .await
        .map_err(pg_error)?;
    row.map(|r| column("domains", &r)).transpose()
}

/// Writes `w` inside `tx` if the stored record is what it expects. The row
/// is locked first, so the check and the write are one step for every
/// other writer; two registrations of one new name meet at the primary key.
pub(super) async fn put_domain_in(tx: &Transaction<'_>, w: &DomainWrite) -> Result<(), StoreError> {
    let name = w.record.name.as_str();
    let stored: Option<DomainRecord> = match tx
        .query_opt(
            "SELECT record FROM domains WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await
        .map_err(pg_error)?
    {
        Some(row) => Some(column("domains", &row)?),
        None => None,
    };
    let record = json(&w.record);
    match (w.expect, stored) {
        (Expect::Absent, None) => {
            let n = tx
                .execute(
                    "INSERT INTO domains (name, record) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&name, &record],
                )
                .await
                .map_err(pg_error)?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "domain {name} is already registered"
                )));
            }
        }
        (Expect::UpdatedAt(at), Some(cur)) if cur.updated_at == at => {
            tx.execute(
                "UPDATE domains SET record = $2 WHERE name = $1",
                &[&name, &record],
            )
            .await
            .map_err(pg_error)?;
        }
        (Expect::Absent, Some(_)) => {
            return Err(StoreError::Conflict(format!(
                "domain {name} is already registered"
            )));
        }
        (Expect::UpdatedAt(_), None) => {
            return Err(StoreError::Conflict(format!(
                "domain {name} is no longer registered"
            )));
        }
        (Expect::UpdatedAt(_), Some(_)) => {
            return Err(StoreError::Conflict(format!(
                "domain {name} was changed by another writer"
            )));
        }
    }
    Ok(())
}

/// Keeps `previous` as its domain's next version; returns the number.
pub(super) async fn keep_version(
    tx: &Transaction<'_>,
    previous: &DomainVersion,
) -> Result<u64, StoreError> {
    let name = previous.domain.as_str();
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM domain_versions WHERE domain = $1",
            &[&name],
        )
        .await
        .map_err(pg_error)?;
    let mut v = previous.clone();
    v.version = row.get::<_, i64>(0) as u64 + 1;
    tx.execute(
        "INSERT INTO domain_versions (domain, version, record) VALUES ($1, $2, $3)",
        &[&name, &(v.version as i64), &json(&v)],
    )
    .await
    .map_err(pg_error)?;
    Ok(v.version)
}

/// Every kept version of a domain, oldest first.
pub(super) async fn list_versions(
    c: &Client,
    name: &Domain,
) -> Result<Vec<DomainVersion>, StoreError> {
    let rows = c
        .query(
            "SELECT record FROM domain_versions WHERE domain = $1 ORDER BY version",
            &[&name.as_str()],
        )
        .await
        .map_err(pg_error)?;
    rows.iter().map(|r| column("domain_versions", r)).collect()
}

/// Merges a batch of sightings; returns those seen for the first time. Each
/// domain's sightings are merged under an advisory lock (taken in name
/// order, so two batches cannot deadlock), which makes "first time" true
/// for one caller only.
pub(super) async fn merge_sightings(
    tx: &Transaction<'_>,
    batch: &[UnregisteredServer],
) -> Result<Vec<UnregisteredServer>, StoreError> {
    let mut domains: Vec<&str> = batch.iter().map(|s| s.domain.as_str()).collect();
    domains.sort_unstable();
    domains.dedup();
    for d in domains {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('ugem unregistered ' || $1, 0))",
            &[&d],
        )
        .await
        .map_err(pg_error)?;
    }
    let mut new = Vec::new();
    for s in batch {
        let addr = s.address.to_string();
        let stored: Option<UnregisteredServer> = match tx
            .query_opt(
                "SELECT record FROM unregistered_servers WHERE domain = $1 AND address = $2",
                &[&s.domain.as_str(), &addr],
            )
            .await
            .map_err(pg_error)?
        {
            Some(row) => Some(column("unregistered_servers", &row)?),
            None => None,
        };
        let merged = match stored {
            Some(mut cur) => {
                cur.merge(s);
                cur
            }
            None => {
                new.push(s.clone());
                s.clone()
            }
        };
        tx.execute(
            "INSERT INTO unregistered_servers (domain, address, record) VALUES ($1, $2, $3)
             ON CONFLICT (domain, address) DO UPDATE SET record = EXCLUDED.record",
            &[&s.domain.as_str(), &addr, &json(&merged)],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(new)
}

/// Every unregistered address seen for `domain`, by address.
pub(super) async fn list_sightings(
    c: &Client,
    domain: &Domain,
) -> Result<Vec<UnregisteredServer>, StoreError> {
    let rows = c
        .query(
            "SELECT record FROM unregistered_servers WHERE domain = $1 ORDER BY address COLLATE \"C\"",
            &[&domain.as_str()],
        )
        .await
        .map_err(pg_error)?;
    rows.iter()
        .map(|r| column("unregistered_servers", r))
        .collect()
}

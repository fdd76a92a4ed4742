//! Loads a registry export into an empty PostgreSQL store in one
//! transaction, keeping every id, then moves each sequence past the
//! highest id so that new records follow the imported ones.

use tokio_postgres::Client;

use super::{json, pg_error};
use crate::model::applications::ApplicationStatus;
use crate::model::audit::DENIED;
use crate::model::changes::ChangeStatus;
use crate::store::StoreError;
use crate::store::export::RegistryExport;

/// Every table an import fills, and the sequence of those numbered.
const TABLES: &[(&str, Option<&str>)] = &[
    ("domains", None),
    ("domain_versions", None),
    ("suspensions", Some("id")),
    ("applications", Some("id")),
    ("change_requests", Some("id")),
    ("server_suspensions", Some("id")),
    ("unregistered_servers", None),
    ("audit", Some("seq")),
    ("gateway_listings", Some("id")),
];

/// Writes `doc` into the empty store behind `c`; refuses (writing nothing)
/// if any registry table holds a record already.
pub(super) async fn import(c: &mut Client, doc: &RegistryExport) -> Result<(), StoreError> {
    doc.check()?;
    let tx = c.transaction().await.map_err(pg_error)?;
    for (table, _) in TABLES {
        let row = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .map_err(pg_error)?;
        if row.get::<_, bool>(0) {
            return Err(StoreError::Conflict(format!(
                "the PostgreSQL store is not empty ({table} has records): import only into a new database"
            )));
        }
    }
    for d in &doc.domains {
        tx.execute(
            "INSERT INTO domains (name, record) VALUES ($1, $2)",
            &[&d.name.as_str(), &json(d)],
        )
        .await
        .map_err(pg_error)?;
    }
    for v in &doc.domain_versions {
        tx.execute(
            "INSERT INTO domain_versions (domain, version, record) VALUES ($1, $2, $3)",
            &[&v.domain.as_str(), &(v.version as i64), &json(v)],
        )
        .await
        .map_err(pg_error)?;
    }
    for s in &doc.suspensions {
        tx.execute(
            "INSERT INTO suspensions (id, scope, active, record) VALUES ($1, $2, $3, $4)",
            &[
                &(s.id as i64),
                &s.scope.to_string(),
                &s.is_active(),
                &json(s),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    for a in &doc.applications {
        tx.execute(
            "INSERT INTO applications (id, domain, pending, record) VALUES ($1, $2, $3, $4)",
            &[
                &(a.id as i64),
                &a.domain.as_str(),
                &(a.status == ApplicationStatus::Pending),
                &json(a),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    for r in &doc.change_requests {
        tx.execute(
            "INSERT INTO change_requests (id, domain, pending, record) VALUES ($1, $2, $3, $4)",
            &[
                &(r.id as i64),
                &r.domain.as_str(),
                &(r.status == ChangeStatus::Pending),
                &json(r),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    for s in &doc.server_suspensions {
        tx.execute(
            "INSERT INTO server_suspensions (id, address, active, record) VALUES ($1, $2, $3, $4)",
            &[
                &(s.id as i64),
                &s.address.to_string(),
                &s.is_active(),
                &json(s),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    for u in &doc.unregistered {
        tx.execute(
            "INSERT INTO unregistered_servers (domain, address, record) VALUES ($1, $2, $3)",
            &[&u.domain.as_str(), &u.address.to_string(), &json(u)],
        )
        .await
        .map_err(pg_error)?;
    }
    for r in &doc.audit {
        tx.execute(
            "INSERT INTO audit (seq, at, denied, record) VALUES ($1, $2, $3, $4)",
            &[&(r.seq as i64), &r.at, &(r.outcome == DENIED), &json(r)],
        )
        .await
        .map_err(pg_error)?;
    }
    for l in &doc.listings {
        tx.execute(
            "INSERT INTO gateway_listings (id, open_key, open, record) VALUES ($1, $2, $3, $4)",
            &[
                &(l.id as i64),
                &super::listing_key(l.address, &l.list),
                &l.is_open(),
                &json(l),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    for (table, col) in TABLES {
        if let Some(col) = col {
            // setval(seq, max, true): the next id is max + 1; an empty
            // table keeps its sequence at the start.
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), max({col})) \
                     FROM {table} HAVING max({col}) IS NOT NULL"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    tx.commit().await.map_err(pg_error)
}

//! Domain versions and change requests in redb: a version is kept in the
//! same transaction as the write that replaces it; change request ids are
//! assigned here, one pending request per domain, decisions written only
//! over the status they were made on.

use redb::{ReadableTable, TableDefinition};

use crate::domain::Domain;
use crate::model::changes::{ChangeRequest, ChangeStatus, DomainVersion};
use crate::store::StoreError;
use crate::store::db::{Db, all_values, decode, encode, get_numbered, next_u64_key};
use crate::store::registry::DomainWrite;

/// Replaced versions, keyed by (domain, version).
pub(crate) const VERSIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("domain_versions");
/// Change requests by id.
pub(crate) const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("change_requests");

/// Writes `w` and keeps `previous` as the domain's next version.
pub(super) fn put_versioned(
    db: &Db,
    w: &DomainWrite,
    previous: &DomainVersion,
) -> Result<u64, StoreError> {
    db.write(|tx| {
        super::domains::put_in(tx, w)?;
        let mut t = tx.open_table(VERSIONS)?;
        let name = w.record.name.as_str();
        let last = t
            .range((name, 0)..=(name, u64::MAX))?
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().1)
            .unwrap_or(0);
        let mut v = previous.clone();
        v.version = last + 1;
        t.insert((name, v.version), encode(&v).as_slice())?;
        Ok(v.version)
    })
}

/// Every kept version of `name`, oldest first.
pub(super) fn versions(db: &Db, name: &Domain) -> Result<Vec<DomainVersion>, StoreError> {
    db.read(|tx| {
        let t = tx.open_table(VERSIONS)?;
        let name = name.as_str();
        let mut out = Vec::new();
        for row in t.range((name, 0)..=(name, u64::MAX))? {
            let (k, v) = row?;
            out.push(decode("domain_versions", k.value().1, v.value())?);
        }
        Ok(out)
    })
}

/// Stores a new change request unless its domain has a pending one.
pub(super) fn insert(db: &Db, rec: &ChangeRequest) -> Result<ChangeRequest, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(REQUESTS)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let r: ChangeRequest = decode("change_requests", k.value(), v.value())?;
            if r.domain == rec.domain && r.status == ChangeStatus::Pending {
                return Err(StoreError::Conflict(format!(
                    "domain {} already has a pending change request #{}",
                    r.domain, r.id
                )));
            }
        }
        let mut rec = rec.clone();
        rec.id = next_u64_key(&t)?;
        t.insert(rec.id, encode(&rec).as_slice())?;
        Ok(rec)
    })
}

/// Replaces a change request whose stored status is still `expect`.
pub(super) fn update(db: &Db, rec: &ChangeRequest, expect: ChangeStatus) -> Result<(), StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(REQUESTS)?;
        let stored: ChangeRequest = match t.get(rec.id)? {
            Some(v) => decode("change_requests", rec.id, v.value())?,
            None => return Err(StoreError::NotFound(format!("change request #{}", rec.id))),
        };
        if stored.status != expect {
            return Err(StoreError::Conflict(format!(
                "change request #{} is {}, not {expect}",
                rec.id, stored.status
            )));
        }
        t.insert(rec.id, encode(rec).as_slice())?;
        Ok(())
    })
}

/// One change request by id.
pub(super) fn get(db: &Db, id: u64) -> Result<Option<ChangeRequest>, StoreError> {
    get_numbered(db, REQUESTS, "change_requests", id)
}

/// Every change request, oldest first.
pub(super) fn list(db: &Db) -> Result<Vec<ChangeRequest>, StoreError> {
    db.read(|tx| all_values(tx, REQUESTS, "change_requests"))
}

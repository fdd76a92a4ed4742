//! Registered domains in redb, written only as their writer expects.

use redb::{ReadableTable, TableDefinition};

use crate::domain::Domain;
use crate::model::domains::DomainRecord;
use crate::store::StoreError;
use crate::store::db::{Db, all_values, decode, encode};
use crate::store::registry::{DomainWrite, Expect};

pub(crate) const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("domains");

/// Writes `w` in its own transaction.
pub(super) fn put(db: &Db, w: &DomainWrite) -> Result<(), StoreError> {
    db.write(|tx| put_in(tx, w))
}

/// Writes `w` inside `tx` if the stored record is as `w.expect` says.
pub(super) fn put_in(tx: &redb::WriteTransaction, w: &DomainWrite) -> Result<(), StoreError> {
    let mut t = tx.open_table(TABLE)?;
    let name = w.record.name.as_str();
    let stored: Option<DomainRecord> = match t.get(name)? {
        Some(v) => Some(decode("domains", name, v.value())?),
        None => None,
    };
    match (w.expect, stored) {
        (Expect::Absent, None) => {}
        (Expect::UpdatedAt(at), Some(cur)) if cur.updated_at == at => {}
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
    t.insert(name, encode(&w.record).as_slice())?;
    Ok(())
}

/// One domain, if registered.
pub(super) fn get(db: &Db, name: &Domain) -> Result<Option<DomainRecord>, StoreError> {
    db.read(|tx| {
        let t = tx.open_table(TABLE)?;
        match t.get(name.as_str())? {
            Some(v) => Ok(Some(decode("domains", name, v.value())?)),
            None => Ok(None),
        }
    })
}

/// Every domain, by name.
pub(super) fn list(db: &Db) -> Result<Vec<DomainRecord>, StoreError> {
    db.read(|tx| all_values(tx, TABLE, "domains"))
}

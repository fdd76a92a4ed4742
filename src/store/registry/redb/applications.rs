//! Applications in redb: ids assigned here, one pending application per
//! domain, decisions written only over the status they were made on.

use redb::{ReadableTable, TableDefinition};

use crate::model::applications::{ApplicationRecord, ApplicationStatus};
use crate::store::StoreError;
use crate::store::db::{Db, all_values, decode, encode, get_numbered, next_u64_key};

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("applications");

/// Stores a new application unless its domain has a pending one.
pub(super) fn insert(db: &Db, rec: &ApplicationRecord) -> Result<ApplicationRecord, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let a: ApplicationRecord = decode("applications", k.value(), v.value())?;
            if a.domain == rec.domain && a.status == ApplicationStatus::Pending {
                return Err(StoreError::Conflict(format!(
                    "domain {} already has a pending application #{}",
                    a.domain, a.id
                )));
            }
        }
        let mut rec = rec.clone();
        rec.id = next_u64_key(&t)?;
        t.insert(rec.id, encode(&rec).as_slice())?;
        Ok(rec)
    })
}

/// Replaces an application whose stored status is still `expect`.
pub(super) fn update(
    db: &Db,
    rec: &ApplicationRecord,
    expect: ApplicationStatus,
) -> Result<(), StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let stored: ApplicationRecord = match t.get(rec.id)? {
            Some(v) => decode("applications", rec.id, v.value())?,
            None => {
                return Err(StoreError::NotFound(format!("application #{}", rec.id)));
            }
        };
        if stored.status != expect {
            return Err(StoreError::Conflict(format!(
                "application #{} is {}, not {expect}",
                rec.id, stored.status
            )));
        }
        t.insert(rec.id, encode(rec).as_slice())?;
        Ok(())
    })
}

/// One application by id.
pub(super) fn get(db: &Db, id: u64) -> Result<Option<ApplicationRecord>, StoreError> {
    get_numbered(db, TABLE, "applications", id)
}

/// Every application, oldest first.
pub(super) fn list(db: &Db) -> Result<Vec<ApplicationRecord>, StoreError> {
    db.read(|tx| all_values(tx, TABLE, "applications"))
}

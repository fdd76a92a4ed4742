//! Suspensions in redb: at most one active per scope, started and ended
//! together with their domain's record.

use redb::{ReadableTable, TableDefinition};

use super::domains;
use crate::model::suspensions::{Restoration, Scope, SuspensionRecord};
use crate::store::StoreError;
use crate::store::db::{Db, all_values, decode, encode, get_numbered, next_u64_key};
use crate::store::registry::DomainWrite;

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("suspensions");

/// The newest active suspension of `scope` (ids grow with time).
fn active_of(
    t: &impl ReadableTable<u64, &'static [u8]>,
    scope: &Scope,
) -> Result<Option<SuspensionRecord>, StoreError> {
    for row in t.iter()?.rev() {
        let (k, v) = row?;
        let rec: SuspensionRecord = decode("suspensions", k.value(), v.value())?;
        if rec.is_active() && &rec.scope == scope {
            return Ok(Some(rec));
        }
    }
    Ok(None)
}

/// Starts a suspension unless its scope has an active one, writing
/// `domain` in the same transaction.
pub(super) fn start(
    db: &Db,
    rec: &SuspensionRecord,
    domain: Option<&DomainWrite>,
) -> Result<SuspensionRecord, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        if active_of(&t, &rec.scope)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "{} is already suspended",
                rec.scope
            )));
        }
        let mut rec = rec.clone();
        rec.id = next_u64_key(&t)?;
        t.insert(rec.id, encode(&rec).as_slice())?;
        drop(t);
        if let Some(w) = domain {
            domains::put_in(tx, w)?;
        }
        Ok(rec)
    })
}

/// Ends the active suspension of `scope`, writing `domain` in the same
/// transaction.
pub(super) fn end(
    db: &Db,
    scope: &Scope,
    how: &Restoration,
    domain: Option<&DomainWrite>,
) -> Result<SuspensionRecord, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let mut rec = active_of(&t, scope)?
            .ok_or_else(|| StoreError::NotFound(format!("an active suspension of {scope}")))?;
        rec.restored = Some(how.clone());
        t.insert(rec.id, encode(&rec).as_slice())?;
        drop(t);
        if let Some(w) = domain {
            domains::put_in(tx, w)?;
        }
        Ok(rec)
    })
}

/// One suspension by id.
pub(super) fn get(db: &Db, id: u64) -> Result<Option<SuspensionRecord>, StoreError> {
    get_numbered(db, TABLE, "suspensions", id)
}

/// Every suspension, oldest first.
pub(super) fn list(db: &Db) -> Result<Vec<SuspensionRecord>, StoreError> {
    db.read(|tx| all_values(tx, TABLE, "suspensions"))
}

//! Notice claims: the notices already sent, so that de-duplication
//! survives restarts.

use redb::{ReadableTable, TableDefinition};

use crate::store::StoreError;
use crate::store::db::Db;

/// The table keeps its old name: stores written before the split read on.
pub(crate) const TABLE: TableDefinition<&str, u64> = TableDefinition::new("governor_notices");

/// The last outgoing notice number given out, by year.
pub(crate) const NUMBERS: TableDefinition<u32, u64> = TableDefinition::new("notice_numbers");

/// Allocates the next number of `year` in one durable write, so that a
/// number is never given out twice, restarts included.
pub(super) fn next_number(db: &Db, year: i32) -> Result<u64, StoreError> {
    let year = u32::try_from(year).unwrap_or(0);
    db.write(|tx| {
        let mut t = tx.open_table(NUMBERS)?;
        let next = t.get(year)?.map(|v| v.value()).unwrap_or(0) + 1;
        t.insert(year, next)?;
        Ok(next)
    })
}

/// Records that the notice `key` is sent; false if it already was.
pub(super) fn claim(db: &Db, key: &str, now_ms: u64) -> Result<bool, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        if t.get(key)?.is_some() {
            return Ok(false);
        }
        t.insert(key, now_ms)?;
        Ok(true)
    })
}

/// Forgets notice keys older than `before_ms`.
pub(super) fn prune(db: &Db, before_ms: u64) -> Result<usize, StoreError> {
    db.write_lazy(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let old: Vec<String> = t
            .iter()?
            .filter_map(|r| r.ok())
            .filter(|(_, v)| v.value() < before_ms)
            .map(|(k, _)| k.value().to_string())
            .collect();
        for k in &old {
            t.remove(k.as_str())?;
        }
        Ok(old.len())
    })
}

//! Server-address suspensions in redb: ids assigned here, at most one
//! active suspension per address.

use std::net::IpAddr;

use redb::{ReadableTable, TableDefinition};

use crate::model::servers::ServerSuspension;
use crate::model::suspensions::Restoration;
use crate::store::StoreError;
use crate::store::db::{Db, all_values, decode, encode, next_u64_key};

/// Server suspensions by id.
pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("server_suspensions");

/// Starts one unless the address has an active suspension.
pub(super) fn start(db: &Db, rec: &ServerSuspension) -> Result<ServerSuspension, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let s: ServerSuspension = decode("server_suspensions", k.value(), v.value())?;
            if s.address == rec.address && s.is_active() {
                return Err(StoreError::Conflict(format!(
                    "server {} is already suspended (since {})",
                    s.address, s.started_at
                )));
            }
        }
        let mut rec = rec.clone();
        rec.id = next_u64_key(&t)?;
        rec.restored = None;
        t.insert(rec.id, encode(&rec).as_slice())?;
        Ok(rec)
    })
}

/// Ends the active suspension of `address`.
pub(super) fn end(
    db: &Db,
    address: IpAddr,
    how: &Restoration,
) -> Result<ServerSuspension, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let mut found = None;
        for row in t.iter()? {
            let (k, v) = row?;
            let s: ServerSuspension = decode("server_suspensions", k.value(), v.value())?;
            if s.address == address && s.is_active() {
                found = Some(s);
            }
        }
        let Some(mut s) = found else {
            return Err(StoreError::NotFound(format!(
                "an active suspension of server {address}"
            )));
        };
        s.restored = Some(how.clone());
        t.insert(s.id, encode(&s).as_slice())?;
        Ok(s)
    })
}

/// Every server suspension, oldest first.
pub(super) fn list(db: &Db) -> Result<Vec<ServerSuspension>, StoreError> {
    db.read(|tx| all_values(tx, TABLE, "server_suspensions"))
}

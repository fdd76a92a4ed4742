//! Gateway listings in redb: ids assigned here, at most one open listing
//! per address and list.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};

use crate::model::listings::GatewayListing;
use crate::store::StoreError;
use crate::store::db::{Db, all_values, decode, encode, next_u64_key};

/// Gateway listings by id.
pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("gateway_listings");

/// Opens a listing, or notes a new sighting of the open one of the same
/// address and list (last seen, code, meaning). Returns it and whether it is new.
pub(super) fn record(db: &Db, rec: &GatewayListing) -> Result<(GatewayListing, bool), StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let mut open = None;
        for row in t.iter()? {
            let (k, v) = row?;
            let l: GatewayListing = decode("gateway_listings", k.value(), v.value())?;
            if l.address == rec.address && l.list == rec.list && l.is_open() {
                open = Some(l);
            }
        }
        if let Some(mut l) = open {
            l.last_seen = Some(rec.last_seen.unwrap_or(rec.at));
            l.code = rec.code.clone();
            l.meaning = rec.meaning.clone();
            t.insert(l.id, encode(&l).as_slice())?;
            return Ok((l, false));
        }
        let mut l = rec.clone();
        l.id = next_u64_key(&t)?;
        l.delisted_at = None;
        t.insert(l.id, encode(&l).as_slice())?;
        Ok((l, true))
    })
}

/// Ends the open listing of `address` on `list`.
pub(super) fn end(
    db: &Db,
    address: IpAddr,
    list: &str,
    at: DateTime<Utc>,
) -> Result<GatewayListing, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let mut found = None;
        for row in t.iter()? {
            let (k, v) = row?;
            let l: GatewayListing = decode("gateway_listings", k.value(), v.value())?;
            if l.address == address && l.list == list && l.is_open() {
                found = Some(l);
            }
        }
        let Some(mut l) = found else {
            return Err(StoreError::NotFound(format!(
                "an open listing of {address} on {list}"
            )));
        };
        l.delisted_at = Some(at);
        t.insert(l.id, encode(&l).as_slice())?;
        Ok(l)
    })
}

/// Every listing, oldest first.
pub(super) fn list(db: &Db) -> Result<Vec<GatewayListing>, StoreError> {
    db.read(|tx| all_values(tx, TABLE, "gateway_listings"))
}

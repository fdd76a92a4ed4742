//! Unregistered servers seen sending as a domain, in redb: a batch is
//! merged in one transaction, keyed by (domain, address).

use redb::{ReadableTable, TableDefinition};

use crate::domain::Domain;
use crate::model::sightings::UnregisteredServer;
use crate::store::StoreError;
use crate::store::db::{Db, decode, encode};

/// Sightings keyed by (domain, address as text).
pub(crate) const TABLE: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("unregistered_servers");

/// Merges `batch` into the stored sightings; returns those seen for the
/// first time, as stored.
pub(super) fn record(
    db: &Db,
    batch: &[UnregisteredServer],
) -> Result<Vec<UnregisteredServer>, StoreError> {
    db.write(|tx| {
        let mut t = tx.open_table(TABLE)?;
        let mut new = Vec::new();
        for s in batch {
            let addr = s.address.to_string();
            let key = (s.domain.as_str(), addr.as_str());
            let stored: Option<UnregisteredServer> = match t.get(key)? {
                Some(v) => Some(decode("unregistered_servers", &addr, v.value())?),
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
            t.insert(key, encode(&merged).as_slice())?;
        }
        Ok(new)
    })
}

/// Every unregistered address seen for `domain`, by address.
pub(super) fn list(db: &Db, domain: &Domain) -> Result<Vec<UnregisteredServer>, StoreError> {
    db.read(|tx| {
        let t = tx.open_table(TABLE)?;
        let d = domain.as_str();
        let mut out = Vec::new();
        for row in t.range((d, "")..)? {
            let (k, v) = row?;
            if k.value().0 != d {
                break;
            }
            out.push(decode("unregistered_servers", k.value().1, v.value())?);
        }
        Ok(out)
    })
}

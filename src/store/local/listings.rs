//! The gateway's listings on DNS blocklists (the blocklist watch's
//! records): durable, so that a restart neither forgets a listing nor
//! alarms about it again, and so that reports can name every listing of a
//! period. Keyed `address zone listed_at_ms`: one row per listing.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};

use super::LocalStore;
use crate::model::listings::GatewayListing;
use crate::store::StoreError;
use crate::store::db::{decode, encode};

pub(crate) const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("gateway_listings");

fn key(l: &GatewayListing) -> String {
    format!(
        "{} {} {:020}",
        l.address,
        l.zone,
        l.listed_at.timestamp_millis().max(0)
    )
}

impl LocalStore {
    /// Writes a listing (a new one, or an open one now delisted), durably.
    pub fn put_gateway_listing(&self, l: &GatewayListing) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.open_table(TABLE)?
                .insert(key(l).as_str(), encode(l).as_slice())?;
            Ok(())
        })
    }

    /// Every listing ever recorded, oldest first.
    pub fn gateway_listings(&self) -> Result<Vec<GatewayListing>, StoreError> {
        let mut out: Vec<GatewayListing> = self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                out.push(decode("gateway_listings", k.value(), v.value())?);
            }
            Ok(out)
        })?;
        out.sort_by_key(|a| a.listed_at);
        Ok(out)
    }

    /// The listings that overlapped `[from, to)` (for reports), oldest first.
    pub fn gateway_listings_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<GatewayListing>, StoreError> {
        let mut all = self.gateway_listings()?;
        all.retain(|l| l.overlaps(from, to));
        Ok(all)
    }

    /// The listings still open (no round has found them gone).
    pub fn open_gateway_listings(&self) -> Result<Vec<GatewayListing>, StoreError> {
        let mut all = self.gateway_listings()?;
        all.retain(GatewayListing::is_open);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_survive_reopen_and_close_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut l = GatewayListing {
            address: "192.0.2.1".parse().unwrap(),
            zone: "zen.spamhaus.org".into(),
            code: "127.0.0.2".into(),
            meaning: "SBL".into(),
            reason: Some("https://check.spamhaus.org/".into()),
            listed_at: t("2026-12-01T10:00:00Z"),
            delisted_at: None,
        };
        {
            let s = crate::store::open(dir.path()).unwrap().0;
            assert!(s.gateway_listings().unwrap().is_empty());
            s.put_gateway_listing(&l).unwrap();
        }
        let s = crate::store::open(dir.path()).unwrap().0;
        assert_eq!(s.open_gateway_listings().unwrap(), vec![l.clone()]);
        l.delisted_at = Some(t("2026-12-02T10:00:00Z"));
        s.put_gateway_listing(&l).unwrap();
        assert!(s.open_gateway_listings().unwrap().is_empty());
        assert_eq!(s.gateway_listings().unwrap(), vec![l.clone()]);
        let dec = |a, b| s.gateway_listings_between(t(a), t(b)).unwrap().len();
        assert_eq!(dec("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"), 1);
        assert_eq!(dec("2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z"), 0);
    }
}

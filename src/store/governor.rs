//! The governor's durable state: detector statistics per scope (so that a
//! restart keeps the learned baselines) and the notices already sent (so
//! that de-duplication survives restarts).

use redb::{ReadableTable, TableDefinition};

use super::{Store, StoreError};

pub(crate) const STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("governor_stats");
pub(crate) const NOTICES: TableDefinition<&str, u64> = TableDefinition::new("governor_notices");

impl Store {
    /// Saves the governor's per-scope state (JSON per scope key) in one
    /// durable transaction: it decides suspensions, so a kill -9 must not
    /// take it back further than the last save.
    pub fn save_governor_stats(&self, rows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut t = tx.open_table(STATS)?;
            for (k, v) in rows {
                t.insert(k.as_str(), v.as_slice())?;
            }
            Ok(())
        })
    }

    /// Removes the statistics of scopes no longer tracked.
    pub fn delete_governor_stats(&self, keys: &[String]) -> Result<(), StoreError> {
        self.remove_keys(STATS, keys)
    }

    /// Every saved statistics record, raw.
    pub fn load_governor_stats(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.raw_rows(STATS)
    }

    /// Records that the notice `key` is sent; false if it already was.
    pub fn claim_notice(&self, key: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(NOTICES)?;
            if t.get(key)?.is_some() {
                return Ok(false);
            }
            t.insert(key, now_ms)?;
            Ok(true)
        })
    }

    /// Forgets notice keys older than `before_ms`.
    pub fn prune_notices(&self, before_ms: u64) -> Result<usize, StoreError> {
        self.write_lazy(|tx| {
            let mut t = tx.open_table(NOTICES)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_survive_reopen_and_notices_dedup() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.save_governor_stats(&[("d:a.example".into(), b"{\"x\":1}".to_vec())])
                .unwrap();
            assert!(s.claim_notice("warn|d:a.example|2026-03-02", 5).unwrap());
            assert!(!s.claim_notice("warn|d:a.example|2026-03-02", 6).unwrap());
        }
        let s = Store::open(dir.path()).unwrap();
        let rows = s.load_governor_stats().unwrap();
        assert_eq!(rows, vec![("d:a.example".into(), b"{\"x\":1}".to_vec())]);
        assert!(!s.claim_notice("warn|d:a.example|2026-03-02", 7).unwrap());
        assert_eq!(s.prune_notices(100).unwrap(), 1);
        assert!(s.claim_notice("warn|d:a.example|2026-03-02", 8).unwrap());
        s.delete_governor_stats(&["d:a.example".into()]).unwrap();
        assert!(s.load_governor_stats().unwrap().is_empty());
    }
}

//! The governor's detector statistics per scope, so that a restart keeps
//! the learned baselines. (The notices already sent are the registry's:
//! `registry::redb::notices`.)

use redb::TableDefinition;

use super::LocalStore;
use crate::store::StoreError;

pub(crate) const STATS: TableDefinition<&str, &[u8]> = TableDefinition::new("governor_stats");

impl LocalStore {
    /// Saves the governor's per-scope state (JSON per scope key) in one
    /// durable transaction: it decides suspensions, so a kill -9 must not
    /// take it back further than the last save.
    pub fn save_governor_stats(&self, rows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            let mut t = tx.open_table(STATS)?;
            for (k, v) in rows {
                t.insert(k.as_str(), v.as_slice())?;
            }
            Ok(())
        })
    }

    /// Removes the statistics of scopes no longer tracked.
    pub fn delete_governor_stats(&self, keys: &[String]) -> Result<(), StoreError> {
        self.db.remove_keys(STATS, keys)
    }

    /// Every saved statistics record, raw.
    pub fn load_governor_stats(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db.raw_rows(STATS)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = crate::store::open(dir.path()).unwrap();
            s.save_governor_stats(&[("d:a.example".into(), b"{\"x\":1}".to_vec())])
                .unwrap();
        }
        let (s, _) = crate::store::open(dir.path()).unwrap();
        let rows = s.load_governor_stats().unwrap();
        assert_eq!(rows, vec![("d:a.example".into(), b"{\"x\":1}".to_vec())]);
        s.delete_governor_stats(&["d:a.example".into()]).unwrap();
        assert!(s.load_governor_stats().unwrap().is_empty());
    }
}

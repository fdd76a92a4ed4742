//! Cached MTA-STS policies, so that a restart does not open the window
//! RFC 8461 §5.1 closes: a policy stays in force for its max_age even if
//! an attacker hides the record or the policy host.

use redb::TableDefinition;

use super::LocalStore;
use crate::store::StoreError;

pub(crate) const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("mta_sts");

impl LocalStore {
    /// Saves one domain's cached policy (JSON).
    pub fn save_mta_sts(&self, domain: &str, record: &[u8]) -> Result<(), StoreError> {
        self.db.write_lazy(|tx| {
            tx.open_table(POLICIES)?.insert(domain, record)?;
            Ok(())
        })
    }

    /// Every cached policy, raw.
    pub fn load_mta_sts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db.raw_rows(POLICIES)
    }

    /// Forgets the cached policies of `domains` (expired ones).
    pub fn delete_mta_sts(&self, domains: &[String]) -> Result<(), StoreError> {
        self.db.remove_keys(POLICIES, domains)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn policies_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = crate::store::open(dir.path()).unwrap().0;
            assert!(s.load_mta_sts().unwrap().is_empty());
            s.save_mta_sts("a.example", b"{}").unwrap();
            s.save_mta_sts("b.example", b"{}").unwrap();
            s.delete_mta_sts(&["b.example".into()]).unwrap();
        }
        let s = crate::store::open(dir.path()).unwrap().0;
        assert_eq!(
            s.load_mta_sts().unwrap(),
            vec![("a.example".to_string(), b"{}".to_vec())]
        );
    }
}

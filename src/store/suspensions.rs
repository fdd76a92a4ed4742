//! Suspensions of a domain or a sender, with their history.

use redb::TableDefinition;

use super::{Store, StoreError, all_values};
use crate::model::suspensions::SuspensionRecord;

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("suspensions");

impl super::Numbered for SuspensionRecord {
    const NAME: &'static str = "suspensions";
    fn number(&self) -> u64 {
        self.id
    }
    fn set_number(&mut self, id: u64) {
        self.id = id;
    }
}

impl Store {
    /// Stores a new suspension and returns its id.
    pub fn insert_suspension(&self, rec: &SuspensionRecord) -> Result<u64, StoreError> {
        self.insert_numbered(TABLE, rec)
    }

    /// Replaces a stored suspension; it must exist.
    pub fn update_suspension(&self, rec: &SuspensionRecord) -> Result<(), StoreError> {
        self.replace_numbered(TABLE, rec)
    }

    /// One suspension by id.
    pub fn get_suspension(&self, id: u64) -> Result<Option<SuspensionRecord>, StoreError> {
        self.get_numbered(TABLE, id)
    }

    /// Every suspension, oldest first.
    pub fn list_suspensions(&self) -> Result<Vec<SuspensionRecord>, StoreError> {
        self.read(|tx| all_values(tx, TABLE, "suspensions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::suspensions::*;
    use chrono::Utc;

    #[test]
    fn history_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut rec = SuspensionRecord {
            id: 0,
            scope: Scope::Sender("bot@agency.example.kz".into()),
            rule: "manual".into(),
            reason: "phishing".into(),
            evidence: serde_json::json!({"recipients_per_hour": 5000}),
            actor: "ops".into(),
            started_at: Utc::now(),
            expires_at: None,
            restored: None,
        };
        rec.id = s.insert_suspension(&rec).unwrap();
        assert!(s.get_suspension(rec.id).unwrap().unwrap().is_active());
        rec.restored = Some(Restoration {
            by: "ops".into(),
            at: Utc::now(),
            reason: Some("password reset".into()),
            held_mail: "released".into(),
        });
        s.update_suspension(&rec).unwrap();
        let all = s.list_suspensions().unwrap();
        assert_eq!(all.len(), 1);
        assert!(!all[0].is_active());
        assert_eq!(all[0].evidence["recipients_per_hour"], 5000);
    }
}

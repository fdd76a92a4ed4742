//! Applications to connect a mail system: what was asked, by whom, and what
//! the operator decided.

use redb::TableDefinition;

use super::{Store, StoreError, all_values};
use crate::model::applications::ApplicationRecord;

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("applications");

impl super::Numbered for ApplicationRecord {
    const NAME: &'static str = "applications";
    fn number(&self) -> u64 {
        self.id
    }
    fn set_number(&mut self, id: u64) {
        self.id = id;
    }
}

impl Store {
    /// Stores a new application and returns its id.
    pub fn insert_application(&self, rec: &ApplicationRecord) -> Result<u64, StoreError> {
        self.insert_numbered(TABLE, rec)
    }

    /// Replaces a stored application; it must exist.
    pub fn update_application(&self, rec: &ApplicationRecord) -> Result<(), StoreError> {
        self.replace_numbered(TABLE, rec)
    }

    /// One application by id.
    pub fn get_application(&self, id: u64) -> Result<Option<ApplicationRecord>, StoreError> {
        self.get_numbered(TABLE, id)
    }

    /// Every application, oldest first.
    pub fn list_applications(&self) -> Result<Vec<ApplicationRecord>, StoreError> {
        self.read(|tx| all_values(tx, TABLE, "applications"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Domain;
    use crate::model::applications::*;
    use crate::model::domains::Contact;
    use chrono::Utc;

    fn sample() -> ApplicationRecord {
        ApplicationRecord {
            id: 0,
            domain: Domain::parse("minfin.example.kz").unwrap(),
            owner: "Ministry of Finance".into(),
            category: ApplicantCategory::StateBody,
            head: "A. Minister".into(),
            servers: vec!["192.0.2.10/32".parse().unwrap()],
            contacts: vec![Contact {
                name: "Aliya Nurlanova".into(),
                email: "it@minfin.example.kz".into(),
                office_phone: Some("+7 7172 000000".into()),
                mobile_phone: None,
            }],
            inbound: None,
            received_on: "2026-03-02".parse().unwrap(),
            decision_due: "2026-03-10".parse().unwrap(),
            status: ApplicationStatus::Pending,
            decided_on: None,
            decided_at: None,
            decided_by: None,
            reason: None,
            submitted_by: "root".into(),
            created_at: Utc::now(),
            alerted_on: None,
            allow_wide_range: false,
        }
    }

    #[test]
    fn ids_are_assigned_and_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = sample();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.insert_application(&rec).unwrap(), 1);
            rec.id = 2;
            assert_eq!(s.insert_application(&rec).unwrap(), 2);
            rec.status = ApplicationStatus::Rejected;
            rec.reason = Some("not an eligible category".into());
            s.update_application(&rec).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let all = s.list_applications().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, 1);
        assert_eq!(all[0].status, ApplicationStatus::Pending);
        assert_eq!(s.get_application(2).unwrap(), Some(rec));
        assert_eq!(s.get_application(3).unwrap(), None);
    }

    #[test]
    fn updating_a_missing_application_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut rec = sample();
        rec.id = 9;
        assert!(s.update_application(&rec).is_err());
    }
}

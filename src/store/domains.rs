//! Registered domains: who may relay, from where, and who to call.

use redb::TableDefinition;

use super::{Store, StoreError, all_values, decode, encode};
use crate::domain::Domain;
use crate::model::domains::DomainRecord;

pub(crate) const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("domains");

impl Store {
    /// Inserts or replaces a domain record.
    pub fn put_domain(&self, rec: &DomainRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.open_table(TABLE)?
                .insert(rec.name.as_str(), encode(rec).as_slice())?;
            Ok(())
        })
    }

    /// One domain, if registered.
    pub fn get_domain(&self, name: &Domain) -> Result<Option<DomainRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(TABLE)?;
            match t.get(name.as_str())? {
                Some(v) => Ok(Some(decode("domains", name, v.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Every domain, by name.
    pub fn list_domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        self.read(|tx| all_values(tx, TABLE, "domains"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::domains::*;
    use chrono::Utc;

    pub(crate) fn sample(name: &str) -> DomainRecord {
        let now = Utc::now();
        DomainRecord {
            name: Domain::parse(name).unwrap(),
            owner: "Ministry of Examples".into(),
            servers: vec![
                "192.0.2.10/32".parse().unwrap(),
                "2001:db8::/64".parse().unwrap(),
            ],
            contacts: vec![Contact {
                name: "Aliya Nurlanova".into(),
                email: "it@example.kz".into(),
                office_phone: Some("+7 7172 000000".into()),
                mobile_phone: None,
            }],
            inbound: None,
            status: DomainStatus::Connected,
            status_reason: None,
            status_since: now,
            shared_servers: false,
            created_at: now,
            updated_at: now,
            limits: None,
            senders: Default::default(),
        }
    }

    #[test]
    fn round_trip_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rec = sample("minfin.example.kz");
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_domain(&rec).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get_domain(&rec.name).unwrap(), Some(rec.clone()));
        assert_eq!(s.list_domains().unwrap(), vec![rec]);
        assert_eq!(
            s.get_domain(&Domain::parse("other.example.kz").unwrap())
                .unwrap(),
            None
        );
    }
}

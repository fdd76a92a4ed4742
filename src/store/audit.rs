//! The audit trail: every mutating admin call, who made it and how it ended.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode, next_u64_key};

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Sequence number (assigned by the store).
    #[serde(default)]
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Token name, or `auto` for the gateway's own decisions.
    pub actor: String,
    /// What, e.g. `domain.suspend`.
    pub action: String,
    /// On what, e.g. the domain name.
    pub target: String,
    /// Client address of the API call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `ok`, `denied` or `error: ...`.
    pub outcome: String,
}

impl Store {
    /// Appends an audit record and returns its sequence number.
    pub fn append_audit(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        self.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let seq = next_u64_key(&t)?;
            let mut rec = rec.clone();
            rec.seq = seq;
            t.insert(seq, encode(&rec).as_slice())?;
            Ok(seq)
        })
    }

    /// The newest `limit` records, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.iter()?.rev().take(limit) {
                let (k, v) = row?;
                out.push(decode("audit", k.value(), v.value())?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for i in 0..3 {
            let seq = s
                .append_audit(&AuditRecord {
                    seq: 0,
                    at: Utc::now(),
                    actor: "ops".into(),
                    action: "domain.suspend".into(),
                    target: format!("d{i}.example.kz"),
                    client: Some("127.0.0.1:5000".into()),
                    outcome: "ok".into(),
                })
                .unwrap();
            assert_eq!(seq, i + 1);
        }
        let recent = s.list_audit(2).unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].target, "d2.example.kz");
        assert_eq!(recent[1].seq, 2);
    }
}

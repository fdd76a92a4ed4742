//! The webhook outbox: events waiting to be POSTed, so that they survive a
//! restart like the e-mail notices do.

use redb::{ReadableTable, TableDefinition};

use super::LocalStore;
use crate::model::webhooks::WebhookJob;
use crate::store::StoreError;
use crate::store::db::{decode, encode, next_u64_key};

pub(crate) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("webhook_outbox");

impl LocalStore {
    /// Adds jobs durably (ids are assigned here).
    pub fn add_webhook_jobs(&self, jobs: &[WebhookJob]) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            for j in jobs {
                let mut j = j.clone();
                j.id = next_u64_key(&t)?;
                t.insert(j.id, encode(&j).as_slice())?;
            }
            Ok(())
        })
    }

    /// Jobs due at `now_ms`, oldest first, at most `limit`.
    pub fn due_webhook_jobs(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let j: WebhookJob = decode("webhook_outbox", k.value(), v.value())?;
                if j.next_at_ms <= now_ms {
                    out.push(j);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Removes jobs (moved to the shared outbox) in one transaction.
    pub fn remove_webhook_jobs(&self, ids: &[u64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            for id in ids {
                t.remove(*id)?;
            }
            Ok(())
        })
    }

    /// Records a failed attempt (or removes the job with `None`).
    pub fn finish_webhook_job(
        &self,
        id: u64,
        retry: Option<&WebhookJob>,
    ) -> Result<(), StoreError> {
        self.db.write(|tx| {
            let mut t = tx.open_table(TABLE)?;
            match retry {
                Some(j) => {
                    t.insert(id, encode(j).as_slice())?;
                }
                None => {
                    t.remove(id)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::webhooks::*;

    #[test]
    fn outbox_survives_reopen_and_orders_by_due_time() {
        let dir = tempfile::tempdir().unwrap();
        let job = |url: &str, at| WebhookJob {
            id: 0,
            key: String::new(),
            url: url.into(),
            body: serde_json::json!({"event": "suspend"}),
            attempts: 0,
            next_at_ms: at,
        };
        {
            let s = crate::store::open(dir.path()).unwrap().0;
            s.add_webhook_jobs(&[job("http://a/", 10), job("http://b/", 1000)])
                .unwrap();
        }
        let s = crate::store::open(dir.path()).unwrap().0;
        let due = s.due_webhook_jobs(500, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].url, "http://a/");
        let mut j = due[0].clone();
        j.attempts = 1;
        j.next_at_ms = 2000;
        s.finish_webhook_job(j.id, Some(&j)).unwrap();
        assert!(s.due_webhook_jobs(500, 10).unwrap().is_empty());
        assert_eq!(s.due_webhook_jobs(5000, 10).unwrap().len(), 2);
        s.finish_webhook_job(j.id, None).unwrap();
        assert_eq!(s.due_webhook_jobs(5000, 10).unwrap().len(), 1);
        s.remove_webhook_jobs(&[j.id + 1, 999]).unwrap();
        assert!(s.due_webhook_jobs(u64::MAX, 10).unwrap().is_empty());
    }
}

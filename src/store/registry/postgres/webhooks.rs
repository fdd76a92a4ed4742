//! The webhook outbox shared by the nodes (migration 6): any node delivers
//! any job. A node claims due jobs with `FOR UPDATE SKIP LOCKED` and marks
//! them leased until a deadline, so two nodes never POST one job at once,
//! and a job whose node died mid-delivery is taken by another once the
//! lease has run out.

use super::{PgRegistry, column, json, pg_error};
use crate::model::webhooks::WebhookJob;
use crate::store::StoreError;

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgRegistry {
    pub(super) async fn pg_add_webhook_jobs(&self, jobs: &[WebhookJob]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        for j in jobs {
            tx.execute(
                "INSERT INTO webhook_jobs (key, record, next_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING",
                &[&j.key, &json(j), &i64_of(j.next_at_ms)],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    pub(super) async fn pg_claim_webhook_jobs(
        &self,
        node: &str,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<WebhookJob>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "UPDATE webhook_jobs SET lease_until_ms = $2 + $3, leased_by = $4
                  WHERE id IN (
                      SELECT id FROM webhook_jobs
                       WHERE next_at_ms <= $2 AND lease_until_ms <= $2
                       ORDER BY next_at_ms, id
                       LIMIT $1
                       FOR UPDATE SKIP LOCKED)
                  RETURNING record, id",
                &[
                    &i64_of(limit as u64),
                    &i64_of(now_ms),
                    &i64_of(lease_ms),
                    &node,
                ],
            )
            .await
            .map_err(pg_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut j: WebhookJob = column("webhook_jobs", r)?;
            j.id = r.try_get::<_, i64>(1).map_err(pg_error)? as u64;
            out.push(j);
        }
        out.sort_by_key(|j| (j.next_at_ms, j.id));
        Ok(out)
    }

    pub(super) async fn pg_finish_webhook_job(
        &self,
        id: u64,
        retry: Option<&WebhookJob>,
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        let id = i64_of(id);
        match retry {
            Some(j) => {
                c.execute(
                    "UPDATE webhook_jobs SET record = $2, next_at_ms = $3,
                            lease_until_ms = 0, leased_by = NULL
                      WHERE id = $1",
                    &[&id, &json(j), &i64_of(j.next_at_ms)],
                )
                .await
            }
            None => {
                c.execute("DELETE FROM webhook_jobs WHERE id = $1", &[&id])
                    .await
            }
        }
        .map_err(pg_error)?;
        Ok(())
    }
}

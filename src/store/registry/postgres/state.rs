//! The governor's scope states and recipient memory in PostgreSQL
//! (migration 6): see [`crate::store::shared`].

use super::{PgRegistry, pg_error};
use crate::store::{MemoryCopy, ScopeRow, StoreError};

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PgRegistry {
    pub(super) async fn pg_save_scopes(
        &self,
        node: &str,
        rows: &[ScopeRow],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = rows.iter().map(|r| r.scope.as_str()).collect();
        let states: Vec<String> = rows
            .iter()
            .map(|r| String::from_utf8_lossy(&r.state).into_owned())
            .collect();
        let stamps: Vec<i64> = rows.iter().map(|r| i64_of(r.stamp_ms)).collect();
        let c = self.client().await?;
        // One statement for the whole batch; an older state never replaces
        // a newer one (another node saw the scope later).
        c.execute(
            "INSERT INTO governor_scopes (scope, state, stamp_ms, node, saved_at)
             SELECT s, st::jsonb, t, $4, now()
               FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(s, st, t)
             ON CONFLICT (scope) DO UPDATE
                SET state = EXCLUDED.state, stamp_ms = EXCLUDED.stamp_ms,
                    node = EXCLUDED.node, saved_at = EXCLUDED.saved_at
              WHERE governor_scopes.stamp_ms <= EXCLUDED.stamp_ms",
            &[&names, &states, &stamps, &node],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    pub(super) async fn pg_delete_scopes(
        &self,
        node: &str,
        scopes: &[String],
    ) -> Result<u64, StoreError> {
        if scopes.is_empty() {
            return Ok(0);
        }
        let c = self.client().await?;
        c.execute(
            "DELETE FROM governor_scopes WHERE scope = ANY($1) AND node = $2",
            &[&scopes, &node],
        )
        .await
        .map_err(pg_error)
    }

    pub(super) async fn pg_prune_scopes(&self, before_ms: u64) -> Result<u64, StoreError> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM governor_scopes WHERE saved_at < to_timestamp($1::bigint / 1000.0)",
            &[&i64_of(before_ms)],
        )
        .await
        .map_err(pg_error)
    }

    pub(super) async fn pg_load_scopes(&self) -> Result<Vec<ScopeRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT scope, state::text, stamp_ms FROM governor_scopes",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                Ok(ScopeRow {
                    scope: r.try_get(0).map_err(pg_error)?,
                    state: r.try_get::<_, String>(1).map_err(pg_error)?.into_bytes(),
                    stamp_ms: r.try_get::<_, i64>(2).map_err(pg_error)?.max(0) as u64,
                })
            })
            .collect()
    }

    pub(super) async fn pg_memory_seed(
        &self,
        node: &str,
        mine: [u64; 2],
    ) -> Result<[u64; 2], StoreError> {
        let c = self.client().await?;
        // The first node's seed becomes the cluster's: a node that ran
        // alone before keeps its memory valid.
        c.execute(
            "INSERT INTO recipient_memory (id, seed0, seed1, node) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
            &[&(mine[0] as i64), &(mine[1] as i64), &node],
        )
        .await
        .map_err(pg_error)?;
        let row = c
            .query_one(
                "SELECT seed0, seed1 FROM recipient_memory WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok([row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64])
    }

    pub(super) async fn pg_save_memory_snapshot(
        &self,
        node: &str,
        snapshot: &[u8],
        taken_at_ms: u64,
        older_than_ms: u64,
        margin_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute(
                "UPDATE recipient_memory SET snapshot = $1, taken_at_ms = $2, node = $3
                  WHERE id = 1 AND taken_at_ms < $4",
                &[
                    &snapshot,
                    &i64_of(taken_at_ms),
                    &node,
                    &i64_of(older_than_ms),
                ],
            )
            .await
            .map_err(pg_error)?;
        if n == 1 {
            tx.execute(
                "DELETE FROM recipient_journal WHERE at_ms < $1",
                &[&i64_of(taken_at_ms.saturating_sub(margin_ms))],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n == 1)
    }

    pub(super) async fn pg_append_memory_chunk(
        &self,
        node: &str,
        at_ms: u64,
        chunk: &[u8],
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO recipient_journal (node, at_ms, pairs) VALUES ($1, $2, $3)",
            &[&node, &i64_of(at_ms), &chunk],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    pub(super) async fn pg_load_memory(
        &self,
        since_ms: u64,
        skip_node: Option<&str>,
    ) -> Result<MemoryCopy, StoreError> {
        let c = self.client().await?;
        let mut copy = MemoryCopy::default();
        if let Some(row) = c
            .query_opt(
                "SELECT snapshot, taken_at_ms FROM recipient_memory WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?
        {
            copy.snapshot = row.try_get(0).map_err(pg_error)?;
            copy.taken_at_ms = row.try_get::<_, i64>(1).map_err(pg_error)?.max(0) as u64;
        }
        let rows = c
            .query(
                "SELECT pairs FROM recipient_journal
                  WHERE at_ms >= $1 AND ($2::text IS NULL OR node <> $2)
                  ORDER BY id",
                &[&i64_of(since_ms), &skip_node],
            )
            .await
            .map_err(pg_error)?;
        for r in rows {
            copy.chunks.push(r.try_get(0).map_err(pg_error)?);
        }
        Ok(copy)
    }
}

#[async_trait::async_trait]
impl crate::store::SharedState for PgRegistry {
    async fn save_scopes(&self, node: &str, rows: &[ScopeRow]) -> Result<(), StoreError> {
        self.pg_save_scopes(node, rows).await
    }

    async fn delete_scopes(&self, node: &str, scopes: &[String]) -> Result<u64, StoreError> {
        self.pg_delete_scopes(node, scopes).await
    }

    async fn prune_scopes(&self, before_ms: u64) -> Result<u64, StoreError> {
        self.pg_prune_scopes(before_ms).await
    }

    async fn load_scopes(&self) -> Result<Vec<ScopeRow>, StoreError> {
        self.pg_load_scopes().await
    }

    async fn memory_seed(&self, node: &str, mine: [u64; 2]) -> Result<[u64; 2], StoreError> {
        self.pg_memory_seed(node, mine).await
    }

    async fn save_memory_snapshot(
        &self,
        node: &str,
        snapshot: &[u8],
        taken_at_ms: u64,
        older_than_ms: u64,
        margin_ms: u64,
    ) -> Result<bool, StoreError> {
        self.pg_save_memory_snapshot(node, snapshot, taken_at_ms, older_than_ms, margin_ms)
            .await
    }

    async fn append_memory_chunk(
        &self,
        node: &str,
        at_ms: u64,
        chunk: &[u8],
    ) -> Result<(), StoreError> {
        self.pg_append_memory_chunk(node, at_ms, chunk).await
    }

    async fn load_memory(
        &self,
        since_ms: u64,
        skip_node: Option<&str>,
    ) -> Result<MemoryCopy, StoreError> {
        self.pg_load_memory(since_ms, skip_node).await
    }

    async fn add_webhook_jobs(
        &self,
        jobs: &[crate::model::webhooks::WebhookJob],
    ) -> Result<(), StoreError> {
        self.pg_add_webhook_jobs(jobs).await
    }

    async fn claim_webhook_jobs(
        &self,
        node: &str,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<crate::model::webhooks::WebhookJob>, StoreError> {
        self.pg_claim_webhook_jobs(node, now_ms, lease_ms, limit)
            .await
    }

    async fn finish_webhook_job(
        &self,
        id: u64,
        retry: Option<&crate::model::webhooks::WebhookJob>,
    ) -> Result<(), StoreError> {
        self.pg_finish_webhook_job(id, retry).await
    }
}

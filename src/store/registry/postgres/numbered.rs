//! Tables of records numbered by the store (suspensions, applications,
//! change requests, server suspensions): one shape, so one set of
//! statements. Each has a `key` column (the scope, domain or address) and a
//! `flag` column (active or pending) under a unique partial index, so at
//! most one flagged record per key exists whoever writes.

use serde::de::DeserializeOwned;
use tokio_postgres::{Client, Transaction};

use super::{column, pg_error};
use crate::store::StoreError;

/// One numbered table: its name and the names of its two columns.
pub(super) struct Numbered {
    table: &'static str,
    key: &'static str,
    flag: &'static str,
}

/// Suspensions of domains and senders; at most one active per scope.
pub(super) const SUSPENSIONS: Numbered = Numbered {
    table: "suspensions",
    key: "scope",
    flag: "active",
};

/// Applications; at most one pending per domain.
pub(super) const APPLICATIONS: Numbered = Numbered {
    table: "applications",
    key: "domain",
    flag: "pending",
};

/// Change requests; at most one pending per domain.
pub(super) const CHANGES: Numbered = Numbered {
    table: "change_requests",
    key: "domain",
    flag: "pending",
};

/// Suspensions of server addresses; at most one active per address.
pub(super) const SERVERS: Numbered = Numbered {
    table: "server_suspensions",
    key: "address",
    flag: "active",
};

/// Listings of the gateway's addresses; at most one open per address and list.
pub(super) const LISTINGS: Numbered = Numbered {
    table: "gateway_listings",
    key: "open_key",
    flag: "open",
};

impl Numbered {
    /// The next id from the table's sequence (ids only grow).
    pub(super) async fn next_id(&self, tx: &Transaction<'_>) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT nextval(pg_get_serial_sequence('{}', 'id'))",
            self.table
        );
        let row = tx.query_one(&sql, &[]).await.map_err(pg_error)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Inserts a record under `id`; a second flagged record for `key` is
    /// a [`StoreError::Conflict`] (the unique partial index).
    pub(super) async fn insert(
        &self,
        tx: &Transaction<'_>,
        id: u64,
        key: &str,
        flag: bool,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} (id, {}, {}, record) VALUES ($1, $2, $3, $4)",
            self.table, self.key, self.flag
        );
        tx.execute(&sql, &[&(id as i64), &key, &flag, record])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// Replaces the record `id` and its flag.
    pub(super) async fn replace(
        &self,
        tx: &Transaction<'_>,
        id: u64,
        flag: bool,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE {} SET {} = $2, record = $3 WHERE id = $1",
            self.table, self.flag
        );
        tx.execute(&sql, &[&(id as i64), &flag, record])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    /// The record `id`, locked until the transaction ends.
    pub(super) async fn lock<T: DeserializeOwned>(
        &self,
        tx: &Transaction<'_>,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!("SELECT record FROM {} WHERE id = $1 FOR UPDATE", self.table);
        match tx
            .query_opt(&sql, &[&(id as i64)])
            .await
            .map_err(pg_error)?
        {
            Some(row) => Ok(Some(column(self.table, &row)?)),
            None => Ok(None),
        }
    }

    /// The flagged record of `key`, locked until the transaction ends.
    pub(super) async fn lock_flagged<T: DeserializeOwned>(
        &self,
        tx: &Transaction<'_>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!(
            "SELECT record FROM {} WHERE {} = $1 AND {} FOR UPDATE",
            self.table, self.key, self.flag
        );
        match tx.query_opt(&sql, &[&key]).await.map_err(pg_error)? {
            Some(row) => Ok(Some(column(self.table, &row)?)),
            None => Ok(None),
        }
    }

    /// One record by id.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        c: &Client,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        let sql = format!("SELECT record FROM {} WHERE id = $1", self.table);
        match c.query_opt(&sql, &[&(id as i64)]).await.map_err(pg_error)? {
            Some(row) => Ok(Some(column(self.table, &row)?)),
            None => Ok(None),
        }
    }

    /// Every record, oldest (lowest id) first.
    pub(super) async fn list<T: DeserializeOwned>(&self, c: &Client) -> Result<Vec<T>, StoreError> {
        let sql = format!("SELECT record FROM {} ORDER BY id", self.table);
        let rows = c.query(&sql, &[]).await.map_err(pg_error)?;
        rows.iter().map(|r| column(self.table, r)).collect()
    }
}

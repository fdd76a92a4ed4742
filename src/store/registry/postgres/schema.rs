//! The PostgreSQL schema, as numbered migrations applied in order at start
//! (or alone by `ugem store migrate`). A migration is never edited once
//! shipped: a change is a new one. Records are JSON (`jsonb`) exactly as the
//! redb backend stores them, so export and import move them unchanged; the
//! columns beside them exist only for the constraints and lookups the
//! contract needs (one active suspension per scope, one pending
//! application per domain).

use tokio_postgres::Client;

use super::pg_error;
use crate::store::StoreError;

/// Every migration, in order; the version of the schema is their count.
pub const MIGRATIONS: &[&str] = &[
    // 1: the registry of one gateway, shared by its nodes.
    r#"
CREATE TABLE domains (
    name   text PRIMARY KEY,
    record jsonb NOT NULL
);
CREATE TABLE domain_versions (
    domain  text   NOT NULL,
    version bigint NOT NULL,
    record  jsonb  NOT NULL,
    PRIMARY KEY (domain, version)
);
CREATE TABLE suspensions (
    id     bigserial PRIMARY KEY,
    scope  text    NOT NULL,
    active boolean NOT NULL,
    record jsonb   NOT NULL
);
CREATE UNIQUE INDEX suspensions_one_active ON suspensions (scope) WHERE active;
CREATE TABLE applications (
    id      bigserial PRIMARY KEY,
    domain  text    NOT NULL,
    pending boolean NOT NULL,
    record  jsonb   NOT NULL
);
CREATE UNIQUE INDEX applications_one_pending ON applications (domain) WHERE pending;
CREATE TABLE change_requests (
    id      bigserial PRIMARY KEY,
    domain  text    NOT NULL,
    pending boolean NOT NULL,
    record  jsonb   NOT NULL
);
CREATE UNIQUE INDEX change_requests_one_pending ON change_requests (domain) WHERE pending;
CREATE TABLE server_suspensions (
    id      bigserial PRIMARY KEY,
    address text    NOT NULL,
    active  boolean NOT NULL,
    record  jsonb   NOT NULL
);
CREATE UNIQUE INDEX server_suspensions_one_active ON server_suspensions (address) WHERE active;
CREATE TABLE audit (
    seq    bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL,
    denied boolean     NOT NULL,
    record jsonb       NOT NULL
);
CREATE INDEX audit_denied_at ON audit (at) WHERE denied;
CREATE TABLE notice_claims (
    key   text   PRIMARY KEY,
    at_ms bigint NOT NULL
);
CREATE INDEX notice_claims_at ON notice_claims (at_ms);
CREATE TABLE unregistered_servers (
    domain  text  NOT NULL,
    address text  NOT NULL,
    record  jsonb NOT NULL,
    PRIMARY KEY (domain, address)
);
"#,
    // 2: every committed change of what the SMTP policy reads wakes the
    // other nodes (LISTEN ugem_registry), whoever wrote it.
    r#"
CREATE FUNCTION ugem_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ugem_registry', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
CREATE TRIGGER domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION ugem_registry_changed();
CREATE TRIGGER suspensions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON suspensions
    FOR EACH STATEMENT EXECUTE FUNCTION ugem_registry_changed();
CREATE TRIGGER server_suspensions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON server_suspensions
    FOR EACH STATEMENT EXECUTE FUNCTION ugem_registry_changed();
"#,
    // 3: listings of the gateway's own addresses, at most one open per
    // address and list (the key is "address list").
    r#"
CREATE TABLE gateway_listings (
    id       bigserial PRIMARY KEY,
    open_key text    NOT NULL,
    open     boolean NOT NULL,
    record   jsonb   NOT NULL
);
CREATE UNIQUE INDEX gateway_listings_one_open ON gateway_listings (open_key) WHERE open;
"#,
    // 4: outgoing notice numbers, one counter per year.
    r#"
CREATE TABLE notice_numbers (
    year integer PRIMARY KEY,
    last bigint  NOT NULL
);
"#,
    // 5: the nodes sharing the registry and where their admin API answers.
    r#"
CREATE TABLE nodes (
    name    text        PRIMARY KEY,
    seen_at timestamptz NOT NULL,
    record  jsonb       NOT NULL
);
"#,
    // 6: what each node's governor learned, so that a new or replacement
    // node starts with the cluster's history: every scope's state (last
    // writer wins, by the state's own last-seen time), the recipient
    // memory (its hash seed, a snapshot and journal chunks of pairs added
    // since), and the webhook outbox that any node delivers from.
    r#"
CREATE TABLE governor_scopes (
    scope    text        PRIMARY KEY,
    state    jsonb       NOT NULL,
    stamp_ms bigint      NOT NULL,
    node     text        NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX governor_scopes_saved_at ON governor_scopes (saved_at);
CREATE TABLE recipient_memory (
    id          integer PRIMARY KEY CHECK (id = 1),
    seed0       bigint  NOT NULL,
    seed1       bigint  NOT NULL,
    snapshot    bytea,
    taken_at_ms bigint  NOT NULL DEFAULT 0,
    node        text    NOT NULL
);
CREATE TABLE recipient_journal (
    id    bigserial PRIMARY KEY,
    node  text   NOT NULL,
    at_ms bigint NOT NULL,
    pairs bytea  NOT NULL
);
CREATE INDEX recipient_journal_at ON recipient_journal (at_ms);
CREATE TABLE webhook_jobs (
    id             bigserial PRIMARY KEY,
    key            text   NOT NULL UNIQUE,
    record         jsonb  NOT NULL,
    next_at_ms     bigint NOT NULL,
    lease_until_ms bigint NOT NULL DEFAULT 0,
    leased_by      text
);
CREATE INDEX webhook_jobs_due ON webhook_jobs (next_at_ms, id);
"#,
];

/// The channel the change triggers notify.
pub const CHANNEL: &str = "ugem_registry";

/// The schema version this build writes.
pub fn current() -> u64 {
    MIGRATIONS.len() as u64
}

/// Applies the migrations the database lacks, each in its own transaction,
/// under an advisory lock so that nodes starting together apply each once.
/// Returns the versions applied. A database migrated by a newer ugem is
/// refused rather than written to.
pub async fn migrate(client: &mut Client) -> Result<Vec<u64>, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ugem_schema (
                 version    bigint PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(pg_error)?;
    let mut applied = Vec::new();
    loop {
        let tx = client.transaction().await.map_err(pg_error)?;
        // One lock number for ugem's migrations (ASCII "ugemschm").
        tx.execute("SELECT pg_advisory_xact_lock(8463387380330129773)", &[])
            .await
            .map_err(pg_error)?;
        let row = tx
            .query_one("SELECT coalesce(max(version), 0) FROM ugem_schema", &[])
            .await
            .map_err(pg_error)?;
        let found = row.get::<_, i64>(0) as u64;
        if found > current() {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: current(),
            });
        }
        if found == current() {
            return Ok(applied);
        }
        let next = found + 1;
        tx.batch_execute(MIGRATIONS[found as usize])
            .await
            .map_err(pg_error)?;
        tx.execute(
            "INSERT INTO ugem_schema (version) VALUES ($1)",
            &[&(next as i64)],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        applied.push(next);
    }
}

/// The schema version of the database (0 before the first migration).
pub async fn version(client: &Client) -> Result<u64, StoreError> {
    let exists = client
        .query_one("SELECT to_regclass('ugem_schema') IS NOT NULL", &[])
        .await
        .map_err(pg_error)?
        .get::<_, bool>(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM ugem_schema", &[])
        .await
        .map_err(pg_error)?;
    Ok(row.get::<_, i64>(0) as u64)
}

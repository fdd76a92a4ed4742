//! The PostgreSQL backend of [`RegistryStore`]: the registry shared by
//! several gateway nodes (`[store] url = "postgres://..."`).
//!
//! Records are stored as JSON beside the few columns that carry the
//! contract's constraints. Every race the contract names is settled by the
//! database itself: a unique partial index (one active suspension per
//! scope, one pending application or change request per domain), a row
//! lock taken before a conditional write (`SELECT ... FOR UPDATE`), an
//! advisory lock around a merge, or `INSERT ... ON CONFLICT DO NOTHING`
//! for a claim. Ids come from sequences: they only grow, with gaps where a
//! write lost its race.

mod audit;
mod bus;
mod import;
mod listen;
mod numbered;
mod records;
pub mod schema;
mod state;
mod webhooks;

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{DomainWrite, RegistryStore};
use crate::domain::Domain;
use crate::model::applications::{ApplicationRecord, ApplicationStatus};
use crate::model::audit::{AuditFilter, AuditRecord, AuditSize, RefusedUpdate};
use crate::model::changes::{ChangeRequest, ChangeStatus, DomainVersion};
use crate::model::domains::DomainRecord;
use crate::model::listings::GatewayListing;
use crate::model::servers::ServerSuspension;
use crate::model::sightings::UnregisteredServer;
use crate::model::suspensions::{Restoration, Scope, SuspensionRecord};
use crate::store::StoreError;

/// How long a call waits for a connection, or for one to be made, before
/// the store counts as unavailable.
const WAIT: Duration = Duration::from_secs(5);

/// Connections per node: the admin API, the governor and the notifier
/// rarely need more at once.
const POOL_SIZE: usize = 16;

/// The PostgreSQL backend; cheap to clone (a pool of connections).
#[derive(Clone)]
pub struct PgRegistry {
    pool: Pool,
    /// For the change feed's own connection.
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// Set while calls are held back until [`PgRegistry::migrate`]
    /// succeeds ([`PgRegistry::hold_until_migrated`]).
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRegistry")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgRegistry {
    /// A pool for `url` (a libpq-style `postgres://` URL or key=value
    /// string); connects lazily, so an unreachable database fails calls
    /// with [`StoreError::Unavailable`], not the start.
    pub fn new(
        url: &str,
        password: Option<&str>,
        roots: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Result<PgRegistry, StoreError> {
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("the store url is not usable: {e}")))?;
        pg.connect_timeout(WAIT);
        if let Some(p) = password {
            pg.password(p);
        }
        let tls = tls(roots)?;
        let mgr = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .build()
            .map_err(|e| StoreError::Backend(format!("store pool: {e}")))?;
        Ok(PgRegistry {
            pool,
            config: pg,
            tls,
            held: Default::default(),
        })
    }

    /// Applies the migrations the database lacks; returns those applied.
    /// Calls held back ([`PgRegistry::hold_until_migrated`]) go through
    /// from then on.
    pub async fn migrate(&self) -> Result<Vec<u64>, StoreError> {
        let mut c = self.connect().await?;
        let applied = schema::migrate(&mut c).await?;
        self.held.store(false, std::sync::atomic::Ordering::Release);
        Ok(applied)
    }

    /// Makes every call but [`PgRegistry::migrate`] fail as unavailable
    /// until a migration succeeds: a node that started without reaching
    /// the database must not read or write a schema older than its own
    /// when the database comes back before the migration is tried again.
    pub fn hold_until_migrated(&self) {
        self.held.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Loads an export into this store, which must be empty; all or nothing.
    pub async fn import(
        &self,
        doc: &crate::store::export::RegistryExport,
    ) -> Result<(), StoreError> {
        import::import(&mut *self.client().await?, doc).await
    }

    /// The database's schema version (0 before any migration).
    pub async fn schema_version(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        schema::version(&c).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.held.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Unavailable(
                "PostgreSQL: not reached since this node started".into(),
            ));
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))
    }
}

/// TLS for the connections, used when the URL's `sslmode` asks for it
/// (`require`) or the server offers it (`prefer`, the default): the server's
/// certificate is always verified against `roots`.
fn tls(
    roots: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<MakeRustlsConnect, StoreError> {
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Backend(format!("TLS for PostgreSQL: {e}")))?
    .with_root_certificates(store)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// PostgreSQL's error as the store's: a broken constraint or a lost
/// serialisation is a conflict, a connection problem makes the store
/// unavailable, anything else is a backend error.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            if *code == SqlState::UNIQUE_VIOLATION
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
            {
                StoreError::Conflict(db.message().to_string())
            } else if code.code().starts_with("08") || code.code().starts_with("57P") {
                // Connection exceptions and an administrator's shutdown.
                StoreError::Unavailable(format!("PostgreSQL: {}", db.message()))
            } else {
                StoreError::Backend(format!("PostgreSQL: {}", db.message()))
            }
        }
        None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

/// The key of a listing's one open record: its address and list.
fn listing_key(address: std::net::IpAddr, list: &str) -> String {
    format!("{address} {list}")
}

/// A record as the JSON stored for it.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("records serialize")
}

/// Decodes a stored record, naming the table and key on failure.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: impl std::fmt::Display,
    v: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Decode {
        table,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

/// Column 0 of a row as the record it holds.
pub(crate) fn column<T: serde::de::DeserializeOwned>(
    table: &'static str,
    row: &tokio_postgres::Row,
) -> Result<T, StoreError> {
    let v: serde_json::Value = row.try_get(0).map_err(pg_error)?;
    decode(table, "?", v)
}

#[async_trait::async_trait]
impl RegistryStore for PgRegistry {
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(listen::spawn(self.config.clone(), self.tls.clone()))
    }

    fn peer_link(&self) -> Option<super::PeerLink> {
        Some(bus::spawn(self.config.clone(), self.tls.clone()))
    }

    fn shared_state(&self) -> Option<std::sync::Arc<dyn crate::store::SharedState>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    async fn list_domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        records::list_domains(&*self.client().await?).await
    }

    async fn get_domain(&self, name: &Domain) -> Result<Option<DomainRecord>, StoreError> {
        records::get_domain(&*self.client().await?, name).await
    }

    async fn put_domain(&self, w: &DomainWrite) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        records::put_domain_in(&tx, w).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn list_suspensions(&self) -> Result<Vec<SuspensionRecord>, StoreError> {
        numbered::SUSPENSIONS.list(&*self.client().await?).await
    }

    async fn get_suspension(&self, id: u64) -> Result<Option<SuspensionRecord>, StoreError> {
        numbered::SUSPENSIONS.get(&*self.client().await?, id).await
    }

    async fn start_suspension(
        &self,
        rec: &SuspensionRecord,
        domain: Option<&DomainWrite>,
    ) -> Result<SuspensionRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut rec = rec.clone();
        rec.id = numbered::SUSPENSIONS.next_id(&tx).await?;
        numbered::SUSPENSIONS
            .insert(&tx, rec.id, &rec.scope.to_string(), true, &json(&rec))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("{} is already suspended", rec.scope))
                }
                e => e,
            })?;
        if let Some(w) = domain {
            records::put_domain_in(&tx, w).await?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(rec)
    }

    async fn end_suspension(
        &self,
        scope: &Scope,
        how: &Restoration,
        domain: Option<&DomainWrite>,
    ) -> Result<SuspensionRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut rec: SuspensionRecord = numbered::SUSPENSIONS
            .lock_flagged(&tx, &scope.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("an active suspension of {scope}")))?;
        rec.restored = Some(how.clone());
        numbered::SUSPENSIONS
            .replace(&tx, rec.id, false, &json(&rec))
            .await?;
        if let Some(w) = domain {
            records::put_domain_in(&tx, w).await?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(rec)
    }

    async fn list_applications(&self) -> Result<Vec<ApplicationRecord>, StoreError> {
        numbered::APPLICATIONS.list(&*self.client().await?).await
    }

    async fn get_application(&self, id: u64) -> Result<Option<ApplicationRecord>, StoreError> {
        numbered::APPLICATIONS.get(&*self.client().await?, id).await
    }

    async fn insert_application(
        &self,
        rec: &ApplicationRecord,
    ) -> Result<ApplicationRecord, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut rec = rec.clone();
        rec.id = numbered::APPLICATIONS.next_id(&tx).await?;
        let pending = rec.status == ApplicationStatus::Pending;
        numbered::APPLICATIONS
            .insert(&tx, rec.id, rec.domain.as_str(), pending, &json(&rec))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "domain {} already has a pending application",
                    rec.domain
                )),
                e => e,
            })?;
        tx.commit().await.map_err(pg_error)?;
        Ok(rec)
    }

    async fn update_application(
        &self,
        rec: &ApplicationRecord,
        expect: ApplicationStatus,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let stored: ApplicationRecord = numbered::APPLICATIONS
            .lock(&tx, rec.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("application #{}", rec.id)))?;
        if stored.status != expect {
            return Err(StoreError::Conflict(format!(
                "application #{} is {}, not {expect}",
                rec.id, stored.status
            )));
        }
        let pending = rec.status == ApplicationStatus::Pending;
        numbered::APPLICATIONS
            .replace(&tx, rec.id, pending, &json(rec))
            .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn append_audit(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        audit::append(&mut *self.client().await?, rec, true).await
    }

    async fn append_refused(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        audit::append(&mut *self.client().await?, rec, false).await
    }

    async fn update_refused(&self, updates: &[RefusedUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        audit::update_refused(&mut *self.client().await?, updates).await
    }

    async fn prune_refused_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        audit::prune_refused(&*self.client().await?, before).await
    }

    async fn audit_size(&self) -> Result<AuditSize, StoreError> {
        audit::size(&*self.client().await?).await
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        audit::newest(&*self.client().await?, limit).await
    }

    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        audit::query(&*self.client().await?, filter).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        audit::prune(&*self.client().await?, before).await
    }

    async fn claim_notice(&self, key: &str, now_ms: u64) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO notice_claims (key, at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &(now_ms as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(n == 1)
    }

    async fn next_notice_number(&self, year: i32) -> Result<u64, StoreError> {
        // One statement: the row lock it takes serialises every node's
        // numbering of that year.
        let row = self
            .client()
            .await?
            .query_one(
                "INSERT INTO notice_numbers (year, last) VALUES ($1, 1)
                 ON CONFLICT (year) DO UPDATE SET last = notice_numbers.last + 1
                 RETURNING last",
                &[&year],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn prune_notices(&self, before_ms: u64) -> Result<usize, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM notice_claims WHERE at_ms < $1",
                &[&(before_ms as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(n as usize)
    }

    async fn put_domain_versioned(
        &self,
        w: &DomainWrite,
        previous: &DomainVersion,
    ) -> Result<u64, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        // The conditional write locks the domain's row first, so two
        // versioned writes of one domain cannot pick the same number.
        records::put_domain_in(&tx, w).await?;
        let version = records::keep_version(&tx, previous).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(version)
    }

    async fn list_domain_versions(&self, name: &Domain) -> Result<Vec<DomainVersion>, StoreError> {
        records::list_versions(&*self.client().await?, name).await
    }

    async fn insert_change_request(
        &self,
        rec: &ChangeRequest,
    ) -> Result<ChangeRequest, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut rec = rec.clone();
        rec.id = numbered::CHANGES.next_id(&tx).await?;
        let pending = rec.status == ChangeStatus::Pending;
        numbered::CHANGES
            .insert(&tx, rec.id, rec.domain.as_str(), pending, &json(&rec))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "domain {} already has a pending change request",
                    rec.domain
                )),
                e => e,
            })?;
        tx.commit().await.map_err(pg_error)?;
        Ok(rec)
    }

    async fn update_change_request(
        &self,
        rec: &ChangeRequest,
        expect: ChangeStatus,
    ) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let stored: ChangeRequest = numbered::CHANGES
            .lock(&tx, rec.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("change request #{}", rec.id)))?;
        if stored.status != expect {
            return Err(StoreError::Conflict(format!(
                "change request #{} is {}, not {expect}",
                rec.id, stored.status
            )));
        }
        let pending = rec.status == ChangeStatus::Pending;
        numbered::CHANGES
            .replace(&tx, rec.id, pending, &json(rec))
            .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn get_change_request(&self, id: u64) -> Result<Option<ChangeRequest>, StoreError> {
        numbered::CHANGES.get(&*self.client().await?, id).await
    }

    async fn list_change_requests(&self) -> Result<Vec<ChangeRequest>, StoreError> {
        numbered::CHANGES.list(&*self.client().await?).await
    }

    async fn record_unregistered(
        &self,
        batch: &[UnregisteredServer],
    ) -> Result<Vec<UnregisteredServer>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let new = records::merge_sightings(&tx, batch).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(new)
    }

    async fn list_unregistered(
        &self,
        domain: &Domain,
    ) -> Result<Vec<UnregisteredServer>, StoreError> {
        records::list_sightings(&*self.client().await?, domain).await
    }

    async fn start_server_suspension(
        &self,
        rec: &ServerSuspension,
    ) -> Result<ServerSuspension, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut rec = rec.clone();
        rec.id = numbered::SERVERS.next_id(&tx).await?;
        rec.restored = None;
        numbered::SERVERS
            .insert(&tx, rec.id, &rec.address.to_string(), true, &json(&rec))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("server {} is already suspended", rec.address))
                }
                e => e,
            })?;
        tx.commit().await.map_err(pg_error)?;
        Ok(rec)
    }

    async fn end_server_suspension(
        &self,
        address: std::net::IpAddr,
        how: &Restoration,
    ) -> Result<ServerSuspension, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut s: ServerSuspension = numbered::SERVERS
            .lock_flagged(&tx, &address.to_string())
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("an active suspension of server {address}"))
            })?;
        s.restored = Some(how.clone());
        numbered::SERVERS
            .replace(&tx, s.id, false, &json(&s))
            .await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(s)
    }

    async fn list_server_suspensions(&self) -> Result<Vec<ServerSuspension>, StoreError> {
        numbered::SERVERS.list(&*self.client().await?).await
    }

    async fn record_listing(
        &self,
        rec: &GatewayListing,
    ) -> Result<(GatewayListing, bool), StoreError> {
        let key = listing_key(rec.address, &rec.list);
        // Two nodes opening the same listing at once: the loser finds the
        // winner's record on its second pass and updates it.
        let mut tries = 0;
        loop {
            tries += 1;
            let mut c = self.client().await?;
            let tx = c.transaction().await.map_err(pg_error)?;
            if let Some(mut l) = numbered::LISTINGS
                .lock_flagged::<GatewayListing>(&tx, &key)
                .await?
            {
                l.last_seen = Some(rec.last_seen.unwrap_or(rec.at));
                l.code = rec.code.clone();
                l.meaning = rec.meaning.clone();
                numbered::LISTINGS
                    .replace(&tx, l.id, true, &json(&l))
                    .await?;
                tx.commit().await.map_err(pg_error)?;
                return Ok((l, false));
            }
            let mut l = rec.clone();
            l.id = numbered::LISTINGS.next_id(&tx).await?;
            l.delisted_at = None;
            match numbered::LISTINGS
                .insert(&tx, l.id, &key, true, &json(&l))
                .await
            {
                Ok(()) => {
                    tx.commit().await.map_err(pg_error)?;
                    return Ok((l, true));
                }
                Err(StoreError::Conflict(_)) if tries < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn end_listing(
        &self,
        address: std::net::IpAddr,
        list: &str,
        at: DateTime<Utc>,
    ) -> Result<GatewayListing, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        let mut l: GatewayListing = numbered::LISTINGS
            .lock_flagged(&tx, &listing_key(address, list))
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("an open listing of {address} on {list}"))
            })?;
        l.delisted_at = Some(at);
        numbered::LISTINGS
            .replace(&tx, l.id, false, &json(&l))
            .await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(l)
    }

    async fn list_listings(&self) -> Result<Vec<GatewayListing>, StoreError> {
        numbered::LISTINGS.list(&*self.client().await?).await
    }

    async fn announce_node(
        &self,
        node: &crate::model::nodes::NodeRecord,
    ) -> Result<(), StoreError> {
        let record = json(node);
        self.client()
            .await?
            .execute(
                "INSERT INTO nodes (name, seen_at, record) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET seen_at = $2, record = $3",
                &[&node.name, &node.seen_at, &record],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn list_nodes(&self) -> Result<Vec<crate::model::nodes::NodeRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT name, record FROM nodes ORDER BY name", &[])
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| decode("nodes", r.get::<_, String>(0), r.get(1)))
            .collect()
    }
}

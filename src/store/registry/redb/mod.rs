//! The registry's records in the node's redb file. Each call runs its
//! blocking transaction on tokio's blocking pool, so callers only `.await`;
//! conditional writes check and write in one redb write transaction (redb
//! has one writer at a time, so that is atomic).

pub(crate) mod applications;
pub(crate) mod audit;
pub(crate) mod changes;
pub(crate) mod domains;
pub(crate) mod listings;
pub(crate) mod notices;
pub(crate) mod servers;
pub(crate) mod sightings;
pub(crate) mod suspensions;

use chrono::{DateTime, Utc};

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
use crate::store::db::Db;

/// The redb backend of [`RegistryStore`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct RedbRegistry {
    db: Db,
}

impl RedbRegistry {
    pub(crate) fn new(db: Db) -> RedbRegistry {
        RedbRegistry { db }
    }

    /// Runs `f` on the blocking pool: the one place registry calls block.
    async fn blocking<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Db) -> Result<R, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl RegistryStore for RedbRegistry {
    async fn list_domains(&self) -> Result<Vec<DomainRecord>, StoreError> {
        self.blocking(domains::list).await
    }

    async fn get_domain(&self, name: &Domain) -> Result<Option<DomainRecord>, StoreError> {
        let name = name.clone();
        self.blocking(move |db| domains::get(db, &name)).await
    }

    async fn put_domain(&self, w: &DomainWrite) -> Result<(), StoreError> {
        let w = w.clone();
        self.blocking(move |db| domains::put(db, &w)).await
    }

    async fn list_suspensions(&self) -> Result<Vec<SuspensionRecord>, StoreError> {
        self.blocking(suspensions::list).await
    }

    async fn get_suspension(&self, id: u64) -> Result<Option<SuspensionRecord>, StoreError> {
        self.blocking(move |db| suspensions::get(db, id)).await
    }

    async fn start_suspension(
        &self,
        rec: &SuspensionRecord,
        domain: Option<&DomainWrite>,
    ) -> Result<SuspensionRecord, StoreError> {
        let (rec, domain) = (rec.clone(), domain.cloned());
        self.blocking(move |db| suspensions::start(db, &rec, domain.as_ref()))
            .await
    }

    async fn end_suspension(
        &self,
        scope: &Scope,
        how: &Restoration,
        domain: Option<&DomainWrite>,
    ) -> Result<SuspensionRecord, StoreError> {
        let (scope, how, domain) = (scope.clone(), how.clone(), domain.cloned());
        self.blocking(move |db| suspensions::end(db, &scope, &how, domain.as_ref()))
            .await
    }

    async fn list_applications(&self) -> Result<Vec<ApplicationRecord>, StoreError> {
        self.blocking(applications::list).await
    }

    async fn get_application(&self, id: u64) -> Result<Option<ApplicationRecord>, StoreError> {
        self.blocking(move |db| applications::get(db, id)).await
    }

    async fn insert_application(
        &self,
        rec: &ApplicationRecord,
    ) -> Result<ApplicationRecord, StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| applications::insert(db, &rec))
            .await
    }

    async fn update_application(
        &self,
        rec: &ApplicationRecord,
        expect: ApplicationStatus,
    ) -> Result<(), StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| applications::update(db, &rec, expect))
            .await
    }

    async fn append_audit(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| audit::append_audit(db, &rec)).await
    }

    async fn append_refused(&self, rec: &AuditRecord) -> Result<u64, StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| audit::append_refused(db, &rec))
            .await
    }

    async fn update_refused(&self, updates: &[RefusedUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let updates = updates.to_vec();
        self.blocking(move |db| audit::update_refused(db, &updates))
            .await
    }

    async fn prune_refused_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.blocking(move |db| audit::prune_refused_audit(db, before))
            .await
    }

    async fn audit_size(&self) -> Result<AuditSize, StoreError> {
        self.blocking(audit::audit_size).await
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.blocking(move |db| audit::list_audit(db, limit)).await
    }

    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let filter = filter.clone();
        self.blocking(move |db| audit::query_audit(db, &filter))
            .await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.blocking(move |db| audit::prune_audit(db, before))
            .await
    }

    async fn claim_notice(&self, key: &str, now_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.blocking(move |db| notices::claim(db, &key, now_ms))
            .await
    }

    async fn prune_notices(&self, before_ms: u64) -> Result<usize, StoreError> {
        self.blocking(move |db| notices::prune(db, before_ms)).await
    }

    async fn put_domain_versioned(
        &self,
        w: &DomainWrite,
        previous: &DomainVersion,
    ) -> Result<u64, StoreError> {
        let (w, previous) = (w.clone(), previous.clone());
        self.blocking(move |db| changes::put_versioned(db, &w, &previous))
            .await
    }

    async fn list_domain_versions(&self, name: &Domain) -> Result<Vec<DomainVersion>, StoreError> {
        let name = name.clone();
        self.blocking(move |db| changes::versions(db, &name)).await
    }

    async fn insert_change_request(
        &self,
        rec: &ChangeRequest,
    ) -> Result<ChangeRequest, StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| changes::insert(db, &rec)).await
    }

    async fn update_change_request(
        &self,
        rec: &ChangeRequest,
        expect: ChangeStatus,
    ) -> Result<(), StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| changes::update(db, &rec, expect))
            .await
    }

    async fn get_change_request(&self, id: u64) -> Result<Option<ChangeRequest>, StoreError> {
        self.blocking(move |db| changes::get(db, id)).await
    }

    async fn list_change_requests(&self) -> Result<Vec<ChangeRequest>, StoreError> {
        self.blocking(changes::list).await
    }

    async fn record_unregistered(
        &self,
        batch: &[UnregisteredServer],
    ) -> Result<Vec<UnregisteredServer>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.to_vec();
        self.blocking(move |db| sightings::record(db, &batch)).await
    }

    async fn start_server_suspension(
        &self,
        rec: &ServerSuspension,
    ) -> Result<ServerSuspension, StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| servers::start(db, &rec)).await
    }

    async fn end_server_suspension(
        &self,
        address: std::net::IpAddr,
        how: &Restoration,
    ) -> Result<ServerSuspension, StoreError> {
        let how = how.clone();
        self.blocking(move |db| servers::end(db, address, &how))
            .await
    }

    async fn list_server_suspensions(&self) -> Result<Vec<ServerSuspension>, StoreError> {
        self.blocking(servers::list).await
    }

    async fn list_unregistered(
        &self,
        domain: &Domain,
    ) -> Result<Vec<UnregisteredServer>, StoreError> {
        let domain = domain.clone();
        self.blocking(move |db| sightings::list(db, &domain)).await
    }

    async fn record_listing(
        &self,
        rec: &GatewayListing,
    ) -> Result<(GatewayListing, bool), StoreError> {
        let rec = rec.clone();
        self.blocking(move |db| listings::record(db, &rec)).await
    }

    async fn end_listing(
        &self,
        address: std::net::IpAddr,
        list: &str,
        at: DateTime<Utc>,
    ) -> Result<GatewayListing, StoreError> {
        let list = list.to_string();
        self.blocking(move |db| listings::end(db, address, &list, at))
            .await
    }

    async fn list_listings(&self) -> Result<Vec<GatewayListing>, StoreError> {
        self.blocking(listings::list).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::suspensions::Restoration;
    use crate::store::Expect;
    use crate::store::contract;

    fn open(dir: &std::path::Path) -> RedbRegistry {
        crate::store::open(dir).unwrap().1
    }

    #[tokio::test]
    async fn domains_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rec = contract::domain("minfin.example.kz");
        {
            let s = open(dir.path());
            let w = DomainWrite {
                record: rec.clone(),
                expect: Expect::Absent,
            };
            s.put_domain(&w).await.unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.get_domain(&rec.name).await.unwrap(), Some(rec.clone()));
        assert_eq!(s.list_domains().await.unwrap(), vec![rec]);
        assert_eq!(
            s.get_domain(&Domain::parse("other.example.kz").unwrap())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn suspension_history_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let scope = Scope::Sender("bot@agency.example.kz".into());
        let rec = s
            .start_suspension(&contract::suspension(scope.clone()), None)
            .await
            .unwrap();
        assert!(s.get_suspension(rec.id).await.unwrap().unwrap().is_active());
        let how = Restoration {
            by: "ops".into(),
            at: Utc::now(),
            reason: Some("password reset".into()),
            held_mail: "released".into(),
        };
        s.end_suspension(&scope, &how, None).await.unwrap();
        let all = open_again(dir.path(), s).list_suspensions().await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(!all[0].is_active());
        assert_eq!(all[0].evidence["recipients_per_hour"], 5000);
    }

    /// Drops `s` and opens the folder again.
    fn open_again(dir: &std::path::Path, s: RedbRegistry) -> RedbRegistry {
        drop(s);
        open(dir)
    }

    #[tokio::test]
    async fn application_ids_are_assigned_and_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = contract::application("minjust.example.kz");
        {
            let s = open(dir.path());
            let first = contract::application("minfin.example.kz");
            assert_eq!(s.insert_application(&first).await.unwrap().id, 1);
            rec.id = 2;
            assert_eq!(s.insert_application(&rec).await.unwrap().id, 2);
            rec.status = ApplicationStatus::Rejected;
            rec.reason = Some("not an eligible category".into());
            s.update_application(&rec, ApplicationStatus::Pending)
                .await
                .unwrap();
        }
        let s = open(dir.path());
        let all = s.list_applications().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, 1);
        assert_eq!(all[0].status, ApplicationStatus::Pending);
        assert_eq!(s.get_application(2).await.unwrap(), Some(rec));
        assert_eq!(s.get_application(3).await.unwrap(), None);
    }

    #[tokio::test]
    async fn updating_a_missing_application_fails() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let mut rec = contract::application("minfin.example.kz");
        rec.id = 9;
        assert!(
            s.update_application(&rec, ApplicationStatus::Pending)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn audit_count_is_left_out_of_the_json_when_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let seq = s
            .append_audit(&contract::audit("ok", 0, "x"))
            .await
            .unwrap();
        let recs = s.list_audit(10).await.unwrap();
        assert_eq!(recs[0].seq, seq);
        assert!(!serde_json::to_string(&recs[0]).unwrap().contains("count"));
    }

    #[tokio::test]
    async fn notice_claims_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path());
            assert!(
                s.claim_notice("warn|d:a.example|2026-03-02", 5)
                    .await
                    .unwrap()
            );
            assert!(
                !s.claim_notice("warn|d:a.example|2026-03-02", 6)
                    .await
                    .unwrap()
            );
        }
        let s = open(dir.path());
        assert!(
            !s.claim_notice("warn|d:a.example|2026-03-02", 7)
                .await
                .unwrap()
        );
        assert_eq!(s.prune_notices(100).await.unwrap(), 1);
        assert!(
            s.claim_notice("warn|d:a.example|2026-03-02", 8)
                .await
                .unwrap()
        );
    }
}

//! The whole registry as one document, to move it between backends
//! (`ugem store export` from a node's redb file, `ugem store import` into
//! PostgreSQL). Records keep their ids and sequence numbers, so that
//! "application #12" means the same in the audit, the notices already sent
//! and the new store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RegistryStore, StoreError};
use crate::model::applications::ApplicationRecord;
use crate::model::audit::AuditRecord;
use crate::model::changes::{ChangeRequest, DomainVersion};
use crate::model::domains::DomainRecord;
use crate::model::listings::GatewayListing;
use crate::model::servers::ServerSuspension;
use crate::model::sightings::UnregisteredServer;
use crate::model::suspensions::SuspensionRecord;

/// What the document says it is.
pub const FORMAT: &str = "ugem-registry-export";

/// The version of the document's layout this build writes and reads.
pub const VERSION: u32 = 1;

/// The registry, every record of every kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryExport {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for now.
    pub version: u32,
    /// When it was taken.
    pub exported_at: Option<DateTime<Utc>>,
    /// Registered domains.
    pub domains: Vec<DomainRecord>,
    /// Versions of domains kept by updates.
    pub domain_versions: Vec<DomainVersion>,
    /// Suspensions, active and ended.
    pub suspensions: Vec<SuspensionRecord>,
    /// Applications.
    pub applications: Vec<ApplicationRecord>,
    /// Change requests.
    pub change_requests: Vec<ChangeRequest>,
    /// Suspensions of server addresses.
    pub server_suspensions: Vec<ServerSuspension>,
    /// Unregistered servers seen sending as a domain.
    pub unregistered: Vec<UnregisteredServer>,
    /// The audit trail, oldest first.
    pub audit: Vec<AuditRecord>,
    /// Listings of the gateway's own addresses.
    #[serde(default)]
    pub listings: Vec<GatewayListing>,
}

impl RegistryExport {
    /// How many records of each kind it holds, by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("domains", self.domains.len()),
            ("domain_versions", self.domain_versions.len()),
            ("suspensions", self.suspensions.len()),
            ("applications", self.applications.len()),
            ("change_requests", self.change_requests.len()),
            ("server_suspensions", self.server_suspensions.len()),
            ("unregistered", self.unregistered.len()),
            ("audit", self.audit.len()),
            ("listings", self.listings.len()),
        ])
    }

    /// Refuses a document that is not an export this build can read.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.format != FORMAT || self.version != VERSION {
            return Err(StoreError::Backend(format!(
                "not a ugem registry export this build reads (format {:?}, version {})",
                self.format, self.version
            )));
        }
        Ok(())
    }
}

/// Reads every record of `store` (with the notice claims left out: they
/// only stop a notice going twice, and expire by themselves).
pub async fn export(store: &dyn RegistryStore) -> Result<RegistryExport, StoreError> {
    let domains = store.list_domains().await?;
    let mut domain_versions = Vec::new();
    let mut unregistered = Vec::new();
    for d in &domains {
        domain_versions.extend(store.list_domain_versions(&d.name).await?);
        unregistered.extend(store.list_unregistered(&d.name).await?);
    }
    let mut audit = store.list_audit(usize::MAX).await?;
    audit.reverse();
    Ok(RegistryExport {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: Some(Utc::now()),
        domains,
        domain_versions,
        suspensions: store.list_suspensions().await?,
        applications: store.list_applications().await?,
        change_requests: store.list_change_requests().await?,
        server_suspensions: store.list_server_suspensions().await?,
        unregistered,
        audit,
        listings: store.list_listings().await?,
    })
}

//! Suspension of one server address (a compromised server hosting several
//! agencies' domains): on record in the store, in the snapshot for the
//! SMTP policy.

use std::net::IpAddr;

use chrono::Utc;

use super::{Registry, RegistryError, RestoreRequest, check_text};
use crate::model::domains::DomainStatus;
use crate::model::servers::ServerSuspension;
use crate::store::StoreError;

/// IPv4-mapped IPv6 (dual-stack sockets) compares as IPv4, as in the policy.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Registry {
    /// Suspends a server address; the domains registered with it are named
    /// in the record. Refused when no live domain has it.
    pub async fn suspend_server(
        &self,
        address: IpAddr,
        reason: &str,
        actor: &str,
    ) -> Result<ServerSuspension, RegistryError> {
        if reason.trim().is_empty() {
            return Err(RegistryError::Invalid("a reason is required".into()));
        }
        check_text("reason", reason, 1000)?;
        let address = canonical(address);
        let _g = self.lock().await;
        let domains: Vec<_> = self
            .list()
            .into_iter()
            .filter(|d| d.status != DomainStatus::Disconnected)
            .filter(|d| d.servers.iter().any(|n| n.contains(&address)))
            .map(|d| d.name.clone())
            .collect();
        if domains.is_empty() {
            return Err(RegistryError::NotFound(format!(
                "a domain with server {address}"
            )));
        }
        let rec = ServerSuspension {
            id: 0,
            address,
            reason: reason.trim().to_string(),
            actor: actor.to_string(),
            started_at: Utc::now(),
            domains,
            restored: None,
        };
        let rec = match self.store.start_server_suspension(&rec).await {
            Err(StoreError::Conflict(m)) => return Err(RegistryError::State(m)),
            r => r?,
        };
        self.reload().await?;
        Ok(rec)
    }

    /// Ends the active suspension of a server address.
    pub async fn restore_server(
        &self,
        address: IpAddr,
        r: RestoreRequest,
    ) -> Result<ServerSuspension, RegistryError> {
        let address = canonical(address);
        let _g = self.lock().await;
        let rec = match self
            .store
            .end_server_suspension(address, &r.restoration())
            .await
        {
            Err(StoreError::NotFound(m)) => return Err(RegistryError::NotFound(m)),
            r => r?,
        };
        self.reload().await?;
        Ok(rec)
    }

    /// Every server suspension; only active ones unless `history`.
    pub async fn server_suspensions(
        &self,
        history: bool,
    ) -> Result<Vec<ServerSuspension>, RegistryError> {
        let mut all = self.store.list_server_suspensions().await?;
        if !history {
            all.retain(|s| s.is_active());
        }
        Ok(all)
    }
}

//! A server address's suspension with its effects, in one place: the
//! record (451 at MAIL FROM from the address, whichever domain), the
//! address's queued outbound mail held and, on restore, released; notices
//! to the contacts of every domain registered with it.

use std::net::IpAddr;

use super::Governor;
use crate::model::servers::ServerSuspension;
use crate::notify::contacts::{NoticeOutcome, notify_contacts};
use crate::registry::{RegistryError, RestoreRequest};

/// Why a server suspension or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Holding or releasing the queued mail failed (the record stands).
    #[error(transparent)]
    Queue(#[from] ugem_queue::QueueError),
}

/// What a suspension or restore did.
#[derive(Debug, serde::Serialize)]
pub struct ServerOutcome {
    /// The suspension record.
    pub suspension: ServerSuspension,
    /// Messages held (suspend) or released (restore).
    pub messages: usize,
    /// The notices, one per domain.
    pub notices: Vec<NoticeOutcome>,
}

/// The hold reason of a server's mail: also how restore finds it.
fn hold_reason(ip: IpAddr) -> String {
    format!("server {ip} suspended")
}

/// Queued outbound mail that came from `ip`.
fn from_server(ip: IpAddr) -> impl Fn(&ugem_queue::Envelope) -> bool + Send + 'static {
    move |e| {
        e.direction == ugem_queue::Direction::Outbound
            && e.client_ip.map(crate::registry::servers::canonical) == Some(ip)
    }
}

impl Governor {
    /// Suspends a server address: refused at MAIL FROM, its queued mail
    /// held, the contacts of its domains told.
    pub async fn suspend_server(
        &self,
        address: IpAddr,
        reason: &str,
        actor: &str,
    ) -> Result<ServerOutcome, ServerError> {
        let s = self.registry.suspend_server(address, reason, actor).await?;
        let ip = s.address;
        let held = self
            .queue
            .hold_where(
                format!("{}: {}", hold_reason(ip), s.reason),
                from_server(ip),
            )
            .await?;
        tracing::warn!(server = %ip, domains = s.domains.len(), held, actor, "server suspended");
        let mut notices = Vec::new();
        for d in &s.domains {
            if let Some(rec) = self.registry.get(d) {
                let text =
                    crate::notify::lifecycle::server_suspended(&self.cfg.current(), &rec, &s, held);
                notices.push(
                    notify_contacts(
                        &self.queue,
                        &self.registry,
                        &self.cfg.current(),
                        &rec.contacts,
                        text,
                    )
                    .await,
                );
            }
        }
        Ok(ServerOutcome {
            suspension: s,
            messages: held,
            notices,
        })
    }

    /// Ends a server address's suspension: its held mail released, the
    /// contacts told.
    pub async fn restore_server(
        &self,
        address: IpAddr,
        req: RestoreRequest,
    ) -> Result<ServerOutcome, ServerError> {
        let s = self.registry.restore_server(address, req).await?;
        let ip = s.address;
        let prefix = hold_reason(ip);
        let from = from_server(ip);
        let released = self
            .queue
            .release_where(move |e| {
                from(e) && e.held.as_deref().is_some_and(|h| h.starts_with(&prefix))
            })
            .await?;
        tracing::info!(server = %ip, released, "server restored");
        let mut notices = Vec::new();
        for d in &s.domains {
            if let Some(rec) = self.registry.get(d) {
                let text = crate::notify::lifecycle::server_restored(
                    &self.cfg.current(),
                    &rec,
                    &s,
                    released,
                );
                notices.push(
                    notify_contacts(
                        &self.queue,
                        &self.registry,
                        &self.cfg.current(),
                        &rec.contacts,
                        text,
                    )
                    .await,
                );
            }
        }
        Ok(ServerOutcome {
            suspension: s,
            messages: released,
            notices,
        })
    }
}

//! The local copy of the last registry read from a shared store: saved to
//! the node's own redb after every reload that changed it, and the
//! snapshot a node starts from when PostgreSQL is down at its start
//! (fail-static across a restart). Staff changes stay refused meanwhile:
//! they need the store, which says so itself.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, Snapshot};
use crate::model::domains::DomainRecord;
use crate::model::servers::ServerSuspension;
use crate::model::suspensions::SuspensionRecord;
use crate::store::LocalStore;

/// How often an unchanged copy's time is moved on (a lazy write).
const CONFIRM_EVERY_MS: u64 = 60_000;

/// What the copy holds, in a fixed order so that equal content encodes
/// (and hashes) the same.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Content {
    domains: Vec<DomainRecord>,
    suspensions: Vec<SuspensionRecord>,
    servers: Vec<ServerSuspension>,
}

impl Content {
    /// The content of a store read (active suspensions only).
    pub(super) fn new(
        mut domains: Vec<DomainRecord>,
        mut suspensions: Vec<SuspensionRecord>,
        mut servers: Vec<ServerSuspension>,
    ) -> Content {
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        suspensions.sort_by_key(|s| s.id);
        servers.sort_by_key(|s| s.address);
        Content {
            domains,
            suspensions,
            servers,
        }
    }

    /// The snapshot it makes (before the outbox overlay).
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            domains: self
                .domains
                .iter()
                .map(|d| (d.name.clone(), std::sync::Arc::new(d.clone())))
                .collect(),
            suspensions: self
                .suspensions
                .iter()
                .map(|s| (s.scope.clone(), std::sync::Arc::new(s.clone())))
                .collect(),
            servers: self
                .servers
                .iter()
                .map(|s| (s.address, std::sync::Arc::new(s.clone())))
                .collect(),
        }
    }
}

/// Since when, and as of when, this node serves the local copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnLocalCopy {
    /// When the shared store last showed the copy's content.
    pub as_of: DateTime<Utc>,
    /// When this node started serving it.
    pub since: DateTime<Utc>,
}

/// The copy as the registry keeps it.
#[derive(Debug)]
pub(super) struct LocalCopy {
    local: LocalStore,
    /// Hash of the content saved last, and when its time was last moved.
    saved: Mutex<Option<(u64, u64)>>,
    /// Set while the snapshot is the copy's, not the store's.
    serving: Mutex<Option<OnLocalCopy>>,
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same bytes hash the same for the process's life,
    // which is all a comparison with the last save needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl LocalCopy {
    pub(super) fn new(local: LocalStore) -> LocalCopy {
        LocalCopy {
            local,
            saved: Mutex::new(None),
            serving: Mutex::new(None),
        }
    }

    /// Saves `content` read from the store now, unless the copy already
    /// holds it (then only its time moves, at most once a minute).
    pub(super) async fn save(&self, content: &Content) {
        // The store answered: the snapshot is the store's again.
        if self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
        {
            crate::metrics::set_store_local_copy_since(None);
        }
        let bytes = match serde_json::to_vec(content) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the registry's local copy");
                return;
            }
        };
        let h = hash(&bytes);
        let now = crate::store::now_ms();
        let last = *self.saved.lock().unwrap_or_else(|p| p.into_inner());
        let local = self.local.clone();
        let r = match last {
            Some((lh, at)) if lh == h && now.saturating_sub(at) < CONFIRM_EVERY_MS => return,
            Some((lh, _)) if lh == h => {
                tokio::task::spawn_blocking(move || local.confirm_registry_copy(now)).await
            }
            _ => tokio::task::spawn_blocking(move || local.save_registry_copy(&bytes, now)).await,
        };
        match r {
            Ok(Ok(())) => *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some((h, now)),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the registry's local copy"),
            Err(e) => tracing::warn!(error = %e, "cannot save the registry's local copy"),
        }
    }
}

impl Registry {
    /// Opens the registry from the local copy of `local` when the shared
    /// `store` cannot be reached at start: the snapshot is the copy's (with
    /// the outbox overlay) until a [`Registry::refresh`] succeeds. `None`
    /// when this node never saved one (it knows no domain).
    pub async fn open_from_copy(
        store: std::sync::Arc<dyn crate::store::RegistryStore>,
        local: LocalStore,
    ) -> Result<Option<Registry>, RegistryError> {
        let l = local.clone();
        let saved = tokio::task::spawn_blocking(move || l.load_registry_copy())
            .await
            .map_err(|e| {
                RegistryError::Store(crate::store::StoreError::Backend(e.to_string()))
            })??;
        let Some(saved) = saved else { return Ok(None) };
        let content: Content = serde_json::from_slice(&saved.content).map_err(|e| {
            crate::store::StoreError::Decode {
                table: "registry_copy",
                key: "content".into(),
                detail: e.to_string(),
            }
        })?;
        let r = Registry::build(store, super::outbox::Outbox::new(local.clone())?, local);
        let copy = r.copy.as_ref().expect("built with a copy");
        *copy.saved.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((hash(&saved.content), saved.as_of_ms));
        let now = Utc::now();
        let on = OnLocalCopy {
            as_of: DateTime::from_timestamp_millis(saved.as_of_ms as i64).unwrap_or(now),
            since: now,
        };
        *copy.serving.lock().unwrap_or_else(|p| p.into_inner()) = Some(on);
        crate::metrics::set_store_local_copy_since(Some(now.timestamp()));
        let mut snap = content.snapshot();
        r.overlay(&mut snap);
        r.publish(snap);
        Ok(Some(r))
    }

    /// Set while this node serves the local copy (the shared store has not
    /// answered since the start).
    pub fn on_local_copy(&self) -> Option<OnLocalCopy> {
        *self
            .copy
            .as_ref()?
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::registry::outbox::tests::Flaky;
    use crate::registry::{NewDomain, SuspendRequest};

    fn domain(name: &str) -> NewDomain {
        NewDomain {
            name: crate::domain::Domain::parse(name).unwrap(),
            owner: "Agency".into(),
            servers: vec!["192.0.2.10/32".parse().unwrap()],
            contacts: vec![crate::registry::parse_contact("IT <it@agency.example.kz>").unwrap()],
            inbound: None,
            shared_servers: true,
        }
    }

    #[tokio::test]
    async fn a_registry_opened_from_the_copy_is_the_last_one_read_until_the_store_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (local, redb) = crate::store::open(dir.path()).unwrap();
        let store = Arc::new(Flaky {
            inner: redb,
            down: AtomicBool::new(false),
        });
        let r = Registry::open_with_outbox(store.clone(), local.clone())
            .await
            .unwrap();
        r.add_domain(domain("open.example.kz")).await.unwrap();
        r.add_domain(domain("held.example.kz")).await.unwrap();
        let held = crate::domain::Domain::parse("held.example.kz").unwrap();
        r.suspend_domain(&held, SuspendRequest::manual("staff", "audit"))
            .await
            .unwrap();
        let saved = local.load_registry_copy().unwrap().unwrap();
        // The same content read again is not written again.
        r.refresh().await.unwrap();
        assert_eq!(local.load_registry_copy().unwrap().unwrap(), saved);
        drop(r);

        store.down.store(true, Ordering::SeqCst);
        assert!(
            Registry::open_with_outbox(store.clone(), local.clone())
                .await
                .is_err()
        );
        let r = Registry::open_from_copy(store.clone(), local.clone())
            .await
            .unwrap()
            .expect("a copy");
        let snap = r.snapshot();
        assert_eq!(snap.len(), 2);
        assert!(
            snap.suspension(&crate::model::suspensions::Scope::Domain(held.clone()))
                .is_some()
        );
        let on = r.on_local_copy().expect("on the copy");
        assert_eq!(on.as_of.timestamp_millis() as u64, saved.as_of_ms);
        // Staff changes need the store.
        assert!(matches!(
            r.add_domain(domain("new.example.kz")).await,
            Err(RegistryError::Store(crate::store::StoreError::Unavailable(
                _
            )))
        ));
        assert!(r.refresh().await.is_err());
        assert!(r.on_local_copy().is_some());

        store.down.store(false, Ordering::SeqCst);
        r.refresh().await.unwrap();
        assert_eq!(r.on_local_copy(), None);
    }

    #[tokio::test]
    async fn a_node_that_never_read_the_store_has_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (local, redb) = crate::store::open(dir.path()).unwrap();
        let store = Arc::new(Flaky {
            inner: redb,
            down: AtomicBool::new(true),
        });
        assert!(
            Registry::open_from_copy(store, local)
                .await
                .unwrap()
                .is_none()
        );
    }
}

//! Notices whose outgoing number the shared store (PostgreSQL) could not
//! give: kept in the node's outbox as [`Deferred`], numbered and queued
//! when it answers; and the task that drains the outbox
//! ([`crate::registry::Registry::drain_outbox`]) with its backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::notices::Text;
use crate::config::Live;
use crate::model::language::Lang;
use crate::registry::outbox::KeptNotices;
use crate::registry::{Registry, RegistryError};
use crate::store::StoreError;

/// First pause after the store failed a drain; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// Longest pause between tries: the backlog starts draining at most this
/// long after PostgreSQL answers again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A check of the outbox this often even without a new write (a write an
/// earlier run left, a wake-up missed).
const IDLE: Duration = Duration::from_secs(30);

/// A notice as the outbox keeps it until it can be numbered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deferred {
    /// Its recipients.
    pub to: Vec<String>,
    /// The template's name.
    pub name: String,
    /// The template's values.
    pub vars: serde_json::Value,
    /// The recipients' languages.
    #[serde(default)]
    pub languages: Vec<Lang>,
    /// Part templates rendered into it.
    #[serde(default)]
    pub parts: Vec<String>,
}

/// Why a kept notice cannot be written again.
#[derive(Debug, thiserror::Error)]
pub enum DeferredError {
    /// It names a template this build does not have.
    #[error("the kept notice names an unknown template {0:?}")]
    UnknownTemplate(String),
    /// It is not a kept notice.
    #[error("the kept notice cannot be read: {0}")]
    Decode(#[from] serde_json::Error),
}

impl Deferred {
    /// `text` to `to`, kept.
    pub fn new(to: &[String], text: &Text) -> Deferred {
        Deferred {
            to: to.to_vec(),
            name: text.name.to_string(),
            vars: text.vars.clone(),
            languages: text.languages.clone(),
            parts: text.parts.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The notice again (its template names are this build's own).
    pub fn text(&self) -> Result<Text, DeferredError> {
        let known = |n: &str| {
            super::templates::names()
                .find(|k| *k == n)
                .ok_or_else(|| DeferredError::UnknownTemplate(n.to_string()))
        };
        let mut parts = Vec::new();
        for p in &self.parts {
            parts.push(known(p)?);
        }
        Ok(Text {
            name: known(&self.name)?,
            vars: self.vars.clone(),
            languages: self.languages.clone(),
            parts,
        })
    }
}

/// The kept notices' way into the queue.
struct Notices<'a> {
    registry: &'a Registry,
    queue: &'a ugem_queue::Queue,
    live: &'a Live,
}

#[async_trait::async_trait]
impl KeptNotices for Notices<'_> {
    async fn queue(&self, notice: &serde_json::Value) -> Result<(), StoreError> {
        let d: Deferred = serde_json::from_value(notice.clone())
            .map_err(|e| StoreError::Backend(DeferredError::from(e).to_string()))?;
        let text = d.text().map_err(|e| StoreError::Backend(e.to_string()))?;
        let cfg = self.live.current();
        match super::mail::enqueue_numbered(self.queue, self.registry, &cfg, &d.to, &text).await {
            Ok((id, number)) => {
                tracing::info!(queue_id = %id, number, notice = text.name, "kept notice queued");
                Ok(())
            }
            Err(super::NotifyError::Number(RegistryError::Store(e))) => Err(e),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        }
    }
}

/// Drains the registry's outbox into the shared store until `stop` turns
/// true: at once on every new write, again with a growing pause while the
/// store stays out of reach.
pub async fn drain(
    registry: Arc<Registry>,
    queue: ugem_queue::Queue,
    live: Live,
    mut stop: watch::Receiver<bool>,
) {
    let Some(wake) = registry.outbox_wake() else {
        return;
    };
    let mut backoff = MIN_BACKOFF;
    let mut failing_since: Option<Instant> = None;
    loop {
        if registry.pending_writes() == 0 {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE) => {}
                _ = crate::shutdown::stopped(&mut stop) => return,
            }
            continue;
        }
        let before = registry.pending_writes();
        let started = Instant::now();
        let notices = Notices {
            registry: &registry,
            queue: &queue,
            live: &live,
        };
        match registry.drain_outbox(&notices).await {
            Ok(n) => {
                let down = failing_since.take().map(|t| t.elapsed().as_millis() as u64);
                tracing::info!(
                    written = n,
                    waited = before,
                    drain_ms = started.elapsed().as_millis() as u64,
                    retried_ms = down,
                    "local outbox written to the shared store"
                );
                backoff = MIN_BACKOFF;
            }
            Err(e) => {
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::warn!(pending = registry.pending_writes(), error = %e, "shared store still out of reach; the local outbox waits");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = crate::shutdown::stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_notice_is_the_same_notice_again() {
        let text = Text::new("scope_suspended", serde_json::json!({"scope": "a@b.kz"}))
            .in_languages(&[Lang::Ru])
            .with_part("governor_advice");
        let kept = Deferred::new(&["it@b.kz".to_string()], &text);
        let back: Deferred = serde_json::from_value(serde_json::to_value(&kept).unwrap()).unwrap();
        assert_eq!(back.text().unwrap(), text);
        let mut odd = kept.clone();
        odd.name = "no_such_template".into();
        assert!(matches!(
            odd.text(),
            Err(DeferredError::UnknownTemplate(n)) if n == "no_such_template"
        ));
    }
}

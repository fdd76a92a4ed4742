//! One home for what a suspension and a restore do, whoever decides them
//! (the governor, an expiry, staff through the API): the record in the
//! registry, the scope's queued outbound mail held (or released or
//! deleted), the notices to the contacts and the postmaster, the webhooks.

use crate::model::audit::{AUTO, AuditRecord};
use crate::model::domains::DomainRecord;
use crate::model::suspensions::{Scope, SuspensionRecord};
use crate::registry::{RegistryError, RestoreRequest, SuspendRequest};

use super::{Governor, actions};

/// What ending a suspension did.
#[derive(Debug)]
pub struct Restored {
    /// The suspension that ended, as now on record.
    pub ended: Option<SuspensionRecord>,
    /// For a domain, its record after the restore.
    pub domain: Option<DomainRecord>,
    /// Held messages released (or deleted).
    pub messages: usize,
}

impl Governor {
    /// Suspends `scope` and carries out every effect; returns the record and
    /// how many queued messages were held.
    pub async fn suspend_scope(
        &self,
        scope: &Scope,
        req: SuspendRequest,
    ) -> Result<(SuspensionRecord, usize), RegistryError> {
        let before = self.registry.scope_state(scope);
        let rec = match scope {
            Scope::Domain(d) => self.registry.suspend_domain(d, req).await?,
            Scope::Sender(s) => self.registry.suspend_sender(s, req).await?,
        };
        // The scheduler also holds what it finds of a suspended scope, so a
        // failure here delays nothing for long; it is logged, not fatal.
        let held = actions::hold_scope_mail(
            &self.queue,
            scope,
            &format!("{scope} suspended: {}", rec.reason),
        )
        .await
        .unwrap_or_else(|e| {
            tracing::error!(scope = %scope, error = %e, "cannot hold the suspended scope's mail");
            0
        });
        tracing::warn!(scope = %scope, rule = %rec.rule, actor = %rec.actor, held, id = rec.id, "suspended");
        // Staff actions are audited by the admin API; the governor's own here.
        if rec.actor == AUTO {
            let mut after = self.registry.scope_state(scope);
            after["rule"] = rec.rule.clone().into();
            after["expires_at"] = serde_json::to_value(rec.expires_at).unwrap_or_default();
            after["evidence"] = rec.evidence.clone();
            let audit = AuditRecord::auto(
                rec.started_at,
                &action(scope, "suspend"),
                &target(scope),
                &rec.reason,
            )
            .change(before, after);
            self.registry.audit(audit).await;
        }
        self.on_suspended(&rec, held).await;
        Ok((rec, held))
    }

    /// Ends the suspension of `scope` and carries out every effect: its held
    /// mail released (`release`) or deleted, the notices.
    pub async fn restore_scope(
        &self,
        scope: &Scope,
        req: RestoreRequest,
        release: bool,
    ) -> Result<Restored, RegistryError> {
        let before = self.registry.scope_state(scope);
        let auto = (req.actor == AUTO).then(|| req.reason.clone().unwrap_or_default());
        let (ended, domain) = match scope {
            Scope::Domain(d) => {
                let active = self.registry.snapshot().suspension(scope).cloned();
                let how = crate::model::suspensions::Restoration {
                    by: req.actor.clone(),
                    at: chrono::Utc::now(),
                    reason: req.reason.clone(),
                    held_mail: req.held_mail.clone(),
                };
                let rec = self.registry.restore_domain(d, req).await?;
                let ended = match active {
                    Some(a) => match self.registry.suspension(a.id).await.ok().flatten() {
                        Some(e) => Some(e),
                        // Ended while the store is out of reach: as this node knows it.
                        None if crate::store::local::outbox::is_provisional(a.id)
                            || self.registry.pending_writes() > 0 =>
                        {
                            let mut e = (*a).clone();
                            e.restored = Some(how);
                            Some(e)
                        }
                        None => None,
                    },
                    None => None,
                };
                (ended, Some(rec))
            }
            Scope::Sender(a) => (Some(self.registry.restore_sender(a, req).await?), None),
        };
        let messages = actions::release_scope_mail(&self.queue, scope, release)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(scope = %scope, error = %e, "cannot release the restored scope's mail");
                0
            });
        tracing::info!(scope = %scope, messages, release, "restored");
        if let Some(reason) = auto {
            let at = ended
                .as_ref()
                .and_then(|e| e.restored.as_ref().map(|r| r.at))
                .unwrap_or_else(chrono::Utc::now);
            let mut after = self.registry.scope_state(scope);
            after["held_mail"] = if release { "released" } else { "deleted" }.into();
            let audit = AuditRecord::auto(at, &action(scope, "restore"), &target(scope), &reason)
                .change(before, after);
            self.registry.audit(audit).await;
        }
        // The contacts and webhooks hear of the restore like of the suspension.
        if let Some(e) = &ended {
            self.on_restored(e).await;
        }
        Ok(Restored {
            ended,
            domain,
            messages,
        })
    }
}

/// The audit action of `verb` on `scope`, as the admin API names it
/// (`domain.suspend`, `sender.restore`).
fn action(scope: &Scope, verb: &str) -> String {
    match scope {
        Scope::Domain(_) => format!("domain.{verb}"),
        Scope::Sender(_) => format!("sender.{verb}"),
    }
}

/// The audit target of `scope`: the domain or the address.
fn target(scope: &Scope) -> String {
    match scope {
        Scope::Domain(d) => d.to_string(),
        Scope::Sender(s) => s.clone(),
    }
}

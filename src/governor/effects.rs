//! What decisions do, off the hot path: ladder steps become notices,
//! webhooks and suspensions (store, held mail); expiries lift them.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::domain::Domain;
use crate::model::suspensions::{Scope, SuspensionRecord};
use crate::registry::{RestoreRequest, SuspendRequest};

use super::clock::utc;
use super::detector::Trip;
use super::settings::Step;
use super::{Counters, Event, Governor, key, notices};

impl Governor {
    /// A rule tripped for `scope`: the step to take (`forced`, or the next
    /// on the ladder once `step_interval` has passed) goes to the
    /// background task, with the steps that led there in its evidence.
    pub(crate) fn decide(
        &self,
        scope: Scope,
        domain: &Domain,
        mut trip: Trip,
        forced: Option<Step>,
        now: u64,
    ) {
        let snap = self.registry.snapshot();
        if snap.suspension(&scope).is_some()
            || snap.suspension(&Scope::Domain(domain.clone())).is_some()
        {
            return;
        }
        let cfg = self.cfg();
        let g = &cfg.governor;
        let k = key(&scope);
        let sk = self.keyer.key(&k);
        let step = {
            let mut shard = self.scopes.shard(sk);
            let (t, _) = self.tracked(&mut shard, sk, now, || k.clone());
            t.dirty = true;
            let step = match forced {
                Some(s) => {
                    if let Some(i) = g.ladder.iter().position(|x| *x == s) {
                        t.ladder.next = t.ladder.next.max(i + 1);
                    }
                    Some(s)
                }
                None => t
                    .ladder
                    .climb(&g.ladder, g.step_interval.0.as_millis() as u64, now),
            };
            let Some(step) = step else {
                return;
            };
            // A suspension on its way to the registry is not made twice by
            // the RCPTs that arrive meanwhile.
            if step == Step::Suspend
                && t.ladder.history.last().is_some_and(|h| {
                    h.step == Step::Suspend && now.saturating_sub(h.at_ms) < 60_000
                })
            {
                return;
            }
            t.ladder.record(step, trip.rule, now);
            if step == Step::Throttle {
                t.throttled_until_ms = now + g.throttle_duration.0.as_millis() as u64;
            }
            if let Some(o) = trip.evidence.as_object_mut() {
                o.insert(
                    "steps".into(),
                    serde_json::to_value(&t.ladder.history).unwrap_or_default(),
                );
                // The last hour in 5-minute buckets: the chart of the trip.
                o.insert("series".into(), t.stats.series.to_json(now));
            }
            step
        };
        tracing::warn!(scope = %scope, rule = trip.rule, step = step.as_str(), summary = %trip.summary, "governor decision");
        // The other nodes copy the step: a throttle holds there too, and a
        // suspension on its way is not started twice.
        self.tell_peers(|| super::cluster::Obs::Step {
            scope: k.clone(),
            d: domain.to_string(),
            step,
            rule: trip.rule.to_string(),
        });
        let _ = self.events.send(Event::Step {
            scope,
            domain: domain.clone(),
            step,
            trip,
            at_ms: now,
        });
    }

    /// The decisions' receiver, for a caller that handles them itself (a
    /// replay); `run` then has nothing to do but housekeeping.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.events_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Runs the decisions and the housekeeping until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self.take_events() else {
            return;
        };
        let cfg = self.cfg();
        let g = &cfg.governor;
        let sender = self.webhooks.spawn_sender(
            g.webhook_attempts,
            g.webhook_timeout.0,
            crate::trust::all_certs(self.cfg().delivery.tls_ca_file.as_deref()),
            stop.clone(),
        );
        let blocklists = tokio::spawn(self.clone().watch_blocklists(stop.clone()));
        let every = g.housekeeping_interval.0;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev).await,
                    None => break,
                },
                _ = tick.tick() => self.housekeeping().await,
                _ = crate::shutdown::stopped(&mut stop) => break,
            }
        }
        self.save(true).await;
        // Pending webhook events stay in the outbox for the next start.
        sender.abort();
        blocklists.abort();
    }

    /// Carries out one decision.
    pub async fn handle(&self, ev: Event) {
        let (scope, domain, step, trip, at_ms) = match ev {
            Event::Step {
                scope,
                domain,
                step,
                trip,
                at_ms,
            } => (scope, domain, step, trip, at_ms),
            Event::GatewayListed {
                address,
                reply,
                domain,
                at_ms,
            } => {
                let day = utc(at_ms).format("%Y-%m-%d");
                let whose = domain.as_ref().map(|d| d.as_str());
                // Kept for the listings report (one open record per address and list).
                let listing = crate::registry::listings::from_refusal(
                    address,
                    &reply,
                    domain.as_ref().map(|d| d.as_str()),
                    utc(at_ms),
                );
                if let Err(e) = self.registry.record_listing(&listing).await {
                    tracing::warn!(error = %e, %address, "gateway listing not recorded");
                }
                let text = notices::gateway_listed(&self.cfg(), address, &reply, whose);
                self.notify(None, &format!("listed|{address}|{day}"), text)
                    .await;
                self.webhooks.send(
                    &self.cfg().governor.webhooks,
                    serde_json::json!({
                        "event": "gateway_listed",
                        "gateway": self.cfg().server.hostname.to_string(),
                        "address": address,
                        "reply": reply,
                        "domain": domain,
                        "at": utc(at_ms),
                    }),
                );
                return;
            }
        };
        match step {
            Step::Warn | Step::Throttle => {
                Counters::bump(if step == Step::Warn {
                    &self.counters.warnings
                } else {
                    &self.counters.throttles
                });
                let day = utc(at_ms).format("%Y-%m-%d");
                let dedup = format!("{}|{}|{day}", step.as_str(), key(&scope));
                let text = notices::early_step(&self.cfg(), &scope, step, &trip);
                self.notify(Some(&domain), &dedup, text).await;
                self.webhooks.send(
                    &self.cfg().governor.webhooks,
                    serde_json::json!({
                        "event": step.as_str(),
                        "gateway": self.cfg().server.hostname.to_string(),
                        "scope": scope,
                        "rule": trip.rule,
                        "reason": trip.summary,
                        "evidence": trip.evidence,
                        "at": utc(at_ms),
                    }),
                );
            }
            Step::Suspend => {
                let made = self
                    .suspend(&scope, trip.rule, &trip.summary, trip.evidence, at_ms)
                    .await;
                // Enough suspended senders take their domain with them.
                if made.is_some() && matches!(scope, Scope::Sender(_)) {
                    self.maybe_suspend_domain(&domain, at_ms).await;
                }
            }
        }
    }

    /// Suspends a scope automatically, holds its mail and notifies.
    async fn suspend(
        &self,
        scope: &Scope,
        rule: &str,
        reason: &str,
        evidence: serde_json::Value,
        at_ms: u64,
    ) -> Option<SuspensionRecord> {
        let expires_at = self
            .cfg()
            .governor
            .expiry_for(rule)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| utc(at_ms) + d);
        let req = SuspendRequest {
            actor: "auto".into(),
            rule: rule.into(),
            // The reason appears in 451 replies: keep them well under 512 octets.
            reason: reason.chars().take(300).collect(),
            evidence,
            expires_at,
        };
        let rec = match self.suspend_scope(scope, req).await {
            Ok((rec, _)) => rec,
            Err(e) => {
                tracing::info!(scope = %scope, error = %e, "automatic suspension not made");
                return None;
            }
        };
        Counters::bump(match scope {
            Scope::Domain(_) => &self.counters.domain_suspensions,
            Scope::Sender(_) => &self.counters.sender_suspensions,
        });
        Some(rec)
    }

    /// A suspension began (automatic or by staff): notifies the contacts,
    /// the postmaster and the webhooks, once per suspension.
    pub async fn on_suspended(&self, rec: &SuspensionRecord, held: usize) {
        let domain = match &rec.scope {
            Scope::Domain(d) => Some(d.clone()),
            Scope::Sender(s) => s.rsplit_once('@').and_then(|(_, d)| Domain::parse(d).ok()),
        };
        if let Some(d) = &domain {
            let text = notices::suspended(&self.cfg(), rec);
            self.notify(Some(d), &format!("suspend|{}", rec.id), text)
                .await;
        }
        self.webhooks.send(
            &self.cfg().governor.webhooks,
            self.event_json("suspend", rec, Some(held)),
        );
    }

    async fn maybe_suspend_domain(&self, domain: &Domain, at_ms: u64) {
        let need = self.cfg().governor.domain_after_senders;
        if need == 0 {
            return;
        }
        let suffix = format!("@{domain}");
        let snap = self.registry.snapshot();
        let senders: Vec<serde_json::Value> = snap
            .active_suspensions()
            .filter(|s| s.actor == "auto")
            .filter_map(|s| match &s.scope {
                Scope::Sender(a) if a.ends_with(&suffix) => {
                    Some(serde_json::json!({"sender": a, "rule": s.rule, "suspension": s.id}))
                }
                _ => None,
            })
            .collect();
        if (senders.len() as u32) < need {
            return;
        }
        let reason = format!(
            "{} senders of {domain} were suspended automatically (limit {need}): more than \
             one account is affected",
            senders.len()
        );
        let evidence = serde_json::json!({
            "rule": "senders_suspended",
            "scope": format!("domain {domain}"),
            "suspended_senders": senders,
            "limit": need,
        });
        let _ = self.events.send(Event::Step {
            scope: Scope::Domain(domain.clone()),
            domain: domain.clone(),
            step: Step::Suspend,
            trip: Trip {
                rule: "senders_suspended",
                summary: reason,
                evidence,
            },
            at_ms,
        });
    }

    fn event_json(
        &self,
        event: &str,
        rec: &SuspensionRecord,
        held: Option<usize>,
    ) -> serde_json::Value {
        serde_json::json!({
            "event": event,
            "gateway": self.cfg().server.hostname.to_string(),
            "suspension": rec,
            "scope": rec.scope,
            "rule": rec.rule,
            "reason": rec.reason,
            "evidence": rec.evidence,
            "actor": rec.actor,
            "held_messages": held,
            "at": utc(self.now_ms()),
        })
    }

    /// Queues a notice to the postmaster and, with a domain, its contacts;
    /// at most once per `dedup` key.
    pub(super) async fn notify(
        &self,
        domain: Option<&Domain>,
        dedup: &str,
        text: crate::notify::notices::Text,
    ) {
        // A store that cannot answer must not silence the notice.
        let fresh = self
            .registry
            .claim_notice(dedup, self.now_ms())
            .await
            .unwrap_or(true);
        if !fresh {
            Counters::bump(&self.counters.notices_deduplicated);
            return;
        }
        let mut to = Vec::new();
        let mut text = text;
        if let Some(rec) = domain.and_then(|d| self.registry.get(d)) {
            // In the domain's languages, whoever else reads it.
            text = text.for_domain(&rec);
            if self.cfg().governor.notify_contacts {
                to.extend(rec.contacts.iter().map(|c| c.email.clone()));
            }
        }
        to.push(self.cfg().server.postmaster.to_string());
        match crate::notify::enqueue_notice(&self.queue, &self.registry, &self.cfg(), &to, &text)
            .await
        {
            Ok((id, number)) => {
                Counters::bump(&self.counters.notices);
                tracing::info!(queue_id = %id, number, notice = text.name, "governor notice queued");
            }
            Err(e @ crate::notify::NotifyError::Deferred) => {
                tracing::info!(notice = text.name, "{e}")
            }
            Err(e) => tracing::error!(error = %e, "cannot queue the governor notice"),
        }
    }

    /// A suspension ended (staff or expiry): forget the recent traffic that
    /// led to it, drop any throttle, and notify the contacts and webhooks.
    pub async fn on_restored(&self, rec: &SuspensionRecord) {
        let sk = self.keyer.key(&key(&rec.scope));
        if let Some(t) = self.scopes.shard(sk).get_mut(&sk) {
            t.stats.reset_recent();
            t.ladder.reset();
            t.throttled_until_ms = 0;
            t.accountable_until_ms = 0;
            t.dirty = true;
        }
        let domain = match &rec.scope {
            Scope::Domain(d) => Some(d.clone()),
            Scope::Sender(s) => s.rsplit_once('@').and_then(|(_, d)| Domain::parse(d).ok()),
        };
        if let Some(d) = domain {
            let text = notices::restored(&self.cfg(), rec);
            self.notify(Some(&d), &format!("restore|{}", rec.id), text)
                .await;
        }
        self.webhooks.send(
            &self.cfg().governor.webhooks,
            self.event_json("restore", rec, None),
        );
    }

    /// Lifts the automatic suspensions whose time is up.
    pub(crate) async fn lift_expired(&self) {
        let now = utc(self.now_ms());
        let due: Vec<Arc<SuspensionRecord>> = self
            .registry
            .snapshot()
            .active_suspensions()
            .filter(|s| s.actor == "auto" && s.expires_at.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        for s in due {
            let req = RestoreRequest {
                actor: "auto".into(),
                reason: Some("the automatic suspension expired".into()),
                held_mail: "released".into(),
            };
            match self.restore_scope(&s.scope, req, true).await {
                Ok(r) => {
                    Counters::bump(&self.counters.expiries);
                    tracing::info!(scope = %s.scope, released = r.messages, "automatic suspension expired");
                }
                Err(e) => {
                    tracing::error!(scope = %s.scope, error = %e, "cannot lift an expired suspension")
                }
            }
        }
    }
}

//! Delivery results: the delivery rules of the message's sender and domain,
//! and the alarm when a receiver names a gateway address on a blocklist.

use std::net::IpAddr;

use crate::domain::Domain;
use crate::model::suspensions::Scope;
use crate::reply::{Fate, Outcome};

use super::classify::{self, OutcomeKind, Patterns};
use super::{Counters, Event, Excluded, Governor, Label, Listing, detector};

/// One recipient's delivery result, as the governor reads it.
#[derive(Debug, Clone, Copy)]
pub struct Result<'a> {
    /// The result as delivery typed it: fate, reply code, enhanced code, text.
    pub outcome: &'a Outcome,
    /// The recipient's first result (its outcome); a later one counts only
    /// as a refusal.
    pub first: bool,
}

impl Governor {
    /// Delivery results of one attempt of a queued message, each with the
    /// index of its recipient. `env` is the message before this attempt
    /// was recorded.
    pub fn observe_delivery(&self, env: &ugem_queue::Envelope, outcomes: &[(usize, Outcome)]) {
        self.deliveries
            .count(outcomes.iter().map(|(_, o)| &o.fate), self.now_ms());
        let results: Vec<Result<'_>> = outcomes
            .iter()
            .map(|(i, o)| Result {
                outcome: o,
                first: env.recipients.get(*i).is_none_or(|r| r.attempts == 0),
            })
            .collect();
        let outbound = env.direction == ugem_queue::Direction::Outbound;
        self.observe(&env.sender, env.domain.as_deref(), outbound, &results);
    }

    /// Delivery results of one attempt for mail of `sender`, relayed out for
    /// `domain` when `outbound`: feeds the delivery rules of both. Any mail
    /// (bounces and notices too) can show that a gateway address is listed.
    pub fn observe(
        &self,
        sender: &str,
        domain: Option<&str>,
        outbound: bool,
        results: &[Result<'_>],
    ) {
        if !self.enabled() {
            return;
        }
        let cfg = self.cfg();
        let g = &cfg.governor;
        let now = self.now_ms();
        let domain = domain.and_then(|d| Domain::parse(d).ok());
        let counted = domain.as_ref().filter(|_| outbound);
        let mut kinds: Vec<(OutcomeKind, bool)> = Vec::with_capacity(results.len());
        {
            let own = self.own.read().unwrap_or_else(|p| p.into_inner());
            let patterns = Patterns {
                spam: &g.spam_patterns,
                listing: &g.listing_patterns,
                own: &own,
            };
            for r in results {
                let kind = classify::classify(r.outcome, patterns);
                if kind == OutcomeKind::GatewayListed {
                    self.gateway_listed(&own, &r.outcome.text, domain.as_ref(), now);
                }
                // A later result counts only as a refusal; our own give-up
                // after the lifetime (Expired) is none.
                let refusal = r.outcome.fate == Fate::Permanent;
                if counted.is_some() && (r.first || refusal) {
                    kinds.push((kind, r.first));
                }
            }
        }
        let Some(domain) = counted else {
            return;
        };
        if kinds.is_empty() {
            return;
        }
        let sender = sender.to_ascii_lowercase();
        // The sender first: if it answers for the refusals, its domain
        // judges only what is left.
        let ks = self.keyer.sender(&sender);
        let kd = self.keyer.domain(domain.as_str());
        let (strip, accountable, windows) = {
            let mut shard = self.scopes.shard(ks);
            let (t, _) = self.tracked(&mut shard, ks, now, || format!("s:{sender}"));
            for &(k, first) in &kinds {
                if first {
                    t.stats.note_outcome(k, now);
                } else {
                    t.stats.note_refusal(k, now);
                }
            }
            t.dirty = true;
            let trip = detector::judge_outcomes(&t.stats, None, &Label(&t.name), now, g);
            let was = t.accountable_until_ms > now;
            if trip.is_some() {
                t.stats.last_trip_ms = now;
                t.accountable_until_ms = now + g.window.0.as_millis() as u64;
            }
            // What its domain leaves out once it starts answering for it.
            let w = (trip.is_some() && !was).then_some(Excluded {
                short: t.stats.short,
                hour: t.stats.hour,
                outcomes: t.stats.outcomes,
            });
            (trip, was, w)
        };
        // A sender that answers for its traffic from now on takes what it
        // sent so far out of its domain's; one that did already (or is
        // declared) keeps its new results out too.
        let just = windows.is_some();
        if let Some(w) = windows {
            self.exclude(kd, now, w);
        }
        let declared = self
            .registry
            .snapshot()
            .domain(domain)
            .is_some_and(|r| r.senders.contains_key(&sender));
        let dtrip = {
            let mut shard = self.scopes.shard(kd);
            let (t, _) = self.tracked(&mut shard, kd, now, || format!("d:{domain}"));
            let add_out = !just && (accountable || declared);
            for &(k, first) in &kinds {
                if first {
                    t.stats.note_outcome(k, now);
                } else {
                    t.stats.note_refusal(k, now);
                }
                if add_out {
                    t.excluded
                        .outcomes
                        .cur
                        .add(&detector::Counts::of_result(k, first));
                }
            }
            t.dirty = true;
            let trip = detector::judge_outcomes(
                &t.stats,
                Some(&t.excluded.outcomes),
                &Label(&t.name),
                now,
                g,
            );
            if trip.is_some() {
                t.stats.last_trip_ms = now;
            }
            trip
        };
        if let Some(trip) = strip {
            self.decide(Scope::Sender(sender), domain, trip, None, now);
        }
        if let Some(trip) = dtrip {
            self.decide(Scope::Domain(domain.clone()), domain, trip, None, now);
        }
    }

    /// Records a blocklist refusal naming a gateway address; the first of a
    /// burst goes on to the background task to alert the postmaster.
    fn gateway_listed(&self, own: &[IpAddr], reply: &str, domain: Option<&Domain>, now: u64) {
        // Provider wordings about the connecting address need not name it:
        // the connecting address is always one of ours.
        let address = classify::names_address(reply, own)
            .or_else(|| own.first().copied())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Counters::bump(&self.counters.gateway_listed);
        crate::metrics::gateway_listed();
        let fresh = {
            let mut l = self.listings.lock().unwrap_or_else(|p| p.into_inner());
            let e = l.entry(address).or_insert_with(|| Listing {
                address,
                reply: String::new(),
                domain: String::new(),
                refusals: 0,
                last_ms: 0,
            });
            // One event a minute per address at most; the notice is
            // deduplicated per day by the store anyway.
            let fresh = e.refusals == 0 || now.saturating_sub(e.last_ms) >= 60_000;
            e.reply = reply.chars().take(500).collect();
            e.domain = domain.map(|d| d.to_string()).unwrap_or_default();
            e.refusals += 1;
            e.last_ms = now;
            fresh
        };
        tracing::error!(address = %address, domain = ?domain.map(|d| d.as_str()), reply, "a gateway address is on a blocklist");
        if fresh {
            let _ = self.events.send(Event::GatewayListed {
                address,
                reply: reply.to_string(),
                domain: domain.cloned(),
                at_ms: now,
            });
        }
    }
}

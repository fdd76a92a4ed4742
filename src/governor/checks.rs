//! The checks on the SMTP path: connection, MAIL and RCPT. Memory only; a
//! decision goes to the background task as an [`Event`].
//!
//! At RCPT, for a registered agency's sender relaying out:
//! 1. a recipient the sender never wrote to is deferred (451) while the
//!    sender (or its domain) is throttled, or while a sender without any
//!    history is over its unproven allowance; each such address counts once
//!    as *tried*, and a throttled sender whose tried never-seen recipients
//!    pass `escalate_factor` times its allowance is suspended;
//! 2. the rate cells of the sender, then of its domain;
//! 3. the recipient is counted; one more never-seen recipient than the
//!    sender's novelty allowance throttles it (this one is deferred).

use crate::domain::Domain;
use crate::model::domains::{DomainLimits, SenderLimits};
use crate::model::suspensions::Scope;
use crate::registry::Snapshot;
use crate::reply::Reply;

use super::cluster::Obs;
use super::detector::{self, Allowance, Basis, Novelty};
use super::limits::{self, Cell, Rate};
use super::novelty::PairKind;
use super::scopes::ScopeKey;
use super::settings::{GovernorSection, Step};

use super::{Counters, Governor, Label};

/// The limits in force for one sender of one domain.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// Sender messages per minute.
    pub s_msg_min: Rate,
    /// Sender messages per hour.
    pub s_msg_hour: Rate,
    /// Sender recipients per minute.
    pub s_rcpt_min: Rate,
    /// Sender recipients per hour.
    pub s_rcpt_hour: Rate,
    /// Domain messages per hour.
    pub d_msg_hour: Rate,
    /// Domain recipients per hour.
    pub d_rcpt_hour: Rate,
    /// The sender's novelty floors (5 minutes, hour).
    pub floors: (u32, u32),
    /// The domain's novelty floors.
    pub dfloors: (u32, u32),
    /// A declared sender's recipients per hour (it is bounded by its rates,
    /// not judged on novelty).
    pub declared: Option<u32>,
}

impl Resolved {
    /// The `[governor]` defaults under the domain's and the sender's overrides.
    pub fn of(g: &GovernorSection, d: Option<&DomainLimits>, s: Option<&SenderLimits>) -> Resolved {
        let d = d.copied().unwrap_or_default();
        let hourly = |n: u32| Rate::per_hour(n, g.burst_percent);
        // A minute's cap is meant to be usable at once.
        let minutely = |n: u32| Rate::per_minute(n, 100);
        let pick = |own: Option<u32>, dom: Option<u32>, def: u32| own.or(dom).unwrap_or(def);
        // The declaration's rates, without copying its note.
        let own = |f: fn(&SenderLimits) -> Option<u32>| s.and_then(f);
        let s_rcpt_hour = pick(
            own(|x| x.recipients_per_hour),
            d.sender_recipients_per_hour,
            g.sender_recipients_per_hour,
        );
        let dom_hour = d
            .domain_new_recipients_hour
            .unwrap_or(g.domain_new_recipients_hour);
        Resolved {
            s_msg_min: minutely(pick(
                own(|x| x.messages_per_minute),
                d.sender_messages_per_minute,
                g.sender_messages_per_minute,
            )),
            s_msg_hour: hourly(pick(
                own(|x| x.messages_per_hour),
                d.sender_messages_per_hour,
                g.sender_messages_per_hour,
            )),
            s_rcpt_min: minutely(pick(
                own(|x| x.recipients_per_minute),
                d.sender_recipients_per_minute,
                g.sender_recipients_per_minute,
            )),
            s_rcpt_hour: hourly(s_rcpt_hour),
            d_msg_hour: hourly(d.messages_per_hour.unwrap_or(g.domain_messages_per_hour)),
            d_rcpt_hour: hourly(
                d.recipients_per_hour
                    .unwrap_or(g.domain_recipients_per_hour),
            ),
            floors: (
                d.new_recipients_5min.unwrap_or(g.new_recipients_5min),
                d.new_recipients_hour.unwrap_or(g.new_recipients_hour),
            ),
            dfloors: (
                // The 5-minute floor keeps the default's share of the hour's.
                (u64::from(dom_hour) * u64::from(g.domain_new_recipients_5min)
                    / u64::from(g.domain_new_recipients_hour.max(1)))
                .max(1) as u32,
                dom_hour,
            ),
            declared: s.map(|_| s_rcpt_hour),
        }
    }
}

/// What the MAIL and RCPT checks share.
pub(super) struct Subject {
    pub(super) now: u64,
    pub(super) r: Resolved,
    pub(super) kd: ScopeKey,
    pub(super) ks: ScopeKey,
}

/// What a sender's domain says about it, read before the sender is judged.
#[derive(Debug, Clone, Copy)]
struct DomainView {
    proven: bool,
    sender_peak_5: f64,
    sender_peak_hour: f64,
    throttled: bool,
}

fn rate_limited(rate: Rate, what: &str, scope: &str) -> Reply {
    Reply::new(
        451,
        "4.7.0",
        format!(
            "rate limit: {} {what}/{} for {scope}; try later",
            rate.count,
            rate.describe()
                .split_once('/')
                .map(|(_, u)| u.to_string())
                .unwrap_or_default()
        ),
    )
}

fn novelty_deferred(sender: &str, a: &Allowance, throttled: bool) -> Reply {
    let text = if throttled {
        format!(
            "unusual traffic from {sender}: mail to addresses it never wrote to is deferred \
             for now; try later"
        )
    } else {
        format!(
            "{sender} has no sending history here yet: at most {:.0} new recipients per 5 \
             minutes and {:.0} per hour until it has (staff can declare a bulk sender); try later",
            a.five, a.hour
        )
    };
    Reply::new(451, "4.7.0", text)
}

/// Takes one cell from each `(cell, rate, metric)` in turn; the metric of
/// the first one over its rate.
fn take_all(
    cells: [(&mut Cell, Rate, &'static str); 2],
    now: u64,
) -> Result<(), (Rate, &'static str)> {
    for (c, r, m) in cells {
        if !c.take(r, now) {
            return Err((r, m));
        }
    }
    Ok(())
}

impl Governor {
    /// New connection from `ip`: `Err` carries the 421 to send before closing.
    pub fn check_connection(&self, ip: std::net::IpAddr) -> Result<(), Reply> {
        if !self.enabled() {
            return Ok(());
        }
        let ip = crate::policy::canonical_ip(ip);
        let k = limits::ip_key(ip);
        let rate = Rate::per_minute(self.cfg().governor.connections_per_minute, 100);
        if self.limits.check(rate, k) {
            return Ok(());
        }
        Counters::bump(&self.counters.connections_refused);
        crate::metrics::throttle("connections_per_minute");
        Err(Reply::new(
            421,
            "4.7.0",
            format!(
                "rate limit: {} connections/minute from {ip}; try later",
                rate.count
            ),
        ))
    }

    /// What the MAIL and RCPT checks share: the time, the limits in force
    /// (from the caller's registry snapshot) and both scope keys; `None`
    /// when the governor is off.
    pub(super) fn subject(
        &self,
        snap: &Snapshot,
        domain: &Domain,
        sender: &str,
    ) -> Option<Subject> {
        if !self.enabled() {
            return None;
        }
        let rec = snap.domain(domain);
        let declared = rec
            .filter(|r| !r.senders.is_empty())
            .and_then(|r| r.senders.get(sender));
        Some(Subject {
            now: self.now_ms(),
            r: Resolved::of(
                &self.cfg().governor,
                rec.and_then(|r| r.limits.as_ref()),
                declared,
            ),
            kd: self.keyer.domain(domain.as_str()),
            ks: self.keyer.sender(sender),
        })
    }

    fn refused(&self, metric: &'static str, counter: &std::sync::atomic::AtomicU64) {
        Counters::bump(counter);
        crate::metrics::throttle(metric);
    }

    /// MAIL FROM of a registered agency relaying: the message rates of the
    /// sender, then of its domain (a sender over its own limit must not use
    /// up the budget its colleagues share). `sender` is the lowercased
    /// address; `snap` the registry snapshot the session's policy decided with.
    pub fn check_mail(&self, snap: &Snapshot, domain: &Domain, sender: &str) -> Result<(), Reply> {
        let Some(sj) = self.subject(snap, domain, sender) else {
            return Ok(());
        };
        let now = sj.now;
        let learned = {
            let mut shard = self.scopes.shard(sj.ks);
            let (t, learned) = self.tracked(&mut shard, sj.ks, now, || format!("s:{sender}"));
            t.dirty = true;
            if let Err((rate, metric)) = take_all(
                [
                    (
                        &mut t.cells.msg_min,
                        sj.r.s_msg_min,
                        "sender_messages_per_minute",
                    ),
                    (
                        &mut t.cells.msg_hour,
                        sj.r.s_msg_hour,
                        "sender_messages_per_hour",
                    ),
                ],
                now,
            ) {
                self.refused(metric, &self.counters.mail_refused);
                return Err(rate_limited(rate, "messages", &format!("sender {sender}")));
            }
            (sj.r.declared.is_none() && t.accountable_until_ms <= now).then_some(learned)
        };
        let mut shard = self.scopes.shard(sj.kd);
        let (t, _) = self.tracked(&mut shard, sj.kd, now, || format!("d:{domain}"));
        if let Some((five, hour)) = learned {
            t.stats.learn_sender_peak(five, hour);
        }
        t.dirty = true;
        if !t.cells.msg_hour.take(sj.r.d_msg_hour, now) {
            self.refused("domain_messages_per_hour", &self.counters.mail_refused);
            return Err(rate_limited(
                sj.r.d_msg_hour,
                "messages",
                &format!("domain {domain}"),
            ));
        }
        drop(shard);
        self.tell_peers(|| Obs::Mail {
            d: domain.to_string(),
            s: sender.to_string(),
        });
        Ok(())
    }

    /// One outbound RCPT of a registered agency (see the module text).
    /// `sender` is the lowercased address; `snap` the registry snapshot the
    /// session's policy decided with.
    pub fn check_rcpt(
        &self,
        snap: &Snapshot,
        domain: &Domain,
        sender: &str,
        rcpt: &str,
    ) -> Result<(), Reply> {
        let Some(sj) = self.subject(snap, domain, sender) else {
            return Ok(());
        };
        let cfg = self.cfg();
        let g = &cfg.governor;
        let now = sj.now;
        let mem = &self.memory;
        let rid = mem.recipient_id(rcpt);
        let sid = mem.scope_id_of(b's', sender);
        let spair = mem.pair(PairKind::Sender, sid, rid);
        let known = mem.contains(spair);
        // What the domain says matters only for a never-seen recipient:
        // the common case (a regular correspondent) skips this lock.
        let dv = (!known).then(|| {
            let mut shard = self.scopes.shard(sj.kd);
            let (t, _) = self.tracked(&mut shard, sj.kd, now, || format!("d:{domain}"));
            DomainView {
                proven: t.stats.proven(g),
                sender_peak_5: t.stats.sender_peak_new_5,
                sender_peak_hour: t.stats.sender_peak_new_hour,
                throttled: t.throttled_until_ms > now,
            }
        });
        let mut step: Option<(Step, detector::Trip)> = None;
        // The sender's part, under its shard's lock.
        let sender_part = (|| {
            let mut shard = self.scopes.shard(sj.ks);
            let (t, learned) = self.tracked(&mut shard, sj.ks, now, || format!("s:{sender}"));
            t.dirty = true;
            let throttled = t.throttled_until_ms > now;
            if let Some(dv) = dv {
                let a = detector::sender_allowance(
                    &t.stats,
                    Some((dv.proven, dv.sender_peak_5, dv.sender_peak_hour)),
                    sj.r.floors,
                    sj.r.declared,
                    g,
                );
                let n = Novelty::of(&t.stats, None, now);
                let declared = a.basis == Basis::Declared;
                let judged = !declared && a.basis != Basis::Unproven;
                let held = (throttled || dv.throttled) && !declared;
                let over = !declared && n.at_allowance(&a);
                if held || over {
                    // Each deferred address counts once: a server retrying
                    // its deferred mail tries the same ones again.
                    if mem.insert(mem.pair(PairKind::Tried, sid, rid)) {
                        t.stats.note_tried(now);
                        self.tell_peers(|| Obs::Tried {
                            d: domain.to_string(),
                            s: sender.to_string(),
                            r: rcpt.to_string(),
                        });
                    }
                    if judged {
                        let n = Novelty::of(&t.stats, None, now);
                        let label = Label(&t.name);
                        if throttled {
                            if n.escalates(&a, g) {
                                let trip = detector::novelty_trip(
                                    "novelty", &label, &n, &a, &t.stats, true, g,
                                );
                                step = Some((Step::Suspend, trip));
                            }
                        } else if over {
                            let trip = detector::novelty_trip(
                                "novelty", &label, &n, &a, &t.stats, false, g,
                            );
                            step = Some((Step::Throttle, trip));
                            t.throttled_until_ms = now + g.throttle_duration.0.as_millis() as u64;
                        }
                        if step.is_some() {
                            t.stats.last_trip_ms = now;
                            t.accountable_until_ms = now + detector::HOUR_MS;
                        }
                    }
                    return Err((novelty_deferred(sender, &a, held || judged), None));
                }
            }
            if let Err((rate, metric)) = take_all(
                [
                    (
                        &mut t.cells.rcpt_min,
                        sj.r.s_rcpt_min,
                        "sender_recipients_per_minute",
                    ),
                    (
                        &mut t.cells.rcpt_hour,
                        sj.r.s_rcpt_hour,
                        "sender_recipients_per_hour",
                    ),
                ],
                now,
            ) {
                return Err((
                    rate_limited(rate, "recipients", &format!("sender {sender}")),
                    Some(metric),
                ));
            }
            t.stats.note_recipient(!known, now);
            if !known {
                mem.insert_new(spair);
                let d = rcpt.rsplit_once('@').map_or(rcpt, |(_, d)| d);
                t.stats.note_destination(mem.recipient_id(d));
            }
            let accountable = sj.r.declared.is_some() || t.accountable_until_ms > now;
            Ok((accountable, learned))
        })();
        let (accountable, learned) = match sender_part {
            Ok(v) => v,
            Err((reply, metric)) => {
                match metric {
                    Some(m) => self.refused(m, &self.counters.rcpt_refused),
                    None => Counters::bump(&self.counters.rcpt_deferred_new),
                }
                if let Some((st, trip)) = step {
                    // Its traffic so far is now its own, not its domain's.
                    self.exclude(sj.kd, now, self.sender_windows(sj.ks));
                    self.decide(
                        Scope::Sender(sender.to_string()),
                        domain,
                        trip,
                        Some(st),
                        now,
                    );
                }
                return Err(reply);
            }
        };
        // The domain's part.
        let trip = {
            let mut shard = self.scopes.shard(sj.kd);
            let (t, _) = self.tracked(&mut shard, sj.kd, now, || format!("d:{domain}"));
            t.dirty = true;
            if !accountable {
                t.stats.learn_sender_peak(learned.0, learned.1);
            }
            if !t.cells.rcpt_hour.take(sj.r.d_rcpt_hour, now) {
                self.refused("domain_recipients_per_hour", &self.counters.rcpt_refused);
                return Err(rate_limited(
                    sj.r.d_rcpt_hour,
                    "recipients",
                    &format!("domain {domain}"),
                ));
            }
            // New to the domain, not only to the sender: colleagues writing
            // to the same new address (a list they all post to) count once.
            let dnew = !known
                && mem.insert(mem.pair(
                    PairKind::Domain,
                    mem.scope_id_of(b'd', domain.as_str()),
                    rid,
                ));
            t.stats.note_recipient(dnew, now);
            if accountable {
                for w in [&mut t.excluded.short, &mut t.excluded.hour] {
                    w.cur.recipients += 1;
                    w.cur.new += u32::from(dnew);
                }
            }
            if dnew && !accountable {
                let n = Novelty::of(&t.stats, Some((&t.excluded.short, &t.excluded.hour)), now);
                let a = detector::domain_allowance(&t.stats, sj.r.dfloors, g);
                (f64::from(n.new_5) > a.five || f64::from(n.new_hour) > a.hour).then(|| {
                    t.stats.last_trip_ms = now;
                    detector::novelty_trip(
                        "domain_novelty",
                        &Label(&t.name),
                        &n,
                        &a,
                        &t.stats,
                        false,
                        g,
                    )
                })
            } else {
                None
            }
        };
        self.tell_peers(|| Obs::Rcpt {
            d: domain.to_string(),
            s: sender.to_string(),
            r: rcpt.to_string(),
            n: !known,
        });
        if let Some(trip) = trip {
            self.decide(Scope::Domain(domain.clone()), domain, trip, None, now);
        }
        Ok(())
    }
}

impl Governor {
    /// Adds what a sender's windows hold to its domain's left-out counts:
    /// the sender answers for that traffic itself from now on.
    pub(crate) fn exclude(&self, kd: ScopeKey, now: u64, w: super::Excluded) {
        let len = self.cfg().governor.window.0.as_millis() as u64;
        let mut shard = self.scopes.shard(kd);
        if let Some(t) = shard.get_mut(&kd) {
            t.excluded
                .short
                .cur
                .add(&w.short.estimate(now, detector::SHORT_MS));
            t.excluded
                .hour
                .cur
                .add(&w.hour.estimate(now, detector::HOUR_MS));
            t.excluded.outcomes.cur.add(&w.outcomes.estimate(now, len));
            t.dirty = true;
        }
    }

    /// The sender's windows (for its domain to leave out).
    pub(crate) fn sender_windows(&self, ks: ScopeKey) -> super::Excluded {
        let shard = self.scopes.shard(ks);
        shard
            .get(&ks)
            .map(|t| super::Excluded {
                short: t.stats.short,
                hour: t.stats.hour,
                outcomes: t.stats.outcomes,
            })
            .unwrap_or_default()
    }
}

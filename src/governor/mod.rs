//! Rate governors, the anomaly detector and automatic suspension.
//!
//! - [`limits`]: keyed GCRA limiters (governor crate), checked at connect,
//!   MAIL and RCPT for outbound relay: over a limit, `451 4.7.0` naming it.
//! - [`detector`]: per-domain and per-sender counters over a sliding window
//!   with a learned baseline; rules that explain themselves.
//! - [`ladder`]: warn, throttle, suspend; a domain follows its senders.
//! - [`actions`]: holding and releasing a scope's queued mail.
//! - [`notices`]: the words of the notices; webhooks in `notify::webhook`.
//!
//! The SMTP and delivery paths only touch memory ([`Governor::check_mail`],
//! [`Governor::check_rcpt`], [`Governor::observe_delivery`]); decisions go
//! over a channel to [`Governor::run`], which writes the store, holds mail
//! and notifies off the hot path.

pub mod actions;
pub mod classify;
pub mod detector;
pub mod ladder;
pub mod limits;
pub mod notices;
pub mod scopes;
pub mod settings;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::domain::Domain;
use crate::notify::webhook::Webhooks;
use crate::registry::{Registry, RestoreRequest, Snapshot, SuspendRequest};
use crate::smtp::reply::Reply;
use crate::store::suspensions::{Scope, SuspensionRecord};
use detector::{OutcomeKind, ScopeStats, Trip};
use ladder::LadderState;
use limits::{Limiters, Rate};
use scopes::{Keyer, LimitTag, ScopeKey, ScopeTable};
use settings::Step;

/// Counters shown by `GET /api/v1/governor`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections refused by the per-IP rate.
    pub connections_refused: AtomicU64,
    /// MAIL commands refused by a message rate.
    pub mail_refused: AtomicU64,
    /// RCPT commands refused by a recipient rate.
    pub rcpt_refused: AtomicU64,
    /// Warnings sent (ladder step `warn`).
    pub warnings: AtomicU64,
    /// Throttles applied (ladder step `throttle`).
    pub throttles: AtomicU64,
    /// Senders suspended automatically.
    pub sender_suspensions: AtomicU64,
    /// Domains suspended automatically.
    pub domain_suspensions: AtomicU64,
    /// Automatic suspensions lifted at their expiry.
    pub expiries: AtomicU64,
    /// Notices queued.
    pub notices: AtomicU64,
    /// Notices skipped as duplicates (same scope, kind and day).
    pub notices_deduplicated: AtomicU64,
    /// Remote refusals naming a gateway address on a blocklist.
    pub gateway_listed: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter by name.
    pub fn to_json(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "connections_refused": g(&self.connections_refused),
            "mail_refused": g(&self.mail_refused),
            "rcpt_refused": g(&self.rcpt_refused),
            "warnings": g(&self.warnings),
            "throttles": g(&self.throttles),
            "sender_suspensions": g(&self.sender_suspensions),
            "domain_suspensions": g(&self.domain_suspensions),
            "expiries": g(&self.expiries),
            "notices": g(&self.notices),
            "notices_deduplicated": g(&self.notices_deduplicated),
            "gateway_listed": g(&self.gateway_listed),
        })
    }
}

/// A domain's limits: its overrides over the `[governor]` defaults.
pub fn effective_limits(
    cfg: &Config,
    rec: &crate::store::domains::DomainRecord,
) -> serde_json::Value {
    let g = &cfg.governor;
    let o = rec.limits.unwrap_or_default();
    serde_json::json!({
        "domain": rec.name,
        "overrides": rec.limits,
        "messages_per_hour": o.messages_per_hour.unwrap_or(g.domain_messages_per_hour),
        "recipients_per_hour": o.recipients_per_hour.unwrap_or(g.domain_recipients_per_hour),
        "sender_messages_per_hour": o.sender_messages_per_hour.unwrap_or(g.sender_messages_per_hour),
        "sender_recipients_per_hour": o
            .sender_recipients_per_hour
            .unwrap_or(g.sender_recipients_per_hour),
        "sender_messages_per_minute": g.sender_messages_per_minute,
        "burst_percent": g.burst_percent,
    })
}

/// A scope's detector state and ladder, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tracked {
    /// The scope's stored name ("d:x", "s:x"), as in [`key`].
    #[serde(skip)]
    name: String,
    stats: ScopeStats,
    #[serde(default)]
    ladder: LadderState,
    #[serde(skip)]
    dirty: bool,
}

/// What the MAIL and RCPT checks share (see `Governor::subject`).
struct Subject {
    now: u64,
    over: crate::store::domains::DomainLimits,
    kd: ScopeKey,
    ks: ScopeKey,
}

/// One rate limit to check: its rate before any throttle, whose it is, and
/// the metric that counts its refusals.
struct Check {
    base: Rate,
    scope: ScopeKey,
    tag: LimitTag,
    is_domain: bool,
    metric: &'static str,
}

impl Check {
    fn sender(base: Rate, scope: ScopeKey, tag: LimitTag, metric: &'static str) -> Check {
        Check {
            base,
            scope,
            tag,
            is_domain: false,
            metric,
        }
    }

    fn domain(base: Rate, scope: ScopeKey, tag: LimitTag, metric: &'static str) -> Check {
        Check {
            is_domain: true,
            ..Check::sender(base, scope, tag, metric)
        }
    }
}

/// A decision for the background task.
#[derive(Debug)]
enum Event {
    /// A ladder step for a scope.
    Step {
        scope: Scope,
        domain: Domain,
        step: Step,
        trip: Trip,
    },
    /// A remote refused mail because a gateway address is on a blocklist.
    GatewayListed {
        address: IpAddr,
        reply: String,
        domain: Option<Domain>,
    },
}

/// The latest blocklist refusal naming one gateway address.
#[derive(Debug, Clone, Serialize)]
struct Listing {
    address: IpAddr,
    reply: String,
    domain: String,
    refusals: u64,
    last_ms: u64,
}

/// The governor: limits, detector, ladder.
pub struct Governor {
    cfg: Arc<Config>,
    registry: Arc<Registry>,
    queue: ugem_queue::Queue,
    limits: Limiters,
    keyer: Keyer,
    scopes: ScopeTable<Tracked>,
    /// Throttled scopes: name and when the throttle ends (unix ms).
    throttled: Mutex<HashMap<ScopeKey, (String, u64)>>,
    /// Entries in `throttled`: when zero, checks skip its lock.
    throttled_n: AtomicUsize,
    /// The gateway's own addresses: configured, and seen as the source of
    /// outbound connections. A blocklist refusal naming one is a gateway alarm.
    own: std::sync::RwLock<Vec<IpAddr>>,
    /// Blocklist refusals naming a gateway address, by address.
    listings: Mutex<HashMap<IpAddr, Listing>>,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    webhooks: Webhooks,
    /// What it has done.
    pub counters: Counters,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor").finish_non_exhaustive()
    }
}

fn key(scope: &Scope) -> String {
    match scope {
        Scope::Domain(d) => format!("d:{d}"),
        Scope::Sender(s) => format!("s:{s}"),
    }
}

/// A scope key ("d:x", "s:x") as people read it ("domain x", "sender x").
struct Label<'a>(&'a str);

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once(':') {
            Some(("d", x)) => write!(f, "domain {x}"),
            Some(("s", x)) => write!(f, "sender {x}"),
            _ => f.write_str(self.0),
        }
    }
}

fn scope_of(key: &str) -> Option<Scope> {
    match key.split_once(':')? {
        ("d", d) => Domain::parse(d).ok().map(Scope::Domain),
        ("s", s) => Some(Scope::Sender(s.to_string())),
        _ => None,
    }
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

impl Governor {
    /// Builds the governor and loads the detector state saved in the store.
    pub fn new(
        cfg: Arc<Config>,
        registry: Arc<Registry>,
        queue: ugem_queue::Queue,
    ) -> Arc<Governor> {
        let g = &cfg.governor;
        // Events wait in the store's outbox until `run` starts the sender.
        let webhooks = Webhooks::new(registry.store().clone(), g.webhooks.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let keyer = Keyer::default();
        let scopes = ScopeTable::default();
        match registry.store().load_governor_stats() {
            Ok(rows) => {
                let now = crate::store::now_ms();
                for (k, v) in rows {
                    match serde_json::from_slice::<Tracked>(&v) {
                        Ok(mut t) => {
                            // The recipient memory is not saved: warm up again.
                            t.stats.seen_since_ms = now;
                            let sk = keyer.key(&k);
                            t.name = k;
                            scopes.shard(sk).insert(sk, t);
                        }
                        Err(e) => {
                            tracing::warn!(scope = %k, error = %e, "detector state unreadable; starting over")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot load detector state"),
        }
        Arc::new(Governor {
            limits: Limiters::new(),
            keyer,
            scopes,
            throttled: Mutex::new(HashMap::new()),
            throttled_n: AtomicUsize::new(0),
            own: std::sync::RwLock::new(
                cfg.registration
                    .gateway_addresses
                    .iter()
                    .map(|ip| crate::policy::canonical_ip(*ip))
                    .collect(),
            ),
            listings: Mutex::new(HashMap::new()),
            events: tx,
            events_rx: Mutex::new(Some(rx)),
            webhooks,
            counters: Counters::default(),
            cfg,
            registry,
            queue,
        })
    }

    fn enabled(&self) -> bool {
        self.cfg.governor.enabled
    }

    fn is_throttled(&self, k: ScopeKey, now: u64) -> bool {
        if self.throttled_n.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
        t.get(&k).is_some_and(|&(_, until)| until > now)
    }

    /// The rate for `base`, divided while the scope is throttled.
    fn effective(&self, base: Rate, k: ScopeKey, now: u64) -> Rate {
        if self.is_throttled(k, now) {
            base.divided(self.cfg.governor.throttle_divisor)
        } else {
            base
        }
    }

    /// An outbound connection left from `ip`: remembered as a gateway address.
    pub fn note_source_address(&self, ip: IpAddr) {
        let ip = crate::policy::canonical_ip(ip);
        if self
            .own
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&ip)
        {
            return;
        }
        let mut own = self.own.write().unwrap_or_else(|p| p.into_inner());
        // A host has few addresses; the bound only guards against a surprise.
        if !own.contains(&ip) && own.len() < 256 {
            tracing::info!(address = %ip, "outbound source address noted");
            own.push(ip);
        }
    }

    /// New connection from `ip`: `Err` carries the 421 to send before closing.
    pub fn check_connection(&self, ip: IpAddr) -> Result<(), Reply> {
        if !self.enabled() {
            return Ok(());
        }
        let ip = crate::policy::canonical_ip(ip);
        let k = limits::ip_key(ip);
        let rate = Rate::per_minute(self.cfg.governor.connections_per_minute, 100);
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

    /// What the MAIL and RCPT checks share: the time, the domain's limit
    /// overrides (from the caller's registry snapshot) and both scope keys;
    /// `None` when the governor is off.
    fn subject(&self, snap: &Snapshot, domain: &Domain, sender: &str) -> Option<Subject> {
        if !self.enabled() {
            return None;
        }
        Some(Subject {
            now: crate::store::now_ms(),
            over: snap
                .domain(domain)
                .and_then(|r| r.limits)
                .unwrap_or_default(),
            kd: self.keyer.domain(domain.as_str()),
            ks: self.keyer.sender(sender),
        })
    }

    /// An hourly rate: the domain's override, else the default.
    fn hourly(&self, own: Option<u32>, default: u32) -> Rate {
        Rate::per_hour(own.unwrap_or(default), self.cfg.governor.burst_percent)
    }

    /// MAIL FROM of a registered agency relaying: the message rates of its
    /// domain and of the sender. `sender` is the lowercased address; `snap`
    /// is the registry snapshot the session's policy decided with.
    pub fn check_mail(&self, snap: &Snapshot, domain: &Domain, sender: &str) -> Result<(), Reply> {
        let Some(sj) = self.subject(snap, domain, sender) else {
            return Ok(());
        };
        let g = &self.cfg.governor;
        let tag = LimitTag::Messages;
        // The narrowest scope first: a sender over its own limit must not
        // use up its domain's budget, which its colleagues share.
        let checks = [
            Check::sender(
                Rate::per_minute(g.sender_messages_per_minute, 100),
                sj.ks,
                tag,
                "sender_messages_per_minute",
            ),
            Check::sender(
                self.hourly(sj.over.sender_messages_per_hour, g.sender_messages_per_hour),
                sj.ks,
                tag,
                "sender_messages_per_hour",
            ),
            Check::domain(
                self.hourly(sj.over.messages_per_hour, g.domain_messages_per_hour),
                sj.kd,
                tag,
                "domain_messages_per_hour",
            ),
        ];
        self.check_rates(
            &checks,
            "messages",
            &self.counters.mail_refused,
            domain,
            sender,
            &sj,
        )
    }

    /// Checks each limit in turn; the first one over is counted, noted for
    /// the detector and refused.
    fn check_rates(
        &self,
        checks: &[Check],
        what: &str,
        refused: &std::sync::atomic::AtomicU64,
        domain: &Domain,
        sender: &str,
        sj: &Subject,
    ) -> Result<(), Reply> {
        for c in checks {
            let rate = self.effective(c.base, c.scope, sj.now);
            if !self.limits.check(rate, c.scope.limit(c.tag)) {
                Counters::bump(refused);
                crate::metrics::throttle(c.metric);
                self.note_throttled(domain, sender, sj.ks, sj.now);
                let label = if c.is_domain {
                    format!("domain {domain}")
                } else {
                    format!("sender {sender}")
                };
                return Err(rate_limited(rate, what, &label));
            }
        }
        Ok(())
    }

    /// One outbound RCPT of a registered agency: the recipient rates, then
    /// the detector's traffic rules. `sender` is the lowercased address;
    /// `snap` is the registry snapshot the session's policy decided with.
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
        let g = &self.cfg.governor;
        let tag = LimitTag::Recipients;
        // Sender first, as at MAIL.
        let checks = [
            Check::sender(
                self.hourly(
                    sj.over.sender_recipients_per_hour,
                    g.sender_recipients_per_hour,
                ),
                sj.ks,
                tag,
                "sender_recipients_per_hour",
            ),
            Check::domain(
                self.hourly(sj.over.recipients_per_hour, g.domain_recipients_per_hour),
                sj.kd,
                tag,
                "domain_recipients_per_hour",
            ),
        ];
        self.check_rates(
            &checks,
            "recipients",
            &self.counters.rcpt_refused,
            domain,
            sender,
            &sj,
        )?;
        let (now, kd, ks) = (sj.now, sj.kd, sj.ks);
        let h = detector::address_hash(rcpt);
        let mut trips = Vec::new();
        // Sender then domain, one shard lock at a time (they may share one).
        for (k, floor) in [(ks, g.volume_floor), (kd, g.domain_volume_floor)] {
            let mut shard = self.scopes.shard(k);
            let t = self.tracked(&mut shard, k, now, || {
                if k == ks {
                    format!("s:{sender}")
                } else {
                    format!("d:{domain}")
                }
            });
            t.stats.note_recipient_hash(h, now);
            t.dirty = true;
            if let Some(trip) = detector::judge_traffic(&t.stats, &Label(&t.name), now, g, floor) {
                trips.push((t.name.clone(), trip));
            }
        }
        for (name, trip) in trips {
            if let Some(scope) = scope_of(&name) {
                self.decide(scope, domain, trip, now);
            }
        }
        Ok(())
    }

    /// The scope `k`'s state in its locked shard, made (named by `name`) if new.
    fn tracked<'a>(
        &self,
        shard: &'a mut HashMap<ScopeKey, Tracked, scopes::Hasher>,
        k: ScopeKey,
        now: u64,
        name: impl FnOnce() -> String,
    ) -> &'a mut Tracked {
        let g = &self.cfg.governor;
        let window_ms = g.window.0.as_millis() as u64;
        let t = shard.entry(k).or_insert_with(|| {
            let name = name();
            Tracked {
                stats: if name.starts_with("s:") {
                    ScopeStats::light(now, window_ms)
                } else {
                    ScopeStats::new(now, window_ms)
                },
                name,
                ladder: LadderState::default(),
                dirty: true,
            }
        });
        t.stats.roll(now, window_ms, g.baseline_alpha);
        t
    }

    fn note_throttled(&self, domain: &Domain, sender: &str, ks: ScopeKey, now: u64) {
        let g = &self.cfg.governor;
        let ss = Scope::Sender(sender.to_string());
        let trip = {
            let mut shard = self.scopes.shard(ks);
            let t = self.tracked(&mut shard, ks, now, || key(&ss));
            t.stats.note_throttled(now);
            t.dirty = true;
            detector::judge_throttling(&t.stats, &ss, now, g)
        };
        if let Some(trip) = trip {
            self.decide(ss, domain, trip, now);
        }
    }

    /// Delivery results of one attempt: feeds the rejection and
    /// unknown-recipient rules of the message's domain and sender. `env` is
    /// the message before this attempt was recorded: a recipient's first
    /// result counts as an outcome, a retried one only if it is a refusal.
    pub fn observe_delivery(
        &self,
        env: &ugem_queue::Envelope,
        updates: &[ugem_queue::RecipientUpdate],
    ) {
        if !self.enabled() {
            return;
        }
        let g = &self.cfg.governor;
        let now = crate::store::now_ms();
        let domain = env.domain.as_deref().and_then(|d| Domain::parse(d).ok());
        // Only outbound mail of a registered domain feeds its rules; any mail
        // (bounces and notices too) can show that a gateway address is listed.
        let counted = domain
            .as_ref()
            .filter(|_| env.direction == ugem_queue::Direction::Outbound);
        let mut kinds: Vec<(OutcomeKind, bool)> = Vec::with_capacity(updates.len());
        {
            let own = self.own.read().unwrap_or_else(|p| p.into_inner());
            let patterns = detector::Patterns {
                spam: &g.spam_patterns,
                listing: &g.listing_patterns,
                own: &own,
            };
            for u in updates {
                let text = u.last_error.as_deref().unwrap_or("");
                let failed = u.status == ugem_queue::RcptStatus::Failed;
                let delivered = u.status == ugem_queue::RcptStatus::Delivered;
                let kind = detector::classify(delivered, failed, text, patterns);
                if kind == OutcomeKind::GatewayListed {
                    self.gateway_listed(&own, text, domain.as_ref(), now);
                }
                if counted.is_none() {
                    continue;
                }
                let first = env.recipients.get(u.index).is_none_or(|r| r.attempts == 0);
                // Our own give-up after the lifetime is not a remote refusal.
                let expired = text.starts_with("4.4.7");
                if first || (failed && !expired) {
                    kinds.push((kind, first));
                }
            }
        }
        let Some(domain) = counted else {
            return;
        };
        if kinds.is_empty() {
            return;
        }
        let ss = Scope::Sender(env.sender.to_lowercase());
        let ds = Scope::Domain(domain.clone());
        let mut trips = Vec::new();
        for scope in [&ss, &ds] {
            let name = key(scope);
            let sk = self.keyer.key(&name);
            let mut shard = self.scopes.shard(sk);
            let t = self.tracked(&mut shard, sk, now, || name);
            for &(k, first) in &kinds {
                if first {
                    t.stats.note_outcome(k, now);
                } else {
                    t.stats.note_refusal(k, now);
                }
            }
            t.dirty = true;
            if let Some(trip) = detector::judge_outcomes(&t.stats, scope, now, g) {
                trips.push((scope.clone(), trip));
            }
        }
        for (scope, trip) in trips {
            self.decide(scope, domain, trip, now);
        }
    }

    /// Records a blocklist refusal naming a gateway address; the first of a
    /// burst goes on to the background task to alert the postmaster.
    fn gateway_listed(&self, own: &[IpAddr], reply: &str, domain: Option<&Domain>, now: u64) {
        let Some(address) = detector::names_address(reply, own) else {
            return;
        };
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
            let fresh = now.saturating_sub(e.last_ms) >= 60_000;
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
            });
        }
    }

    /// A rule tripped for `scope`: climbs its ladder and hands the step on.
    fn decide(&self, scope: Scope, domain: &Domain, trip: Trip, now: u64) {
        let snap = self.registry.snapshot();
        if snap.suspension(&scope).is_some()
            || snap.suspension(&Scope::Domain(domain.clone())).is_some()
        {
            return;
        }
        let g = &self.cfg.governor;
        let k = key(&scope);
        let sk = self.keyer.key(&k);
        let step = {
            let mut shard = self.scopes.shard(sk);
            let t = self.tracked(&mut shard, sk, now, || k.clone());
            t.dirty = true;
            t.ladder
                .climb(&g.ladder, g.step_interval.0.as_millis() as u64, now)
        };
        let Some(step) = step else {
            return;
        };
        tracing::warn!(scope = %scope, rule = trip.rule, step = step.as_str(), summary = %trip.summary, "governor decision");
        if step == Step::Throttle {
            let until = now + g.throttle_duration.0.as_millis() as u64;
            let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
            t.insert(sk, (k, until));
            self.throttled_n.store(t.len(), Ordering::Relaxed);
        }
        let _ = self.events.send(Event::Step {
            scope,
            domain: domain.clone(),
            step,
            trip,
        });
    }

    /// Runs the decisions and the housekeeping until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self
            .events_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let g = &self.cfg.governor;
        let sender = self.webhooks.spawn_sender(
            g.webhook_attempts,
            g.webhook_timeout.0,
            crate::trust::all_certs(self.cfg.delivery.tls_ca_file.as_deref()),
            stop.clone(),
        );
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
                _ = crate::server::stopped(&mut stop) => break,
            }
        }
        self.save(true).await;
        // Pending webhook events stay in the outbox for the next start.
        sender.abort();
    }

    async fn handle(&self, ev: Event) {
        let (scope, domain, step, trip) = match ev {
            Event::Step {
                scope,
                domain,
                step,
                trip,
            } => (scope, domain, step, trip),
            Event::GatewayListed {
                address,
                reply,
                domain,
            } => {
                let day = Utc::now().format("%Y-%m-%d");
                let whose = domain.as_ref().map_or("the gateway itself", |d| d.as_str());
                let text = notices::gateway_listed(&self.cfg, address, &reply, whose);
                self.notify(None, &format!("listed|{address}|{day}"), text)
                    .await;
                self.webhooks.send(serde_json::json!({
                    "event": "gateway_listed",
                    "gateway": self.cfg.server.hostname.to_string(),
                    "address": address,
                    "reply": reply,
                    "domain": domain,
                    "at": Utc::now(),
                }));
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
                let day = Utc::now().format("%Y-%m-%d");
                let dedup = format!("{}|{}|{day}", step.as_str(), key(&scope));
                let text = notices::early_step(&self.cfg, &scope, step, &trip);
                self.notify(Some(&domain), &dedup, text).await;
                self.webhooks.send(serde_json::json!({
                    "event": step.as_str(),
                    "gateway": self.cfg.server.hostname.to_string(),
                    "scope": scope,
                    "rule": trip.rule,
                    "reason": trip.summary,
                    "evidence": trip.evidence,
                    "at": Utc::now(),
                }));
            }
            Step::Suspend => {
                let made = self
                    .suspend(&scope, trip.rule, &trip.summary, trip.evidence)
                    .await;
                // Enough suspended senders take their domain with them.
                if made.is_some() && matches!(scope, Scope::Sender(_)) {
                    self.maybe_suspend_domain(&domain).await;
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
    ) -> Option<SuspensionRecord> {
        let expires_at = self
            .cfg
            .governor
            .expiry_for(rule)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d);
        let req = SuspendRequest {
            actor: "auto".into(),
            rule: rule.into(),
            // The reason appears in 451 replies: keep them well under 512 octets.
            reason: reason.chars().take(300).collect(),
            evidence,
            expires_at,
        };
        let reg = self.registry.clone();
        let sc = scope.clone();
        let r = tokio::task::spawn_blocking(move || match &sc {
            Scope::Domain(d) => reg.suspend_domain(d, req),
            Scope::Sender(s) => reg.suspend_sender(s, req),
        })
        .await;
        let rec = match r {
            Ok(Ok(rec)) => rec,
            Ok(Err(e)) => {
                tracing::info!(scope = %scope, error = %e, "automatic suspension not made");
                return None;
            }
            Err(e) => {
                tracing::error!(scope = %scope, error = %e, "suspension task failed");
                return None;
            }
        };
        Counters::bump(match scope {
            Scope::Domain(_) => &self.counters.domain_suspensions,
            Scope::Sender(_) => &self.counters.sender_suspensions,
        });
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
        tracing::warn!(scope = %scope, rule, held, id = rec.id, "suspended automatically");
        self.on_suspended(&rec, held).await;
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
            let text = notices::suspended(&self.cfg, rec);
            self.notify(Some(d), &format!("suspend|{}", rec.id), text)
                .await;
        }
        self.webhooks
            .send(self.event_json("suspend", rec, Some(held)));
    }

    async fn maybe_suspend_domain(&self, domain: &Domain) {
        let need = self.cfg.governor.domain_after_senders;
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
            "{} senders of {domain} were suspended automatically (limit {need})",
            senders.len()
        );
        let evidence = serde_json::json!({
            "rule": "senders_suspended",
            "scope": format!("domain {domain}"),
            "suspended_senders": senders,
            "limit": need,
        });
        self.suspend(
            &Scope::Domain(domain.clone()),
            "senders_suspended",
            &reason,
            evidence,
        )
        .await;
    }

    fn event_json(
        &self,
        event: &str,
        rec: &SuspensionRecord,
        held: Option<usize>,
    ) -> serde_json::Value {
        serde_json::json!({
            "event": event,
            "gateway": self.cfg.server.hostname.to_string(),
            "suspension": rec,
            "scope": rec.scope,
            "rule": rec.rule,
            "reason": rec.reason,
            "evidence": rec.evidence,
            "actor": rec.actor,
            "held_messages": held,
            "at": Utc::now(),
        })
    }

    /// Queues a notice to the domain's contacts and the postmaster, once per `dedup` key.
    /// Queues a notice to the postmaster and, with a domain, its contacts;
    /// at most once per `dedup` key.
    async fn notify(
        &self,
        domain: Option<&Domain>,
        dedup: &str,
        text: crate::notify::notices::Text,
    ) {
        let store = self.registry.store().clone();
        let k = dedup.to_string();
        let fresh =
            tokio::task::spawn_blocking(move || store.claim_notice(&k, crate::store::now_ms()))
                .await
                .map(|r| r.unwrap_or(true))
                .unwrap_or(true);
        if !fresh {
            Counters::bump(&self.counters.notices_deduplicated);
            return;
        }
        let mut to = Vec::new();
        if self.cfg.governor.notify_contacts
            && let Some(rec) = domain.and_then(|d| self.registry.get(d))
        {
            to.extend(rec.contacts.iter().map(|c| c.email.clone()));
        }
        to.push(self.cfg.server.postmaster.to_string());
        match crate::notify::enqueue_notice(&self.queue, &self.cfg, &to, &text.subject, &text.body)
            .await
        {
            Ok(id) => {
                Counters::bump(&self.counters.notices);
                tracing::info!(queue_id = %id, subject = %text.subject, "governor notice queued");
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
            t.dirty = true;
        }
        {
            let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
            t.remove(&sk);
            self.throttled_n.store(t.len(), Ordering::Relaxed);
        }
        let domain = match &rec.scope {
            Scope::Domain(d) => Some(d.clone()),
            Scope::Sender(s) => s.rsplit_once('@').and_then(|(_, d)| Domain::parse(d).ok()),
        };
        if let Some(d) = domain {
            let text = notices::restored(&self.cfg, rec);
            self.notify(Some(&d), &format!("restore|{}", rec.id), text)
                .await;
        }
        self.webhooks.send(self.event_json("restore", rec, None));
    }

    /// Expiries, throttle ends, limiter and tracker pruning, state saving.
    async fn housekeeping(&self) {
        let now = crate::store::now_ms();
        {
            let mut t = self.throttled.lock().unwrap_or_else(|p| p.into_inner());
            t.retain(|_, (_, until)| *until > now);
            self.throttled_n.store(t.len(), Ordering::Relaxed);
        }
        self.limits.retain_recent();
        self.lift_expired().await;
        self.evict();
        self.save(false).await;
        let store = self.registry.store().clone();
        let before = now.saturating_sub(3 * 24 * 3600 * 1000);
        let _ = tokio::task::spawn_blocking(move || store.prune_notices(before)).await;
    }

    async fn lift_expired(&self) {
        let now = Utc::now();
        let due: Vec<Arc<SuspensionRecord>> = self
            .registry
            .snapshot()
            .active_suspensions()
            .filter(|s| s.actor == "auto" && s.expires_at.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        for s in due {
            let reg = self.registry.clone();
            let scope = s.scope.clone();
            let req = RestoreRequest {
                actor: "auto".into(),
                reason: Some("the automatic suspension expired".into()),
                held_mail: "released".into(),
            };
            let r = tokio::task::spawn_blocking(move || match &scope {
                Scope::Domain(d) => reg.restore_domain(d, req).map(|_| ()),
                Scope::Sender(a) => reg.restore_sender(a, req).map(|_| ()),
            })
            .await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::error!(scope = %s.scope, "cannot lift an expired suspension");
                continue;
            }
            Counters::bump(&self.counters.expiries);
            let n = actions::release_scope_mail(&self.queue, &s.scope, true)
                .await
                .unwrap_or(0);
            tracing::info!(scope = %s.scope, released = n, "automatic suspension expired");
            let ended = self
                .registry
                .store()
                .get_suspension(s.id)
                .ok()
                .flatten()
                .unwrap_or_else(|| (*s).clone());
            self.on_restored(&ended).await;
        }
    }

    /// Bounds the tracked senders: the longest idle go first. Domains stay.
    fn evict(&self) {
        let max = self.cfg.governor.max_tracked_senders;
        let mut senders: Vec<(u64, ScopeKey)> = Vec::new();
        self.scopes.each_shard(|m| {
            senders.extend(
                m.iter()
                    .filter(|(_, t)| t.name.starts_with("s:"))
                    .map(|(k, t)| (t.stats.last_seen_ms, *k)),
            )
        });
        if senders.len() <= max {
            return;
        }
        senders.sort();
        let excess = senders.len() - max;
        let mut gone = Vec::with_capacity(excess);
        for (_, k) in senders.into_iter().take(excess) {
            if let Some(t) = self.scopes.shard(k).remove(&k) {
                gone.push(t.name);
            }
        }
        let store = self.registry.store().clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.delete_governor_stats(&gone) {
                tracing::warn!(error = %e, "cannot delete evicted detector state");
            }
        });
    }

    /// Writes the changed scopes' state (all of it when `all`).
    async fn save(&self, all: bool) {
        let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
        self.scopes.each_shard(|m| {
            rows.extend(m.values_mut().filter(|t| all || t.dirty).map(|t| {
                t.dirty = false;
                (t.name.clone(), serde_json::to_vec(t).unwrap_or_default())
            }))
        });
        let store = self.registry.store().clone();
        match tokio::task::spawn_blocking(move || store.save_governor_stats(&rows)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save detector state"),
            Err(e) => tracing::warn!(error = %e, "detector save task failed"),
        }
    }

    /// The state shown by `GET /api/v1/governor`.
    pub fn status(&self) -> serde_json::Value {
        let now = crate::store::now_ms();
        let throttled: Vec<serde_json::Value> = self
            .throttled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|(_, u)| *u > now)
            .map(|(k, u)| {
                serde_json::json!({
                    "scope": scope_of(k),
                    "until": chrono::DateTime::<Utc>::from_timestamp_millis(*u as i64),
                })
            })
            .collect();
        let (mut domains, mut senders) = (0u64, 0u64);
        for s in self.registry.snapshot().active_suspensions() {
            match s.scope {
                Scope::Domain(_) => domains += 1,
                Scope::Sender(_) => senders += 1,
            }
        }
        let tracked = self.scopes.len();
        let mut listings: Vec<Listing> = self
            .listings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        listings.sort_by_key(|l| std::cmp::Reverse(l.last_ms));
        let listings: Vec<serde_json::Value> = listings
            .into_iter()
            .map(|l| {
                serde_json::json!({
                    "address": l.address,
                    "refusals": l.refusals,
                    "last_reply": l.reply,
                    "last_domain": l.domain,
                    "last_at": chrono::DateTime::<Utc>::from_timestamp_millis(l.last_ms as i64),
                })
            })
            .collect();
        serde_json::json!({
            "enabled": self.enabled(),
            "counters": self.counters.to_json(),
            "throttled": throttled,
            "active_suspensions": {"domain": domains, "sender": senders},
            "tracked_scopes": tracked,
            "gateway_listings": listings,
            "limiter_keys": self.limits.keys(),
            "webhooks": {
                "delivered": self.webhooks.stats.delivered.load(Ordering::Relaxed),
                "failed": self.webhooks.stats.failed.load(Ordering::Relaxed),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::NewDomain;

    fn setup(dir: &std::path::Path) -> (Arc<Governor>, Domain) {
        setup_with(dir, |_| {})
    }

    fn setup_with(
        dir: &std::path::Path,
        tune: impl FnOnce(&mut Config),
    ) -> (Arc<Governor>, Domain) {
        let store = crate::store::Store::open(dir).unwrap();
        let registry = Arc::new(Registry::open(store).unwrap());
        let d = Domain::parse("agency.example.kz").unwrap();
        registry
            .add_domain(NewDomain {
                name: d.clone(),
                owner: "Agency".into(),
                servers: vec!["192.0.2.1/32".parse().unwrap()],
                contacts: vec![crate::registry::parse_contact("it@agency.example.kz").unwrap()],
                inbound: None,
                shared_servers: false,
            })
            .unwrap();
        let queue =
            ugem_queue::Queue::open(&dir.join("queue"), ugem_queue::QueueOptions::default())
                .unwrap();
        let mut cfg = Config::default();
        cfg.governor.volume_floor = 3;
        cfg.governor.volume_factor = 1.0;
        cfg.governor.step_interval = crate::config::Span(std::time::Duration::ZERO);
        tune(&mut cfg);
        (Governor::new(Arc::new(cfg), registry, queue), d)
    }

    /// An outbound message of `sender` to `n` recipients, each tried `attempts` times.
    fn outbound(sender: &str, n: usize, attempts: u32) -> ugem_queue::Envelope {
        let rcpts: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({"address": format!("r{i}@far.example"), "status": "pending",
                    "last_error": null, "attempts": attempts})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": ugem_queue::QueueId::generate(), "sender": sender, "recipients": rcpts,
            "client_ip": null, "helo": "h", "tls": null, "domain": "agency.example.kz",
            "direction": "outbound", "arrived_at_ms": 0, "size": 1, "next_attempt_ms": 0,
            "attempts": attempts, "held": null, "leased_until_ms": null, "last_attempt_ms": null,
        }))
        .unwrap()
    }

    fn updates(
        n: usize,
        status: ugem_queue::RcptStatus,
        text: &str,
    ) -> Vec<ugem_queue::RecipientUpdate> {
        (0..n)
            .map(|index| ugem_queue::RecipientUpdate {
                index,
                status,
                last_error: Some(text.into()),
            })
            .collect()
    }

    fn outcomes(gov: &Governor, name: &str) -> detector::Counts {
        let k = gov.keyer.key(name);
        gov.scopes
            .shard(k)
            .get(&k)
            .map(|t| t.stats.cur)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn memory_stays_bounded_however_many_senders_appear() {
        let dir = tempfile::tempdir().unwrap();
        let (gov, d) = setup_with(dir.path(), |c| {
            c.governor.max_tracked_senders = 500;
            c.governor.volume_floor = u64::MAX / 4;
            c.governor.domain_volume_floor = u64::MAX / 4;
            // One cell an hour at most, refilled within 10 ms: idle at once.
            c.governor.sender_recipients_per_hour = 360_000;
            c.governor.domain_recipients_per_hour = u32::MAX / 4;
            c.governor.burst_percent = 1;
        });
        for i in 0..20_000 {
            gov.check_rcpt(
                &gov.registry.snapshot(),
                &d,
                &format!("u{i}@agency.example.kz"),
                "x@far.example",
            )
            .unwrap();
        }
        // One sender clearly later than all the others (activity is kept in ms).
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        gov.check_rcpt(
            &gov.registry.snapshot(),
            &d,
            "latest@agency.example.kz",
            "x@far.example",
        )
        .unwrap();
        assert!(gov.limits.keys() >= 20_000);
        assert!(gov.scopes.len() > 20_000);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gov.limits.retain_recent();
        gov.evict();
        // The domain's own key may stay busy; the senders' keys are gone.
        assert!(gov.limits.keys() <= 1, "{}", gov.limits.keys());
        // The 500 most recent senders and the domain stay tracked.
        assert_eq!(gov.scopes.len(), 501);
        let k = gov.keyer.sender("latest@agency.example.kz");
        assert!(gov.scopes.shard(k).contains_key(&k));
        let k = gov.keyer.sender("u0@agency.example.kz");
        assert!(!gov.scopes.shard(k).contains_key(&k));
    }

    #[test]
    fn retried_recipients_count_once() {
        use ugem_queue::RcptStatus::{Deferred, Failed};
        let dir = tempfile::tempdir().unwrap();
        let (gov, _) = setup(dir.path());
        let a = "a@agency.example.kz";
        // First attempt: three deferrals naming a spam filter.
        gov.observe_delivery(
            &outbound(a, 3, 0),
            &updates(3, Deferred, "451 4.7.1 spam suspected"),
        );
        let c = outcomes(&gov, "s:a@agency.example.kz");
        assert_eq!((c.outcomes, c.rejected, c.spam), (3, 3, 3));
        // Retries that defer again add nothing...
        for _ in 0..5 {
            gov.observe_delivery(
                &outbound(a, 3, 1),
                &updates(3, Deferred, "451 4.7.1 spam suspected"),
            );
        }
        assert_eq!(outcomes(&gov, "s:a@agency.example.kz"), c);
        // ...nor does our own give-up at the end of the lifetime...
        gov.observe_delivery(
            &outbound(a, 3, 9),
            &updates(
                3,
                Failed,
                "4.4.7 delivery time expired; last error: 451 spam",
            ),
        );
        assert_eq!(outcomes(&gov, "s:a@agency.example.kz"), c);
        // ...but a later permanent refusal counts as a refusal, not a new outcome.
        gov.observe_delivery(
            &outbound(a, 1, 2),
            &updates(1, Failed, "550 5.1.1 user unknown"),
        );
        let c = outcomes(&gov, "d:agency.example.kz");
        assert_eq!((c.outcomes, c.rejected, c.unknown), (3, 4, 1));
    }

    #[test]
    fn a_listing_of_a_gateway_address_is_an_alarm_not_a_rejection() {
        let dir = tempfile::tempdir().unwrap();
        let (gov, _) = setup(dir.path());
        let mut rx = gov.events_rx.lock().unwrap().take().unwrap();
        let text = "554 5.7.1 Client host [203.0.113.5] blocked using zen.spamhaus.org";
        // Before the gateway knows the address, it is an ordinary spam refusal.
        gov.observe_delivery(
            &outbound("a@agency.example.kz", 2, 0),
            &updates(2, ugem_queue::RcptStatus::Failed, text),
        );
        assert_eq!(outcomes(&gov, "s:a@agency.example.kz").spam, 2);
        assert!(rx.try_recv().is_err());
        gov.note_source_address("203.0.113.5".parse().unwrap());
        gov.observe_delivery(
            &outbound("b@agency.example.kz", 2, 0),
            &updates(2, ugem_queue::RcptStatus::Failed, text),
        );
        let c = outcomes(&gov, "s:b@agency.example.kz");
        assert_eq!((c.outcomes, c.rejected, c.spam), (2, 0, 0));
        assert_eq!(gov.counters.gateway_listed.load(Ordering::Relaxed), 2);
        // One alarm for the burst.
        assert!(
            matches!(rx.try_recv(), Ok(Event::GatewayListed { address, .. }) if address.to_string() == "203.0.113.5")
        );
        assert!(rx.try_recv().is_err());
        let st = gov.status();
        assert_eq!(st["gateway_listings"][0]["refusals"], 2, "{st}");
    }

    fn next_step(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
        rx.try_recv().expect("a decision")
    }

    #[tokio::test]
    async fn ladder_warns_throttles_suspends_and_notices_are_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let (gov, d) = setup(dir.path());
        let mut rx = gov.events_rx.lock().unwrap().take().unwrap();
        let sender = "clerk@agency.example.kz";
        for i in 0..4 {
            gov.check_rcpt(
                &gov.registry.snapshot(),
                &d,
                sender,
                &format!("r{i}@far.example"),
            )
            .unwrap();
        }
        let ev = next_step(&mut rx);
        assert!(matches!(&ev, Event::Step { step: Step::Warn, trip, .. } if trip.rule == "volume"));
        gov.handle(ev).await;
        assert_eq!(gov.counters.notices.load(Ordering::Relaxed), 1);

        gov.check_rcpt(&gov.registry.snapshot(), &d, sender, "r5@far.example")
            .unwrap();
        let ev = next_step(&mut rx);
        assert!(matches!(
            &ev,
            Event::Step {
                step: Step::Throttle,
                ..
            }
        ));
        assert!(gov.is_throttled(gov.keyer.sender(sender), crate::store::now_ms()));
        gov.handle(ev).await;

        gov.check_rcpt(&gov.registry.snapshot(), &d, sender, "r6@far.example")
            .unwrap();
        let ev = next_step(&mut rx);
        assert!(matches!(
            &ev,
            Event::Step {
                step: Step::Suspend,
                ..
            }
        ));
        gov.handle(ev).await;
        let snap = gov.registry.snapshot();
        let s = snap
            .suspension(&Scope::Sender(sender.into()))
            .expect("suspended");
        assert_eq!((s.actor.as_str(), s.rule.as_str()), ("auto", "volume"));
        assert_eq!(s.evidence["rule"], "volume");
        assert_eq!(gov.counters.notices.load(Ordering::Relaxed), 3);
        // A suspended sender is not judged again.
        gov.check_rcpt(&gov.registry.snapshot(), &d, sender, "r7@far.example")
            .unwrap();
        assert!(rx.try_recv().is_err());

        // A second warning for the same scope on the same day is not mailed.
        gov.handle(Event::Step {
            scope: Scope::Sender(sender.into()),
            domain: d.clone(),
            step: Step::Warn,
            trip: Trip {
                rule: "volume",
                summary: "again".into(),
                evidence: serde_json::Value::Null,
            },
        })
        .await;
        assert_eq!(gov.counters.notices_deduplicated.load(Ordering::Relaxed), 1);
        let counts = gov.queue.counts().unwrap();
        assert_eq!(counts.total, 3, "three notices queued");

        // Restore: counters of the scope start over, and a notice follows.
        let rec = gov
            .registry
            .restore_sender(
                sender,
                RestoreRequest {
                    actor: "ops".into(),
                    reason: None,
                    held_mail: "released".into(),
                },
            )
            .unwrap();
        gov.on_restored(&rec).await;
        assert_eq!(gov.counters.notices.load(Ordering::Relaxed), 4);
        gov.check_rcpt(&gov.registry.snapshot(), &d, sender, "r8@far.example")
            .unwrap();
        assert!(rx.try_recv().is_err(), "recent traffic was forgotten");
    }

    #[tokio::test]
    async fn detector_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (gov, d) = setup(dir.path());
            gov.check_rcpt(
                &gov.registry.snapshot(),
                &d,
                "a@agency.example.kz",
                "x@far.example",
            )
            .unwrap();
            gov.save(true).await;
        }
        let gov = setup_again(dir.path());
        let k = gov.keyer.sender("a@agency.example.kz");
        let shard = gov.scopes.shard(k);
        let t = shard.get(&k).expect("loaded");
        assert_eq!(t.name, "s:a@agency.example.kz");
        assert_eq!(t.stats.cur.recipients, 1);
    }

    fn setup_again(dir: &std::path::Path) -> Arc<Governor> {
        let store = crate::store::Store::open(dir).unwrap();
        let registry = Arc::new(Registry::open(store).unwrap());
        let queue =
            ugem_queue::Queue::open(&dir.join("queue"), ugem_queue::QueueOptions::default())
                .unwrap();
        Governor::new(Arc::new(Config::default()), registry, queue)
    }
}

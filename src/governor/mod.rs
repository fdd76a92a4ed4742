//! Rate governors, the anomaly detector and automatic suspension.
//!
//! - [`limits`]: rates; GCRA cells kept in each scope's state (saved, on the
//!   governor's clock) and the governor crate's keyed limiter for connections.
//! - [`novelty`]: the memory of who wrote to whom (a compromised mailbox
//!   writes to addresses it never wrote to).
//! - [`detector`]: per-scope windows, learned peaks, and the rules.
//! - [`classify`]: what a remote reply means (refusal, spam, listing of the
//!   gateway, deferral), on enhanced status codes first.
//! - [`ladder`]: warn, throttle, suspend; a domain only on its own evidence.
//! - [`checks`] (connection, MAIL, RCPT) and [`outcomes`] (delivery results)
//!   are the hot paths: memory only. Decisions go over a channel to
//!   [`effects`] ([`Governor::run`]), which writes the store, holds mail and
//!   notifies off the hot path; [`state`] saves and bounds what decides.
//! - [`cluster`]: with a registry shared in PostgreSQL, the nodes send
//!   each other what their checks accepted, so limits and detection hold
//!   across the nodes.
//! - [`shared`]: with that shared registry, the scopes' state and the
//!   recipient memory are kept there too, so a new node starts with the
//!   cluster's history ([`journal`]: the memory's chunks there).
//! - [`clock`]: time is a dependency, so [`replay`] feeds weeks of traffic
//!   through this same code on a virtual clock.

pub mod actions;
pub mod blocklist_watch;
pub mod blocklists;
pub mod checks;
pub mod classify;
pub mod clock;
pub mod cluster;
pub mod detector;
pub mod disconnection;
pub mod effects;
pub mod journal;
pub mod ladder;
pub mod limits;
pub mod notices;
pub mod novelty;
pub mod outcomes;
pub mod replay;
pub mod scopes;
pub mod servers;
pub mod settings;
pub mod shared;
pub mod state;
pub mod suspension;
pub mod throughput;
pub mod unregistered;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{Config, Live};
use crate::domain::Domain;
use crate::model::suspensions::Scope;
use crate::notify::webhook::Webhooks;
use crate::registry::Registry;
use crate::store::LocalStore;
use clock::Clock;
use detector::{ScopeStats, Trip, Window};
use ladder::LadderState;
use limits::{Cell, Limiters};
use novelty::RecipientMemory;
use scopes::{Keyer, ScopeKey, ScopeTable};
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
    /// RCPT commands deferred because the recipient was never seen and the
    /// sender is throttled or over its unproven allowance.
    pub rcpt_deferred_new: AtomicU64,
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
            "rcpt_deferred_new": g(&self.rcpt_deferred_new),
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
    rec: &crate::model::domains::DomainRecord,
) -> serde_json::Value {
    // The values in force are exactly what the checks resolve.
    let r = checks::Resolved::of(&cfg.governor, rec.limits.as_ref(), None);
    let senders: serde_json::Map<String, serde_json::Value> = rec
        .senders
        .keys()
        .map(|s| (s.clone(), effective_sender_limits(cfg, rec, s)))
        .collect();
    serde_json::json!({
        "domain": rec.name,
        "overrides": rec.limits,
        "messages_per_hour": r.d_msg_hour.count,
        "recipients_per_hour": r.d_rcpt_hour.count,
        "sender_messages_per_hour": r.s_msg_hour.count,
        "sender_recipients_per_hour": r.s_rcpt_hour.count,
        "sender_messages_per_minute": r.s_msg_min.count,
        "sender_recipients_per_minute": r.s_rcpt_min.count,
        "new_recipients_5min": r.floors.0,
        "new_recipients_hour": r.floors.1,
        "domain_new_recipients_hour": r.dfloors.1,
        "burst_percent": cfg.governor.burst_percent,
        "declared_senders": senders,
    })
}

/// A sender's limits: its declaration over its domain's limits.
pub fn effective_sender_limits(
    cfg: &Config,
    rec: &crate::model::domains::DomainRecord,
    sender: &str,
) -> serde_json::Value {
    let r = checks::Resolved::of(&cfg.governor, rec.limits.as_ref(), rec.senders.get(sender));
    serde_json::json!({
        "sender": sender,
        "domain": rec.name,
        "declared": rec.senders.get(sender),
        "messages_per_minute": r.s_msg_min.count,
        "messages_per_hour": r.s_msg_hour.count,
        "recipients_per_minute": r.s_rcpt_min.count,
        "recipients_per_hour": r.s_rcpt_hour.count,
        "judged_on_novelty": r.declared.is_none(),
        "new_recipients_5min": r.floors.0,
        "new_recipients_hour": r.floors.1,
    })
}

/// The GCRA cells of one scope.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Cells {
    /// Messages per minute (senders).
    #[serde(default)]
    pub msg_min: Cell,
    /// Messages per hour.
    #[serde(default)]
    pub msg_hour: Cell,
    /// Recipients per minute (senders).
    #[serde(default)]
    pub rcpt_min: Cell,
    /// Recipients per hour.
    #[serde(default)]
    pub rcpt_hour: Cell,
}

impl Cells {
    fn idle(&self, now_ms: u64) -> bool {
        [self.msg_min, self.msg_hour, self.rcpt_min, self.rcpt_hour]
            .iter()
            .all(|c| c.is_idle(now_ms))
    }
}

/// What a domain leaves out of its own judgement: the traffic of its
/// senders that answer for it themselves (tripped a rule, or declared).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Excluded {
    /// Over 5 minutes.
    pub short: Window,
    /// Over an hour.
    pub hour: Window,
    /// Over the outcome window.
    pub outcomes: Window,
}

/// A scope's state: what decides, all of it saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracked {
    /// The scope's stored name ("d:x", "s:x").
    #[serde(skip)]
    pub name: String,
    /// Windows, peaks, history.
    pub stats: ScopeStats,
    /// Where it stands on the ladder, and its latest steps.
    #[serde(default)]
    pub ladder: LadderState,
    /// Its rate cells.
    #[serde(default)]
    pub cells: Cells,
    /// Throttled until (unix ms; 0: not throttled).
    #[serde(default)]
    pub throttled_until_ms: u64,
    /// Senders: a rule tripped; until then its traffic is its own, not its domain's.
    #[serde(default)]
    pub accountable_until_ms: u64,
    /// Domains: what their accountable senders explain.
    #[serde(default)]
    pub excluded: Excluded,
    /// Changed since the last save.
    #[serde(skip)]
    pub dirty: bool,
}

impl Tracked {
    fn new(name: String, now_ms: u64) -> Tracked {
        Tracked {
            name,
            stats: ScopeStats::new(now_ms),
            ladder: LadderState::default(),
            cells: Cells::default(),
            throttled_until_ms: 0,
            accountable_until_ms: 0,
            excluded: Excluded::default(),
            dirty: true,
        }
    }

    fn is_domain(&self) -> bool {
        self.name.starts_with("d:")
    }
}

/// A decision for the background task.
#[derive(Debug, Clone)]
pub enum Event {
    /// A ladder step for a scope.
    Step {
        /// Whose.
        scope: Scope,
        /// The domain it belongs to.
        domain: Domain,
        /// Which step.
        step: Step,
        /// Why.
        trip: Trip,
        /// When (unix ms, governor clock).
        at_ms: u64,
    },
    /// A remote refused mail because a gateway address is on a blocklist.
    GatewayListed {
        /// Which of ours.
        address: IpAddr,
        /// The remote's words.
        reply: String,
        /// Whose mail it was.
        domain: Option<Domain>,
        /// When.
        at_ms: u64,
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
    /// Read on each use, so that a reload's limits apply at the next check.
    cfg: Live,
    registry: Arc<Registry>,
    /// The node-local store: detector state, webhook outbox.
    local: LocalStore,
    queue: ugem_queue::Queue,
    clock: Arc<dyn Clock>,
    limits: Limiters,
    keyer: Keyer,
    scopes: ScopeTable<Tracked>,
    memory: Arc<RecipientMemory>,
    /// The gateway's own addresses: configured, and seen as the source of
    /// outbound connections. A blocklist refusal naming one is a gateway alarm.
    own: std::sync::RwLock<Vec<IpAddr>>,
    /// Blocklist refusals naming a gateway address, by address.
    listings: Mutex<HashMap<IpAddr, Listing>>,
    /// The blocklist watch's open listings and latest look-ups.
    blocklists: blocklist_watch::WatchState,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    webhooks: Webhooks,
    /// Where the recipient memory is kept (None: in memory only).
    state_dir: Option<PathBuf>,
    /// What it has done.
    pub counters: Counters,
    /// Delivery results per minute, last hour.
    pub deliveries: throughput::Throughput,
    /// The exchange with the other nodes, once joined (a shared registry).
    cluster: std::sync::OnceLock<cluster::Cluster>,
    /// The state kept in the shared store, once joined.
    shared: std::sync::OnceLock<Arc<shared::Shared>>,
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

impl Governor {
    /// Builds the governor on the system clock and loads the state saved in
    /// the local store and under `server.data_dir/governor`.
    pub fn new(
        cfg: Live,
        registry: Arc<Registry>,
        local: LocalStore,
        queue: ugem_queue::Queue,
    ) -> Arc<Governor> {
        let dir = cfg.current().server.data_dir.join("governor");
        Governor::with_clock(
            cfg,
            registry,
            local,
            queue,
            Arc::new(clock::SystemClock),
            Some(dir),
        )
    }

    /// Builds the governor on `clock`; with `state_dir` its recipient memory
    /// is kept there (a replay keeps it in memory).
    pub fn with_clock(
        cfg: Live,
        registry: Arc<Registry>,
        local: LocalStore,
        queue: ugem_queue::Queue,
        clock: Arc<dyn Clock>,
        state_dir: Option<PathBuf>,
    ) -> Arc<Governor> {
        let start = cfg.current();
        let g = &start.governor;
        // Events wait in the store's outbox until `run` starts the sender.
        let webhooks = Webhooks::new(local.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let memory = match &state_dir {
            Some(d) => RecipientMemory::open(d, g.recipient_memory).unwrap_or_else(|e| {
                tracing::error!(dir = %d.display(), error = %e, "cannot keep the recipient memory on disk; it starts empty and lives in memory");
                RecipientMemory::in_memory(g.recipient_memory)
            }),
            None => RecipientMemory::in_memory(g.recipient_memory),
        };
        let gov = Governor {
            limits: Limiters::new(),
            keyer: Keyer::default(),
            scopes: ScopeTable::default(),
            memory: Arc::new(memory),
            own: std::sync::RwLock::new(
                start
                    .registration
                    .gateway_addresses
                    .iter()
                    .map(|ip| crate::policy::canonical_ip(*ip))
                    .collect(),
            ),
            listings: Mutex::new(HashMap::new()),
            blocklists: Default::default(),
            events: tx,
            events_rx: Mutex::new(Some(rx)),
            webhooks,
            state_dir,
            counters: Counters::default(),
            deliveries: Default::default(),
            cluster: std::sync::OnceLock::new(),
            shared: std::sync::OnceLock::new(),
            clock,
            cfg,
            registry,
            local,
            queue,
        };
        gov.load();
        Arc::new(gov)
    }

    /// The configuration in force now.
    fn cfg(&self) -> Arc<Config> {
        self.cfg.current()
    }

    fn enabled(&self) -> bool {
        self.cfg().governor.enabled
    }

    /// Now, on the governor's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The scope `k`'s state in its locked shard, made (named by `name`) if
    /// new, its windows moved to `now`; with the buckets completed on the way.
    fn tracked<'a>(
        &self,
        shard: &'a mut HashMap<ScopeKey, Tracked, scopes::Hasher>,
        k: ScopeKey,
        now: u64,
        name: impl FnOnce() -> String,
    ) -> (&'a mut Tracked, detector::Learned) {
        let t = shard.entry(k).or_insert_with(|| Tracked::new(name(), now));
        let learned = t.stats.roll(now, &self.cfg().governor);
        if learned.0.is_some() || learned.1.is_some() {
            t.dirty = true;
        }
        if t.is_domain() {
            let len = self.cfg().governor.window.0.as_millis() as u64;
            t.excluded.short.roll(now, detector::SHORT_MS);
            t.excluded.hour.roll(now, detector::HOUR_MS);
            t.excluded.outcomes.roll(now, len);
        }
        (t, learned)
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

    /// The state shown by `GET /api/v1/governor`.
    pub fn status(&self) -> serde_json::Value {
        let now = self.now_ms();
        let mut throttled = Vec::new();
        let mut tracked = 0usize;
        self.scopes.each_shard(|m| {
            tracked += m.len();
            for t in m.values().filter(|t| t.throttled_until_ms > now) {
                throttled.push(serde_json::json!({
                    "scope": scope_of(&t.name),
                    "until": clock::utc(t.throttled_until_ms),
                    "last_step": t.ladder.history.last(),
                }));
            }
        });
        let (mut domains, mut senders) = (0u64, 0u64);
        for s in self.registry.snapshot().active_suspensions() {
            match s.scope {
                Scope::Domain(_) => domains += 1,
                Scope::Sender(_) => senders += 1,
            }
        }
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
                    "last_at": clock::utc(l.last_ms),
                })
            })
            .collect();
        serde_json::json!({
            "enabled": self.enabled(),
            "counters": self.counters.to_json(),
            "throttled": throttled,
            "active_suspensions": {"domain": domains, "sender": senders},
            "tracked_scopes": tracked,
            // Automatic decisions waiting for the shared store (PostgreSQL).
            "store_pending_writes": self.registry.pending_writes(),
            // Set while the node serves its local copy of the registry: the
            // shared store has not answered since the node started.
            "registry_local_copy": self.registry.on_local_copy().map(|c| serde_json::json!({
                "as_of": c.as_of,
                "since": c.since,
            })),
            "deliveries": self.deliveries.to_json(now),
            "gateway_listings": listings,
            "blocklists": self.blocklist_status(),
            "limiter_keys": self.limits.keys(),
            "cluster": self.cluster.get().map(cluster::Cluster::to_json),
            // The detector's state kept in the shared store (PostgreSQL).
            "shared_state": self.shared.get().map(|s| s.to_json()),
            "recipient_memory_bytes": self.memory.bytes(),
            "webhooks": {
                "delivered": self.webhooks.stats.delivered.load(Ordering::Relaxed),
                "failed": self.webhooks.stats.failed.load(Ordering::Relaxed),
            },
        })
    }

    #[cfg(test)]
    fn data_dir_for_test(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_default()
    }

    /// One scope's detector state, for staff (`GET /api/v1/governor/scopes/{scope}`).
    pub fn scope_state(&self, scope: &Scope) -> Option<serde_json::Value> {
        let k = self.keyer.key(&key(scope));
        let shard = self.scopes.shard(k);
        let t = shard.get(&k)?;
        let mut v = serde_json::to_value(t).ok()?;
        v["scope"] = serde_json::json!(scope);
        Some(v)
    }
}

#[cfg(test)]
mod tests;

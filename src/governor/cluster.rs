//! Limits and detection across the nodes that share a registry in
//! PostgreSQL: each node tells the others what its SMTP path accepted, so
//! a flood split across the nodes is judged on its cluster-wide totals.
//!
//! The scheme: *observations, batched and broadcast*. The checks push one
//! [`Obs`] per accepted MAIL and RCPT, per deferred never-seen recipient
//! and per ladder step into a buffer (a push under a mutex: the cost per
//! RCPT). Every `store.governor_sync` (200 ms) the buffer is sent through
//! the store's [`PeerLink`] (PostgreSQL NOTIFY on `ugem_governor`, chunked
//! under 8000 bytes, each message naming its node so that a node skips its
//! own). A node takes in another's observations as if they were its own
//! traffic, but refuses nothing for them: the pair becomes known, the
//! windows and novelty count it, the rate cells are charged, a throttle is
//! copied. The *next* local MAIL or RCPT of that sender then meets the
//! cluster-wide totals, so the flood is stopped where one node would stop
//! it, give or take what the other node accepted within one interval plus
//! the link's latency. Whichever node trips first suspends through the
//! shared registry (one active suspension per scope: the database refuses
//! a second one, and the copied step keeps the other node from trying).
//!
//! Recipients travel as addresses, not as hashes: the nodes share one
//! seed ([`super::shared`]) only when each reached the store at start. When PostgreSQL is unreachable
//! batches are dropped and each node governs alone on its own traffic
//! (fail-static); nothing on the SMTP path waits for the link.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::domain::Domain;
use crate::model::suspensions::Scope;
use crate::store::{PEER_MESSAGE_MAX, PeerLink};

use super::detector;
use super::novelty::PairKind;
use super::settings::Step;
use super::{Governor, key};

/// One thing a node's SMTP path saw, for the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Obs {
    /// A MAIL FROM accepted.
    #[serde(rename = "m")]
    Mail {
        /// The sender's domain.
        d: String,
        /// The sender (lowercased).
        s: String,
    },
    /// A RCPT TO accepted.
    #[serde(rename = "r")]
    Rcpt {
        /// The sender's domain.
        d: String,
        /// The sender.
        s: String,
        /// The recipient address.
        r: String,
        /// Never seen before from this sender (on the node that saw it).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        n: bool,
    },
    /// A never-seen recipient deferred (counted once per address).
    #[serde(rename = "t")]
    Tried {
        /// The sender's domain.
        d: String,
        /// The sender.
        s: String,
        /// The recipient address.
        r: String,
    },
    /// A ladder step taken.
    #[serde(rename = "x")]
    Step {
        /// The scope's stored name ("d:x", "s:x").
        scope: String,
        /// The domain it belongs to.
        d: String,
        /// Which step.
        step: Step,
        /// The rule that tripped.
        rule: String,
    },
}

/// One message on the link: a node's observations of one interval (or a
/// part of them, when they do not fit in one message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    /// Format version.
    pub v: u32,
    /// The sending node's id.
    pub node: String,
    /// When it was sent (unix ms, the sender's clock): for the latency.
    pub at: u64,
    /// What it saw.
    pub o: Vec<Obs>,
}

/// Why a message from the link was not taken in.
#[derive(Debug, thiserror::Error)]
pub enum PeerMessageError {
    /// Not a batch.
    #[error("not a governor batch: {0}")]
    Json(#[from] serde_json::Error),
    /// A batch of a format this build does not know.
    #[error("governor batch of version {0}, this build reads version {VERSION}")]
    Version(u32),
}

/// The batch format this build writes and reads.
pub const VERSION: u32 = 1;

impl Batch {
    /// Reads one message.
    pub fn decode(text: &str) -> Result<Batch, PeerMessageError> {
        let b: Batch = serde_json::from_str(text)?;
        if b.v != VERSION {
            return Err(PeerMessageError::Version(b.v));
        }
        Ok(b)
    }
}

/// Writes `obs` as messages of at most `max` bytes each. An observation too
/// long for a message on its own (an address is at most 256 octets, so
/// never in practice) is dropped.
pub fn encode(node: &str, at: u64, obs: &[Obs], max: usize) -> Vec<String> {
    let head = format!(
        "{{\"v\":{VERSION},\"node\":{},\"at\":{at},\"o\":[",
        json_str(node)
    );
    let mut out = Vec::new();
    let mut cur = head.clone();
    let mut n = 0;
    for o in obs {
        let Ok(item) = serde_json::to_string(o) else {
            continue;
        };
        if head.len() + item.len() + 2 > max {
            continue;
        }
        // Room for the comma and the closing "]}".
        if n > 0 && cur.len() + 1 + item.len() + 2 > max {
            cur.push_str("]}");
            out.push(std::mem::replace(&mut cur, head.clone()));
            n = 0;
        }
        if n > 0 {
            cur.push(',');
        }
        cur.push_str(&item);
        n += 1;
    }
    if n > 0 {
        cur.push_str("]}");
        out.push(cur);
    }
    out
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// What the exchange has done, for `GET /api/v1/governor`.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Observations sent.
    pub sent: AtomicU64,
    /// Messages sent.
    pub messages: AtomicU64,
    /// Observations dropped: the link's queue was full (PostgreSQL down).
    pub dropped: AtomicU64,
    /// Observations taken in from other nodes.
    pub received: AtomicU64,
    /// Messages from other nodes that could not be read.
    pub unreadable: AtomicU64,
    /// Latency of the latest message from another node (ms, the two
    /// nodes' clocks).
    pub last_latency_ms: AtomicU64,
    /// The longest such latency seen.
    pub max_latency_ms: AtomicU64,
}

/// This node's part in the exchange.
#[derive(Debug)]
pub struct Cluster {
    /// This node's id in the messages: random per start.
    pub node: String,
    /// How often the buffer is sent.
    pub every: Duration,
    buf: Mutex<Vec<Obs>>,
    /// What it has done.
    pub counters: ClusterCounters,
}

/// Observations kept at most between two sends: beyond it (a link that
/// cannot keep up) the newest are dropped, memory stays bounded.
const BUFFER_MAX: usize = 100_000;

impl Cluster {
    /// An empty buffer for a node sending every `every`.
    pub fn new(every: Duration) -> Cluster {
        Cluster {
            node: format!("{:016x}", rand::random::<u64>()),
            every,
            buf: Mutex::new(Vec::with_capacity(1024)),
            counters: ClusterCounters::default(),
        }
    }

    /// Adds one observation (the SMTP path's whole cost).
    pub fn push(&self, o: Obs) {
        let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() < BUFFER_MAX {
            b.push(o);
        } else {
            drop(b);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes what the buffer holds.
    pub fn take(&self) -> Vec<Obs> {
        // The next interval starts with room for as much as this one had
        // (at least the initial 1024): no reallocation on the SMTP path
        // while the traffic keeps its pace.
        let room = self.buf.lock().unwrap_or_else(|p| p.into_inner()).len();
        let fresh = Vec::with_capacity(room.max(1024));
        let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *b, fresh)
    }

    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "node": self.node,
            "sync_ms": self.every.as_millis() as u64,
            "sent": g(&c.sent),
            "messages": g(&c.messages),
            "dropped": g(&c.dropped),
            "received": g(&c.received),
            "unreadable": g(&c.unreadable),
            "last_latency_ms": g(&c.last_latency_ms),
            "max_latency_ms": g(&c.max_latency_ms),
        })
    }
}

impl Governor {
    /// Joins the exchange over `link`, sending every `every`, until `stop`
    /// turns true. Called once at start when the registry is shared.
    pub async fn run_cluster(
        self: Arc<Self>,
        link: PeerLink,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        if !self.join_cluster(every) {
            return;
        }
        let Some(c) = self.cluster.get() else {
            return;
        };
        tracing::info!(node = %c.node, every = ?every, "governor exchange with the other nodes started");
        let PeerLink { send, mut received } = link;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let obs = c.take();
                    if obs.is_empty() {
                        continue;
                    }
                    let n = obs.len() as u64;
                    let mut ok = true;
                    for m in encode(&c.node, crate::store::now_ms(), &obs, PEER_MESSAGE_MAX) {
                        if send.try_send(m).is_err() {
                            ok = false;
                        } else {
                            c.counters.messages.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if ok {
                        c.counters.sent.fetch_add(n, Ordering::Relaxed);
                        failing = false;
                    } else {
                        c.counters.dropped.fetch_add(n, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!("governor exchange: the link is not keeping up (PostgreSQL down?); this node governs on its own traffic meanwhile");
                        }
                        failing = true;
                    }
                }
                m = received.recv() => {
                    let Some(m) = m else { break };
                    self.take_in(c, &m);
                }
                _ = crate::shutdown::stopped(&mut stop) => break,
            }
        }
    }

    /// Starts keeping observations for the other nodes (what
    /// [`Governor::run_cluster`] sends); false if already joined.
    pub fn join_cluster(&self, every: Duration) -> bool {
        self.cluster.set(Cluster::new(every)).is_ok()
    }

    /// This node's part in the exchange, once joined.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.get()
    }

    /// Takes in one message from the link (this node's own are skipped).
    pub fn take_in(&self, c: &Cluster, text: &str) {
        let b = match Batch::decode(text) {
            Ok(b) => b,
            Err(e) => {
                c.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "governor exchange: message skipped");
                return;
            }
        };
        if b.node == c.node {
            return;
        }
        let lat = crate::store::now_ms().saturating_sub(b.at);
        c.counters.last_latency_ms.store(lat, Ordering::Relaxed);
        c.counters.max_latency_ms.fetch_max(lat, Ordering::Relaxed);
        c.counters
            .received
            .fetch_add(b.o.len() as u64, Ordering::Relaxed);
        for o in &b.o {
            self.absorb(o);
        }
    }

    /// Pushes an observation when this node is part of a cluster.
    #[inline]
    pub(super) fn tell_peers(&self, o: impl FnOnce() -> Obs) {
        if let Some(c) = self.cluster.get() {
            c.push(o());
        }
    }

    /// Applies another node's observation to this node's state, as if the
    /// traffic had been local, without deciding anything on it.
    pub fn absorb(&self, o: &Obs) {
        match o {
            Obs::Mail { d, s } => self.absorb_mail(d, s),
            Obs::Rcpt { d, s, r, n } => self.absorb_rcpt(d, s, r, *n),
            Obs::Tried { d, s, r } => self.absorb_tried(d, s, r),
            Obs::Step {
                scope,
                d,
                step,
                rule,
            } => self.absorb_step(scope, d, *step, rule),
        }
    }

    fn absorb_mail(&self, d: &str, s: &str) {
        let Ok(domain) = Domain::parse(d) else { return };
        let Some(sj) = self.subject(&self.registry.snapshot(), &domain, s) else {
            return;
        };
        let now = sj.now;
        {
            let mut shard = self.scopes.shard(sj.ks);
            let (t, _) = self.tracked(&mut shard, sj.ks, now, || format!("s:{s}"));
            t.dirty = true;
            t.cells.msg_min.charge(sj.r.s_msg_min, now);
            t.cells.msg_hour.charge(sj.r.s_msg_hour, now);
        }
        let mut shard = self.scopes.shard(sj.kd);
        let (t, _) = self.tracked(&mut shard, sj.kd, now, || format!("d:{domain}"));
        t.dirty = true;
        t.cells.msg_hour.charge(sj.r.d_msg_hour, now);
    }

    fn absorb_rcpt(&self, d: &str, s: &str, rcpt: &str, remote_new: bool) {
        let Ok(domain) = Domain::parse(d) else { return };
        let Some(sj) = self.subject(&self.registry.snapshot(), &domain, s) else {
            return;
        };
        let now = sj.now;
        let mem = &self.memory;
        let rid = mem.recipient_id(rcpt);
        let sid = mem.scope_id_of(b's', s);
        // Known to either node is known: a pair this node accepted itself
        // already counted here as new.
        let new = mem.insert(mem.pair(PairKind::Sender, sid, rid)) && remote_new;
        let (accountable, learned) = {
            let mut shard = self.scopes.shard(sj.ks);
            let (t, learned) = self.tracked(&mut shard, sj.ks, now, || format!("s:{s}"));
            t.dirty = true;
            t.cells.rcpt_min.charge(sj.r.s_rcpt_min, now);
            t.cells.rcpt_hour.charge(sj.r.s_rcpt_hour, now);
            t.stats.note_recipient(new, now);
            if new {
                let dest = rcpt.rsplit_once('@').map_or(rcpt, |(_, x)| x);
                t.stats.note_destination(mem.recipient_id(dest));
            }
            (
                sj.r.declared.is_some() || t.accountable_until_ms > now,
                learned,
            )
        };
        let mut shard = self.scopes.shard(sj.kd);
        let (t, _) = self.tracked(&mut shard, sj.kd, now, || format!("d:{domain}"));
        t.dirty = true;
        if !accountable {
            t.stats.learn_sender_peak(learned.0, learned.1);
        }
        t.cells.rcpt_hour.charge(sj.r.d_rcpt_hour, now);
        let dnew = new
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
    }

    fn absorb_tried(&self, d: &str, s: &str, rcpt: &str) {
        let Ok(domain) = Domain::parse(d) else { return };
        let Some(sj) = self.subject(&self.registry.snapshot(), &domain, s) else {
            return;
        };
        let mem = &self.memory;
        let tried = mem.pair(
            PairKind::Tried,
            mem.scope_id_of(b's', s),
            mem.recipient_id(rcpt),
        );
        if mem.insert(tried) {
            let mut shard = self.scopes.shard(sj.ks);
            let (t, _) = self.tracked(&mut shard, sj.ks, sj.now, || format!("s:{s}"));
            t.dirty = true;
            t.stats.note_tried(sj.now);
        }
    }

    fn absorb_step(&self, scope: &str, d: &str, step: Step, rule: &str) {
        if !self.enabled() {
            return;
        }
        let Some(sc) = super::scope_of(scope) else {
            return;
        };
        let now = self.now_ms();
        let cfg = self.cfg();
        let g = &cfg.governor;
        let k = key(&sc);
        let sk = self.keyer.key(&k);
        let newly_accountable = {
            let mut shard = self.scopes.shard(sk);
            let (t, _) = self.tracked(&mut shard, sk, now, || k.clone());
            t.dirty = true;
            t.ladder.record(step, rule, now);
            if let Some(i) = g.ladder.iter().position(|x| *x == step) {
                t.ladder.next = t.ladder.next.max(i + 1);
            }
            if step == Step::Throttle {
                t.throttled_until_ms = t
                    .throttled_until_ms
                    .max(now + g.throttle_duration.0.as_millis() as u64);
            }
            let mut newly = false;
            if matches!(sc, Scope::Sender(_)) && step != Step::Warn {
                newly = t.accountable_until_ms <= now;
                t.stats.last_trip_ms = now;
                t.accountable_until_ms = now + detector::HOUR_MS;
            }
            newly
        };
        // As on the node that tripped: the sender's traffic so far is now
        // its own, not its domain's.
        if newly_accountable && let Ok(domain) = Domain::parse(d) {
            let kd = self.keyer.domain(domain.as_str());
            self.exclude(kd, now, self.sender_windows(sk));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(i: usize) -> Obs {
        Obs::Rcpt {
            d: "agency.example.kz".into(),
            s: "clerk@agency.example.kz".into(),
            r: format!("citizen-{i}@example.org"),
            n: i.is_multiple_of(2),
        }
    }

    #[test]
    fn batches_stay_under_the_limit_and_lose_nothing() {
        let obs: Vec<Obs> = (0..1000).map(rcpt).collect();
        let msgs = encode("node-a", 42, &obs, PEER_MESSAGE_MAX);
        assert!(
            msgs.len() > 1,
            "1000 observations need more than one message"
        );
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= PEER_MESSAGE_MAX, "{} bytes", m.len());
            let b = Batch::decode(m).unwrap();
            assert_eq!((b.node.as_str(), b.at), ("node-a", 42));
            back.extend(b.o);
        }
        assert_eq!(back, obs);
    }

    #[test]
    fn nothing_to_send_is_no_message_and_a_giant_is_dropped() {
        assert!(encode("n", 0, &[], 100).is_empty());
        let big = Obs::Tried {
            d: "x.kz".into(),
            s: "a@x.kz".into(),
            r: "y".repeat(500),
        };
        let msgs = encode("n", 0, &[big, rcpt(1)], 300);
        assert_eq!(msgs.len(), 1);
        assert_eq!(Batch::decode(&msgs[0]).unwrap().o, vec![rcpt(1)]);
    }

    #[test]
    fn every_kind_round_trips_and_other_versions_are_refused() {
        let obs = vec![
            Obs::Mail {
                d: "x.kz".into(),
                s: "a@x.kz".into(),
            },
            rcpt(0),
            rcpt(1),
            Obs::Tried {
                d: "x.kz".into(),
                s: "a@x.kz".into(),
                r: "b@y.org".into(),
            },
            Obs::Step {
                scope: "s:a@x.kz".into(),
                d: "x.kz".into(),
                step: Step::Throttle,
                rule: "novelty".into(),
            },
        ];
        let m = encode("n\"q", 7, &obs, PEER_MESSAGE_MAX);
        assert_eq!(Batch::decode(&m[0]).unwrap().o, obs);
        assert_eq!(Batch::decode(&m[0]).unwrap().node, "n\"q");
        let other = m[0].replace("\"v\":1", "\"v\":9");
        assert!(matches!(
            Batch::decode(&other),
            Err(PeerMessageError::Version(9))
        ));
        assert!(Batch::decode("NOTIFY").is_err());
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let c = Cluster::new(Duration::from_millis(200));
        for i in 0..BUFFER_MAX + 5 {
            c.push(rcpt(i));
        }
        assert_eq!(c.counters.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(c.take().len(), BUFFER_MAX);
        assert!(c.take().is_empty());
    }
}

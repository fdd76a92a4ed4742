//! `ugem governor replay`: a trace of gateway events fed through the real
//! governor (limits, novelty memory, detector, ladder, decisions, domain
//! escalation, suspensions in a real registry) on a virtual clock, so that
//! weeks of traffic replay in seconds. The SMTP policy's MAIL and RCPT
//! verdicts are the real ones too; deliveries happen when the trace says
//! the remote answered, and held mail of a suspended scope is not delivered.
//!
//! Not replayed: the per-IP connection rate (the governor crate's limiter
//! runs on the system clock; it guards sockets, not reputation).
//!
//! A trace is JSON lines, one [`TraceEvent`] each, in time order (`t` in
//! unix milliseconds).

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::address::{ForwardPath, Mailbox, ReversePath};
use crate::config::Config;
use crate::model::domains::{DomainLimits, SenderLimits};
use crate::model::suspensions::Scope;
use crate::policy::{self, MailVerdict, RcptKind, RcptVerdict, SenderStanding};
use crate::registry::{Registry, RestoreRequest, SuspendRequest};

use super::clock::{Clock, ManualClock, utc};
use super::outcomes;
use super::settings::Step;
use super::{Event, Governor};

/// One event of a trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum TraceEvent {
    /// The gateway's own addresses (as `serve` learns them from its
    /// outbound connections): a refusal naming one is a gateway listing.
    Gateway {
        /// When.
        t: u64,
        /// Its source addresses.
        addresses: Vec<IpAddr>,
    },
    /// Staff register a domain with its servers.
    Domain {
        /// When.
        t: u64,
        /// The domain.
        domain: String,
        /// Its mail servers (IP or CIDR); default 192.0.2.1.
        #[serde(default)]
        servers: Vec<String>,
    },
    /// Staff set a domain's limits.
    Limits {
        /// When.
        t: u64,
        /// The domain.
        domain: String,
        /// The overrides.
        limits: DomainLimits,
    },
    /// Staff declare a sender.
    SenderLimits {
        /// When.
        t: u64,
        /// The sender.
        sender: String,
        /// Its limits.
        limits: SenderLimits,
    },
    /// Staff suspend a scope ("sender a@b" or "domain b").
    Suspend {
        /// When.
        t: u64,
        /// Whose.
        scope: String,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Staff restore a scope.
    Restore {
        /// When.
        t: u64,
        /// Whose.
        scope: String,
    },
    /// A client connects (counted only).
    Connect {
        /// When.
        t: u64,
        /// From where.
        ip: IpAddr,
    },
    /// MAIL FROM in session `s`.
    Mail {
        /// When.
        t: u64,
        /// The session.
        s: u64,
        /// The sender.
        from: String,
        /// The client (default: the sender domain's first server).
        #[serde(default)]
        ip: Option<IpAddr>,
    },
    /// RCPT TO in session `s`.
    Rcpt {
        /// When.
        t: u64,
        /// The session.
        s: u64,
        /// The recipient.
        to: String,
        /// What the remote answers at each delivery attempt (none: "250 ok").
        #[serde(default)]
        replies: Vec<String>,
    },
    /// End of data in session `s`: queued with its accepted recipients.
    Data {
        /// When.
        t: u64,
        /// The session.
        s: u64,
    },
    /// A whole message at once: MAIL, each RCPT, DATA.
    Message {
        /// When.
        t: u64,
        /// The sender.
        from: String,
        /// The recipients.
        to: Vec<String>,
        /// Remote answers per recipient (absent: delivered).
        #[serde(default)]
        replies: BTreeMap<String, Vec<String>>,
        /// The client (default: the sender domain's first server).
        #[serde(default)]
        ip: Option<IpAddr>,
    },
    /// A delivery result, as a log shows it.
    Delivery {
        /// When.
        t: u64,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The remote's reply.
        reply: String,
        /// The recipient's first attempt (default true).
        #[serde(default)]
        first: Option<bool>,
    },
    /// A label for reports (e.g. where a compromise starts).
    Mark {
        /// When.
        t: u64,
        /// What.
        label: String,
        /// About whom.
        #[serde(default)]
        sender: Option<String>,
    },
}

impl TraceEvent {
    /// The event's time.
    pub fn t(&self) -> u64 {
        match self {
            TraceEvent::Gateway { t, .. }
            | TraceEvent::Domain { t, .. }
            | TraceEvent::Limits { t, .. }
            | TraceEvent::SenderLimits { t, .. }
            | TraceEvent::Suspend { t, .. }
            | TraceEvent::Restore { t, .. }
            | TraceEvent::Connect { t, .. }
            | TraceEvent::Mail { t, .. }
            | TraceEvent::Rcpt { t, .. }
            | TraceEvent::Data { t, .. }
            | TraceEvent::Message { t, .. }
            | TraceEvent::Delivery { t, .. }
            | TraceEvent::Mark { t, .. } => *t,
        }
    }
}

/// One decision of the governor, as the replay prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Virtual time (unix ms).
    pub t: u64,
    /// The same, readable.
    pub time: String,
    /// `warn`, `throttle`, `suspend`, `gateway_listed`, `expired`.
    pub step: String,
    /// "sender a@b", "domain b", or a gateway address.
    pub scope: String,
    /// The rule.
    pub rule: String,
    /// In words.
    pub summary: String,
    /// In numbers.
    pub evidence: serde_json::Value,
    /// Recipients of the scope accepted so far (senders).
    pub accepted_recipients: u64,
}

/// What one sender did and what was done to it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Messages whose MAIL was accepted.
    pub messages: u64,
    /// MAIL refused (suspended, rate, policy).
    pub mail_refused: u64,
    /// Recipients accepted.
    pub recipients: u64,
    /// RCPT deferred by a rate limit.
    pub deferred_rate: u64,
    /// RCPT deferred as a never-seen recipient (throttle or unproven allowance).
    pub deferred_new: u64,
    /// RCPT or MAIL refused because the sender or domain was suspended.
    pub refused_suspended: u64,
    /// Warnings.
    pub warnings: u64,
    /// Throttles.
    pub throttles: u64,
    /// Suspensions (automatic).
    pub suspensions: u64,
    /// When first suspended.
    pub first_suspended_ms: Option<u64>,
    /// Recipients accepted when first suspended.
    pub recipients_at_suspension: Option<u64>,
    /// The rule of the first suspension.
    pub suspension_rule: Option<String>,
}

/// A mark with what its sender had done by then.
#[derive(Debug, Clone, Serialize)]
pub struct MarkSeen {
    /// When.
    pub t: u64,
    /// What.
    pub label: String,
    /// About whom.
    pub sender: Option<String>,
    /// That sender's accepted recipients by then.
    pub recipients_before: u64,
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Events read.
    pub events: u64,
    /// Virtual span (ms).
    pub span_ms: u64,
    /// Every decision, in order.
    pub decisions: Vec<Decision>,
    /// Per sender.
    pub senders: BTreeMap<String, Tally>,
    /// Domains suspended automatically, with when.
    pub domains_suspended: BTreeMap<String, u64>,
    /// The marks.
    pub marks: Vec<MarkSeen>,
    /// Gateway listing alarms.
    pub gateway_listed: u64,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The scratch store or queue.
    #[error("replay scratch space: {0}")]
    Scratch(String),
    /// An event that cannot be applied.
    #[error("event at t={t}: {msg}")]
    Event {
        /// When.
        t: u64,
        /// What.
        msg: String,
    },
}

/// A delivery attempt due at a virtual time.
#[derive(Debug, PartialEq, Eq)]
struct Due {
    at: u64,
    seq: u64,
    sender: String,
    domain: String,
    rcpt: String,
    replies: Vec<String>,
    attempt: usize,
}

impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // A min-heap on (time, order of scheduling).
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// A transaction in progress.
#[derive(Debug, Default)]
struct Txn {
    sender: Option<(String, crate::domain::Domain)>,
    accepted: Vec<(String, Vec<String>)>,
}

/// The scratch directory of a replay, removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// First delivery attempt after acceptance, and the retry interval.
const FIRST_ATTEMPT_MS: u64 = 2_000;
const RETRY_MS: u64 = 10 * 60 * 1000;
/// Housekeeping (expiries, eviction) every virtual minute.
const TICK_MS: u64 = 60_000;

/// The replay machine.
pub struct Replayer {
    gov: Arc<Governor>,
    registry: Arc<Registry>,
    clock: Arc<ManualClock>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    cfg: Arc<Config>,
    due: BinaryHeap<Due>,
    seq: u64,
    txns: HashMap<u64, Txn>,
    next_tick: u64,
    report: Report,
    first_t: Option<u64>,
    _scratch: Scratch,
}

fn parse_scope(s: &str) -> Option<Scope> {
    let s = s.trim();
    if let Some(a) = s.strip_prefix("sender ") {
        return Some(Scope::Sender(a.trim().to_ascii_lowercase()));
    }
    let d = s.strip_prefix("domain ").unwrap_or(s);
    if d.contains('@') {
        return Some(Scope::Sender(d.to_ascii_lowercase()));
    }
    crate::domain::Domain::parse(d.trim())
        .ok()
        .map(Scope::Domain)
}

impl Replayer {
    /// A replay of the governor configured by `cfg`, starting at `start_ms`.
    pub async fn new(mut cfg: Config, start_ms: u64) -> Result<Replayer, ReplayError> {
        let dir = std::env::temp_dir().join(format!(
            "ugem-replay-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let scratch = Scratch(dir.clone());
        let err = |e: &dyn std::fmt::Display| ReplayError::Scratch(e.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
        cfg.server.data_dir = dir.clone();
        // Nothing leaves a replay.
        cfg.governor.webhooks.clear();
        let (local, shared) = crate::store::open(&dir).map_err(|e| err(&e))?;
        let registry = Arc::new(
            Registry::open(Arc::new(shared))
                .await
                .map_err(|e| err(&e))?,
        );
        let queue =
            ugem_queue::Queue::open(&dir.join("queue"), Default::default()).map_err(|e| err(&e))?;
        let clock = Arc::new(ManualClock::new(start_ms));
        let cfg = Arc::new(cfg);
        let gov = Governor::with_clock(
            crate::config::Live::fixed((*cfg).clone()),
            registry.clone(),
            local,
            queue,
            clock.clone(),
            None,
        );
        let rx = gov
            .take_events()
            .ok_or_else(|| ReplayError::Scratch("governor events taken".into()))?;
        Ok(Replayer {
            gov,
            registry,
            clock,
            rx,
            cfg,
            due: BinaryHeap::new(),
            seq: 0,
            txns: HashMap::new(),
            next_tick: start_ms + TICK_MS,
            report: Report::default(),
            first_t: None,
            _scratch: scratch,
        })
    }

    /// The governor under replay.
    pub fn governor(&self) -> &Arc<Governor> {
        &self.gov
    }

    /// Applies one event (after the deliveries and housekeeping due before
    /// it); `out` sees each decision as it is made.
    pub async fn apply(
        &mut self,
        ev: TraceEvent,
        out: &mut dyn FnMut(&Decision),
    ) -> Result<(), ReplayError> {
        let t = ev.t();
        self.advance(t, out).await;
        self.first_t.get_or_insert(t);
        self.report.events += 1;
        match ev {
            TraceEvent::Gateway { addresses, .. } => {
                for a in addresses {
                    self.gov.note_source_address(a);
                }
            }
            TraceEvent::Domain { t, domain, servers } => {
                let servers = if servers.is_empty() {
                    vec!["192.0.2.1".to_string()]
                } else {
                    servers
                };
                let new: crate::registry::NewDomain = serde_json::from_value(serde_json::json!({
                    "name": domain,
                    "owner": "replay",
                    "servers": servers,
                    "contacts": [{"name": "", "email": format!("it@{domain}")}],
                    "shared_servers": true,
                }))
                .map_err(|e| ReplayError::Event {
                    t,
                    msg: e.to_string(),
                })?;
                self.registry
                    .add_domain(new)
                    .await
                    .map_err(|e| ReplayError::Event {
                        t,
                        msg: e.to_string(),
                    })?;
            }
            TraceEvent::Limits { t, domain, limits } => {
                let d = crate::domain::Domain::parse(&domain).map_err(|e| ReplayError::Event {
                    t,
                    msg: e.to_string(),
                })?;
                self.registry
                    .set_limits(&d, Some(limits))
                    .await
                    .map_err(|e| ReplayError::Event {
                        t,
                        msg: e.to_string(),
                    })?;
            }
            TraceEvent::SenderLimits { t, sender, limits } => {
                self.registry
                    .set_sender_limits(&sender, Some(limits))
                    .await
                    .map_err(|e| ReplayError::Event {
                        t,
                        msg: e.to_string(),
                    })?;
            }
            TraceEvent::Suspend { t, scope, reason } => {
                let sc = parse_scope(&scope).ok_or_else(|| ReplayError::Event {
                    t,
                    msg: format!("bad scope {scope:?}"),
                })?;
                let req = SuspendRequest {
                    actor: "staff".into(),
                    rule: "staff".into(),
                    reason,
                    evidence: serde_json::Value::Null,
                    expires_at: None,
                };
                let r = match &sc {
                    Scope::Domain(d) => self.registry.suspend_domain(d, req).await,
                    Scope::Sender(s) => self.registry.suspend_sender(s, req).await,
                };
                if let Ok(rec) = r {
                    self.gov.on_suspended(&rec, 0).await;
                }
            }
            TraceEvent::Restore { t, scope } => {
                let sc = parse_scope(&scope).ok_or_else(|| ReplayError::Event {
                    t,
                    msg: format!("bad scope {scope:?}"),
                })?;
                let req = RestoreRequest {
                    actor: "staff".into(),
                    reason: Some("replayed restore".into()),
                    held_mail: "released".into(),
                };
                let active = self.registry.snapshot().suspension(&sc).map(|s| s.id);
                let r = match &sc {
                    Scope::Domain(d) => self.registry.restore_domain(d, req).await.map(|_| ()),
                    Scope::Sender(s) => self.registry.restore_sender(s, req).await.map(|_| ()),
                };
                let ended = match active {
                    Some(id) => self.registry.suspension(id).await.ok().flatten(),
                    None => None,
                };
                if let (Ok(()), Some(rec)) = (r, ended) {
                    self.gov.on_restored(&rec).await;
                }
            }
            TraceEvent::Connect { .. } => {}
            TraceEvent::Mail { s, from, ip, .. } => {
                let txn = self.mail(&from, ip);
                self.txns.insert(s, txn);
            }
            TraceEvent::Rcpt { s, to, replies, .. } => {
                if let Some(mut txn) = self.txns.remove(&s) {
                    self.rcpt(&mut txn, &to, replies);
                    self.txns.insert(s, txn);
                }
            }
            TraceEvent::Data { t, s } => {
                if let Some(txn) = self.txns.remove(&s) {
                    self.data(t, txn);
                }
            }
            TraceEvent::Message {
                t,
                from,
                to,
                mut replies,
                ip,
            } => {
                let mut txn = self.mail(&from, ip);
                if txn.sender.is_some() {
                    for r in to {
                        let rep = replies.remove(&r).unwrap_or_default();
                        self.rcpt(&mut txn, &r, rep);
                    }
                    self.data(t, txn);
                }
            }
            TraceEvent::Delivery {
                from,
                to: _,
                reply,
                first,
                ..
            } => {
                let domain = from.rsplit_once('@').map(|(_, d)| d.to_string());
                self.deliver(&from, domain.as_deref(), &reply, first.unwrap_or(true));
            }
            TraceEvent::Mark { t, label, sender } => {
                let before = sender
                    .as_ref()
                    .and_then(|s| self.report.senders.get(&s.to_ascii_lowercase()))
                    .map_or(0, |t| t.recipients);
                self.report.marks.push(MarkSeen {
                    t,
                    label,
                    sender,
                    recipients_before: before,
                });
            }
        }
        self.drain(out).await;
        Ok(())
    }

    /// Runs deliveries and housekeeping due up to `t`, then sets the clock.
    async fn advance(&mut self, t: u64, out: &mut dyn FnMut(&Decision)) {
        loop {
            let next_due = self.due.peek().map(|d| d.at).filter(|&a| a <= t);
            let next_tick = Some(self.next_tick).filter(|&a| a <= t);
            match (next_due, next_tick) {
                (Some(a), tick) if tick.is_none_or(|k| a <= k) => {
                    self.clock.set(a);
                    if let Some(d) = self.due.pop() {
                        self.attempt(d);
                    }
                }
                (_, Some(k)) => {
                    self.clock.set(k);
                    self.gov.tick().await;
                    self.next_tick = k + TICK_MS;
                }
                _ => break,
            }
            self.drain(out).await;
        }
        self.clock.set(t);
    }

    fn tally(&mut self, sender: &str) -> &mut Tally {
        self.report.senders.entry(sender.to_string()).or_default()
    }

    fn mail(&mut self, from: &str, ip: Option<IpAddr>) -> Txn {
        let Ok(mb) = Mailbox::parse(from) else {
            return Txn::default();
        };
        let key = policy::sender_key(&mb);
        let snap = self.registry.snapshot();
        let ip = ip.or_else(|| {
            let d = crate::domain::Domain::parse(from.rsplit_once('@')?.1).ok()?;
            Some(snap.domain(&d)?.servers.first()?.addr())
        });
        let Some(ip) = ip else {
            return Txn::default();
        };
        let pm = self.cfg.server.postmaster.to_string();
        match policy::mail_verdict(&snap, ip, &ReversePath::Mailbox(mb), &pm) {
            MailVerdict::Accept(SenderStanding::Relay { domain }) => {
                match self.gov.check_mail(&snap, &domain, &key) {
                    Ok(()) => {
                        self.tally(&key).messages += 1;
                        Txn {
                            sender: Some((key, domain)),
                            accepted: Vec::new(),
                        }
                    }
                    Err(_) => {
                        self.tally(&key).mail_refused += 1;
                        Txn::default()
                    }
                }
            }
            MailVerdict::Accept(SenderStanding::Inbound) => Txn::default(),
            MailVerdict::Refuse(r) => {
                let t = self.tally(&key);
                t.mail_refused += 1;
                if r.code == 451 {
                    t.refused_suspended += 1;
                }
                Txn::default()
            }
        }
    }

    fn rcpt(&mut self, txn: &mut Txn, to: &str, replies: Vec<String>) {
        let Some((sender, domain)) = txn.sender.clone() else {
            return;
        };
        let Ok(mb) = Mailbox::parse(to) else {
            return;
        };
        let snap = self.registry.snapshot();
        let standing = SenderStanding::Relay {
            domain: domain.clone(),
        };
        let fp = ForwardPath::Mailbox(mb);
        match policy::rcpt_verdict(&snap, &standing, &fp, &self.cfg.server.hostname) {
            RcptVerdict::Accept(RcptKind::Outbound) => {}
            _ => return,
        }
        // A scope suspended mid-transaction: the session's next MAIL is
        // refused; the scheduler holds what was accepted.
        let suspended = snap.suspension(&Scope::Sender(sender.clone())).is_some()
            || snap.suspension(&Scope::Domain(domain.clone())).is_some();
        if suspended {
            self.tally(&sender).refused_suspended += 1;
            return;
        }
        let address = fp.to_string();
        match self.gov.check_rcpt(&snap, &domain, &sender, &address) {
            Ok(()) => {
                self.tally(&sender).recipients += 1;
                txn.accepted.push((address, replies));
            }
            Err(r) => {
                let t = self.tally(&sender);
                if r.first_line().contains("rate limit") {
                    t.deferred_rate += 1;
                } else {
                    t.deferred_new += 1;
                }
            }
        }
    }

    fn data(&mut self, t: u64, txn: Txn) {
        let Some((sender, domain)) = txn.sender else {
            return;
        };
        for (rcpt, replies) in txn.accepted {
            self.seq += 1;
            self.due.push(Due {
                at: t + FIRST_ATTEMPT_MS,
                seq: self.seq,
                sender: sender.clone(),
                domain: domain.to_string(),
                rcpt,
                replies,
                attempt: 0,
            });
        }
    }

    /// One delivery attempt; held mail of a suspended scope waits, and is
    /// dropped here (staff decide its fate).
    fn attempt(&mut self, mut d: Due) {
        let snap = self.registry.snapshot();
        let held = snap.suspension(&Scope::Sender(d.sender.clone())).is_some()
            || crate::domain::Domain::parse(&d.domain)
                .is_ok_and(|dm| snap.suspension(&Scope::Domain(dm)).is_some());
        if held {
            return;
        }
        let reply = d
            .replies
            .get(d.attempt)
            .cloned()
            .unwrap_or_else(|| "250 2.0.0 ok".to_string());
        self.deliver(&d.sender, Some(&d.domain), &reply, d.attempt == 0);
        let temporary = reply.starts_with('4');
        if temporary && d.attempt + 1 < d.replies.len().max(1) {
            d.attempt += 1;
            d.at += RETRY_MS;
            self.seq += 1;
            d.seq = self.seq;
            self.due.push(d);
        }
    }

    fn deliver(&mut self, sender: &str, domain: Option<&str>, reply: &str, first: bool) {
        // The trace has the reply as text: typed here, at its edge.
        let outcome =
            super::classify::parse_record(reply.starts_with('2'), reply.starts_with('5'), reply);
        let r = outcomes::Result {
            outcome: &outcome,
            first,
        };
        self.gov.observe(sender, domain, true, &[r]);
    }

    /// Carries out the decisions made so far and reports them.
    async fn drain(&mut self, out: &mut dyn FnMut(&Decision)) {
        while let Ok(ev) = self.rx.try_recv() {
            let d = match &ev {
                Event::Step {
                    scope,
                    step,
                    trip,
                    at_ms,
                    ..
                } => {
                    let who = match scope {
                        Scope::Sender(s) => s.clone(),
                        Scope::Domain(d) => d.to_string(),
                    };
                    let accepted = self.report.senders.get(&who).map_or(0, |t| t.recipients);
                    if let Scope::Sender(s) = scope {
                        let t = self.tally(s);
                        match step {
                            Step::Warn => t.warnings += 1,
                            Step::Throttle => t.throttles += 1,
                            Step::Suspend => {}
                        }
                    }
                    Decision {
                        t: *at_ms,
                        time: utc(*at_ms).to_rfc3339(),
                        step: step.as_str().into(),
                        scope: scope.to_string(),
                        rule: trip.rule.into(),
                        summary: trip.summary.clone(),
                        evidence: trip.evidence.clone(),
                        accepted_recipients: accepted,
                    }
                }
                Event::GatewayListed {
                    address,
                    reply,
                    at_ms,
                    ..
                } => {
                    self.report.gateway_listed += 1;
                    Decision {
                        t: *at_ms,
                        time: utc(*at_ms).to_rfc3339(),
                        step: "gateway_listed".into(),
                        scope: address.to_string(),
                        rule: "listing".into(),
                        summary: reply.clone(),
                        evidence: serde_json::Value::Null,
                        accepted_recipients: 0,
                    }
                }
            };
            let suspend = matches!(
                &ev,
                Event::Step {
                    step: Step::Suspend,
                    ..
                }
            );
            let scope = match &ev {
                Event::Step { scope, .. } => Some(scope.clone()),
                _ => None,
            };
            self.gov.handle(ev).await;
            // Only a suspension that was made counts.
            if suspend && let Some(sc) = scope {
                let made = self
                    .registry
                    .snapshot()
                    .suspension(&sc)
                    .is_some_and(|r| r.actor == "auto");
                if made {
                    match &sc {
                        Scope::Sender(s) => {
                            let t = self.tally(s);
                            t.suspensions += 1;
                            if t.first_suspended_ms.is_none() {
                                t.first_suspended_ms = Some(d.t);
                                t.recipients_at_suspension = Some(t.recipients);
                                t.suspension_rule = Some(d.rule.clone());
                            }
                        }
                        Scope::Domain(dm) => {
                            self.report
                                .domains_suspended
                                .entry(dm.to_string())
                                .or_insert(d.t);
                        }
                    }
                }
            }
            out(&d);
            self.report.decisions.push(d);
        }
    }

    /// Runs what is still due (deliveries of the last hour) and returns the report.
    pub async fn finish(mut self, out: &mut dyn FnMut(&Decision)) -> Report {
        let end = self.clock.now_ms() + 3 * RETRY_MS;
        self.advance(end, out).await;
        self.report.span_ms = end.saturating_sub(self.first_t.unwrap_or(end));
        self.report
    }
}

/// Replays `events` (in time order) with `cfg`; `out` sees each decision.
pub async fn run(
    cfg: Config,
    events: impl IntoIterator<Item = TraceEvent>,
    out: &mut dyn FnMut(&Decision),
) -> Result<Report, ReplayError> {
    let mut it = events.into_iter().peekable();
    let start = it.peek().map_or(0, |e| e.t());
    let mut r = Replayer::new(cfg, start).await?;
    for ev in it {
        r.apply(ev, out).await?;
    }
    Ok(r.finish(out).await)
}

impl Governor {
    /// Housekeeping on a replay's virtual clock: expiries and eviction.
    pub async fn tick(&self) {
        self.lift_expired().await;
        self.evict(self.now_ms());
    }
}

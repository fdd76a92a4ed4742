//! The delivery scheduler: leases due messages from the queue, groups each
//! message's pending recipients by destination, delivers them over pooled
//! connections within per-destination and total limits, and records the
//! outcome (done, retry at backoff, or bounce).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use ugem_queue::{AttemptOutcome, Direction, Envelope, Queue, RcptStatus, RecipientUpdate};

use super::client::{ClientSettings, ConnError, Connection, TlsPolicy};
use super::dane::{DaneHosts, HostDane};
use super::outcome::Backoff;
use super::route::{Resolver, Route, route_for};
use crate::config::{Config, Live};
use crate::domain::Domain;
use crate::maillog::{Hop, HopClock, TlsPolicyKind};
use crate::model::suspensions::Scope;
use crate::registry::Registry;
use crate::reply::{Enhanced, Fate, Outcome};

/// How long a lease lasts: longer than the slowest attempt can take, so a
/// live delivery is never leased twice (a crash leaves it to run out).
const LEASE_MS: u64 = 30 * 60 * 1000;

/// The delivery engine.
pub struct Scheduler {
    /// Read on each use: routes, TLS policy, lifetimes follow a reload.
    cfg: Live,
    queue: Queue,
    registry: Arc<Registry>,
    resolver: Resolver,
    settings: ClientSettings,
    backoff: Backoff,
    total: Arc<Semaphore>,
    /// `delivery.max_body_memory` in KiB: permits for message bodies read
    /// for delivery.
    body_budget: Arc<Semaphore>,
    body_budget_kib: u32,
    per_dest: Mutex<HashMap<String, Arc<Semaphore>>>,
    pool: Mutex<HashMap<String, Vec<(Instant, Connection)>>>,
    /// Learns from remote replies (rejection and unknown-recipient rules).
    governor: Arc<crate::governor::Governor>,
    /// Recipient domains' MTA-STS policies (off with `delivery.mta_sts = false`).
    mta_sts: Option<Arc<super::mta_sts::MtaSts>>,
    /// Where TLS sessions are counted for reporting (RFC 8460) while
    /// `tlsrpt.enabled` is on.
    tls_reports: Option<crate::store::LocalStore>,
    /// The postmaster's local mailbox, used while `server.postmaster_mailbox`
    /// is on (a live key: read per message).
    mailbox: crate::mailbox::Mailbox,
}

/// What outbound TLS is held to besides the configuration, and where its
/// sessions are counted.
pub struct TlsPolicies {
    /// Recipient domains' MTA-STS policy cache (none: `delivery.mta_sts = false`).
    pub mta_sts: Option<Arc<super::mta_sts::MtaSts>>,
    /// Where sessions are counted for TLS reports (RFC 8460).
    pub reports: Option<crate::store::LocalStore>,
}

/// The recipients of one message that share a destination.
struct Group {
    route: Route,
    /// STARTTLS policy of the group's recipient domain.
    tls: TlsPolicy,
    /// Whether `[delivery.tls_policy]` named it (then MTA-STS does not apply).
    tls_explicit: bool,
    /// Route and policy: the unit of connection reuse and of the
    /// per-destination limit.
    key: String,
    rcpts: Vec<usize>,
    /// The message's queue id, for the log.
    queue_id: ugem_queue::QueueId,
}

impl Scheduler {
    /// Builds the scheduler from the configuration and `tls` (MTA-STS, TLS
    /// reports).
    pub fn new(
        cfg: Live,
        queue: Queue,
        registry: Arc<Registry>,
        resolver: Resolver,
        mut settings: ClientSettings,
        governor: Arc<crate::governor::Governor>,
        tls: TlsPolicies,
    ) -> Arc<Scheduler> {
        let TlsPolicies {
            mta_sts,
            reports: tls_reports,
        } = tls;
        // Every outbound source address is one of ours: a blocklist refusal
        // naming it (even in a greeting) is about the gateway.
        let g = governor.clone();
        settings.on_connect = Some(super::client::SourceHook(Arc::new(move |ip| {
            g.note_source_address(ip)
        })));

        let start = cfg.current();
        let d = &start.delivery;
        let body_budget_kib = u32::try_from(d.max_body_memory.0.div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        let mailbox = crate::mailbox::Mailbox::new(&start.server.data_dir);
        Arc::new(Scheduler {
            mailbox,
            body_budget: Arc::new(Semaphore::new(body_budget_kib as usize)),
            body_budget_kib,
            backoff: Backoff {
                min: d.min_backoff.0,
                max: d.max_backoff.0,
            },
            total: Arc::new(Semaphore::new(d.max_connections)),
            per_dest: Mutex::new(HashMap::new()),
            pool: Mutex::new(HashMap::new()),
            cfg,
            queue,
            registry,
            resolver,
            settings,
            governor,
            mta_sts,
            tls_reports,
        })
    }

    /// Runs until `stop` turns true. Attempts in flight are then put back in
    /// the queue (those of their recipients that already have a result keep
    /// it): the next start delivers them at once.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        // New messages come leased, with their body, straight from the enqueue (the queue's
        // `fresh.rs`); the rest through `lease_due`.
        let mut fresh = self.queue.fresh_messages(LEASE_MS);
        loop {
            if *stop.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            // Lease only what can start now, so leases don't run out in line.
            let free = self.total.available_permits().saturating_sub(tasks.len());
            let now = ugem_queue::unix_ms();
            let leased = if free > 0 {
                match self.queue.lease_due(now, free.min(256), LEASE_MS).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot lease due messages");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got = leased.len();
            for env in leased {
                let me = self.clone();
                let stop = stop.clone();
                tasks.spawn(async move { me.attempt(env, None, stop).await });
            }
            // A few more than `free` may start in a burst (slots taken while this runs);
            // they wait for their connection permits like any attempt.
            self.queue.offer_fresh(free.saturating_sub(got));
            if got > 0 && got == free.min(256) {
                continue;
            }
            self.close_idle();
            let wait = match self.queue.next_due_ms() {
                Ok(Some(due)) => Duration::from_millis(due.saturating_sub(ugem_queue::unix_ms())),
                _ => Duration::from_secs(5),
            }
            .clamp(Duration::from_millis(10), Duration::from_secs(5));
            tokio::select! {
                Some(m) = fresh.recv() => {
                    for m in std::iter::once(m).chain(std::iter::from_fn(|| fresh.try_recv().ok())) {
                        let me = self.clone();
                        let stop = stop.clone();
                        tasks.spawn(async move { me.attempt(m.envelope, m.body, stop).await });
                    }
                }
                _ = self.queue.changed() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = tasks.join_next(), if !tasks.is_empty() => {}
                _ = crate::shutdown::stopped(&mut stop) => break,
            }
        }
        // Nothing more is handed over; what was, and is still in the channel, keeps its lease
        // until the next start ends it.
        self.queue.offer_fresh(0);
        drop(fresh);
        while tasks.join_next().await.is_some() {}
        let conns: Vec<Connection> = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.drain().flat_map(|(_, v)| v).map(|(_, c)| c).collect()
        };
        // A polite QUIT to idle connections, but a slow server does not
        // hold up the shutdown.
        let mut quits = tokio::task::JoinSet::new();
        for c in conns {
            quits.spawn(c.quit());
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), quits.join_all()).await;
    }

    fn close_idle(&self) {
        let idle = self.cfg.current().delivery.idle_timeout.0;
        let stale: Vec<Connection> = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = Vec::new();
            for conns in pool.values_mut() {
                let (old, keep): (Vec<_>, Vec<_>) =
                    conns.drain(..).partition(|(t, _)| t.elapsed() > idle);
                *conns = keep;
                out.extend(old.into_iter().map(|(_, c)| c));
            }
            pool.retain(|_, v| !v.is_empty());
            out
        };
        if !stale.is_empty() {
            tokio::spawn(async move {
                for c in stale {
                    c.quit().await;
                }
            });
        }
    }

    /// Is the message's sending scope suspended now? Then it is held, not sent.
    fn suspended_scope(&self, env: &Envelope) -> Option<String> {
        if env.direction != Direction::Outbound {
            return None;
        }
        let snap = self.registry.snapshot();
        if let Some(d) = env.domain.as_deref().and_then(|d| Domain::parse(d).ok())
            && let Some(s) = snap.suspension(&Scope::Domain(d))
        {
            return Some(format!("{} suspended: {}", s.scope, s.reason));
        }
        snap.suspension(&Scope::Sender(env.sender.to_lowercase()))
            .map(|s| format!("{} suspended: {}", s.scope, s.reason))
    }

    /// One delivery attempt of one message. When `stop` turns true before
    /// every destination has answered, the rest is given up: the results
    /// already in are recorded with the message due again at once, and
    /// without any result nothing is recorded (the next start ends the
    /// lease).
    async fn attempt(
        self: Arc<Self>,
        env: Envelope,
        handed: Option<Vec<u8>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let id = env.id;
        if let Some(why) = self.suspended_scope(&env) {
            tracing::info!(target: crate::maillog::TARGET, queue_id = %id, reason = %why, "holding mail of a suspended scope");
            // Ends our lease too: a release must make it due at once, not
            // when the lease would have run out.
            if let Err(e) = self.queue.hold_leased(id, why).await {
                tracing::error!(queue_id = %id, error = %e, "hold failed");
                return;
            }
            // A restore between the check and the hold released the scope's
            // mail before this one was held: let it go as well.
            if self.suspended_scope(&env).is_none() {
                tracing::info!(target: crate::maillog::TARGET, queue_id = %id, "scope restored meanwhile; released");
                if let Err(e) = self.queue.release(id).await {
                    tracing::error!(queue_id = %id, error = %e, "release failed");
                }
            }
            return;
        }
        // Message bodies in memory at once are bounded: a large message
        // waits here for its share (all of the budget at most) rather than
        // a hundred of them being read side by side.
        let need = u32::try_from(env.size.div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(self.body_budget_kib);
        // A body handed over with the message is used if the budget has room for it now;
        // otherwise it is let go and read back when the budget allows.
        let handed = handed.and_then(|b| {
            let p = self.body_budget.clone().try_acquire_many_owned(need).ok()?;
            Some((p, b))
        });
        let (_memory, handed) = match handed {
            Some((p, b)) => (Some(p), Some(b)),
            None => {
                let p = tokio::select! {
                    biased;
                    _ = crate::shutdown::stopped(&mut stop) => return,
                    p = self.body_budget.clone().acquire_many_owned(need) => p.ok(),
                };
                (p, None)
            }
        };
        let q = self.queue.clone();
        let read = match handed {
            Some(b) => Ok(Some(b)),
            None => tokio::task::spawn_blocking(move || q.body(id))
                .await
                .unwrap_or_else(|e| Err(ugem_queue::QueueError::Storage(e.to_string()))),
        };
        let body = match read {
            Ok(Some(b)) => Arc::new(b),
            Ok(None) => return,
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "cannot read message body");
                return;
            }
        };
        let now = ugem_queue::unix_ms();
        let expired = super::outcome::expired(
            env.arrived_at_ms,
            now,
            self.cfg.current().delivery.max_queue_lifetime.0,
        );
        let mut updates: Vec<RecipientUpdate> = Vec::new();
        // The same results typed, for the governor.
        let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
        let mut remote: HashMap<usize, Option<String>> = HashMap::new();

        if let Some(reason) = self.disconnected_sender(&env) {
            // Bounce everything still pending: the domain may no longer
            // send through the gateway ([registration] disconnect_queued).
            for (i, r) in env.recipients.iter().enumerate() {
                if !r.status.is_final() {
                    crate::metrics::left_queue(crate::metrics::Left::Bounced, env.arrived_at_ms);
                    crate::maillog::recipient(
                        &env,
                        i,
                        RcptStatus::Failed,
                        &reason.text,
                        &Hop::default(),
                        now,
                    );
                    updates.push(RecipientUpdate {
                        index: i,
                        status: RcptStatus::Failed,
                        last_error: Some(reason.text.clone()),
                    });
                    outcomes.push((i, reason.clone()));
                }
            }
        }
        let local = if updates.is_empty() {
            self.mailbox_recipients(&env)
        } else {
            Vec::new()
        };
        let groups = if updates.is_empty() {
            self.groups(&env, &local)
        } else {
            Vec::new()
        };
        let mut handles = tokio::task::JoinSet::new();
        if !local.is_empty() {
            let me = self.clone();
            let env = env.clone();
            let body = body.clone();
            handles.spawn(async move {
                let res = me.deliver_to_mailbox(&env, &local, &body).await;
                (local, res)
            });
        }
        for g in groups {
            let me = self.clone();
            let sender = env.sender.clone();
            let rcpts: Vec<String> = g
                .rcpts
                .iter()
                .map(|&i| env.recipients[i].address.clone())
                .collect();
            let body = body.clone();
            handles.spawn(async move {
                let started = Instant::now();
                let res = me.deliver_group(&g, &sender, &rcpts, &body).await;
                crate::metrics::delivery_attempt(started.elapsed());
                (g.rcpts, res)
            });
        }
        let mut given_up = false;
        loop {
            let joined = tokio::select! {
                biased;
                j = handles.join_next() => j,
                _ = crate::shutdown::stopped(&mut stop) => {
                    // Shutting down: the destinations still talking are
                    // dropped mid-transaction (nothing is known delivered
                    // there, so they are retried; a rare duplicate beats a
                    // loss, and waiting could take the data timeout).
                    handles.abort_all();
                    given_up = true;
                    None
                }
            };
            let Some(joined) = joined else { break };
            let Ok((idx, (results, mta))) = joined else {
                continue;
            };
            for (i, o) in idx.into_iter().zip(results) {
                let o = match o.fate {
                    Fate::Temporary if expired => Outcome::local(
                        Fate::Expired,
                        Enhanced::new(4, 4, 7),
                        format_args!("delivery time expired; last error: {}", o.text),
                    ),
                    _ => o,
                };
                let status = match o.fate {
                    Fate::Delivered => RcptStatus::Delivered,
                    Fate::Temporary => RcptStatus::Deferred,
                    Fate::Permanent | Fate::Expired => RcptStatus::Failed,
                };
                let counted = match status {
                    RcptStatus::Delivered => crate::metrics::Delivery::Delivered,
                    RcptStatus::Failed => crate::metrics::Delivery::Failed,
                    _ => crate::metrics::Delivery::Deferred,
                };
                crate::metrics::recipient_delivery(
                    &env.recipients[i].address,
                    counted,
                    env.arrived_at_ms,
                );
                crate::maillog::recipient(&env, i, status, &o.text, &mta, now);
                remote.insert(i, mta.remote_mta());
                updates.push(RecipientUpdate {
                    index: i,
                    status,
                    last_error: Some(o.text.clone()),
                });
                outcomes.push((i, o));
            }
        }

        if given_up {
            tracing::info!(queue_id = %id, results = updates.len(), "delivery put back in the queue (shutting down)");
            if updates.is_empty() {
                return;
            }
        }
        self.governor.observe_delivery(&env, &outcomes);

        // Bounce before recording: a crash in between costs a duplicate
        // bounce, never a lost one.
        let failed: Vec<(String, String, Option<String>)> = updates
            .iter()
            .filter(|u| u.status == RcptStatus::Failed)
            .map(|u| {
                (
                    env.recipients[u.index].address.clone(),
                    u.last_error.clone().unwrap_or_default(),
                    remote.get(&u.index).cloned().flatten(),
                )
            })
            .collect();
        if !failed.is_empty() {
            self.bounce(&env, &body, &failed).await;
        }
        self.maybe_warn(&env, &body, &updates, &remote, now).await;
        // The backoff counts from the last release (a hold is not the
        // remote's doing).
        let next = if given_up {
            // The recipients without a result are due at the next start.
            now
        } else {
            now + self.backoff.delay(env.backoff_attempts() + 1).as_millis() as u64
        };
        let outcome = AttemptOutcome {
            attempted_at_ms: now,
            next_attempt_ms: next,
            recipients: updates,
        };
        match self.queue.record_attempt(id, outcome).await {
            Ok(Some(done)) => {
                tracing::info!(target: crate::maillog::TARGET, queue_id = %id, attempts = done.attempts, "message left the queue")
            }
            Ok(None) => {
                tracing::info!(target: crate::maillog::TARGET, queue_id = %id, next_attempt = %crate::logging::rfc3339_ms(next), "message deferred")
            }
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "cannot record the attempt; the lease will run out and it will be retried")
            }
        }
    }

    /// For outbound mail of a disconnected domain whose queued mail is to
    /// be bounced, the bounce reason.
    fn disconnected_sender(&self, env: &Envelope) -> Option<Outcome> {
        if env.direction != Direction::Outbound
            || self.cfg.current().registration.disconnect_queued
                != crate::config::DisconnectQueued::Bounce
        {
            return None;
        }
        let d = Domain::parse(env.domain.as_deref()?).ok()?;
        let rec = self.registry.get(&d)?;
        (rec.status == crate::model::domains::DomainStatus::Disconnected).then(|| {
            Outcome::local(
                Fate::Permanent,
                Enhanced::new(5, 7, 1),
                format_args!("the sending domain {d} was disconnected from the gateway; not sent"),
            )
        })
    }

    /// The pending recipients that go to the local mailbox: those for the
    /// postmaster address while `server.postmaster_mailbox` is on (read
    /// once per attempt, not per recipient).
    fn mailbox_recipients(&self, env: &Envelope) -> Vec<usize> {
        let cfg = self.cfg.current();
        if !cfg.server.postmaster_mailbox {
            return Vec::new();
        }
        let postmaster = cfg.server.postmaster.to_string();
        env.recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.status.is_final() && r.address.eq_ignore_ascii_case(&postmaster))
            .map(|(i, _)| i)
            .collect()
    }

    /// Delivers to the local mailbox: each recipient's result, and a hop
    /// that reads `relay=local` in the mail log.
    async fn deliver_to_mailbox(
        &self,
        env: &Envelope,
        idx: &[usize],
        body: &Arc<Vec<u8>>,
    ) -> (Vec<Outcome>, Hop) {
        let mut clock = HopClock::start();
        let mb = self.mailbox.clone();
        let (id, sender, body) = (env.id.to_string(), env.sender.clone(), body.clone());
        let rcpts: Vec<(usize, String)> = idx
            .iter()
            .map(|&i| (i, env.recipients[i].address.clone()))
            .collect();
        let results = tokio::task::spawn_blocking(move || {
            // `<postmaster>` given twice (or as `<Postmaster>`) is one copy,
            // as Postfix's local(8) delivers one per mailbox.
            let mut first: HashMap<String, Outcome> = HashMap::new();
            rcpts
                .iter()
                .map(|(i, r)| {
                    let key = r.to_ascii_lowercase();
                    if let Some(done) = first.get(&key) {
                        return done.clone();
                    }
                    let res = match mb.deliver(&id, *i, &sender, r, &body) {
                        Ok(file) => Outcome::local(
                            Fate::Delivered,
                            Enhanced::new(2, 0, 0),
                            format_args!("delivered to the local mailbox as {file}"),
                        ),
                        // A full disk or a permission: the queue keeps it.
                        Err(e) => Outcome::local(Fate::Temporary, Enhanced::new(4, 3, 0), e),
                    };
                    first.insert(key, res.clone());
                    res
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| {
            idx.iter()
                .map(|_| {
                    Outcome::local(
                        Fate::Temporary,
                        Enhanced::new(4, 3, 0),
                        format_args!("local delivery failed: {e}"),
                    )
                })
                .collect()
        });
        clock.sent();
        let mut hop = clock.hop();
        hop.local = true;
        (results, hop)
    }

    /// The pending recipients but those in `local` (the mailbox's), by
    /// destination.
    fn groups(&self, env: &Envelope, local: &[usize]) -> Vec<Group> {
        let snap = self.registry.snapshot();
        let mut by_key: BTreeMap<String, Group> = BTreeMap::new();
        for (i, r) in env.recipients.iter().enumerate() {
            if r.status.is_final() || local.contains(&i) {
                continue;
            }
            let domain = r.address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            let Ok(domain) = Domain::parse(domain) else {
                // The SMTP side only queues parsed addresses; keep the
                // recipient deferred rather than guessing.
                continue;
            };
            let cfg = self.cfg.current();
            let route = if env.direction == ugem_queue::Direction::Local {
                super::route::route_for_local(&domain, &snap, &cfg.delivery.routes)
            } else {
                route_for(&domain, &snap, &cfg.delivery.routes)
            };
            let d = &cfg.delivery;
            let explicit = super::tls_policy::lookup(&domain, &d.tls_policy);
            let tls = explicit.unwrap_or(d.tls);
            // Domains behind one next hop with different policies must
            // not share a connection opened under the weaker one.
            let key = if tls == d.tls {
                route_key(&route)
            } else {
                format!("{} tls={tls:?}", route_key(&route))
            };
            by_key
                .entry(key.clone())
                .or_insert_with(|| Group {
                    route,
                    tls,
                    tls_explicit: explicit.is_some(),
                    key,
                    rcpts: Vec::new(),
                    queue_id: env.id,
                })
                .rcpts
                .push(i);
        }
        by_key.into_values().collect()
    }

    fn dest_semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut m = self.per_dest.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.cfg.current().delivery.max_connections_per_destination,
                ))
            })
            .clone()
    }

    fn pooled(&self, key: &str) -> Option<Connection> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let conns = pool.get_mut(key)?;
        conns.pop().map(|(_, c)| c)
    }

    fn give_back(&self, key: &str, c: Connection) {
        if !c.is_usable() {
            // A 421 or a broken stream: close rather than reuse.
            tokio::spawn(c.quit());
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.entry(key.to_string())
            .or_default()
            .push((Instant::now(), c));
    }

    /// Delivers one group; every recipient gets a result. Returns the
    /// results, and where they came from and how long each phase took (for
    /// the mail log and the bounces' Remote-MTA).
    async fn deliver_group(
        &self,
        g: &Group,
        sender: &str,
        rcpts: &[String],
        body: &[u8],
    ) -> (Vec<Outcome>, Hop) {
        let mut clock = HopClock::start();
        let all = |o: Outcome| vec![o; rcpts.len()];
        // MTA-STS, for MX routes that no tls_policy entry governs: enforce
        // means verified TLS, and only to the MX hosts the policy lists.
        // Looked up before taking connection slots: a fetch may be slow.
        let sts = match (&g.route, &self.mta_sts) {
            (Route::Mx(d), Some(m)) if !g.tls_explicit => m.policy(d).await.map(|p| (d, p)),
            _ => None,
        };
        clock.set_up();
        let enforce = sts
            .as_ref()
            .is_some_and(|(_, p)| p.mode == super::mta_sts::Mode::Enforce);
        let tls = if enforce { TlsPolicy::Verify } else { g.tls };
        // DANE (RFC 7672) for MX routes under `dane`, and under `may` and
        // `encrypt` with `delivery.dnssec`: the validated look-ups come
        // first, as a bogus answer must stop even a pooled connection.
        let dane_on = matches!(g.route, Route::Mx(_))
            && self.resolver.validates()
            && (g.tls == TlsPolicy::Dane
                || (self.cfg.current().delivery.dnssec
                    && matches!(g.tls, TlsPolicy::May | TlsPolicy::Encrypt)));
        let secured = match (&g.route, dane_on) {
            (Route::Mx(d), true) => match self.resolver.dane_targets(d).await {
                Ok(found) => Some(found),
                Err(e) => {
                    clock.set_up();
                    let fate = if e.is_permanent() {
                        Fate::Permanent
                    } else {
                        Fate::Temporary
                    };
                    tracing::info!(target: crate::maillog::TARGET, queue_id = %g.queue_id, domain = %d, error = %e, "DANE look-up failed; mail kept");
                    return (all(Outcome::local(fate, e.enhanced(), &e)), clock.hop());
                }
            },
            _ => None,
        };
        let (secured, dane) = match secured {
            Some((targets, hosts)) => (Some(targets), hosts),
            None => (None, DaneHosts::default()),
        };
        let dane = &dane;
        let _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit) = match (
            self.total.clone().acquire_owned().await,
            self.dest_semaphore(&g.key).acquire_owned().await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                clock.waited();
                let o = Outcome::local(Fate::Temporary, Enhanced::new(4, 3, 2), "shutting down");
                return (all(o), clock.hop());
            }
        };
        clock.waited();
        // A pooled connection first; if it has gone stale, a fresh one.
        if let Some(mut c) = self.pooled(&g.key) {
            let unfit = match dane.get(c.host()) {
                HostDane::Usable(_) => !c.tls_dane(),
                HostDane::Unusable => c.tls().is_none(),
                HostDane::Failed(_) => true,
                HostDane::None => sts.as_ref().is_some_and(|(_, p)| {
                    p.mode == super::mta_sts::Mode::Enforce
                        && !(c.tls_verified() && p.allows(c.host()))
                }),
            };
            if unfit {
                // Opened before the policy was known: not good enough now.
                tokio::spawn(c.quit());
            } else if let Ok(results) = c.deliver(sender, rcpts, body).await {
                clock.sent();
                clock.relay(c.host(), c.peer_addr(), true);
                clock.tls(c.tls(), applied(dane.get(c.host()), sts.is_some()));
                self.give_back(&g.key, c);
                return (results, clock.hop());
            }
            // A stale connection found out: part of getting a working one.
            clock.set_up();
        }
        let resolved = match secured {
            Some(targets) => Ok(targets),
            None => self.resolver.targets(&g.route).await,
        };
        let targets = match resolved {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                clock.set_up();
                let why = format!("no address for {}", g.key);
                let o = Outcome::local(Fate::Temporary, Enhanced::new(4, 4, 4), why);
                return (all(o), clock.hop());
            }
            Err(e) => {
                clock.set_up();
                let fate = if e.is_permanent() {
                    Fate::Permanent
                } else {
                    Fate::Temporary
                };
                return (all(Outcome::local(fate, e.enhanced(), &e)), clock.hop());
            }
        };
        // An MX that is this gateway would loop (Postfix: "mail for X loops
        // back to myself"): never connect to ourselves.
        let targets = match &g.route {
            Route::Mx(d) => {
                let cfg = self.cfg.current();
                let me = cfg.server.hostname.as_str();
                let (me_too, others): (Vec<_>, Vec<_>) = targets
                    .into_iter()
                    .partition(|t| t.host.trim_end_matches('.').eq_ignore_ascii_case(me));
                if others.is_empty() && !me_too.is_empty() {
                    clock.set_up();
                    let why = format!("mail for {d} loops back to this gateway (its MX is {me})");
                    let o = Outcome::local(Fate::Permanent, Enhanced::new(5, 4, 6), why);
                    return (all(o), clock.hop());
                }
                others
            }
            _ => targets,
        };
        let targets = match &sts {
            Some((d, p)) => match sts_targets(d, p, targets, dane) {
                Ok(t) => t,
                Err(o) => {
                    clock.set_up();
                    return (all(o), clock.hop());
                }
            },
            None => targets,
        };
        let mut last_err = Outcome::local(
            Fate::Temporary,
            Enhanced::new(4, 4, 1),
            "no target answered",
        );
        for t in targets.iter() {
            let host_dane = dane.get(&t.host);
            let opened = match host_dane {
                HostDane::Failed(why) => {
                    // RFC 7672 §2.2: a host whose TLSA look-up failed is
                    // not used, the others may be.
                    tracing::info!(target: crate::maillog::TARGET, queue_id = %g.queue_id, host = %t.host, reason = %why, "MX host skipped (DANE)");
                    last_err = Outcome::local(Fate::Temporary, Enhanced::new(4, 7, 5), why);
                    continue;
                }
                HostDane::Usable(tlsa) => {
                    Connection::open_dane(&t.into(), &self.settings, tlsa.clone()).await
                }
                HostDane::Unusable => {
                    Connection::open_as(&t.into(), &self.settings, TlsPolicy::Encrypt).await
                }
                HostDane::None => Connection::open_as(&t.into(), &self.settings, tls).await,
            };
            clock.set_up();
            self.count_tls_session(&g.route, sts.as_ref(), host_dane, tls, t, &opened);
            let mut conn = match opened {
                Ok(c) => c,
                Err(e) => {
                    tracing::info!(
                        target: crate::maillog::TARGET,
                        queue_id = %g.queue_id,
                        next_hop = %format_args!("{}[{}]:{}", t.host, t.addr.ip(), t.addr.port()),
                        error = %e,
                        "connection failed; trying the next target"
                    );
                    last_err = conn_failure(&e, t.addr);
                    if host_dane.governs() {
                        last_err
                            .text
                            .push_str(&format!("; required by DANE (TLSA records of {})", t.host));
                    } else if enforce {
                        last_err.text.push_str("; required by the MTA-STS policy");
                    }
                    continue;
                }
            };
            let sent = conn.deliver(sender, rcpts, body).await;
            clock.sent();
            clock.relay(&t.host, t.addr, sent.is_ok());
            clock.tls(conn.tls(), applied(host_dane, sts.is_some()));
            match sent {
                Ok(results) => {
                    self.give_back(&g.key, conn);
                    return (results, clock.hop());
                }
                Err(e) => {
                    // Mid-transaction failure: nothing is known to be
                    // delivered, so everything is retried later (a rare
                    // duplicate beats a loss).
                    last_err = conn_failure(&e, t.addr);
                    break;
                }
            }
        }
        (all(last_err), clock.hop())
    }

    /// Counts a new session for TLS reporting (RFC 8460) when an MTA-STS
    /// policy applied and `[tlsrpt]` is on.
    fn count_tls_session(
        &self,
        route: &Route,
        sts: Option<&(&Domain, Arc<super::mta_sts::Policy>)>,
        host_dane: &HostDane,
        tls: TlsPolicy,
        t: &super::route::Target,
        opened: &Result<Connection, ConnError>,
    ) {
        use super::tlsrpt::session::{
            Attempt, classify, classify_dane, policy_failure, sts_policy, tlsa_policy,
            unfetched_policy,
        };
        let Some(store) = &self.tls_reports else {
            return;
        };
        if !self.cfg.current().tlsrpt.enabled {
            return;
        }
        let attempt = match opened {
            Ok(c) => Attempt::Open {
                tls: c.tls().is_some(),
                verified: c.tls_verified(),
                problem: c.tls_problem(),
            },
            Err(e) => Attempt::Failed(e),
        };
        // DANE governs the host: its session is reported under the TLSA
        // records, not the MTA-STS policy (RFC 8461 §2).
        let set = match host_dane {
            HostDane::Usable(set) => Some(Some(set.as_ref())),
            HostDane::Unusable => Some(None),
            HostDane::None | HostDane::Failed(_) => None,
        };
        if let Some(set) = set {
            if let Some(r) = classify_dane(&attempt, set.is_some(), &t.host, t.addr) {
                super::tlsrpt::count(store, tlsa_policy(&t.host, set), r);
            }
            return;
        }
        let Some(m) = &self.mta_sts else {
            return;
        };
        let Some((d, p)) = sts else {
            // A domain whose record names a policy that could not be had:
            // each session that reached the MX counts as that failure.
            let reached = match opened {
                Ok(_) => true,
                Err(e) => matches!(e, ConnError::TlsRequired { .. } | ConnError::Tls { .. }),
            };
            if let (Route::Mx(d), true) = (route, reached)
                && let Some((kind, why)) = m.policy_failure(d)
            {
                let r = policy_failure(kind, &why, &t.host, t.addr);
                super::tlsrpt::count(store, unfetched_policy(d.as_str()), r);
            }
            return;
        };
        // With `tls = "none"` a testing policy's sessions never try TLS:
        // nothing to report about it.
        if tls == TlsPolicy::None {
            return;
        }
        if let Some(r) = classify(&attempt, &t.host, p.allows(&t.host), t.addr) {
            super::tlsrpt::count(store, sts_policy(d.as_str(), p), r);
        }
    }

    /// The optional delay warning: sent by the first attempt after the
    /// message has waited `delivery.delay_warning`, so no flag is stored.
    async fn maybe_warn(
        &self,
        env: &Envelope,
        body: &[u8],
        updates: &[RecipientUpdate],
        remote: &HashMap<usize, Option<String>>,
        now: u64,
    ) {
        let Some(after) = self.cfg.current().delivery.delay_warning else {
            return;
        };
        let threshold = env.arrived_at_ms + after.0.as_millis() as u64;
        if now < threshold || env.last_attempt_ms.is_some_and(|l| l >= threshold) {
            return;
        }
        let delayed: Vec<super::dsn::FailedRcpt> = updates
            .iter()
            .filter(|u| u.status == RcptStatus::Deferred)
            .map(|u| {
                (
                    env.recipients[u.index].address.clone(),
                    u.last_error.clone().unwrap_or_default(),
                    remote.get(&u.index).cloned().flatten(),
                )
            })
            .collect();
        if delayed.is_empty() {
            return;
        }
        let until = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(
            (env.arrived_at_ms
                + self.cfg.current().delivery.max_queue_lifetime.0.as_millis() as u64)
                as i64,
        )
        .unwrap_or_else(chrono::Utc::now);
        let host = self.cfg.current().server.hostname.to_string();
        let postmaster = self.cfg.current().server.postmaster.to_string();
        if let Some((new, msg)) = super::dsn::delay_warning(
            env,
            body,
            &delayed,
            &host,
            &postmaster,
            chrono::Utc::now(),
            until,
        ) {
            let prepared = crate::prepare::enqueue(
                &self.queue,
                new,
                crate::prepare::Origin::Gateway,
                crate::prepare::Body::Memory(msg),
            );
            match prepared.await {
                Ok(wid) => {
                    tracing::info!(target: crate::maillog::TARGET, queue_id = %env.id, warning_id = %wid, to = %env.sender, "delay warning queued")
                }
                Err(e) => {
                    tracing::error!(queue_id = %env.id, error = %e, "cannot queue the delay warning")
                }
            }
        }
    }

    async fn bounce(
        &self,
        env: &Envelope,
        body: &[u8],
        failed: &[(String, String, Option<String>)],
    ) {
        let host = self.cfg.current().server.hostname.to_string();
        let postmaster = self.cfg.current().server.postmaster.to_string();
        let Some((new, msg)) =
            super::dsn::bounce(env, body, failed, &host, &postmaster, chrono::Utc::now())
        else {
            tracing::info!(target: crate::maillog::TARGET, queue_id = %env.id, failed = failed.len(), "no bounce for the null sender");
            return;
        };
        let prepared = crate::prepare::enqueue(
            &self.queue,
            new,
            crate::prepare::Origin::Gateway,
            crate::prepare::Body::Memory(msg),
        );
        match prepared.await {
            Ok(bid) => {
                tracing::info!(target: crate::maillog::TARGET, queue_id = %env.id, bounce_id = %bid, to = %env.sender, failed = failed.len(), "bounce queued")
            }
            Err(e) => tracing::error!(queue_id = %env.id, error = %e, "cannot queue the bounce"),
        }
    }
}

fn route_key(r: &Route) -> String {
    match r {
        Route::Registered(hp) => format!("registered:{hp}"),
        Route::RegisteredList(hops) => format!(
            "registered:{}",
            hops.iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Route::Static(hp) => format!("static:{hp}"),
        Route::Mx(d) => format!("mx:{d}"),
    }
}

/// Which policy governs a session with a host: DANE where it does (RFC 8461
/// §2: it wins over MTA-STS), else MTA-STS when the domain has a policy.
fn applied(dane: &HostDane, sts: bool) -> TlsPolicyKind {
    if dane.governs() {
        TlsPolicyKind::Dane
    } else if sts {
        TlsPolicyKind::Sts
    } else {
        TlsPolicyKind::None
    }
}

/// The MX targets an MTA-STS policy allows: under `enforce` only the listed
/// hosts and those DANE governs (`Err`: the deferral when none is), under
/// `testing` all of them; unlisted hosts are logged either way.
fn sts_targets(
    d: &Domain,
    p: &super::mta_sts::Policy,
    targets: Vec<super::route::Target>,
    dane: &DaneHosts,
) -> Result<Vec<super::route::Target>, Outcome> {
    let (listed, other): (Vec<_>, Vec<_>) = targets
        .iter()
        .cloned()
        .partition(|t| p.allows(&t.host) || dane.get(&t.host).governs());
    if !other.is_empty() {
        let hosts: Vec<&str> = other.iter().map(|t| t.host.as_str()).collect();
        tracing::warn!(domain = %d, mode = ?p.mode, hosts = ?hosts, "MX hosts outside the domain's MTA-STS policy");
    }
    if p.mode != super::mta_sts::Mode::Enforce {
        return Ok(targets);
    }
    if listed.is_empty() {
        crate::metrics::mta_sts("enforced_refusal");
        let why = format!(
            "the MTA-STS policy of {d} (enforce) lists none of its MX hosts (policy: {})",
            p.mx.join(", ")
        );
        return Err(Outcome::local(Fate::Temporary, Enhanced::new(4, 7, 5), why));
    }
    Ok(listed)
}

/// The recipients' outcome when the connection to `addr` failed:
/// temporary, with the remote's codes if it refused the session.
fn conn_failure(e: &ConnError, addr: std::net::SocketAddr) -> Outcome {
    let (code, enhanced) = e.codes();
    Outcome {
        fate: Fate::Temporary,
        code,
        enhanced,
        text: format!("{e} (at {addr})"),
    }
}

/// Client settings from the configuration (the CA file was checked with it).
pub fn client_settings(cfg: &Config) -> Result<ClientSettings, crate::trust::RootsError> {
    let tls = cfg.delivery.tls;
    let d = &cfg.delivery;
    Ok(ClientSettings {
        helo: cfg.server.hostname.to_string(),
        tls,
        timeouts: super::client::Timeouts {
            connect: d.connect_timeout.0,
            greeting: d.command_timeout.0,
            command: d.command_timeout.0,
            data_init: d.command_timeout.0.min(Duration::from_secs(120)),
            data_block: d.command_timeout.0.min(Duration::from_secs(180)),
            data_end: d.data_timeout.0,
        },
        extra_roots: match &d.tls_ca_file {
            Some(p) => crate::trust::load_roots(p)?,
            None => Vec::new(),
        },
        on_connect: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::dane::TlsaSet;
    use crate::delivery::mta_sts::{Mode, Policy};
    use crate::delivery::route::Target;

    fn target(host: &str, last: u8) -> Target {
        Target {
            host: host.into(),
            addr: format!("192.0.2.{last}:25").parse().unwrap(),
        }
    }

    fn policy(mode: Mode) -> Policy {
        Policy {
            mode,
            mx: vec!["mx1.sts.example".into()],
            max_age: 3600,
        }
    }

    fn dane_for(host: &str) -> DaneHosts {
        let mut hosts = DaneHosts::default();
        hosts.0.insert(
            host.into(),
            HostDane::Usable(Arc::new(TlsaSet {
                host: host.into(),
                records: Vec::new(),
            })),
        );
        hosts
    }

    #[test]
    fn dane_hosts_pass_an_enforced_sts_policy_that_does_not_list_them() {
        let d = Domain::parse("sts.example").unwrap();
        let targets = vec![target("mx2.sts.example", 2), target("mx1.sts.example", 1)];
        // Without DANE only the listed host is left.
        let got = sts_targets(
            &d,
            &policy(Mode::Enforce),
            targets.clone(),
            &DaneHosts::default(),
        );
        assert_eq!(got.unwrap(), vec![target("mx1.sts.example", 1)]);
        // DANE for the unlisted host keeps it, in its MX order (RFC 8461 §2).
        let got = sts_targets(
            &d,
            &policy(Mode::Enforce),
            targets.clone(),
            &dane_for("mx2.sts.example"),
        );
        assert_eq!(got.unwrap(), targets);
        // No listed host and no DANE: the deferral naming the policy.
        let only_other = vec![target("mx2.sts.example", 2)];
        let err = sts_targets(
            &d,
            &policy(Mode::Enforce),
            only_other,
            &DaneHosts::default(),
        )
        .unwrap_err();
        assert!(
            err.text.contains("MTA-STS policy of sts.example"),
            "{}",
            err.text
        );
    }

    #[test]
    fn dane_governs_before_sts_and_sts_before_the_level() {
        let usable = dane_for("mx.example");
        assert_eq!(applied(usable.get("mx.example"), true), TlsPolicyKind::Dane);
        assert_eq!(applied(&HostDane::Unusable, false), TlsPolicyKind::Dane);
        assert_eq!(applied(&HostDane::None, true), TlsPolicyKind::Sts);
        assert_eq!(applied(&HostDane::None, false), TlsPolicyKind::None);
    }
}

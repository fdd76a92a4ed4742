//! `ugem serve`: opens the store and the queue, starts the listeners and the
//! background jobs, and shuts them down in order on SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::admin::{self, AdminState, LiveTokens};
use crate::config::{Config, ConfigSource, Live};
use crate::registry::{Registry, RegistryError};
use crate::shutdown::stopped;
use crate::store::local::ConnectionLog;
use crate::store::{LocalStore, RegistryStore, StoreError};

/// Installs the tracing subscriber from `[server] log_format` and
/// `log_level` (see [`crate::logging`]).
pub fn init_logging(cfg: &Config) {
    crate::logging::init(cfg.server.log_format, &cfg.server.log_level);
}

/// Runs the gateway until a termination signal; reloads read `source` again.
pub fn run_blocking(cfg: Config, source: ConfigSource) -> anyhow::Result<()> {
    return_large_buffers();
    init_logging(&cfg);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ugem")
        .build()
        .context("cannot start the async runtime")?;
    let r = rt.block_on(run(Live::new(cfg, source), shutdown_signal()));
    // Blocking work still running (a spool write, a body read of a delivery
    // that was put back) is not waited for: run() already kept the bound.
    rt.shutdown_timeout(Duration::from_millis(500));
    r
}

/// Makes freed buffers of 1 MiB and more go back to the system at once.
///
/// Large messages pass through a few such buffers (a body read for
/// delivery, the queue database's page of it). glibc raises its mmap
/// threshold to the size of the first one freed, and from then on keeps them
/// on its heaps, one per thread, where the memory stays counted in RSS after
/// the messages are long gone (100 messages of 9 MiB left 527 MB resident
/// instead of 84 MB). A fixed threshold keeps them mapped and unmapped;
/// everything a small message needs is far below it.
///
/// Fixing it also fixes the trim threshold, at 128 KiB unless set: the heaps
/// would then shrink and grow again around every few messages (5-8% more
/// CPU per small message in `bench/smtp-accept-bench.sh`). 8 MiB, of the
/// order glibc's own adjustment reaches, keeps that as it was (at most 8 MiB
/// per heap stays mapped; `bench/results/2026-12-01-accept-datapath-ab.txt`).
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// The registry shared with other nodes in PostgreSQL, migrated to this
/// build's schema before anything reads it.
pub async fn open_shared(
    url: &str,
    section: &crate::config::StoreSection,
) -> anyhow::Result<crate::store::PgRegistry> {
    let pg = connect_shared(url, section)?;
    migrate_shared(&pg)
        .await
        .context("cannot bring the PostgreSQL store up to date")?;
    Ok(pg)
}

/// The pool for `url` (nothing is connected yet).
fn connect_shared(
    url: &str,
    section: &crate::config::StoreSection,
) -> anyhow::Result<crate::store::PgRegistry> {
    let password = section
        .password()
        .context("cannot read store.password_file")?;
    let roots = crate::trust::all_certs(section.tls_ca_file.as_deref());
    crate::store::PgRegistry::new(url, password.as_deref(), &roots).context("cannot use store.url")
}

/// Brings the database to this build's schema.
async fn migrate_shared(pg: &crate::store::PgRegistry) -> Result<(), StoreError> {
    let applied = pg.migrate().await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "PostgreSQL store migrated");
    }
    Ok(())
}

/// First pause of [`catch_up`] between attempts; it grows to [`CATCH_UP_MAX`].
const CATCH_UP_FIRST: Duration = Duration::from_secs(2);

/// Longest pause of [`catch_up`]: a database back is noticed within it.
const CATCH_UP_MAX: Duration = Duration::from_secs(5);

/// For a node started on its local copy of the registry: tries the
/// migration until PostgreSQL answers, then reads the registry from it
/// (from then on the change feed and the outbox drain keep it current) and
/// joins the governor's shared state it could not take at start.
async fn catch_up(
    pg: crate::store::PgRegistry,
    registry: Arc<Registry>,
    governor: Arc<crate::governor::Governor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pause = CATCH_UP_FIRST;
    let mut told = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(&mut stop) => return,
        }
        pause = (pause * 3 / 2).min(CATCH_UP_MAX);
        match migrate_shared(&pg).await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::debug!(error = %e, "PostgreSQL still unreachable");
                continue;
            }
            Err(e) => {
                // A database that answers but cannot be migrated (schema
                // too new, no permission) needs staff; mail keeps flowing
                // under the local copy meanwhile.
                if !told {
                    tracing::error!(error = %e, "PostgreSQL answers but cannot be brought up to date; still serving the local copy of the registry");
                    told = true;
                }
                continue;
            }
        }
        match registry.refresh().await {
            Ok(()) => {
                tracing::info!(
                    "PostgreSQL answers again: the registry is the shared store's, staff changes are accepted"
                );
                break;
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the registry from PostgreSQL yet"),
        }
    }
    while !governor.rejoin_shared().await {
        tokio::select! {
            _ = tokio::time::sleep(CATCH_UP_MAX) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Opens the registry of a shared store; when the store cannot be reached
/// (`down`, or the first read), from the node's local copy of the last one
/// read. True in the second element when the copy is served.
async fn open_shared_registry(
    shared: Arc<dyn RegistryStore>,
    local: LocalStore,
    down: Option<String>,
) -> anyhow::Result<(Registry, bool)> {
    let first = match down {
        None => Registry::open_with_outbox(shared.clone(), local.clone()).await,
        Some(why) => Err(RegistryError::Store(StoreError::Unavailable(why))),
    };
    let why = match first {
        Ok(r) => return Ok((r, false)),
        Err(RegistryError::Store(StoreError::Unavailable(why))) => why,
        Err(e) => return Err(e).context("cannot load the registry"),
    };
    let Some(r) = Registry::open_from_copy(shared, local)
        .await
        .context("cannot read the local copy of the registry")?
    else {
        anyhow::bail!(
            "PostgreSQL (store.url) cannot be reached at start ({why}), and this node has no local copy of the registry (it never read it from PostgreSQL): it knows no domain, so it does not start until PostgreSQL answers"
        );
    };
    let on = r.on_local_copy().expect("opened from the copy");
    let as_of = on.as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let age = (on.since - on.as_of).num_seconds().max(0);
    tracing::error!(
        error = %why,
        as_of = %as_of,
        age_seconds = age,
        "PostgreSQL unreachable at start; serving the registry as of {as_of} ({age} s old), refusing staff changes until it answers"
    );
    Ok((r, true))
}

/// Tells the other nodes sharing the store who this node is and where its
/// admin API answers, at start and every 30 s (a database that is down
/// meanwhile only delays it).
fn announce_node(
    cfg: &Config,
    store: Arc<dyn RegistryStore>,
    admin_addr: std::net::SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let scheme = if cfg.admin.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    // A wildcard address says nothing about where peers reach it.
    let admin_url = cfg.store.admin_url.clone().or_else(|| {
        (!admin_addr.ip().is_unspecified()).then(|| format!("{scheme}://{admin_addr}"))
    });
    let now = chrono::Utc::now();
    let mut node = crate::model::nodes::NodeRecord {
        name: cfg.node_name(),
        admin_url,
        started_at: now,
        seen_at: now,
    };
    tokio::spawn(async move {
        loop {
            node.seen_at = chrono::Utc::now();
            if let Err(e) = store.announce_node(&node).await {
                tracing::debug!(error = %e, "cannot announce this node to the shared store");
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                _ = stopped(&mut stop) => break,
            }
        }
    });
}

/// Runs the gateway until `shutdown` resolves. Components read the
/// configuration from `live`; SIGHUP and `POST /api/v1/reload` replace it.
pub async fn run(
    live: Live,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // What is bound at start is read from here; the rest reads `live` on use.
    let cfg = live.current();
    crate::logging::follow(&live);
    let data_dir = cfg.server.data_dir.clone();
    // The node's own records (connection log, detector state) are always in
    // its redb file; the registry is there too unless `[store] url` shares it.
    let (store, embedded) = crate::store::open(&data_dir).context("cannot open the store")?;
    // A database that cannot be reached at start does not stop it: the
    // node serves its local copy of the registry and catches up (`pg_down`).
    let mut pg_handle: Option<crate::store::PgRegistry> = None;
    let mut down_why = None;
    let shared: Arc<dyn RegistryStore> = match &cfg.store.url {
        None => Arc::new(embedded),
        Some(url) => {
            let pg = connect_shared(url, &cfg.store)?;
            match migrate_shared(&pg).await {
                Ok(()) => {}
                Err(StoreError::Unavailable(why)) => {
                    pg.hold_until_migrated();
                    down_why = Some(why);
                }
                Err(e) => {
                    return Err(e).context("cannot bring the PostgreSQL store up to date");
                }
            }
            pg_handle = Some(pg.clone());
            Arc::new(pg)
        }
    };
    // With a shared store, this node's automatic decisions made while it is
    // out of reach wait in the node's own outbox (fail-static).
    let mut pg_down = None;
    let registry = match pg_handle {
        None => Registry::open(shared.clone())
            .await
            .context("cannot load the registry")?,
        Some(pg) => {
            let (r, on_copy) =
                open_shared_registry(shared.clone(), store.clone(), down_why).await?;
            pg_down = on_copy.then_some(pg);
            r
        }
    };
    let registry = Arc::new(registry);
    // Another node's changes reach this one's snapshot through the store's
    // change feed (PostgreSQL's LISTEN); the embedded store has none.
    let follower_stop = watch::channel(false);
    if let Some(changes) = shared.changes() {
        tokio::spawn(crate::registry::follow::follow(
            registry.clone(),
            changes,
            follower_stop.1.clone(),
        ));
    }
    let defaults = ugem_queue::QueueOptions::default();
    let queue = ugem_queue::Queue::open(
        &data_dir.join("queue"),
        ugem_queue::QueueOptions {
            min_free_bytes: cfg.smtp.min_free_space.0,
            cache_bytes: usize::try_from(cfg.server.queue_cache_size.0).unwrap_or(usize::MAX),
            check_pause: check_pause_for_tests(),
            journal: cfg.server.queue_journal,
            checkpoint_after: checkpoint_for_tests().unwrap_or(defaults.checkpoint_after),
            idle_flush: checkpoint_for_tests().unwrap_or(defaults.idle_flush),
            ..defaults
        },
    )
    .context("cannot open the queue")?;
    let spool_dir = crate::smtp::spool::dir(&data_dir);
    match crate::smtp::spool::prepare_dir(&spool_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "spool files of an earlier run removed"),
        Err(e) => {
            return Err(anyhow::anyhow!(e)).with_context(|| {
                format!("cannot prepare the spool folder {}", spool_dir.display())
            });
        }
    }
    let connlog = ConnectionLog::start(store.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(dir) = &cfg.notify.templates_dir {
        for e in crate::notify::templates::check_overrides(dir) {
            tracing::warn!(problem = %e, "notice template override not used; the embedded one is");
        }
    }
    for k in &cfg.governor.retired {
        tracing::warn!(key = %format!("governor.{k}"), "configuration key no longer used; ignored");
    }
    // The governor stops first (it saves its state on the way out), before
    // anything else winds down.
    let (governor_stop_tx, governor_stop_rx) = watch::channel(false);
    // Sessions still running when the drain time is up are dropped.
    let (kill_tx, kill_rx) = watch::channel(false);
    let governor = crate::governor::Governor::new(
        live.clone(),
        registry.clone(),
        store.clone(),
        queue.clone(),
    );
    // With a shared store, the detector's history, the recipient memory
    // and the webhook outbox are the cluster's: taken before any traffic.
    if let Some(state) = shared.shared_state() {
        governor.join_shared(state, cfg.node_name()).await;
    }
    // Limits and detection across the nodes: each tells the others what
    // it accepted (PostgreSQL's NOTIFY); alone (redb) there is no one to tell.
    let sync = cfg.store.governor_sync.0;
    if !sync.is_zero()
        && let Some(link) = shared.peer_link()
    {
        tokio::spawn(
            governor
                .clone()
                .run_cluster(link, sync, governor_stop_rx.clone()),
        );
    }
    let mut governor_task = tokio::spawn(governor.clone().run(governor_stop_rx));
    if let Some(pg) = pg_down {
        tokio::spawn(catch_up(
            pg,
            registry.clone(),
            governor.clone(),
            stop_rx.clone(),
        ));
    }

    // The validating resolver is always set up, so that `dane` in a
    // reloaded policy map works; it is used only where DANE applies.
    let resolver = crate::delivery::route::Resolver::new(&cfg.delivery.nameservers)
        .context("cannot set up the DNS resolver")?
        .with_smtp_port(cfg.delivery.mx_port)
        .with_dnssec(cfg.delivery.dnssec_trust_anchor.as_deref())
        .context("cannot set up DNSSEC validation")?;
    let client_settings = crate::delivery::scheduler::client_settings(&cfg)
        .context("cannot load delivery.tls_ca_file")?;
    let verifier = cfg.smtp.verify_recipients.then(|| {
        Arc::new(crate::delivery::verify::Verifier::new(
            resolver.clone(),
            client_settings.clone(),
            cfg.smtp.verify_positive_ttl.0,
            cfg.smtp.verify_negative_ttl.0,
            cfg.smtp.verify_timeout.0,
            cfg.smtp.verify_probes_per_minute,
        ))
    });
    let mta_sts = cfg.delivery.mta_sts.then(|| {
        Arc::new(crate::delivery::mta_sts::MtaSts::new(
            resolver.clone(),
            cfg.delivery.mta_sts_port,
            crate::trust::all_certs(cfg.delivery.tls_ca_file.as_deref()),
            Some(store.clone()),
        ))
    });
    let dkim = crate::dkim::Signers::open(&data_dir).context("cannot load the DKIM keys")?;
    let admin_state = AdminState {
        dkim: dkim.clone(),
        mta_sts: mta_sts.clone(),
        verifier: verifier.clone(),
        governor: governor.clone(),
        live: live.clone(),
        registry: registry.clone(),
        store: store.clone(),
        audit: shared.clone(),
        queue: queue.clone(),
        tokens: Arc::new(LiveTokens::default()),
        ready: ready.clone(),
    };
    // HTTPS when admin.tls_cert is set; also keeps refused calls' audit compact.
    let (admin_addr, mut admin_task) = admin::serve(admin_state, stop_rx.clone()).await?;
    if cfg.store.url.is_some() {
        announce_node(&cfg, shared.clone(), admin_addr, stop_rx.clone());
    }

    let smtp = crate::smtp::listener::Listeners::bind(&cfg.smtp.listen)
        .await
        .context("cannot start the SMTP listener")?;
    if let Some(v) = verifier.clone() {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => v.prune(),
                    _ = stopped(&mut stop) => break,
                }
            }
        });
    }
    let gateway = crate::smtp::Gateway::new(
        live.clone(),
        registry.clone(),
        queue.clone(),
        connlog.clone(),
        governor.clone(),
        verifier,
        dkim,
    )
    .context("cannot set up SMTP")?;
    gateway.follow_reloads();
    let smtp_addrs: Vec<String> = smtp.local_addrs().iter().map(|a| a.to_string()).collect();
    let mut smtp_task = tokio::spawn(smtp.serve(gateway.clone(), stop_rx.clone(), kill_rx));
    // Installed before "ugem ready", so that an early SIGHUP reloads rather
    // than ends the process (its default action).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let hup_task = tokio::spawn(reload_on_hup(hup, live.clone()));

    let scheduler = crate::delivery::scheduler::Scheduler::new(
        live.clone(),
        queue.clone(),
        registry.clone(),
        resolver,
        client_settings,
        governor.clone(),
        crate::delivery::scheduler::TlsPolicies {
            mta_sts,
            reports: Some(store.clone()),
        },
    );
    let mut delivery_task = tokio::spawn(scheduler.run(stop_rx.clone()));

    let mut outbox_task = tokio::spawn(crate::notify::outbox::drain(
        registry.clone(),
        queue.clone(),
        live.clone(),
        stop_rx.clone(),
    ));
    let deadlines_task = tokio::spawn(crate::notify::overdue_alerts(
        registry.clone(),
        queue.clone(),
        live.clone(),
        stop_rx.clone(),
    ));
    let alarms_task = tokio::spawn(crate::notify::alarms::queue_alarms(
        queue.clone(),
        registry.clone(),
        live.clone(),
        stop_rx.clone(),
    ));
    let tlsrpt_task = tokio::spawn(crate::delivery::tlsrpt::send::daily(
        live.clone(),
        store.clone(),
        queue.clone(),
        stop_rx.clone(),
    ));
    let prune_task = tokio::spawn(prune_connections(
        store.clone(),
        live.clone(),
        stop_rx.clone(),
    ));

    ready.store(true, Ordering::Release);
    crate::sdnotify::notify("READY=1\nSTATUS=serving mail");
    let watchdog_task = tokio::spawn(watchdog(queue.clone()));
    tracing::info!(
        smtp = %smtp_addrs.join(","),
        admin = %admin_addr,
        data_dir = %data_dir.display(),
        hostname = %cfg.server.hostname,
        startup_ms = started.elapsed().as_millis() as u64,
        "ugem ready"
    );
    shutdown.await;
    let deadline = tokio::time::Instant::now() + live.current().server.shutdown_timeout.0;
    ready.store(false, Ordering::Release);
    crate::sdnotify::notify("STOPPING=1\nSTATUS=stopping");
    watchdog_task.abort();

    // 1. State first, so that nothing later (a slow client, a stuck
    // delivery, systemd's SIGKILL) can cost it: the governor saves its
    // detector state as it stops, and the connection log is made durable.
    let _ = governor_stop_tx.send(true);
    let step = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
    if tokio::time::timeout_at(step, &mut governor_task)
        .await
        .is_err()
    {
        tracing::warn!("governor state not saved in time");
        governor_task.abort();
    }
    flush_log(&connlog, deadline).await;

    // 2. Everything else: sessions answer 421 4.3.2 (a message already read
    // to its end is queued and answered 250 first), deliveries in flight are
    // put back in the queue, the admin API closes. What is still running 1 s
    // before the deadline is dropped; a dropped delivery keeps its lease,
    // which the next start ends, so the message is due at once.
    let _ = stop_tx.send(true);
    let drain = deadline
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(deadline)
        .max(tokio::time::Instant::now());
    let sessions = async {
        if tokio::time::timeout_at(drain, &mut smtp_task)
            .await
            .is_err()
        {
            tracing::warn!("sessions still open at the shutdown deadline; closing them");
            let _ = kill_tx.send(true);
            if tokio::time::timeout(Duration::from_millis(300), &mut smtp_task)
                .await
                .is_err()
            {
                smtp_task.abort();
            }
        }
    };
    let deliveries = async {
        if tokio::time::timeout_at(drain, &mut delivery_task)
            .await
            .is_err()
        {
            tracing::warn!("deliveries still running at the shutdown deadline; dropped");
            delivery_task.abort();
        }
    };
    let admin = async {
        if tokio::time::timeout_at(drain, &mut admin_task)
            .await
            .is_err()
        {
            admin_task.abort();
        }
    };
    tokio::join!(sessions, deliveries, admin);
    // The outbox task ends at its next pause; not aborted mid-write, where a
    // write done but not yet crossed off would be made again at the next start.
    if tokio::time::timeout(Duration::from_secs(2), &mut outbox_task)
        .await
        .is_err()
    {
        outbox_task.abort();
    }
    prune_task.abort();
    deadlines_task.abort();
    alarms_task.abort();
    tlsrpt_task.abort();
    hup_task.abort();
    // 3. The records of the sessions that ended meanwhile.
    flush_log(&connlog, deadline).await;
    tracing::info!("ugem stopped");
    Ok(())
}

/// `UGEM_TEST_QUEUE_CHECK_PAUSE_MS`: slows the queue's background check after open (a rest
/// between its chunks), so that end-to-end tests can kill the gateway while it runs. Not a
/// setting: production never sets it.
fn check_pause_for_tests() -> Duration {
    std::env::var("UGEM_TEST_QUEUE_CHECK_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis)
}

/// For tests only: how long the queue leaves journaled acceptances without a durable
/// database commit (so that a kill finds them only in the journal).
fn checkpoint_for_tests() -> Option<Duration> {
    std::env::var("UGEM_TEST_QUEUE_CHECKPOINT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

/// Makes the connection log durable, waiting until `deadline` at most.
async fn flush_log(connlog: &ConnectionLog, deadline: tokio::time::Instant) {
    let log = connlog.clone();
    let flush = tokio::task::spawn_blocking(move || log.flush());
    if tokio::time::timeout_at(deadline, flush).await.is_err() {
        tracing::warn!("connection log not flushed in time");
    }
}

async fn prune_connections(store: LocalStore, live: Live, mut stop: watch::Receiver<bool>) {
    let mut reloads = live.subscribe();
    loop {
        let cfg = live.current();
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(cfg.connections.retention.0)
                .unwrap_or(chrono::Duration::days(90));
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.prune_connections(before)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(pruned = n, "old connection records pruned"),
            Ok(Err(e)) => tracing::warn!(error = %e, "connection log pruning failed"),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.connections.prune_interval.0) => {}
            // A reload may shorten the retention or the interval.
            _ = reloads.changed() => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// SIGHUP: the same reload as `POST /api/v1/reload` (the configuration
/// file, the STARTTLS certificate, the log filter), without dropping
/// sessions; a file with problems keeps the running configuration whole.
async fn reload_on_hup(mut hup: tokio::signal::unix::Signal, live: Live) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading the configuration");
        let live = live.clone();
        // The outcome is logged by the reload itself, key by key.
        let _ = tokio::task::spawn_blocking(move || live.reload()).await;
    }
}

/// Pings the systemd watchdog at half its interval while the queue's writer
/// still answers, so a wedged gateway is restarted.
async fn watchdog(queue: ugem_queue::Queue) {
    let Some(every) = crate::sdnotify::watchdog_interval() else {
        return;
    };
    loop {
        let q = queue.clone();
        let alive = tokio::task::spawn_blocking(move || q.counts().is_ok())
            .await
            .unwrap_or(false);
        if alive {
            crate::sdnotify::notify("WATCHDOG=1");
        } else {
            tracing::error!("queue not answering; withholding the watchdog ping");
        }
        tokio::time::sleep(every / 2).await;
    }
}

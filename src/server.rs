//! `ugem serve`: opens the store and the queue, starts the listeners and the
//! background jobs, and shuts them down in order on SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::admin::{self, AdminState, Tokens};
use crate::config::Config;
use crate::registry::Registry;
use crate::store::Store;
use crate::store::connections::ConnectionLog;

/// Installs the tracing subscriber from `[server] log_format` and
/// `log_level` (see [`crate::logging`]).
pub fn init_logging(cfg: &Config) {
    crate::logging::init(cfg.server.log_format, &cfg.server.log_level);
}

/// Runs the gateway until a termination signal.
pub fn run_blocking(cfg: Config) -> anyhow::Result<()> {
    init_logging(&cfg);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ugem")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(cfg, shutdown_signal()))
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

/// Runs the gateway until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let data_dir = cfg.server.data_dir.clone();
    let store = Store::open(&data_dir).context("cannot open the store")?;
    let registry = Arc::new(Registry::open(store.clone()).context("cannot load the registry")?);
    let queue = ugem_queue::Queue::open(
        &data_dir.join("queue"),
        ugem_queue::QueueOptions {
            min_free_bytes: cfg.smtp.min_free_space.0,
            ..Default::default()
        },
    )
    .context("cannot open the queue")?;
    let connlog = ConnectionLog::start(store.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    for k in &cfg.governor.retired {
        tracing::warn!(key = %format!("governor.{k}"), "configuration key no longer used; ignored");
    }
    let governor = crate::governor::Governor::new(cfg.clone(), registry.clone(), queue.clone());
    let governor_task = tokio::spawn(governor.clone().run(stop_rx.clone()));

    let resolver = crate::delivery::route::Resolver::new(&cfg.delivery.nameservers)
        .context("cannot set up the DNS resolver")?
        .with_smtp_port(cfg.delivery.mx_port);
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
    let admin_state = AdminState {
        mta_sts: mta_sts.clone(),
        verifier: verifier.clone(),
        governor: governor.clone(),
        cfg: cfg.clone(),
        registry: registry.clone(),
        store: store.clone(),
        queue: queue.clone(),
        tokens: Arc::new(Tokens::from_config(&cfg.admin)),
        ready: ready.clone(),
    };
    // HTTPS when admin.tls_cert is set; also keeps refused calls' audit compact.
    let (admin_addr, admin_task) = admin::serve(admin_state, stop_rx.clone()).await?;

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
        cfg.clone(),
        registry.clone(),
        queue.clone(),
        connlog.clone(),
        governor.clone(),
        verifier,
    )
    .context("cannot set up SMTP")?;
    let smtp_addrs: Vec<String> = smtp.local_addrs().iter().map(|a| a.to_string()).collect();
    let smtp_task = tokio::spawn(smtp.serve(gateway.clone(), stop_rx.clone()));
    let hup_task = tokio::spawn(reload_on_hup(gateway.clone()));

    let scheduler = crate::delivery::scheduler::Scheduler::new(
        cfg.clone(),
        queue.clone(),
        registry.clone(),
        resolver,
        client_settings,
        governor.clone(),
        mta_sts,
    );
    let delivery_task = tokio::spawn(scheduler.run(stop_rx.clone()));

    let deadlines_task = tokio::spawn(crate::notify::overdue_alerts(
        registry.clone(),
        queue.clone(),
        cfg.clone(),
        stop_rx.clone(),
    ));
    let alarms_task = tokio::spawn(crate::notify::alarms::queue_alarms(
        queue.clone(),
        cfg.clone(),
        stop_rx.clone(),
    ));
    let prune_task = tokio::spawn(prune_connections(
        store.clone(),
        cfg.clone(),
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
        "ugem ready"
    );
    shutdown.await;
    ready.store(false, Ordering::Release);
    crate::sdnotify::notify("STOPPING=1\nSTATUS=stopping");
    watchdog_task.abort();
    let _ = stop_tx.send(true);
    // Sessions get a grace period to finish their transaction.
    let _ = tokio::time::timeout(Duration::from_secs(30), smtp_task).await;
    // Deliveries in flight finish their transaction (bounded by the client timeouts).
    let _ = tokio::time::timeout(Duration::from_secs(60), delivery_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), admin_task).await;
    // Saves the detector state (baselines) on its way out.
    let _ = tokio::time::timeout(Duration::from_secs(5), governor_task).await;
    prune_task.abort();
    deadlines_task.abort();
    alarms_task.abort();
    hup_task.abort();
    let log = connlog.clone();
    let _ = tokio::task::spawn_blocking(move || log.flush()).await;
    tracing::info!("ugem stopped");
    Ok(())
}

async fn prune_connections(store: Store, cfg: Arc<Config>, mut stop: watch::Receiver<bool>) {
    loop {
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
            _ = crate::server::stopped(&mut stop) => return,
        }
    }
}

/// SIGHUP: reload what can change safely (the TLS certificate) without
/// dropping sessions; a bad new certificate keeps the old one in service.
async fn reload_on_hup(gw: Arc<crate::smtp::Gateway>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match gw.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Ok(false) => tracing::info!("SIGHUP: no TLS certificate configured"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the old certificate")
            }
        }
    }
}

/// Resolves once the stop flag turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = stop.wait_for(|s| *s).await;
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

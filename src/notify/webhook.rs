//! JSON webhooks: every governor event is written to an outbox in the store
//! (one job per URL), and a background task POSTs due jobs, retrying with
//! exponential backoff. Like the e-mail notices, pending events survive a
//! restart.
//!
//! With a store shared by several nodes ([`Webhooks::share`]) the jobs
//! written locally are moved into the shared outbox, from which any node
//! delivers them under a lease (a job of a node that died is sent by
//! another). While the shared store is unreachable the jobs stay in the
//! local outbox, which this node then delivers itself (fail-static), and
//! are moved once it answers again. A job is moved under its random key,
//! so moving it twice (a crash between the two writes) stores it once; a
//! node that dies between a POST and its record of it makes the job be
//! sent again after the lease: at least once, never lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::model::webhooks::WebhookJob;
use crate::store::{LocalStore, SharedState};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Jobs sent per round.
const BATCH: usize = 32;
/// Jobs moved to the shared outbox per transaction.
const MOVE_BATCH: usize = 256;
/// A claim outlives the request's timeout by this much before another
/// node may take the job.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Counters of webhook deliveries.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Requests answered with 2xx.
    pub delivered: AtomicU64,
    /// Jobs given up after their last attempt.
    pub failed: AtomicU64,
}

/// The sending side: cheap to clone, never blocks the caller.
#[derive(Clone)]
pub struct Webhooks {
    store: Option<LocalStore>,
    /// The shared outbox and this node's name, once joined.
    shared: Arc<std::sync::OnceLock<(Arc<dyn SharedState>, String)>>,
    wake: Arc<Notify>,
    /// Delivery counters.
    pub stats: Arc<WebhookStats>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Webhooks {
    /// A sender that drops everything (no URLs configured).
    pub fn disabled() -> Webhooks {
        Webhooks {
            store: None,
            shared: Arc::default(),
            wake: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// The outbox; nothing is sent until [`Webhooks::spawn_sender`].
    pub fn new(store: LocalStore) -> Webhooks {
        Webhooks {
            store: Some(store),
            shared: Arc::default(),
            wake: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// Delivers through the outbox `shared` by the nodes, as `node`, from
    /// now on (the local outbox's jobs are moved there).
    pub fn share(&self, shared: Arc<dyn SharedState>, node: String) {
        let _ = self.shared.set((shared, node));
        self.wake.notify_one();
    }

    /// Starts the background sender; jobs left in the store by an earlier
    /// run are sent too, even if no URL is configured any more. `https://`
    /// receivers must present a certificate that `roots` vouch for
    /// ([`crate::trust::all_certs`]).
    pub fn spawn_sender(
        &self,
        attempts: u32,
        timeout: Duration,
        roots: Vec<rustls_pki_types::CertificateDer<'static>>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run(attempts.max(1), timeout, roots, stop))
    }

    /// Queues an event for every URL of `urls` (`governor.webhooks` in
    /// force now; written to the store off the runtime).
    pub fn send(&self, urls: &[String], event: serde_json::Value) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if urls.is_empty() {
            return;
        }
        let jobs: Vec<WebhookJob> = urls
            .iter()
            .map(|u| WebhookJob {
                id: 0,
                key: new_key(),
                url: u.clone(),
                body: event.clone(),
                attempts: 0,
                next_at_ms: 0,
            })
            .collect();
        let wake = self.wake.clone();
        tokio::task::spawn_blocking(move || match store.add_webhook_jobs(&jobs) {
            Ok(()) => wake.notify_one(),
            Err(e) => tracing::error!(error = %e, "cannot store webhook events"),
        });
    }

    async fn run(
        self,
        attempts: u32,
        timeout: Duration,
        roots: Vec<rustls_pki_types::CertificateDer<'static>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let roots: Vec<ureq::tls::Certificate<'static>> = roots
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(true)
            .tls_config(tls)
            .build()
            .into();
        let lease = timeout + LEASE_MARGIN;
        let mut shared_down = false;
        loop {
            let now = crate::store::now_ms();
            let (due, outbox) = match self.shared.get() {
                Some((shared, node)) => match move_local(&store, shared.as_ref(), node).await {
                    Ok(()) => {
                        if shared_down {
                            tracing::info!("webhook outbox shared again");
                            shared_down = false;
                        }
                        let due = shared
                            .claim_webhook_jobs(node, now, lease.as_millis() as u64, BATCH)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "cannot claim webhook jobs");
                                Vec::new()
                            });
                        (due, Outbox::Shared(shared.clone()))
                    }
                    Err(e) => {
                        if !shared_down {
                            tracing::warn!(error = %e, "shared webhook outbox unreachable; this node delivers its own events meanwhile");
                            shared_down = true;
                        }
                        (local_due(&store, now).await, Outbox::Local(store.clone()))
                    }
                },
                None => (local_due(&store, now).await, Outbox::Local(store.clone())),
            };
            let full = due.len() == BATCH;
            // One task per job: a dead receiver delays the others by one timeout at most.
            let mut tasks = tokio::task::JoinSet::new();
            for job in due {
                tasks.spawn(deliver(
                    agent.clone(),
                    outbox.clone(),
                    job,
                    attempts,
                    self.stats.clone(),
                ));
            }
            while tasks.join_next().await.is_some() {}
            if full {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = crate::shutdown::stopped(&mut stop) => return,
            }
        }
    }
}

/// A random key for a new job, unique across the nodes.
fn new_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Where a job came from, and so where its attempt is recorded.
#[derive(Clone)]
enum Outbox {
    Local(LocalStore),
    Shared(Arc<dyn SharedState>),
}

impl Outbox {
    async fn finish(&self, id: u64, retry: Option<WebhookJob>) -> Result<(), String> {
        match self {
            Outbox::Local(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.finish_webhook_job(id, retry.as_ref()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            Outbox::Shared(shared) => shared
                .finish_webhook_job(id, retry.as_ref())
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// The local outbox's due jobs.
async fn local_due(store: &LocalStore, now: u64) -> Vec<WebhookJob> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.due_webhook_jobs(now, BATCH))
        .await
        .unwrap_or_else(|e| Err(crate::store::StoreError::Backend(e.to_string())))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the webhook outbox");
            Vec::new()
        })
}

/// Moves every job of the local outbox into the shared one, oldest first;
/// each batch is removed locally only once the shared store has it.
async fn move_local(
    store: &LocalStore,
    shared: &dyn SharedState,
    node: &str,
) -> Result<(), crate::store::StoreError> {
    loop {
        let s = store.clone();
        let mut jobs =
            tokio::task::spawn_blocking(move || s.due_webhook_jobs(u64::MAX, MOVE_BATCH))
                .await
                .map_err(|e| crate::store::StoreError::Backend(e.to_string()))??;
        if jobs.is_empty() {
            return Ok(());
        }
        // Oldest first, so that the shared outbox keeps their order.
        jobs.sort_by_key(|j| (j.next_at_ms, j.id));
        for j in &mut jobs {
            if j.key.is_empty() {
                // A job written by an older ugem.
                j.key = format!("{node}:{}:{}", j.id, new_key());
            }
        }
        shared.add_webhook_jobs(&jobs).await?;
        let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
        let full = ids.len() == MOVE_BATCH;
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.remove_webhook_jobs(&ids))
            .await
            .map_err(|e| crate::store::StoreError::Backend(e.to_string()))??;
        if !full {
            return Ok(());
        }
    }
}

async fn deliver(
    agent: ureq::Agent,
    outbox: Outbox,
    mut job: WebhookJob,
    attempts: u32,
    stats: Arc<WebhookStats>,
) {
    let (a, url) = (agent, job.url.clone());
    let body = serde_json::to_vec(&job.body).unwrap_or_default();
    // ureq is blocking: keep it off the async workers.
    let r = tokio::task::spawn_blocking(move || {
        a.post(&url)
            .header("Content-Type", "application/json")
            .header("User-Agent", "ugem")
            .send(&body[..])
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    job.attempts += 1;
    let retry = match r {
        Ok(()) => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) if job.attempts < attempts => {
            tracing::warn!(url = %job.url, attempt = job.attempts, error = %e, "webhook delivery failed; will retry");
            let wait = Duration::from_secs(1)
                .saturating_mul(1 << job.attempts.min(16))
                .min(MAX_BACKOFF);
            job.next_at_ms = crate::store::now_ms() + wait.as_millis() as u64;
            Some(job.clone())
        }
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(url = %job.url, attempts = job.attempts, error = %e, "webhook event dropped after the last attempt");
            None
        }
    };
    if let Err(e) = outbox.finish(job.id, retry).await {
        tracing::error!(id = job.id, error = %e, "cannot update the webhook outbox");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An HTTP server that fails the first request and accepts the second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_until_accepted_from_the_outbox() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for status in ["500 Oops", "200 OK"] {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= i + 4 + len {
                            bodies.push(text[i + 4..].to_string());
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
            }
            bodies
        });
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path()).unwrap().0;
        let (_stop_tx, stop) = watch::channel(false);
        let w = Webhooks::new(store.clone());
        let urls = [format!("http://{addr}/hook")];
        w.spawn_sender(3, Duration::from_secs(5), Vec::new(), stop);
        w.send(
            &urls,
            serde_json::json!({"event": "suspend", "rule": "volume"}),
        );
        let bodies = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert_eq!(bodies.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(v["rule"], "volume");
        for _ in 0..200 {
            if w.stats.delivered.load(Ordering::Relaxed) == 1
                && store.due_webhook_jobs(u64::MAX, 10).unwrap().is_empty()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not delivered or still in the outbox");
    }
}

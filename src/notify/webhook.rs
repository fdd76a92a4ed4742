//! JSON webhooks: every governor event is POSTed to each configured URL by a
//! background task, with retries and exponential backoff.
//!
//! Webhooks are best effort: an event still undelivered when the gateway
//! stops is lost (the e-mail notices, which go through the queue, are not).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Counters of webhook deliveries.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Requests answered with 2xx.
    pub delivered: AtomicU64,
    /// Events given up after the last attempt.
    pub failed: AtomicU64,
}

/// The sending side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Webhooks {
    tx: Option<mpsc::UnboundedSender<serde_json::Value>>,
    /// Delivery counters.
    pub stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// A sender that drops everything (no URLs configured).
    pub fn disabled() -> Webhooks {
        Webhooks {
            tx: None,
            stats: Arc::default(),
        }
    }

    /// Starts the background sender for `urls`.
    pub fn start(urls: Vec<String>, attempts: u32, timeout: Duration) -> Webhooks {
        if urls.is_empty() {
            return Webhooks::disabled();
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<serde_json::Value>();
        let stats: Arc<WebhookStats> = Arc::default();
        let st = stats.clone();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(true)
            .build()
            .into();
        let urls = Arc::new(urls);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let body = Arc::new(serde_json::to_vec(&event).unwrap_or_default());
                for url in urls.iter() {
                    // One task per URL and event: a dead receiver delays nobody else.
                    tokio::spawn(deliver(
                        agent.clone(),
                        url.clone(),
                        body.clone(),
                        attempts.max(1),
                        st.clone(),
                    ));
                }
            }
        });
        Webhooks {
            tx: Some(tx),
            stats,
        }
    }

    /// Queues an event for every URL.
    pub fn send(&self, event: serde_json::Value) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}

async fn deliver(
    agent: ureq::Agent,
    url: String,
    body: Arc<Vec<u8>>,
    attempts: u32,
    stats: Arc<WebhookStats>,
) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1..=attempts {
        let (a, u, b) = (agent.clone(), url.clone(), body.clone());
        // ureq is blocking: keep it off the async workers.
        let r = tokio::task::spawn_blocking(move || {
            a.post(&u)
                .header("Content-Type", "application/json")
                .header("User-Agent", "ugem")
                .send(&b[..])
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match r {
            Ok(()) => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(url = %url, attempt, error = %e, "webhook delivery failed");
                if attempt < attempts {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
    stats.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(url = %url, attempts, "webhook event dropped after the last attempt");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server that fails the first request and accepts the second.
    #[tokio::test]
    async fn retries_until_accepted() {
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
        let w = Webhooks::start(
            vec![format!("http://{addr}/hook")],
            3,
            Duration::from_secs(5),
        );
        w.send(serde_json::json!({"event": "suspend", "rule": "volume"}));
        let bodies = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert_eq!(bodies.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(v["rule"], "volume");
        for _ in 0..100 {
            if w.stats.delivered.load(Ordering::Relaxed) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not counted");
    }
}

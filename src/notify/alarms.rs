//! Queue alarms: the postmaster is told when the queue holds too many
//! messages or its oldest message is too old (remote outage, blocklisting,
//! a held domain's backlog), once per `alarms.repeat` while it lasts.

use std::time::Instant;

use tokio::sync::watch;

use crate::config::{Config, Live};

/// What is wrong with the queue, if anything.
pub fn queue_problem(cfg: &Config, c: &ugem_queue::Counts, now_ms: u64) -> Option<String> {
    let mut why = Vec::new();
    if c.total > cfg.alarms.queue_size {
        why.push(format!(
            "{} messages are queued (alarm above {})",
            c.total, cfg.alarms.queue_size
        ));
    }
    if let Some(oldest) = c.oldest_arrival_ms {
        let age = std::time::Duration::from_millis(now_ms.saturating_sub(oldest));
        if age > cfg.alarms.queue_age.0 {
            why.push(format!(
                "the oldest message has waited {} (alarm above {})",
                humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
                humantime::format_duration(cfg.alarms.queue_age.0)
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Checks the queue every `alarms.check_interval` until `stop` turns true.
pub async fn queue_alarms(queue: ugem_queue::Queue, live: Live, mut stop: watch::Receiver<bool>) {
    let mut last_alert: Option<Instant> = None;
    let mut reloads = live.subscribe();
    loop {
        let cfg = live.current();
        let q = queue.clone();
        let counts = tokio::task::spawn_blocking(move || q.counts()).await;
        if let Ok(Ok(c)) = counts {
            match queue_problem(&cfg, &c, ugem_queue::unix_ms()) {
                Some(why) if last_alert.is_none_or(|t| t.elapsed() >= cfg.alarms.repeat.0) => {
                    tracing::warn!(problem = %why, "queue alarm");
                    let text = format!(
                        "The ugem gateway {} reports a queue problem:\n\n  {why}\n\nQueue: {} messages ({} held, {} deferred, {} bytes).\nSee `ugem queue list` and `ugem queue counts`.\n",
                        cfg.server.hostname, c.total, c.held, c.deferred, c.bytes
                    );
                    let to = [cfg.server.postmaster.to_string()];
                    match super::enqueue_notice(&queue, &cfg, &to, "ugem queue alarm", &text).await
                    {
                        Ok(id) => {
                            tracing::info!(queue_id = %id, "queue alarm sent to the postmaster")
                        }
                        Err(e) => tracing::error!(error = %e, "cannot queue the queue alarm"),
                    }
                    last_alert = Some(Instant::now());
                }
                Some(_) => {}
                None => last_alert = None,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.alarms.check_interval.0) => {}
            // A reload may shorten the interval: check at once under it.
            _ = reloads.changed() => {}
            _ = crate::shutdown::stopped(&mut stop) => return,
        }
    }
}

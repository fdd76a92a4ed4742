//! Queue alarms: the postmaster is told when the queue holds too many
//! messages or its oldest message is too old (remote outage, blocklisting,
//! a held domain's backlog), once per `alarms.repeat` while it lasts.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::notices::Text;
use crate::config::{Config, Live};
use crate::registry::Registry;

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

/// The alarm notice to the postmaster: the queue's figures and the limits.
pub fn alarm_text(cfg: &Config, c: &ugem_queue::Counts, now_ms: u64) -> Text {
    let age = c
        .oldest_arrival_ms
        .map(|oldest| std::time::Duration::from_secs(now_ms.saturating_sub(oldest) / 1000));
    Text::new(
        "queue_alarm",
        serde_json::json!({
            "total": c.total,
            "held": c.held,
            "deferred": c.deferred,
            "bytes": c.bytes,
            "too_many": c.total > cfg.alarms.queue_size,
            "queue_size": cfg.alarms.queue_size,
            "too_old": age.is_some_and(|a| a > cfg.alarms.queue_age.0),
            "oldest_age": age.map(|a| humantime::format_duration(a).to_string()),
            "queue_age": humantime::format_duration(cfg.alarms.queue_age.0).to_string(),
        }),
    )
}

/// Checks the queue every `alarms.check_interval` until `stop` turns true.
pub async fn queue_alarms(
    queue: ugem_queue::Queue,
    registry: Arc<Registry>,
    live: Live,
    mut stop: watch::Receiver<bool>,
) {
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
                    let text = alarm_text(&cfg, &c, ugem_queue::unix_ms());
                    let to = [cfg.server.postmaster.to_string()];
                    match super::enqueue_notice(&queue, &registry, &cfg, &to, &text).await {
                        Ok((id, _)) => {
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

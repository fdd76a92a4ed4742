//! Sending the reports: once a day (`tlsrpt.send_after` past 00:00 UTC,
//! plus a random delay) every earlier day's counts go out, one report per
//! policy domain to each `mailto:` of its `_smtp._tls` record, through the
//! gateway's own queue; staff can send a day at once (`POST
//! /api/v1/tlsrpt/send`).

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;

use super::report::{self, Rua, Submitter};
use crate::config::{Config, Live};
use crate::delivery::route::Resolver;
use crate::model::tlsrpt::DayCounts;
use crate::store::{LocalStore, StoreError};

/// What became of one policy domain's report.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The policy domain.
    pub domain: String,
    /// The reported day.
    pub day: NaiveDate,
    /// Where it went (`mailto:` addresses), with its queue id.
    pub mailed: Vec<(String, String)>,
    /// `https:` addresses it did not go to, and other reasons it was not
    /// sent (no record, a bad one).
    pub not_sent: Vec<String>,
    /// True when the counts were kept for another try (DNS trouble).
    pub kept: bool,
}

/// Why a day could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The store could not be read or written.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The resolver could not be set up.
    #[error("resolver: {0}")]
    Resolver(String),
}

/// Sends the reports of `day` (its counts are forgotten once queued, or
/// when the domain asks for none).
pub async fn send_day(
    cfg: &Config,
    store: &LocalStore,
    queue: &ugem_queue::Queue,
    resolver: &Resolver,
    day: NaiveDate,
) -> Result<Vec<Sent>, SendError> {
    let s = store.clone();
    let days = tokio::task::spawn_blocking(move || s.tls_day_counts(day))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
    let mut out = Vec::new();
    for counts in days {
        out.push(send_one(cfg, store, queue, resolver, counts).await?);
    }
    Ok(out)
}

async fn send_one(
    cfg: &Config,
    store: &LocalStore,
    queue: &ugem_queue::Queue,
    resolver: &Resolver,
    counts: DayCounts,
) -> Result<Sent, SendError> {
    let domain = counts.policy.policy_domain.clone();
    let mut sent = Sent {
        domain: domain.clone(),
        day: counts.day,
        mailed: Vec::new(),
        not_sent: Vec::new(),
        kept: false,
    };
    let ruas = match resolver.txt(&format!("_smtp._tls.{domain}")).await {
        Ok(txts) => report::parse_record(&txts),
        Err(e) => {
            tracing::warn!(domain, error = %e, "TLS report: record lookup failed; kept for the next run");
            sent.kept = true;
            sent.not_sent.push(format!("lookup failed: {e}"));
            return Ok(sent);
        }
    };
    let ruas = match ruas {
        Ok(Some(r)) => r,
        Ok(None) => {
            sent.not_sent.push("no TLSRPT record".into());
            Vec::new()
        }
        Err(e) => {
            sent.not_sent.push(e.to_string());
            Vec::new()
        }
    };
    let mut mail_to = Vec::new();
    for r in ruas {
        match r {
            Rua::Mail(a) => mail_to.push(a),
            Rua::Https(u) => {
                tracing::info!(domain, url = %u, "TLS report: https rua not supported; not sent there");
                sent.not_sent
                    .push(format!("{u}: https reporting not supported"));
            }
        }
    }
    if !mail_to.is_empty() {
        let who = Submitter {
            organization: if cfg.tlsrpt.organization.is_empty() {
                cfg.server.hostname.to_string()
            } else {
                cfg.tlsrpt.organization.clone()
            },
            contact: cfg
                .tlsrpt
                .contact
                .as_ref()
                .unwrap_or(&cfg.server.postmaster)
                .to_string(),
            hostname: cfg.server.hostname.to_string(),
        };
        let unique = format!("{:016x}", rand::rng().random::<u64>());
        let report_id = format!("{}.{domain}.{unique}@{}", counts.day, who.hostname);
        let json = report::report_json(&counts, &who, &report_id);
        let from = cfg.server.postmaster.to_string();
        let msg = report::message(
            &who,
            &from,
            &mail_to,
            &counts,
            &report_id,
            &unique,
            &json,
            Utc::now(),
        );
        match enqueue(queue, cfg, &mail_to, msg).await {
            Ok(id) => {
                tracing::info!(domain, day = %counts.day, queue_id = %id, to = ?mail_to, success = counts.success, failure = counts.failure, "TLS report queued");
                sent.mailed = mail_to
                    .iter()
                    .map(|a| (a.clone(), id.to_string()))
                    .collect();
            }
            Err(e) => {
                tracing::error!(domain, error = %e, "cannot queue the TLS report; kept for the next run");
                sent.kept = true;
                sent.not_sent.push(format!("not queued: {e}"));
                return Ok(sent);
            }
        }
    }
    let (s, day) = (store.clone(), counts.day);
    tokio::task::spawn_blocking(move || s.forget_tls_day(day, &domain))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
    Ok(sent)
}

/// Queues the report from the postmaster, as the gateway's own mail.
async fn enqueue(
    queue: &ugem_queue::Queue,
    cfg: &Config,
    to: &[String],
    message: Vec<u8>,
) -> Result<ugem_queue::QueueId, ugem_queue::QueueError> {
    let env = ugem_queue::NewEnvelope {
        sender: cfg.server.postmaster.to_string(),
        recipients: to.to_vec(),
        client_ip: None,
        helo: cfg.server.hostname.to_string(),
        tls: None,
        domain: None,
        direction: ugem_queue::Direction::Local,
        arrived_at_ms: ugem_queue::unix_ms(),
        size: message.len() as u64,
    };
    crate::prepare::enqueue(
        queue,
        env,
        crate::prepare::Origin::Gateway,
        crate::prepare::Body::Memory(message),
    )
    .await
}

/// Sends every day before today that still has counts.
pub async fn send_due(
    cfg: &Config,
    store: &LocalStore,
    queue: &ugem_queue::Queue,
    resolver: &Resolver,
) -> Result<Vec<Sent>, SendError> {
    let today = Utc::now().date_naive();
    let s = store.clone();
    let days = tokio::task::spawn_blocking(move || s.tls_days())
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
    let mut out = Vec::new();
    for day in days.into_iter().filter(|d| *d < today) {
        out.extend(send_day(cfg, store, queue, resolver, day).await?);
    }
    Ok(out)
}

/// How long until the next daily run: `send_after` past the next 00:00
/// UTC (today's, if that is still ahead), plus up to 15 minutes.
fn until_next_run(send_after: Duration, jitter: Duration) -> Duration {
    let now = Utc::now();
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let offset = chrono::Duration::from_std(send_after + jitter).unwrap_or_default();
    let mut at = midnight + offset;
    if at <= now {
        at += chrono::Duration::days(1);
    }
    (at - now).to_std().unwrap_or_default()
}

/// The daily run, until `stop` turns true.
pub async fn daily(
    live: Live,
    store: LocalStore,
    queue: ugem_queue::Queue,
    mut stop: watch::Receiver<bool>,
) {
    let resolver = match Resolver::new(&live.current().delivery.nameservers) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "TLS reports: no resolver; none will be sent");
            return;
        }
    };
    loop {
        let cfg = live.current();
        let jitter = Duration::from_secs(rand::rng().random_range(0..900));
        tokio::select! {
            _ = tokio::time::sleep(until_next_run(cfg.tlsrpt.send_after.0, jitter)) => {}
            _ = crate::shutdown::stopped(&mut stop) => return,
        }
        let cfg = live.current();
        if !cfg.tlsrpt.enabled {
            continue;
        }
        if let Err(e) = send_due(&cfg, &store, &queue, &resolver).await {
            tracing::error!(error = %e, "TLS reports not sent");
        }
    }
}

/// The resolver for a run started by staff.
pub fn resolver_for(cfg: &Config) -> Result<Resolver, SendError> {
    Resolver::new(&cfg.delivery.nameservers).map_err(|e| SendError::Resolver(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_is_within_a_day() {
        let d = until_next_run(Duration::from_secs(3600), Duration::from_secs(60));
        assert!(d <= Duration::from_secs(86_400 + 3660), "{d:?}");
        assert!(d > Duration::ZERO);
    }
}

//! Prometheus metrics: process-wide counters kept in atomics and rendered in
//! the text exposition format on the admin listener's `/metrics`. Gauges
//! that describe state (queue, suspensions, store size) are read at scrape
//! time from their owners, so they cannot drift.
//!
//! Hand-rolled rather than the `metrics` crates: a dozen counters do not
//! earn two more dependencies, and the output format is stable and small.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// SMTP sessions started.
pub static SESSIONS: AtomicU64 = AtomicU64::new(0);
/// SMTP sessions in progress.
pub static SESSIONS_ACTIVE: AtomicI64 = AtomicI64::new(0);
/// Messages accepted (queued) by SMTP.
pub static MESSAGES_ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Bytes of accepted messages.
pub static BYTES_ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Remote refusals naming a gateway address on a blocklist.
static GATEWAY_LISTED: AtomicU64 = AtomicU64::new(0);

/// Refusals by reply code and enhanced code ("550 5.7.1").
static REFUSALS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// Delivery outcomes per recipient by class ("delivered", "deferred", "failed").
static DELIVERIES: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// Governor throttles by limit name.
static THROTTLES: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// Inbound recipient probes by result ("exists", "unknown", "unverified").
static VERIFICATIONS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// MTA-STS events ("fetched", "fetch_failed", "enforced_refusal").
static MTA_STS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    // Label values come from a small fixed set (reply codes, classes,
    // limit names); cap the map anyway so a bug cannot grow it without end.
    if m.len() < 500 || m.contains_key(key) {
        *m.entry(key.to_string()).or_insert(0) += 1;
    }
}

/// Counts one refusal reply.
pub fn refusal(code: u16, enhanced: &str) {
    bump(&REFUSALS, format!("{code} {enhanced}").trim());
}

/// Counts one recipient's delivery outcome.
pub fn delivery(class: &str) {
    bump(&DELIVERIES, class);
}

/// Counts one remote refusal naming a gateway address on a blocklist.
pub fn gateway_listed() {
    GATEWAY_LISTED.fetch_add(1, Ordering::Relaxed);
}

/// Counts one inbound recipient probe by its result.
pub fn verification(result: &str) {
    bump(&VERIFICATIONS, result);
}

/// Counts one MTA-STS event.
pub fn mta_sts(event: &str) {
    bump(&MTA_STS, event);
}

/// Counts one governor throttle.
pub fn throttle(limit: &str) {
    bump(&THROTTLES, limit);
}

/// Point-in-time values gathered at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Queue messages by state.
    pub queue: Vec<(&'static str, u64)>,
    /// Queue bytes.
    pub queue_bytes: u64,
    /// Age of the oldest queued message, seconds.
    pub oldest_age_seconds: f64,
    /// Generated mail (bounces, notices) waiting in the queue.
    pub notification_backlog: u64,
    /// Active suspensions by scope kind.
    pub suspensions: Vec<(&'static str, u64)>,
    /// Store file size, bytes.
    pub store_bytes: u64,
    /// Queue file size, bytes.
    pub queue_file_bytes: u64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labelled(out: &mut String, name: &str, label: &str, map: &Mutex<BTreeMap<String, u64>>) {
    let m = map.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in m.iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(k));
    }
}

/// Renders every metric in the Prometheus text format.
pub fn render(g: &Gauges) -> String {
    let mut out = String::with_capacity(2048);
    family(
        &mut out,
        "ugem_smtp_sessions_total",
        "counter",
        "SMTP sessions started.",
    );
    let _ = writeln!(
        out,
        "ugem_smtp_sessions_total {}",
        SESSIONS.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "ugem_smtp_sessions_active",
        "gauge",
        "SMTP sessions in progress.",
    );
    let _ = writeln!(
        out,
        "ugem_smtp_sessions_active {}",
        SESSIONS_ACTIVE.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "ugem_smtp_messages_accepted_total",
        "counter",
        "Messages accepted and queued.",
    );
    let _ = writeln!(
        out,
        "ugem_smtp_messages_accepted_total {}",
        MESSAGES_ACCEPTED.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "ugem_smtp_accepted_bytes_total",
        "counter",
        "Bytes of accepted messages.",
    );
    let _ = writeln!(
        out,
        "ugem_smtp_accepted_bytes_total {}",
        BYTES_ACCEPTED.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "ugem_gateway_listed_total",
        "counter",
        "Remote refusals naming a gateway address on a blocklist.",
    );
    let _ = writeln!(
        out,
        "ugem_gateway_listed_total {}",
        GATEWAY_LISTED.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "ugem_smtp_refusals_total",
        "counter",
        "Refusal replies by code.",
    );
    labelled(&mut out, "ugem_smtp_refusals_total", "reply", &REFUSALS);
    family(
        &mut out,
        "ugem_delivery_recipients_total",
        "counter",
        "Recipient delivery outcomes by class.",
    );
    labelled(
        &mut out,
        "ugem_delivery_recipients_total",
        "class",
        &DELIVERIES,
    );
    family(
        &mut out,
        "ugem_governor_throttles_total",
        "counter",
        "Governor throttles by limit.",
    );
    labelled(
        &mut out,
        "ugem_governor_throttles_total",
        "limit",
        &THROTTLES,
    );
    family(
        &mut out,
        "ugem_recipient_verifications_total",
        "counter",
        "Inbound recipient probes of registered domains' servers, by result.",
    );
    labelled(
        &mut out,
        "ugem_recipient_verifications_total",
        "result",
        &VERIFICATIONS,
    );
    family(
        &mut out,
        "ugem_mta_sts_total",
        "counter",
        "MTA-STS policy fetches and refusals to deliver, by event.",
    );
    labelled(&mut out, "ugem_mta_sts_total", "event", &MTA_STS);
    family(
        &mut out,
        "ugem_queue_messages",
        "gauge",
        "Queued messages by state.",
    );
    for (state, n) in &g.queue {
        let _ = writeln!(out, "ugem_queue_messages{{state=\"{state}\"}} {n}");
    }
    family(
        &mut out,
        "ugem_queue_bytes",
        "gauge",
        "Bytes of queued messages.",
    );
    let _ = writeln!(out, "ugem_queue_bytes {}", g.queue_bytes);
    family(
        &mut out,
        "ugem_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest queued message.",
    );
    let _ = writeln!(
        out,
        "ugem_queue_oldest_age_seconds {:.3}",
        g.oldest_age_seconds
    );
    family(
        &mut out,
        "ugem_notification_backlog",
        "gauge",
        "Generated mail (bounces, notices) waiting in the queue.",
    );
    let _ = writeln!(out, "ugem_notification_backlog {}", g.notification_backlog);
    family(
        &mut out,
        "ugem_suspensions_active",
        "gauge",
        "Active suspensions by scope.",
    );
    for (scope, n) in &g.suspensions {
        let _ = writeln!(out, "ugem_suspensions_active{{scope=\"{scope}\"}} {n}");
    }
    family(
        &mut out,
        "ugem_store_size_bytes",
        "gauge",
        "Size of the store and queue files.",
    );
    let _ = writeln!(
        out,
        "ugem_store_size_bytes{{file=\"store\"}} {}",
        g.store_bytes
    );
    let _ = writeln!(
        out,
        "ugem_store_size_bytes{{file=\"queue\"}} {}",
        g.queue_file_bytes
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labels() {
        refusal(550, "5.7.1");
        refusal(550, "5.7.1");
        delivery("delivered");
        let text = render(&Gauges {
            queue: vec![("active", 3), ("held", 1)],
            suspensions: vec![("domain", 1)],
            ..Default::default()
        });
        assert!(
            text.contains("ugem_smtp_refusals_total{reply=\"550 5.7.1\"} 2"),
            "{text}"
        );
        assert!(text.contains("ugem_delivery_recipients_total{class=\"delivered\"} 1"));
        assert!(text.contains("ugem_queue_messages{state=\"held\"} 1"));
        assert!(text.contains("# TYPE ugem_smtp_sessions_total counter"));
    }
}

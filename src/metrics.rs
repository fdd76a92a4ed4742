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
/// Admin API calls refused for their token, by HTTP status ("401", "403").
static ADMIN_REFUSED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

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

/// Counts one admin API call refused for its token (401 or 403).
pub fn admin_refused(status: u16) {
    bump(&ADMIN_REFUSED, &status.to_string());
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
    /// Audit records in the store.
    pub audit_records: u64,
    /// Bytes the audit records take in the store.
    pub audit_bytes: u64,
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

/// One family with a single unlabelled sample.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// One counter family with a sample per label value.
fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &Mutex<BTreeMap<String, u64>>,
) {
    family(out, name, "counter", help);
    let m = map.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in m.iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(k));
    }
}

/// One gauge family with a sample per label value.
fn gauges<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    rows: &[(&str, V)],
) {
    family(out, name, "gauge", help);
    for (k, v) in rows {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", escape(k));
    }
}

/// Renders every metric in the Prometheus text format.
pub fn render(g: &Gauges) -> String {
    let mut out = String::with_capacity(2048);
    let o = &mut out;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    scalar(
        o,
        "ugem_smtp_sessions_total",
        "counter",
        "SMTP sessions started.",
        load(&SESSIONS),
    );
    scalar(
        o,
        "ugem_smtp_sessions_active",
        "gauge",
        "SMTP sessions in progress.",
        SESSIONS_ACTIVE.load(Ordering::Relaxed),
    );
    scalar(
        o,
        "ugem_smtp_messages_accepted_total",
        "counter",
        "Messages accepted and queued.",
        load(&MESSAGES_ACCEPTED),
    );
    scalar(
        o,
        "ugem_smtp_accepted_bytes_total",
        "counter",
        "Bytes of accepted messages.",
        load(&BYTES_ACCEPTED),
    );
    scalar(
        o,
        "ugem_gateway_listed_total",
        "counter",
        "Remote refusals naming a gateway address on a blocklist.",
        load(&GATEWAY_LISTED),
    );
    labelled(
        o,
        "ugem_smtp_refusals_total",
        "Refusal replies by code.",
        "reply",
        &REFUSALS,
    );
    labelled(
        o,
        "ugem_delivery_recipients_total",
        "Recipient delivery outcomes by class.",
        "class",
        &DELIVERIES,
    );
    labelled(
        o,
        "ugem_governor_throttles_total",
        "Governor throttles by limit.",
        "limit",
        &THROTTLES,
    );
    labelled(
        o,
        "ugem_recipient_verifications_total",
        "Inbound recipient probes of registered domains' servers, by result.",
        "result",
        &VERIFICATIONS,
    );
    labelled(
        o,
        "ugem_mta_sts_total",
        "MTA-STS policy fetches and refusals to deliver, by event.",
        "event",
        &MTA_STS,
    );
    gauges(
        o,
        "ugem_queue_messages",
        "Queued messages by state.",
        "state",
        &g.queue,
    );
    scalar(
        o,
        "ugem_queue_bytes",
        "gauge",
        "Bytes of queued messages.",
        g.queue_bytes,
    );
    scalar(
        o,
        "ugem_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest queued message.",
        format!("{:.3}", g.oldest_age_seconds),
    );
    scalar(
        o,
        "ugem_notification_backlog",
        "gauge",
        "Generated mail (bounces, notices) waiting in the queue.",
        g.notification_backlog,
    );
    gauges(
        o,
        "ugem_suspensions_active",
        "Active suspensions by scope.",
        "scope",
        &g.suspensions,
    );
    labelled(
        o,
        "ugem_admin_refused_total",
        "Admin API calls refused for their token, by HTTP status.",
        "status",
        &ADMIN_REFUSED,
    );
    scalar(
        o,
        "ugem_audit_records",
        "gauge",
        "Records in the audit log (refused calls compacted, pruned after admin.audit_refused_retention).",
        g.audit_records,
    );
    scalar(
        o,
        "ugem_audit_bytes",
        "gauge",
        "Bytes the audit log takes in the store.",
        g.audit_bytes,
    );
    gauges(
        o,
        "ugem_store_size_bytes",
        "Size of the store and queue files.",
        "file",
        &[("store", g.store_bytes), ("queue", g.queue_file_bytes)],
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

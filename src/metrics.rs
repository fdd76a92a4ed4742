//! Prometheus metrics: process-wide counters and histograms, rendered in the
//! OpenMetrics text format on the admin listener's `/metrics`. Gauges that
//! describe state (queue, suspensions, store size, process) are read at
//! scrape time from their owners, so they cannot drift.
//!
//! Built on `prometheus-client` (the Prometheus project's Rust client): with
//! histograms wanted, its bucket, `_sum`/`_count`, escaping and OpenMetrics
//! rules are code we no longer write (README, "Dependency notes"). The
//! handles live in one static; each scrape registers clones of them (they
//! share their values) with the scrape-time gauges in a fresh registry.

mod destinations;
mod process;
mod session;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use destinations::DESTINATION_LABELS;
pub use session::{SessionEnd, SessionOutcome, SessionTally};

/// The Content-Type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Most label values one counter family keeps: they come from small fixed
/// sets (reply codes, classes, limit names), the cap only stops a bug.
const MAX_LABEL_VALUES: usize = 500;

/// Upper bounds of the delivery attempt histogram, seconds.
const DELIVERY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Upper bounds of the queue residence histogram, seconds: a second to
/// five days (`delivery.max_queue_lifetime`'s default).
const RESIDENCE_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 172800.0, 432000.0,
];

type Label = [(&'static str, String); 1];
type FixedLabel = [(&'static str, &'static str); 1];
type ResidenceFamily = Family<FixedLabel, Histogram, fn() -> Histogram>;

/// Every metric kept between scrapes.
struct Metrics {
    sessions: Counter,
    sessions_active: Gauge,
    /// Registry writes waiting in the node's outbox for the shared store.
    store_pending_writes: Gauge,
    /// Unix time since which the registry served is the local copy (0: not).
    store_local_copy_since: Gauge,
    session_outcomes: Family<FixedLabel, Counter>,
    messages_accepted: Counter,
    bytes_accepted: Counter,
    blocklist_refusals: Counter,
    refusals: Labelled,
    deliveries: Labelled,
    throttles: Labelled,
    verifications: Labelled,
    mta_sts: Labelled,
    admin_refused: Labelled,
    destinations: destinations::Destinations,
    delivery_seconds: Histogram,
    residence_seconds: ResidenceFamily,
}

/// A family shown with its HELP and TYPE lines before its first sample (as
/// the hand-written exposition did), so that dashboards and alerts can
/// rely on its name from the start; prometheus-client leaves out an empty
/// family.
#[derive(Debug)]
struct Declared<M>(M);

impl<M: EncodeMetric> EncodeMetric for Declared<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

fn residence_histogram() -> Histogram {
    Histogram::new(RESIDENCE_BUCKETS)
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    sessions: Counter::default(),
    sessions_active: Gauge::default(),
    store_pending_writes: Gauge::default(),
    store_local_copy_since: Gauge::default(),
    session_outcomes: Family::default(),
    messages_accepted: Counter::default(),
    bytes_accepted: Counter::default(),
    blocklist_refusals: Counter::default(),
    refusals: Labelled::default(),
    deliveries: Labelled::default(),
    throttles: Labelled::default(),
    verifications: Labelled::default(),
    mta_sts: Labelled::default(),
    admin_refused: Labelled::default(),
    destinations: destinations::Destinations::new(DESTINATION_LABELS),
    delivery_seconds: Histogram::new(DELIVERY_BUCKETS),
    residence_seconds: Family::new_with_constructor(residence_histogram as fn() -> Histogram),
});

/// Whether a gateway address is listed on a blocklist now, by (address,
/// zone): both come from the configuration, so the labels stay few (and
/// [`MAX_LABEL_VALUES`] bounds them anyway).
static GATEWAY_LISTED: LazyLock<Family<[(&'static str, String); 2], Gauge>> =
    LazyLock::new(Family::default);

/// A counter family with one label and at most [`MAX_LABEL_VALUES`] values.
#[derive(Default)]
struct Labelled {
    family: Family<Label, Counter>,
    values: AtomicUsize,
}

impl Labelled {
    fn bump(&self, label: &'static str, value: &str) {
        let labels = [(label, value.to_string())];
        if let Some(c) = self.family.get(&labels) {
            c.inc();
        } else if self.values.fetch_add(1, Ordering::Relaxed) < MAX_LABEL_VALUES {
            // Two first bumps of one value at once count it twice toward
            // the cap; harmless.
            self.family.get_or_create(&labels).inc();
        }
    }
}

/// Counts one message accepted and queued by SMTP, with its size.
pub fn message_accepted(bytes: u64) {
    METRICS.messages_accepted.inc();
    METRICS.bytes_accepted.inc_by(bytes);
}

/// Counts one refusal reply.
pub fn refusal(code: u16, enhanced: &str) {
    METRICS
        .refusals
        .bump("reply", format!("{code} {enhanced}").trim());
}

/// A recipient's delivery result, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted by the destination.
    Delivered,
    /// To be tried again.
    Deferred,
    /// Failed for good (bounced).
    Failed,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Deferred => "deferred",
            Delivery::Failed => "failed",
        }
    }
}

/// How a recipient left the queue, for the residence histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Delivered.
    Delivered,
    /// Bounced (a DSN goes to the sender).
    Bounced,
}

/// Counts one recipient's delivery result by class and by its address's
/// domain (the busiest [`DESTINATION_LABELS`] by name, the rest as
/// "other"); a final result also observes how long the message, which
/// arrived at `arrived_unix_ms`, was queued.
pub fn recipient_delivery(address: &str, result: Delivery, arrived_unix_ms: u64) {
    let m = &*METRICS;
    m.deliveries.bump("class", result.as_str());
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    m.destinations.count(domain, result.as_str());
    match result {
        Delivery::Delivered => left_queue(Left::Delivered, arrived_unix_ms),
        Delivery::Failed => left_queue(Left::Bounced, arrived_unix_ms),
        Delivery::Deferred => {}
    }
}

/// Observes one recipient leaving the queue, from its message's arrival at
/// `arrived_unix_ms` until now.
pub fn left_queue(how: Left, arrived_unix_ms: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let seconds = now.saturating_sub(arrived_unix_ms) as f64 / 1000.0;
    let label = match how {
        Left::Delivered => "delivered",
        Left::Bounced => "bounced",
    };
    METRICS
        .residence_seconds
        .get_or_create(&[("result", label)])
        .observe(seconds);
}

/// Observes how long one delivery attempt to one destination took.
pub fn delivery_attempt(took: Duration) {
    METRICS.delivery_seconds.observe(took.as_secs_f64());
}

/// Counts one remote refusal naming a gateway address on a blocklist.
pub fn gateway_listed() {
    METRICS.blocklist_refusals.inc();
}

/// Sets whether gateway address `address` is listed on the blocklist
/// `zone` now (the blocklist watch).
pub fn set_gateway_listed(address: &str, zone: &str, listed: bool) {
    let labels = [("address", address.to_string()), ("zone", zone.to_string())];
    if GATEWAY_LISTED.get(&labels).is_none()
        && GATEWAY_LISTED_VALUES.fetch_add(1, Ordering::Relaxed) >= MAX_LABEL_VALUES
    {
        return;
    }
    GATEWAY_LISTED.get_or_create(&labels).set(i64::from(listed));
}

/// Drops the `ugem_gateway_listed` series of a pair no longer watched.
pub fn forget_gateway_listed(address: &str, zone: &str) {
    let labels = [("address", address.to_string()), ("zone", zone.to_string())];
    GATEWAY_LISTED.remove(&labels);
}

/// Label sets of `ugem_gateway_listed` made so far.
static GATEWAY_LISTED_VALUES: AtomicUsize = AtomicUsize::new(0);

/// Counts one inbound recipient probe by its result.
pub fn verification(result: &str) {
    METRICS.verifications.bump("result", result);
}

/// Counts one MTA-STS event.
pub fn mta_sts(event: &str) {
    METRICS.mta_sts.bump("event", event);
}

/// Counts one admin API call refused for its token (401 or 403).
pub fn admin_refused(status: u16) {
    METRICS.admin_refused.bump("status", &status.to_string());
}

/// Sets how many registry writes wait for the shared store (PostgreSQL).
pub fn set_store_pending_writes(n: u64) {
    METRICS
        .store_pending_writes
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// Sets since when (unix seconds) the node serves the local copy of the
/// registry because the shared store has not answered since its start;
/// `None` once it has.
pub fn set_store_local_copy_since(unix_s: Option<i64>) {
    METRICS.store_local_copy_since.set(unix_s.unwrap_or(0));
}

/// Counts one governor throttle.
pub fn throttle(limit: &str) {
    METRICS.throttles.bump("limit", limit);
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
    /// The queue's acceptance journal file size, bytes.
    pub journal_file_bytes: u64,
    /// Syncs the queue made so far: durable database commits, journal appends.
    pub queue_syncs: Vec<(&'static str, u64)>,
    /// Messages the queue brought back from its journal (open, reopen after a failure).
    pub queue_restored: u64,
    /// Audit records in the store.
    pub audit_records: u64,
    /// Bytes the audit records take in the store.
    pub audit_bytes: u64,
}

/// The build's target, from what std knows without a build script
/// (`x86_64-linux-gnu`).
fn target() -> String {
    let env = if cfg!(target_env = "gnu") {
        "-gnu"
    } else if cfg!(target_env = "musl") {
        "-musl"
    } else {
        ""
    };
    format!("{}-{}{env}", std::env::consts::ARCH, std::env::consts::OS)
}

fn gauge(r: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    r.register(name, help, g);
}

fn labelled_gauges(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    rows: &[(&str, u64)],
) {
    let f: Family<Label, Gauge> = Family::default();
    for (k, v) in rows {
        f.get_or_create(&[(label, k.to_string())])
            .set(i64::try_from(*v).unwrap_or(i64::MAX));
    }
    r.register(name, help, f);
}

/// A family of counters read from elsewhere at scrape time (rendered `NAME_total{LABEL=..}`).
fn labelled_counters(
    r: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    rows: &[(&str, u64)],
) {
    let f: Family<Label, Counter> = Family::default();
    for (k, v) in rows {
        f.get_or_create(&[(label, k.to_string())]).inc_by(*v);
    }
    r.register(name, help, f);
}

/// Renders every metric in the OpenMetrics text format (counters' samples
/// end in `_total`, as they always did here).
pub fn render(g: &Gauges) -> String {
    let m = &*METRICS;
    let mut r = Registry::default();
    let info = Info::new([
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("target", target()),
    ]);
    r.register("ugem_build", "The version and target of this build", info);
    r.register(
        "ugem_smtp_sessions",
        "SMTP sessions started",
        m.sessions.clone(),
    );
    r.register(
        "ugem_smtp_sessions_active",
        "SMTP sessions in progress",
        m.sessions_active.clone(),
    );
    r.register(
        "ugem_store_pending_writes",
        "Registry writes this node made while the shared store (PostgreSQL) was out of reach, waiting in its local outbox",
        m.store_pending_writes.clone(),
    );
    r.register(
        "ugem_store_local_copy_since_seconds",
        "Unix time since which this node serves its local copy of the registry because the shared store (PostgreSQL) has not answered since the node started; 0 when it serves the store's",
        m.store_local_copy_since.clone(),
    );
    r.register(
        "ugem_smtp_session_outcomes",
        "SMTP sessions ended, by outcome (queued, refused_connect, refused_mail, refused_rcpt, tls_failed, timeout, quit_without_mail, protocol_error, disconnected, shutdown)",
        Declared(m.session_outcomes.clone()),
    );
    r.register(
        "ugem_smtp_messages_accepted",
        "Messages accepted and queued",
        m.messages_accepted.clone(),
    );
    r.register(
        "ugem_smtp_accepted_bytes",
        "Bytes of accepted messages",
        m.bytes_accepted.clone(),
    );
    r.register(
        "ugem_delivery_blocklist_refusals",
        "Remote refusals naming a gateway address on a blocklist",
        m.blocklist_refusals.clone(),
    );
    r.register(
        "ugem_gateway_listed",
        "1 while the gateway address is listed on the blocklist zone, 0 when not (the blocklist watch, [dnsbl])",
        Declared(GATEWAY_LISTED.clone()),
    );
    r.register(
        "ugem_smtp_refusals",
        "Refusal replies by code",
        Declared(m.refusals.family.clone()),
    );
    r.register(
        "ugem_delivery_recipients",
        "Recipient delivery outcomes by class",
        Declared(m.deliveries.family.clone()),
    );
    r.register(
        "ugem_delivery_destination_recipients",
        "Recipient delivery outcomes by class and destination domain (the busiest domains by name, the rest as \"other\")",
        Declared(m.destinations.family()),
    );
    r.register(
        "ugem_delivery_attempt_duration_seconds",
        "Time one delivery attempt to one destination took (connect to last reply)",
        m.delivery_seconds.clone(),
    );
    r.register(
        "ugem_queue_residence_seconds",
        "Time from acceptance to a recipient's delivery or bounce",
        Declared(m.residence_seconds.clone()),
    );
    r.register(
        "ugem_governor_throttles",
        "Governor throttles by limit",
        Declared(m.throttles.family.clone()),
    );
    r.register(
        "ugem_recipient_verifications",
        "Inbound recipient probes of registered domains' servers, by result",
        Declared(m.verifications.family.clone()),
    );
    r.register(
        "ugem_mta_sts",
        "MTA-STS policy fetches and refusals to deliver, by event",
        Declared(m.mta_sts.family.clone()),
    );
    r.register(
        "ugem_admin_refused",
        "Admin API calls refused for their token, by HTTP status",
        Declared(m.admin_refused.family.clone()),
    );
    labelled_gauges(
        &mut r,
        "ugem_queue_messages",
        "Queued messages by state",
        "state",
        &g.queue,
    );
    gauge(
        &mut r,
        "ugem_queue_bytes",
        "Bytes of queued messages",
        g.queue_bytes,
    );
    let oldest = Gauge::<f64, AtomicU64>::default();
    oldest.set(g.oldest_age_seconds);
    r.register(
        "ugem_queue_oldest_age_seconds",
        "Age of the oldest queued message",
        oldest,
    );
    gauge(
        &mut r,
        "ugem_notification_backlog",
        "Generated mail (bounces, notices) waiting in the queue",
        g.notification_backlog,
    );
    labelled_gauges(
        &mut r,
        "ugem_suspensions_active",
        "Active suspensions by scope",
        "scope",
        &g.suspensions,
    );
    gauge(
        &mut r,
        "ugem_audit_records",
        "Records in the audit log (refused calls compacted, pruned after admin.audit_refused_retention)",
        g.audit_records,
    );
    gauge(
        &mut r,
        "ugem_audit_bytes",
        "Bytes the audit log takes in the store",
        g.audit_bytes,
    );
    labelled_gauges(
        &mut r,
        "ugem_store_size_bytes",
        "Size of the store and queue files",
        "file",
        &[
            ("store", g.store_bytes),
            ("queue", g.queue_file_bytes),
            ("journal", g.journal_file_bytes),
        ],
    );
    labelled_counters(
        &mut r,
        "ugem_queue_syncs",
        "Syncs that made queue changes durable: database commits, acceptance journal appends",
        "kind",
        &g.queue_syncs,
    );
    let restored: Counter = Counter::default();
    restored.inc_by(g.queue_restored);
    r.register(
        "ugem_queue_journal_restored",
        "Messages brought back from the acceptance journal (after a crash or a failed commit)",
        restored,
    );
    process::register(&mut r);
    let mut out = String::with_capacity(8192);
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labels() {
        refusal(550, "5.7.1");
        refusal(550, "5.7.1");
        recipient_delivery("a@example.org", Delivery::Delivered, 0);
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
        // OpenMetrics names a counter's family without `_total`.
        assert!(text.contains("# TYPE ugem_smtp_sessions counter"));
        assert!(text.contains("# TYPE ugem_queue_residence_seconds histogram"));
        assert!(
            text.contains(
                "ugem_queue_residence_seconds_bucket{le=\"+Inf\",result=\"delivered\"} 1"
            ) || text.contains(
                "ugem_queue_residence_seconds_bucket{result=\"delivered\",le=\"+Inf\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "ugem_build_info{{version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_target_names_arch_and_os() {
        let t = target();
        assert!(t.starts_with(std::env::consts::ARCH), "{t}");
        assert!(t.contains(std::env::consts::OS), "{t}");
    }
}

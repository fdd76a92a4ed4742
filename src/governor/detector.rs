//! The anomaly detector's arithmetic: per-scope counters over a sliding
//! window, a learned baseline per hour of the week, and the rules that judge
//! them. Pure: time comes in as unix milliseconds, so tests replay traffic.
//!
//! The sliding window is estimated from two fixed buckets (the current and
//! the previous one, weighted by how much of it still overlaps the window):
//! constant memory per scope, and it is exact for steady traffic.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::settings::GovernorSection;

/// Hours in a week: the baseline has one slot per hour of the week.
const HOURS_OF_WEEK: usize = 168;
/// Most distinct recipients remembered per scope for the new-recipient rule.
const SEEN_CAP: usize = 20_000;
/// Most governor refusals remembered per scope for the throttling rule.
const THROTTLES_CAP: usize = 10_000;

/// Counters of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Outbound recipients accepted at RCPT.
    pub recipients: u64,
    /// Of those, addresses not seen before from this scope.
    pub new_recipients: u64,
    /// Final or temporary delivery results observed.
    pub outcomes: u64,
    /// Permanent remote refusals, plus temporary ones matching spam patterns.
    pub rejected: u64,
    /// Refusals whose text matched a blocklist or spam pattern.
    pub spam: u64,
    /// Unknown recipients (5.1.1 and its wordings).
    pub unknown: u64,
}

impl Counts {
    fn weighted(self, w: f64) -> [f64; 6] {
        [
            self.recipients as f64 * w,
            self.new_recipients as f64 * w,
            self.outcomes as f64 * w,
            self.rejected as f64 * w,
            self.spam as f64 * w,
            self.unknown as f64 * w,
        ]
    }
}

/// What a scope did recently and usually does; persisted in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopeStats {
    /// Start of the current bucket (unix ms, a multiple of the window).
    pub bucket_start_ms: u64,
    /// The current bucket.
    pub cur: Counts,
    /// The previous bucket.
    pub prev: Counts,
    /// EWMA of recipients per window, by hour of the week (negative: unknown).
    pub baseline: Vec<f64>,
    /// EWMA of recipients per window over active windows (negative: unknown).
    pub typical: f64,
    /// Windows learned so far.
    pub learned: u64,
    /// Times of the latest governor refusals (unix ms).
    pub throttles: VecDeque<u64>,
    /// Last activity (unix ms), for eviction.
    pub last_seen_ms: u64,
    /// Recipient hashes seen; not persisted (a restart starts a new warm-up).
    #[serde(skip)]
    pub seen: HashSet<u64, BuildHasherDefault<Prehashed>>,
    /// Since when `seen` has been filling; the burst rule waits a full window.
    #[serde(skip)]
    pub seen_since_ms: u64,
    /// Keeps the hour-of-week baseline and the recipient memory (domains).
    /// Senders do without: they are many, and 1.3 KiB of baseline plus a
    /// recipient set each would not stay bounded; their volume is judged
    /// against their typical active window.
    #[serde(default = "yes")]
    pub detailed: bool,
}

fn yes() -> bool {
    true
}

impl ScopeStats {
    /// A sender-like scope: no hour-of-week baseline, no recipient memory.
    pub fn light(now_ms: u64, window_ms: u64) -> ScopeStats {
        ScopeStats {
            baseline: Vec::new(),
            detailed: false,
            ..ScopeStats::new(now_ms, window_ms)
        }
    }

    /// A scope first seen at `now_ms`, with every statistic (a domain).
    pub fn new(now_ms: u64, window_ms: u64) -> ScopeStats {
        ScopeStats {
            bucket_start_ms: bucket_of(now_ms, window_ms),
            cur: Counts::default(),
            prev: Counts::default(),
            baseline: vec![-1.0; HOURS_OF_WEEK],
            typical: -1.0,
            learned: 0,
            throttles: VecDeque::new(),
            last_seen_ms: now_ms,
            seen: HashSet::default(),
            seen_since_ms: now_ms,
            detailed: true,
        }
    }

    /// Moves the buckets forward to `now_ms`, learning from every completed one.
    pub fn roll(&mut self, now_ms: u64, window_ms: u64, alpha: f64) {
        let window_ms = window_ms.max(1);
        let target = bucket_of(now_ms, window_ms);
        if self.detailed && self.baseline.len() != HOURS_OF_WEEK {
            self.baseline = vec![-1.0; HOURS_OF_WEEK];
        }
        // A week of empty windows teaches all there is to learn from silence.
        let mut steps = 0;
        while self.bucket_start_ms < target && steps <= HOURS_OF_WEEK {
            let done = self.cur;
            self.learn(self.bucket_start_ms, done.recipients as f64, alpha);
            self.prev = done;
            self.cur = Counts::default();
            self.bucket_start_ms += window_ms;
            steps += 1;
        }
        if self.bucket_start_ms < target {
            self.prev = Counts::default();
            self.bucket_start_ms = target;
        }
    }

    fn learn(&mut self, start_ms: u64, recipients: f64, alpha: f64) {
        if let Some(b) = self.baseline.get_mut(hour_of_week(start_ms)) {
            *b = if *b < 0.0 {
                recipients
            } else {
                alpha * recipients + (1.0 - alpha) * *b
            };
        }
        // Quiet windows say nothing about the size of an active hour.
        if recipients > 0.0 {
            self.typical = if self.typical < 0.0 {
                recipients
            } else {
                alpha * recipients + (1.0 - alpha) * self.typical
            };
            self.learned += 1;
        }
    }

    /// The sliding-window estimate of every counter.
    pub fn estimate(&self, now_ms: u64, window_ms: u64) -> Counts {
        let window_ms = window_ms.max(1);
        let elapsed = now_ms.saturating_sub(self.bucket_start_ms).min(window_ms);
        let w = 1.0 - elapsed as f64 / window_ms as f64;
        let p = self.prev.weighted(w);
        let c = self.cur.weighted(1.0);
        let f = |i: usize| (c[i] + p[i]).round() as u64;
        Counts {
            recipients: f(0),
            new_recipients: f(1),
            outcomes: f(2),
            rejected: f(3),
            spam: f(4),
            unknown: f(5),
        }
    }

    /// The usual recipients per window at this time of the week, if learned.
    pub fn baseline_at(&self, now_ms: u64) -> Option<f64> {
        if self.learned == 0 {
            return None;
        }
        let how = self
            .baseline
            .get(hour_of_week(now_ms))
            .copied()
            .unwrap_or(-1.0);
        Some(how.max(self.typical).max(0.0))
    }

    /// Counts one accepted recipient; true if the address is new to the scope.
    pub fn note_recipient(&mut self, address: &str, now_ms: u64) -> bool {
        self.note_recipient_hash(address_hash(address), now_ms)
    }

    /// [`ScopeStats::note_recipient`] with the address already hashed
    /// ([`address_hash`]), so one RCPT hashes once for both its scopes.
    pub fn note_recipient_hash(&mut self, h: u64, now_ms: u64) -> bool {
        self.last_seen_ms = now_ms;
        self.cur.recipients += 1;
        if !self.detailed {
            return false;
        }
        if self.seen.len() >= SEEN_CAP {
            // Forget and warm up again rather than grow without bound.
            self.seen.clear();
            self.seen_since_ms = now_ms;
        }
        let new = self.seen.insert(h);
        if new {
            self.cur.new_recipients += 1;
        }
        new
    }

    /// Counts one recipient's first delivery result.
    pub fn note_outcome(&mut self, kind: OutcomeKind, now_ms: u64) {
        self.cur.outcomes += 1;
        self.note_refusal(kind, now_ms);
    }

    /// Counts the refusal in a retried recipient's later result: its
    /// outcome was counted at the first attempt and must not count twice.
    pub fn note_refusal(&mut self, kind: OutcomeKind, now_ms: u64) {
        self.last_seen_ms = now_ms;
        match kind {
            OutcomeKind::Delivered | OutcomeKind::Deferred | OutcomeKind::GatewayListed => {}
            OutcomeKind::Rejected => self.cur.rejected += 1,
            OutcomeKind::Spam => {
                self.cur.rejected += 1;
                self.cur.spam += 1;
            }
            OutcomeKind::Unknown => {
                self.cur.rejected += 1;
                self.cur.unknown += 1;
            }
        }
    }

    /// Counts one governor refusal.
    pub fn note_throttled(&mut self, now_ms: u64) {
        self.last_seen_ms = now_ms;
        self.throttles.push_back(now_ms);
        while self.throttles.len() > THROTTLES_CAP {
            self.throttles.pop_front();
        }
    }

    /// Forgets recent activity (after a restore) but keeps the baseline.
    pub fn reset_recent(&mut self) {
        self.cur = Counts::default();
        self.prev = Counts::default();
        self.throttles.clear();
    }
}

/// How a delivery result counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// 2xx.
    Delivered,
    /// 4xx without a spam pattern.
    Deferred,
    /// 5xx.
    Rejected,
    /// 4xx or 5xx naming a blocklist or spam.
    Spam,
    /// 5.1.1 user unknown.
    Unknown,
    /// A blocklist refusal naming the gateway's own address: about the
    /// gateway, not this sender; it raises a gateway alarm instead.
    GatewayListed,
}

/// Which reply texts mean what; from `[governor]`.
#[derive(Debug, Clone, Copy)]
pub struct Patterns<'a> {
    /// A blocklist or spam refusal.
    pub spam: &'a [String],
    /// A blocklist listing (with a gateway address: the gateway is listed).
    pub listing: &'a [String],
    /// The gateway's addresses (configured, and seen as the source of
    /// outbound connections).
    pub own: &'a [IpAddr],
}

fn mentions(lower: &str, patterns: &[String]) -> bool {
    patterns
        .iter()
        .any(|p| !p.is_empty() && lower.contains(&p.to_ascii_lowercase()))
}

/// Classifies a remote reply for the detector.
pub fn classify(delivered: bool, permanent: bool, text: &str, p: Patterns<'_>) -> OutcomeKind {
    if delivered {
        return OutcomeKind::Delivered;
    }
    let lower = text.to_ascii_lowercase();
    // "Client host [our address] blocked using zen.spamhaus.org" is about
    // the gateway; "[our address] this message is likely unsolicited" (no
    // listing) is about the message, and stays the sender's.
    if mentions(&lower, p.listing) && names_address(text, p.own).is_some() {
        return OutcomeKind::GatewayListed;
    }
    if permanent
        && (lower.contains("5.1.1")
            || lower.contains("user unknown")
            || lower.contains("no such user")
            || lower.contains("mailbox unavailable")
            || lower.contains("does not exist"))
    {
        return OutcomeKind::Unknown;
    }
    if mentions(&lower, p.spam) {
        return OutcomeKind::Spam;
    }
    if permanent {
        OutcomeKind::Rejected
    } else {
        OutcomeKind::Deferred
    }
}

/// The first of `own` that `text` names as an address literal
/// ("Client host [203.0.113.5] blocked using zen.spamhaus.org").
pub fn names_address(text: &str, own: &[IpAddr]) -> Option<IpAddr> {
    if own.is_empty() {
        return None;
    }
    // "[IPv6:2001:db8::25]": the tag would glue "6:" to the address.
    let text = text.replace("IPv6:", " ").replace("ipv6:", " ");
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .map(|t| t.trim_matches(|c| c == '.' || c == ':'))
        .filter(|t| t.len() >= 2)
        .filter_map(|t| t.parse::<IpAddr>().ok())
        .map(crate::policy::canonical_ip)
        .find(|ip| own.contains(ip))
}

/// A rule that tripped, with what it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    /// Rule name: `volume`, `new_recipients`, `rejections`, `unknown_recipients`, `throttled`.
    pub rule: &'static str,
    /// One sentence for people.
    pub summary: String,
    /// The numbers, the thresholds and the window (stored as evidence).
    pub evidence: serde_json::Value,
}

/// Judges the RCPT-side rules (volume and new-recipient burst); `floor` is
/// the volume floor of this kind of scope (a domain sends for all its senders).
pub fn judge_traffic(
    s: &ScopeStats,
    scope: &dyn std::fmt::Display,
    now_ms: u64,
    g: &GovernorSection,
    floor: u64,
) -> Option<Trip> {
    // The estimate never exceeds the two buckets' sum: most RCPTs stop here,
    // before any floating point.
    let (recent, recent_new) = (
        s.cur.recipients + s.prev.recipients,
        s.cur.new_recipients + s.prev.new_recipients,
    );
    if recent <= floor && (!s.detailed || recent_new < g.new_recipients_burst) {
        return None;
    }
    let window_ms = g.window.0.as_millis() as u64;
    let est = s.estimate(now_ms, window_ms);
    let win = g.window.0.as_secs();
    let baseline = s.baseline_at(now_ms);
    let base_eff = baseline.unwrap_or(floor as f64);
    let threshold = (floor as f64).max(g.volume_factor * base_eff);
    if est.recipients as f64 > threshold && est.recipients > floor {
        return Some(Trip {
            rule: "volume",
            summary: format!(
                "{scope} sent to {} recipients in the last {}, above the threshold of {:.0} \
                 ({}x the usual {:.0}, floor {})",
                est.recipients,
                humantime::format_duration(g.window.0),
                threshold,
                g.volume_factor,
                base_eff,
                floor
            ),
            evidence: json!({
                "rule": "volume",
                "scope": scope.to_string(),
                "window_seconds": win,
                "recipients": est.recipients,
                "baseline": baseline,
                "baseline_learned_windows": s.learned,
                "volume_factor": g.volume_factor,
                "volume_floor": floor,
                "threshold": threshold,
            }),
        });
    }
    let warm = now_ms.saturating_sub(s.seen_since_ms) >= window_ms;
    if s.detailed && warm && est.new_recipients >= g.new_recipients_burst {
        return Some(Trip {
            rule: "new_recipients",
            summary: format!(
                "{scope} wrote to {} addresses never seen before in the last {} (limit {})",
                est.new_recipients,
                humantime::format_duration(g.window.0),
                g.new_recipients_burst
            ),
            evidence: json!({
                "rule": "new_recipients",
                "scope": scope.to_string(),
                "window_seconds": win,
                "new_recipients": est.new_recipients,
                "recipients": est.recipients,
                "limit": g.new_recipients_burst,
            }),
        });
    }
    None
}

/// Judges the delivery-side rules (remote rejections, unknown recipients).
pub fn judge_outcomes(
    s: &ScopeStats,
    scope: &dyn std::fmt::Display,
    now_ms: u64,
    g: &GovernorSection,
) -> Option<Trip> {
    let window_ms = g.window.0.as_millis() as u64;
    let est = s.estimate(now_ms, window_ms);
    let win = g.window.0.as_secs();
    if est.outcomes == 0 {
        return None;
    }
    // A later refusal of a recipient counted at an earlier window can put
    // more refusals than outcomes in this one: a share is at most 1.
    let share = |n: u64| (n as f64 / est.outcomes as f64).min(1.0);
    if est.unknown >= g.unknown_min && share(est.unknown) >= g.unknown_share {
        return Some(Trip {
            rule: "unknown_recipients",
            summary: format!(
                "{:.0}% of {scope}'s recipients were unknown to the remote servers \
                 ({} of {} in the last {}; limits {:.0}% and {})",
                share(est.unknown) * 100.0,
                est.unknown,
                est.outcomes,
                humantime::format_duration(g.window.0),
                g.unknown_share * 100.0,
                g.unknown_min
            ),
            evidence: json!({
                "rule": "unknown_recipients",
                "scope": scope.to_string(),
                "window_seconds": win,
                "unknown": est.unknown,
                "outcomes": est.outcomes,
                "share": share(est.unknown),
                "unknown_share": g.unknown_share,
                "unknown_min": g.unknown_min,
            }),
        });
    }
    if est.rejected >= g.rejection_min && share(est.rejected) >= g.rejection_share {
        return Some(Trip {
            rule: "rejections",
            summary: format!(
                "remote servers refused {:.0}% of {scope}'s recipients ({} of {}, {} naming a \
                 blocklist or spam, in the last {}; limits {:.0}% and {})",
                share(est.rejected) * 100.0,
                est.rejected,
                est.outcomes,
                est.spam,
                humantime::format_duration(g.window.0),
                g.rejection_share * 100.0,
                g.rejection_min
            ),
            evidence: json!({
                "rule": "rejections",
                "scope": scope.to_string(),
                "window_seconds": win,
                "rejected": est.rejected,
                "spam_or_blocklist": est.spam,
                "outcomes": est.outcomes,
                "share": share(est.rejected),
                "rejection_share": g.rejection_share,
                "rejection_min": g.rejection_min,
            }),
        });
    }
    None
}

/// Judges sustained throttling: `throttled_count` refusals within `throttled_window`.
pub fn judge_throttling(
    s: &ScopeStats,
    scope: &dyn std::fmt::Display,
    now_ms: u64,
    g: &GovernorSection,
) -> Option<Trip> {
    let span_ms = g.throttled_window.0.as_millis() as u64;
    let since = now_ms.saturating_sub(span_ms);
    let n = s.throttles.iter().filter(|&&t| t >= since).count() as u64;
    (n >= g.throttled_count.max(1)).then(|| Trip {
        rule: "throttled",
        summary: format!(
            "{scope} hit its rate limits {n} times in the last {} (limit {})",
            humantime::format_duration(g.throttled_window.0),
            g.throttled_count
        ),
        evidence: json!({
            "rule": "throttled",
            "scope": scope.to_string(),
            "window_seconds": g.throttled_window.0.as_secs(),
            "refusals": n,
            "limit": g.throttled_count,
        }),
    })
}

fn bucket_of(now_ms: u64, window_ms: u64) -> u64 {
    now_ms - now_ms % window_ms.max(1)
}

/// 0 = Monday 00:00 UTC.
fn hour_of_week(ms: u64) -> usize {
    // 1970-01-01 was a Thursday: shift by three days to start on Monday.
    let hours = ms / 3_600_000 + 72;
    (hours % HOURS_OF_WEEK as u64) as usize
}

/// A hasher for keys that are hashes already ([`address_hash`]): the set of
/// seen recipients need not hash them a second time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; fold anything else in rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u128(&mut self, n: u128) {
        // Scope keys: the low half is one of its two random hashes.
        self.0 = n as u64;
    }
}

/// The hash a recipient address is remembered by (case-insensitive), seeded
/// per process: the set is not persisted, and senders cannot aim collisions.
pub fn address_hash(a: &str) -> u64 {
    static SEED: std::sync::LazyLock<foldhash::fast::RandomState> =
        std::sync::LazyLock::new(Default::default);
    let mut h = std::hash::BuildHasher::build_hasher(&*SEED);
    // Lowercased a chunk at a time on the stack: no allocation per RCPT.
    let mut buf = [0u8; 64];
    for chunk in a.as_bytes().chunks(buf.len()) {
        let b = &mut buf[..chunk.len()];
        b.copy_from_slice(chunk);
        b.make_ascii_lowercase();
        h.write(b);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HOUR: u64 = 3_600_000;
    /// Monday 2026-03-02 00:00 UTC.
    const MONDAY: u64 = 1_772_409_600_000;

    fn cfg() -> GovernorSection {
        GovernorSection {
            volume_floor: 100,
            volume_factor: 5.0,
            new_recipients_burst: 500,
            ..Default::default()
        }
    }

    fn send(s: &mut ScopeStats, n: u64, start: u64, span: u64, g: &GovernorSection) -> Vec<Trip> {
        let mut trips = Vec::new();
        for i in 0..n {
            let t = start + span * i / n.max(1);
            s.roll(t, HOUR, g.baseline_alpha);
            s.note_recipient(&format!("r{}@list.example", i % 50), t);
            if let Some(trip) = judge_traffic(s, &"sender a@x", t, g, g.volume_floor) {
                trips.push(trip);
            }
        }
        trips
    }

    #[test]
    fn hour_of_week_starts_monday() {
        assert_eq!(hour_of_week(MONDAY), 0);
        assert_eq!(hour_of_week(MONDAY + 25 * HOUR), 25);
        assert_eq!(hour_of_week(MONDAY + 7 * 24 * HOUR), 0);
    }

    #[test]
    fn steady_heavy_sender_is_never_flagged() {
        let g = cfg();
        // 400 an hour, every hour for three weeks: four times the floor.
        let mut s = ScopeStats::new(MONDAY, HOUR);
        let mut trips = 0;
        for h in 0..(21 * 24) {
            trips += send(&mut s, 400, MONDAY + h * HOUR, HOUR, &g).len();
        }
        assert_eq!(trips, 0);
        assert!(s.baseline_at(MONDAY + 21 * 24 * HOUR).unwrap() > 350.0);
    }

    #[test]
    fn volume_floor_holds() {
        let g = cfg();
        let mut s = ScopeStats::new(MONDAY, HOUR);
        // A quiet sender (2/hour) sends 90 in one hour: many times its
        // baseline, but under the floor.
        for h in 0..48 {
            send(&mut s, 2, MONDAY + h * HOUR, HOUR, &g);
        }
        assert!(send(&mut s, 90, MONDAY + 48 * HOUR, HOUR / 2, &g).is_empty());
    }

    #[test]
    fn compromised_account_burst_is_caught_with_evidence() {
        let g = cfg();
        let mut s = ScopeStats::new(MONDAY, HOUR);
        for h in 0..48 {
            send(&mut s, 20, MONDAY + h * HOUR, HOUR, &g);
        }
        // 600 in ten minutes.
        let trips = send(&mut s, 600, MONDAY + 48 * HOUR, HOUR / 6, &g);
        let first = trips.first().expect("caught");
        assert_eq!(first.rule, "volume");
        assert_eq!(first.evidence["window_seconds"], 3600);
        let n = first.evidence["recipients"].as_u64().unwrap();
        assert_eq!(n, 101, "trips at the floor, not later");
        assert!(first.summary.contains("above the threshold"));
    }

    #[test]
    fn new_scope_trips_at_factor_times_floor() {
        let g = cfg();
        let mut s = ScopeStats::new(MONDAY, HOUR);
        let trips = send(&mut s, 600, MONDAY, HOUR / 6, &g);
        assert_eq!(trips[0].evidence["recipients"], 501);
    }

    #[test]
    fn sliding_window_weights_previous_bucket() {
        let mut s = ScopeStats::new(MONDAY, HOUR);
        s.cur.recipients = 100;
        s.roll(MONDAY + HOUR + HOUR / 4, HOUR, 0.3);
        assert_eq!(s.estimate(MONDAY + HOUR + HOUR / 4, HOUR).recipients, 75);
        // Long silence: everything forgotten, baseline learnt from silence.
        s.roll(MONDAY + 30 * 24 * HOUR, HOUR, 0.3);
        assert_eq!(s.estimate(MONDAY + 30 * 24 * HOUR, HOUR).recipients, 0);
    }

    #[test]
    fn rejection_rule_needs_share_and_count() {
        let g = GovernorSection {
            rejection_min: 10,
            rejection_share: 0.3,
            ..Default::default()
        };
        let mut s = ScopeStats::new(MONDAY, HOUR);
        for _ in 0..9 {
            s.note_outcome(OutcomeKind::Rejected, MONDAY);
        }
        assert!(
            judge_outcomes(&s, &"x", MONDAY, &g).is_none(),
            "below min count"
        );
        s.note_outcome(OutcomeKind::Spam, MONDAY);
        let t = judge_outcomes(&s, &"x", MONDAY, &g).unwrap();
        assert_eq!(t.rule, "rejections");
        assert_eq!(t.evidence["spam_or_blocklist"], 1);
        for _ in 0..100 {
            s.note_outcome(OutcomeKind::Delivered, MONDAY);
        }
        assert!(
            judge_outcomes(&s, &"x", MONDAY, &g).is_none(),
            "below share"
        );
    }

    #[test]
    fn unknown_recipients_rule() {
        let g = GovernorSection {
            unknown_min: 5,
            unknown_share: 0.5,
            ..Default::default()
        };
        let mut s = ScopeStats::new(MONDAY, HOUR);
        for _ in 0..5 {
            s.note_outcome(OutcomeKind::Unknown, MONDAY);
            s.note_outcome(OutcomeKind::Delivered, MONDAY);
        }
        assert_eq!(
            judge_outcomes(&s, &"x", MONDAY, &g).unwrap().rule,
            "unknown_recipients"
        );
    }

    #[test]
    fn classify_replies() {
        let g = GovernorSection::default();
        let p = Patterns {
            spam: &g.spam_patterns,
            listing: &g.listing_patterns,
            own: &[],
        };
        let c = |delivered, permanent, text| classify(delivered, permanent, text, p);
        assert_eq!(
            c(false, true, "550 5.1.1 user unknown"),
            OutcomeKind::Unknown
        );
        assert_eq!(
            c(false, false, "451 4.7.1 listed at zen.spamhaus.org"),
            OutcomeKind::Spam
        );
        assert_eq!(
            c(false, true, "554 5.7.1 message rejected"),
            OutcomeKind::Spam
        );
        assert_eq!(
            c(false, true, "552 5.2.2 mailbox full"),
            OutcomeKind::Rejected
        );
        assert_eq!(c(false, false, "421 4.4.2 timeout"), OutcomeKind::Deferred);
        assert_eq!(c(true, false, "250 ok"), OutcomeKind::Delivered);
    }

    #[test]
    fn a_listing_of_the_gateway_is_not_the_senders_fault() {
        let g = GovernorSection::default();
        let own: Vec<IpAddr> = vec![
            "203.0.113.5".parse().unwrap(),
            "2001:db8::25".parse().unwrap(),
        ];
        let p = Patterns {
            spam: &g.spam_patterns,
            listing: &g.listing_patterns,
            own: &own,
        };
        let listed = "554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org";
        assert_eq!(classify(false, true, listed, p), OutcomeKind::GatewayListed);
        assert_eq!(names_address(listed, &own), Some(own[0]));
        let v6 = "550 5.7.1 IP 2001:db8::25 is listed on a blocklist.";
        assert_eq!(names_address(v6, &own), Some(own[1]));
        assert_eq!(classify(false, false, v6, p), OutcomeKind::GatewayListed);
        // Another address in the text (a relay the message passed) is the message's problem.
        let other = "554 5.7.1 blocked: 198.51.100.7 listed at bl.example";
        assert_eq!(classify(false, true, other, p), OutcomeKind::Spam);
        // A content verdict that quotes our address (as large providers do) stays the sender's.
        let content = "550-5.7.1 [203.0.113.5] This message is likely unsolicited mail (spam)";
        assert_eq!(classify(false, true, content, p), OutcomeKind::Spam);
        // Our address without any blocklist word is an ordinary refusal.
        assert_eq!(
            classify(false, true, "550 5.1.1 user unknown (from 203.0.113.5)", p),
            OutcomeKind::Unknown
        );
        // The SMTP address-literal form of IPv6.
        assert_eq!(
            names_address("554 5.7.1 [IPv6:2001:db8::25] listed at bl.example", &own),
            Some(own[1])
        );
        // Numbers that are not addresses do not match.
        assert_eq!(names_address("550 5.7.1 listed 203.0.113", &own), None);
    }

    #[test]
    fn a_retried_refusal_counts_once() {
        let mut s = ScopeStats::new(MONDAY, HOUR);
        s.note_outcome(OutcomeKind::Deferred, MONDAY);
        s.note_refusal(OutcomeKind::Deferred, MONDAY);
        s.note_refusal(OutcomeKind::Rejected, MONDAY);
        assert_eq!((s.cur.outcomes, s.cur.rejected), (1, 1));
        s.note_refusal(OutcomeKind::GatewayListed, MONDAY);
        s.note_outcome(OutcomeKind::GatewayListed, MONDAY);
        assert_eq!((s.cur.outcomes, s.cur.rejected, s.cur.spam), (2, 1, 0));
    }

    #[test]
    fn new_recipient_burst_waits_for_warm_up() {
        let g = GovernorSection {
            new_recipients_burst: 10,
            volume_floor: 10_000,
            ..Default::default()
        };
        let mut s = ScopeStats::new(MONDAY, HOUR);
        for i in 0..20 {
            s.note_recipient(&format!("n{i}@x"), MONDAY + 1);
        }
        assert!(
            judge_traffic(&s, &"x", MONDAY + 1, &g, g.volume_floor).is_none(),
            "warming up"
        );
        let later = MONDAY + HOUR + 10;
        s.roll(later, HOUR, 0.3);
        for i in 0..20 {
            s.note_recipient(&format!("m{i}@x"), later);
        }
        assert_eq!(
            judge_traffic(&s, &"x", later, &g, g.volume_floor)
                .unwrap()
                .rule,
            "new_recipients"
        );
    }

    #[test]
    fn sustained_throttling() {
        let g = GovernorSection {
            throttled_count: 3,
            throttled_window: crate::config::Span(Duration::from_secs(60)),
            ..Default::default()
        };
        let mut s = ScopeStats::new(MONDAY, HOUR);
        s.note_throttled(MONDAY);
        s.note_throttled(MONDAY + 1000);
        assert!(judge_throttling(&s, &"x", MONDAY + 1000, &g).is_none());
        s.note_throttled(MONDAY + 2000);
        assert!(judge_throttling(&s, &"x", MONDAY + 2000, &g).is_some());
        assert!(judge_throttling(&s, &"x", MONDAY + 120_000, &g).is_none());
    }

    #[test]
    fn light_scopes_learn_a_typical_window_and_remember_no_recipients() {
        let g = cfg();
        let mut s = ScopeStats::light(MONDAY, HOUR);
        assert!(s.baseline.is_empty());
        for h in 0..24 {
            assert!(send(&mut s, 400, MONDAY + h * HOUR, HOUR, &g).is_empty());
        }
        assert!(s.baseline.is_empty() && s.seen.is_empty());
        assert!(s.baseline_at(MONDAY + 24 * HOUR).unwrap() > 350.0);
        // Ten times the usual in a few minutes is still caught.
        let trips = send(&mut s, 3000, MONDAY + 24 * HOUR, HOUR / 12, &g);
        assert_eq!(trips[0].rule, "volume");
    }

    #[test]
    fn stats_round_trip_through_json() {
        let mut s = ScopeStats::new(MONDAY, HOUR);
        s.note_recipient("a@b", MONDAY);
        s.roll(MONDAY + HOUR, HOUR, 0.3);
        let back: ScopeStats = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back.baseline, s.baseline);
        assert_eq!(back.prev, s.prev);
    }
}

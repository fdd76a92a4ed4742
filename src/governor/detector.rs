//! The anomaly detector's arithmetic: per-scope counters over sliding
//! windows, what a scope has shown it usually does (its peaks), and the rules
//! that judge them. Pure: time comes in as unix milliseconds, so a replay
//! runs weeks of traffic through it.
//!
//! A sliding window is estimated from two fixed buckets (the current one and
//! the previous one, weighted by how much of it still overlaps): constant
//! memory per scope, exact for steady traffic.
//!
//! What it judges is what a compromised mailbox does and an honest one does
//! not: writing to many addresses it never wrote to before, in minutes,
//! beyond anything it did in the past weeks (the *novelty* rule), and
//! drawing refusals from the receivers (the *delivery* rules). Volume alone
//! is the rate limits' business: a heavy sender is not suspect for it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::settings::GovernorSection;

/// Length of the short novelty window.
pub const SHORT_MS: u64 = 5 * 60 * 1000;
/// Length of the long novelty window (and of an "active hour").
pub const HOUR_MS: u64 = 3600 * 1000;
/// After a trip, a scope's buckets teach no peak for this long.
pub const QUARANTINE_MS: u64 = 24 * HOUR_MS;

/// The (5-minute, hour) buckets a roll confirmed: completed, then clean of
/// trips for one more bucket.
pub type Learned = (Option<Counts>, Option<Counts>);

/// A completed bucket waiting for the next one to pass before it teaches a
/// peak: a flood that begins just before a boundary trips in the bucket
/// after it, and its first part must not become the habit it is judged by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The bucket's start (unix ms).
    pub start_ms: u64,
    /// What it counted.
    pub counts: Counts,
}

/// Counters of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Outbound recipients accepted at RCPT.
    #[serde(default)]
    pub recipients: u32,
    /// Of those, addresses this scope never wrote to before.
    #[serde(default)]
    pub new: u32,
    /// Never-seen recipients tried and deferred (each address once).
    #[serde(default)]
    pub tried: u32,
    /// Delivery results observed (a recipient's first).
    #[serde(default)]
    pub outcomes: u32,
    /// Permanent remote refusals.
    #[serde(default)]
    pub rejected: u32,
    /// Of those, refusals of the message as spam.
    #[serde(default)]
    pub spam: u32,
    /// Of those, unknown recipients.
    #[serde(default)]
    pub unknown: u32,
}

impl Counts {
    fn fields(&mut self) -> [&mut u32; 7] {
        [
            &mut self.recipients,
            &mut self.new,
            &mut self.tried,
            &mut self.outcomes,
            &mut self.rejected,
            &mut self.spam,
            &mut self.unknown,
        ]
    }

    /// What one delivery result adds: an outcome if it is the recipient's
    /// first, and a refusal (of its kind) if it is one.
    pub fn of_result(kind: OutcomeKind, first: bool) -> Counts {
        let mut c = Counts {
            outcomes: u32::from(first),
            ..Counts::default()
        };
        match kind {
            OutcomeKind::Delivered | OutcomeKind::Deferred | OutcomeKind::GatewayListed => {}
            OutcomeKind::Rejected => c.rejected = 1,
            OutcomeKind::Spam => (c.rejected, c.spam) = (1, 1),
            OutcomeKind::Unknown => (c.rejected, c.unknown) = (1, 1),
        }
        c
    }

    /// Adds another bucket's counts.
    pub fn add(&mut self, o: &Counts) {
        let mut o = *o;
        for (a, b) in self.fields().into_iter().zip(o.fields()) {
            *a = a.saturating_add(*b);
        }
    }

    /// Takes another bucket's counts away (never below zero).
    pub fn sub(&mut self, o: &Counts) {
        let mut o = *o;
        for (a, b) in self.fields().into_iter().zip(o.fields()) {
            *a = a.saturating_sub(*b);
        }
    }
}

/// A sliding window of a fixed length, estimated from two buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Start of the current bucket (unix ms, a multiple of the length).
    pub start_ms: u64,
    /// The current bucket.
    pub cur: Counts,
    /// The previous bucket.
    pub prev: Counts,
    /// Destination domains of the current bucket's never-seen recipients,
    /// one bit per domain hash (a 64-bit linear-counting sketch).
    #[serde(default)]
    pub cur_dest: u64,
    /// The same for the previous bucket.
    #[serde(default)]
    pub prev_dest: u64,
}

impl Window {
    /// About how many distinct destination domains the window's never-seen
    /// recipients went to (linear counting over 64 bits; saturates near 250).
    pub fn destinations(&self) -> u32 {
        let bits = self.cur_dest | self.prev_dest;
        let zeros = bits.count_zeros();
        if zeros == 0 {
            return 250;
        }
        (-64.0 * (f64::from(zeros) / 64.0).ln()).round() as u32
    }

    /// Moves forward to `now_ms`; returns the buckets completed on the way
    /// (at most the last two matter: older ones are empty or forgotten).
    pub fn roll(&mut self, now_ms: u64, len: u64) -> Option<Counts> {
        let len = len.max(1);
        let target = now_ms - now_ms % len;
        if self.start_ms >= target {
            return None;
        }
        let done = self.cur;
        let adjacent = target - self.start_ms == len;
        self.prev = if adjacent { done } else { Counts::default() };
        self.prev_dest = if adjacent { self.cur_dest } else { 0 };
        self.cur_dest = 0;
        self.cur = Counts::default();
        self.start_ms = target;
        Some(done)
    }

    /// The sliding-window estimate at `now_ms`.
    pub fn estimate(&self, now_ms: u64, len: u64) -> Counts {
        let len = len.max(1);
        let elapsed = now_ms.saturating_sub(self.start_ms).min(len);
        let w = (len - elapsed) as f64 / len as f64;
        let mut out = self.cur;
        let mut p = self.prev;
        for (a, b) in out.fields().into_iter().zip(p.fields()) {
            *a = a.saturating_add((f64::from(*b) * w).round() as u32);
        }
        out
    }
}

/// What a scope did recently and has shown it usually does; persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopeStats {
    /// The 5-minute window.
    pub short: Window,
    /// The hour window (also counts active hours).
    pub hour: Window,
    /// The window of the delivery rules (`governor.window`).
    pub outcomes: Window,
    /// Most never-seen recipients in one 5-minute bucket, decaying.
    pub peak_new_5: f64,
    /// Most never-seen recipients in one hour bucket, decaying.
    pub peak_new_hour: f64,
    /// Domains: the most any one of its senders reached in 5 minutes.
    #[serde(default)]
    pub sender_peak_new_5: f64,
    /// Domains: the most any one of its senders reached in an hour.
    #[serde(default)]
    pub sender_peak_new_hour: f64,
    /// When the peaks were last decayed.
    pub peaks_ms: u64,
    /// Hours with mail, so far.
    pub active_hours: u32,
    /// First seen (unix ms).
    pub first_ms: u64,
    /// Last activity (unix ms), for eviction.
    pub last_seen_ms: u64,
    /// When a rule last tripped: buckets holding a trip teach no peak.
    #[serde(default)]
    pub last_trip_ms: u64,
    /// The last hour in 5-minute buckets, for the evidence of a trip.
    #[serde(default)]
    pub series: Series,
    /// The last completed 5-minute bucket, not learned from yet.
    #[serde(default)]
    pub held_5: Option<Held>,
    /// The last completed hour bucket, not learned from yet.
    #[serde(default)]
    pub held_hour: Option<Held>,
}

/// How many 5-minute buckets a [`Series`] keeps (an hour).
pub const SERIES_LEN: usize = 12;

/// A scope's traffic over the last hour in 5-minute buckets (the newest
/// last): recipients accepted, of those never written to before, and
/// permanent remote refusals. Fixed size (80 bytes, no allocation); it
/// goes into a trip's evidence as the chart of what tripped it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// Start of the newest bucket (unix ms, a multiple of 5 minutes).
    pub start_ms: u64,
    /// Per bucket: recipients, never-seen recipients, refusals.
    pub buckets: [[u16; 3]; SERIES_LEN],
}

impl Series {
    /// Moves forward to `now_ms`: buckets older than an hour drop out.
    fn roll(&mut self, now_ms: u64) {
        let target = now_ms - now_ms % SHORT_MS;
        if self.start_ms >= target {
            return;
        }
        let shift = ((target - self.start_ms) / SHORT_MS).min(SERIES_LEN as u64) as usize;
        self.buckets.rotate_left(shift);
        for b in &mut self.buckets[SERIES_LEN - shift..] {
            *b = [0; 3];
        }
        self.start_ms = target;
    }

    /// Adds to the bucket of `now_ms` (field 0 recipients, 1 new, 2 refused).
    fn add(&mut self, now_ms: u64, field: usize) {
        self.roll(now_ms);
        let b = &mut self.buckets[SERIES_LEN - 1][field];
        *b = b.saturating_add(1);
    }

    /// The series as evidence: the buckets up to `now_ms`, oldest first,
    /// each field a list.
    pub fn to_json(&self, now_ms: u64) -> serde_json::Value {
        let mut s = *self;
        s.roll(now_ms);
        let col = |i: usize| s.buckets.iter().map(|b| b[i]).collect::<Vec<_>>();
        let first = s
            .start_ms
            .saturating_sub((SERIES_LEN as u64 - 1) * SHORT_MS);
        json!({
            "bucket_seconds": SHORT_MS / 1000,
            "first_bucket": super::clock::utc(first),
            "recipients": col(0),
            "new_recipients": col(1),
            "rejected": col(2),
        })
    }
}

impl ScopeStats {
    /// A scope first seen at `now_ms`.
    pub fn new(now_ms: u64) -> ScopeStats {
        ScopeStats {
            short: Window::default(),
            hour: Window::default(),
            outcomes: Window::default(),
            peak_new_5: 0.0,
            peak_new_hour: 0.0,
            sender_peak_new_5: 0.0,
            sender_peak_new_hour: 0.0,
            peaks_ms: now_ms,
            active_hours: 0,
            first_ms: now_ms,
            last_seen_ms: now_ms,
            last_trip_ms: 0,
            series: Series::default(),
            held_5: None,
            held_hour: None,
        }
    }

    /// Moves every window to `now_ms` and learns from the buckets it
    /// confirms; returns those (5-minute, hour) buckets, which a domain
    /// learns its senders' peaks from.
    ///
    /// A completed bucket is held until the next one completes too, and
    /// teaches only if no rule tripped in it, in the one after it, or
    /// within a day before it. Without the wait, a flood that started a
    /// minute before a boundary would teach its first part as the scope's
    /// peak at the boundary (a proven sender's allowance is a multiple of
    /// it) before the rule trips in the next bucket.
    pub fn roll(&mut self, now_ms: u64, g: &GovernorSection) -> Learned {
        let short_start = self.short.start_ms;
        let hour_start = self.hour.start_ms;
        let done5 = self.short.roll(now_ms, SHORT_MS);
        let done60 = self.hour.roll(now_ms, HOUR_MS);
        self.outcomes.roll(now_ms, g.window.0.as_millis() as u64);
        if done5.is_none() && done60.is_none() {
            return (None, None);
        }
        self.decay(now_ms, g);
        if let Some(c) = done60
            && c.recipients > 0
        {
            self.active_hours = self.active_hours.saturating_add(1);
        }
        let last_trip = self.last_trip_ms;
        let quiet = |h: &Held| last_trip == 0 || last_trip + QUARANTINE_MS < h.start_ms;
        let confirm = |held: &mut Option<Held>, done: Option<Counts>, start: u64| {
            let c = done?;
            let prev = held.replace(Held {
                start_ms: start,
                counts: c,
            });
            prev.filter(quiet).map(|h| h.counts)
        };
        let clean5 = confirm(&mut self.held_5, done5, short_start);
        let clean60 = confirm(&mut self.held_hour, done60, hour_start);
        if let Some(c) = clean5 {
            self.peak_new_5 = self.peak_new_5.max(f64::from(c.new));
        }
        if let Some(c) = clean60 {
            self.peak_new_hour = self.peak_new_hour.max(f64::from(c.new));
        }
        (clean5, clean60)
    }

    fn decay(&mut self, now_ms: u64, g: &GovernorSection) {
        let dt = now_ms.saturating_sub(self.peaks_ms) as f64;
        let half = g.peak_half_life.0.as_millis().max(1) as f64;
        let k = 0.5f64.powf(dt / half);
        self.peak_new_5 *= k;
        self.peak_new_hour *= k;
        self.sender_peak_new_5 *= k;
        self.sender_peak_new_hour *= k;
        self.peaks_ms = now_ms;
    }

    /// A domain learns from one of its senders' completed buckets.
    pub fn learn_sender_peak(&mut self, five: Option<Counts>, hour: Option<Counts>) {
        if let Some(c) = five {
            self.sender_peak_new_5 = self.sender_peak_new_5.max(f64::from(c.new));
        }
        if let Some(c) = hour {
            self.sender_peak_new_hour = self.sender_peak_new_hour.max(f64::from(c.new));
        }
    }

    /// Counts one accepted recipient (`new`: never written to before).
    pub fn note_recipient(&mut self, new: bool, now_ms: u64) {
        self.last_seen_ms = now_ms;
        for w in [&mut self.short, &mut self.hour] {
            w.cur.recipients += 1;
            if new {
                w.cur.new += 1;
            }
        }
        self.series.add(now_ms, 0);
        if new {
            self.series.add(now_ms, 1);
        }
    }

    /// Notes the destination domain (`domain_hash`) of a never-seen recipient.
    pub fn note_destination(&mut self, domain_hash: u64) {
        let bit = 1u64 << (domain_hash >> 58);
        self.short.cur_dest |= bit;
        self.hour.cur_dest |= bit;
    }

    /// Counts one never-seen recipient tried and deferred.
    pub fn note_tried(&mut self, now_ms: u64) {
        self.last_seen_ms = now_ms;
        self.short.cur.tried += 1;
        self.hour.cur.tried += 1;
    }

    /// Counts one recipient's first delivery result.
    pub fn note_outcome(&mut self, kind: OutcomeKind, now_ms: u64) {
        self.last_seen_ms = now_ms;
        let c = Counts::of_result(kind, true);
        if c.rejected > 0 {
            self.series.add(now_ms, 2);
        }
        self.outcomes.cur.add(&c);
    }

    /// Counts the refusal in a retried recipient's later result (its
    /// outcome was counted at its first attempt).
    pub fn note_refusal(&mut self, kind: OutcomeKind, now_ms: u64) {
        self.last_seen_ms = now_ms;
        let c = Counts::of_result(kind, false);
        if c.rejected > 0 {
            self.series.add(now_ms, 2);
        }
        self.outcomes.cur.add(&c);
    }

    /// Forgets recent activity (after a restore) but keeps what was learned.
    pub fn reset_recent(&mut self) {
        self.short = Window::default();
        self.hour = Window::default();
        self.outcomes = Window::default();
        self.series = Series::default();
        self.held_5 = None;
        self.held_hour = None;
    }

    /// True once the scope has enough history for its own peaks to count.
    pub fn proven(&self, g: &GovernorSection) -> bool {
        self.active_hours >= g.history_hours
    }
}

pub use super::classify::OutcomeKind;

/// A rule that tripped, with what it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    /// Rule name: `novelty`, `domain_novelty`, `rejections`, `unknown_recipients`, `senders_suspended`.
    pub rule: &'static str,
    /// One sentence for people.
    pub summary: String,
    /// The numbers, the thresholds and the windows (stored as evidence).
    pub evidence: serde_json::Value,
}

/// How many never-seen recipients a scope may write to, and why that many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    /// Per 5 minutes.
    pub five: f64,
    /// Per hour.
    pub hour: f64,
    /// What the figures come from.
    pub basis: Basis,
}

/// Where an allowance comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The scope's own peaks (or the floor above them).
    OwnHistory,
    /// A sender without history, judged by its domain's senders.
    DomainSenders,
    /// Neither the sender nor its domain has history: the allowance is a
    /// limit (451), never a reason to suspend.
    Unproven,
    /// Declared by staff (sender limits): the declared rates.
    Declared,
}

impl Basis {
    /// The words evidence uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::OwnHistory => "its own history",
            Basis::DomainSenders => "its domain's senders",
            Basis::Unproven => "no history yet",
            Basis::Declared => "a staff declaration",
        }
    }
}

/// The novelty allowance of a sender: `own` its state, `dom` its domain's
/// (proven, sender peaks), `floors` the (5-minute, hour) floors in force,
/// `declared` the hourly recipient rate of a declared bulk sender.
pub fn sender_allowance(
    own: &ScopeStats,
    dom: Option<(bool, f64, f64)>,
    floors: (u32, u32),
    declared: Option<u32>,
    g: &GovernorSection,
) -> Allowance {
    if let Some(per_hour) = declared {
        // Above what its limits let through at all: a declared sender is
        // bounded by its declared rates, not judged on novelty.
        let h = f64::from(per_hour);
        return Allowance {
            five: (h * 0.3).max(f64::from(floors.0)),
            hour: (h * 1.3).max(f64::from(floors.1)),
            basis: Basis::Declared,
        };
    }
    let f = g.novelty_factor;
    let (p5, p60, basis) = if own.proven(g) {
        (own.peak_new_5, own.peak_new_hour, Basis::OwnHistory)
    } else {
        match dom {
            Some((true, s5, s60)) => (s5, s60, Basis::DomainSenders),
            _ => {
                return Allowance {
                    five: f64::from(g.unproven_recipients_5min),
                    hour: f64::from(g.unproven_recipients_hour),
                    basis: Basis::Unproven,
                };
            }
        }
    };
    Allowance {
        five: (f * p5).max(f64::from(floors.0)),
        hour: (f * p60).max(f64::from(floors.1)),
        basis,
    }
}

/// The novelty allowance of a domain (its traffic that its accountable
/// senders do not explain).
pub fn domain_allowance(own: &ScopeStats, floors: (u32, u32), g: &GovernorSection) -> Allowance {
    let f = g.novelty_factor;
    Allowance {
        five: (f * own.peak_new_5).max(f64::from(floors.0)),
        hour: (f * own.peak_new_hour).max(f64::from(floors.1)),
        basis: Basis::OwnHistory,
    }
}

/// What novelty shows: recent never-seen recipients (accepted, and tried
/// and deferred) against the allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Novelty {
    /// Never-seen recipients accepted, last 5 minutes.
    pub new_5: u32,
    /// ... last hour.
    pub new_hour: u32,
    /// Never-seen recipients tried and deferred, last 5 minutes.
    pub tried_5: u32,
    /// ... last hour.
    pub tried_hour: u32,
    /// All recipients accepted, last hour.
    pub recipients_hour: u32,
    /// Distinct destination domains of the never-seen ones, last hour (about).
    pub destinations_hour: u32,
}

impl Novelty {
    /// Reads it off a scope's windows (`minus`: counts to leave out).
    pub fn of(s: &ScopeStats, minus: Option<(&Window, &Window)>, now_ms: u64) -> Novelty {
        let mut five = s.short.estimate(now_ms, SHORT_MS);
        let mut hour = s.hour.estimate(now_ms, HOUR_MS);
        if let Some((m5, m60)) = minus {
            five.sub(&m5.estimate(now_ms, SHORT_MS));
            hour.sub(&m60.estimate(now_ms, HOUR_MS));
        }
        Novelty {
            new_5: five.new,
            new_hour: hour.new,
            tried_5: five.tried,
            tried_hour: hour.tried,
            recipients_hour: hour.recipients,
            destinations_hour: s.hour.destinations(),
        }
    }

    /// True when one more never-seen recipient would pass the allowance.
    pub fn at_allowance(&self, a: &Allowance) -> bool {
        f64::from(self.new_5 + 1) > a.five || f64::from(self.new_hour + 1) > a.hour
    }

    /// True when the never-seen recipients tried (accepted or deferred)
    /// pass `escalate_factor` times the allowance.
    pub fn escalates(&self, a: &Allowance, g: &GovernorSection) -> bool {
        let e = g.escalate_factor;
        f64::from(self.new_5 + self.tried_5) > e * a.five
            || f64::from(self.new_hour + self.tried_hour) > e * a.hour
    }
}

/// The novelty trip of a scope, with its evidence in numbers.
pub fn novelty_trip(
    rule: &'static str,
    scope: &dyn std::fmt::Display,
    n: &Novelty,
    a: &Allowance,
    s: &ScopeStats,
    escalated: bool,
    g: &GovernorSection,
) -> Trip {
    let what = if escalated {
        format!(
            "and kept trying: {} more never-seen addresses were deferred",
            n.tried_5.max(n.tried_hour)
        )
    } else {
        "so mail to addresses it never wrote to is deferred for now".to_string()
    };
    Trip {
        rule,
        summary: format!(
            "{scope} wrote to {} addresses it never wrote to before in 5 minutes ({} in the last \
             hour, at about {} domains, of {} recipients); it is allowed {:.0} and {:.0} from {} \
             (its usual peak: {:.0} in 5 minutes, {:.0} in an hour), {what}",
            n.new_5,
            n.new_hour,
            n.destinations_hour,
            n.recipients_hour,
            a.five,
            a.hour,
            a.basis.as_str(),
            s.peak_new_5,
            s.peak_new_hour,
        ),
        evidence: json!({
            "rule": rule,
            "scope": scope.to_string(),
            "new_recipients_5min": n.new_5,
            "new_recipients_hour": n.new_hour,
            "deferred_new_recipients_5min": n.tried_5,
            "deferred_new_recipients_hour": n.tried_hour,
            "recipients_hour": n.recipients_hour,
            "destination_domains_hour": n.destinations_hour,
            "allowance_5min": a.five.round() as u64,
            "allowance_hour": a.hour.round() as u64,
            "allowance_basis": a.basis.as_str(),
            "peak_new_recipients_5min": (s.peak_new_5 * 10.0).round() / 10.0,
            "peak_new_recipients_hour": (s.peak_new_hour * 10.0).round() / 10.0,
            "active_hours": s.active_hours,
            "novelty_factor": g.novelty_factor,
            "escalate_factor": g.escalate_factor,
            "escalated": escalated,
        }),
    }
}

/// Judges the delivery rules (unknown recipients, remote rejections) on a
/// scope's outcome window less `minus` (for a domain: its accountable
/// senders' counts).
pub fn judge_outcomes(
    s: &ScopeStats,
    minus: Option<&Window>,
    scope: &dyn std::fmt::Display,
    now_ms: u64,
    g: &GovernorSection,
) -> Option<Trip> {
    let len = g.window.0.as_millis() as u64;
    let mut est = s.outcomes.estimate(now_ms, len);
    if let Some(m) = minus {
        est.sub(&m.estimate(now_ms, len));
    }
    if est.outcomes == 0 {
        return None;
    }
    let win = g.window.0.as_secs();
    let span = humantime::format_duration(g.window.0);
    // A later refusal of a recipient counted in an earlier window can put
    // more refusals than outcomes in this one: a share is at most 1.
    let share = |n: u32| (f64::from(n) / f64::from(est.outcomes)).min(1.0);
    if u64::from(est.unknown) >= g.unknown_min && share(est.unknown) >= g.unknown_share {
        return Some(Trip {
            rule: "unknown_recipients",
            summary: format!(
                "{:.0}% of {scope}'s recipients do not exist: the receiving servers answered \
                 'unknown user' for {} of {} in the last {span} (limits {:.0}% and {}); \
                 addresses bought or guessed are the usual cause",
                share(est.unknown) * 100.0,
                est.unknown,
                est.outcomes,
                g.unknown_share * 100.0,
                g.unknown_min
            ),
            evidence: json!({
                "rule": "unknown_recipients",
                "scope": scope.to_string(),
                "window_seconds": win,
                "unknown": est.unknown,
                "outcomes": est.outcomes,
                "rejected": est.rejected,
                "share": share(est.unknown),
                "unknown_share": g.unknown_share,
                "unknown_min": g.unknown_min,
            }),
        });
    }
    if u64::from(est.rejected) >= g.rejection_min && share(est.rejected) >= g.rejection_share {
        return Some(Trip {
            rule: "rejections",
            summary: format!(
                "receiving servers refused {:.0}% of {scope}'s recipients for good ({} of {} in \
                 the last {span}, {} of them as spam; limits {:.0}% and {})",
                share(est.rejected) * 100.0,
                est.rejected,
                est.outcomes,
                est.spam,
                g.rejection_share * 100.0,
                g.rejection_min
            ),
            evidence: json!({
                "rule": "rejections",
                "scope": scope.to_string(),
                "window_seconds": win,
                "rejected": est.rejected,
                "spam": est.spam,
                "unknown": est.unknown,
                "outcomes": est.outcomes,
                "share": share(est.rejected),
                "rejection_share": g.rejection_share,
                "rejection_min": g.rejection_min,
            }),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    /// Monday 2026-03-02 00:00 UTC.
    const MONDAY: u64 = 1_772_409_600_000;

    fn g() -> GovernorSection {
        GovernorSection::default()
    }

    #[test]
    fn window_slides_over_two_buckets() {
        let mut w = Window::default();
        w.roll(MONDAY, HOUR_MS);
        w.cur.recipients = 100;
        assert_eq!(
            w.roll(MONDAY + HOUR_MS + HOUR_MS / 4, HOUR_MS)
                .unwrap()
                .recipients,
            100
        );
        assert_eq!(
            w.estimate(MONDAY + HOUR_MS + HOUR_MS / 4, HOUR_MS)
                .recipients,
            75
        );
        // A long silence forgets everything.
        w.roll(MONDAY + 30 * HOUR_MS, HOUR_MS);
        assert_eq!(w.estimate(MONDAY + 30 * HOUR_MS, HOUR_MS).recipients, 0);
    }

    #[test]
    fn peaks_are_learned_from_clean_buckets_and_decay() {
        let g = g();
        let mut s = ScopeStats::new(MONDAY);
        s.roll(MONDAY, &g);
        for _ in 0..7 {
            s.note_recipient(true, MONDAY + MIN);
        }
        // Completed, then held for one more bucket.
        s.roll(MONDAY + 6 * MIN, &g);
        assert_eq!(s.peak_new_5, 0.0);
        s.roll(MONDAY + 11 * MIN, &g);
        assert_eq!(s.peak_new_5, 7.0);
        // A bucket with a trip teaches nothing.
        for _ in 0..50 {
            s.note_recipient(true, MONDAY + 12 * MIN);
        }
        s.last_trip_ms = MONDAY + 12 * MIN;
        s.roll(MONDAY + 16 * MIN, &g);
        s.roll(MONDAY + 21 * MIN, &g);
        assert!((s.peak_new_5 - 7.0).abs() < 0.01, "{}", s.peak_new_5);
        // Nor does a busy bucket within a day after it.
        s.roll(MONDAY + 3 * HOUR_MS, &g);
        for _ in 0..40 {
            s.note_recipient(true, MONDAY + 3 * HOUR_MS);
        }
        s.roll(MONDAY + 3 * HOUR_MS + 6 * MIN, &g);
        s.roll(MONDAY + 3 * HOUR_MS + 11 * MIN, &g);
        assert!(s.peak_new_5 < 7.01, "{}", s.peak_new_5);
        // Two weeks later (one half-life) it has halved.
        s.roll(MONDAY + 14 * 24 * HOUR_MS + 11 * MIN, &g);
        assert!((s.peak_new_5 - 3.5).abs() < 0.01, "{}", s.peak_new_5);
        assert_eq!(s.active_hours, 2);
    }

    #[test]
    fn a_flood_across_a_boundary_does_not_teach_its_first_part() {
        let g = g();
        let mut s = ScopeStats::new(MONDAY);
        s.active_hours = 200;
        s.roll(MONDAY, &g);
        // 29 never-seen recipients in the last minute of a bucket: under
        // the floor of 30, nothing trips yet.
        for _ in 0..29 {
            s.note_recipient(true, MONDAY + 4 * MIN + 30_000);
        }
        let floors = (30, 120);
        let before = sender_allowance(&s, None, floors, None, &g);
        // The boundary: the bucket completes but does not teach yet, so the
        // allowance stays at the floor and the sliding estimate still holds
        // the 29.
        let at = MONDAY + SHORT_MS + 1_000;
        let (five, _) = s.roll(at, &g);
        assert_eq!(five.map_or(0, |c| c.new), 0);
        assert_eq!(s.peak_new_5, 0.0);
        let a = sender_allowance(&s, None, floors, None, &g);
        assert_eq!(a, before);
        assert_eq!(Novelty::of(&s, None, at).new_5, 29);
        s.note_recipient(true, at);
        assert!(Novelty::of(&s, None, at).at_allowance(&a));
        // The rule trips in the next bucket: the held one never teaches.
        s.last_trip_ms = at;
        s.roll(MONDAY + 2 * SHORT_MS + 1_000, &g);
        s.roll(MONDAY + 3 * SHORT_MS + 1_000, &g);
        assert_eq!(s.peak_new_5, 0.0);
        assert_eq!(sender_allowance(&s, None, floors, None, &g), before);
        // Without a trip it would have, one bucket later.
        let mut quiet = ScopeStats::new(MONDAY);
        quiet.roll(MONDAY, &g);
        for _ in 0..29 {
            quiet.note_recipient(true, MONDAY + 4 * MIN);
        }
        quiet.roll(MONDAY + SHORT_MS, &g);
        let (five, _) = quiet.roll(MONDAY + 2 * SHORT_MS, &g);
        assert_eq!(five.map(|c| c.new), Some(29));
        assert_eq!(quiet.peak_new_5, 29.0);
    }

    #[test]
    fn allowance_by_history() {
        let g = g();
        let mut s = ScopeStats::new(MONDAY);
        // Unproven sender, unproven domain: the unproven allowance.
        let a = sender_allowance(&s, Some((false, 0.0, 0.0)), (30, 120), None, &g);
        assert_eq!((a.five, a.hour, a.basis), (100.0, 300.0, Basis::Unproven));
        // Unproven sender in a proven domain: its senders' peaks.
        let a = sender_allowance(&s, Some((true, 50.0, 90.0)), (30, 120), None, &g);
        assert_eq!(
            (a.five, a.hour, a.basis),
            (200.0, 360.0, Basis::DomainSenders)
        );
        // Proven sender: its own peaks, never under the floors.
        s.active_hours = 100;
        s.peak_new_5 = 3.0;
        s.peak_new_hour = 60.0;
        let a = sender_allowance(&s, None, (30, 120), None, &g);
        assert_eq!((a.five, a.hour, a.basis), (30.0, 240.0, Basis::OwnHistory));
        // Declared: above its declared rate.
        let a = sender_allowance(&s, None, (30, 120), Some(40_000), &g);
        assert_eq!(a.basis, Basis::Declared);
        assert!(a.hour > 40_000.0 && a.five > 40_000.0 / 12.0);
    }

    #[test]
    fn novelty_escalates_only_on_distinct_tries() {
        let g = g();
        let mut s = ScopeStats::new(MONDAY);
        s.roll(MONDAY, &g);
        let a = Allowance {
            five: 30.0,
            hour: 120.0,
            basis: Basis::OwnHistory,
        };
        for _ in 0..29 {
            s.note_recipient(true, MONDAY);
        }
        let n = Novelty::of(&s, None, MONDAY);
        assert!(!n.at_allowance(&a));
        s.note_recipient(true, MONDAY);
        let n = Novelty::of(&s, None, MONDAY);
        assert!(n.at_allowance(&a) && !n.escalates(&a, &g));
        for _ in 0..30 {
            s.note_tried(MONDAY);
        }
        assert!(!Novelty::of(&s, None, MONDAY).escalates(&a, &g));
        s.note_tried(MONDAY);
        let n = Novelty::of(&s, None, MONDAY);
        assert!(n.escalates(&a, &g));
        let t = novelty_trip("novelty", &"sender a@x", &n, &a, &s, true, &g);
        assert_eq!(t.evidence["new_recipients_5min"], 30);
        assert_eq!(t.evidence["deferred_new_recipients_5min"], 31);
        assert!(t.summary.contains("never wrote to before"), "{}", t.summary);
    }

    #[test]
    fn outcome_rules_need_share_and_count_and_leave_out_the_accountable() {
        let g = GovernorSection {
            rejection_min: 10,
            rejection_share: 0.3,
            ..Default::default()
        };
        let mut s = ScopeStats::new(MONDAY);
        s.roll(MONDAY, &g);
        for _ in 0..9 {
            s.note_outcome(OutcomeKind::Rejected, MONDAY);
        }
        assert!(judge_outcomes(&s, None, &"x", MONDAY, &g).is_none());
        s.note_outcome(OutcomeKind::Spam, MONDAY);
        let t = judge_outcomes(&s, None, &"x", MONDAY, &g).unwrap();
        assert_eq!(
            (t.rule, t.evidence["spam"].as_u64()),
            ("rejections", Some(1))
        );
        // The same counts explained by an accountable sender: nothing left.
        let minus = s.outcomes;
        assert!(judge_outcomes(&s, Some(&minus), &"x", MONDAY, &g).is_none());
        for _ in 0..100 {
            s.note_outcome(OutcomeKind::Delivered, MONDAY);
        }
        assert!(judge_outcomes(&s, None, &"x", MONDAY, &g).is_none());
    }

    #[test]
    fn deferrals_and_gateway_listings_are_not_refusals() {
        let mut s = ScopeStats::new(MONDAY);
        s.note_outcome(OutcomeKind::Deferred, MONDAY);
        s.note_refusal(OutcomeKind::GatewayListed, MONDAY);
        s.note_refusal(OutcomeKind::Unknown, MONDAY);
        let c = s.outcomes.cur;
        assert_eq!((c.outcomes, c.rejected, c.unknown, c.spam), (1, 1, 1, 0));
    }

    #[test]
    fn destinations_are_counted_about_right() {
        let mut s = ScopeStats::new(MONDAY);
        s.roll(MONDAY, &g());
        assert_eq!(s.hour.destinations(), 0);
        for d in 0..20u64 {
            s.note_destination(d.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        let n = s.hour.destinations();
        assert!((14..=28).contains(&n), "{n}");
    }

    #[test]
    fn stats_round_trip_through_json() {
        let g = g();
        let mut s = ScopeStats::new(MONDAY);
        s.note_recipient(true, MONDAY);
        s.roll(MONDAY + HOUR_MS, &g);
        let back: ScopeStats = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back.hour, s.hour);
        assert_eq!(back.peak_new_5, s.peak_new_5);
    }

    #[test]
    fn the_series_keeps_the_last_hour_in_five_minute_buckets() {
        let mut s = ScopeStats::new(MONDAY);
        s.note_recipient(true, MONDAY + MIN);
        s.note_recipient(false, MONDAY + 2 * MIN);
        s.note_outcome(OutcomeKind::Unknown, MONDAY + 3 * MIN);
        s.note_recipient(true, MONDAY + 11 * MIN);
        let v = s.series.to_json(MONDAY + 12 * MIN);
        assert_eq!(v["bucket_seconds"], 300);
        let col = |k: &str| {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        let mut want = vec![0u64; SERIES_LEN];
        want[9] = 2;
        want[11] = 1;
        assert_eq!(col("recipients"), want);
        want[9] = 1;
        assert_eq!(col("new_recipients"), want);
        want = vec![0; SERIES_LEN];
        want[9] = 1;
        assert_eq!(col("rejected"), want);
        // The first bucket is 11 buckets before the newest (the 10-minute one).
        assert_eq!(
            v["first_bucket"],
            serde_json::json!(super::super::clock::utc(MONDAY + 10 * MIN - 11 * SHORT_MS))
        );
        // Two hours later all of it has dropped out; old records read without it.
        assert!(
            s.series.to_json(MONDAY + 2 * HOUR_MS)["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n == 0)
        );
        let mut old = serde_json::to_value(&s).unwrap();
        old.as_object_mut().unwrap().remove("series");
        let back: ScopeStats = serde_json::from_value(old).unwrap();
        assert_eq!(back.series, Series::default());
    }
}

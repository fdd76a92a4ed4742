//! `[governor]`: rate limits, the detector's allowances, the ladder,
//! expiries and webhooks. Every key has a default, so a configuration may
//! name only what it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::values::Span;

/// One step of the ladder a tripped rule climbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Notify only.
    Warn,
    /// Defer the scope's never-seen recipients for `throttle_duration`;
    /// known correspondents pass, at the usual rates. Each deferred address
    /// counts once as tried: a throttled sender that keeps trying new ones
    /// is suspended, one whose server retries the same ones never is.
    Throttle,
    /// Suspend the scope (a sender, or a domain for domain-level rules).
    Suspend,
}

impl Step {
    /// The lowercase name used in notices and evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Warn => "warn",
            Step::Throttle => "throttle",
            Step::Suspend => "suspend",
        }
    }
}

/// Keys that older versions had; accepted with a warning so that an
/// upgrade does not stop a gateway over a configuration it cannot use.
pub const RETIRED_KEYS: &[&str] = &[
    "volume_floor",
    "domain_volume_floor",
    "volume_factor",
    "baseline_alpha",
    "new_recipients_burst",
    "throttled_count",
    "throttled_window",
    "throttle_divisor",
];

/// Takes the retired keys out of a configuration tree before it is
/// parsed; returns their names, for a warning.
pub fn strip_retired(tree: &mut serde_json::Value) -> Vec<String> {
    let Some(g) = tree.get_mut("governor").and_then(|g| g.as_object_mut()) else {
        return Vec::new();
    };
    let mut gone: Vec<String> = RETIRED_KEYS
        .iter()
        .filter(|k| g.remove(**k).is_some())
        .map(|k| k.to_string())
        .collect();
    gone.sort();
    gone
}

/// `[governor]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovernorSection {
    /// Off: no limits, no detector (staff suspensions still work).
    pub enabled: bool,
    /// Messages per hour for one registered domain (overridable per domain).
    pub domain_messages_per_hour: u32,
    /// Outbound recipients per hour for one registered domain (overridable).
    pub domain_recipients_per_hour: u32,
    /// Messages per hour for one sender address.
    pub sender_messages_per_hour: u32,
    /// Outbound recipients per hour for one sender address.
    pub sender_recipients_per_hour: u32,
    /// Messages per minute for one sender address (a short-term cap).
    pub sender_messages_per_minute: u32,
    /// Outbound recipients per minute for one sender address.
    pub sender_recipients_per_minute: u32,
    /// GCRA burst as a percentage of an hourly limit (100 = the whole hour
    /// at once); per-minute limits allow their whole minute at once.
    pub burst_percent: u32,
    /// New SMTP connections per minute from one client IP.
    pub connections_per_minute: u32,
    /// How long a throttle lasts.
    pub throttle_duration: Span,
    /// Novelty, short window: a sender may write to this many never-seen
    /// recipients in 5 minutes before its own peak is consulted.
    pub new_recipients_5min: u32,
    /// Novelty, long window: the same over an hour.
    pub new_recipients_hour: u32,
    /// Novelty: a sender with history trips above this multiple of its own
    /// peak (the most never-seen recipients it reached in such a window).
    pub novelty_factor: f64,
    /// A throttled scope is suspended when the distinct never-seen
    /// recipients it tried (accepted or deferred) pass this multiple of its
    /// allowance: a sending server retrying its deferred mail tries the same
    /// addresses again and never gets there; a spam run does at once.
    pub escalate_factor: f64,
    /// Active hours (hours with mail) before a sender's own peaks are
    /// trusted; until then it is judged against its domain's senders, or,
    /// in a domain without history either, only limited by the allowances below.
    pub history_hours: u32,
    /// Senders without history in a domain without history: never-seen
    /// recipients per 5 minutes, over which RCPT gets 451 (no suspension).
    pub unproven_recipients_5min: u32,
    /// The same per hour.
    pub unproven_recipients_hour: u32,
    /// Domain novelty not explained by its throttled or suspended senders:
    /// allowance per 5 minutes (before the domain's own peak is consulted).
    pub domain_new_recipients_5min: u32,
    /// The same per hour.
    pub domain_new_recipients_hour: u32,
    /// Learned peaks halve over this long (an old peak stops excusing).
    pub peak_half_life: Span,
    /// Window of the delivery-outcome rules (rejections, unknown recipients).
    pub window: Span,
    /// Remote rejections: trip when this share of outcomes is a rejection...
    pub rejection_share: f64,
    /// ...and at least this many rejections were seen in the window.
    pub rejection_min: u64,
    /// Extra reply wordings (lowercase substrings) that mark a spam refusal;
    /// the vetted wordings of the big providers are built in.
    pub spam_patterns: Vec<String>,
    /// Extra reply wordings that mark a blocklist listing: with one of the
    /// gateway's own addresses in the reply, the refusal is a gateway alarm.
    pub listing_patterns: Vec<String>,
    /// Unknown recipients (5.1.1): trip at this share of outcomes...
    pub unknown_share: f64,
    /// ...with at least this many unknown recipients.
    pub unknown_min: u64,
    /// Never-seen (sender, recipient) pairs remembered per generation; two
    /// generations are kept, about 2.5 MB each per million.
    pub recipient_memory: u32,
    /// The steps a scope climbs while its delivery rules keep tripping (the
    /// novelty rule throttles, then suspends, on its own evidence).
    pub ladder: Vec<Step>,
    /// Least time between two steps of the ladder.
    pub step_interval: Span,
    /// A domain is suspended once this many of its senders are auto-suspended.
    pub domain_after_senders: u32,
    /// Automatic suspensions end after this long, per rule (absent: staff restore).
    pub expire: BTreeMap<String, Span>,
    /// How often expiries are checked and the detector state is saved: what
    /// a kill -9 may lose.
    pub housekeeping_interval: Span,
    /// At most this many senders are tracked by the detector (oldest idle evicted).
    pub max_tracked_senders: usize,
    /// Notices of a suspension go to the domain's contacts (and always the postmaster).
    pub notify_contacts: bool,
    /// JSON webhooks: POSTed on every warning, throttle, suspension and restore.
    pub webhooks: Vec<String>,
    /// Attempts per webhook event before it is dropped.
    pub webhook_attempts: u32,
    /// Timeout of one webhook request.
    pub webhook_timeout: Span,
    /// Keys of older versions found in the configuration, ignored (see
    /// [`RETIRED_KEYS`]); filled by [`strip_retired`], never parsed.
    #[serde(skip)]
    pub retired: Vec<String>,
}

impl Default for GovernorSection {
    fn default() -> Self {
        GovernorSection {
            enabled: true,
            domain_messages_per_hour: 20_000,
            domain_recipients_per_hour: 50_000,
            sender_messages_per_hour: 1_000,
            sender_recipients_per_hour: 3_000,
            sender_messages_per_minute: 600,
            sender_recipients_per_minute: 1200,
            burst_percent: 20,
            connections_per_minute: 600,
            throttle_duration: Span(Duration::from_secs(3600)),
            new_recipients_5min: 30,
            new_recipients_hour: 120,
            novelty_factor: 4.0,
            escalate_factor: 2.0,
            history_hours: 24,
            unproven_recipients_5min: 100,
            unproven_recipients_hour: 300,
            domain_new_recipients_5min: 150,
            domain_new_recipients_hour: 600,
            peak_half_life: Span(Duration::from_secs(14 * 24 * 3600)),
            window: Span(Duration::from_secs(6 * 3600)),
            rejection_share: 0.3,
            rejection_min: 30,
            spam_patterns: Vec::new(),
            listing_patterns: Vec::new(),
            unknown_share: 0.3,
            unknown_min: 30,
            recipient_memory: 2_000_000,
            ladder: vec![Step::Warn, Step::Suspend],
            step_interval: Span(Duration::from_secs(120)),
            domain_after_senders: 3,
            expire: BTreeMap::new(),
            housekeeping_interval: Span(Duration::from_secs(5)),
            max_tracked_senders: 100_000,
            notify_contacts: true,
            webhooks: Vec::new(),
            webhook_attempts: 5,
            webhook_timeout: Span(Duration::from_secs(10)),
            retired: Vec::new(),
        }
    }
}

impl GovernorSection {
    /// What is wrong with the values, key by key.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: &str, m: &str| out.push((format!("governor.{k}"), m.to_string()));
        for (k, v) in [
            ("domain_messages_per_hour", self.domain_messages_per_hour),
            (
                "domain_recipients_per_hour",
                self.domain_recipients_per_hour,
            ),
            ("sender_messages_per_hour", self.sender_messages_per_hour),
            (
                "sender_recipients_per_hour",
                self.sender_recipients_per_hour,
            ),
            (
                "sender_messages_per_minute",
                self.sender_messages_per_minute,
            ),
            (
                "sender_recipients_per_minute",
                self.sender_recipients_per_minute,
            ),
            ("connections_per_minute", self.connections_per_minute),
            ("burst_percent", self.burst_percent),
            ("new_recipients_5min", self.new_recipients_5min),
            ("new_recipients_hour", self.new_recipients_hour),
            ("unproven_recipients_5min", self.unproven_recipients_5min),
            ("unproven_recipients_hour", self.unproven_recipients_hour),
            (
                "domain_new_recipients_5min",
                self.domain_new_recipients_5min,
            ),
            (
                "domain_new_recipients_hour",
                self.domain_new_recipients_hour,
            ),
            ("recipient_memory", self.recipient_memory),
        ] {
            if v == 0 {
                bad(k, "must be at least 1");
            }
        }
        if self.burst_percent > 100 {
            bad("burst_percent", "must be at most 100");
        }
        for (k, v) in [
            ("rejection_share", self.rejection_share),
            ("unknown_share", self.unknown_share),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                bad(k, "must be in (0, 1]");
            }
        }
        // Written so that NaN fails too.
        for (k, v) in [
            ("novelty_factor", self.novelty_factor),
            ("escalate_factor", self.escalate_factor),
        ] {
            if v.is_nan() || v < 1.0 {
                bad(k, "must be at least 1");
            }
        }
        if self.ladder.is_empty() {
            bad("ladder", "needs at least one step");
        }
        if self.window.0 < Duration::from_secs(60) {
            bad("window", "must be at least 1m");
        }
        if self.peak_half_life.0 < Duration::from_secs(3600) {
            bad("peak_half_life", "must be at least 1h");
        }
        if self.housekeeping_interval.0 < Duration::from_millis(100) {
            bad("housekeeping_interval", "must be at least 100ms");
        }
        for u in &self.webhooks {
            if !u.starts_with("http://") && !u.starts_with("https://") {
                bad("webhooks", "URLs must start with http:// or https://");
            }
        }
        out
    }

    /// How long automatic suspensions by `rule` last, if they expire.
    pub fn expiry_for(&self, rule: &str) -> Option<Duration> {
        self.expire
            .get(rule)
            .or_else(|| self.expire.get("*"))
            .map(|s| s.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(GovernorSection::default().problems().is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let g = GovernorSection {
            rejection_share: 1.5,
            ladder: vec![],
            sender_recipients_per_hour: 0,
            novelty_factor: f64::NAN,
            ..Default::default()
        };
        let keys: Vec<String> = g.problems().into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"governor.rejection_share".to_string()));
        assert!(keys.contains(&"governor.ladder".to_string()));
        assert!(keys.contains(&"governor.sender_recipients_per_hour".to_string()));
        assert!(keys.contains(&"governor.novelty_factor".to_string()));
    }

    #[test]
    fn retired_keys_are_taken_out_and_others_stay() {
        let mut tree = serde_json::json!({"governor": {
            "volume_floor": 5, "throttled_count": 3, "volum_factor": 2.0}});
        assert_eq!(
            strip_retired(&mut tree),
            ["throttled_count", "volume_floor"]
        );
        assert_eq!(tree, serde_json::json!({"governor": {"volum_factor": 2.0}}));
    }

    #[test]
    fn expiry_per_rule_with_wildcard() {
        let mut g = GovernorSection::default();
        assert_eq!(g.expiry_for("novelty"), None);
        g.expire.insert("*".into(), Span(Duration::from_secs(60)));
        g.expire
            .insert("novelty".into(), Span(Duration::from_secs(5)));
        assert_eq!(g.expiry_for("novelty"), Some(Duration::from_secs(5)));
        assert_eq!(g.expiry_for("rejections"), Some(Duration::from_secs(60)));
    }
}

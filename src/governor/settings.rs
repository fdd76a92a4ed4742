//! `[governor]`: rate limits, detector thresholds, the ladder, expiries and
//! webhooks. Every key has a default, so a configuration may name only what
//! it changes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Span;

/// One step of the ladder a tripped rule climbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Notify only.
    Warn,
    /// Tighter limits for the scope (`throttle_divisor`).
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

/// `[governor]`.
#[derive(Debug, Clone, Deserialize)]
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
    /// GCRA burst as a percentage of the hourly limit (100 = the whole hour at once).
    pub burst_percent: u32,
    /// New SMTP connections per minute from one client IP.
    pub connections_per_minute: u32,
    /// A throttled scope gets its limits divided by this.
    pub throttle_divisor: u32,
    /// How long a throttle lasts.
    pub throttle_duration: Span,
    /// The detector's window (sliding, estimated from two fixed buckets).
    pub window: Span,
    /// Volume: a sender never trips below this many recipients per window.
    pub volume_floor: u64,
    /// Volume: a domain (all its senders) never trips below this many.
    pub domain_volume_floor: u64,
    /// Volume: trip above this multiple of the learned baseline.
    pub volume_factor: f64,
    /// Weight of the newest hour in the per-hour-of-week EWMA baseline.
    pub baseline_alpha: f64,
    /// Remote rejections: trip when this share of outcomes is a rejection...
    pub rejection_share: f64,
    /// ...and at least this many rejections were seen in the window.
    pub rejection_min: u64,
    /// Reply texts (lowercase substrings) that mark a blocklist or spam refusal.
    pub spam_patterns: Vec<String>,
    /// Reply texts that mark a blocklist listing: with one of the gateway's
    /// own addresses in the reply, the refusal is a gateway alarm and is not
    /// counted against the sender.
    pub listing_patterns: Vec<String>,
    /// Unknown recipients (5.1.1): trip at this share of outcomes...
    pub unknown_share: f64,
    /// ...with at least this many unknown recipients.
    pub unknown_min: u64,
    /// Distinct recipients never seen before, per window, that trip the burst rule.
    pub new_recipients_burst: u64,
    /// Sustained throttling: this many governor refusals...
    pub throttled_count: u64,
    /// ...within this span.
    pub throttled_window: Span,
    /// The steps a scope climbs while its rules keep tripping.
    pub ladder: Vec<Step>,
    /// Least time between two steps of the ladder.
    pub step_interval: Span,
    /// A domain is suspended once this many of its senders are auto-suspended.
    pub domain_after_senders: u32,
    /// Automatic suspensions end after this long, per rule (absent: staff restore).
    pub expire: BTreeMap<String, Span>,
    /// How often expiries are checked and detector state is saved.
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
            burst_percent: 20,
            connections_per_minute: 600,
            throttle_divisor: 10,
            throttle_duration: Span(Duration::from_secs(3600)),
            window: Span(Duration::from_secs(3600)),
            volume_floor: 1_000,
            domain_volume_floor: 5_000,
            volume_factor: 5.0,
            baseline_alpha: 0.3,
            rejection_share: 0.3,
            rejection_min: 30,
            spam_patterns: [
                "spamhaus",
                "blocklist",
                "blacklist",
                "blocked",
                "listed",
                "spam",
                "5.7.1",
            ]
            .map(String::from)
            .to_vec(),
            listing_patterns: [
                "spamhaus",
                "spamcop",
                "barracuda",
                "blocklist",
                "blacklist",
                "dnsbl",
                "listed",
                "blocked using",
            ]
            .map(String::from)
            .to_vec(),
            unknown_share: 0.3,
            unknown_min: 30,
            new_recipients_burst: 2_000,
            throttled_count: 50,
            throttled_window: Span(Duration::from_secs(600)),
            ladder: vec![Step::Warn, Step::Throttle, Step::Suspend],
            step_interval: Span(Duration::from_secs(120)),
            domain_after_senders: 3,
            expire: BTreeMap::new(),
            housekeeping_interval: Span(Duration::from_secs(30)),
            max_tracked_senders: 100_000,
            notify_contacts: true,
            webhooks: Vec::new(),
            webhook_attempts: 5,
            webhook_timeout: Span(Duration::from_secs(10)),
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
            ("connections_per_minute", self.connections_per_minute),
            ("throttle_divisor", self.throttle_divisor),
            ("burst_percent", self.burst_percent),
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
            ("baseline_alpha", self.baseline_alpha),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                bad(k, "must be in (0, 1]");
            }
        }
        // Written so that NaN fails too.
        if self.volume_factor.is_nan() || self.volume_factor < 1.0 {
            bad("volume_factor", "must be at least 1");
        }
        if self.ladder.is_empty() {
            bad("ladder", "needs at least one step");
        }
        if self.window.0 < Duration::from_secs(1) {
            bad("window", "must be at least 1s");
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
            ..Default::default()
        };
        let keys: Vec<String> = g.problems().into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"governor.rejection_share".to_string()));
        assert!(keys.contains(&"governor.ladder".to_string()));
        assert!(keys.contains(&"governor.sender_recipients_per_hour".to_string()));
    }

    #[test]
    fn expiry_per_rule_with_wildcard() {
        let mut g = GovernorSection::default();
        assert_eq!(g.expiry_for("volume"), None);
        g.expire.insert("*".into(), Span(Duration::from_secs(60)));
        g.expire
            .insert("volume".into(), Span(Duration::from_secs(5)));
        assert_eq!(g.expiry_for("volume"), Some(Duration::from_secs(5)));
        assert_eq!(g.expiry_for("rejections"), Some(Duration::from_secs(60)));
    }
}

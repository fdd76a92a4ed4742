//! `[registration]`: the application workflow and its working-day calendar.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use super::lists::one_or_many;
use crate::values::{Span, parse_from_str};

/// `[registration]`: the application workflow and its working-day calendar.
///
/// The default calendar is Kazakhstan's for 2026 and 2027 (see
/// `calendar`); the operator must review the lists every year.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSection {
    /// Public holidays; one on a Saturday or Sunday makes the next working day a day off.
    #[serde(deserialize_with = "one_or_many")]
    pub holidays: Vec<chrono::NaiveDate>,
    /// Days off that never move: religious holidays, weekdays off by a transfer decree.
    #[serde(deserialize_with = "one_or_many")]
    pub days_off: Vec<chrono::NaiveDate>,
    /// Saturdays and Sundays that a transfer decree makes working days.
    #[serde(deserialize_with = "one_or_many")]
    pub working_days: Vec<chrono::NaiveDate>,
    /// A decision is due this many working days after receipt.
    pub decision_days: u32,
    /// A rejected applicant may apply again after this many calendar days.
    pub resubmit_days: u32,
    /// How often pending applications are checked against their deadline.
    pub overdue_check_interval: Span,
    /// The gateway's public outbound addresses, which agencies' SPF records
    /// must authorize (checked in `application show` when set).
    #[serde(deserialize_with = "one_or_many")]
    pub gateway_addresses: Vec<std::net::IpAddr>,
    /// The operator's UTC offset: dates of receipt and decision are local dates.
    #[serde(deserialize_with = "parse_from_str")]
    pub utc_offset: UtcOffset,
    /// What happens to a disconnected domain's queued outbound mail.
    pub disconnect_queued: DisconnectQueued,
    /// Widest IPv4 server range (shortest prefix) staff may register
    /// without `--allow-wide-range`.
    pub widest_server_range_v4: u8,
    /// Widest IPv6 server range staff may register without `--allow-wide-range`.
    pub widest_server_range_v6: u8,
    /// A connected domain's contacts confirm its data this long after its
    /// connection or their last confirmation; then they are reminded once.
    pub reconfirm_every: Span,
}

/// A disconnected domain's queued outbound mail: kept held for staff, or
/// bounced to its senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DisconnectQueued {
    /// Held until staff release or delete it.
    #[default]
    Hold,
    /// Returned to the senders with a DSN (5.7.1).
    Bounce,
}

impl Default for RegistrationSection {
    fn default() -> Self {
        RegistrationSection {
            holidays: crate::calendar::kazakhstan_holidays(),
            days_off: crate::calendar::kazakhstan_days_off(),
            working_days: Vec::new(),
            decision_days: 5,
            resubmit_days: 30,
            overdue_check_interval: Span(Duration::from_secs(3600)),
            gateway_addresses: Vec::new(),
            // Kazakhstan has one time zone, UTC+5, since 1 March 2024.
            utc_offset: UtcOffset(chrono::FixedOffset::east_opt(5 * 3600).expect("valid offset")),
            disconnect_queued: DisconnectQueued::Hold,
            widest_server_range_v4: 24,
            widest_server_range_v6: 48,
            reconfirm_every: Span(Duration::from_secs(365 * 86400)),
        }
    }
}

/// A fixed offset from UTC, written `+05:00` or `-03:30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset(pub chrono::FixedOffset);

impl Serialize for UtcOffset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl FromStr for UtcOffset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a UTC offset like +05:00");
        let t = s.trim();
        let (sign, rest) = match t.as_bytes().first() {
            Some(b'+') => (1, &t[1..]),
            Some(b'-') => (-1, &t[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(UtcOffset)
            .ok_or_else(bad)
    }
}

impl RegistrationSection {
    /// What is wrong with the section's values, the calendar's lists included.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| out.push(ConfigProblem::new(key, message));
        if !(1..=60).contains(&self.decision_days) {
            bad(
                "registration.decision_days",
                "must lie between 1 and 60".into(),
            );
        }
        if !(1..=365).contains(&self.resubmit_days) {
            bad(
                "registration.resubmit_days",
                "must lie between 1 and 365".into(),
            );
        }
        if self.overdue_check_interval.0 < Duration::from_secs(60) {
            bad(
                "registration.overdue_check_interval",
                "must be at least 1m".into(),
            );
        }
        if self.reconfirm_every.0 < Duration::from_secs(86400) {
            bad("registration.reconfirm_every", "must be at least 1d".into());
        }
        if !(8..=32).contains(&self.widest_server_range_v4) {
            bad(
                "registration.widest_server_range_v4",
                "must lie between 8 and 32 (a prefix length)".into(),
            );
        }
        if !(16..=128).contains(&self.widest_server_range_v6) {
            bad(
                "registration.widest_server_range_v6",
                "must lie between 16 and 128 (a prefix length)".into(),
            );
        }
        for day in &self.working_days {
            use chrono::Datelike;
            if !matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
                bad(
                    "registration.working_days",
                    format!(
                        "{day} is a {}: only Saturdays and Sundays can be made working days",
                        day.weekday()
                    ),
                );
            } else if self.holidays.contains(day) || self.days_off.contains(day) {
                bad(
                    "registration.working_days",
                    format!("{day} is also listed as a holiday or day off"),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL, keys, load};
    use crate::config::{Config, ConfigSource, EMBEDDED_DEFAULT};

    #[test]
    fn registration_defaults_and_the_embedded_lists_agree() {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        let default = RegistrationSection::default();
        assert_eq!(embedded.registration.holidays, default.holidays);
        assert_eq!(embedded.registration.days_off, default.days_off);
        assert_eq!(embedded.registration.working_days, default.working_days);
        assert_eq!(embedded.registration.decision_days, 5);
        assert_eq!(embedded.registration.resubmit_days, 30);
        assert_eq!(embedded.registration.utc_offset, default.utc_offset);
        // Without the section, the shipped calendar applies.
        let cfg = load(MINIMAL, &[]).unwrap();
        assert_eq!(cfg.registration.holidays.len(), 26);
    }

    #[test]
    fn registration_keys_parse_and_bad_ones_are_named() {
        let cfg = load(
            &format!(
                "{MINIMAL}[registration]\nholidays = [2028-01-01, \"2028-01-02\"]\nworking_days = [2028-01-08]\ngateway_addresses = [\"203.0.113.25\", \"2001:db8::25\"]\nutc_offset = \"-03:30\"\n"
            ),
            &[("UGEM_REGISTRATION__DAYS_OFF", "2028-01-07,2028-04-10")],
        )
        .unwrap();
        let r = &cfg.registration;
        assert_eq!(r.holidays.len(), 2);
        assert_eq!(r.days_off[1].to_string(), "2028-04-10");
        assert_eq!(r.gateway_addresses.len(), 2);
        assert_eq!(r.utc_offset.0.local_minus_utc(), -(3 * 3600 + 30 * 60));

        let err = load(
            &format!(
                "{MINIMAL}[registration]\nholidays = [\"2028-02-30\"]\ndecision_days = 0\nutc_offset = \"UTC+5\"\nworking_days = [\"2028-01-03\"]\nresubmit = 30\n"
            ),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in [
            "registration.holidays",
            "registration.utc_offset",
            "registration.resubmit",
        ] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
        // Semantic checks come once every key parses.
        let err = load(
            &format!(
                "{MINIMAL}[registration]\ndecision_days = 0\nworking_days = [\"2028-01-03\", \"2028-01-01\"]\nholidays = [\"2028-01-01\"]\n"
            ),
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("registration.decision_days"), "{text}");
        assert!(text.contains("2028-01-03 is a Mon"), "{text}");
        assert!(text.contains("2028-01-01 is also listed"), "{text}");
    }
}

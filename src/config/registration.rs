//! `[registration]`: the application workflow and its working-day calendar.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use super::lists::one_or_many;
use crate::calendar::{Calendar, CalendarData, DayOff};
use crate::values::{Span, parse_from_str};

/// `[registration]`: the application workflow and its working-day calendar.
///
/// The default calendar is the shipped file `data/calendar/kz.toml`
/// (Kazakhstan, 2026 and 2027; see `calendar`); `calendar` names the
/// operator's own, and the three lists add single dates on top.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSection {
    /// A calendar file (the shipped one's format) in place of the shipped one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<std::path::PathBuf>,
    /// The calendar file's contents, read when the configuration is loaded.
    #[serde(skip)]
    pub calendar_data: std::sync::Arc<CalendarData>,
    /// Extra public holidays; one on a Saturday or Sunday makes the next working day a day off.
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
            calendar: None,
            calendar_data: std::sync::Arc::new(CalendarData::kazakhstan()),
            holidays: Vec::new(),
            days_off: Vec::new(),
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
    /// Reads the `calendar` file, when one is named, into `calendar_data`.
    pub fn load_calendar(&mut self) -> Option<ConfigProblem> {
        let path = self.calendar.as_ref()?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                return Some(ConfigProblem::new(
                    "registration.calendar",
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
        };
        match CalendarData::parse(&text) {
            Ok(data) => {
                self.calendar_data = std::sync::Arc::new(data);
                None
            }
            Err(e) => Some(ConfigProblem::new(
                "registration.calendar",
                format!("{}: {e}", path.display()),
            )),
        }
    }

    /// The working-day calendar: the calendar file plus the single dates.
    pub fn calendar(&self) -> Calendar {
        Calendar::from_data(
            &self.calendar_data,
            &self.holidays,
            &self.days_off,
            &self.working_days,
        )
    }

    /// Today's local date at `utc_offset`.
    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.utc_offset.0)
            .date_naive()
    }

    /// Years missing from the calendar as of `today` (this year; from
    /// 1 December the next one too), as warnings.
    pub fn warnings_on(&self, today: chrono::NaiveDate) -> Vec<ConfigProblem> {
        let mut out = self.extra_dates_warnings();
        let years: Vec<String> = self
            .calendar()
            .missing_years(today)
            .iter()
            .map(|y| y.to_string())
            .collect();
        if years.is_empty() {
            return out;
        }
        let key = if self.calendar.is_some() {
            "registration.calendar"
        } else {
            "registration.holidays"
        };
        out.push(ConfigProblem::new(
            key,
            format!(
                "the working-day calendar lists no holidays or days off for {}: decision deadlines would count weekends only; add the year (see data/calendar/kz.toml)",
                years.join(", ")
            ),
        ));
        out
    }

    /// A list that copies the calendar file's dates (a configuration
    /// written before the calendar was a file) and adds others in a year
    /// the file covers: those are most likely stale (30 August 2026,
    /// Constitution Day until 2025, is no longer a holiday). Lists of
    /// additions only are not questioned.
    fn extra_dates_warnings(&self) -> Vec<ConfigProblem> {
        let file = Calendar::from_data(&self.calendar_data, &[], &[], &[]);
        let mut out = Vec::new();
        for (key, dates) in [
            ("registration.holidays", &self.holidays),
            ("registration.days_off", &self.days_off),
        ] {
            use chrono::Datelike;
            let copied = dates
                .iter()
                .any(|d| file.day_off(*d).is_some_and(|w| w != DayOff::Weekend));
            if !copied {
                continue;
            }
            let extra: Vec<String> = dates
                .iter()
                .filter(|d| self.calendar_data.years.contains_key(&d.year()))
                .filter(|d| file.day_off(**d).is_none_or(|w| w == DayOff::Weekend))
                .map(|d| d.to_string())
                .collect();
            if !extra.is_empty() {
                out.push(ConfigProblem::new(
                    key,
                    format!(
                        "{} not a day off in the calendar file, which covers that year; this list repeats the file's dates and adds these: the list only adds to the file, so remove what an older configuration left",
                        extra.join(", ") + if extra.len() == 1 { " is" } else { " are" }
                    ),
                ));
            }
        }
        out
    }

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
        assert_eq!(embedded.registration.calendar_data, default.calendar_data);
        // Without the section, the shipped calendar file applies.
        let cfg = load(MINIMAL, &[]).unwrap();
        assert!(cfg.registration.holidays.is_empty());
        assert_eq!(cfg.registration.calendar_data.years.len(), 2);
        assert!(cfg.registration.calendar().covers(2027));
    }

    #[test]
    fn a_calendar_file_replaces_the_shipped_one_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cal.toml"),
            "[years.2031]\nholidays = [{ date = 2031-01-01, name = \"New Year\" }]\n",
        )
        .unwrap();
        let path = dir.path().join("ugem.toml");
        std::fs::write(
            &path,
            format!("{MINIMAL}[registration]\ncalendar = \"cal.toml\"\ndays_off = [2031-01-07]\n"),
        )
        .unwrap();
        let cfg = Config::load_with_env(&ConfigSource::File(path.clone()), &[]).unwrap();
        let cal = cfg.registration.calendar();
        assert!(cal.covers(2031) && !cal.covers(2026));
        assert!(!cal.is_working_day("2031-01-07".parse().unwrap()));
        // In December the next year is asked for; in November it is not.
        let w = cfg.registration.warnings_on("2031-12-01".parse().unwrap());
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].key, "registration.calendar");
        assert!(w[0].message.contains("2032"), "{}", w[0].message);
        assert!(
            cfg.registration
                .warnings_on("2031-11-30".parse().unwrap())
                .is_empty()
        );
        // A single date the file's year does not have is questioned.
        let mut old = cfg.registration.clone();
        old.holidays = vec!["2031-08-30".parse().unwrap(), "2031-01-01".parse().unwrap()];
        let w = old.warnings_on("2031-11-30".parse().unwrap());
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "registration.holidays");
        assert!(
            w[0].message.starts_with("2031-08-30 is not a day off"),
            "{}",
            w[0].message
        );
        // A bad file is a problem of the key.
        std::fs::write(dir.path().join("cal.toml"), "[years.2031]\nholidays = 3\n").unwrap();
        let err = Config::load_with_env(&ConfigSource::File(path), &[]).unwrap_err();
        assert!(keys(&err).contains(&"registration.calendar"), "{err}");
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

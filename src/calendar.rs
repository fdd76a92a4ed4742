//! The working-day calendar that decision deadlines are counted in.
//!
//! Rules (Republic of Kazakhstan), as applied here:
//! - Saturdays and Sundays are days off (the five-day week of state bodies).
//! - National and state holidays are days off; when one falls on a Saturday
//!   or Sunday, the next working day after it is a day off instead (Law "On
//!   holidays in the Republic of Kazakhstan", article 5). These are the
//!   `holidays` of `[registration]`.
//! - Religious holidays (Orthodox Christmas, the first day of Kurban Ait;
//!   Labour Code article 84) are days off but do NOT move when they fall on a
//!   weekend. They go in `days_off`, which never moves, together with
//!   weekdays that a government transfer decree (Labour Code article 85,
//!   paragraph 3) makes days off.
//! - Weekend days that such a decree makes working days go in `working_days`.
//!
//! The shipped calendar is data, not code: `data/calendar/kz.toml`, embedded
//! as [`KZ_DEFAULT`] and parsed by [`CalendarData::parse`], lists per year the
//! holidays (with names), fixed days off, transferred working days and the
//! sources they were checked against. It covers 2026 and 2027. In 2026
//! Constitution Day moved from 30 August to 15 March, the day of the 2026
//! constitutional referendum, celebrated from 2027 (Qazinform, 12 Feb 2026,
//! https://qazinform.com/news/kazakhstan-may-change-date-of-constitution-day-0a2f07;
//! Taspanews, 18 Mar 2026, quoting the Ministry of Labour,
//! https://taspanews.kz/novosti-kazakhstana/v-etom-godu-u-kazakhstantsev-ne-budet-odnogo-vykhodnogo-795514517615):
//! so 30 and 31 August 2026 are working days again. Holiday laws, religious
//! dates and transfer decrees change every year: the operator reviews the
//! file yearly (`[registration] calendar` points at their own copy); the
//! gateway warns when the current year, or from 1 December the next one, has
//! no days off listed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The shipped calendar file (Kazakhstan, 2026 and 2027).
pub const KZ_DEFAULT: &str = include_str!("../data/calendar/kz.toml");

/// Why a calendar file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CalendarError(pub String);

/// A date with what makes it special.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedDay {
    /// The date.
    #[serde(with = "toml_date")]
    pub date: NaiveDate,
    /// Its name ("Victory Day", "transfer decree of ...").
    #[serde(default)]
    pub name: String,
}

/// Where a year's dates come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// law | decree | calendar | news: what kind of source.
    pub kind: String,
    /// Its title, number and date.
    pub title: String,
    /// Where to read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the dates were last checked against it.
    #[serde(
        default,
        with = "toml_date_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub checked: Option<NaiveDate>,
}

/// One year of the calendar file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearData {
    /// Public holidays: one on a weekend makes the next working day off.
    #[serde(default)]
    pub holidays: Vec<NamedDay>,
    /// Days off that never move: religious holidays, transferred days off.
    #[serde(default)]
    pub days_off: Vec<NamedDay>,
    /// Saturdays and Sundays made working days by a transfer decree.
    #[serde(default)]
    pub working_days: Vec<NamedDay>,
    /// Where the dates come from.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// A calendar file: days off and working days per year, with sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarData {
    /// Whose calendar (ISO country code).
    #[serde(default)]
    pub country: String,
    /// The years, by number.
    #[serde(default)]
    pub years: BTreeMap<i32, YearData>,
}

impl CalendarData {
    /// Parses and checks a calendar file: every date in its year, working
    /// days only on weekends and not also days off.
    pub fn parse(text: &str) -> Result<CalendarData, CalendarError> {
        let data: CalendarData = toml::from_str(text).map_err(|e| CalendarError(e.to_string()))?;
        for (year, y) in &data.years {
            let lists = [
                ("holidays", &y.holidays),
                ("days_off", &y.days_off),
                ("working_days", &y.working_days),
            ];
            for (list, days) in lists {
                if let Some(d) = days.iter().find(|d| d.date.year() != *year) {
                    return Err(CalendarError(format!(
                        "years.{year}.{list}: {} is not in {year}",
                        d.date
                    )));
                }
            }
            for d in &y.working_days {
                if !is_weekend(d.date) {
                    return Err(CalendarError(format!(
                        "years.{year}.working_days: {} is a {}: only Saturdays and Sundays can be made working days",
                        d.date,
                        d.date.weekday()
                    )));
                }
                if y.holidays
                    .iter()
                    .chain(&y.days_off)
                    .any(|o| o.date == d.date)
                {
                    return Err(CalendarError(format!(
                        "years.{year}.working_days: {} is also a holiday or day off",
                        d.date
                    )));
                }
            }
        }
        Ok(data)
    }

    /// The shipped calendar: Kazakhstan, 2026 and 2027.
    pub fn kazakhstan() -> CalendarData {
        CalendarData::parse(KZ_DEFAULT).expect("the shipped calendar parses")
    }

    fn all(&self, pick: fn(&YearData) -> &Vec<NamedDay>) -> Vec<NamedDay> {
        self.years.values().flat_map(|y| pick(y).clone()).collect()
    }
}

/// TOML dates (`2026-01-01`, bare or quoted) as `NaiveDate`.
mod toml_date {
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let v = toml::Value::deserialize(d)?;
        let text = match &v {
            toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
            toml::Value::String(s) => s.clone(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "`{other}` is not a date like 2026-01-01"
                )));
            }
        };
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a date like 2026-01-01"))
        })
    }

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }
}

/// An optional TOML date.
mod toml_date_opt {
    use chrono::NaiveDate;
    use serde::{Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        super::toml_date::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }
}

/// The shipped holidays: Kazakhstan, 2026 and 2027.
pub fn kazakhstan_holidays() -> Vec<NaiveDate> {
    CalendarData::kazakhstan()
        .all(|y| &y.holidays)
        .into_iter()
        .map(|d| d.date)
        .collect()
}

/// The shipped fixed days off: Kazakhstan's religious holidays, 2026 and 2027.
pub fn kazakhstan_days_off() -> Vec<NaiveDate> {
    CalendarData::kazakhstan()
        .all(|y| &y.days_off)
        .into_iter()
        .map(|d| d.date)
        .collect()
}

/// Why a day is not a working day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum DayOff {
    /// An ordinary Saturday or Sunday.
    Weekend,
    /// A public holiday.
    Holiday {
        /// Its name.
        name: String,
    },
    /// The working day a weekend holiday moved to.
    MovedHoliday {
        /// The holiday's name.
        name: String,
        /// The holiday's own date.
        from: NaiveDate,
    },
    /// A day off that does not move (religious holiday, transfer decree).
    DayOff {
        /// Its name.
        name: String,
    },
}

/// A day that a deadline count skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedDay {
    /// The date.
    pub date: NaiveDate,
    /// Mon, Tue, ...
    pub weekday: String,
    /// Why it is not a working day.
    #[serde(flatten)]
    pub why: DayOff,
}

impl SkippedDay {
    /// One line: `2026-03-09 Mon: moved holiday (International Women's Day, 2026-03-08)`.
    pub fn describe(&self) -> String {
        let why = match &self.why {
            DayOff::Weekend => "weekend".to_string(),
            DayOff::Holiday { name } => format!("holiday ({name})"),
            DayOff::MovedHoliday { name, from } => format!("day off for {name} of {from}"),
            DayOff::DayOff { name } => format!("day off ({name})"),
        };
        format!("{} {}: {why}", self.date, self.weekday)
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Which days are working days.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Every day off other than an ordinary weekend (holidays, the days they
    /// moved to, and fixed days off), with why.
    off: BTreeMap<NaiveDate, DayOff>,
    /// Weekend days that are working days.
    working: BTreeSet<NaiveDate>,
    /// Years for which at least one holiday is configured.
    years: BTreeSet<i32>,
}

fn unnamed(dates: &[NaiveDate]) -> Vec<NamedDay> {
    dates
        .iter()
        .map(|&date| NamedDay {
            date,
            name: String::new(),
        })
        .collect()
}

impl Calendar {
    /// Builds a calendar from moving holidays, fixed days off and weekend
    /// working days. A date that is both a day off and a working day is a day off.
    pub fn new(holidays: &[NaiveDate], days_off: &[NaiveDate], working_days: &[NaiveDate]) -> Self {
        Calendar::named(&unnamed(holidays), &unnamed(days_off), working_days)
    }

    /// The calendar of a calendar file, with single dates added on top
    /// (`[registration] holidays`, `days_off`, `working_days`).
    pub fn from_data(
        data: &CalendarData,
        holidays: &[NaiveDate],
        days_off: &[NaiveDate],
        working_days: &[NaiveDate],
    ) -> Self {
        let mut h = data.all(|y| &y.holidays);
        h.extend(unnamed(holidays));
        let mut o = data.all(|y| &y.days_off);
        o.extend(unnamed(days_off));
        let mut w: Vec<NaiveDate> = data
            .all(|y| &y.working_days)
            .into_iter()
            .map(|d| d.date)
            .collect();
        w.extend_from_slice(working_days);
        Calendar::named(&h, &o, &w)
    }

    /// Like [`Calendar::new`], with the names of the days off kept.
    pub fn named(holidays: &[NamedDay], days_off: &[NamedDay], working_days: &[NaiveDate]) -> Self {
        let label = |d: &NamedDay, fallback: &str| {
            if d.name.trim().is_empty() {
                fallback.to_string()
            } else {
                d.name.clone()
            }
        };
        let mut off = BTreeMap::new();
        // Holidays win over fixed days off of the same date (for the name).
        for d in days_off {
            off.insert(
                d.date,
                DayOff::DayOff {
                    name: label(d, "day off"),
                },
            );
        }
        for d in holidays {
            off.insert(
                d.date,
                DayOff::Holiday {
                    name: label(d, "public holiday"),
                },
            );
        }
        let mut cal = Calendar {
            off,
            working: working_days.iter().copied().collect(),
            years: holidays
                .iter()
                .chain(days_off)
                .map(|d| d.date.year())
                .collect(),
        };
        let mut moving: Vec<(NaiveDate, String)> = holidays
            .iter()
            .map(|d| (d.date, label(d, "public holiday")))
            .collect();
        moving.sort_unstable();
        moving.dedup_by_key(|(d, _)| *d);
        // In date order, so that two weekend holidays in a row (Nauryz 2026)
        // move to two successive working days.
        for (h, name) in moving {
            if !is_weekend(h) || cal.working.contains(&h) {
                continue;
            }
            let mut d = h;
            while let Some(next) = d.succ_opt() {
                d = next;
                if cal.is_working_day(d) {
                    cal.off.insert(d, DayOff::MovedHoliday { name, from: h });
                    break;
                }
            }
        }
        cal
    }

    /// The shipped default: Kazakhstan, 2026 and 2027.
    pub fn kazakhstan() -> Self {
        Calendar::from_data(&CalendarData::kazakhstan(), &[], &[], &[])
    }

    /// Why `d` is not a working day; None on a working day.
    pub fn day_off(&self, d: NaiveDate) -> Option<DayOff> {
        if let Some(why) = self.off.get(&d) {
            return Some(why.clone());
        }
        (is_weekend(d) && !self.working.contains(&d)).then_some(DayOff::Weekend)
    }

    /// The days off after `from` up to and including `to`: what a deadline
    /// counted from `from` to `to` skipped.
    pub fn skipped_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<SkippedDay> {
        from.iter_days()
            .skip(1)
            .take_while(|d| *d <= to)
            .filter_map(|date| {
                self.day_off(date).map(|why| SkippedDay {
                    date,
                    weekday: date.weekday().to_string(),
                    why,
                })
            })
            .collect()
    }

    /// True on a working day.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !self.off.contains_key(&d) && (!is_weekend(d) || self.working.contains(&d))
    }

    /// The `n`th working day after `date`; `date` itself never counts (a
    /// decision is due within `n` working days of receipt).
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> NaiveDate {
        let mut d = date;
        let mut left = n;
        while left > 0 {
            let Some(next) = d.succ_opt() else { break };
            d = next;
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// Working days after `from` up to and including `to`; negative (the
    /// working days after `to` up to and including `from`) when `to` is earlier.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let (a, b, sign) = if to >= from {
            (from, to, 1)
        } else {
            (to, from, -1)
        };
        let n = a
            .iter_days()
            .skip(1)
            .take_while(|d| *d <= b)
            .filter(|d| self.is_working_day(*d))
            .count();
        sign * i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// True when at least one holiday or day off is configured in `year`:
    /// a year without any is almost certainly missing from the configuration.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The years a staff member should add now: `today`'s year when it has
    /// no days off listed, and from 1 December also the next year.
    pub fn missing_years(&self, today: NaiveDate) -> Vec<i32> {
        let mut years = Vec::new();
        if !self.covers(today.year()) {
            years.push(today.year());
        }
        if today.month() == 12 && !self.covers(today.year() + 1) {
            years.push(today.year() + 1);
        }
        years
    }

    /// Days off other than ordinary weekends within `year`, moved days included.
    pub fn days_off_in(&self, year: i32) -> Vec<NaiveDate> {
        self.off
            .keys()
            .filter(|d| d.year() == year)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn plain_weeks_skip_weekends_and_not_the_receipt_day() {
        let c = Calendar::kazakhstan();
        // Monday -> next Monday.
        assert_eq!(c.add_working_days(d("2026-02-02"), 5), d("2026-02-09"));
        // Friday -> next Friday.
        assert_eq!(c.add_working_days(d("2026-02-06"), 5), d("2026-02-13"));
        // Received on a Saturday or Sunday: counting starts on Monday.
        assert_eq!(c.add_working_days(d("2026-02-07"), 5), d("2026-02-13"));
        assert_eq!(c.add_working_days(d("2026-02-08"), 5), d("2026-02-13"));
        assert_eq!(c.add_working_days(d("2026-02-02"), 0), d("2026-02-02"));
    }

    #[test]
    fn kazakhstan_2026_days_off_match_the_published_calendar() {
        let c = Calendar::kazakhstan();
        let off: Vec<String> = c
            .days_off_in(2026)
            .iter()
            .filter(|x| !is_weekend(**x))
            .map(|x| x.to_string())
            .collect();
        // Weekday days off of 2026 as published on egov.kz (five-day week).
        assert_eq!(
            off,
            [
                "2026-01-01",
                "2026-01-02",
                "2026-01-07",
                "2026-03-09",
                "2026-03-23",
                "2026-03-24",
                "2026-03-25",
                "2026-05-01",
                "2026-05-07",
                "2026-05-11",
                "2026-05-27",
                "2026-07-06",
                "2026-10-26",
                "2026-12-16",
            ]
        );
    }

    #[test]
    fn holidays_and_their_moved_days_are_skipped() {
        let c = Calendar::kazakhstan();
        // Thursday before Nauryz: Fri 20, then 21-25 March off, then 26, 27, 30, 31.
        assert_eq!(c.add_working_days(d("2026-03-19"), 5), d("2026-03-31"));
        // Women's Day on a Sunday: Monday 9 March is off.
        assert!(!c.is_working_day(d("2026-03-09")));
        assert_eq!(c.add_working_days(d("2026-03-06"), 1), d("2026-03-10"));
        // Victory Day 2026 on a Saturday: Monday 11 May off; Kurban Ait 27 May.
        assert_eq!(c.add_working_days(d("2026-05-08"), 1), d("2026-05-12"));
        assert_eq!(c.add_working_days(d("2026-05-25"), 5), d("2026-06-02"));
    }

    #[test]
    fn religious_holiday_on_a_weekend_does_not_move() {
        let c = Calendar::kazakhstan();
        // Kurban Ait 2027 is Sunday 16 May: Monday 17 May is a working day...
        assert!(c.is_working_day(d("2027-05-17")));
        // ...while Victory Day, Sunday 9 May 2027, makes Monday 10 May a day off.
        assert!(!c.is_working_day(d("2027-05-10")));
        assert_eq!(c.add_working_days(d("2027-05-14"), 1), d("2027-05-17"));
    }

    #[test]
    fn year_boundary() {
        let c = Calendar::kazakhstan();
        // Mon 28 Dec 2026: 29, 30, 31 Dec; 1 Jan (Fri), 2 Jan (Sat, moves to
        // Mon 4 Jan) off; then 5 and 6 Jan.
        assert_eq!(c.add_working_days(d("2026-12-28"), 5), d("2027-01-06"));
        assert!(!c.is_working_day(d("2027-01-04")));
        // Received on New Year's Eve 2026 (Thursday).
        assert_eq!(c.add_working_days(d("2026-12-31"), 5), d("2027-01-12"));
    }

    #[test]
    fn transferred_working_and_rest_days() {
        // A decree makes Saturday 3 Jan 2026 a working day and Monday 5 Jan a day off.
        let c = Calendar::new(
            &kazakhstan_holidays(),
            &[kazakhstan_days_off(), vec![d("2026-01-05")]].concat(),
            &[d("2026-01-03")],
        );
        assert!(c.is_working_day(d("2026-01-03")));
        assert!(!c.is_working_day(d("2026-01-05")));
        // Wed 31 Dec 2025: 3 Jan (1), 6 Jan (2), 7 Jan Christmas off, 8 (3), 9 (4), 12 (5).
        assert_eq!(c.add_working_days(d("2025-12-31"), 5), d("2026-01-12"));
    }

    #[test]
    fn holiday_on_a_weekend_that_is_a_working_day_does_not_move() {
        let sat = d("2026-06-13");
        let c = Calendar::new(&[sat], &[], &[sat]);
        // The holiday wins over the working day, and nothing moves.
        assert!(!c.is_working_day(sat));
        assert!(c.is_working_day(d("2026-06-15")));
    }

    #[test]
    fn consecutive_weekend_holidays_move_to_successive_days() {
        // Holidays on Sat 2 May and Sun 3 May (hypothetical) and Mon 4 May.
        let c = Calendar::new(
            &[d("2026-05-02"), d("2026-05-03"), d("2026-05-04")],
            &[],
            &[],
        );
        assert!(!c.is_working_day(d("2026-05-05")));
        assert!(!c.is_working_day(d("2026-05-06")));
        assert!(c.is_working_day(d("2026-05-07")));
    }

    #[test]
    fn working_days_between_counts_both_ways() {
        let c = Calendar::kazakhstan();
        assert_eq!(c.working_days_between(d("2026-02-02"), d("2026-02-09")), 5);
        assert_eq!(c.working_days_between(d("2026-02-09"), d("2026-02-02")), -5);
        assert_eq!(c.working_days_between(d("2026-02-09"), d("2026-02-09")), 0);
        // Over Nauryz.
        assert_eq!(c.working_days_between(d("2026-03-20"), d("2026-03-26")), 1);
    }

    #[test]
    fn constitution_day_moved_from_30_august_to_15_march() {
        let c = Calendar::kazakhstan();
        // 2026: 30 August (a Sunday) is no holiday, so Monday 31 August works.
        assert!(c.is_working_day(d("2026-08-31")));
        assert_eq!(c.day_off(d("2026-08-30")), Some(DayOff::Weekend));
        assert!(c.is_working_day(d("2027-08-30")));
        // 2027: Monday 15 March is Constitution Day; it does not move.
        assert_eq!(
            c.day_off(d("2027-03-15")),
            Some(DayOff::Holiday {
                name: "Constitution Day".into()
            })
        );
        assert!(c.is_working_day(d("2027-03-16")));
        assert!(c.is_working_day(d("2026-03-16")));
    }

    #[test]
    fn skipped_days_name_weekends_holidays_and_moved_days() {
        let c = Calendar::kazakhstan();
        // Received Friday 6 March 2026: Sat 7, Sun 8 (Women's Day), Mon 9 (its day off).
        let s = c.skipped_between(d("2026-03-06"), d("2026-03-10"));
        let lines: Vec<String> = s.iter().map(SkippedDay::describe).collect();
        assert_eq!(
            lines,
            [
                "2026-03-07 Sat: weekend",
                "2026-03-08 Sun: holiday (International Women's Day)",
                "2026-03-09 Mon: day off for International Women's Day of 2026-03-08",
            ]
        );
        let s = c.skipped_between(d("2026-05-25"), d("2026-06-02"));
        assert!(s.iter().any(|x| x.why
            == DayOff::DayOff {
                name: "Kurban Ait".into()
            }));
        assert!(
            c.skipped_between(d("2026-02-02"), d("2026-02-06"))
                .is_empty()
        );
    }

    #[test]
    fn calendar_files_are_checked() {
        let data = CalendarData::kazakhstan();
        assert_eq!(data.country, "KZ");
        assert!(
            data.years[&2026]
                .sources
                .iter()
                .any(|s| s.url.as_deref().is_some_and(|u| u.contains("taspanews.kz")))
        );
        let ok = CalendarData::parse(
            "[years.2028]\nholidays = [{ date = 2028-01-01, name = \"New Year\" }]\nworking_days = [{ date = \"2028-01-08\" }]\n",
        )
        .unwrap();
        let c = Calendar::from_data(&ok, &[], &[d("2028-01-10")], &[]);
        assert!(c.is_working_day(d("2028-01-08")));
        assert!(!c.is_working_day(d("2028-01-10")));
        assert!(c.covers(2028) && !c.covers(2027));
        for (bad, want) in [
            (
                "[years.2028]\nholidays = [{ date = 2029-01-01 }]\n",
                "is not in 2028",
            ),
            (
                "[years.2028]\nworking_days = [{ date = 2028-01-10 }]\n",
                "is a Mon",
            ),
            ("[years.2028]\nholiday = []\n", "unknown field"),
            (
                "[years.2028]\nholidays = [{ date = \"1 May\" }]\n",
                "not a date",
            ),
        ] {
            let e = CalendarData::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_years_from_december() {
        let c = Calendar::kazakhstan();
        assert!(c.missing_years(d("2026-11-30")).is_empty());
        assert!(c.missing_years(d("2027-11-30")).is_empty());
        assert_eq!(c.missing_years(d("2027-12-01")), [2028]);
        assert_eq!(c.missing_years(d("2028-12-31")), [2028, 2029]);
        assert_eq!(c.missing_years(d("2028-01-01")), [2028]);
    }

    #[test]
    fn the_shipped_calendar_is_current() {
        // A maintenance signal on purpose: from 1 December the shipped file
        // must have the next year (as the gateway asks its operators).
        let today = chrono::Utc::now().date_naive();
        assert_eq!(
            Calendar::kazakhstan().missing_years(today),
            Vec::<i32>::new(),
            "add the missing years to data/calendar/kz.toml"
        );
    }

    #[test]
    fn coverage_names_missing_years() {
        let c = Calendar::kazakhstan();
        assert!(c.covers(2026) && c.covers(2027));
        assert!(!c.covers(2028));
    }
}

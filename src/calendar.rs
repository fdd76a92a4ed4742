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
//! The shipped lists cover 2026 and 2027 (sources: the law above, the Labour
//! Code, the holiday calendar published on egov.kz for 2026; the Kurban Ait
//! dates follow the Islamic calendar as announced by the Spiritual
//! Administration of Muslims of Kazakhstan). Holiday laws, religious dates
//! and transfer decrees change every year: the operator must review
//! `[registration]` yearly and add the next year's dates. The gateway warns
//! when a year has no holidays configured.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};

/// Public holidays of Kazakhstan that move off weekends (year, month, day).
const KZ_HOLIDAYS: &[(i32, u32, u32)] = &[
    // 2026
    (2026, 1, 1), // New Year
    (2026, 1, 2),
    (2026, 3, 8),  // International Women's Day (Sunday: Monday 9 March off)
    (2026, 3, 21), // Nauryz (21 and 22 fall on the weekend: 24 and 25 off)
    (2026, 3, 22),
    (2026, 3, 23),
    (2026, 5, 1),   // Unity Day of the people of Kazakhstan
    (2026, 5, 7),   // Defender of the Fatherland Day
    (2026, 5, 9),   // Victory Day (Saturday: Monday 11 May off)
    (2026, 7, 6),   // Capital Day
    (2026, 8, 30),  // Constitution Day (Sunday: Monday 31 August off)
    (2026, 10, 25), // Republic Day (Sunday: Monday 26 October off)
    (2026, 12, 16), // Independence Day
    // 2027
    (2027, 1, 1),
    (2027, 1, 2), // Saturday: Monday 4 January off
    (2027, 3, 8),
    (2027, 3, 21), // Sunday: Wednesday 24 March off
    (2027, 3, 22),
    (2027, 3, 23),
    (2027, 5, 1), // Saturday: Monday 3 May off
    (2027, 5, 7),
    (2027, 5, 9), // Sunday: Monday 10 May off
    (2027, 7, 6),
    (2027, 8, 30),
    (2027, 10, 25),
    (2027, 12, 16),
];

/// Religious holidays of Kazakhstan: days off that do not move.
const KZ_DAYS_OFF: &[(i32, u32, u32)] = &[
    (2026, 1, 7),  // Orthodox Christmas
    (2026, 5, 27), // Kurban Ait, first day
    (2027, 1, 7),
    (2027, 5, 16), // Kurban Ait, first day (a Sunday: no extra day off)
];

fn dates(list: &[(i32, u32, u32)]) -> Vec<NaiveDate> {
    list.iter()
        .filter_map(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d))
        .collect()
}

/// The shipped default `holidays`: Kazakhstan, 2026 and 2027.
pub fn kazakhstan_holidays() -> Vec<NaiveDate> {
    dates(KZ_HOLIDAYS)
}

/// The shipped default `days_off`: Kazakhstan's religious holidays, 2026 and 2027.
pub fn kazakhstan_days_off() -> Vec<NaiveDate> {
    dates(KZ_DAYS_OFF)
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Which days are working days.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Every day off other than an ordinary weekend: holidays, the days they
    /// moved to, and fixed days off.
    off: BTreeSet<NaiveDate>,
    /// Weekend days that are working days.
    working: BTreeSet<NaiveDate>,
    /// Years for which at least one holiday is configured.
    years: BTreeSet<i32>,
}

impl Calendar {
    /// Builds a calendar from moving holidays, fixed days off and weekend
    /// working days. A date that is both a day off and a working day is a day off.
    pub fn new(holidays: &[NaiveDate], days_off: &[NaiveDate], working_days: &[NaiveDate]) -> Self {
        let mut cal = Calendar {
            off: holidays.iter().chain(days_off).copied().collect(),
            working: working_days.iter().copied().collect(),
            years: holidays.iter().chain(days_off).map(|d| d.year()).collect(),
        };
        let mut moving: Vec<NaiveDate> = holidays.to_vec();
        moving.sort_unstable();
        moving.dedup();
        // In date order, so that two weekend holidays in a row (Nauryz 2026)
        // move to two successive working days.
        for h in moving {
            if !is_weekend(h) || cal.working.contains(&h) {
                continue;
            }
            let mut d = h;
            while let Some(next) = d.succ_opt() {
                d = next;
                if cal.is_working_day(d) {
                    cal.off.insert(d);
                    break;
                }
            }
        }
        cal
    }

    /// The shipped default: Kazakhstan, 2026 and 2027.
    pub fn kazakhstan() -> Self {
        Calendar::new(&kazakhstan_holidays(), &kazakhstan_days_off(), &[])
    }

    /// True on a working day.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        !self.off.contains(&d) && (!is_weekend(d) || self.working.contains(&d))
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

    /// Days off other than ordinary weekends within `year`, moved days included.
    pub fn days_off_in(&self, year: i32) -> Vec<NaiveDate> {
        self.off
            .iter()
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
                "2026-08-31",
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
    fn coverage_names_missing_years() {
        let c = Calendar::kazakhstan();
        assert!(c.covers(2026) && c.covers(2027));
        assert!(!c.covers(2028));
    }
}

//! Reports for the authorised body: what happened in a period, as a summary
//! (counts) and rows, in JSON or CSV. Pure functions over records: the admin
//! API reads the records from the store and the CLI only formats, so every
//! count here is unit-tested without a gateway.
//!
//! One file per report: [`applications`], [`suspensions`], [`listings`],
//! [`users`], [`disconnections`]; [`csv`] writes any of them as RFC 4180 CSV.

pub mod applications;
pub mod csv;
pub mod disconnections;
pub mod listings;
pub mod suspensions;
pub mod users;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::model::applications::ApplicationRecord;
use crate::model::domains::DomainRecord;
use crate::model::listings::GatewayListing;
use crate::model::servers::ServerSuspension;
use crate::model::suspensions::SuspensionRecord;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// Applications received in the period and their decisions.
    Applications,
    /// Suspensions started in the period: cause, scope, duration.
    Suspensions,
    /// Listings of the gateway's addresses open during the period.
    Listings,
    /// Connected users (domains) at the period's end, by category.
    Users,
    /// Domains disconnected (or to be) in the period.
    Disconnections,
}

impl ReportKind {
    /// Every report, in the order the CLI lists them.
    pub const ALL: [ReportKind; 5] = [
        ReportKind::Applications,
        ReportKind::Suspensions,
        ReportKind::Listings,
        ReportKind::Users,
        ReportKind::Disconnections,
    ];

    /// Its name in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Applications => "applications",
            ReportKind::Suspensions => "suspensions",
            ReportKind::Listings => "listings",
            ReportKind::Users => "users",
            ReportKind::Disconnections => "disconnections",
        }
    }
}

impl std::str::FromStr for ReportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ReportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a report (applications, suspensions, listings, users, disconnections)"
                )
            })
    }
}

/// A period of local dates, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl Period {
    /// A period from `from` to `to`; refused when `to` is before `from`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period, String> {
        if to < from {
            return Err(format!("the period ends ({to}) before it starts ({from})"));
        }
        Ok(Period { from, to })
    }

    /// True when `d` is within the period.
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

/// When and where a report is made.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The period reported on.
    pub period: Period,
    /// Now (durations of what has not ended run to now).
    pub now: DateTime<Utc>,
    /// The operator's UTC offset: times fall on local dates.
    pub offset: FixedOffset,
}

impl Context {
    /// The local date of an instant.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.offset).date_naive()
    }

    /// Today's local date.
    pub fn today(&self) -> NaiveDate {
        self.local_date(self.now)
    }

    /// True when instant `t` falls on a day of the period.
    pub fn in_period(&self, t: DateTime<Utc>) -> bool {
        self.period.contains(self.local_date(t))
    }
}

/// The records reports are made from (all of them; each report picks).
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    /// Every application.
    pub applications: &'a [ApplicationRecord],
    /// Every domain and sender suspension.
    pub suspensions: &'a [SuspensionRecord],
    /// Every server suspension.
    pub server_suspensions: &'a [ServerSuspension],
    /// Every gateway listing.
    pub listings: &'a [GatewayListing],
    /// Every domain.
    pub domains: &'a [DomainRecord],
}

/// One report: summary counts and rows under named columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Which report.
    pub report: ReportKind,
    /// The period.
    pub from: NaiveDate,
    /// The period's last day.
    pub to: NaiveDate,
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// Counts (and a few durations) by name.
    pub summary: BTreeMap<String, Value>,
    /// The rows' columns, in order (the CSV header).
    pub columns: Vec<&'static str>,
    /// The rows, each an object with the columns as keys.
    pub rows: Vec<serde_json::Map<String, Value>>,
}

impl Report {
    fn new(kind: ReportKind, cx: &Context, columns: &[&'static str]) -> Report {
        Report {
            report: kind,
            from: cx.period.from,
            to: cx.period.to,
            generated_at: cx.now,
            summary: BTreeMap::new(),
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: `values` in the order of `columns`.
    fn push(&mut self, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns.len());
        let row = self
            .columns
            .iter()
            .map(|c| c.to_string())
            .zip(values)
            .collect();
        self.rows.push(row);
    }

    /// Adds one to the count `key`.
    fn count(&mut self, key: impl Into<String>) {
        let e = self.summary.entry(key.into()).or_insert(Value::from(0u64));
        *e = Value::from(e.as_u64().unwrap_or(0) + 1);
    }

    /// Sets the count `key` (so that zero counts show too).
    fn set(&mut self, key: impl Into<String>, v: impl Into<Value>) {
        self.summary.insert(key.into(), v.into());
    }

    /// The report as CSV: a header row, then the rows (RFC 4180).
    pub fn to_csv(&self) -> String {
        csv::write(&self.columns, &self.rows)
    }
}

/// Makes report `kind` over `records`.
pub fn build(kind: ReportKind, records: &Records<'_>, cx: &Context) -> Report {
    match kind {
        ReportKind::Applications => applications::report(records.applications, cx),
        ReportKind::Suspensions => {
            suspensions::report(records.suspensions, records.server_suspensions, cx)
        }
        ReportKind::Listings => listings::report(records.listings, cx),
        ReportKind::Users => users::report(records.domains, records.applications, cx),
        ReportKind::Disconnections => disconnections::report(records.domains, cx),
    }
}

/// Hours between two instants, to one decimal.
fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let h = (to - from).num_seconds().max(0) as f64 / 3600.0;
    (h * 10.0).round() / 10.0
}

/// An optional value as JSON (null when absent).
fn opt<T: Serialize>(v: Option<T>) -> Value {
    v.map_or(Value::Null, |v| {
        serde_json::to_value(v).unwrap_or(Value::Null)
    })
}

/// Any value as JSON.
fn val<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
pub(crate) mod fixtures;

//! `ugem report KIND --from DATE --to DATE [--format text|csv|json]`: the
//! reports for the authorised body, fetched from the admin API as JSON and
//! printed as it is, as CSV, or as a summary and a table.

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::CliError;
use crate::admin::client::AdminClient;
use crate::registry::reports::csv;

/// Which report (`ugem report KIND`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportName {
    /// Applications received in the period: decided on time or late, approved, rejected, pending, overdue.
    Applications,
    /// Suspensions started in the period: by cause (auto, staff), scope, duration.
    Suspensions,
    /// Listings of the gateway's addresses on blocklists open during the period.
    Listings,
    /// Connected users at the period's end by category (the registry export).
    Users,
    /// Domains disconnected, or to be disconnected, in the period.
    Disconnections,
}

/// How to print a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// The summary, then the rows as a table.
    Text,
    /// RFC 4180 CSV: a header row, then the rows.
    Csv,
    /// The API's JSON: summary and rows.
    Json,
}

/// `ugem report ...`
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Which report.
    #[arg(value_enum)]
    pub kind: ReportName,
    /// First day of the period (YYYY-MM-DD, local date).
    #[arg(long)]
    pub from: chrono::NaiveDate,
    /// Last day of the period, included (YYYY-MM-DD).
    #[arg(long)]
    pub to: chrono::NaiveDate,
    /// text (default), csv or json (as --json).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Fetches and prints one report.
pub fn run(c: &AdminClient, a: ReportArgs, as_json: bool) -> Result<(), CliError> {
    let kind = a
        .kind
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let v = c.get(&format!(
        "/api/v1/reports/{kind}?from={}&to={}&format=json",
        a.from, a.to
    ))?;
    let format = if as_json {
        ReportFormat::Json
    } else {
        a.format
    };
    match format {
        ReportFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        ReportFormat::Csv => print!("{}", csv::from_json(&v).map_err(CliError::Usage)?),
        ReportFormat::Text => print_text(&v),
    }
    Ok(())
}

fn print_text(v: &Value) {
    println!(
        "report {} from {} to {}",
        csv::cell(&v["report"]),
        csv::cell(&v["from"]),
        csv::cell(&v["to"])
    );
    if let Some(s) = v["summary"].as_object() {
        for (k, n) in s {
            println!("  {k:<32} {}", csv::cell(n));
        }
    }
    let cols: Vec<&str> = v["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let rows: Vec<Vec<String>> = v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            cols.iter()
                .map(|c| {
                    let t = csv::cell(&r[*c]);
                    if t.is_empty() { "-".into() } else { t }
                })
                .collect()
        })
        .collect();
    if rows.is_empty() {
        println!("(no rows)");
        return;
    }
    let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count()).min(40);
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(*w).collect();
                format!("{c:<w$}")
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    println!();
    line(cols.iter().map(|c| c.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

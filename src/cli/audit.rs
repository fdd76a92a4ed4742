//! `ugem audit`: the audit trail filtered by actor, action, target and
//! period, listed or exported whole as CSV or JSON.

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::{CliError, Output, query};
use crate::admin::client::AdminClient;
use crate::model::audit::AuditRecord;

/// How `ugem audit` prints the filtered set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// Every matching record as CSV with a header line.
    Csv,
    /// Every matching record as a JSON list.
    Json,
}

/// `ugem audit [--actor X] [--action Y] [--target Z] [--from DATE] [--to DATE] [--format csv|json]`
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Newest N records (default 50; with --format, every match).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only this actor: a token name, or `auto` for the gateway's own decisions.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (`domain.update`), or a family (`domain.*`).
    #[arg(long)]
    pub action: Option<String>,
    /// Only this target (a domain, an address, `application #3`).
    #[arg(long)]
    pub target: Option<String>,
    /// From this local date (YYYY-MM-DD, `[registration] utc_offset`) or RFC 3339 time.
    #[arg(long)]
    pub from: Option<String>,
    /// Up to the end of this local date, or before this RFC 3339 time.
    #[arg(long)]
    pub to: Option<String>,
    /// Export the whole filtered set: csv or json.
    #[arg(long, value_enum)]
    pub format: Option<AuditFormat>,
}

/// The table `ugem audit` prints.
const COLUMNS: &[(&str, &str)] = &[
    ("SEQ", "/seq"),
    ("AT", "/at"),
    ("ACTOR", "/actor"),
    ("ACTION", "/action"),
    ("TARGET", "/target"),
    ("OUTCOME", "/outcome"),
    ("REASON", "/reason"),
];

/// Runs `ugem audit`: a table (or `--json`), or with `--format` the export,
/// printed as is; `None` when it printed already.
pub fn run(c: &AdminClient, a: AuditArgs) -> Result<Option<Output>, CliError> {
    let limit = match (a.limit, a.format) {
        (Some(n), _) => Some(n),
        (None, None) => Some(50),
        (None, Some(_)) => None,
    };
    let path = format!(
        "/api/v1/audit{}",
        query(&[
            ("actor", a.actor),
            ("action", a.action),
            ("target", a.target),
            ("from", a.from),
            ("to", a.to),
            ("limit", limit.map(|n| n.to_string())),
            ("format", a.format.map(|_| "json".to_string())),
        ])
    );
    let v = c.get(&path)?;
    match a.format {
        None => Ok(Some(Output::Table(v, COLUMNS))),
        Some(AuditFormat::Json) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(None)
        }
        Some(AuditFormat::Csv) => {
            let records: Vec<AuditRecord> = serde_json::from_value(Value::clone(&v))
                .map_err(|e| CliError::Answer(format!("unexpected audit answer: {e}")))?;
            print!("{}", crate::admin::audit_csv::to_csv(&records));
            Ok(None)
        }
    }
}

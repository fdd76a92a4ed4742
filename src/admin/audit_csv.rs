//! The audit trail as CSV (RFC 4180), for an inspection's spreadsheet:
//! written by the API (`GET /api/v1/audit?format=csv`) and by `ugem audit
//! --format csv`.

use crate::model::audit::AuditRecord;

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 11] = [
    "seq", "at", "actor", "action", "target", "client", "outcome", "count", "reason", "before",
    "after",
];

/// One CSV field, quoted when it must be (RFC 4180); a leading `=`, `+`,
/// `-` or `@` gets a `'` so that a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The records as CSV with a header line, CRLF line ends.
pub fn to_csv(records: &[AuditRecord]) -> String {
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for r in records {
        let row = [
            r.seq.to_string(),
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            r.actor.clone(),
            r.action.clone(),
            r.target.clone(),
            r.client.clone().unwrap_or_default(),
            r.outcome.clone(),
            r.count.to_string(),
            r.reason.clone().unwrap_or_default(),
            json(&r.before),
            json(&r.after),
        ];
        let row: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_it_must_and_defuses_formulas() {
        let mut r = AuditRecord::auto(
            "2026-03-02T10:00:00Z".parse().unwrap(),
            "domain.update",
            "a.example.kz",
            "moved, \"new\" server",
        )
        .change(
            serde_json::json!({"servers": ["192.0.2.1/32"]}),
            serde_json::json!({"servers": ["192.0.2.2/32"]}),
        );
        r.seq = 7;
        r.client = Some("=cmd".into());
        let csv = to_csv(&[r]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "7,2026-03-02T10:00:00Z,auto,domain.update,a.example.kz,'=cmd,ok,1,\"moved, \"\"new\"\" server\",\"{\"\"servers\"\":[\"\"192.0.2.1/32\"\"]}\",\"{\"\"servers\"\":[\"\"192.0.2.2/32\"\"]}\""
        );
    }
}

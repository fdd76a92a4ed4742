//! The audit trail: filtered by actor, action, target and period, and
//! exported as JSON or CSV for an inspection.

use axum::http::header;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

use super::*;
use crate::admin::audit_csv::to_csv;
use crate::model::audit::AuditFilter;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Newest N records (default 100; no default with `format`).
    pub limit: Option<usize>,
    /// Only this actor (token name or `auto`).
    pub actor: Option<String>,
    /// Only this action, or a family (`domain.` / `domain.*`).
    pub action: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// From this time (RFC 3339) or the start of this local date.
    pub from: Option<String>,
    /// Before this time (RFC 3339) or up to the end of this local date.
    pub to: Option<String>,
    /// `json` or `csv`: the whole filtered set as a file.
    pub format: Option<String>,
}

/// How the filtered set is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The API's JSON list (at most `limit`, default 100).
    Listing,
    /// Every match, JSON.
    Json,
    /// Every match, CSV (RFC 4180).
    Csv,
}

/// A bound of the period: an instant, or a local date (`end`: the instant
/// the date ends, so `--to` includes it).
fn bound(s: &str, offset: FixedOffset, end: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "`{s}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time"
        ))
    })?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    d.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(offset).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ApiError::bad_request(format!("`{s}`: no such local date")))
}

impl AuditQuery {
    /// The store's filter and the format, checked.
    fn parse(self, offset: FixedOffset) -> Result<(AuditFilter, Format), ApiError> {
        let format = match self.format.as_deref() {
            None => Format::Listing,
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(f) => {
                return Err(ApiError::bad_request(format!("format `{f}`: json or csv")));
            }
        };
        let from = self.from.map(|s| bound(&s, offset, false)).transpose()?;
        let to = self.to.map(|s| bound(&s, offset, true)).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(ApiError::bad_request("the period ends before it starts"));
        }
        let limit = match (self.limit, format) {
            (Some(n), _) => Some(n),
            (None, Format::Listing) => Some(100),
            (None, _) => None,
        };
        let filter = AuditFilter {
            actor: self.actor.filter(|s| !s.is_empty()),
            action: self.action.filter(|s| !s.is_empty()),
            target: self.target.filter(|s| !s.is_empty()),
            from,
            to,
            limit,
        };
        Ok((filter, format))
    }
}

pub(super) async fn list_audit(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<AuditQuery>,
) -> Result<axum::response::Response, ApiError> {
    let (filter, format) = q.parse(st.cfg().registration.utc_offset.0)?;
    let records = st.audit.query_audit(&filter).await?;
    Ok(match format {
        Format::Listing | Format::Json => Json(records).into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
            ],
            to_csv(&records),
        )
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_bound_is_local_and_to_includes_its_day() {
        let kz = FixedOffset::east_opt(5 * 3600).unwrap();
        let from = bound("2026-03-02", kz, false).unwrap();
        let to = bound("2026-03-02", kz, true).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-03-01T19:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-03-02T19:00:00+00:00");
        assert!(bound("yesterday", kz, false).is_err());
        let q = AuditQuery {
            from: Some("2026-03-03".into()),
            to: Some("2026-03-02".into()),
            ..Default::default()
        };
        assert!(q.parse(kz).is_err());
    }
}

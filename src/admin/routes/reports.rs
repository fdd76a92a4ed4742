//! `GET /api/v1/reports/{kind}`: reports for the authorised body over a
//! period, as JSON (summary and rows) or CSV. The handler only reads the
//! records; `registry::reports` makes the report.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed};
use crate::registry::reports::{self, Context, Period, Records, ReportKind};

/// Query of `GET /api/v1/reports/{kind}`.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    /// First day, YYYY-MM-DD (local date).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD, included.
    #[serde(default)]
    pub to: Option<String>,
    /// json (default) | csv
    #[serde(default)]
    pub format: Option<String>,
}

fn date(key: &str, v: Option<&str>) -> Result<chrono::NaiveDate, ApiError> {
    let v = v
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("`{key}` is required (YYYY-MM-DD)")))?;
    v.parse()
        .map_err(|_| ApiError::bad_request(format!("{key}: `{v}` is not a date like 2026-03-31")))
}

pub(super) async fn report(
    State(st): State<AdminState>,
    _: Authed,
    Path(kind): Path<String>,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let kind: ReportKind = kind.parse().map_err(ApiError::bad_request)?;
    let period = Period::new(
        date("from", q.from.as_deref())?,
        date("to", q.to.as_deref())?,
    )
    .map_err(ApiError::bad_request)?;
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" | "" => false,
        "csv" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "format: `{other}` is not json or csv"
            )));
        }
    };
    // Only the records the report reads.
    let store = &st.audit;
    let (mut applications, mut suspensions, mut server_suspensions) = (vec![], vec![], vec![]);
    let (mut listings, mut domains) = (vec![], vec![]);
    match kind {
        ReportKind::Applications => applications = store.list_applications().await?,
        ReportKind::Suspensions => {
            suspensions = store.list_suspensions().await?;
            server_suspensions = store.list_server_suspensions().await?;
        }
        ReportKind::Listings => listings = store.list_listings().await?,
        ReportKind::Users => {
            domains = store.list_domains().await?;
            applications = store.list_applications().await?;
        }
        ReportKind::Disconnections => domains = store.list_domains().await?,
    }
    let records = Records {
        applications: &applications,
        suspensions: &suspensions,
        server_suspensions: &server_suspensions,
        listings: &listings,
        domains: &domains,
    };
    let cx = Context {
        period,
        now: chrono::Utc::now(),
        offset: st.cfg().registration.utc_offset.0,
    };
    let report = reports::build(kind, &records, &cx);
    if csv {
        let name = format!(
            "attachment; filename=\"ugem-{}-{}-{}.csv\"",
            kind.as_str(),
            period.from,
            period.to
        );
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, name),
            ],
            report.to_csv(),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

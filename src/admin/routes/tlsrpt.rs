//! `POST /api/v1/tlsrpt/send`: sends one day's TLS reports now (RFC 8460),
//! as the daily run would; for staff who do not want to wait, and tests.
//! Admins only, audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::NaiveDate;
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed, JsonBody, audited};
use crate::delivery::tlsrpt::send;

/// The body: the UTC day to send (default yesterday).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    day: Option<NaiveDate>,
}

/// 200 with what became of each policy domain's report.
pub(super) async fn send_reports(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    // A malformed body is audited as the call's error, like any other.
    let parsed = body.or_default::<SendBody>();
    let day = parsed
        .as_ref()
        .ok()
        .and_then(|b| b.day)
        .unwrap_or(yesterday);
    let st2 = st.clone();
    audited(&st, &who, format!("day {day}"), |_| async move {
        parsed?;
        let cfg = st2.live.current();
        if !cfg.tlsrpt.enabled {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                kind: "disabled",
                message: "TLS reporting is off ([tlsrpt] enabled = false)".into(),
            });
        }
        let resolver =
            send::resolver_for(&cfg).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let sent = send::send_day(&cfg, &st2.store, &st2.queue, &resolver, day)
            .await
            .map_err(|e| ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unavailable",
                message: e.to_string(),
            })?;
        Ok(Json(serde_json::json!({ "day": day, "reports": sent })))
    })
    .await
}

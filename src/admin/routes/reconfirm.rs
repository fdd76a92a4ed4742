//! The yearly re-confirmation of domains' data, over HTTP: the overdue
//! list for staff, and staff recording a confirmation (audited).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed, JsonBody, audited};
use super::parse_domain;
use crate::registry::reconfirm::{cycle, overdue};

/// The gateway's local date.
fn today(st: &AdminState) -> NaiveDate {
    Utc::now()
        .with_timezone(&st.cfg().registration.utc_offset.0)
        .date_naive()
}

/// `GET /api/v1/reconfirm-due`: the domains whose yearly confirmation is
/// due or overdue, earliest first.
pub(super) async fn due(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let cfg = st.cfg();
    let domains = st.registry.list();
    let list = overdue(
        domains.iter().map(|d| d.as_ref()),
        cfg.registration.reconfirm_every.0,
        cfg.registration.utc_offset.0,
        today(&st),
    );
    Ok(Json(list))
}

/// Body of `POST /api/v1/domains/{name}/confirm`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The local date of the contacts' confirmation (default today).
    #[serde(default)]
    pub on: Option<NaiveDate>,
}

/// `POST /api/v1/domains/{name}/confirm`: the contacts confirmed the
/// domain's data; the next cycle counts from that date.
pub(super) async fn confirm(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let b = body.or_default::<ConfirmBody>();
    let today = today(&st);
    let target = match &b {
        Ok(b) => format!("{name}: confirmed on {}", b.on.unwrap_or(today)),
        Err(_) => name.clone(),
    };
    let (reg, cfg) = (st.registry.clone(), st.cfg());
    let out = audited(&st, &who, target, move |caller| async move {
        let b = b?;
        let domain = parse_domain(&name)?;
        let on = b.on.unwrap_or(today);
        let rec = reg.confirm_domain(&domain, on, today, &caller.name).await?;
        tracing::info!(domain = %domain, on = %on, actor = %caller.name, "domain data confirmed");
        let c = cycle(
            &rec,
            cfg.registration.reconfirm_every.0,
            cfg.registration.utc_offset.0,
        );
        let mut v = serde_json::to_value(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
        v["next_due"] = serde_json::json!(c.due);
        Ok(v)
    })
    .await?;
    Ok(Json(out))
}

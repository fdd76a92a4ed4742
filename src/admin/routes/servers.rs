//! Servers the registry does not know, over HTTP: the addresses seen
//! sending as a domain, and staff's time-limited allowance for one.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed, JsonBody, audited};
use super::parse_domain;

/// `GET /api/v1/domains/{name}/unregistered`: the addresses seen and the
/// allowances in force.
pub(super) async fn list(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (domain, rec) = super::registered(&st, &name)?;
    let seen = st.registry.unregistered(&domain).await?;
    let now = Utc::now();
    let allowed: Vec<_> = rec
        .allowed_servers
        .iter()
        .filter(|a| a.until > now)
        .collect();
    Ok(Json(serde_json::json!({
        "domain": domain,
        "unregistered": seen,
        "allowed_servers": allowed,
    })))
}

/// Body of `POST /api/v1/domains/{name}/allow-server`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowBody {
    /// The address.
    pub address: IpAddr,
    /// The last local date it may relay.
    pub until: NaiveDate,
    /// Why.
    pub reason: String,
}

/// `POST /api/v1/domains/{name}/allow-server`: one address may relay as
/// the domain until the end of a local date.
pub(super) async fn allow(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let b = body.required::<AllowBody>();
    let target = match &b {
        Ok(b) => format!("{name}: {} until {}: {}", b.address, b.until, b.reason),
        Err(_) => name.clone(),
    };
    let (reg, cfg, note) = (st.registry.clone(), st.cfg(), who.note.clone());
    let rec = audited(&st, &who, target, move |caller| async move {
        let b = b?;
        note.reason(&b.reason);
        let domain = parse_domain(&name)?;
        // The end of that local day.
        let until = b
            .until
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| t.and_local_timezone(cfg.registration.utc_offset.0).single())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ApiError::bad_request(format!("{} is not a usable date", b.until)))?;
        let rec = reg
            .allow_server(&domain, b.address, until, &b.reason, &caller.name)
            .await?;
        tracing::warn!(domain = %domain, address = %b.address, until = %until, actor = %caller.name, "unregistered server allowed for a while");
        Ok(rec)
    })
    .await?;
    Ok(Json(rec))
}

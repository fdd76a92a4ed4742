//! `/api/v1/servers`: suspension of one server address over HTTP.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed, JsonBody, audited};
use super::need_reason;
use super::suspensions::{RestoreBody, held_mail_choice};
use crate::governor::servers::ServerError;
use crate::registry::RestoreRequest;

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Registry(r) => r.into(),
            ServerError::Queue(q) => q.into(),
        }
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("`{s}` is not an IP address")))
}

/// `POST /api/v1/servers/{ip}/suspend`: `{reason}`.
pub(super) async fn suspend(
    State(st): State<AdminState>,
    who: Authed,
    Path(ip): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (gov, note) = (st.governor.clone(), who.note.clone());
    let out = audited(&st, &who, ip.clone(), move |caller| async move {
        let ip = parse_ip(&ip)?;
        let reason = need_reason(&body)?;
        note.reason(&reason);
        let out = gov.suspend_server(ip, &reason, &caller.name).await?;
        // Refused (409) when suspended already: it was active before.
        note.change(
            serde_json::json!({"status": "active"}),
            serde_json::json!({"status": "suspended"}),
        );
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

/// `POST /api/v1/servers/{ip}/restore`: `{reason}` (optional); the held
/// mail is released (deleting it is not offered: it is several agencies').
pub(super) async fn restore(
    State(st): State<AdminState>,
    who: Authed,
    Path(ip): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (gov, note) = (st.governor.clone(), who.note.clone());
    let out = audited(&st, &who, ip.clone(), move |caller| async move {
        let ip = parse_ip(&ip)?;
        let b: RestoreBody = body.or_default()?;
        if let Some(r) = &b.reason {
            note.reason(r);
        }
        if !held_mail_choice(&b)? {
            return Err(ApiError::bad_request(
                "a server's held mail is released on restore; delete messages with the queue tools",
            ));
        }
        let req = RestoreRequest {
            actor: caller.name.clone(),
            reason: b.reason.clone(),
            held_mail: "released".into(),
        };
        let out = gov.restore_server(ip, req).await?;
        note.change(
            serde_json::json!({"status": "suspended"}),
            serde_json::json!({"status": "active", "held_mail": "released"}),
        );
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

/// Query of `GET /api/v1/servers/suspensions`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Ended ones too.
    #[serde(default)]
    pub history: bool,
}

/// `GET /api/v1/servers/suspensions?history=`.
pub(super) async fn list(
    State(st): State<AdminState>,
    _: Authed,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(st.registry.server_suspensions(q.history).await?))
}

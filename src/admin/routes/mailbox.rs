//! The postmaster's local mailbox (`server.postmaster_mailbox`):
//! `/api/v1/mailbox` lists it, `/api/v1/mailbox/{id}` reads or deletes one
//! message. Operators only; reading and deleting are audited, as for queued
//! mail: notices name agencies' staff and their addresses.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde_json::json;

use super::super::{AdminState, ApiError, Authed, audited_blocking};
use crate::mailbox::{Mailbox, MailboxError};

impl From<MailboxError> for ApiError {
    fn from(e: MailboxError) -> Self {
        match e {
            MailboxError::NotFound(_) => ApiError::not_found(e.to_string()),
            MailboxError::BadId(_) => ApiError::bad_request(e.to_string()),
            MailboxError::Io { .. } => ApiError::internal(e.to_string()),
        }
    }
}

fn mailbox(st: &AdminState) -> Mailbox {
    Mailbox::new(&st.cfg().server.data_dir)
}

/// `GET /api/v1/mailbox`: every message, newest first; `enabled` says
/// whether mail for the postmaster is delivered here now.
pub(super) async fn list(State(st): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let mb = mailbox(&st);
    let messages = tokio::task::spawn_blocking(move || mb.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "enabled": st.cfg().server.postmaster_mailbox,
        "postmaster": st.cfg().server.postmaster.to_string(),
        "messages": messages,
    })))
}

/// `GET /api/v1/mailbox/{id}`: one message's whole text (marked seen).
pub(super) async fn show(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let mb = mailbox(&st);
    let answer = audited_blocking(&st, &who, id.clone(), move |_| {
        let data = mb.read(&id)?;
        Ok(json!({
            "id": id,
            "size": data.len(),
            "text": String::from_utf8_lossy(&data),
        }))
    })
    .await?;
    Ok(Json(answer))
}

/// `DELETE /api/v1/mailbox/{id}`.
pub(super) async fn delete(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let mb = mailbox(&st);
    let answer = audited_blocking(&st, &who, id.clone(), move |_| {
        mb.delete(&id)?;
        Ok(json!({ "deleted": id }))
    })
    .await?;
    Ok(Json(answer))
}

//! Suspensions: the staff suspend/restore shared by domains and senders, and the list.

use super::*;
use crate::admin::AuditNote;

/// Body of restore calls.
#[derive(Debug, Default, Deserialize)]
pub struct RestoreBody {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// `release` (default) or `delete` the held mail.
    #[serde(default)]
    pub held_mail: Option<String>,
}

pub(super) fn held_mail_choice(b: &RestoreBody) -> Result<bool, ApiError> {
    match b.held_mail.as_deref() {
        None | Some("release") | Some("released") => Ok(true),
        Some("delete") | Some("deleted") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "held_mail must be `release` or `delete`, not `{other}`"
        ))),
    }
}

/// Staff suspend a scope, with every effect (the governor's one home for
/// them: record, held mail, notices, webhooks).
pub(super) async fn staff_suspend(
    st: &AdminState,
    scope: &Scope,
    actor: &str,
    reason: &str,
    note: &AuditNote,
) -> Result<SuspensionRecord, ApiError> {
    note.reason(reason);
    let before = st.registry.scope_state(scope);
    let req = SuspendRequest::manual(actor, reason);
    let (rec, held) = st.governor.suspend_scope(scope, req).await?;
    let mut after = st.registry.scope_state(scope);
    after["held_messages"] = held.into();
    note.change(before, after);
    Ok(rec)
}

/// Staff restore a scope: the record closed, its held mail released or
/// deleted as `body` says, and the notices. Returns the ended suspension
/// (when on record) and, for a domain, its record.
pub(super) async fn staff_restore(
    st: &AdminState,
    scope: &Scope,
    actor: &str,
    body: &RestoreBody,
    note: &AuditNote,
) -> Result<(Option<SuspensionRecord>, Option<DomainRecord>), ApiError> {
    if let Some(r) = &body.reason {
        note.reason(r);
    }
    let release = held_mail_choice(body)?;
    let before = st.registry.scope_state(scope);
    let req = RestoreRequest {
        actor: actor.to_string(),
        reason: body.reason.clone(),
        held_mail: if release { "released" } else { "deleted" }.into(),
    };
    let r = st.governor.restore_scope(scope, req, release).await?;
    let mut after = st.registry.scope_state(scope);
    after["held_mail"] = if release { "released" } else { "deleted" }.into();
    after["messages"] = r.messages.into();
    note.change(before, after);
    Ok((r.ended, r.domain))
}

/// Query of `GET /api/v1/suspensions`.
#[derive(Debug, Default, Deserialize)]
pub struct SuspensionQuery {
    /// Include ended suspensions.
    #[serde(default)]
    pub history: bool,
}

pub(super) async fn list_suspensions(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<SuspensionQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.registry.suspensions(q.history).await?))
}

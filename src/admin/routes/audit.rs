//! The audit trail.

use super::*;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Newest N records (default 100).
    pub limit: Option<usize>,
}

pub(super) async fn list_audit(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.audit.list_audit(q.limit.unwrap_or(100)).await?))
}

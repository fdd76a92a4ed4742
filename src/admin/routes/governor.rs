//! The governors' state: status and one scope.

use super::*;

/// `GET /api/v1/governor`: counters, throttled scopes, suspension counts.
pub(super) async fn governor_status(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.governor.status()))
}

/// `GET /api/v1/governor/scopes/{scope}`: one scope's detector state
/// ("a@b" for a sender, "b" for a domain).
pub(super) async fn governor_scope(
    State(st): State<AdminState>,
    _: Authed,
    Path(scope): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let sc = if scope.contains('@') {
        Scope::Sender(scope.trim().to_ascii_lowercase())
    } else {
        Scope::Domain(parse_domain(&scope)?)
    };
    st.governor
        .scope_state(&sc)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("{sc} is not tracked")))
}

//! MTA-STS policies in force.

use super::*;

/// `GET /api/v1/mta-sts`: the MTA-STS policies in force for recipient domains.
pub(super) async fn list_mta_sts(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        st.mta_sts.as_ref().map(|m| m.list()).unwrap_or_default(),
    ))
}

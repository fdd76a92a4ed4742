//! Inbound recipient verification: forgetting a cached answer.

use super::*;

/// `DELETE /api/v1/verification/{address}`: drops the cached answer of the
/// domain's server for an inbound recipient.
pub(super) async fn forget_verification(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (v, target) = (st.verifier.clone(), address.clone());
    let out = audited_blocking(&st, &who, address, move |_| {
        let forgotten = v.as_ref().is_some_and(|v| v.forget(&target));
        Ok(serde_json::json!({
            "address": target,
            "forgotten": forgotten,
            "verification": if v.is_some() { "on" } else { "off" },
        }))
    })
    .await?;
    Ok(Json(out))
}

//! The connection log.

use super::*;

pub(super) async fn list_connections(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<ConnectionFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let store = st.store.clone();
    let list = tokio::task::spawn_blocking(move || store.list_connections(&q))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(list))
}

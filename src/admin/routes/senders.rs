//! Senders: suspend, restore, declared limits.

use super::suspensions::{RestoreBody, staff_restore, staff_suspend};
use super::*;

pub(super) async fn suspend_sender(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target, note) = (st.clone(), address.clone(), who.note.clone());
    let rec = audited(&st, &who, address, move |caller| async move {
        staff_suspend(
            &st2,
            &Scope::Sender(target),
            &caller.name,
            &need_reason(&body)?,
            &note,
        )
        .await
    })
    .await?;
    Ok(Json(rec))
}

pub(super) async fn restore_sender(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target, note) = (st.clone(), address.clone(), who.note.clone());
    let rec = audited(&st, &who, address, move |caller| async move {
        let body: RestoreBody = body.or_default()?;
        staff_restore(&st2, &Scope::Sender(target), &caller.name, &body, &note)
            .await?
            .0
            .ok_or_else(|| ApiError::internal("no suspension record after the restore"))
    })
    .await?;
    Ok(Json(rec))
}

/// The domain record of a sender address, if registered.
pub(super) fn sender_domain(
    st: &AdminState,
    address: &str,
) -> Result<std::sync::Arc<crate::model::domains::DomainRecord>, ApiError> {
    let d = address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .ok_or_else(|| ApiError::bad_request(format!("{address:?} is not an address")))?;
    let name = parse_domain(d)?;
    st.registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("domain {name} is not registered")))
}

/// `GET /api/v1/senders/{address}/limits`: the limits in force for a sender.
pub(super) async fn show_sender_limits(
    State(st): State<AdminState>,
    _: Authed,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let address = address.trim().to_ascii_lowercase();
    let rec = sender_domain(&st, &address)?;
    Ok(Json(crate::governor::effective_sender_limits(
        &st.cfg(),
        &rec,
        &address,
    )))
}

/// `PUT /api/v1/senders/{address}/limits`: declares a sender (a bulk sender)
/// with its own limits; it is then bounded by them, not judged on novelty.
pub(super) async fn set_sender_limits(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg();
    let v = audited(&st, &who, address.clone(), move |_| async move {
        let limits: crate::model::domains::SenderLimits = body.required()?;
        let address = address.trim().to_ascii_lowercase();
        let rec = reg.set_sender_limits(&address, Some(limits)).await?;
        Ok(crate::governor::effective_sender_limits(
            &cfg, &rec, &address,
        ))
    })
    .await?;
    Ok(Json(v))
}

/// `DELETE /api/v1/senders/{address}/limits`: withdraws a declaration.
pub(super) async fn clear_sender_limits(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg();
    let v = audited(&st, &who, address.clone(), move |_| async move {
        let address = address.trim().to_ascii_lowercase();
        let rec = reg.set_sender_limits(&address, None).await?;
        Ok(crate::governor::effective_sender_limits(
            &cfg, &rec, &address,
        ))
    })
    .await?;
    Ok(Json(v))
}

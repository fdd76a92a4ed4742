//! Registered domains: list, show, add, suspend, restore, disconnect, limits.

use super::suspensions::{RestoreBody, staff_restore, staff_suspend};
use super::*;

pub(super) async fn list_domains(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let list: Vec<_> = st.registry.list().iter().map(|d| (**d).clone()).collect();
    Ok(Json(list))
}

pub(super) async fn show_domain(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let name = parse_domain(&name)?;
    let snap = st.registry.snapshot();
    let rec = snap
        .domain(&name)
        .ok_or_else(|| ApiError::not_found(format!("domain {name} is not registered")))?;
    let suspension = snap
        .suspension(&Scope::Domain(name.clone()))
        .map(|s| (**s).clone());
    let mut v = serde_json::to_value(&**rec).map_err(|e| ApiError::bad_request(e.to_string()))?;
    v["inbound_route"] = serde_json::json!(rec.inbound_route().map(|r| r.to_string()));
    v["suspension"] = serde_json::to_value(suspension).unwrap_or_default();
    v["advice"] = serde_json::json!(super::dkim::advice(&st, &name).await);
    Ok(Json(v))
}

/// Body of `POST /api/v1/domains`.
#[derive(Debug, Deserialize)]
pub struct AddDomainBody {
    /// The domain.
    #[serde(flatten)]
    pub domain: NewDomain,
    /// Staff accept server ranges wider than `[registration]
    /// widest_server_range_v4`/`_v6`.
    #[serde(default)]
    pub allow_wide_range: bool,
}

pub(super) async fn add_domain(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let parsed = body.required::<AddDomainBody>();
    let target = match &parsed {
        Ok(b) => b.domain.name.to_string(),
        Err(_) => "(invalid request)".into(),
    };
    let reg = st.registry.clone();
    let cfg = st.cfg();
    let rec = audited(&st, &who, target, move |_| async move {
        let b = parsed?;
        crate::registry::check_server_ranges(
            &b.domain.servers,
            b.domain.inbound.as_ref(),
            b.allow_wide_range,
            &cfg.registration,
        )
        .map_err(ApiError::bad_request)?;
        Ok(reg.add_domain(b.domain).await?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(rec)))
}

pub(super) async fn suspend_domain(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), name.clone());
    let rec = audited(&st, &who, name, move |caller| async move {
        let scope = Scope::Domain(parse_domain(&target)?);
        staff_suspend(&st2, &scope, &caller.name, &need_reason(&body)?).await
    })
    .await?;
    Ok(Json(rec))
}

pub(super) async fn restore_domain(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), name.clone());
    let rec = audited(&st, &who, name, move |caller| async move {
        let body: RestoreBody = body.or_default()?;
        let domain = parse_domain(&target)?;
        let (_, rec) = staff_restore(&st2, &Scope::Domain(domain), &caller.name, &body).await?;
        rec.ok_or_else(|| ApiError::internal("no domain record after the restore"))
    })
    .await?;
    Ok(Json(rec))
}

pub(super) async fn disconnect_domain(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let queue = st.queue.clone();
    let cfg = st.cfg();
    let rec = audited(&st, &who, name.clone(), move |_| async move {
        let domain = parse_domain(&name)?;
        let reason = need_reason(&body)?;
        let rec = reg.disconnect_domain(&domain, &reason).await?;
        match cfg.registration.disconnect_queued {
            crate::config::DisconnectQueued::Hold => {
                let held = crate::governor::actions::hold_scope_mail(
                    &queue,
                    &Scope::Domain(domain.clone()),
                    &format!("domain {domain} disconnected: {reason}"),
                )
                .await?;
                tracing::info!(domain = %domain, held, "disconnected domain's queued mail held");
            }
            // Due now: the scheduler sees the domain disconnected and bounces.
            crate::config::DisconnectQueued::Bounce => {
                let d = domain.to_string();
                let released = queue
                    .release_where(move |e| {
                        e.direction == ugem_queue::Direction::Outbound
                            && e.domain.as_deref() == Some(d.as_str())
                    })
                    .await?;
                queue.retry_all(ugem_queue::unix_ms()).await?;
                tracing::info!(domain = %domain, released, "disconnected domain's queued mail due now, to be bounced");
            }
        }
        // The contacts learn of it by mail; a failed notice is reported, not raised.
        let text = crate::notify::notices::domain_disconnected(&cfg, &rec);
        let notice = applications::notify_contacts(&queue, &cfg, &rec.contacts, text).await;
        let mut out = serde_json::to_value(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
        out["notice"] = serde_json::to_value(notice).unwrap_or_default();
        Ok(out)
    })
    .await?;
    Ok(Json(rec))
}

pub(super) async fn show_limits(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let name = parse_domain(&name)?;
    let rec = st
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("domain {name} is not registered")))?;
    Ok(Json(crate::governor::effective_limits(&st.cfg(), &rec)))
}

/// `PUT /api/v1/domains/{name}/limits`: replaces the domain's overrides
/// (an empty object goes back to the `[governor]` defaults).
pub(super) async fn set_limits(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg();
    let v = audited(&st, &who, name.clone(), move |_| async move {
        let domain = parse_domain(&name)?;
        let limits: crate::model::domains::DomainLimits = body.required()?;
        let rec = reg.set_limits(&domain, Some(limits)).await?;
        Ok(crate::governor::effective_limits(&cfg, &rec))
    })
    .await?;
    Ok(Json(v))
}

/// The header From check of a domain: `{enforce, extra_domains}`.
pub(super) async fn show_header_from(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let name = parse_domain(&name)?;
    let snap = st.registry.snapshot();
    let rec = snap
        .domain(&name)
        .ok_or_else(|| ApiError::not_found(format!("domain {name} is not registered")))?;
    Ok(Json(rec.header_from.clone()))
}

/// Sets the header From check of a domain (`{enforce, extra_domains}`).
pub(super) async fn set_header_from(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let v = audited(&st, &who, name.clone(), move |_| async move {
        let domain = parse_domain(&name)?;
        let setting: crate::model::domains::HeaderFrom = body.required()?;
        let rec = reg.set_header_from(&domain, setting).await?;
        Ok(rec.header_from)
    })
    .await?;
    Ok(Json(v))
}

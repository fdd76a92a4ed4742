//! Registered domains: list, show, add, suspend, restore, disconnect, limits.

use super::suspensions::{RestoreBody, staff_restore, staff_suspend};
use super::*;
use crate::model::domains::DirectRegistration;

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
    v["inbound_routes"] = serde_json::json!(
        rec.inbound_routes()
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
    );
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
    /// Why the domain is registered without an application (required).
    #[serde(default)]
    pub reason: Option<String>,
    /// The languages of the domain's notices, in order (empty: the default).
    #[serde(default)]
    pub languages: Vec<crate::model::language::Lang>,
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
    let note = who.note.clone();
    let rec = audited(&st, &who, target, move |caller| async move {
        let b = parsed?;
        // The rules connect a domain from an application; one registered
        // without says why, and stays marked so.
        let reason = b.reason.as_deref().map(str::trim).unwrap_or("");
        if reason.is_empty() {
            return Err(ApiError::bad_request(
                "a reason is required to register a domain without an application",
            ));
        }
        note.reason(reason);
        crate::registry::check_server_ranges(
            &b.domain.servers,
            b.domain.inbound.as_ref(),
            b.allow_wide_range,
            &cfg.registration,
        )
        .map_err(ApiError::bad_request)?;
        let direct = DirectRegistration {
            by: caller.name.clone(),
            at: chrono::Utc::now(),
            reason: reason.to_string(),
        };
        let rec = reg.add_domain_without_application(b.domain, direct, b.languages).await?;
        note.change(
            serde_json::json!({"status": "unregistered"}),
            serde_json::json!({"status": rec.status, "servers": rec.servers, "owner": rec.owner, "without_application": true}),
        );
        Ok(rec)
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
    let (st2, target, note) = (st.clone(), name.clone(), who.note.clone());
    let rec = audited(&st, &who, name, move |caller| async move {
        let scope = Scope::Domain(parse_domain(&target)?);
        staff_suspend(&st2, &scope, &caller.name, &need_reason(&body)?, &note).await
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
    let (st2, target, note) = (st.clone(), name.clone(), who.note.clone());
    let rec = audited(&st, &who, name, move |caller| async move {
        let body: RestoreBody = body.or_default()?;
        let domain = parse_domain(&target)?;
        let (_, rec) =
            staff_restore(&st2, &Scope::Domain(domain), &caller.name, &body, &note).await?;
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
    let b = body.required::<DisconnectBody>();
    let target = match &b {
        Ok(DisconnectBody { cancel: true, .. }) => {
            format!("{name}: cancel the scheduled disconnection")
        }
        Ok(DisconnectBody {
            on: Some(on),
            reason,
            ..
        }) => {
            format!("{name}: on {on}: {}", reason.as_deref().unwrap_or(""))
        }
        _ => name.clone(),
    };
    let note = who.note.clone();
    let rec = audited(&st, &who, target, move |caller| async move {
        let domain = parse_domain(&name)?;
        let b = b?;
        let reason = b.reason.as_deref().map(str::trim).unwrap_or("");
        if !reason.is_empty() {
            note.reason(reason);
        }
        let before = reg.get(&domain).map(|d| {
            serde_json::json!({"status": d.status, "disconnect_on": d.disconnect_on.as_ref().map(|s| s.on)})
        });
        if b.cancel {
            if b.on.is_some() {
                return Err(ApiError::bad_request(
                    "give either a date or cancel, not both",
                ));
            }
            let (rec, s) = reg.cancel_disconnect(&domain).await?;
            note.change(
                before.unwrap_or_default(),
                serde_json::json!({"status": rec.status, "disconnect_on": null}),
            );
            let text = crate::notify::lifecycle::disconnection_cancelled(&cfg, &rec, s.on);
            let notice =
                applications::notify_contacts(&queue, &reg, &cfg, &rec.contacts, text).await;
            return with_notice(&rec, notice);
        }
        if reason.is_empty() {
            return Err(ApiError::bad_request("a reason is required"));
        }
        if let Some(on) = b.on {
            let today = chrono::Utc::now()
                .with_timezone(&cfg.registration.utc_offset.0)
                .date_naive();
            let rec = reg
                .schedule_disconnect(&domain, on, today, reason, &caller.name)
                .await?;
            note.change(
                before.unwrap_or_default(),
                serde_json::json!({"status": rec.status, "disconnect_on": on}),
            );
            let text = crate::notify::lifecycle::disconnection_scheduled(&cfg, &rec, on, reason);
            let notice =
                applications::notify_contacts(&queue, &reg, &cfg, &rec.contacts, text).await;
            return with_notice(&rec, notice);
        }
        let (rec, notice) =
            crate::governor::disconnection::disconnect(&reg, &queue, &cfg, &domain, reason, false)
                    .await?;
        note.change(
            before.unwrap_or_default(),
            serde_json::json!({"status": rec.status, "disconnect_on": null}),
        );
        with_notice(&rec, notice)
    })
    .await?;
    Ok(Json(rec))
}

pub(super) async fn show_limits(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (_, rec) = registered(&st, &name)?;
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
    let note = who.note.clone();
    let v = audited(&st, &who, name.clone(), move |_| async move {
        let domain = parse_domain(&name)?;
        let limits: crate::model::domains::DomainLimits = body.required()?;
        let before = reg.get(&domain).map(|d| d.limits);
        let rec = reg.set_limits(&domain, Some(limits)).await?;
        note.change(
            serde_json::json!({ "limits": before.flatten() }),
            serde_json::json!({ "limits": rec.limits }),
        );
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
    let (_, rec) = registered(&st, &name)?;
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
    let note = who.note.clone();
    let v = audited(&st, &who, name.clone(), move |_| async move {
        let domain = parse_domain(&name)?;
        let setting: crate::model::domains::HeaderFrom = body.required()?;
        let before = reg.get(&domain).map(|d| d.header_from.clone());
        let rec = reg.set_header_from(&domain, setting).await?;
        note.change(
            serde_json::json!({ "header_from": before }),
            serde_json::json!({ "header_from": rec.header_from }),
        );
        Ok(rec.header_from)
    })
    .await?;
    Ok(Json(v))
}

impl From<crate::governor::disconnection::DisconnectError> for ApiError {
    fn from(e: crate::governor::disconnection::DisconnectError) -> Self {
        match e {
            crate::governor::disconnection::DisconnectError::Registry(r) => r.into(),
            crate::governor::disconnection::DisconnectError::Queue(q) => q.into(),
        }
    }
}

/// Body of `POST /api/v1/domains/{name}/disconnect`: now, on a date, or
/// cancel the date.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectBody {
    /// Why (required, except to cancel).
    #[serde(default)]
    pub reason: Option<String>,
    /// The agreed local date; absent: now.
    #[serde(default)]
    pub on: Option<chrono::NaiveDate>,
    /// Cancel the scheduled disconnection.
    #[serde(default)]
    pub cancel: bool,
}

/// A domain record as JSON with what became of its notice.
fn with_notice(
    rec: &DomainRecord,
    notice: crate::notify::contacts::NoticeOutcome,
) -> Result<serde_json::Value, ApiError> {
    let mut out = serde_json::to_value(rec).map_err(|e| ApiError::internal(e.to_string()))?;
    out["notice"] = serde_json::to_value(notice).unwrap_or_default();
    Ok(out)
}

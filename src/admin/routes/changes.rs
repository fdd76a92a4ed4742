//! Changing a connected domain's data over HTTP: staff updates with their
//! version history, and the agencies' change requests.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed, JsonBody, audited};
use super::applications::notify_contacts;
use super::parse_domain;
use crate::config::Config;
use crate::domain::Domain;
use crate::model::changes::{ChangeStatus, DomainChange, FieldChange};
use crate::model::domains::{Contact, DomainRecord};
use crate::registry::RangeLimits;
use crate::registry::changes::{ChangeInput, ChangeRequests, Updated};

fn workflow(st: &AdminState) -> ChangeRequests {
    ChangeRequests::from_config(st.registry.clone(), &st.cfg().registration)
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.trim_start_matches('#')
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a change request id")))
}

/// The changed fields, before and after, as JSON objects for the audit record.
fn changed_fields(changes: &[FieldChange]) -> (serde_json::Value, serde_json::Value) {
    let mut before = serde_json::Map::new();
    let mut after = serde_json::Map::new();
    for c in changes {
        before.insert(c.field.clone(), c.before.clone());
        after.insert(c.field.clone(), c.after.clone());
    }
    (before.into(), after.into())
}

/// `field: before -> after; ...`, compact, for the audit target.
fn summary(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|c| format!("{}: {} -> {}", c.field, c.before, c.after))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The audit target of an update: the domain and, when the change can be
/// worked out beforehand, what it changes.
fn update_target(st: &AdminState, name: &str, change: Option<&DomainChange>) -> String {
    let preview = match (Domain::parse(name), change) {
        (Ok(d), Some(ch)) => st.registry.get(&d).and_then(|cur| {
            st.registry
                .check_change(&cur, ch, RangeLimits::from(&st.cfg().registration))
                .ok()
        }),
        _ => None,
    };
    match preview {
        Some((_, changes)) => format!("{name}: {}", summary(&changes)),
        None => name.to_string(),
    }
}

/// The old and the new contacts, each once.
fn old_and_new(u: &Updated) -> Vec<Contact> {
    let mut all = u.before.contacts.clone();
    for c in &u.after.contacts {
        if !all.iter().any(|o| o.email.eq_ignore_ascii_case(&c.email)) {
            all.push(c.clone());
        }
    }
    all
}

/// Notifies old and new contacts of an update; the update as JSON with
/// the notice's outcome.
async fn announce(
    queue: &ugem_queue::Queue,
    cfg: &Config,
    u: &Updated,
    reason: &str,
) -> Result<serde_json::Value, ApiError> {
    let text = crate::notify::lifecycle::domain_updated(cfg, &u.after, &u.changes, reason);
    let notice = notify_contacts(queue, cfg, &old_and_new(u), text).await;
    let mut v = serde_json::to_value(u).map_err(|e| ApiError::internal(e.to_string()))?;
    v["notice"] = serde_json::to_value(notice).unwrap_or_default();
    Ok(v)
}

/// `POST /api/v1/domains/{name}/update`: changes the domain's data now.
pub(super) async fn update(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let input = body.required::<ChangeInput>();
    let target = update_target(&st, &name, input.as_ref().ok().map(|i| i.change()).as_ref());
    let (reg, queue, cfg) = (st.registry.clone(), st.queue.clone(), st.cfg());
    let note = who.note.clone();
    let out = audited(&st, &who, target, move |caller| async move {
        let input = input?;
        note.reason(input.reason.trim());
        let domain = parse_domain(&name)?;
        let limits = RangeLimits::from(&cfg.registration);
        let u = reg
            .update_domain(&domain, &input.change(), &caller.name, &input.reason, limits, None)
            .await?;
        tracing::info!(domain = %domain, version = u.version, actor = %caller.name, changes = %summary(&u.changes), "domain data changed");
        let (before, after) = changed_fields(&u.changes);
        note.change(before, after);
        announce(&queue, &cfg, &u, input.reason.trim()).await
    })
    .await?;
    Ok(Json(out))
}

/// `GET /api/v1/domains/{name}/history`: the replaced versions, oldest first.
pub(super) async fn history(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let domain = parse_domain(&name)?;
    let current: Option<DomainRecord> = st.registry.get(&domain).map(|d| (*d).clone());
    let versions = st.registry.domain_history(&domain).await?;
    if current.is_none() && versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "domain {domain} is not registered"
        )));
    }
    Ok(Json(serde_json::json!({
        "domain": domain,
        "current": current,
        "versions": versions,
    })))
}

/// Body of `POST /api/v1/change-requests`: the domain and the change.
#[derive(Debug, Deserialize)]
pub struct SubmitBody {
    /// The domain.
    pub domain: Domain,
    /// The change, its reason and date of receipt.
    #[serde(flatten)]
    pub input: ChangeInput,
}

/// `POST /api/v1/change-requests`: records a received change request.
pub(super) async fn submit(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.required::<SubmitBody>();
    let target = match &body {
        Ok(b) => format!("{}: {}", b.domain, b.input.reason),
        Err(_) => "(invalid request)".into(),
    };
    let flow = workflow(&st);
    let note = who.note.clone();
    let view = audited(&st, &who, target, move |caller| async move {
        let b = body?;
        note.reason(&b.input.reason);
        let v = flow.submit(&b.domain, &b.input, &caller.name).await?;
        tracing::info!(change_request = v.request.id, domain = %b.domain, due = %v.request.decision_due, "change request recorded");
        Ok(v)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Query of `GET /api/v1/change-requests`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// pending | approved | rejected
    #[serde(default)]
    pub status: Option<ChangeStatus>,
    /// Only this domain.
    #[serde(default)]
    pub domain: Option<Domain>,
}

/// `GET /api/v1/change-requests`: oldest first, with deadlines.
pub(super) async fn list(
    State(st): State<AdminState>,
    _: Authed,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(workflow(&st).list(q.status, q.domain.as_ref()).await?))
}

/// `GET /api/v1/change-requests/{id}`.
pub(super) async fn show(
    State(st): State<AdminState>,
    _: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(workflow(&st).get(parse_id(&id)?).await?))
}

/// Body of `POST /api/v1/change-requests/{id}/approve` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Accept server ranges wider than the configured limit.
    #[serde(default)]
    pub allow_wide_range: bool,
}

/// `POST /api/v1/change-requests/{id}/approve`: applies the change.
pub(super) async fn approve(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let flow = workflow(&st);
    let (queue, cfg): (_, Arc<Config>) = (st.queue.clone(), st.cfg());
    let target = format!("change request #{}", id.trim_start_matches('#'));
    let note = who.note.clone();
    let out = audited(&st, &who, target, move |caller| async move {
        let id = parse_id(&id)?;
        let b: ApproveBody = body.or_default()?;
        let (view, u) = flow.approve(id, &caller.name, b.allow_wide_range).await?;
        note.reason(&view.request.reason);
        let (before, after) = changed_fields(&u.changes);
        note.change(before, after);
        tracing::info!(change_request = id, domain = %u.after.name, changes = %summary(&u.changes), "change request approved");
        let mut v = announce(&queue, &cfg, &u, &view.request.reason).await?;
        v["change_request"] = serde_json::to_value(&view).unwrap_or_default();
        Ok(v)
    })
    .await?;
    Ok(Json(out))
}

/// Body of `POST /api/v1/change-requests/{id}/reject`.
#[derive(Debug, Deserialize)]
pub struct RejectBody {
    /// The reasons.
    pub reason: String,
}

/// `POST /api/v1/change-requests/{id}/reject`: refuses it with reasons.
pub(super) async fn reject(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let flow = workflow(&st);
    let (reg, queue, cfg) = (st.registry.clone(), st.queue.clone(), st.cfg());
    let target = format!("change request #{}", id.trim_start_matches('#'));
    let note = who.note.clone();
    let out = audited(&st, &who, target, move |caller| async move {
        let id = parse_id(&id)?;
        let b: RejectBody = body.required()?;
        note.reason(&b.reason);
        let v = flow.reject(id, &caller.name, &b.reason).await?;
        let mut out = serde_json::to_value(&v).map_err(|e| ApiError::internal(e.to_string()))?;
        // The agency learns why; a failed notice is reported, not raised.
        if let Some(rec) = reg.get(&v.request.domain) {
            let text = crate::notify::lifecycle::change_request_rejected(&cfg, &rec, &v.request);
            let notice = notify_contacts(&queue, &cfg, &rec.contacts, text).await;
            out["notice"] = serde_json::to_value(notice).unwrap_or_default();
        }
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

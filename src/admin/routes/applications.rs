//! `/api/v1/applications`: the registration workflow over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::super::{AdminState, ApiError, Authed, JsonBody, audited};
use crate::config::Config;
use crate::registry::applications::{
    ApplicationError, ApplicationFilter, Applications, ApproveOptions, NewApplication,
};
use crate::registry::checks;

impl From<ApplicationError> for ApiError {
    fn from(e: ApplicationError) -> Self {
        let e = match e {
            // Overlaps and the like read the same as from `domain add`.
            ApplicationError::Registry(r) => return r.into(),
            other => other,
        };
        if let ApplicationError::Store(crate::store::StoreError::Unavailable(d))
        | ApplicationError::Registry(crate::registry::RegistryError::Store(
            crate::store::StoreError::Unavailable(d),
        )) = &e
        {
            return ApiError::store_unreachable(d);
        }
        let (status, kind) = match &e {
            ApplicationError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApplicationError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApplicationError::Locked { .. } => (StatusCode::CONFLICT, "resubmission_locked"),
            ApplicationError::Conflict(_) | ApplicationError::Registry(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            ApplicationError::Store(crate::store::StoreError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApplicationError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            kind,
            message: e.to_string(),
        }
    }
}

fn workflow(st: &AdminState) -> Applications {
    Applications::from_config(st.registry.clone(), &st.cfg().registration)
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.trim_start_matches('#')
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not an application id")))
}

pub(super) use crate::notify::contacts::notify_contacts;

/// Query of `GET /api/v1/applications`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// pending | approved | rejected | withdrawn
    #[serde(default)]
    pub status: Option<String>,
    /// Only pending applications past their decision date.
    #[serde(default)]
    pub overdue: Option<bool>,
    /// Only this domain.
    #[serde(default)]
    pub domain: Option<String>,
}

pub(super) async fn list(
    State(st): State<AdminState>,
    _: Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = ApplicationFilter {
        status: q
            .status
            .filter(|s| !s.is_empty())
            .map(|s| s.parse())
            .transpose()
            .map_err(ApiError::bad_request)?,
        overdue: q.overdue.unwrap_or(false),
        domain: q
            .domain
            .filter(|s| !s.is_empty())
            .map(|d| super::parse_domain(&d))
            .transpose()?,
    };
    let apps = workflow(&st);
    let list = apps.list(&filter).await?;
    Ok(Json(list))
}

pub(super) async fn submit(
    State(st): State<AdminState>,
    who: Authed,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.required::<NewApplication>();
    let target = match &body {
        Ok(n) => n.domain.to_string(),
        Err(_) => "(invalid request)".into(),
    };
    let apps = workflow(&st);
    let note = who.note.clone();
    let view = audited(&st, &who, target, move |caller| async move {
        let new = body?;
        let v = apps.submit(new, &caller.name).await?;
        note.change(
            serde_json::Value::Null,
            decision_state(&v.application, true),
        );
        tracing::info!(
            application = v.application.id,
            domain = %v.application.domain,
            due = %v.application.decision_due,
            actor = %caller.name,
            "application submitted"
        );
        Ok(v)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(super) async fn show(
    State(st): State<AdminState>,
    _: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let apps = workflow(&st);
    let view = apps.get(id).await?;
    let all = apps.all().await?;
    let domains = st.registry.list();
    let advice = checks::advise(&view.application, &domains, &all, &st.cfg()).await;
    let mut v = serde_json::to_value(&view).map_err(|e| ApiError::internal(e.to_string()))?;
    v["checks"] = serde_json::to_value(advice).unwrap_or_default();
    Ok(Json(v))
}

/// Body of `POST /api/v1/applications/{id}/approve` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Let the domain share server ranges with domains that allow it too.
    #[serde(default)]
    pub shared_servers: bool,
    /// Accept server ranges wider than the configured limit.
    #[serde(default)]
    pub allow_wide_range: bool,
}

pub(super) async fn approve(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let apps = workflow(&st);
    let queue = st.queue.clone();
    let cfg: Arc<Config> = st.cfg();
    let note = who.note.clone();
    let out = audited(
        &st,
        &who,
        format!("application #{}", id.trim_start_matches('#')),
        move |caller| async move {
            let b: ApproveBody = body.or_default()?;
            let id = parse_id(&id)?;
            let opts = ApproveOptions {
                shared_servers: b.shared_servers,
                allow_wide_range: b.allow_wide_range,
            };
            let ok = apps.approve_with(id, &caller.name, opts).await?;
            let app = &ok.application.application;
            let mut after = decision_state(app, false);
            after["domain"] = serde_json::json!({"name": ok.domain.name, "status": ok.domain.status, "reconnected": ok.reconnected});
            note.change(serde_json::json!({"status": "pending"}), after);
            tracing::info!(
                application = id,
                domain = %app.domain,
                reconnected = ok.reconnected,
                actor = %caller.name,
                "application approved; domain connected"
            );
            let text = crate::notify::notices::application_approved(&cfg, app, &ok.domain);
            let notice = notify_contacts(&queue, apps.registry(), &cfg, &app.contacts, text).await;
            let mut v = serde_json::to_value(&ok).map_err(|e| ApiError::internal(e.to_string()))?;
            v["notice"] = serde_json::to_value(notice).unwrap_or_default();
            Ok(v)
        },
    )
    .await?;
    Ok(Json(out))
}

/// Body of `POST /api/v1/applications/{id}/reject`.
#[derive(Debug, Deserialize)]
pub struct RejectBody {
    /// The reasons, sent to the applicant.
    pub reason: String,
}

pub(super) async fn reject(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let apps = workflow(&st);
    let queue = st.queue.clone();
    let cfg: Arc<Config> = st.cfg();
    let note = who.note.clone();
    let out = audited(
        &st,
        &who,
        format!("application #{}", id.trim_start_matches('#')),
        move |caller| async move {
            let id = parse_id(&id)?;
            let b: RejectBody = body.required()?;
            note.reason(&b.reason);
            let v = apps.reject(id, &caller.name, &b.reason).await?;
            let app = &v.application;
            note.change(
                serde_json::json!({"status": "pending"}),
                decision_state(app, false),
            );
            tracing::info!(application = id, domain = %app.domain, actor = %caller.name, "application rejected");
            let text = crate::notify::notices::application_rejected(&cfg, app, v.resubmit_from);
            let notice = notify_contacts(&queue, apps.registry(), &cfg, &app.contacts, text).await;
            let mut out = serde_json::to_value(&v).map_err(|e| ApiError::internal(e.to_string()))?;
            out["notice"] = serde_json::to_value(notice).unwrap_or_default();
            Ok(out)
        },
    )
    .await?;
    Ok(Json(out))
}

/// Body of `POST /api/v1/applications/{id}/withdraw` (optional).
#[derive(Debug, Default, Deserialize)]
pub struct WithdrawBody {
    /// Why (e.g. the applicant's letter).
    #[serde(default)]
    pub reason: Option<String>,
}

pub(super) async fn withdraw(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let apps = workflow(&st);
    let note = who.note.clone();
    let out = audited(
        &st,
        &who,
        format!("application #{}", id.trim_start_matches('#')),
        move |caller| async move {
            let reason = body.or_default::<WithdrawBody>()?.reason;
            if let Some(r) = &reason {
                note.reason(r);
            }
            let id = parse_id(&id)?;
            let v = apps.withdraw(id, &caller.name, reason.as_deref()).await?;
            note.change(
                serde_json::json!({"status": "pending"}),
                decision_state(&v.application, false),
            );
            Ok(v)
        },
    )
    .await?;
    Ok(Json(out))
}

/// An application's state as the audit trail records a submission or a
/// decision: its status, the decision's date, and (`form`) what the form said.
fn decision_state(
    app: &crate::model::applications::ApplicationRecord,
    form: bool,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "status": app.status,
        "domain": app.domain,
        "received_on": app.received_on,
        "decision_due": app.decision_due,
    });
    if let Some(d) = app.decided_on {
        v["decided_on"] = serde_json::json!(d);
    }
    if form && let Some(f) = &app.form {
        v["form"] = serde_json::to_value(f).unwrap_or_default();
    }
    v
}

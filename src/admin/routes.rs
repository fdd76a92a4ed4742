//! The API's routes and handlers. [`ROUTES`] is the one list of routes:
//! the router is built from it and the authentication middleware reads the
//! role each route needs from it.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Deserialize;

use super::auth::{Access, Guard, RouteSpec, authenticate};
use super::{AdminState, ApiError, Authed, JsonBody, RefusedLog, audited, audited_blocking};
use std::sync::Arc;

mod applications;
mod changes;
mod mailbox;
mod queue_tools;
mod server_suspensions;
mod servers;
use crate::config::Role;
use crate::domain::Domain;
use crate::model::connections::ConnectionFilter;
use crate::model::domains::DomainRecord;
use crate::model::suspensions::{Scope, SuspensionRecord};
use crate::registry::{NewDomain, RestoreRequest, SuspendRequest};

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    action: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        action,
    }
}

const PUBLIC: Access = Access::Public;
const VIEWER: Access = Access::Token(Role::Viewer);
const OPERATOR: Access = Access::Token(Role::Operator);
const ADMIN: Access = Access::Token(Role::Admin);

/// Every route of the API; nothing else is routed.
pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/healthz", PUBLIC, "health"),
    route("GET", "/readyz", PUBLIC, "ready"),
    route("GET", "/metrics", PUBLIC, "metrics"),
    route("GET", "/api/v1/domains", VIEWER, "domain.list"),
    route("POST", "/api/v1/domains", ADMIN, "domain.add"),
    route("GET", "/api/v1/domains/{name}", VIEWER, "domain.show"),
    route(
        "POST",
        "/api/v1/domains/{name}/suspend",
        OPERATOR,
        "domain.suspend",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/restore",
        OPERATOR,
        "domain.restore",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/disconnect",
        ADMIN,
        "domain.disconnect",
    ),
    route(
        "GET",
        "/api/v1/domains/{name}/limits",
        VIEWER,
        "domain.limits.show",
    ),
    route(
        "PUT",
        "/api/v1/domains/{name}/limits",
        ADMIN,
        "domain.limits",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/limits",
        ADMIN,
        "domain.limits",
    ),
    route(
        "POST",
        "/api/v1/senders/{address}/suspend",
        OPERATOR,
        "sender.suspend",
    ),
    route(
        "POST",
        "/api/v1/senders/{address}/restore",
        OPERATOR,
        "sender.restore",
    ),
    route("GET", "/api/v1/suspensions", VIEWER, "suspension.list"),
    route("GET", "/api/v1/governor", VIEWER, "governor.status"),
    route(
        "GET",
        "/api/v1/governor/scopes/{scope}",
        VIEWER,
        "governor.scope",
    ),
    route(
        "GET",
        "/api/v1/senders/{address}/limits",
        VIEWER,
        "sender.limits.show",
    ),
    route(
        "PUT",
        "/api/v1/senders/{address}/limits",
        ADMIN,
        "sender.limits",
    ),
    route(
        "POST",
        "/api/v1/senders/{address}/limits",
        ADMIN,
        "sender.limits",
    ),
    route(
        "DELETE",
        "/api/v1/senders/{address}/limits",
        ADMIN,
        "sender.limits.clear",
    ),
    route(
        "DELETE",
        "/api/v1/verification/{address}",
        OPERATOR,
        "verification.forget",
    ),
    route("GET", "/api/v1/mta-sts", VIEWER, "mta_sts.list"),
    route("GET", "/api/v1/connections", VIEWER, "connection.list"),
    route("GET", "/api/v1/audit", VIEWER, "audit.list"),
    route("GET", "/api/v1/queue", VIEWER, "queue.list"),
    route("GET", "/api/v1/queue/counts", VIEWER, "queue.counts"),
    route(
        "POST",
        "/api/v1/queue/retry-all",
        OPERATOR,
        "queue.retry_all",
    ),
    route(
        "POST",
        "/api/v1/queue/bulk/hold",
        OPERATOR,
        "queue.bulk.hold",
    ),
    route(
        "POST",
        "/api/v1/queue/bulk/release",
        OPERATOR,
        "queue.bulk.release",
    ),
    route(
        "POST",
        "/api/v1/queue/bulk/delete",
        OPERATOR,
        "queue.bulk.delete",
    ),
    route(
        "POST",
        "/api/v1/queue/bulk/retry",
        OPERATOR,
        "queue.bulk.retry",
    ),
    route(
        "POST",
        "/api/v1/queue/bulk/requeue",
        OPERATOR,
        "queue.bulk.requeue",
    ),
    route("GET", "/api/v1/queue/{id}", VIEWER, "queue.show"),
    route(
        "POST",
        "/api/v1/queue/{id}/requeue",
        OPERATOR,
        "queue.requeue",
    ),
    route(
        "GET",
        "/api/v1/queue/{id}/message",
        OPERATOR,
        "queue.message",
    ),
    route("DELETE", "/api/v1/queue/{id}", OPERATOR, "queue.delete"),
    route("POST", "/api/v1/queue/{id}/retry", OPERATOR, "queue.retry"),
    route("POST", "/api/v1/queue/{id}/hold", OPERATOR, "queue.hold"),
    route(
        "POST",
        "/api/v1/queue/{id}/release",
        OPERATOR,
        "queue.release",
    ),
    route("GET", "/api/v1/mailbox", OPERATOR, "mailbox.list"),
    route("GET", "/api/v1/mailbox/{id}", OPERATOR, "mailbox.show"),
    route("DELETE", "/api/v1/mailbox/{id}", OPERATOR, "mailbox.delete"),
    route("GET", "/api/v1/applications", VIEWER, "application.list"),
    route("POST", "/api/v1/applications", ADMIN, "application.submit"),
    route(
        "GET",
        "/api/v1/applications/{id}",
        VIEWER,
        "application.show",
    ),
    route(
        "POST",
        "/api/v1/applications/{id}/approve",
        ADMIN,
        "application.approve",
    ),
    route(
        "POST",
        "/api/v1/applications/{id}/reject",
        ADMIN,
        "application.reject",
    ),
    route(
        "POST",
        "/api/v1/applications/{id}/withdraw",
        ADMIN,
        "application.withdraw",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/update",
        ADMIN,
        "domain.update",
    ),
    route(
        "GET",
        "/api/v1/domains/{name}/history",
        VIEWER,
        "domain.history",
    ),
    route(
        "POST",
        "/api/v1/servers/{ip}/suspend",
        OPERATOR,
        "server.suspend",
    ),
    route(
        "POST",
        "/api/v1/servers/{ip}/restore",
        OPERATOR,
        "server.restore",
    ),
    route(
        "GET",
        "/api/v1/servers/suspensions",
        VIEWER,
        "server.suspension.list",
    ),
    route(
        "GET",
        "/api/v1/domains/{name}/unregistered",
        VIEWER,
        "domain.unregistered",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/allow-server",
        ADMIN,
        "domain.allow_server",
    ),
    route(
        "GET",
        "/api/v1/change-requests",
        VIEWER,
        "change_request.list",
    ),
    route(
        "POST",
        "/api/v1/change-requests",
        ADMIN,
        "change_request.submit",
    ),
    route(
        "GET",
        "/api/v1/change-requests/{id}",
        VIEWER,
        "change_request.show",
    ),
    route(
        "POST",
        "/api/v1/change-requests/{id}/approve",
        ADMIN,
        "change_request.approve",
    ),
    route(
        "POST",
        "/api/v1/change-requests/{id}/reject",
        ADMIN,
        "change_request.reject",
    ),
];

/// The handler of a route, by its action.
fn handler(r: &RouteSpec) -> MethodRouter<AdminState> {
    let m = match r.method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => panic!("route {}: method {other} not handled", r.path),
    };
    match r.action {
        "health" => on(m, || async { "ok\n" }),
        "ready" => on(m, readyz),
        "metrics" => on(m, metrics),
        "domain.list" => on(m, list_domains),
        "domain.add" => on(m, add_domain),
        "domain.show" => on(m, show_domain),
        "domain.suspend" => on(m, suspend_domain),
        "domain.restore" => on(m, restore_domain),
        "domain.disconnect" => on(m, disconnect_domain),
        "domain.limits.show" => on(m, show_limits),
        "domain.limits" => on(m, set_limits),
        "sender.suspend" => on(m, suspend_sender),
        "sender.restore" => on(m, restore_sender),
        "suspension.list" => on(m, list_suspensions),
        "governor.status" => on(m, governor_status),
        "governor.scope" => on(m, governor_scope),
        "sender.limits.show" => on(m, show_sender_limits),
        "sender.limits" => on(m, set_sender_limits),
        "sender.limits.clear" => on(m, clear_sender_limits),
        "verification.forget" => on(m, forget_verification),
        "mta_sts.list" => on(m, list_mta_sts),
        "connection.list" => on(m, list_connections),
        "audit.list" => on(m, list_audit),
        "queue.list" => on(m, list_queue),
        "queue.counts" => on(m, queue_counts),
        "queue.retry_all" => on(m, retry_all),
        "queue.bulk.hold" => on(m, queue_tools::bulk_hold),
        "queue.bulk.release" => on(m, queue_tools::bulk_release),
        "queue.bulk.delete" => on(m, queue_tools::bulk_delete),
        "queue.bulk.retry" => on(m, queue_tools::bulk_retry),
        "queue.message" => on(m, queue_tools::message),
        "queue.bulk.requeue" => on(m, queue_tools::bulk_requeue),
        "queue.requeue" => on(m, queue_tools::requeue_one),
        "mailbox.list" => on(m, mailbox::list),
        "mailbox.show" => on(m, mailbox::show),
        "mailbox.delete" => on(m, mailbox::delete),
        "queue.show" => on(m, show_queued),
        "queue.delete" => on(m, delete_queued),
        "queue.retry" => on(m, retry_queued),
        "queue.hold" => on(m, hold_queued),
        "queue.release" => on(m, release_queued),
        "application.list" => on(m, applications::list),
        "application.submit" => on(m, applications::submit),
        "application.show" => on(m, applications::show),
        "application.approve" => on(m, applications::approve),
        "application.reject" => on(m, applications::reject),
        "application.withdraw" => on(m, applications::withdraw),
        "domain.update" => on(m, changes::update),
        "domain.history" => on(m, changes::history),
        "server.suspend" => on(m, server_suspensions::suspend),
        "server.restore" => on(m, server_suspensions::restore),
        "server.suspension.list" => on(m, server_suspensions::list),
        "domain.unregistered" => on(m, servers::list),
        "domain.allow_server" => on(m, servers::allow),
        "change_request.list" => on(m, changes::list),
        "change_request.submit" => on(m, changes::submit),
        "change_request.show" => on(m, changes::show),
        "change_request.approve" => on(m, changes::approve),
        "change_request.reject" => on(m, changes::reject),
        other => panic!("route {} {}: no handler for `{other}`", r.method, r.path),
    }
}

/// The whole API, with its own log of refused calls (whose counts are
/// written as each minute ends; [`super::serve`] also flushes them).
pub fn router(state: AdminState) -> Router {
    let refused = Arc::new(RefusedLog::new(state.audit.clone()));
    router_with(state, refused)
}

/// The whole API, recording refused calls in `refused`. Each route gets
/// the authentication middleware with its own entry of [`ROUTES`].
pub fn router_with(state: AdminState, refused: Arc<RefusedLog>) -> Router {
    let mut r = Router::new();
    for spec in ROUTES {
        let guard = Guard {
            admin: state.clone(),
            refused: refused.clone(),
            route: spec,
        };
        r = r.route(
            spec.path,
            handler(spec).route_layer(axum::middleware::from_fn_with_state(guard, authenticate)),
        );
    }
    r.with_state(state)
}

async fn readyz(State(st): State<AdminState>) -> impl IntoResponse {
    if st.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Prometheus scrape (no token, like the health checks: the admin listener
/// belongs on an internal network).
async fn metrics(State(st): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let store = st.store.clone();
    let snap = st.registry.snapshot();
    let audit = st.audit.audit_size().await?;
    let mut g = tokio::task::spawn_blocking(move || -> Result<crate::metrics::Gauges, ApiError> {
        let c = queue.counts()?;
        let now = ugem_queue::unix_ms();
        // One pass over the envelopes for generated mail; fine at scrape
        // intervals for queues of tens of thousands.
        let backlog = queue
            .list(&ugem_queue::ListFilter::default())?
            .iter()
            .filter(|e| e.direction == ugem_queue::Direction::Local)
            .count() as u64;
        Ok(crate::metrics::Gauges {
            queue: vec![
                ("active", c.active as u64),
                ("deferred", c.deferred as u64),
                ("held", c.held as u64),
                ("leased", c.leased as u64),
            ],
            queue_bytes: c.bytes,
            oldest_age_seconds: c
                .oldest_arrival_ms
                .map(|t| now.saturating_sub(t) as f64 / 1000.0)
                .unwrap_or(0.0),
            notification_backlog: backlog,
            suspensions: Vec::new(),
            store_bytes: store.size_bytes(),
            queue_file_bytes: std::fs::metadata(queue.dir().join(ugem_queue::DB_FILE))
                .map(|m| m.len())
                .unwrap_or(0),
            audit_records: audit.records,
            audit_bytes: audit.bytes,
        })
    })
    .await
    .map_err(|e| ApiError::bad_request(e.to_string()))??;
    let (mut domains, mut senders) = (0u64, 0u64);
    for s in snap.active_suspensions() {
        match s.scope {
            Scope::Domain(_) => domains += 1,
            Scope::Sender(_) => senders += 1,
        }
    }
    g.suspensions = vec![("domain", domains), ("sender", senders)];
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::render(&g),
    ))
}

fn parse_domain(name: &str) -> Result<Domain, ApiError> {
    Domain::parse(name).map_err(|e| ApiError::bad_request(format!("`{name}`: {e}")))
}

async fn list_domains(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let list: Vec<_> = st.registry.list().iter().map(|d| (**d).clone()).collect();
    Ok(Json(list))
}

async fn show_domain(
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

async fn add_domain(
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
    let cfg = st.cfg.clone();
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

/// Body of suspend and disconnect calls.
#[derive(Debug, Deserialize)]
pub struct ReasonBody {
    /// Why.
    pub reason: String,
}

/// Body of restore calls.
#[derive(Debug, Default, Deserialize)]
pub struct RestoreBody {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// `release` (default) or `delete` the held mail.
    #[serde(default)]
    pub held_mail: Option<String>,
}

fn need_reason(body: &JsonBody) -> Result<String, ApiError> {
    let b: ReasonBody = body.required()?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a reason is required"));
    }
    Ok(b.reason)
}

fn held_mail_choice(b: &RestoreBody) -> Result<bool, ApiError> {
    match b.held_mail.as_deref() {
        None | Some("release") | Some("released") => Ok(true),
        Some("delete") | Some("deleted") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "held_mail must be `release` or `delete`, not `{other}`"
        ))),
    }
}

/// Runs an async queue operation from inside a blocking handler (one that
/// also reads the queue, whose reads block).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

async fn suspend_domain(
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

async fn restore_domain(
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

/// Staff suspend a scope, with every effect (the governor's one home for
/// them: record, held mail, notices, webhooks).
async fn staff_suspend(
    st: &AdminState,
    scope: &Scope,
    actor: &str,
    reason: &str,
) -> Result<SuspensionRecord, ApiError> {
    let req = SuspendRequest::manual(actor, reason);
    let (rec, _) = st.governor.suspend_scope(scope, req).await?;
    Ok(rec)
}

/// Staff restore a scope: the record closed, its held mail released or
/// deleted as `body` says, and the notices. Returns the ended suspension
/// (when on record) and, for a domain, its record.
async fn staff_restore(
    st: &AdminState,
    scope: &Scope,
    actor: &str,
    body: &RestoreBody,
) -> Result<(Option<SuspensionRecord>, Option<DomainRecord>), ApiError> {
    let release = held_mail_choice(body)?;
    let req = RestoreRequest {
        actor: actor.to_string(),
        reason: body.reason.clone(),
        held_mail: if release { "released" } else { "deleted" }.into(),
    };
    let r = st.governor.restore_scope(scope, req, release).await?;
    Ok((r.ended, r.domain))
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

async fn disconnect_domain(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let queue = st.queue.clone();
    let cfg = st.cfg.clone();
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
    let rec = audited(&st, &who, target, move |caller| async move {
        let domain = parse_domain(&name)?;
        let b = b?;
        let reason = b.reason.as_deref().map(str::trim).unwrap_or("");
        if b.cancel {
            if b.on.is_some() {
                return Err(ApiError::bad_request(
                    "give either a date or cancel, not both",
                ));
            }
            let (rec, s) = reg.cancel_disconnect(&domain).await?;
            let text = crate::notify::lifecycle::disconnection_cancelled(&cfg, &rec, s.on);
            let notice = applications::notify_contacts(&queue, &cfg, &rec.contacts, text).await;
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
            let text = crate::notify::lifecycle::disconnection_scheduled(&cfg, &rec, on, reason);
            let notice = applications::notify_contacts(&queue, &cfg, &rec.contacts, text).await;
            return with_notice(&rec, notice);
        }
        let (rec, notice) =
            crate::governor::disconnection::disconnect(&reg, &queue, &cfg, &domain, reason).await?;
        with_notice(&rec, notice)
    })
    .await?;
    Ok(Json(rec))
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

async fn suspend_sender(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), address.clone());
    let rec = audited(&st, &who, address, move |caller| async move {
        staff_suspend(
            &st2,
            &Scope::Sender(target),
            &caller.name,
            &need_reason(&body)?,
        )
        .await
    })
    .await?;
    Ok(Json(rec))
}

async fn restore_sender(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), address.clone());
    let rec = audited(&st, &who, address, move |caller| async move {
        let body: RestoreBody = body.or_default()?;
        staff_restore(&st2, &Scope::Sender(target), &caller.name, &body)
            .await?
            .0
            .ok_or_else(|| ApiError::internal("no suspension record after the restore"))
    })
    .await?;
    Ok(Json(rec))
}

/// `DELETE /api/v1/verification/{address}`: drops the cached answer of the
/// domain's server for an inbound recipient.
async fn forget_verification(
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

/// `GET /api/v1/mta-sts`: the MTA-STS policies in force for recipient domains.
async fn list_mta_sts(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        st.mta_sts.as_ref().map(|m| m.list()).unwrap_or_default(),
    ))
}

/// `GET /api/v1/governor`: counters, throttled scopes, suspension counts.
async fn governor_status(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.governor.status()))
}

/// `GET /api/v1/governor/scopes/{scope}`: one scope's detector state
/// ("a@b" for a sender, "b" for a domain).
async fn governor_scope(
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

/// The domain record of a sender address, if registered.
fn sender_domain(
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
async fn show_sender_limits(
    State(st): State<AdminState>,
    _: Authed,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let address = address.trim().to_ascii_lowercase();
    let rec = sender_domain(&st, &address)?;
    Ok(Json(crate::governor::effective_sender_limits(
        &st.cfg, &rec, &address,
    )))
}

/// `PUT /api/v1/senders/{address}/limits`: declares a sender (a bulk sender)
/// with its own limits; it is then bounded by them, not judged on novelty.
async fn set_sender_limits(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg.clone();
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
async fn clear_sender_limits(
    State(st): State<AdminState>,
    who: Authed,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg.clone();
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

async fn show_limits(
    State(st): State<AdminState>,
    _: Authed,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let name = parse_domain(&name)?;
    let rec = st
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("domain {name} is not registered")))?;
    Ok(Json(crate::governor::effective_limits(&st.cfg, &rec)))
}

/// `PUT /api/v1/domains/{name}/limits`: replaces the domain's overrides
/// (an empty object goes back to the `[governor]` defaults).
async fn set_limits(
    State(st): State<AdminState>,
    who: Authed,
    Path(name): Path<String>,
    body: JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg.clone();
    let v = audited(&st, &who, name.clone(), move |_| async move {
        let domain = parse_domain(&name)?;
        let limits: crate::model::domains::DomainLimits = body.required()?;
        let rec = reg.set_limits(&domain, Some(limits)).await?;
        Ok(crate::governor::effective_limits(&cfg, &rec))
    })
    .await?;
    Ok(Json(v))
}

/// Query of `GET /api/v1/suspensions`.
#[derive(Debug, Default, Deserialize)]
pub struct SuspensionQuery {
    /// Include ended suspensions.
    #[serde(default)]
    pub history: bool,
}

async fn list_suspensions(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<SuspensionQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.registry.suspensions(q.history).await?))
}

async fn list_connections(
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

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Newest N records (default 100).
    pub limit: Option<usize>,
}

async fn list_audit(
    State(st): State<AdminState>,
    _: Authed,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(st.audit.list_audit(q.limit.unwrap_or(100)).await?))
}

async fn list_queue(
    State(st): State<AdminState>,
    _: Authed,
    Query(f): Query<ugem_queue::ListFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let q = st.queue.clone();
    let list = tokio::task::spawn_blocking(move || q.list(&f))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(list))
}

async fn queue_counts(
    State(st): State<AdminState>,
    _: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let q = st.queue.clone();
    let c = tokio::task::spawn_blocking(move || q.counts())
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(c))
}

async fn show_queued(
    State(st): State<AdminState>,
    _: Authed,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: ugem_queue::QueueId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a queue id")))?;
    let q = st.queue.clone();
    let env = tokio::task::spawn_blocking(move || q.get(id))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??
        .ok_or_else(|| ApiError::not_found(format!("no message {id} in the queue")))?;
    Ok(Json(env))
}

fn parse_queue_id(id: &str) -> Result<ugem_queue::QueueId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a queue id")))
}

/// Body of `POST /api/v1/queue/{id}/hold`.
#[derive(Debug, Default, Deserialize)]
pub struct HoldBody {
    /// Why (shown in `queue show`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The queue operations that take one id: retry, hold, release, delete.
#[derive(Debug, Clone, Copy)]
enum QueueOp {
    Retry,
    Hold,
    Release,
    Delete,
}

async fn queue_op(
    st: AdminState,
    who: Authed,
    id: String,
    op: QueueOp,
    body: Option<JsonBody>,
) -> Result<axum::response::Response, ApiError> {
    let queue = st.queue.clone();
    let changed = audited_blocking(&st, &who, id.clone(), move |caller| {
        let qid = parse_queue_id(&id)?;
        let done = match op {
            QueueOp::Retry => {
                let v = retry_one(&queue, qid)?;
                tracing::info!(target: crate::maillog::TARGET, queue_id = %qid, actor = %caller.name, "retry by staff");
                return Ok(v);
            }
            QueueOp::Hold => {
                let reason = match &body {
                    Some(b) => b.or_default::<HoldBody>()?.reason,
                    None => None,
                };
                block_on(queue.hold(
                    qid,
                    reason.unwrap_or_else(|| format!("held by {}", caller.name)),
                ))?
            }
            QueueOp::Release => block_on(queue.release(qid))?,
            QueueOp::Delete => block_on(queue.delete(qid))?,
        };
        if !done {
            return Err(ApiError::not_found(match op {
                QueueOp::Release => format!("no held message {id} in the queue"),
                _ => format!("no message {id} in the queue"),
            }));
        }
        let what = match op {
            QueueOp::Hold => "held by staff",
            QueueOp::Release => "released by staff",
            _ => "deleted by staff",
        };
        tracing::info!(target: crate::maillog::TARGET, queue_id = %qid, actor = %caller.name, "{what}");
        Ok(serde_json::json!({"ok": true}))
    })
    .await;
    changed.map(|v| Json(v).into_response())
}

/// `queue retry ID`: the message is due now, or the answer says why not.
fn retry_one(
    queue: &ugem_queue::Queue,
    id: ugem_queue::QueueId,
) -> Result<serde_json::Value, ApiError> {
    let now = ugem_queue::unix_ms();
    let env = queue
        .get(id)?
        .ok_or_else(|| ApiError::not_found(format!("no message {id} in the queue")))?;
    if let Some(why) = &env.held {
        return Err(ApiError::conflict(format!(
            "message {id} is held ({why}); release it first (`ugem queue release {id}`)"
        )));
    }
    if env.is_leased(now) {
        return Err(ApiError::conflict(format!(
            "message {id} is being delivered now; its attempt will be recorded when it ends"
        )));
    }
    if !block_on(queue.retry(id, now))? {
        return Err(ApiError::not_found(format!("no message {id} in the queue")));
    }
    let due = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(serde_json::json!({"ok": true, "due": due}))
}

async fn retry_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Retry, None).await
}

async fn hold_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Hold, Some(body)).await
}

async fn release_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Release, None).await
}

async fn delete_queued(
    State(st): State<AdminState>,
    who: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, who, id, QueueOp::Delete, None).await
}

async fn retry_all(
    State(st): State<AdminState>,
    who: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let n = audited_blocking(&st, &who, "*".into(), move |_| {
        Ok(block_on(queue.retry_all(ugem_queue::unix_ms()))?)
    })
    .await?;
    Ok(Json(serde_json::json!({"retried": n})))
}

//! The API's routes and handlers.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;

use super::{AdminState, ApiError, audited, authorize};

mod applications;
use crate::config::Role;
use crate::domain::Domain;
use crate::registry::{NewDomain, RestoreRequest, SuspendRequest};
use crate::store::connections::ConnectionFilter;
use crate::store::domains::DomainRecord;
use crate::store::suspensions::{Scope, SuspensionRecord};

/// The whole API.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/domains", get(list_domains).post(add_domain))
        .route("/api/v1/domains/{name}", get(show_domain))
        .route("/api/v1/domains/{name}/suspend", post(suspend_domain))
        .route("/api/v1/domains/{name}/restore", post(restore_domain))
        .route("/api/v1/domains/{name}/disconnect", post(disconnect_domain))
        .route("/api/v1/senders/{address}/suspend", post(suspend_sender))
        .route("/api/v1/senders/{address}/restore", post(restore_sender))
        .route("/api/v1/suspensions", get(list_suspensions))
        .route("/api/v1/governor", get(governor_status))
        .route("/api/v1/governor/scopes/{scope}", get(governor_scope))
        .route(
            "/api/v1/senders/{address}/limits",
            get(show_sender_limits)
                .put(set_sender_limits)
                .post(set_sender_limits)
                .delete(clear_sender_limits),
        )
        .route(
            "/api/v1/verification/{address}",
            delete(forget_verification),
        )
        .route("/api/v1/mta-sts", get(list_mta_sts))
        .route(
            "/api/v1/domains/{name}/limits",
            get(show_limits).put(set_limits).post(set_limits),
        )
        .route("/api/v1/connections", get(list_connections))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/queue", get(list_queue))
        .route("/api/v1/queue/counts", get(queue_counts))
        .route("/api/v1/queue/{id}", get(show_queued).delete(delete_queued))
        .route("/api/v1/queue/{id}/retry", post(retry_queued))
        .route("/api/v1/queue/{id}/hold", post(hold_queued))
        .route("/api/v1/queue/{id}/release", post(release_queued))
        .route("/api/v1/queue/retry-all", post(retry_all))
        .route(
            "/api/v1/applications",
            get(applications::list).post(applications::submit),
        )
        .route("/api/v1/applications/{id}", get(applications::show))
        .route(
            "/api/v1/applications/{id}/approve",
            post(applications::approve),
        )
        .route(
            "/api/v1/applications/{id}/reject",
            post(applications::reject),
        )
        .route(
            "/api/v1/applications/{id}/withdraw",
            post(applications::withdraw),
        )
        .with_state(state)
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
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    let list: Vec<_> = st.registry.list().iter().map(|d| (**d).clone()).collect();
    Ok(Json(list))
}

async fn show_domain(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
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
    Ok(Json(v))
}

async fn add_domain(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NewDomain>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let target = match &body {
        Ok(Json(n)) => n.name.to_string(),
        Err(_) => "(invalid request)".into(),
    };
    let reg = st.registry.clone();
    let rec = audited(
        &st,
        &headers,
        client,
        Role::Admin,
        "domain.add",
        target,
        move |_| {
            let Json(new) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
            Ok(reg.add_domain(new)?)
        },
    )
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

fn need_reason(
    body: Result<Json<ReasonBody>, axum::extract::rejection::JsonRejection>,
) -> Result<String, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
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

/// Runs an async queue operation from inside a blocking handler.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

async fn suspend_domain(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<ReasonBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), name.clone());
    let rec = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        "domain.suspend",
        name,
        move |caller| {
            let scope = Scope::Domain(parse_domain(&target)?);
            staff_suspend(&st2, &scope, &caller.name, &need_reason(body)?)
        },
    )
    .await?;
    Ok(Json(rec))
}

async fn restore_domain(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Option<Json<RestoreBody>>,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), name.clone());
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let rec = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        "domain.restore",
        name,
        move |caller| {
            let domain = parse_domain(&target)?;
            let (_, rec) = staff_restore(&st2, &Scope::Domain(domain), &caller.name, &body)?;
            rec.ok_or_else(|| ApiError::internal("no domain record after the restore"))
        },
    )
    .await?;
    Ok(Json(rec))
}

/// Staff suspend a scope: the record, its queued mail held, and the notices
/// to the contacts, the postmaster and the webhooks.
fn staff_suspend(
    st: &AdminState,
    scope: &Scope,
    actor: &str,
    reason: &str,
) -> Result<SuspensionRecord, ApiError> {
    let req = SuspendRequest::manual(actor, reason);
    let rec = match scope {
        Scope::Domain(d) => st.registry.suspend_domain(d, req)?,
        Scope::Sender(a) => st.registry.suspend_sender(a, req)?,
    };
    let held = block_on(crate::governor::actions::hold_scope_mail(
        &st.queue,
        &rec.scope,
        &format!("{} suspended: {reason}", rec.scope),
    ))?;
    tracing::info!(scope = %rec.scope, held, actor, "suspended by staff");
    block_on(st.governor.on_suspended(&rec, held));
    Ok(rec)
}

/// Staff restore a scope: the record closed, its held mail released or
/// deleted as `body` says, and the notices. Returns the ended suspension
/// (when on record) and, for a domain, its record.
fn staff_restore(
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
    let (ended, domain) = match scope {
        Scope::Domain(d) => {
            let active = st.registry.snapshot().suspension(scope).map(|s| s.id);
            let rec = st.registry.restore_domain(d, req)?;
            let ended = active.and_then(|id| st.registry.store().get_suspension(id).ok().flatten());
            (ended, Some(rec))
        }
        Scope::Sender(a) => (Some(st.registry.restore_sender(a, req)?), None),
    };
    let n = block_on(crate::governor::actions::release_scope_mail(
        &st.queue, scope, release,
    ))?;
    tracing::info!(scope = %scope, messages = n, release, actor, "restored by staff");
    // The contacts and webhooks hear of the restore like of the suspension.
    if let Some(e) = &ended {
        block_on(st.governor.on_restored(e));
    }
    Ok((ended, domain))
}

async fn disconnect_domain(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<ReasonBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let queue = st.queue.clone();
    let cfg = st.cfg.clone();
    let rec = audited(
        &st,
        &headers,
        client,
        Role::Admin,
        "domain.disconnect",
        name.clone(),
        move |_| {
            let domain = parse_domain(&name)?;
            let reason = need_reason(body)?;
            let rec = reg.disconnect_domain(&domain, &reason)?;
            match cfg.registration.disconnect_queued {
                crate::config::DisconnectQueued::Hold => {
                    block_on(crate::governor::actions::hold_scope_mail(
                        &queue,
                        &Scope::Domain(domain.clone()),
                        &format!("domain {domain} disconnected: {reason}"),
                    ))?;
                }
                // Due now: the scheduler sees the domain disconnected and bounces.
                crate::config::DisconnectQueued::Bounce => {
                    let d = domain.to_string();
                    block_on(queue.release_where(move |e| {
                        e.direction == ugem_queue::Direction::Outbound
                            && e.domain.as_deref() == Some(d.as_str())
                    }))?;
                    block_on(queue.retry_all(ugem_queue::unix_ms()))?;
                }
            }
            // The contacts learn of it by mail; a failed notice is reported, not raised.
            let text = crate::notify::notices::domain_disconnected(&cfg, &rec);
            let notice = applications::notify_contacts(&queue, &cfg, &rec.contacts, text);
            let mut out =
                serde_json::to_value(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
            out["notice"] = serde_json::to_value(notice).unwrap_or_default();
            Ok(out)
        },
    )
    .await?;
    Ok(Json(rec))
}

async fn suspend_sender(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(address): Path<String>,
    body: Result<Json<ReasonBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), address.clone());
    let rec = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        "sender.suspend",
        address,
        move |caller| {
            staff_suspend(
                &st2,
                &Scope::Sender(target),
                &caller.name,
                &need_reason(body)?,
            )
        },
    )
    .await?;
    Ok(Json(rec))
}

async fn restore_sender(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(address): Path<String>,
    body: Option<Json<RestoreBody>>,
) -> Result<impl IntoResponse, ApiError> {
    let (st2, target) = (st.clone(), address.clone());
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let rec = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        "sender.restore",
        address,
        move |caller| {
            staff_restore(&st2, &Scope::Sender(target), &caller.name, &body)?
                .0
                .ok_or_else(|| ApiError::internal("no suspension record after the restore"))
        },
    )
    .await?;
    Ok(Json(rec))
}

/// `DELETE /api/v1/verification/{address}`: drops the cached answer of the
/// domain's server for an inbound recipient.
async fn forget_verification(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (v, target) = (st.verifier.clone(), address.clone());
    let out = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        "verification.forget",
        address,
        move |_| {
            let forgotten = v.as_ref().is_some_and(|v| v.forget(&target));
            Ok(serde_json::json!({
                "address": target,
                "forgotten": forgotten,
                "verification": if v.is_some() { "on" } else { "off" },
            }))
        },
    )
    .await?;
    Ok(Json(out))
}

/// `GET /api/v1/mta-sts`: the MTA-STS policies in force for recipient domains.
async fn list_mta_sts(
    State(st): State<AdminState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    Ok(Json(
        st.mta_sts.as_ref().map(|m| m.list()).unwrap_or_default(),
    ))
}

/// `GET /api/v1/governor`: counters, throttled scopes, suspension counts.
async fn governor_status(
    State(st): State<AdminState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    Ok(Json(st.governor.status()))
}

/// `GET /api/v1/governor/scopes/{scope}`: one scope's detector state
/// ("a@b" for a sender, "b" for a domain).
async fn governor_scope(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(scope): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
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
) -> Result<std::sync::Arc<crate::store::domains::DomainRecord>, ApiError> {
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
    headers: HeaderMap,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
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
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(address): Path<String>,
    body: Result<Json<crate::store::domains::SenderLimits>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg.clone();
    let v = audited(
        &st,
        &headers,
        client,
        Role::Admin,
        "sender.limits",
        address.clone(),
        move |_| {
            let Json(limits) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
            let address = address.trim().to_ascii_lowercase();
            let rec = reg.set_sender_limits(&address, Some(limits))?;
            Ok(crate::governor::effective_sender_limits(&cfg, &rec, &address))
        },
    )
    .await?;
    Ok(Json(v))
}

/// `DELETE /api/v1/senders/{address}/limits`: withdraws a declaration.
async fn clear_sender_limits(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(address): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg.clone();
    let v = audited(
        &st,
        &headers,
        client,
        Role::Admin,
        "sender.limits.clear",
        address.clone(),
        move |_| {
            let address = address.trim().to_ascii_lowercase();
            let rec = reg.set_sender_limits(&address, None)?;
            Ok(crate::governor::effective_sender_limits(&cfg, &rec, &address))
        },
    )
    .await?;
    Ok(Json(v))
}

async fn show_limits(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
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
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<
        Json<crate::store::domains::DomainLimits>,
        axum::extract::rejection::JsonRejection,
    >,
) -> Result<impl IntoResponse, ApiError> {
    let reg = st.registry.clone();
    let cfg = st.cfg.clone();
    let v = audited(
        &st,
        &headers,
        client,
        Role::Admin,
        "domain.limits",
        name.clone(),
        move |_| {
            let domain = parse_domain(&name)?;
            let Json(limits) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
            let rec = reg.set_limits(&domain, Some(limits))?;
            Ok(crate::governor::effective_limits(&cfg, &rec))
        },
    )
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
    headers: HeaderMap,
    Query(q): Query<SuspensionQuery>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    Ok(Json(st.registry.suspensions(q.history)?))
}

async fn list_connections(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<ConnectionFilter>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
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
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    Ok(Json(st.store.list_audit(q.limit.unwrap_or(100))?))
}

async fn list_queue(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(f): Query<ugem_queue::ListFilter>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    let q = st.queue.clone();
    let list = tokio::task::spawn_blocking(move || q.list(&f))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(list))
}

async fn queue_counts(
    State(st): State<AdminState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
    let q = st.queue.clone();
    let c = tokio::task::spawn_blocking(move || q.counts())
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))??;
    Ok(Json(c))
}

async fn show_queued(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&st, &headers, Role::Viewer)?;
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
    client: SocketAddr,
    headers: HeaderMap,
    id: String,
    op: QueueOp,
    reason: Option<String>,
) -> Result<axum::response::Response, ApiError> {
    let action = match op {
        QueueOp::Retry => "queue.retry",
        QueueOp::Hold => "queue.hold",
        QueueOp::Release => "queue.release",
        QueueOp::Delete => "queue.delete",
    };
    let queue = st.queue.clone();
    let changed = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        action,
        id.clone(),
        move |caller| {
            let qid = parse_queue_id(&id)?;
            let done = match op {
                QueueOp::Retry => block_on(queue.retry(qid, ugem_queue::unix_ms()))?,
                QueueOp::Hold => block_on(queue.hold(
                    qid,
                    reason.unwrap_or_else(|| format!("held by {}", caller.name)),
                ))?,
                QueueOp::Release => block_on(queue.release(qid))?,
                QueueOp::Delete => block_on(queue.delete(qid))?,
            };
            if !done {
                return Err(ApiError::not_found(match op {
                    QueueOp::Release => format!("no held message {id} in the queue"),
                    _ => format!("no message {id} in the queue"),
                }));
            }
            Ok(())
        },
    )
    .await;
    changed.map(|()| Json(serde_json::json!({"ok": true})).into_response())
}

async fn retry_queued(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, client, headers, id, QueueOp::Retry, None).await
}

async fn hold_queued(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<HoldBody>>,
) -> Result<axum::response::Response, ApiError> {
    let reason = body.and_then(|Json(b)| b.reason);
    queue_op(st, client, headers, id, QueueOp::Hold, reason).await
}

async fn release_queued(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, client, headers, id, QueueOp::Release, None).await
}

async fn delete_queued(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    queue_op(st, client, headers, id, QueueOp::Delete, None).await
}

async fn retry_all(
    State(st): State<AdminState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let queue = st.queue.clone();
    let n = audited(
        &st,
        &headers,
        client,
        Role::Operator,
        "queue.retry_all",
        "*".into(),
        move |_| Ok(block_on(queue.retry_all(ugem_queue::unix_ms()))?),
    )
    .await?;
    Ok(Json(serde_json::json!({"retried": n})))
}

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
mod audit;
mod changes;
mod connections;
mod dkim;
mod domains;
mod governor;
mod health;
mod mailbox;
mod mta_sts;
mod queue;
mod queue_tools;
mod reconfirm;
mod reload;
mod reports;
mod senders;
mod server_suspensions;
mod servers;
mod suspensions;
mod tlsrpt;
mod verification;
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
    route("POST", "/api/v1/reload", ADMIN, "config.reload"),
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
    route("POST", "/api/v1/tlsrpt/send", ADMIN, "tlsrpt.send"),
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
    route("GET", "/api/v1/dkim", VIEWER, "dkim.list"),
    route(
        "GET",
        "/api/v1/domains/{name}/header-from",
        VIEWER,
        "domain.header_from.show",
    ),
    route(
        "PUT",
        "/api/v1/domains/{name}/header-from",
        ADMIN,
        "domain.header_from",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/header-from",
        ADMIN,
        "domain.header_from",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/dkim",
        ADMIN,
        "dkim.generate",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/dkim/rotate",
        ADMIN,
        "dkim.rotate",
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
    route("GET", "/api/v1/reports/{kind}", VIEWER, "report.show"),
    route(
        "GET",
        "/api/v1/reconfirm-due",
        VIEWER,
        "domain.reconfirm_due",
    ),
    route(
        "POST",
        "/api/v1/domains/{name}/confirm",
        OPERATOR,
        "domain.confirm",
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
        "ready" => on(m, health::readyz),
        "metrics" => on(m, health::metrics),
        "domain.list" => on(m, domains::list_domains),
        "domain.add" => on(m, domains::add_domain),
        "domain.show" => on(m, domains::show_domain),
        "domain.suspend" => on(m, domains::suspend_domain),
        "domain.restore" => on(m, domains::restore_domain),
        "domain.disconnect" => on(m, domains::disconnect_domain),
        "domain.limits.show" => on(m, domains::show_limits),
        "domain.limits" => on(m, domains::set_limits),
        "sender.suspend" => on(m, senders::suspend_sender),
        "sender.restore" => on(m, senders::restore_sender),
        "suspension.list" => on(m, suspensions::list_suspensions),
        "governor.status" => on(m, governor::governor_status),
        "governor.scope" => on(m, governor::governor_scope),
        "sender.limits.show" => on(m, senders::show_sender_limits),
        "sender.limits" => on(m, senders::set_sender_limits),
        "sender.limits.clear" => on(m, senders::clear_sender_limits),
        "verification.forget" => on(m, verification::forget_verification),
        "mta_sts.list" => on(m, mta_sts::list_mta_sts),
        "tlsrpt.send" => on(m, tlsrpt::send_reports),
        "connection.list" => on(m, connections::list_connections),
        "audit.list" => on(m, audit::list_audit),
        "queue.list" => on(m, queue::list_queue),
        "queue.counts" => on(m, queue::queue_counts),
        "queue.retry_all" => on(m, queue::retry_all),
        "config.reload" => on(m, reload::reload),
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
        "queue.show" => on(m, queue::show_queued),
        "queue.delete" => on(m, queue::delete_queued),
        "queue.retry" => on(m, queue::retry_queued),
        "queue.hold" => on(m, queue::hold_queued),
        "queue.release" => on(m, queue::release_queued),
        "application.list" => on(m, applications::list),
        "application.submit" => on(m, applications::submit),
        "application.show" => on(m, applications::show),
        "application.approve" => on(m, applications::approve),
        "application.reject" => on(m, applications::reject),
        "application.withdraw" => on(m, applications::withdraw),
        "dkim.list" => on(m, dkim::list),
        "domain.header_from.show" => on(m, domains::show_header_from),
        "domain.header_from" => on(m, domains::set_header_from),
        "dkim.generate" => on(m, dkim::generate),
        "dkim.rotate" => on(m, dkim::rotate),
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
        "report.show" => on(m, reports::report),
        "domain.reconfirm_due" => on(m, reconfirm::due),
        "domain.confirm" => on(m, reconfirm::confirm),
        other => panic!("route {} {}: no handler for `{other}`", r.method, r.path),
    }
}

/// The API, recording refused calls in `refused`. Each route gets the
/// authentication middleware with its own entry of [`ROUTES`].
pub fn api_router(state: AdminState, refused: Arc<RefusedLog>) -> Router {
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

/// The API's routes without the authentication middleware, for the staff
/// console, which checks its own sessions and roles and gives each call
/// its [`Authed`] (without one the handlers refuse with 401). Never served
/// on a listener.
pub(crate) fn unguarded_router(state: AdminState) -> Router {
    let mut r = Router::new();
    for spec in ROUTES {
        r = r.route(spec.path, handler(spec));
    }
    r.with_state(state)
}

fn parse_domain(name: &str) -> Result<Domain, ApiError> {
    Domain::parse(name).map_err(|e| ApiError::bad_request(format!("`{name}`: {e}")))
}

/// A registered domain by the name in the path, or 400/404.
fn registered(
    st: &AdminState,
    name: &str,
) -> Result<(Domain, Arc<crate::model::domains::DomainRecord>), ApiError> {
    let name = parse_domain(name)?;
    let rec = st
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("domain {name} is not registered")))?;
    Ok((name, rec))
}

/// Body of suspend and disconnect calls.
#[derive(Debug, Deserialize)]
pub struct ReasonBody {
    /// Why.
    pub reason: String,
}

fn need_reason(body: &JsonBody) -> Result<String, ApiError> {
    let b: ReasonBody = body.required()?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a reason is required"));
    }
    Ok(b.reason)
}

/// Runs an async queue operation from inside a blocking handler (one that
/// also reads the queue, whose reads block).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

fn parse_queue_id(id: &str) -> Result<ugem_queue::QueueId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not a queue id")))
}

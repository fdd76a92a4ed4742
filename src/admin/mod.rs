//! The admin HTTP API (axum): JSON, bearer tokens with roles, every mutating
//! call audited. The CLI's client side lives in [`client`].
//!
//! Every route is declared once, in [`ROUTES`], with the role it needs;
//! the router is built from that table and gives each route a middleware
//! that checks the token before the handler runs, so no request body is
//! read (or parsed) for a caller who may not make the call. Handlers
//! receive the caller through one extractor, [`Authed`]. Refused calls are
//! audited compactly ([`refused`]); the listener speaks HTTPS with
//! `admin.tls_cert` ([`tls`]). The staff console ([`console`]) is served
//! beside it under `/console`.

pub mod audit_csv;
pub mod auth;
pub mod client;
pub mod console;
pub mod refused;
mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tokio::sync::watch;

use crate::config::{Config, Live};
use crate::model::audit::AuditRecord;
use crate::registry::{Registry, RegistryError};
use crate::store::{LocalStore, RegistryStore, StoreError};
pub use auth::{Access, RouteSpec};
pub use auth::{Caller, LiveTokens, Tokens};
pub use refused::RefusedLog;
pub use routes::ROUTES;

/// What the API handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The domain registry.
    pub registry: Arc<Registry>,
    /// The node-local store (connection log, its file size).
    pub store: LocalStore,
    /// The registry's store, which keeps the audit trail.
    pub audit: Arc<dyn RegistryStore>,
    /// The spool, for holding and releasing a suspended scope's mail.
    pub queue: ugem_queue::Queue,
    /// Accepted tokens, rebuilt from `[admin]` after a reload.
    pub tokens: Arc<LiveTokens>,
    /// Set once every listener is up.
    pub ready: Arc<AtomicBool>,
    /// The configuration in force (registration rules, postmaster, tokens);
    /// `POST /api/v1/reload` reads its file again.
    pub live: Live,
    /// The governor: restore notices, counters for `GET /api/v1/governor`.
    pub governor: Arc<crate::governor::Governor>,
    /// Inbound recipient verification, whose cached answers staff may drop.
    pub verifier: Option<Arc<crate::delivery::verify::Verifier>>,
    /// Cached MTA-STS policies, which staff may list.
    pub mta_sts: Option<Arc<crate::delivery::mta_sts::MtaSts>>,
    /// DKIM keys: staff generate and rotate them here; signing follows.
    pub dkim: crate::dkim::Signers,
}

impl AdminState {
    /// The configuration in force now.
    pub fn cfg(&self) -> Arc<Config> {
        self.live.current()
    }

    /// The token table of the configuration in force.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens.of(&self.cfg())
    }

    /// True once the gateway serves mail.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// An API error: status plus a JSON body `{"error": ..., "kind": ...}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-readable kind.
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// A 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            message: message.into(),
        }
    }

    /// A 404 with a message.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found",
            message: message.into(),
        }
    }

    /// A 409 with a message.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            kind: "conflict",
            message: message.into(),
        }
    }

    /// A staff change refused because the shared store is out of reach,
    /// said so that staff know what is down and what still works.
    pub(crate) fn store_unreachable(detail: &str) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "unavailable",
            message: format!(
                "PostgreSQL (the shared registry) cannot be reached, so staff changes are refused until it answers; mail keeps flowing under the registry as last known and automatic decisions wait in each node's outbox ({detail})"
            ),
        }
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({"error": self.message, "kind": self.kind})),
        )
            .into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        if let RegistryError::Store(StoreError::Unavailable(detail)) = &e {
            return ApiError::store_unreachable(detail);
        }
        let (status, kind) = match &e {
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            RegistryError::Exists(_) | RegistryError::Overlap { .. } | RegistryError::State(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            RegistryError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            // Another writer kept winning the race: the caller may try again.
            RegistryError::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            RegistryError::Store(StoreError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            RegistryError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            kind,
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => ApiError::store_unreachable(&detail),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ugem_queue::QueueError> for ApiError {
    fn from(e: ugem_queue::QueueError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// The caller of a route that needs a token, with the route's audit action
/// and the client's address. Only the route's authentication middleware
/// makes one, before the handler and its body extractor run; on a route
/// without it the extractor refuses (401), so a handler cannot be reached
/// unauthenticated.
#[derive(Debug, Clone)]
pub struct Authed {
    /// Who.
    pub caller: Caller,
    /// The route's audit action, e.g. `domain.suspend`.
    pub action: &'static str,
    /// The client's address.
    pub client: SocketAddr,
    /// What the handler adds to the call's audit record.
    pub note: AuditNote,
}

/// What a handler adds to its call's audit record: the reason and what
/// changed (before/after). Shared by the clones of one call's [`Authed`],
/// so a handler notes inside [`audited`] and the record written after it
/// carries the note.
#[derive(Debug, Clone, Default)]
pub struct AuditNote(Arc<std::sync::Mutex<Noted>>);

#[derive(Debug, Default)]
struct Noted {
    reason: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

impl AuditNote {
    fn with<R>(&self, f: impl FnOnce(&mut Noted) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The call's reason (as the caller gave it).
    pub fn reason(&self, reason: &str) {
        let r: String = reason.chars().take(AUDIT_REASON_MAX).collect();
        self.with(|n| n.reason = Some(r));
    }

    /// What the call changed: the changed fields or the state, before and after.
    pub fn change(&self, before: serde_json::Value, after: serde_json::Value) {
        self.with(|n| {
            n.before = Some(before);
            n.after = Some(after);
        });
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Authed>()
            .cloned()
            .ok_or_else(|| ApiError {
                status: StatusCode::UNAUTHORIZED,
                kind: "unauthorized",
                message: "not authenticated".into(),
            })
    }
}

/// A request body, read only after authentication and parsed by the
/// handler inside [`audited`], so that a malformed one is audited as an
/// error like any other failed call. An empty body is "no body".
#[derive(Debug)]
pub struct JsonBody {
    bytes: axum::body::Bytes,
    json: bool,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m.ends_with("+json")
            })
            .unwrap_or(false);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(JsonBody { bytes, json })
    }
}

impl JsonBody {
    /// The body as `T`, or None when it is empty.
    pub fn optional<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if !self.json {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                kind: "unsupported_media_type",
                message: "the body must be JSON (Content-Type: application/json)".into(),
            });
        }
        serde_json::from_slice(&self.bytes)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }

    /// The body as `T`; an empty body is refused.
    pub fn required<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.optional()?
            .ok_or_else(|| ApiError::bad_request("a JSON body is required"))
    }

    /// The body as `T`, its default when empty.
    pub fn or_default<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        Ok(self.optional()?.unwrap_or_default())
    }
}

/// Longest reason kept in an audit record.
const AUDIT_REASON_MAX: usize = 1000;

/// Longest audit target kept from an authenticated call.
const AUDIT_TARGET_MAX: usize = 256;

/// Runs a mutating call for an authenticated caller, then writes an audit
/// record whatever the outcome.
pub async fn audited<T, F, Fut>(
    state: &AdminState,
    who: &Authed,
    target: String,
    f: F,
) -> Result<T, ApiError>
where
    F: FnOnce(Caller) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let result = f(who.caller.clone()).await;
    record(state, who, target, &result).await;
    result
}

/// [`audited`] for a call that blocks (the queue's reads): `f` runs on
/// the blocking pool.
pub async fn audited_blocking<T, F>(
    state: &AdminState,
    who: &Authed,
    target: String,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Caller) -> Result<T, ApiError> + Send + 'static,
{
    audited_blocking_as(state, who, move |_| target, f).await
}

/// [`audited_blocking`] whose audit target is written once the call is
/// done, so it can name what the call did (a bulk queue operation's count).
pub async fn audited_blocking_as<T, F>(
    state: &AdminState,
    who: &Authed,
    target: impl FnOnce(&Result<T, ApiError>) -> String,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Caller) -> Result<T, ApiError> + Send + 'static,
{
    let caller = who.caller.clone();
    let result = tokio::task::spawn_blocking(move || f(caller))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("handler failed: {e}"))));
    let target = target(&result);
    record(state, who, target, &result).await;
    result
}

/// Writes the audit record of a call that ended with `result`.
async fn record<T>(state: &AdminState, who: &Authed, target: String, result: &Result<T, ApiError>) {
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error: {}", e.message),
    };
    let mut target: String = target.chars().take(AUDIT_TARGET_MAX).collect();
    target.retain(|c| !c.is_control());
    let (reason, before, after) = who
        .note
        .with(|n| (n.reason.take(), n.before.take(), n.after.take()));
    let rec = AuditRecord {
        seq: 0,
        at: Utc::now(),
        actor: who.caller.name.clone(),
        action: who.action.into(),
        target,
        client: Some(who.client.to_string()),
        outcome,
        count: 1,
        reason,
        // A change that failed did not happen.
        before: before.filter(|_| result.is_ok()),
        after: after.filter(|_| result.is_ok()),
    };
    if let Err(e) = state.audit.append_audit(&rec).await {
        tracing::error!(error = %e, action = who.action, "audit record not written");
    }
}

/// How often gathered counts of refused calls are written.
const REFUSED_FLUSH: Duration = Duration::from_secs(5);
/// How often old records of refused calls are pruned.
const REFUSED_PRUNE: Duration = Duration::from_secs(3600);

/// The whole admin listener: the API and the staff console beside it.
pub fn router(state: AdminState) -> axum::Router {
    let refused = Arc::new(RefusedLog::new(state.audit.clone()));
    router_with(state, refused)
}

/// [`router`], recording refused calls in `refused`.
pub fn router_with(state: AdminState, refused: Arc<RefusedLog>) -> axum::Router {
    let console = console::router(state.clone(), refused.clone());
    routes::api_router(state, refused).merge(console)
}

/// Binds `admin.listen` and serves the API on it (HTTPS when `admin.tls_cert`
/// is set) until `stop` turns true; also keeps the records of refused calls
/// compact and pruned. Logs the configuration's warnings about the API.
/// Returns the bound address and the task, which ends once the API has
/// stopped and the last counts are written.
pub async fn serve(
    state: AdminState,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::serve::ListenerExt;
    let cfg = state.cfg();
    for w in cfg.warnings() {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    let tls = match (&cfg.admin.tls_cert, &cfg.admin.tls_key) {
        (Some(c), Some(k)) => Some(tls::load(c, k).context("cannot load admin.tls_cert")?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.admin.listen)
        .await
        .with_context(|| format!("cannot listen on admin.listen {}", cfg.admin.listen))?;
    let addr = listener.local_addr()?;
    let refused =
        Arc::new(RefusedLog::new(state.audit.clone()).with_outbox(state.registry.clone()));
    let upkeep = tokio::spawn(refused_upkeep(
        refused.clone(),
        state.audit.clone(),
        (
            cfg.admin.audit_refused_retention.0,
            cfg.admin.audit_retention.0,
        ),
        stop.clone(),
    ));
    let app =
        router_with(state, refused.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move { crate::shutdown::stopped(&mut stop).await };
    let task = tokio::spawn(async move {
        // tap_io: the generic Connected impl then gives ConnectInfo<SocketAddr>.
        let r = match tls {
            Some(tls) => match tls::TlsListener::new(listener, tls) {
                Ok(l) => {
                    axum::serve(l.tap_io(|_| {}), app)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
                Err(e) => Err(e),
            },
            None => {
                axum::serve(listener.tap_io(|_| {}), app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "admin API stopped");
        }
        let _ = upkeep.await;
        refused.flush().await;
    });
    Ok((addr, task))
}

/// Writes the gathered counts of refused calls every few seconds and prunes
/// their old records every hour, and every record older than the audit
/// retention (`(refused, all)`), until `stop`.
async fn refused_upkeep(
    refused: Arc<RefusedLog>,
    store: Arc<dyn RegistryStore>,
    (retention, audit_retention): (Duration, Duration),
    mut stop: watch::Receiver<bool>,
) {
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= REFUSED_PRUNE) {
            last_prune = Some(std::time::Instant::now());
            let before = Utc::now()
                - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
            match store.prune_refused_audit(before).await {
                Ok(n) if n > 0 => {
                    tracing::info!(pruned = n, "old records of refused admin calls pruned")
                }
                Err(e) => tracing::warn!(error = %e, "pruning refused admin calls failed"),
                _ => {}
            }
            let before = chrono::Duration::from_std(audit_retention)
                .ok()
                .and_then(|d| Utc::now().checked_sub_signed(d));
            if let Some(before) = before {
                match store.prune_audit(before).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(pruned = n, before = %before, "audit records older than admin.audit_retention purged")
                    }
                    Err(e) => tracing::warn!(error = %e, "purging old audit records failed"),
                    _ => {}
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REFUSED_FLUSH) => {}
            _ = crate::shutdown::stopped(&mut stop) => return,
        }
        refused.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_out_of_reach_is_503_other_store_trouble_500() {
        let down = || StoreError::Unavailable("connection refused".into());
        let e = ApiError::from(RegistryError::Store(down()));
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        // Staff read what is down and what is refused.
        assert!(
            e.message
                .starts_with("PostgreSQL (the shared registry) cannot be reached")
                && e.message.contains("staff changes are refused")
                && e.message.contains("connection refused"),
            "{}",
            e.message
        );
        assert_eq!(
            ApiError::from(down()).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let e = ApiError::from(RegistryError::Store(StoreError::Backend("disk".into())));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        let e = ApiError::from(RegistryError::Store(StoreError::Conflict("raced".into())));
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}

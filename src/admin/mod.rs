//! The admin HTTP API (axum): JSON, bearer tokens with roles, every mutating
//! call audited. The CLI's client side lives in [`client`].

pub mod auth;
pub mod client;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::config::Role;
use crate::registry::{Registry, RegistryError};
use crate::store::audit::AuditRecord;
use crate::store::{Store, StoreError};
pub use auth::{Caller, Tokens};
pub use routes::router;

/// What the API handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The domain registry.
    pub registry: Arc<Registry>,
    /// The store (audit, connections).
    pub store: Store,
    /// The spool, for holding and releasing a suspended scope's mail.
    pub queue: ugem_queue::Queue,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
    /// Set once every listener is up.
    pub ready: Arc<AtomicBool>,
    /// The configuration (registration rules, postmaster, resolver).
    pub cfg: Arc<crate::config::Config>,
    /// The governor: restore notices, counters for `GET /api/v1/governor`.
    pub governor: Arc<crate::governor::Governor>,
    /// Inbound recipient verification, whose cached answers staff may drop.
    pub verifier: Option<Arc<crate::delivery::verify::Verifier>>,
    /// Cached MTA-STS policies, which staff may list.
    pub mta_sts: Option<Arc<crate::delivery::mta_sts::MtaSts>>,
}

impl AdminState {
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
        let (status, kind) = match &e {
            RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            RegistryError::Exists(_) | RegistryError::Overlap { .. } | RegistryError::State(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            RegistryError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
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
        ApiError::internal(e.to_string())
    }
}

impl From<ugem_queue::QueueError> for ApiError {
    fn from(e: ugem_queue::QueueError) -> Self {
        ApiError::internal(e.to_string())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Checks the bearer token and the role it needs.
pub fn authorize(state: &AdminState, headers: &HeaderMap, need: Role) -> Result<Caller, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message: "missing bearer token (Authorization: Bearer TOKEN)".into(),
        });
    };
    let Some(caller) = state.tokens.verify(token) else {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message: "unknown token".into(),
        });
    };
    if caller.role < need {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            kind: "forbidden",
            message: format!(
                "token `{}` has role {:?}; this needs {:?}",
                caller.name, caller.role, need
            )
            .to_lowercase(),
        });
    }
    Ok(caller)
}

/// Runs a mutating call: authorizes, runs `f` off the async runtime (store
/// writes fsync), and appends an audit record whatever the outcome.
pub async fn audited<T, F>(
    state: &AdminState,
    headers: &HeaderMap,
    client: SocketAddr,
    need: Role,
    action: &'static str,
    target: String,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(Caller) -> Result<T, ApiError> + Send + 'static,
{
    let caller = authorize(state, headers, need);
    // A known token with too low a role is recorded under its own name.
    let actor = match &caller {
        Ok(c) => c.name.clone(),
        Err(_) => bearer(headers)
            .and_then(|t| state.tokens.verify(t))
            .map(|c| c.name)
            .unwrap_or_else(|| "(unauthenticated)".into()),
    };
    let result = match caller {
        Ok(c) => tokio::task::spawn_blocking(move || f(c))
            .await
            .unwrap_or_else(|e| Err(ApiError::internal(format!("handler failed: {e}")))),
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::FORBIDDEN => {
            "denied".into()
        }
        Err(e) => format!("error: {}", e.message),
    };
    let rec = AuditRecord {
        seq: 0,
        at: Utc::now(),
        actor,
        action: action.into(),
        target,
        client: Some(client.to_string()),
        outcome,
    };
    let store = state.store.clone();
    let written = tokio::task::spawn_blocking(move || store.append_audit(&rec)).await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, action, "audit record not written"),
        Err(e) => tracing::error!(error = %e, action, "audit task failed"),
    }
    result
}

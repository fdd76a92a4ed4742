//! Bearer tokens with roles, compared in constant time, and the middleware
//! that checks them before any handler runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AdminState, ApiError, Authed, RefusedLog};
use crate::config::{AdminSection, Config, Role};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health checks and the Prometheus scrape.
    Public,
    /// A bearer token with at least this role.
    Token(Role),
}

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, axum syntax (`/api/v1/domains/{name}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Its name in the audit log (and the handler it maps to).
    pub action: &'static str,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (the audit actor).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// The configured tokens, kept only as SHA-256 digests.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<(String, Role, [u8; 32])>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Builds the token table from `[admin]` (already validated).
    pub fn from_config(admin: &AdminSection) -> Tokens {
        let mut entries = Vec::new();
        if let Some(t) = &admin.token {
            entries.push(("admin".to_string(), Role::Admin, digest(t)));
        }
        for t in &admin.tokens {
            let hash = match (&t.token, &t.sha256) {
                (Some(tok), _) => digest(tok),
                (None, Some(h)) => {
                    let mut out = [0u8; 32];
                    if hex::decode_to_slice(h, &mut out).is_err() {
                        continue;
                    }
                    out
                }
                (None, None) => continue,
            };
            entries.push((t.name.clone(), t.role, hash));
        }
        Tokens { entries }
    }

    /// The caller a presented token belongs to. Every entry is compared, so
    /// the time taken does not tell which one matched or how much of it.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let d = digest(presented);
        let mut found = None;
        for (name, role, hash) in &self.entries {
            if bool::from(hash.ct_eq(&d)) && found.is_none() {
                found = Some(Caller {
                    name: name.clone(),
                    role: *role,
                });
            }
        }
        found
    }
}

/// The token table of the configuration last seen, built again when a
/// reload put another configuration in force.
#[derive(Debug, Default)]
pub struct LiveTokens {
    built: Mutex<Option<(Arc<Config>, Arc<Tokens>)>>,
}

impl LiveTokens {
    /// The tokens of `cfg`: the table built before when `cfg` is the same
    /// configuration (the same `Arc`), else a new one.
    pub fn of(&self, cfg: &Arc<Config>) -> Arc<Tokens> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        match &*built {
            Some((seen, tokens)) if Arc::ptr_eq(seen, cfg) => tokens.clone(),
            _ => {
                let tokens = Arc::new(Tokens::from_config(&cfg.admin));
                *built = Some((cfg.clone(), tokens.clone()));
                tokens
            }
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The caller a request's bearer token names, if it may do what `need`
/// asks; else the refusal and the actor to audit it under (a known token
/// with too low a role under its own name).
pub fn check(
    tokens: &Tokens,
    headers: &HeaderMap,
    need: Role,
) -> Result<Caller, (ApiError, String)> {
    let unauthorized = |message: &str| {
        (
            ApiError {
                status: StatusCode::UNAUTHORIZED,
                kind: "unauthorized",
                message: message.into(),
            },
            super::refused::UNAUTHENTICATED.to_string(),
        )
    };
    let Some(token) = bearer(headers) else {
        return Err(unauthorized(
            "missing bearer token (Authorization: Bearer TOKEN)",
        ));
    };
    let Some(caller) = tokens.verify(token) else {
        return Err(unauthorized("unknown token"));
    };
    if caller.role < need {
        let message = format!(
            "token `{}` has role {:?}; this needs {:?}",
            caller.name, caller.role, need
        )
        .to_lowercase();
        return Err((
            ApiError {
                status: StatusCode::FORBIDDEN,
                kind: "forbidden",
                message,
            },
            caller.name,
        ));
    }
    Ok(caller)
}

/// What the authentication middleware of one route needs.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) admin: AdminState,
    pub(crate) refused: Arc<RefusedLog>,
    /// The route it guards.
    pub(crate) route: &'static RouteSpec,
}

/// Runs on every route of [`super::ROUTES`] before its handler (and so
/// before any body is read): checks the token for the role the route
/// needs, audits a refusal (compacted) and answers 401/403, or hands the
/// handler an [`Authed`].
pub(crate) async fn authenticate(
    State(st): State<Guard>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let action = st.route.action;
    let need = match st.route.access {
        Access::Public => return next.run(req).await,
        Access::Token(role) => role,
    };
    match check(&st.admin.tokens(), req.headers(), need) {
        Ok(caller) => {
            req.extensions_mut().insert(Authed {
                caller,
                action,
                client,
                note: Default::default(),
            });
            next.run(req).await
        }
        Err((err, actor)) => {
            crate::metrics::admin_refused(err.status.as_u16());
            let target = req.uri().path().to_string();
            st.refused.note(client.ip(), &actor, action, &target).await;
            err.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenEntry;

    #[test]
    fn the_token_table_follows_the_configuration_in_force() {
        let mut cfg = Config::default();
        cfg.admin.token = Some("first-token-0123456789".into());
        let first = Arc::new(cfg.clone());
        let live = LiveTokens::default();
        let a = live.of(&first);
        assert!(
            Arc::ptr_eq(&a, &live.of(&first)),
            "built once per configuration"
        );
        assert!(a.verify("first-token-0123456789").is_some());
        cfg.admin.token = Some("second-token-0123456789".into());
        let b = live.of(&Arc::new(cfg));
        assert!(b.verify("first-token-0123456789").is_none());
        assert!(b.verify("second-token-0123456789").is_some());
    }

    #[test]
    fn plain_and_hashed_tokens() {
        let admin = AdminSection {
            token: Some("root-token-123".into()),
            tokens: vec![
                TokenEntry {
                    name: "desk".into(),
                    role: Role::Viewer,
                    token: None,
                    sha256: Some(hex::encode(digest("viewer-token-1"))),
                },
                TokenEntry {
                    name: "ops".into(),
                    role: Role::Operator,
                    token: Some("operator-token".into()),
                    sha256: None,
                },
            ],
            ..AdminSection::default()
        };
        let t = Tokens::from_config(&admin);
        assert_eq!(t.verify("root-token-123").unwrap().role, Role::Admin);
        assert_eq!(t.verify("viewer-token-1").unwrap().name, "desk");
        assert_eq!(t.verify("operator-token").unwrap().role, Role::Operator);
        assert!(t.verify("operator-token ").is_none());
        assert!(t.verify("").is_none());
    }
}

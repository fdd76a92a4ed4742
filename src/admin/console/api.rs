//! The console's one way to read or change anything: the API's own route,
//! called in-process. The console builds the request the API route takes
//! (method, path, query, JSON body), checks the caller's role against the
//! route's entry in [`ROUTES`], and hands it to the route's handler with the
//! caller as [`Authed`], so every action runs the same code and is audited
//! under the person's token name exactly as over HTTP.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::super::auth::{Access, Caller, RouteSpec};
use super::super::{Authed, ROUTES, RefusedLog};

/// Largest API answer the console reads (a long queue listing).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// An API call that did not succeed: the API's status and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct CallError {
    /// The API's status (403 when the role is too low).
    pub status: StatusCode,
    /// The API's error message.
    pub message: String,
}

/// The route `method template`, which must be in [`ROUTES`].
pub fn spec(method: &str, template: &str) -> &'static RouteSpec {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == template)
        .unwrap_or_else(|| panic!("console: no API route {method} {template}"))
}

/// Whether `caller` may call `method template`.
pub fn may(caller: &Caller, method: &str, template: &str) -> bool {
    match spec(method, template).access {
        Access::Public => true,
        Access::Token(need) => caller.role >= need,
    }
}

pub use crate::admin::client::encode;

/// `template` with its `{placeholders}` replaced by `args` in order.
pub fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = template;
    let mut args = args.iter();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&encode(args.next().copied().unwrap_or("")));
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// One call of an API route for the console.
pub struct Call<'a> {
    /// The API routes without their token middleware.
    pub api: &'a Router,
    /// Where refusals are recorded, as the API records them.
    pub refused: &'a RefusedLog,
    /// The signed-in person.
    pub caller: &'a Caller,
    /// The browser's address.
    pub client: SocketAddr,
}

impl Call<'_> {
    /// Calls `method template` (placeholders filled from `args`) with the
    /// query pairs and JSON body; the answer's JSON, or the API's error.
    pub async fn run(
        &self,
        method: &str,
        template: &str,
        args: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        let spec = spec(method, template);
        let mut path = fill(template, args);
        if let Access::Token(need) = spec.access
            && self.caller.role < need
        {
            // Refused as the API refuses it: counted, audited compactly.
            crate::metrics::admin_refused(403);
            self.refused
                .note(self.client.ip(), &self.caller.name, spec.action, &path)
                .await;
            return Err(CallError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "token `{}` has role {:?}; this needs {:?}",
                    self.caller.name, self.caller.role, need
                )
                .to_lowercase(),
            });
        }
        let q: Vec<String> = query
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        if !q.is_empty() {
            path = format!("{path}?{}", q.join("&"));
        }
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| internal(e.to_string()))?;
        let mut req = Request::builder().method(method).uri(path);
        let body = match body {
            Some(v) => {
                req = req.header(axum::http::header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| internal(e.to_string()))?;
        req.extensions_mut().insert(Authed {
            caller: self.caller.clone(),
            action: spec.action,
            client: self.client,
            note: Default::default(),
        });
        let resp = self
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            Ok(v)
        } else {
            let message = v["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            Err(CallError { status, message })
        }
    }
}

fn internal(message: String) -> CallError {
    CallError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    #[test]
    fn placeholders_are_filled_and_encoded() {
        assert_eq!(
            fill("/api/v1/domains/{name}/suspend", &["a.example.kz"]),
            "/api/v1/domains/a.example.kz/suspend"
        );
        assert_eq!(
            fill("/api/v1/senders/{address}/restore", &["x y/z@a"]),
            "/api/v1/senders/x%20y%2Fz%40a/restore"
        );
    }

    #[test]
    fn roles_follow_the_api_table() {
        let viewer = Caller {
            name: "desk".into(),
            role: Role::Viewer,
        };
        let operator = Caller {
            name: "duty".into(),
            role: Role::Operator,
        };
        let suspend = "/api/v1/domains/{name}/suspend";
        assert!(!may(&viewer, "POST", suspend));
        assert!(may(&operator, "POST", suspend));
        assert!(!may(&operator, "POST", "/api/v1/applications/{id}/approve"));
        assert!(may(&viewer, "GET", "/api/v1/domains"));
    }
}

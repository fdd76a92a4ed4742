//! The CLI's side of the admin API: a small blocking HTTP client.

use std::time::Duration;

/// Why an API call failed, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address.
    #[error(
        "cannot reach the ugem admin API at {url}: {detail} (is `ugem serve` running? check --admin or [admin] listen)"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// The transport error.
        detail: String,
    },
    /// No token, or an unknown one.
    #[error("not authorized: {0} (set UGEM_ADMIN_TOKEN)")]
    Unauthorized(String),
    /// The token's role is too low.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// Any other refusal.
    #[error("{message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// A client for one gateway's admin API.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl AdminClient {
    /// `base` is like `http://127.0.0.1:8025`; an `https://` one is checked
    /// against the system's CAs.
    pub fn new(base: &str, token: Option<String>) -> AdminClient {
        Self::with_roots(base, token, crate::trust::system_certs().to_vec())
    }

    /// Like [`AdminClient::new`]; an `https://` API must present a
    /// certificate that `roots` vouch for.
    pub fn with_roots(
        base: &str,
        token: Option<String>,
        roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    ) -> AdminClient {
        Self::with_roots_timeout(base, token, roots, Duration::from_secs(30))
    }

    /// Like [`AdminClient::with_roots`], each call given up after `timeout`.
    pub fn with_roots_timeout(
        base: &str,
        token: Option<String>,
        roots: Vec<rustls_pki_types::CertificateDer<'static>>,
        timeout: Duration,
    ) -> AdminClient {
        let roots: Vec<ureq::tls::Certificate<'static>> = roots
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build()
            .into();
        AdminClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET a path, returning the JSON body.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let mut req = self.agent.get(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(req.call())
    }

    /// POST JSON to a path, returning the JSON body.
    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let mut req = self.agent.post(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(req.send_json(body))
    }

    /// DELETE a path, returning the JSON body.
    pub fn delete(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let mut req = self.agent.delete(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(req.call())
    }

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<serde_json::Value, ClientError> {
        let resp = r.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: e.to_string(),
            })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let message = json
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| text.trim().to_string());
        Err(match status {
            401 => ClientError::Unauthorized(message),
            403 => ClientError::Forbidden(message),
            404 => ClientError::NotFound(message),
            _ => ClientError::Api { status, message },
        })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a
/// query value).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes one path segment (addresses hold `@` and `+`).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! `[admin]`: the HTTP API, its tokens and roles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::values::{Span, parse_from_str};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Suspend, restore, queue operations.
    Operator,
    /// Everything.
    Admin,
}

/// One admin API token.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who uses it; recorded as the actor in the audit log.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The token in clear text.
    pub token: Option<String>,
    /// Or its SHA-256, as 64 hex digits (`printf %s TOKEN | sha256sum`).
    pub sha256: Option<String>,
}

/// `[admin]`: the HTTP API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin API.
    #[serde(deserialize_with = "parse_from_str")]
    pub listen: SocketAddr,
    /// A single admin token (actor name `admin`); simplest setups.
    pub token: Option<String>,
    /// Named tokens with roles.
    pub tokens: Vec<TokenEntry>,
    /// PEM certificate chain; the API speaks HTTPS when set (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) the CLI trusts for the API's certificate, when
    /// it reads the address from this file; default: `tls_cert` itself and
    /// the system's CAs. `--ca` overrides it.
    pub tls_ca_file: Option<PathBuf>,
    /// How long audit records of refused calls (no token, unknown token,
    /// role too low) are kept; staff actions are kept for good.
    pub audit_refused_retention: Span,
    /// How long every audit record (staff's, the gateway's own) is kept
    /// before the hourly purge removes it.
    pub audit_retention: Span,
    /// A staff console session ends after this long without a request.
    pub console_idle_timeout: Span,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:8025".parse().expect("valid default"),
            token: None,
            tokens: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_ca_file: None,
            audit_refused_retention: Span(Duration::from_secs(30 * 86_400)),
            audit_retention: Span(Duration::from_secs(AUDIT_RETENTION_SECS)),
            console_idle_timeout: Span(Duration::from_secs(30 * 60)),
        }
    }
}

/// The default retention of the audit trail: five years as the duration
/// syntax counts them (`5y`, years of 365.25 days), so that the shipped
/// `audit_retention = "5y"` is the default, not a change.
const AUDIT_RETENTION_SECS: u64 = 5 * 31_557_600;

/// The token shipped in the embedded configuration.
pub const SHIPPED_TOKEN: &str = "change-me-now";

/// Clear-text tokens shorter than this are weak: refused beyond loopback.
pub const STRONG_TOKEN_LEN: usize = 20;

impl AdminSection {
    /// Whether the API listens on a loopback address only.
    pub fn is_loopback(&self) -> bool {
        self.listen.ip().is_loopback()
    }

    /// Whether the API speaks HTTPS.
    pub fn has_tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    /// Tokens that anyone could guess: the shipped one (also by its
    /// SHA-256) or clear-text ones shorter than [`STRONG_TOKEN_LEN`], with
    /// the key that holds each and why.
    pub fn weak_tokens(&self) -> Vec<(String, String)> {
        use sha2::Digest;
        let shipped_hash = hex::encode(sha2::Sha256::digest(SHIPPED_TOKEN.as_bytes()));
        let judge = |t: &str| -> Option<String> {
            if t == SHIPPED_TOKEN {
                Some(format!("`{SHIPPED_TOKEN}` is the token shipped with ugem"))
            } else if t.chars().count() < STRONG_TOKEN_LEN {
                Some(format!(
                    "the token has {} characters; at least {STRONG_TOKEN_LEN} are needed (e.g. `openssl rand -hex 24`)",
                    t.chars().count()
                ))
            } else {
                None
            }
        };
        let mut out = Vec::new();
        if let Some(t) = &self.token
            && let Some(why) = judge(t)
        {
            out.push(("admin.token".to_string(), why));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let why = match (&t.token, &t.sha256) {
                (Some(tok), _) => judge(tok),
                (None, Some(h)) if h.eq_ignore_ascii_case(&shipped_hash) => Some(format!(
                    "the sha256 is that of `{SHIPPED_TOKEN}`, the token shipped with ugem"
                )),
                _ => None,
            };
            if let Some(why) = why {
                out.push((format!("admin.tokens[{i}]"), why));
            }
        }
        out
    }

    /// What is wrong with the section's values (and whether its
    /// certificate files load).
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| out.push(ConfigProblem::new(key, message));
        if self.token.is_none() && self.tokens.is_empty() {
            bad(
                "admin.token",
                "no admin token: set admin.token or add [[admin.tokens]]".into(),
            );
        }
        if matches!(&self.token, Some(t) if t.len() < 8) {
            bad("admin.token", "tokens must be at least 8 characters".into());
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{i}]");
            match (&t.token, &t.sha256) {
                (Some(_), Some(_)) | (None, None) => {
                    bad(&key, "give exactly one of `token` and `sha256`".into())
                }
                (Some(tok), None) if tok.len() < 8 => {
                    bad(&key, "tokens must be at least 8 characters".into())
                }
                (None, Some(h)) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    bad(&key, "sha256 must be 64 hex digits".into())
                }
                _ => {}
            }
            if t.name.trim().is_empty() {
                bad(&key, "name must not be empty".into());
            }
        }
        if !self.is_loopback() {
            for (key, why) in self.weak_tokens() {
                bad(
                    &key,
                    format!(
                        "weak admin token: {why}; refused because admin.listen {} is not loopback",
                        self.listen
                    ),
                );
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bad("admin.tls_key", "tls_cert is set but tls_key is not".into()),
            (None, Some(_)) => bad(
                "admin.tls_cert",
                "tls_key is set but tls_cert is not".into(),
            ),
            (Some(c), Some(k)) => {
                if let Err(e) = crate::tls::load(c, k) {
                    bad("admin.tls_cert", e.to_string());
                }
            }
            (None, None) => {}
        }
        if let Some(p) = &self.tls_ca_file
            && let Err(e) = crate::trust::load_roots(p)
        {
            bad("admin.tls_ca_file", e.to_string());
        }
        if self.audit_refused_retention.0 < Duration::from_secs(3600) {
            bad(
                "admin.audit_refused_retention",
                "must be at least 1h".into(),
            );
        }
        if self.audit_retention.0 < Duration::from_secs(86_400) {
            bad("admin.audit_retention", "must be at least 1d".into());
        }
        if self.console_idle_timeout.0 < Duration::from_secs(60) {
            bad("admin.console_idle_timeout", "must be at least 1m".into());
        }
        out
    }

    /// What is allowed but unwise: a weak token on loopback, an API beyond
    /// loopback without TLS.
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.is_loopback() {
            for (key, why) in self.weak_tokens() {
                out.push(ConfigProblem::new(
                    key,
                    format!(
                        "weak admin token: {why}; accepted only because admin.listen {} is loopback",
                        self.listen
                    ),
                ));
            }
        } else if !self.has_tls() {
            out.push(ConfigProblem::new(
                "admin.listen",
                format!(
                    "the admin API listens on {} beyond loopback without TLS: tokens cross the network in clear; set admin.tls_cert and admin.tls_key",
                    self.listen
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{keys, load};
    use crate::config::{Config, ConfigSource, EMBEDDED_DEFAULT};

    #[test]
    fn the_shipped_audit_retention_is_the_default_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            shipped.admin.audit_retention,
            AdminSection::default().audit_retention
        );
        let a = AdminSection {
            audit_retention: "12h".parse().unwrap(),
            ..Default::default()
        };
        let problems = a.check();
        assert!(
            problems
                .iter()
                .any(|p| format!("{p:?}").contains("admin.audit_retention")),
            "{problems:?}"
        );
    }

    #[test]
    fn weak_admin_tokens_are_refused_beyond_loopback_and_warned_on_it() {
        // The shipped configuration: loopback, so a warning, not a refusal.
        let dir = tempfile::tempdir().unwrap();
        let shipped = Config::load_with_env(
            &ConfigSource::Text {
                text: EMBEDDED_DEFAULT.into(),
                base: dir.path().into(),
            },
            &[],
        )
        .unwrap();
        // (Only the API's: the calendar's depend on the date.)
        let admin_only = |c: &Config| -> Vec<ConfigProblem> {
            c.warnings()
                .into_iter()
                .filter(|p| p.key.starts_with("admin."))
                .collect()
        };
        let w = admin_only(&shipped);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "admin.token");
        assert!(w[0].message.contains("change-me-now"), "{}", w[0]);
        // The same token on a routable address: refused, naming the key.
        let wide = |token_lines: &str| {
            load(
                &format!("[admin]\nlisten = \"0.0.0.0:8025\"\n{token_lines}"),
                &[],
            )
        };
        let err = wide("token = \"change-me-now\"\n").unwrap_err();
        assert_eq!(keys(&err), vec!["admin.token"], "{err}");
        assert!(err.to_string().contains("not loopback"), "{err}");
        // Short tokens, in either form, and the shipped one by its hash.
        let sha = "5f1a2ec0aefd0b2d5e4b3d7bbc3bcd86d4b0f6f6b4e6cc71a4b3e9d20ee6b58c";
        let err = wide(&format!(
            "tokens = [{{ name = \"ops\", role = \"operator\", token = \"0123456789abcdef\" }}, {{ name = \"x\", role = \"viewer\", sha256 = \"{}\" }}, {{ name = \"y\", role = \"viewer\", sha256 = \"{sha}\" }}]\n",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(SHIPPED_TOKEN.as_bytes()))
        ))
        .unwrap_err();
        assert_eq!(
            keys(&err),
            vec!["admin.tokens[0]", "admin.tokens[1]"],
            "{err}"
        );
        // A strong token beyond loopback starts, with a warning about TLS.
        let cfg = wide("token = \"0123456789abcdef0123456789\"\n").unwrap();
        let w = admin_only(&cfg);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("without TLS"), "{}", w[0]);
        // TLS needs both files, readable.
        let err = wide("token = \"0123456789abcdef0123456789\"\ntls_cert = \"missing.pem\"\n")
            .unwrap_err();
        assert_eq!(keys(&err), vec!["admin.tls_key"], "{err}");
        let err = wide(
            "token = \"0123456789abcdef0123456789\"\ntls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\n",
        )
        .unwrap_err();
        assert_eq!(keys(&err), vec!["admin.tls_cert"], "{err}");
    }
}

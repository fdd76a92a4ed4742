//! `[store]`: where the registry lives. Empty, it is in the node's own redb
//! file under `server.data_dir`; a `postgres://` URL shares it between
//! gateway nodes through PostgreSQL. The queue and the connection log stay
//! on each node's disk either way.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use crate::values::Span;

/// `[store]`: where the registry lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://user@host:port/db[?options]`; unset: the embedded redb file.
    pub url: Option<String>,
    /// A file whose first line is the database password (kept out of the
    /// configuration, which `config show` prints).
    pub password_file: Option<PathBuf>,
    /// CA certificates (PEM) that vouch for the database server's TLS
    /// certificate, besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// This node's name among the nodes sharing the store; default
    /// `server.hostname` (give each node its own when they share one).
    pub node_name: Option<String>,
    /// Where the other nodes reach this node's admin API
    /// (`http(s)://host:port`); default the address `admin.listen` bound,
    /// unless that is a wildcard (then the node cannot be asked).
    pub admin_url: Option<String>,
    /// With `url`: how often the governor sends the other nodes what it
    /// accepted, so that limits and detection hold across them; `0s`: never
    /// (each node governs alone).
    pub governor_sync: Span,
}

/// The default `store.governor_sync`: a split flood gets past the
/// cluster-wide limits by what one node accepts in this long, at most.
pub const GOVERNOR_SYNC: Duration = Duration::from_millis(200);

/// Beyond this the exchange is too slow to matter against a flood.
const GOVERNOR_SYNC_MAX: Duration = Duration::from_secs(10);

impl Default for StoreSection {
    fn default() -> StoreSection {
        StoreSection {
            url: None,
            password_file: None,
            tls_ca_file: None,
            node_name: None,
            admin_url: None,
            governor_sync: Span(GOVERNOR_SYNC),
        }
    }
}

impl StoreSection {
    /// What is wrong with the section's values: a URL PostgreSQL's client
    /// cannot use, a password file that cannot be read.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if let Some(url) = &self.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                out.push(ConfigProblem::new(
                    "store.url",
                    "must be a postgres:// URL (leave it unset for the embedded store)",
                ));
            } else if let Err(e) = url.parse::<tokio_postgres::Config>() {
                out.push(ConfigProblem::new("store.url", format!("not usable: {e}")));
            }
        } else if self.password_file.is_some() {
            out.push(ConfigProblem::new(
                "store.password_file",
                "only used with store.url",
            ));
        }
        let sync = self.governor_sync.0;
        if sync > GOVERNOR_SYNC_MAX || (!sync.is_zero() && sync < Duration::from_millis(10)) {
            out.push(ConfigProblem::new(
                "store.governor_sync",
                "must be 0s (off) or from 10ms to 10s",
            ));
        }
        if let Some(p) = &self.tls_ca_file
            && let Err(e) = crate::trust::load_roots(p)
        {
            out.push(ConfigProblem::new("store.tls_ca_file", e.to_string()));
        }
        if let Some(u) = &self.admin_url
            && !((u.starts_with("http://") || u.starts_with("https://"))
                && u.len() > "https://".len()
                && !u.contains(char::is_whitespace))
        {
            out.push(ConfigProblem::new(
                "store.admin_url",
                "must be an http:// or https:// URL of this node's admin API",
            ));
        }
        if let Some(n) = &self.node_name
            && (n.is_empty() || n.len() > 253 || !n.bytes().all(|b| b.is_ascii_graphic()))
        {
            out.push(ConfigProblem::new(
                "store.node_name",
                "must be 1 to 253 printable ASCII characters",
            ));
        }
        if let Some(p) = &self.password_file
            && let Err(e) = std::fs::read_to_string(p)
        {
            out.push(ConfigProblem::new(
                "store.password_file",
                format!("cannot read {}: {e}", p.display()),
            ));
        }
        out
    }

    /// What is allowed but unwise: a password written into the URL.
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        match self
            .url
            .as_deref()
            .map(str::parse::<tokio_postgres::Config>)
        {
            Some(Ok(c)) if c.get_password().is_some() => vec![ConfigProblem::new(
                "store.url",
                "holds a password: put it in store.password_file instead (config show prints the URL)",
            )],
            _ => Vec::new(),
        }
    }

    /// The password from `password_file` (its first line), if one is set.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        match &self.password_file {
            None => Ok(None),
            Some(p) => {
                let text = std::fs::read_to_string(p)?;
                Ok(Some(text.lines().next().unwrap_or("").to_string()))
            }
        }
    }
}

impl super::Config {
    /// This node's name among the nodes sharing the store:
    /// `store.node_name`, else `server.hostname`.
    pub fn node_name(&self) -> String {
        self.store
            .node_name
            .clone()
            .unwrap_or_else(|| self.server.hostname.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync_problems(s: &str) -> Vec<String> {
        let sec = StoreSection {
            governor_sync: s.parse().unwrap(),
            ..StoreSection::default()
        };
        sec.check().into_iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn governor_sync_is_off_or_between_10ms_and_10s() {
        assert_eq!(StoreSection::default().governor_sync.0, GOVERNOR_SYNC);
        for ok in ["0s", "10ms", "200ms", "10s"] {
            assert!(sync_problems(ok).is_empty(), "{ok}");
        }
        for bad in ["5ms", "11s", "1h"] {
            assert_eq!(sync_problems(bad), ["store.governor_sync"], "{bad}");
        }
    }
}

//! MTA-STS (RFC 8461): a recipient domain that publishes a policy in
//! `enforce` mode gets mail only over verified TLS, and only through the MX
//! hosts its policy names; `testing` mode only logs what would fail.
//!
//! The policy id comes from the TXT record `_mta-sts.<domain>`; the policy
//! itself from `https://mta-sts.<domain>/.well-known/mta-sts.txt` (fetched
//! with a verified certificate, no redirects, 64 KiB at most). Policies are
//! cached for their `max_age` and stay in effect when the TXT record or the
//! web server disappears (§5.1), so an attacker on the path cannot turn
//! them off; the record is looked at again at most every few minutes. The
//! cache is kept in the store too, so a restart keeps it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::route::{ResolveError, Resolver};
use crate::domain::Domain;

/// The largest policy body accepted (RFC 8461 §3.3: 64 KiB).
const MAX_BODY: usize = 64 * 1024;
/// The whole response, headers included.
const MAX_RESPONSE: usize = MAX_BODY + 16 * 1024;
/// The longest `max_age` honoured (§3.2: one year).
const MAX_AGE_CAP: u64 = 31_557_600;
/// How long one fetch may take, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Between two looks at a domain's TXT record.
const RECHECK_MS: u64 = 5 * 60 * 1000;

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Verified TLS to a listed MX, or no delivery.
    Enforce,
    /// Deliver as usual; report (here: log) what would have failed.
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// enforce, testing or none.
    pub mode: Mode,
    /// MX host patterns: `mail.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

/// Why a policy, a TXT record or a response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy text breaks RFC 8461 §3.2.
    #[error("bad policy: {0}")]
    Policy(String),
    /// The `_mta-sts` TXT record breaks §3.1.
    #[error("bad _mta-sts record: {0}")]
    Record(String),
    /// The HTTPS response is not a policy.
    #[error("bad policy response: {0}")]
    Response(String),
}

/// Parses a policy body (§3.2): `key: value` lines, CRLF or LF.
pub fn parse_policy(text: &str) -> Result<Policy, PolicyError> {
    let bad = |m: &str| PolicyError::Policy(m.to_string());
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(bad("a line without \"key: value\""));
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "version" => version = Some(v.to_string()),
            "mode" => {
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(bad("mode must be enforce, testing or none")),
                })
            }
            "max_age" => {
                let n: u64 = v
                    .parse()
                    .ok()
                    .filter(|_| !v.is_empty() && v.len() <= 10)
                    .ok_or_else(|| bad("max_age must be a number of seconds"))?;
                max_age = Some(n.min(MAX_AGE_CAP));
            }
            "mx" => {
                let p = v.trim_end_matches('.').to_ascii_lowercase();
                let host = p.strip_prefix("*.").unwrap_or(&p);
                if host.is_empty() || host.contains('*') || Domain::parse(host).is_err() {
                    return Err(bad("an mx pattern is not a host name or *.domain"));
                }
                if mx.len() < 100 {
                    mx.push(p);
                }
            }
            // §3.2: unknown fields are ignored.
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err(bad("version must be STSv1"));
    }
    let mode = mode.ok_or_else(|| bad("no mode"))?;
    let max_age = max_age.ok_or_else(|| bad("no max_age"))?;
    if mode != Mode::None && mx.is_empty() {
        return Err(bad("no mx pattern"));
    }
    Ok(Policy { mode, mx, max_age })
}

/// The policy id from the `_mta-sts` TXT strings (§3.1); `None` when no
/// record is an STS record. Several STS records are an error.
pub fn parse_txt(records: &[String]) -> Result<Option<String>, PolicyError> {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    let record = match sts.as_slice() {
        [] => return Ok(None),
        [one] => one,
        _ => return Err(PolicyError::Record("more than one STS record".into())),
    };
    let mut id = None;
    for field in record.split(';') {
        let Some((k, v)) = field.split_once('=') else {
            if field.trim().is_empty() {
                continue;
            }
            return Err(PolicyError::Record("a field without \"=\"".into()));
        };
        if k.trim() == "id" {
            let v = v.trim();
            if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(PolicyError::Record(
                    "id must be 1 to 32 letters or digits".into(),
                ));
            }
            id = Some(v.to_string());
        }
    }
    id.map(Some)
        .ok_or_else(|| PolicyError::Record("no id".into()))
}

/// The policy body of an HTTP/1.x response (§3.3): 200, `text/plain`, at
/// most 64 KiB, UTF-8. Redirects are refused like any other status.
pub fn parse_response(raw: &[u8]) -> Result<String, PolicyError> {
    let bad = |m: String| PolicyError::Response(m);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers".into()))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !proto.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1 response: {status:.60}")));
    }
    if code != "200" {
        return Err(bad(format!("status {code:.3}, not 200")));
    }
    let (mut ctype, mut length) = (None, None);
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => ctype = Some(v.trim().to_ascii_lowercase()),
            "content-length" => {
                length = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| bad("bad Content-Length".into()))?,
                )
            }
            "transfer-encoding" => return Err(bad("transfer encodings are not accepted".into())),
            _ => {}
        }
    }
    if !ctype.is_some_and(|c| c == "text/plain" || c.starts_with("text/plain;")) {
        return Err(bad("Content-Type is not text/plain".into()));
    }
    let mut body = &raw[end + 4..];
    if let Some(n) = length {
        if body.len() < n {
            return Err(bad("body shorter than its Content-Length".into()));
        }
        body = &body[..n];
    }
    if body.len() > MAX_BODY {
        return Err(bad("policy larger than 64 KiB".into()));
    }
    String::from_utf8(body.to_vec()).map_err(|_| bad("policy not UTF-8".into()))
}

impl Policy {
    /// Whether MX host `host` matches one of the policy's patterns (§4.1):
    /// exactly, or `*.example.com` for one label under example.com.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
            None => *p == host,
        })
    }
}

/// Why a policy could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The policy host has no address.
    #[error("policy host: {0}")]
    Resolve(#[from] ResolveError),
    /// Connection, TLS or I/O.
    #[error("{0}")]
    Io(String),
    /// The policy host's certificate did not verify.
    #[error("policy host certificate: {0}")]
    Certificate(String),
    /// The response or the policy is bad.
    #[error("{0}")]
    Policy(#[from] PolicyError),
    /// Too slow.
    #[error("timed out")]
    Timeout,
}

impl FetchError {
    /// Its RFC 8460 §4.3.2.2 result type, for TLS reports.
    pub fn report_type(&self) -> &'static str {
        match self {
            FetchError::Certificate(_) => "sts-webpki-invalid",
            FetchError::Policy(PolicyError::Policy(_)) => "sts-policy-invalid",
            FetchError::Policy(_)
            | FetchError::Io(_)
            | FetchError::Resolve(_)
            | FetchError::Timeout => "sts-policy-fetch-error",
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    policy: Option<Arc<Policy>>,
    id: String,
    expires_ms: u64,
    checked_ms: u64,
}

/// A cached policy as the store keeps it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    policy: Policy,
    id: String,
    expires_ms: u64,
}

/// Policies by domain, fetched and cached on demand.
pub struct MtaSts {
    resolver: Resolver,
    port: u16,
    tls: Arc<ClientConfig>,
    cache: Mutex<HashMap<String, Cached>>,
    /// Domains being looked at, so that a burst fetches once.
    inflight: super::single_flight::Gates,
    store: Option<crate::store::LocalStore>,
    /// Domains whose policy could not be had (and none was cached): the
    /// RFC 8460 result type and the error, for TLS reports.
    failures: Mutex<HashMap<String, (&'static str, String)>>,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtaSts")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl MtaSts {
    /// Fetches over HTTPS on `port` (443; labs change it), trusting `roots`;
    /// with a store, the cache is loaded from it and saved to it.
    pub fn new(
        resolver: Resolver,
        port: u16,
        roots: Vec<CertificateDer<'static>>,
        store: Option<crate::store::LocalStore>,
    ) -> MtaSts {
        let mut anchors = RootCertStore::empty();
        anchors.add_parsable_certificates(roots);
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(anchors)
                .with_no_client_auth();
        let cache = store.as_ref().map(load).unwrap_or_default();
        MtaSts {
            resolver,
            port,
            tls: Arc::new(tls),
            cache: Mutex::new(cache),
            inflight: Default::default(),
            store,
            failures: Mutex::default(),
        }
    }

    /// Why `domain`'s policy could not be had at the last look (its
    /// `_mta-sts` record names one, none is cached): the RFC 8460 result
    /// type (`sts-policy-fetch-error`, `sts-policy-invalid`,
    /// `sts-webpki-invalid`) and the error, for TLS reports.
    pub fn policy_failure(&self, domain: &Domain) -> Option<(&'static str, String)> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain.as_str())
            .cloned()
    }

    fn note_failure(&self, key: &str, failure: Option<(&'static str, String)>) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            Some(f) => {
                // Bounded like the cache it shadows: a few thousand domains.
                if m.len() < 10_000 || m.contains_key(key) {
                    m.insert(key.to_string(), f);
                }
            }
            None => {
                m.remove(key);
            }
        }
    }

    /// The local store the policies are kept in (TLS reports count there too).
    pub fn store(&self) -> Option<&crate::store::LocalStore> {
        self.store.as_ref()
    }

    /// Every cached policy in force, for staff: domain, id, mode, MX
    /// patterns, expiry and when the record was last looked at.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let now = crate::store::now_ms();
        let m = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(&String, &Cached)> = m
            .iter()
            .filter(|(_, c)| c.policy.is_some() && c.expires_ms > now)
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        let at = |ms: u64| chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64);
        v.into_iter()
            .filter_map(|(d, c)| {
                let p = c.policy.as_ref()?;
                Some(serde_json::json!({
                    "domain": d,
                    "id": c.id,
                    "mode": p.mode,
                    "mx": p.mx,
                    "expires_at": at(c.expires_ms),
                    "checked_at": (c.checked_ms > 0).then(|| at(c.checked_ms)).flatten(),
                }))
            })
            .collect()
    }

    fn save(&self, domain: &str, policy: &Policy, id: &str, expires_ms: u64) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let saved = Saved {
            policy: policy.clone(),
            id: id.to_string(),
            expires_ms,
        };
        let (domain, bytes) = (
            domain.to_string(),
            serde_json::to_vec(&saved).unwrap_or_default(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.save_mta_sts(&domain, &bytes) {
                tracing::warn!(domain, error = %e, "cannot save the MTA-STS policy");
            }
        });
    }

    /// The policy in effect for mail to `domain`, if any (mode none: none).
    pub async fn policy(&self, domain: &Domain) -> Option<Arc<Policy>> {
        let key = domain.as_str().to_string();
        if let Some(p) = self.fresh(&key) {
            return p;
        }
        // One look per domain at a time: the first delivery of a burst
        // fetches, the others wait for it and read the cache.
        self.inflight
            .run(&key, async {
                match self.fresh(&key) {
                    Some(p) => p,
                    None => self.refresh(domain, &key).await,
                }
            })
            .await
    }

    /// The cached answer when the record was looked at recently.
    fn fresh(&self, key: &str) -> Option<Option<Arc<Policy>>> {
        let now = crate::store::now_ms();
        let c = self.cached(key)?;
        (now.saturating_sub(c.checked_ms) < RECHECK_MS)
            .then(|| (c.expires_ms > now).then(|| c.policy.clone()).flatten())
    }

    /// Looks at the record and fetches the policy when its id is new.
    async fn refresh(&self, domain: &Domain, key: &str) -> Option<Arc<Policy>> {
        let now = crate::store::now_ms();
        let key = key.to_string();
        let cached = self.cached(&key);
        let live = |c: &Option<Cached>| {
            c.as_ref()
                .filter(|c| c.expires_ms > now)
                .and_then(|c| c.policy.clone())
        };
        let record = match self.resolver.txt(&format!("_mta-sts.{key}")).await {
            Ok(strings) => parse_txt(&strings),
            Err(e) => {
                tracing::info!(domain = %key, error = %e, "MTA-STS record lookup failed");
                self.touch(&key, now);
                return live(&cached);
            }
        };
        let id = match record {
            Ok(Some(id)) => id,
            Ok(None) => {
                self.note_failure(&key, None);
                self.touch(&key, now);
                return live(&cached);
            }
            Err(e) => {
                tracing::warn!(domain = %key, error = %e, "ignoring the MTA-STS record");
                self.touch(&key, now);
                return live(&cached);
            }
        };
        if let Some(c) = cached.as_ref().filter(|c| c.id == id && c.expires_ms > now) {
            self.touch(&key, now);
            return c.policy.clone();
        }
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch(domain)).await {
            Ok(Ok(p)) => {
                crate::metrics::mta_sts("fetched");
                tracing::info!(domain = %key, id, mode = ?p.mode, mx = ?p.mx, max_age = p.max_age, "MTA-STS policy fetched");
                self.note_failure(&key, None);
                self.save(&key, &p, &id, now + p.max_age * 1000);
                let policy = (p.mode != Mode::None).then(|| Arc::new(p.clone()));
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
                    key,
                    Cached {
                        policy: policy.clone(),
                        id,
                        expires_ms: now + p.max_age * 1000,
                        checked_ms: now,
                    },
                );
                policy
            }
            Ok(Err(e)) => {
                crate::metrics::mta_sts("fetch_failed");
                tracing::warn!(domain = %key, error = %e, "MTA-STS policy not fetched; the cached one, if any, stays");
                self.touch(&key, now);
                let kept = live(&cached);
                if kept.is_none() {
                    let kind = e.report_type();
                    self.note_failure(&key, Some((kind, e.to_string())));
                }
                kept
            }
            Err(_) => {
                crate::metrics::mta_sts("fetch_failed");
                tracing::warn!(domain = %key, "MTA-STS policy fetch timed out");
                self.touch(&key, now);
                let kept = live(&cached);
                if kept.is_none() {
                    let why = FetchError::Timeout;
                    let kind = why.report_type();
                    self.note_failure(&key, Some((kind, why.to_string())));
                }
                kept
            }
        }
    }

    fn cached(&self, key: &str) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Notes a look at `key`'s record, so the next waits `RECHECK_MS`.
    fn touch(&self, key: &str, now: u64) {
        let mut m = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(key.to_string()).or_insert_with(|| Cached {
            policy: None,
            id: String::new(),
            expires_ms: 0,
            checked_ms: now,
        });
        e.checked_ms = now;
    }

    async fn fetch(&self, domain: &Domain) -> Result<Policy, FetchError> {
        let host = format!("mta-sts.{domain}");
        let targets = self.resolver.addresses(&host, self.port).await?;
        let mut last = FetchError::Io("no address".into());
        for t in targets.iter().take(3) {
            match self.get(&host, t.addr).await {
                Ok(body) => return Ok(parse_policy(&body)?),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn get(&self, host: &str, addr: SocketAddr) -> Result<String, FetchError> {
        let io = |e: std::io::Error| FetchError::Io(e.to_string());
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| FetchError::Io(format!("{host}: {e}")))?;
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let mut tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let cert = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(|t| matches!(t, rustls::Error::InvalidCertificate(_)));
                if cert {
                    FetchError::Certificate(e.to_string())
                } else {
                    io(e)
                }
            })?;
        // HTTP/1.0: the answer comes whole, never chunked.
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ugem\r\nAccept: text/plain\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        let read = (&mut tls)
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .await;
        match read {
            Ok(_) => {}
            // Servers that close without close_notify: what came is all.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(io(e)),
        }
        if raw.len() > MAX_RESPONSE {
            return Err(PolicyError::Response("response too large".into()).into());
        }
        Ok(parse_response(&raw)?)
    }
}

/// The unexpired policies saved in `store`; the expired ones are deleted.
fn load(store: &crate::store::LocalStore) -> HashMap<String, Cached> {
    let now = crate::store::now_ms();
    let rows = store.load_mta_sts().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot load the cached MTA-STS policies");
        Vec::new()
    });
    let mut out = HashMap::new();
    let mut expired = Vec::new();
    for (domain, bytes) in rows {
        match serde_json::from_slice::<Saved>(&bytes) {
            Ok(s) if s.expires_ms > now => {
                out.insert(
                    domain,
                    Cached {
                        policy: (s.policy.mode != Mode::None).then(|| Arc::new(s.policy)),
                        id: s.id,
                        expires_ms: s.expires_ms,
                        // Look at the record on first use; the policy holds meanwhile.
                        checked_ms: 0,
                    },
                );
            }
            _ => expired.push(domain),
        }
    }
    if let Err(e) = store.delete_mta_sts(&expired) {
        tracing::warn!(error = %e, "cannot forget expired MTA-STS policies");
    }
    out
}

/// Fuzzing entry points (cargo-fuzz target `mta_sts`, corpus replayed by
/// `tests/fuzz_corpus.rs`).
pub mod fuzzing {
    use super::*;

    /// Parsers never panic; what they accept holds its invariants.
    pub fn check(data: &[u8]) {
        if let Ok(body) = parse_response(data) {
            assert!(body.len() <= MAX_BODY);
        }
        let text = String::from_utf8_lossy(data);
        if let Ok(p) = parse_policy(&text) {
            assert!(p.max_age <= MAX_AGE_CAP);
            assert!(p.mode == Mode::None || !p.mx.is_empty());
            for m in &p.mx {
                let _ = p.allows(m);
            }
        }
        let records: Vec<String> = text.split('\n').map(str::to_string).collect();
        if let Ok(Some(id)) = parse_txt(&records) {
            assert!(!id.is_empty() && id.len() <= 32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

    #[test]
    fn parses_the_rfc_example() {
        let p = parse_policy(GOOD).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(p.mx.len(), 3);
        // LF only, unknown keys, spacing.
        let p = parse_policy(
            "version:STSv1\nmode:  testing\nextension: x\nmx: a.example\nmax_age: 86400\n",
        )
        .unwrap();
        assert_eq!((p.mode, p.mx[0].as_str()), (Mode::Testing, "a.example"));
        // max_age is capped at a year.
        let p = parse_policy("version: STSv1\nmode: none\nmax_age: 999999999\n").unwrap();
        assert_eq!(p.max_age, MAX_AGE_CAP);
    }

    #[test]
    fn refuses_bad_policies() {
        for bad in [
            "",
            "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: sometimes\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
            "version: STSv1\ngarbage\n",
        ] {
            assert!(parse_policy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mx_patterns_match_one_label() {
        let p = parse_policy(GOOD).unwrap();
        assert!(p.allows("mail.example.com"));
        assert!(p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("a.b.example.net"));
        assert!(!p.allows("example.net"));
        assert!(!p.allows("evil-mail.example.com"));
        assert!(!p.allows("mail.example.com.evil"));
    }

    #[test]
    fn txt_records() {
        let r = |v: &[&str]| parse_txt(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            r(&["v=STSv1; id=20160831085700Z;"]).unwrap().as_deref(),
            Some("20160831085700Z")
        );
        assert_eq!(r(&["v=spf1 -all"]).unwrap(), None);
        assert_eq!(r(&[]).unwrap(), None);
        assert!(r(&["v=STSv1; id=1", "v=STSv1; id=2"]).is_err());
        assert!(r(&["v=STSv1;"]).is_err());
        assert!(r(&["v=STSv1; id=has-dash"]).is_err());
    }

    #[test]
    fn http_responses() {
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{GOOD}",
            GOOD.len()
        );
        assert_eq!(parse_response(ok.as_bytes()).unwrap(), GOOD);
        let no_length = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{GOOD}");
        assert_eq!(parse_response(no_length.as_bytes()).unwrap(), GOOD);
        for bad in [
            "HTTP/1.1 301 Moved\r\nLocation: https://elsewhere/\r\nContent-Type: text/plain\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nversion: STSv1",
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(parse_response(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{}",
            "x".repeat(MAX_BODY + 1)
        );
        assert!(parse_response(huge.as_bytes()).is_err());
    }
}

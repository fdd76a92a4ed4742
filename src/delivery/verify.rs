//! Inbound recipient verification (Postfix's `reject_unverified_recipient`):
//! before accepting internet mail for a registered domain, ask the domain's
//! own server with `MAIL FROM:<>` / `RCPT TO:<x>`. An unknown user is then
//! refused at RCPT by us, instead of accepted, forwarded, refused by the
//! agency and bounced by the gateway to a sender that is usually forged:
//! backscatter is a classic way onto blocklists.
//!
//! Answers are cached (positive and negative TTLs). Only a permanent refusal
//! of the recipient refuses it; a server that is down, slow or that refuses
//! the null sender leaves the recipient accepted and queued, as a
//! store-and-forward gateway must. A server that failed is not probed again
//! for a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::client::{ClientSettings, Connection, TlsPolicy};
use super::outcome::Class;
use super::route::{Resolver, Route};

/// Most cached answers; beyond it the expired go, then the oldest.
const MAX_CACHED: usize = 100_000;
/// Probes at once, over all servers.
const MAX_PROBES: usize = 32;
/// A server that could not answer is left alone this long.
const DOWN_MS: u64 = 60_000;

/// What the domain's server said of a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It accepted the recipient.
    Exists,
    /// It refused the recipient permanently; its reply.
    Unknown(String),
    /// No answer that settles it (down, slow, busy, a 4xx): accept.
    Unverified(String),
}

/// Probes and remembers.
pub struct Verifier {
    resolver: Resolver,
    settings: ClientSettings,
    positive_ms: u64,
    negative_ms: u64,
    timeout: Duration,
    cache: Mutex<HashMap<String, (Verdict, u64)>>,
    down: Mutex<HashMap<String, u64>>,
    slots: Semaphore,
    inflight: super::single_flight::Gates,
    /// Probes per client IP per minute (0: unlimited).
    per_client: Option<(
        crate::governor::limits::Limiters,
        crate::governor::limits::Rate,
    )>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier using the delivery client's settings.
    pub fn new(
        resolver: Resolver,
        settings: ClientSettings,
        positive: Duration,
        negative: Duration,
        timeout: Duration,
        probes_per_minute: u32,
    ) -> Verifier {
        Verifier {
            resolver,
            settings,
            positive_ms: positive.as_millis() as u64,
            negative_ms: negative.as_millis() as u64,
            timeout,
            cache: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            slots: Semaphore::new(MAX_PROBES),
            inflight: Default::default(),
            per_client: (probes_per_minute > 0).then(|| {
                (
                    crate::governor::limits::Limiters::new(),
                    crate::governor::limits::Rate::per_minute(probes_per_minute, 100),
                )
            }),
        }
    }

    /// Asks the server behind `route` about `address`, under STARTTLS
    /// policy `tls`; cached answers first.
    pub async fn verify(&self, route: &Route, tls: TlsPolicy, address: &str) -> Verdict {
        let key = address.to_ascii_lowercase();
        if let Some(v) = self.cached(&key) {
            return v;
        }
        // One probe per address at a time; those waiting read its answer.
        self.inflight
            .run(&key, async {
                match self.cached(&key) {
                    Some(v) => v,
                    None => self.verify_now(route, tls, address, key.clone()).await,
                }
            })
            .await
    }

    /// Whether `client` may cause a probe for `address` now: a cached
    /// answer is always free; new probes count against the client's rate.
    pub fn may_probe(&self, client: std::net::IpAddr, address: &str) -> bool {
        if self.cached(&address.to_ascii_lowercase()).is_some() {
            return true;
        }
        match &self.per_client {
            Some((limits, rate)) => limits.check(*rate, crate::governor::limits::ip_key(client)),
            None => true,
        }
    }

    /// Drops expired answers, recovered servers and idle per-client probe
    /// counters (every minute, from the server's housekeeping).
    pub fn prune(&self) {
        let now = crate::store::now_ms();
        self.lock_cache().retain(|_, (_, until)| *until > now);
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
        if let Some((limits, _)) = &self.per_client {
            limits.retain_recent();
        }
    }

    /// Drops the cached answer for `address` (a mailbox was just created or
    /// removed); true if there was one.
    pub fn forget(&self, address: &str) -> bool {
        self.lock_cache()
            .remove(&address.to_ascii_lowercase())
            .is_some()
    }

    fn cached(&self, key: &str) -> Option<Verdict> {
        let now = crate::store::now_ms();
        self.lock_cache()
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    }

    async fn verify_now(
        &self,
        route: &Route,
        tls: TlsPolicy,
        address: &str,
        key: String,
    ) -> Verdict {
        let now = crate::store::now_ms();
        let server = format!("{route:?}");
        if self
            .down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&server)
            .is_some_and(|&until| until > now)
        {
            return Verdict::Unverified("the server failed a probe moments ago".into());
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(self.timeout, self.slots.acquire()).await else {
            return Verdict::Unverified("too many probes at once".into());
        };
        let (verdict, server_failed) =
            match tokio::time::timeout(self.timeout, self.probe(route, tls, address)).await {
                Ok(v) => v,
                Err(_) => (Verdict::Unverified("the probe timed out".into()), true),
            };
        crate::metrics::verification(match &verdict {
            Verdict::Exists => "exists",
            Verdict::Unknown(_) => "unknown",
            Verdict::Unverified(_) => "unverified",
        });
        let ttl = match &verdict {
            Verdict::Exists => self.positive_ms,
            Verdict::Unknown(_) => self.negative_ms,
            Verdict::Unverified(why) => {
                tracing::info!(server, why, "recipient not verified");
                if server_failed {
                    self.down
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(server, now + DOWN_MS);
                }
                return verdict;
            }
        };
        let mut cache = self.lock_cache();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= MAX_CACHED {
                // Still full of live answers: start over rather than grow.
                cache.clear();
            }
        }
        cache.insert(key, (verdict.clone(), now + ttl));
        verdict
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Verdict, u64)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verdict, and whether the server itself failed (unreachable,
    /// broken session) rather than answering about this address.
    async fn probe(&self, route: &Route, tls: TlsPolicy, address: &str) -> (Verdict, bool) {
        let targets = match self.resolver.targets(route).await {
            Ok(t) => t,
            Err(e) => return (Verdict::Unverified(e.to_string()), true),
        };
        let mut why = String::from("no address");
        for t in targets.iter().take(2) {
            let mut conn = match Connection::open_as(&t.into(), &self.settings, tls).await {
                Ok(c) => c,
                Err(e) => {
                    why = e.to_string();
                    continue;
                }
            };
            let r = conn.probe(address).await;
            tokio::spawn(conn.quit());
            return match r {
                Ok(reply) if reply.class() == Class::Success => (Verdict::Exists, false),
                Ok(reply) if reply.class() == Class::Permanent && is_rcpt_refusal(&reply) => {
                    (Verdict::Unknown(reply.to_string()), false)
                }
                // A 4xx or a policy refusal about this address only.
                Ok(reply) => (Verdict::Unverified(reply.to_string()), false),
                Err(e) => (Verdict::Unverified(e.to_string()), true),
            };
        }
        (Verdict::Unverified(why), true)
    }
}

/// A 5xx to RCPT that is about the recipient (5.1.x address, 5.2.x
/// mailbox), or without an enhanced code; not a policy refusal (5.7.x).
fn is_rcpt_refusal(r: &super::client::RemoteReply) -> bool {
    match r.enhanced {
        Some(e) => matches!(e.subject, 0..=2),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Enhanced;

    fn reply(code: u16, enhanced: Option<(u16, u16)>) -> super::super::client::RemoteReply {
        super::super::client::RemoteReply {
            code,
            enhanced: enhanced.map(|(subject, detail)| Enhanced {
                class: (code / 100) as u8,
                subject,
                detail,
            }),
            lines: vec!["x".into()],
        }
    }

    #[test]
    fn only_refusals_of_the_recipient_count() {
        assert!(is_rcpt_refusal(&reply(550, Some((1, 1)))));
        assert!(is_rcpt_refusal(&reply(552, Some((2, 2)))));
        assert!(is_rcpt_refusal(&reply(550, None)));
        // Policy (5.7.x) and system (5.3.x) refusals say nothing of the mailbox.
        assert!(!is_rcpt_refusal(&reply(550, Some((7, 1)))));
        assert!(!is_rcpt_refusal(&reply(554, Some((3, 0)))));
    }
}

//! `[delivery]`: outbound settings (routes, retries, TLS toward remote servers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigProblem;
use super::lists::one_or_many;
use crate::domain::Domain;
use crate::values::{ByteSize, HostPort, Span, TlsPolicy};

/// `[delivery]`: outbound settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySection {
    /// DNS servers (`ip:port`); empty means the system resolver.
    #[serde(deserialize_with = "one_or_many")]
    pub nameservers: Vec<SocketAddr>,
    /// Static next hops by recipient domain, or `*` for all.
    pub routes: BTreeMap<String, HostPort>,
    /// Concurrent outbound connections in total.
    pub max_connections: usize,
    /// Concurrent connections to one destination (domain or next hop).
    pub max_connections_per_destination: usize,
    /// Message bodies held in memory by deliveries at once; a message
    /// larger than this is delivered alone.
    pub max_body_memory: ByteSize,
    /// First retry delay; doubles per attempt.
    pub min_backoff: Span,
    /// Longest retry delay.
    pub max_backoff: Span,
    /// Give up (bounce) after this long in the queue.
    pub max_queue_lifetime: Span,
    /// Send a delay warning to the sender once a message is this old (off when unset).
    pub delay_warning: Option<Span>,
    /// Connect timeout per address.
    pub connect_timeout: Span,
    /// Timeout for the greeting and each command reply (RFC 5321 4.5.3.2: 5 min).
    pub command_timeout: Span,
    /// Timeout for the reply after the end of data (RFC 5321 4.5.3.2: 10 min).
    pub data_timeout: Span,
    /// How long an idle connection is kept for the next message to the same place.
    pub idle_timeout: Span,
    /// STARTTLS toward remote servers: none, may (opportunistic), encrypt, verify.
    pub tls: TlsPolicy,
    /// Per recipient domain (or `.domain` for its subdomains): overrides `tls`.
    pub tls_policy: BTreeMap<String, TlsPolicy>,
    /// Extra trust anchors (PEM) for checking remote certificates, besides
    /// the system's: a national or private CA that partners' servers use.
    pub tls_ca_file: Option<PathBuf>,
    /// TCP port of MX targets: 25 on the internet; test labs change it.
    pub mx_port: u16,
    /// Honour recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// HTTPS port of MTA-STS policy hosts: 443 on the internet; labs change it.
    pub mta_sts_port: u16,
    /// Validate DNSSEC for MX routes under `may` and `encrypt` too, and use
    /// DANE (RFC 7672) where published; `dane` does so whatever this says.
    pub dnssec: bool,
    /// DNSKEY records (zone-file lines) to trust instead of the built-in
    /// root keys: a private root, a lab, the tests' signed zone.
    pub dnssec_trust_anchor: Option<PathBuf>,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            nameservers: Vec::new(),
            routes: BTreeMap::new(),
            max_connections: 100,
            max_connections_per_destination: 10,
            max_body_memory: ByteSize(64 << 20),
            min_backoff: Span(Duration::from_secs(300)),
            max_backoff: Span(Duration::from_secs(4000)),
            max_queue_lifetime: Span(Duration::from_secs(5 * 86_400)),
            delay_warning: None,
            connect_timeout: Span(Duration::from_secs(30)),
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(600)),
            idle_timeout: Span(Duration::from_secs(10)),
            tls: TlsPolicy::May,
            tls_policy: BTreeMap::new(),
            tls_ca_file: None,
            mx_port: 25,
            mta_sts: true,
            mta_sts_port: 443,
            dnssec: false,
            dnssec_trust_anchor: None,
        }
    }
}

impl DeliverySection {
    /// What is wrong with the section's values (and whether the CA file
    /// holds usable certificates).
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        for key in self.routes.keys() {
            if key != "*" && Domain::parse(key).is_err() {
                out.push(ConfigProblem::new(
                    format!("delivery.routes.{key}"),
                    "route keys are domain names or \"*\"",
                ));
            }
        }
        for key in self.tls_policy.keys() {
            if let Err(e) = crate::values::check_key(key) {
                out.push(ConfigProblem::new(format!("delivery.tls_policy.{key}"), e));
            }
        }
        if let Some(p) = &self.tls_ca_file
            && let Err(e) = crate::trust::load_roots(p)
        {
            out.push(ConfigProblem::new("delivery.tls_ca_file", e.to_string()));
        }
        if let Some(p) = &self.dnssec_trust_anchor
            && let Err(e) = crate::dns::trust_anchors(p)
        {
            out.push(ConfigProblem::new("delivery.dnssec_trust_anchor", e));
        }
        if self.max_connections == 0 || self.max_connections_per_destination == 0 {
            out.push(ConfigProblem::new(
                "delivery.max_connections",
                "connection limits must be at least 1",
            ));
        }
        if self.max_body_memory.0 < 1 << 20 {
            out.push(ConfigProblem::new(
                "delivery.max_body_memory",
                "must be at least 1MiB",
            ));
        }
        if self.min_backoff.0.is_zero() || self.min_backoff > self.max_backoff {
            out.push(ConfigProblem::new(
                "delivery.min_backoff",
                "must be above zero and at most delivery.max_backoff",
            ));
        }
        if self.max_queue_lifetime.0 < self.min_backoff.0 {
            out.push(ConfigProblem::new(
                "delivery.max_queue_lifetime",
                "must be at least delivery.min_backoff",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{MINIMAL, keys, load};

    #[test]
    fn tls_policy_keys_and_the_ca_file_are_checked() {
        let err = load(
            &format!("{MINIMAL}[delivery.tls_policy]\n\"x.example\" = \"sometimes\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `sometimes`"),
            "{err}"
        );
        let err = load(
            &format!(
                "{MINIMAL}[delivery]\ntls_ca_file = \"missing-ca.pem\"\n[delivery.tls_policy]\n\"*.gov.kz\" = \"verify\"\n\".ok.example\" = \"encrypt\"\n"
            ),
            &[],
        )
        .unwrap_err();
        let k = keys(&err);
        for want in ["delivery.tls_ca_file", "delivery.tls_policy.*.gov.kz"] {
            assert!(k.contains(&want), "{want} missing from {err}");
        }
        assert!(!k.contains(&"delivery.tls_policy..ok.example"), "{err}");
        // A file that is not PEM is refused too.
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = load(
            &format!(
                "{MINIMAL}[delivery]\ntls_ca_file = \"{}\"\n",
                junk.display()
            ),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no usable CA certificate"),
            "{err}"
        );
    }

    #[test]
    fn dane_is_a_level_and_the_dnssec_trust_anchor_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.keys");
        std::fs::write(&junk, "example. 3600 IN A 192.0.2.1\n").unwrap();
        let err = load(
            &format!(
                "{MINIMAL}[delivery]\ntls = \"dane\"\ndnssec = true\ndnssec_trust_anchor = \"{}\"\n",
                junk.display()
            ),
            &[],
        )
        .unwrap_err();
        assert_eq!(keys(&err), ["delivery.dnssec_trust_anchor"], "{err}");
        // A DNSKEY line (the 2024 root KSK's algorithm and flags, any key).
        let good = dir.path().join("root.keys");
        std::fs::write(
            &good,
            ". 172800 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
        )
        .unwrap();
        let cfg = load(
            &format!(
                "{MINIMAL}[delivery]\ntls = \"dane\"\ndnssec_trust_anchor = \"{}\"\n",
                good.display()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(cfg.delivery.tls, crate::values::TlsPolicy::Dane);
        assert!(!cfg.delivery.dnssec);
    }
}

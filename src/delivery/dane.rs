//! DANE for SMTP (RFC 7672): which TLSA records of an MX host are usable
//! ([`Tlsa::usable`]: DANE-TA(2) and DANE-EE(3) only, RFC 7672 §3.1.3),
//! and whether a server's certificate chain satisfies them ([`TlsaSet::check`]).
//! The DNS side (secure MX, address and TLSA look-ups) is in
//! [`super::route::Resolver::dane_targets`]; the TLS side in
//! `client::dane`.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::ParsedCertificate;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256, Sha512};

/// A TLSA certificate usage that SMTP can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// 2: a trust anchor the chain must lead to; the name is checked.
    DaneTa,
    /// 3: the server's own certificate or key; names and dates do not matter.
    DaneEe,
}

/// What part of a certificate a record covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// 0: the whole certificate (DER).
    Cert,
    /// 1: its SubjectPublicKeyInfo (DER).
    Spki,
}

/// How the covered part is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// 0: byte for byte.
    Full,
    /// 1: SHA2-256.
    Sha256,
    /// 2: SHA2-512.
    Sha512,
}

/// One usable TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// DANE-TA or DANE-EE.
    pub usage: Usage,
    /// Certificate or public key.
    pub selector: Selector,
    /// Full or digest.
    pub matching: Matching,
    /// The association data.
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The record as SMTP may use it, or None when it is unusable: PKIX
    /// usages (0, 1: RFC 7672 §3.1.3), unknown parameters, or a digest of
    /// the wrong length.
    pub fn usable(usage: u8, selector: u8, matching: u8, data: &[u8]) -> Option<Tlsa> {
        let usage = match usage {
            2 => Usage::DaneTa,
            3 => Usage::DaneEe,
            _ => return None,
        };
        let selector = match selector {
            0 => Selector::Cert,
            1 => Selector::Spki,
            _ => return None,
        };
        let matching = match matching {
            0 if !data.is_empty() => Matching::Full,
            1 if data.len() == 32 => Matching::Sha256,
            2 if data.len() == 64 => Matching::Sha512,
            _ => return None,
        };
        Some(Tlsa {
            usage,
            selector,
            matching,
            data: data.to_vec(),
        })
    }

    /// The record's data in presentation form, `3 1 1 <hex>`, as TLS
    /// reports quote it.
    pub fn presentation(&self) -> String {
        let usage = match self.usage {
            Usage::DaneTa => 2,
            Usage::DaneEe => 3,
        };
        let selector = match self.selector {
            Selector::Cert => 0,
            Selector::Spki => 1,
        };
        let matching = match self.matching {
            Matching::Full => 0,
            Matching::Sha256 => 1,
            Matching::Sha512 => 2,
        };
        format!("{usage} {selector} {matching} {}", hex::encode(&self.data))
    }

    /// Whether `cert` is the certificate (or holds the key) this record names.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let covered = match self.selector {
            Selector::Cert => cert.as_ref().to_vec(),
            Selector::Spki => match ParsedCertificate::try_from(cert) {
                Ok(p) => p.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            },
        };
        match self.matching {
            Matching::Full => covered == self.data,
            Matching::Sha256 => Sha256::digest(&covered).as_slice() == self.data,
            Matching::Sha512 => Sha512::digest(&covered).as_slice() == self.data,
        }
    }
}

/// The usable TLSA records of one MX host (never empty), and the name the
/// certificate must carry under DANE-TA: the TLSA base domain, the MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsaSet {
    /// The MX host name (without the trailing dot).
    pub host: String,
    /// The usable records.
    pub records: Vec<Tlsa>,
}

/// What the DNS says about DANE for one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDane {
    /// No DANE: the MX or address records are not signed (insecure), or
    /// there is no TLSA record. The destination's other policy applies.
    None,
    /// Signed TLSA records, none of them usable: TLS is still mandatory,
    /// but the certificate is not checked (RFC 7672 §2.2, Postfix's
    /// `encrypt` fallback).
    Unusable,
    /// Usable records: TLS mandatory and the certificate must match them.
    Usable(Arc<TlsaSet>),
    /// The TLSA look-up failed (bogus, SERVFAIL, timeout): this host must
    /// not be used for now (RFC 7672 §2.2).
    Failed(String),
}

impl HostDane {
    /// True when DANE governs this host (the MTA-STS policy then does not,
    /// RFC 8461 §2).
    pub fn governs(&self) -> bool {
        !matches!(self, HostDane::None)
    }
}

/// DANE per MX host of one destination (keyed by the host name as in the
/// targets, lowercase, without the trailing dot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaneHosts(pub HashMap<String, HostDane>);

impl DaneHosts {
    /// DANE for `host`; `None` for a host not looked at.
    pub fn get(&self, host: &str) -> &HostDane {
        static NONE: HostDane = HostDane::None;
        self.0
            .get(host.trim_end_matches('.').to_ascii_lowercase().as_str())
            .unwrap_or(&NONE)
    }
}

/// Why a certificate chain does not satisfy the TLSA records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The server sent no certificate we could read.
    #[error("the server's certificate cannot be read")]
    Unreadable,
    /// No record names the certificate, its key, or a trust anchor in the chain.
    #[error("no TLSA record of {host} matches the server's certificate chain")]
    NoMatch {
        /// The MX host.
        host: String,
    },
    /// A DANE-TA record matched, but the chain or the name did not check out.
    #[error("the certificate chain of {host} leads to its TLSA trust anchor but {reason}")]
    TrustAnchor {
        /// The MX host.
        host: String,
        /// What failed.
        reason: String,
    },
}

/// How a chain satisfied the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// The server's own certificate or key (DANE-EE).
    EndEntity,
    /// A trust anchor in the chain, with the name checked (DANE-TA).
    TrustAnchor,
}

impl TlsaSet {
    /// Checks the server's chain (`end_entity` then `intermediates`, as sent)
    /// against the records. DANE-EE: the leaf must match; its names and dates
    /// are not looked at (RFC 7672 §3.1.1). DANE-TA: a certificate of the
    /// chain must match, the leaf must chain to it, and name the MX host
    /// (RFC 7672 §3.1.2, §3.2.2). The TA certificate must be in the chain, as
    /// RFC 7671 §5.2.2 asks of servers.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<Matched, Mismatch> {
        if ParsedCertificate::try_from(end_entity).is_err() {
            return Err(Mismatch::Unreadable);
        }
        let ee = self.records.iter().filter(|r| r.usage == Usage::DaneEe);
        if ee.clone().any(|r| r.matches(end_entity)) {
            return Ok(Matched::EndEntity);
        }
        let mut last = None;
        for ta in self.records.iter().filter(|r| r.usage == Usage::DaneTa) {
            for anchor in intermediates.iter().filter(|c| ta.matches(c)) {
                match self.chains_to(end_entity, intermediates, anchor, now, algorithms) {
                    Ok(()) => return Ok(Matched::TrustAnchor),
                    Err(reason) => last = Some(reason),
                }
            }
        }
        Err(match last {
            Some(reason) => Mismatch::TrustAnchor {
                host: self.host.clone(),
                reason,
            },
            None => Mismatch::NoMatch {
                host: self.host.clone(),
            },
        })
    }

    /// Whether `end_entity` chains to `anchor` through `intermediates` and
    /// names the MX host; the failure in words.
    fn chains_to(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        anchor: &CertificateDer<'_>,
        now: UnixTime,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<(), String> {
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|e| format!("the trust anchor is unusable ({e})"))?;
        let leaf = ParsedCertificate::try_from(end_entity).map_err(|e| e.to_string())?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &leaf,
            &roots,
            intermediates,
            now,
            algorithms.all,
        )
        .map_err(|e| format!("the chain does not verify ({e})"))?;
        let name = ServerName::try_from(self.host.as_str())
            .map_err(|_| format!("{:?} is not a name to check", self.host))?;
        rustls::client::verify_server_name(&leaf, &name)
            .map_err(|_| format!("the certificate does not name {}", self.host))
    }
}

/// Invariants for the fuzz target (`fuzz/fuzz_targets/dane.rs`), replayed
/// by tests/fuzz_corpus.rs.
pub mod fuzzing {
    use super::*;

    /// Input: usage, selector and matching type octets, a two-octet length,
    /// that many octets of association data, then the certificate the
    /// server sent (any bytes). Nothing panics; a usable record is a DANE
    /// usage with a digest of its length; a full-certificate DANE-EE record
    /// of the certificate's own bytes matches any parsable certificate.
    pub fn check(data: &[u8]) {
        let [usage, selector, matching, hi, lo, rest @ ..] = data else {
            return;
        };
        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(rest.len());
        let (assoc, cert) = rest.split_at(n);
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let cert = CertificateDer::from(cert.to_vec());
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        if let Some(t) = Tlsa::usable(*usage, *selector, *matching, assoc) {
            assert!(matches!(usage, 2 | 3) && matches!(selector, 0 | 1));
            match t.matching {
                Matching::Sha256 => assert_eq!(t.data.len(), 32),
                Matching::Sha512 => assert_eq!(t.data.len(), 64),
                Matching::Full => assert!(!t.data.is_empty()),
            }
            let set = TlsaSet {
                host: "mx.fuzz.example".into(),
                records: vec![t],
            };
            let _ = set.check(&cert, std::slice::from_ref(&cert), now, &algorithms);
        }
        if !cert.is_empty() {
            let own = TlsaSet {
                host: "mx.fuzz.example".into(),
                records: vec![Tlsa::usable(3, 0, 0, cert.as_ref()).expect("usable")],
            };
            let parsed = ParsedCertificate::try_from(&cert).is_ok();
            let got = own.check(&cert, &[], now, &algorithms);
            assert_eq!(got.is_ok(), parsed, "{got:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    fn algorithms() -> WebPkiSupportedAlgorithms {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    }

    fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
        ParsedCertificate::try_from(cert)
            .unwrap()
            .subject_public_key_info()
            .as_ref()
            .to_vec()
    }

    fn self_signed(name: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .clone()
    }

    /// A CA and a leaf for `names` that it signed.
    fn chain(names: &[&str]) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap();
        (ca.der().clone(), leaf.der().clone())
    }

    fn set(records: Vec<Tlsa>) -> TlsaSet {
        TlsaSet {
            host: "mx.dane.example".into(),
            records,
        }
    }

    #[test]
    fn pkix_usages_and_bad_digests_are_unusable() {
        let d32 = [7u8; 32];
        assert!(Tlsa::usable(0, 0, 1, &d32).is_none());
        assert!(Tlsa::usable(1, 1, 1, &d32).is_none());
        assert!(Tlsa::usable(4, 1, 1, &d32).is_none());
        assert!(Tlsa::usable(3, 2, 1, &d32).is_none());
        assert!(Tlsa::usable(3, 1, 3, &d32).is_none());
        // A SHA-256 field must be 32 octets, a SHA-512 one 64.
        assert!(Tlsa::usable(3, 1, 1, &[7u8; 31]).is_none());
        assert!(Tlsa::usable(3, 1, 2, &d32).is_none());
        assert!(Tlsa::usable(3, 0, 0, &[]).is_none());
        let ok = Tlsa::usable(3, 1, 1, &d32).unwrap();
        assert_eq!(
            (ok.usage, ok.selector, ok.matching),
            (Usage::DaneEe, Selector::Spki, Matching::Sha256)
        );
        assert_eq!(
            Tlsa::usable(2, 0, 2, &[1u8; 64]).unwrap().usage,
            Usage::DaneTa
        );
    }

    #[test]
    fn dane_ee_matches_the_leaf_in_every_selector_and_matching_type() {
        // Self-signed, for another name: DANE-EE looks at neither.
        let cert = self_signed("somewhere.else.example");
        let other = self_signed("mx.dane.example");
        let key = spki(&cert);
        let forms = [
            (0, 0, cert.as_ref().to_vec()),
            (0, 1, Sha256::digest(cert.as_ref()).to_vec()),
            (0, 2, Sha512::digest(cert.as_ref()).to_vec()),
            (1, 0, key.clone()),
            (1, 1, Sha256::digest(&key).to_vec()),
            (1, 2, Sha512::digest(&key).to_vec()),
        ];
        for (selector, matching, data) in forms {
            let s = set(vec![Tlsa::usable(3, selector, matching, &data).unwrap()]);
            assert_eq!(
                s.check(&cert, &[], UnixTime::now(), &algorithms()),
                Ok(Matched::EndEntity),
                "3 {selector} {matching}"
            );
            assert_eq!(
                s.check(&other, &[], UnixTime::now(), &algorithms()),
                Err(Mismatch::NoMatch {
                    host: "mx.dane.example".into()
                }),
                "3 {selector} {matching} matched another certificate"
            );
        }
    }

    #[test]
    fn dane_ta_needs_the_chain_and_the_mx_name() {
        let (ca, leaf) = chain(&["mx.dane.example"]);
        let ta = Tlsa::usable(2, 1, 1, &Sha256::digest(spki(&ca))).unwrap();
        let s = set(vec![ta.clone()]);
        assert_eq!(
            s.check(
                &leaf,
                std::slice::from_ref(&ca),
                UnixTime::now(),
                &algorithms()
            ),
            Ok(Matched::TrustAnchor)
        );
        // The TA certificate must come with the chain.
        assert!(matches!(
            s.check(&leaf, &[], UnixTime::now(), &algorithms()),
            Err(Mismatch::NoMatch { .. })
        ));
        // A leaf of the same CA for another name is refused under DANE-TA.
        let (ca2, wrong_name) = chain(&["www.dane.example"]);
        let s2 = set(vec![
            Tlsa::usable(2, 0, 1, &Sha256::digest(ca2.as_ref())).unwrap(),
        ]);
        match s2.check(&wrong_name, &[ca2], UnixTime::now(), &algorithms()) {
            Err(Mismatch::TrustAnchor { reason, .. }) => {
                assert!(reason.contains("does not name mx.dane.example"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A leaf another CA signed, sent with the TA: the chain fails.
        let (_, stranger) = chain(&["mx.dane.example"]);
        assert!(matches!(
            s.check(&stranger, &[ca], UnixTime::now(), &algorithms()),
            Err(Mismatch::TrustAnchor { .. })
        ));
    }

    #[test]
    fn unusable_looking_data_never_matches_and_hosts_default_to_none() {
        let cert = self_signed("mx.dane.example");
        let s = set(vec![Tlsa::usable(3, 1, 1, &[0u8; 32]).unwrap()]);
        assert!(s.check(&cert, &[], UnixTime::now(), &algorithms()).is_err());
        assert_eq!(
            s.check(
                &CertificateDer::from(vec![1, 2, 3]),
                &[],
                UnixTime::now(),
                &algorithms()
            ),
            Err(Mismatch::Unreadable)
        );
        let mut hosts = DaneHosts::default();
        hosts.0.insert("mx.dane.example".into(), HostDane::Unusable);
        assert_eq!(hosts.get("MX.Dane.Example."), &HostDane::Unusable);
        assert_eq!(hosts.get("mx.other.example"), &HostDane::None);
        assert!(!HostDane::None.governs());
        assert!(HostDane::Failed("x".into()).governs());
    }
}

//! TLS for outbound sessions: the STARTTLS step and the policy it
//! enforces ([`TlsPolicy`]: `none`, `may` with the plaintext fallback,
//! `encrypt`, `verify`), the handshake, and the certificate check. Under
//! `may` and `encrypt` the certificate is checked like `verify` would but
//! accepted either way ([`Opportunistic`]), so the session knows whether it
//! was verified (MTA-STS needs that) without failing on it. Under DANE the
//! certificate is matched against the MX host's TLSA records instead
//! ([`super::dane`]). The handshake is tokio-rustls's own.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::connection::{ClientSettings, Connection, Target};
use super::dane::DaneVerifier;
use super::error::{ConnError, Stage};
use crate::delivery::dane::TlsaSet;
use crate::values::TlsPolicy;

impl Connection {
    /// Upgrades the session with STARTTLS as `policy` says, and says EHLO
    /// again over TLS. `none` does nothing; `may` goes on in plaintext when
    /// STARTTLS is not offered or refused; `encrypt` and `verify` fail then.
    /// With `dane` (usable TLSA records), TLS is required and the
    /// certificate must match them, whatever `policy` says.
    pub(super) async fn starttls(
        &mut self,
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
        dane: Option<&Arc<TlsaSet>>,
    ) -> Result<(), ConnError> {
        // `dane` without records is opportunistic; with them, mandatory.
        let policy = match (dane, policy) {
            (Some(_), _) => TlsPolicy::Encrypt,
            (None, TlsPolicy::Dane) => TlsPolicy::May,
            (None, p) => p,
        };
        if policy == TlsPolicy::None {
            return Ok(());
        }
        if !self.ext.starttls {
            if policy == TlsPolicy::May {
                return Ok(());
            }
            self.quit_quietly().await;
            return Err(ConnError::TlsRequired { reply: None });
        }
        let reply = self
            .wire
            .command("STARTTLS\r\n", self.timeouts.command, Stage::StartTls)
            .await?;
        if reply.code != 220 {
            // The session goes on unchanged after a refused STARTTLS.
            if policy == TlsPolicy::May {
                tracing::info!(remote = %self.remote, reply = %reply, "STARTTLS refused; going on in plaintext");
                return Ok(());
            }
            self.quit_quietly().await;
            return Err(ConnError::TlsRequired { reply: Some(reply) });
        }
        if self.wire.has_unread() {
            // Plaintext sent after the 220 would be read as if it came
            // through TLS (CVE-2011-0411): refuse the session.
            return Err(ConnError::Tls {
                reason: "data after the STARTTLS reply".into(),
            });
        }
        self.start_tls(target, s, policy, dane).await?;
        self.hello(&s.helo).await
    }

    /// The TLS handshake on the plaintext socket (after the 220 to STARTTLS).
    async fn start_tls(
        &mut self,
        target: &Target,
        s: &ClientSettings,
        policy: TlsPolicy,
        dane: Option<&Arc<TlsaSet>>,
    ) -> Result<(), ConnError> {
        let host = target.host.trim_end_matches('.');
        // A name rustls cannot use (an underscore, say) is still good for
        // encryption: the IP then stands in, without SNI.
        let name = if ServerName::try_from(host).is_ok() {
            host.to_string()
        } else if policy == TlsPolicy::Verify {
            return Err(ConnError::Tls {
                reason: format!("{host:?} is not a name a certificate can be checked against"),
            });
        } else {
            target.addr.ip().to_string()
        };
        let (config, verdict, dane) = match dane {
            Some(tlsa) => {
                let (config, dane) = dane_config(tlsa.clone())?;
                (config, None, Some(dane))
            }
            None => {
                let (config, verdict) = tls_config(policy, &s.extra_roots)?;
                (config, verdict, None)
            }
        };
        let Some(tcp) = self.wire.take_plain() else {
            return Err(ConnError::Unusable);
        };
        let tls = match tokio::time::timeout(self.timeouts.command, handshake(config, &name, tcp))
            .await
        {
            Err(_) => {
                return Err(ConnError::Tls {
                    reason: "handshake timeout".into(),
                });
            }
            Ok(Err(reason)) => {
                // The TLSA mismatch in words, rather than rustls's wrapping.
                let reason = match dane.as_ref().and_then(|d| d.mismatch()) {
                    Some(m) => format!("DANE: {m}"),
                    None => reason,
                };
                return Err(ConnError::Tls { reason });
            }
            Ok(Ok(tls)) => tls,
        };
        self.dane = dane.is_some();
        let description = describe(tls.get_ref().1);
        self.verified = match &verdict {
            Some(v) => match &*v.verdict.lock().unwrap_or_else(|p| p.into_inner()) {
                Verdict::Verified => true,
                Verdict::Failed(why) => {
                    // Common and harmless under opportunistic TLS: said once
                    // a day per server at INFO, otherwise at DEBUG.
                    if first_word_today(&self.remote) {
                        tracing::info!(remote = %self.remote, reason = %why, "TLS certificate of this server not verified (opportunistic TLS: encrypting anyway; said once a day per server)");
                    } else {
                        tracing::debug!(remote = %self.remote, reason = %why, "TLS certificate not verified; encrypting anyway");
                    }
                    self.cert_problem = Some(why.clone());
                    false
                }
                Verdict::NotChecked => false,
            },
            // The strict verifier: the handshake succeeding means it verified.
            None => true,
        };
        tracing::debug!(remote = %self.remote, tls = %description, verified = self.verified, "STARTTLS");
        self.tls = Some(description);
        self.wire.put_tls(tls);
        Ok(())
    }
}

/// The TLS handshake over `tcp` for `name`; the error in words: rustls's
/// own for a TLS failure, the socket's otherwise.
async fn handshake(
    config: Arc<ClientConfig>,
    name: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let server = ServerName::try_from(name)
        .map_err(|_| "Invalid TLS name provided".to_string())?
        .to_owned();
    TlsConnector::from(config)
        .connect(server, tcp)
        .await
        .map_err(|e| {
            // tokio-rustls wraps rustls's error in an io::Error.
            let tls = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match tls {
                // Our words for a refused certificate, as the
                // opportunistic check logs them (and TLS reports read).
                Some(t @ rustls::Error::InvalidCertificate(_)) => {
                    format!("TLS error: {}", certificate_problem(t))
                }
                Some(t) => format!("TLS error: {t}"),
                None => format!("I/O error: {e}"),
            }
        })
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384", the same form the inbound side logs.
fn describe(conn: &rustls::ClientConnection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    match conn.negotiated_cipher_suite() {
        Some(cs) => format!("{version} {:?}", cs.suite()),
        None => version,
    }
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trust anchors as a root store, built once from
/// [`crate::trust::system_certs`]; this also lets `May` record a failed
/// check instead of failing the handshake.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(crate::trust::system_certs().iter().cloned());
            if store.is_empty() {
                tracing::warn!("no system CA roots found: TLS policy `verify` cannot succeed");
            }
            Arc::new(store)
        })
        .clone()
}

/// The webpki verifier over the system roots plus `extra`; None when there
/// are no roots at all.
fn webpki(extra: &[CertificateDer<'static>]) -> Option<Arc<WebPkiServerVerifier>> {
    let roots = if extra.is_empty() {
        system_roots()
    } else {
        let mut store = (*system_roots()).clone();
        store.add_parsable_certificates(extra.iter().cloned());
        Arc::new(store)
    };
    WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .ok()
}

/// The client TLS configuration for a policy. `Verify` uses the webpki
/// verifier as is; `May` and `Encrypt` use [`Opportunistic`], returned too so
/// that the caller can read whether the certificate verified.
fn tls_config(
    policy: TlsPolicy,
    extra: &[CertificateDer<'static>],
) -> Result<(Arc<ClientConfig>, Option<Arc<Opportunistic>>), ConnError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Setup(format!("TLS: {e}")))?;
    if policy == TlsPolicy::Verify {
        let verifier =
            webpki(extra).ok_or_else(|| ConnError::Setup("no trusted CA roots".into()))?;
        let config = builder.with_webpki_verifier(verifier).with_no_client_auth();
        return Ok((Arc::new(config), None));
    }
    let verdict = Arc::new(Opportunistic {
        inner: webpki(extra),
        algorithms: provider().signature_verification_algorithms,
        verdict: Mutex::new(Verdict::NotChecked),
    });
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verdict.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), Some(verdict)))
}

/// The client TLS configuration under DANE: the certificate checked
/// against `tlsa` alone; the verifier is returned too, for its verdict.
fn dane_config(tlsa: Arc<TlsaSet>) -> Result<(Arc<ClientConfig>, Arc<DaneVerifier>), ConnError> {
    let verifier = Arc::new(DaneVerifier::new(
        tlsa,
        provider().signature_verification_algorithms,
    ));
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Setup(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), verifier))
}

/// A certificate verification failure in words (rustls's own error reads
/// like Rust: `Other(OtherError(CaUsedAsEndEntity))`).
fn certificate_problem(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the certificate does not name this server".into()
            }
            C::UnknownIssuer => {
                "the certificate is not signed by a trusted CA (self-signed or a private CA)".into()
            }
            C::Revoked => "the certificate was revoked".into(),
            C::BadSignature | C::BadEncoding => "the certificate is malformed".into(),
            C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                "the server presents a CA certificate as its own (self-signed CA)".into()
            }
            other => format!("the certificate was refused ({other:?})"),
        },
        other => other.to_string(),
    }
}

/// True the first time today that `remote` is named (bounded memory).
fn first_word_today(remote: &str) -> bool {
    static SEEN: std::sync::Mutex<Option<(u64, std::collections::HashSet<String>)>> =
        std::sync::Mutex::new(None);
    let day = crate::store::now_ms() / 86_400_000;
    let mut g = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let (d, set) = g.get_or_insert_with(|| (day, Default::default()));
    if *d != day || set.len() >= 10_000 {
        *d = day;
        set.clear();
    }
    set.insert(remote.to_string())
}

/// What the certificate check said.
#[derive(Debug)]
enum Verdict {
    NotChecked,
    Verified,
    Failed(String),
}

/// For `May` and `Encrypt`: checks the certificate like `Verify` would but
/// accepts it either way, recording the verdict. The handshake signatures
/// are still verified, so the peer must hold the certificate's key (an
/// unauthenticated but real TLS session, not mail-send's accept-anything
/// verifier that also skips signatures).
#[derive(Debug)]
struct Opportunistic {
    inner: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    verdict: Mutex<Verdict>,
}

impl ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(v) => match v.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_) => Verdict::Verified,
                Err(e) => Verdict::Failed(certificate_problem(&e)),
            },
            None => Verdict::Failed("no trusted CA roots".into()),
        };
        *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = verdict;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_problems_read_as_words_and_are_said_once_a_day() {
        use rustls::CertificateError as C;
        let w = |c| certificate_problem(&rustls::Error::InvalidCertificate(c));
        assert_eq!(
            w(C::UnknownIssuer),
            "the certificate is not signed by a trusted CA (self-signed or a private CA)"
        );
        assert_eq!(w(C::Expired), "the certificate has expired");
        assert_eq!(
            w(C::NotValidForName),
            "the certificate does not name this server"
        );
        assert!(first_word_today("mx.once.example:25"));
        assert!(!first_word_today("mx.once.example:25"));
        assert!(first_word_today("mx.other.example:25"));
    }
}

//! The certificate check under DANE (RFC 7672): the server's chain is
//! matched against the MX host's TLSA records
//! ([`crate::delivery::dane::TlsaSet::check`]) instead of the CA roots. A
//! mismatch fails the handshake; the handshake signatures are still checked
//! with the certificate's key, so the peer must hold it.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::delivery::dane::{Mismatch, TlsaSet};

/// A verifier for one handshake with one DANE-protected MX host.
#[derive(Debug)]
pub(super) struct DaneVerifier {
    tlsa: Arc<TlsaSet>,
    algorithms: WebPkiSupportedAlgorithms,
    /// Why the chain did not match, for the deferral's text.
    mismatch: Mutex<Option<Mismatch>>,
}

impl DaneVerifier {
    /// A verifier for `tlsa` with the provider's signature algorithms.
    pub(super) fn new(tlsa: Arc<TlsaSet>, algorithms: WebPkiSupportedAlgorithms) -> DaneVerifier {
        DaneVerifier {
            tlsa,
            algorithms,
            mismatch: Mutex::new(None),
        }
    }

    /// The reason the certificate was refused, if it was.
    pub(super) fn mismatch(&self) -> Option<Mismatch> {
        self.mismatch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .tlsa
            .check(end_entity, intermediates, now, &self.algorithms)
        {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(m) => {
                let text = m.to_string();
                *self.mismatch.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                Err(rustls::Error::General(text))
            }
        }
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

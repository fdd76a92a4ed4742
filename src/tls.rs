//! STARTTLS: the rustls server configuration (TLS 1.2 minimum), reloadable.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or parsing a PEM file failed.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the pair.
    #[error("certificate and key do not form a usable pair: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds a server configuration from PEM files.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |p: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
        path: p.display().to_string(),
        detail: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_err(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, &e))?;
    if certs.is_empty() {
        return Err(pem_err(cert, &"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

/// The current TLS configuration, replaced whole on reload so that sessions
/// in flight keep the one they started with.
#[derive(Clone, Default)]
pub struct TlsHolder {
    inner: Arc<RwLock<Option<Arc<ServerConfig>>>>,
}

impl TlsHolder {
    /// Holds `cfg` (None: STARTTLS not offered).
    pub fn new(cfg: Option<Arc<ServerConfig>>) -> TlsHolder {
        TlsHolder {
            inner: Arc::new(RwLock::new(cfg)),
        }
    }

    /// The configuration for a new handshake.
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the configuration.
    pub fn replace(&self, cfg: Arc<ServerConfig>) {
        self.set(Some(cfg));
    }

    /// Replaces the configuration, or stops offering TLS (None).
    pub fn set(&self, cfg: Option<Arc<ServerConfig>>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = cfg;
    }
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384" for logs and Received headers.
pub fn describe(conn: &rustls::ServerConnection) -> String {
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

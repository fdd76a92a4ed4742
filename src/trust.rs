//! Trust anchors for the gateway's outbound TLS (delivery and webhooks): the
//! system's CA bundle, plus `delivery.tls_ca_file` for a national or
//! partners' CA.

use std::sync::OnceLock;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A CA file that cannot serve as trust anchors.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// Unreadable, or not PEM.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Readable, but no certificate in it could be used.
    #[error("{path} holds no usable CA certificate")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Loads the PEM certificates of `path` as extra trust anchors.
pub fn load_roots(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, RootsError> {
    let shown = path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| RootsError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| RootsError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(RootsError::Empty { path: shown });
    }
    Ok(certs)
}

/// The system's CA certificates, loaded once from the distribution's bundle
/// (`SSL_CERT_FILE` first). On Linux this is what rustls-platform-verifier
/// does underneath (the rustls-native-certs roots).
pub fn system_certs() -> &'static [CertificateDer<'static>] {
    static CERTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    CERTS.get_or_init(|| {
        let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
        let candidates = env.into_iter().chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(std::path::PathBuf::from),
        );
        for path in candidates {
            let Ok(certs) = CertificateDer::pem_file_iter(&path) else {
                continue;
            };
            let certs: Vec<_> = certs.flatten().collect();
            if !certs.is_empty() {
                tracing::debug!(path = %path.display(), n = certs.len(), "loaded system CA roots");
                return certs;
            }
        }
        Vec::new()
    })
}

/// The system's CA certificates plus those of `delivery.tls_ca_file`, if set
/// (the file was checked when the configuration was loaded).
pub fn all_certs(ca_file: Option<&std::path::Path>) -> Vec<CertificateDer<'static>> {
    let mut v = system_certs().to_vec();
    if let Some(p) = ca_file {
        match load_roots(p) {
            Ok(extra) => v.extend(extra),
            Err(e) => tracing::error!(error = %e, "extra trust anchors not loaded"),
        }
    }
    v
}

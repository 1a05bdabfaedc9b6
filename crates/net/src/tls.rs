//! # TLS for the client-facing listeners
//!
//! The key-value/admin and S3 listeners can serve HTTPS from a PEM
//! certificate chain and key named in the config (`tls_cert`, `tls_key`).
//! rustls does the protocol, with the `ring` provider (one cryptography
//! library in the binary: snow's curve and cipher crates aside, `ring` is
//! what rustls needs anyway). TLS 1.2 and 1.3, HTTP/1.1 only.
//!
//! Node-to-node links do not use TLS: they use the Noise protocol keyed by
//! the cluster secret (docs/ARCHITECTURE.md, "Encrypted links").

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no PEM
    /// certificate.
    #[error("reading the TLS certificate {path}: {detail}; tls_cert must name a PEM file with the certificate chain, leaf first")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The key file is missing, unreadable or holds no PEM private key.
    #[error("reading the TLS private key {path}: {detail}; tls_key must name a PEM file with a PKCS#8, PKCS#1 or SEC1 key")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the pair (the key does not match the certificate,
    /// an unsupported key type).
    #[error("the TLS certificate {cert} and key {key} cannot be used together: {detail}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's message.
        detail: String,
    },
}

/// Build an acceptor from a PEM certificate chain and private key.
///
/// # Errors
///
/// A file cannot be read or parsed, or the pair does not match.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_path_buf(),
            detail: "no certificate in the file".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        detail: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            detail: e.to_string(),
        })?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

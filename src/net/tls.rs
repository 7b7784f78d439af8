//! TLS for servers and clients, with rustls (ring provider).
//!
//! Certificates and keys are PEM files. A server can require client
//! certificates signed by a CA of its choice. Under TLS the quick UDP
//! channel is off, as in VSOA: publishes and datagrams stay on the encrypted
//! connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

fn pem_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no CERTIFICATE in file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err(path, e))
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(path)? {
        store.add(cert).map_err(|e| pem_err(path, e))?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a server with a client CA insists on a client certificate.
#[derive(Debug, Clone, Copy)]
enum ClientAuth {
    Required,
    Optional,
}

/// Server-side TLS settings.
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
}

impl ServerTls {
    /// Serves `cert` (PEM chain) with `key` (PEM private key); clients are not
    /// asked for certificates.
    ///
    /// # Errors
    /// A file is unreadable or rustls refuses the pair.
    pub fn from_pem(cert: impl AsRef<Path>, key_file: impl AsRef<Path>) -> Result<Self, TlsError> {
        Self::build(cert.as_ref(), key_file.as_ref(), None)
    }

    /// Like [`ServerTls::from_pem`], and every client must present a
    /// certificate signed by a CA in `client_ca` (PEM).
    ///
    /// # Errors
    /// A file is unreadable or rustls refuses the configuration.
    pub fn with_client_auth(
        cert: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
        client_ca: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::build(
            cert.as_ref(),
            key_file.as_ref(),
            Some((client_ca.as_ref(), ClientAuth::Required)),
        )
    }

    /// Like [`ServerTls::with_client_auth`], but a client may also connect
    /// without a certificate; one it does present must be signed by a CA in
    /// `client_ca`. The authenticator tells them apart by
    /// [`Hello::client_certificate`](crate::server::Hello::client_certificate).
    ///
    /// # Errors
    /// A file is unreadable or rustls refuses the configuration.
    pub fn with_optional_client_auth(
        cert: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
        client_ca: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::build(
            cert.as_ref(),
            key_file.as_ref(),
            Some((client_ca.as_ref(), ClientAuth::Optional)),
        )
    }

    fn build(
        cert: &Path,
        key_file: &Path,
        client_ca: Option<(&Path, ClientAuth)>,
    ) -> Result<Self, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            Some((ca, auth)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
                let verifier = match auth {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(certs(cert)?, key(key_file)?)?;
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Client-side TLS settings.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl ClientTls {
    /// Trusts the CAs in `ca` (PEM) and expects the server certificate to
    /// name `server_name` (a DNS name or an IP address).
    ///
    /// # Errors
    /// The file is unreadable or the name is invalid.
    pub fn new(ca: impl AsRef<Path>, server_name: &str) -> Result<Self, TlsError> {
        Self::build(ca.as_ref(), server_name, None)
    }

    /// Like [`ClientTls::new`], presenting a client certificate.
    ///
    /// # Errors
    /// A file is unreadable, the name is invalid or rustls refuses the pair.
    pub fn with_client_cert(
        ca: impl AsRef<Path>,
        server_name: &str,
        cert: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::build(
            ca.as_ref(),
            server_name,
            Some((cert.as_ref(), key_file.as_ref())),
        )
    }

    fn build(
        ca: &Path,
        server_name: &str,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(ca)?);
        let config = match identity {
            Some((cert, key_file)) => {
                builder.with_client_auth_cert(certs(cert)?, key(key_file)?)?
            }
            None => builder.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

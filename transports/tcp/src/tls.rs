//! Optional mutual TLS (feature `tls`): every connection, peer and client, runs TLS 1.3 with a
//! certificate on both sides, each verified against the cluster's CA; baton's own handshake
//! (and everything after it) then runs inside the TLS stream unchanged.
//!
//! ```no_run
//! # fn demo() -> Result<(), baton_transport_tcp::tls::TlsError> {
//! use baton_transport_tcp::{TcpConfig, tls::Tls};
//! use std::path::Path;
//!
//! let mut cfg = TcpConfig::new("demo", b"cluster secret".to_vec());
//! cfg.tls = Some(Tls::from_files(
//!     Path::new("node.pem"),
//!     Path::new("node-key.pem"),
//!     Path::new("ca.pem"),
//! )?);
//! # Ok(()) }
//! ```
//!
//! ## What is verified
//!
//! - Both sides present a certificate chain that must lead to `ca` (webpki: signatures,
//!   validity period, and the key-usage extension when present: `serverAuth` on the
//!   listener's, `clientAuth` on the dialer's — a node plays both roles, so a node
//!   certificate with an extended key usage needs both).
//! - The **name** in the listener's certificate is *not* compared with the address dialed.
//!   Peers are dialed by the address they advertise (an IP, a NAT'd or forwarded address, a
//!   container port), which a certificate rarely names, and the node behind an address is only
//!   learned in baton's handshake. Who a peer is stays what baton's handshake proves (its name
//!   and incarnation under the cluster secret), with every admission rule as without TLS;
//!   the CA decides who may connect at all. A CA that also signs certificates for other
//!   services admits their TLS handshake, which is why the cluster secret still guards the
//!   baton handshake.
//! - Only TLS 1.3 with the `ring` provider's cipher suites; no session resumption (every
//!   connection verifies the full chain; a reconnect costs one more round trip).

use crate::stream::Sniffed;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::{Resumption, WebPkiServerVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A certificate, key or CA file that cannot be used: which field of `[cluster.tls]`, which
/// file, and what was wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cluster.tls.{field} ({}): {message}", file.display())]
pub struct TlsError {
    /// `cert`, `key` or `ca`.
    pub field: &'static str,
    /// The file.
    pub file: PathBuf,
    /// What was wrong.
    pub message: String,
}

/// The TLS identity of a node or client: its certificate chain and key, and the CA its peers'
/// certificates must chain to. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

struct Source<'a> {
    field: &'static str,
    file: &'a Path,
}

impl Source<'_> {
    fn err(&self, message: impl Into<String>) -> TlsError {
        TlsError {
            field: self.field,
            file: self.file.to_path_buf(),
            message: message.into(),
        }
    }
    fn read(&self) -> Result<Vec<u8>, TlsError> {
        std::fs::read(self.file).map_err(|e| self.err(format!("cannot read: {e}")))
    }
}

fn certs(src: &Source<'_>, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| src.err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(src.err("no `BEGIN CERTIFICATE` block found"));
    }
    Ok(certs)
}

impl Tls {
    /// Reads the node's certificate chain (`cert`, PEM, the node's own first), its private key
    /// (`key`, PEM: PKCS#8, PKCS#1 or SEC1) and the CA (`ca`, PEM, one or more certificates).
    /// Errors name the field, the file and what was wrong.
    pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<Tls, TlsError> {
        let (c, k, a) = (
            Source {
                field: "cert",
                file: cert,
            },
            Source {
                field: "key",
                file: key,
            },
            Source {
                field: "ca",
                file: ca,
            },
        );
        let (cert_pem, key_pem, ca_pem) = (c.read()?, k.read()?, a.read()?);
        Self::build(&c, &cert_pem, &k, &key_pem, &a, &ca_pem)
    }

    /// As [`Tls::from_files`], from PEM text already read (errors name the files as given).
    pub fn from_pem(
        cert: (&Path, &[u8]),
        key: (&Path, &[u8]),
        ca: (&Path, &[u8]),
    ) -> Result<Tls, TlsError> {
        Self::build(
            &Source {
                field: "cert",
                file: cert.0,
            },
            cert.1,
            &Source {
                field: "key",
                file: key.0,
            },
            key.1,
            &Source {
                field: "ca",
                file: ca.0,
            },
            ca.1,
        )
    }

    fn build(
        c: &Source<'_>,
        cert_pem: &[u8],
        k: &Source<'_>,
        key_pem: &[u8],
        a: &Source<'_>,
        ca_pem: &[u8],
    ) -> Result<Tls, TlsError> {
        let chain = certs(c, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                k.err("no `BEGIN PRIVATE KEY` (PKCS#8, RSA or EC) block found")
            }
            e => k.err(format!("not a PEM private key file: {e}")),
        })?;
        let mut roots = RootCertStore::empty();
        for cert in certs(a, ca_pem)? {
            roots
                .add(cert)
                .map_err(|e| a.err(format!("not a usable CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| a.err(format!("cannot verify certificates with it: {e}")))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| a.err(format!("no TLS 1.3: {e}")))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| key_error(c, k, e))?;
        // No resumption (see the module docs): tickets would only cost a write per connection.
        server.send_tls13_tickets = 0;
        let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| a.err(format!("cannot verify certificates with it: {e}")))?;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| a.err(format!("no TLS 1.3: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(server_verifier)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| key_error(c, k, e))?;
        client.resumption = Resumption::disabled();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// Runs the listener's side of the TLS handshake on an accepted connection.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }

    /// Runs the dialer's side of the TLS handshake toward `addr` (`host:port`). On failure,
    /// also returns the plain-text notice frame the listener sent, if it sent one (busy, or
    /// TLS not in use there).
    pub(crate) async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<Sniffed>, (io::Error, Option<[u8; 5]>)> {
        self.connector
            .connect(server_name(addr), Sniffed::new(tcp))
            .into_fallible()
            .await
            .map_err(|(e, io)| (e, io.notice()))
    }
}

/// The name the dialer presents (SNI, for IP addresses none): the host part of `addr`. It is
/// not verified (see the module docs).
fn server_name(addr: &str) -> ServerName<'static> {
    let host = match addr.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("baton.invalid").expect("a valid DNS name"))
}

fn key_error(c: &Source<'_>, k: &Source<'_>, e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(_) => k.err(format!(
            "does not belong to the certificate in {}: {e}",
            c.file.display()
        )),
        e => k.err(format!("unusable with the certificate: {e}")),
    }
}

/// Accepts a listener's certificate that chains to the CA, whatever names it holds (see the
/// module docs).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (and its validity and key usage) before the name: a name
        // error means everything else passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Describes the TLS failure behind `e` for a log line, with a hint at its cause, and its
/// kind (what its log line is rate-limited by); `None` when `e` is no TLS failure.
pub(crate) fn describe(e: &io::Error) -> Option<(&'static str, String)> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match inner {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => (
            "tls unknown issuer",
            format!(
                "TLS: the peer's certificate is not signed by this node's cluster.tls.ca ({inner})"
            ),
        ),
        rustls::Error::InvalidCertificate(_) => (
            "tls bad certificate",
            format!("TLS: the peer's certificate is not acceptable ({inner})"),
        ),
        rustls::Error::NoCertificatesPresented => (
            "tls no certificate",
            "TLS: the peer presented no certificate (a client certificate is required)".into(),
        ),
        rustls::Error::AlertReceived(alert) => (
            "tls alert",
            format!(
                "TLS: the peer refused the handshake (alert {alert:?}): is this side's \
                 cluster.tls.cert signed by the CA the peer trusts?"
            ),
        ),
        rustls::Error::InvalidMessage(_) => (
            "tls not tls",
            format!("TLS: the peer does not speak TLS ({inner}): does it have [cluster.tls]?"),
        ),
        _ => ("tls", format!("TLS: {inner}")),
    })
}

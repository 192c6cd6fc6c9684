//! `--tls`: a certificate made at start (rcgen) for both sites' names, and an https server
//! (rustls through tokio-rustls, hyper) for the origin and the cache. No OpenSSL.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use tokio::net::TcpListener;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt as _;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The certificate's lifetime: long enough for a session, short enough for browsers that
/// refuse long-lived certificates (Safari: at most 825 days).
const VALID_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// A throw-away certificate and the server configuration that presents it.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The certificate in PEM, as written to [`Tls::write_pem`]'s file.
    pub cert_pem: String,
}

impl Tls {
    /// A self-signed certificate for `names` (host names or IP addresses), made now.
    pub fn generate(names: &[&str]) -> Result<Tls, Box<dyn std::error::Error>> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + VALID_FOR).into();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tower-amp-session example shop");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;

        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert_pem: cert.pem(),
        })
    }

    /// Writes the certificate to `path` (default: the system's temp directory) so that it
    /// can be trusted; returns where.
    pub fn write_pem(&self, path: Option<&Path>) -> std::io::Result<PathBuf> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => std::env::temp_dir().join("tower-amp-session-shop-cert.pem"),
        };
        std::fs::write(&path, &self.cert_pem)?;
        Ok(path)
    }
}

/// Serves `app` over https on `listener` until the task is dropped. Each connection gets its
/// own task; a client that fails or stalls its handshake is dropped alone.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: BoxCloneSyncService<Request, Response, Infallible>,
) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of file descriptors and the like: wait a little instead of spinning.
            Err(e) => {
                tracing::warn!(error = %e, "tls: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                // A browser that does not trust the certificate yet ends the handshake here.
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "tls: handshake failed"),
                Err(_) => return tracing::debug!(%peer, "tls: handshake timed out"),
            };
            let service =
                TowerToHyperService::new(app.map_request(|req: Request<hyper::body::Incoming>| {
                    req.map(axum::body::Body::new)
                }));
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "tls: connection ended with an error");
            }
        });
    }
}

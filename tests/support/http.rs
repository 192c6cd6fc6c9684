//! A tiny HTTP client for the shop: requests go to 127.0.0.1:PORT with the `Host` a browser
//! would send for `*.localhost` names, so no name resolution is needed. Over TLS (the shop's
//! `--tls`) it trusts exactly the shop's certificate, and sends the host name as SNI.
//!
//! ```ignore
//! let reply = shop.origin().post("/cart/add").header("Origin", &shop.cache_url())
//!     .urlencoded("product_id=3&quantity=2").send().await;
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, CONTENT_TYPE, HOST, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::crypto::{aws_lc_rs, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

/// The boundary of multipart bodies built by [`Call::multipart`].
const BOUNDARY: &str = "----shop-test-boundary-7MA4YWxkTrZu0gW";

/// One of the shop's two servers.
#[derive(Debug, Clone)]
pub struct Endpoint {
    port: u16,
    host: String,
    /// Over TLS: a client that trusts the shop's certificate only.
    tls: Option<Arc<ClientConfig>>,
}

impl Endpoint {
    pub fn new(port: u16, host: String) -> Self {
        Endpoint {
            port,
            host,
            tls: None,
        }
    }

    /// The same endpoint over TLS, trusting exactly `certificate` (DER).
    pub fn tls(mut self, certificate: Vec<u8>) -> Self {
        self.tls = Some(Arc::new(pinned_client_config(certificate)));
        self
    }

    pub fn get(&self, path_and_query: &str) -> Call {
        self.request(Method::GET, path_and_query)
    }

    pub fn post(&self, path_and_query: &str) -> Call {
        self.request(Method::POST, path_and_query)
    }

    pub fn request(&self, method: Method, path_and_query: &str) -> Call {
        Call {
            endpoint: self.clone(),
            method,
            path: path_and_query.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// A request being written; [`Call::send`] sends it.
#[derive(Debug)]
#[must_use]
pub struct Call {
    endpoint: Endpoint,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Call {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Cookie: <pair>` when there is one (`None`: the browser sends no cookie).
    pub fn cookie(self, pair: Option<&str>) -> Self {
        match pair {
            Some(p) => self.header("Cookie", p),
            None => self,
        }
    }

    /// A top-level navigation, as a browser following `AMP-Redirect-To` sends it.
    pub fn navigation(self) -> Self {
        self.header("Sec-Fetch-Mode", "navigate")
            .header("Sec-Fetch-Dest", "document")
    }

    /// An `application/x-www-form-urlencoded` body, given already encoded.
    pub fn urlencoded(mut self, body: &str) -> Self {
        self.body = Bytes::copy_from_slice(body.as_bytes());
        self.header(CONTENT_TYPE.as_str(), "application/x-www-form-urlencoded")
    }

    /// A `multipart/form-data` body of text fields, as amp-form sends a `FormData`.
    pub fn multipart(mut self, fields: &[(&str, &str)]) -> Self {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        self.body = Bytes::from(body);
        self.header(
            CONTENT_TYPE.as_str(),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
        )
    }

    pub async fn send(self) -> Reply {
        // A connection per request: each test has its own runtime, and a pooled connection
        // must not outlive the runtime that drives it.
        let what = format!("{} {}{}", self.method, self.endpoint.host, self.path);
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header(HOST, &self.endpoint.host);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(self.body)).expect("valid request");
        let tcp = TcpStream::connect(("127.0.0.1", self.endpoint.port))
            .await
            .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
        let res = match &self.endpoint.tls {
            None => send_on(TokioIo::new(tcp), req).await,
            Some(config) => {
                let name = self.endpoint.host.split(':').next().unwrap_or_default();
                let name = ServerName::try_from(name.to_owned()).expect("a DNS name");
                let tls = TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: TLS: {e}"));
                send_on(TokioIo::new(tls), req).await
            }
        }
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("read the body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn send_on<IO>(
    io: IO,
    req: Request<Full<Bytes>>,
) -> hyper::Result<hyper::Response<hyper::body::Incoming>>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    sender.send_request(req).await
}

/// A TLS client configuration that trusts exactly `certificate` (DER), no ALPN.
pub fn pinned_client_config(certificate: Vec<u8>) -> ClientConfig {
    let provider = Arc::new(aws_lc_rs::default_provider());
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            certificate: CertificateDer::from(certificate),
            provider,
        }))
        .with_no_client_auth()
}

/// The first certificate in a PEM text, as DER.
pub fn pem_certificate(pem: &str) -> Option<Vec<u8>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|c| c.to_vec())
}

/// Trusts one certificate, the shop's, and nothing else; signatures are still checked.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(tokio_rustls::rustls::Error::General(
                "not the shop's certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The one value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `name=value` pair of the layer's session cookie, whichever of
    /// [`SESSION_COOKIES`](super::SESSION_COOKIES) it is named.
    pub fn session_cookie(&self) -> Option<String> {
        super::SESSION_COOKIES
            .iter()
            .find_map(|name| self.set_cookie(name))
    }

    /// The `name=value` pair of a `Set-Cookie` for `name`, ready for a `Cookie` header.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.split_once('=').is_some_and(|(n, _)| n.trim() == name))
            .map(|pair| pair.trim().to_owned())
    }
}

//! An HTTP/2 client over TLS (rustls, ALPN `h2`) to a TLS-terminating proxy on 127.0.0.1,
//! as a browser talks to it: one connection per shopper, requests multiplexed on it, the
//! host name as SNI and `:authority`. Trusts exactly the proxy's certificate.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::http::{pinned_client_config, Reply};

/// One HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct H2 {
    sender: SendRequest<Full<Bytes>>,
    /// `shop.localhost:P`: the `:authority` of every request.
    authority: String,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// The connection could not be opened or broke (`hyper`'s or the TLS error).
    Broken(String),
    /// No answer within the limit given to [`H2::send`].
    TimedOut,
}

impl H2 {
    /// Opens a connection to `127.0.0.1:port` for `authority` (`host:port`), trusting only
    /// `certificate` (DER). Fails unless the server agreed to HTTP/2.
    pub async fn connect(port: u16, authority: &str, certificate: &[u8]) -> Result<H2, String> {
        let mut config = pinned_client_config(certificate.to_vec());
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let host = authority.split(':').next().unwrap_or_default().to_owned();
        let name = ServerName::try_from(host).map_err(|e| format!("SNI: {e}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err("the server did not agree to HTTP/2 (ALPN h2)".into());
        }
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(H2 {
            sender,
            authority: authority.to_owned(),
        })
    }

    /// A request for `path_and_query` on this connection's authority, to fill in.
    pub fn request(&self, method: &str, path_and_query: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("https://{}{path_and_query}", self.authority))
            .version(Version::HTTP_2)
    }

    /// Sends `req` and reads the whole answer, within `limit`.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        limit: Duration,
    ) -> Result<Reply, NoAnswer> {
        let mut sender = self.sender.clone();
        let exchange = async move {
            sender
                .ready()
                .await
                .map_err(|e| NoAnswer::Broken(e.to_string()))?;
            let res = sender
                .send_request(req)
                .await
                .map_err(|e| NoAnswer::Broken(e.to_string()))?;
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| NoAnswer::Broken(e.to_string()))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or(Err(NoAnswer::TimedOut))
    }

    /// Whether the connection can take no more requests (the server closed it).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

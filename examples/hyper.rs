//! `AmpSessionLayer` on a plain hyper 1 server: no axum, just a `tower::service_fn`.
//!
//! ```text
//! cargo run --example hyper                 # http://127.0.0.1:3000
//! cargo run --example hyper -- --port 8000  # or PORT=8000
//! ```
//!
//! Try it (the publisher origin is `https://shop.example`, so its Google AMP cache origin is
//! `https://shop-example.cdn.ampproject.org`):
//!
//! ```text
//! # A first visit: a session is issued (Set-Cookie: __Host-amp_session=...).
//! curl -si http://127.0.0.1:3000/
//! # A cookieless POST from the cache page: not applied, answered with a handoff
//! # (AMP-Redirect-To: https://shop.example/_amp/handoff?token=...).
//! curl -si -H 'Origin: https://shop-example.cdn.ampproject.org' -d 'a=1' \
//!      http://127.0.0.1:3000/cart/add
//! # The browser's navigation to that URL, on the origin: the POST is replayed through the
//! # app, then 303 to a clean URL with the new session's cookie.
//! curl -si -H 'Sec-Fetch-Mode: navigate' -H 'Sec-Fetch-Dest: document' \
//!      'http://127.0.0.1:3000/_amp/handoff?token=...'
//! # From any other site: refused.
//! curl -si -H 'Origin: https://evil.example' -d 'a=1' http://127.0.0.1:3000/cart/add
//! ```
//!
//! Set `AMP_SESSION_KEY` (base64, 32 bytes or more) so handoff links survive a restart, and
//! `RUST_LOG=tower_amp_session=trace` to watch the layer's decisions.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_amp_session::{AmpSession, AmpSessionLayer, Keyring, KeyringBuilder, RequestBody};

const PUBLISHER: &str = "https://shop.example";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_amp_session=debug".into()),
        )
        .init();

    let layer = AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(signing_key())
        .build()?;

    // The whole app behind the layer: it classifies every request, answers AMP CORS, issues
    // the session cookie, mints handoffs, and completes them at `/_amp/handoff` by calling
    // this same service with the replayed POST.
    let service = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(app));

    let addr = SocketAddr::from(([127, 0, 0, 1], port()));
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{addr} (publisher origin {PUBLISHER})");
    loop {
        let (stream, _) = listener.accept().await?;
        // hyper calls services with `&self`; the adapter clones the tower service per call.
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                eprintln!("connection error: {e}");
            }
        });
    }
}

/// The app. It only runs for requests the layer let through, and always finds an
/// `AmpSession` in the extensions (the replay of a handoff included).
async fn app(req: Request<RequestBody<Incoming>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(session) = req.extensions().get::<AmpSession>().cloned() else {
        return Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no AmpSessionLayer",
        ));
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => Ok(text(
            StatusCode::OK,
            &format!(
                // `Debug` shows a short prefix only (`Display` is the full ID, the store key):
                // safe to print, like the layer's logs.
                "session {:?} (new: {}) from {}\n",
                session.id(),
                session.is_new(),
                session.source().as_str()
            ),
        )),
        (&Method::POST, "/cart/add") => {
            // A real app keys its cart store by `session.id()` (or its `to_string()`).
            let form = match req.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return Ok(text(StatusCode::BAD_REQUEST, "unreadable body")),
            };
            Ok(text(
                StatusCode::OK,
                &format!(
                    "added to the cart of session {:?} (from {}, via handoff: {}): {}\n",
                    session.id(),
                    session.source().as_str(),
                    session.via_handoff(),
                    String::from_utf8_lossy(&form)
                ),
            ))
        }
        _ => Ok(text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// `--port N`, else `PORT`, else 3000.
fn port() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    let flag = args
        .windows(2)
        .find(|w| w[0] == "--port")
        .map(|w| w[1].clone());
    flag.or_else(|| std::env::var("PORT").ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000)
}

/// The signing key from `AMP_SESSION_KEY` (base64), else a random one for this run only.
fn signing_key() -> KeyringBuilder {
    match std::env::var("AMP_SESSION_KEY") {
        Ok(key) => Keyring::builder().signing_base64("k1", &key),
        Err(_) => {
            eprintln!(
                "warning: AMP_SESSION_KEY is not set; using a random key, so handoff links \
                 stop working on restart. Set one with e.g. \
                 AMP_SESSION_KEY=$(openssl rand -base64 32)"
            );
            Keyring::builder().signing("k1", rand::random::<[u8; 32]>())
        }
    }
}

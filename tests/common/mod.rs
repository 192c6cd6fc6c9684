//! A recording app behind the layer, driven with `ServiceExt::oneshot`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_amp_session::{
    AmpSession, AmpSessionLayer, CacheDomain, ConfigBuilder, Keyring, RequestBody, ResponseBody,
};

pub const PUBLISHER: &str = "https://shop.example";
pub const CACHE: &str = "https://shop-example.cdn.ampproject.org";
pub const BING: &str = "https://shop-example.www.bing-amp.com";
pub const BING_BARE: &str = "https://shop-example.bing-amp.com";
pub const LOCAL_CACHE: &str = "http://shop-example.cache.localhost:8081";
pub const OTHER_CACHE: &str = "https://evil-example.cdn.ampproject.org";
/// The session cookie's name by default (no cookie domain: `__Host-` prefixed).
pub const COOKIE: &str = "__Host-amp_session";
/// The shopper's own handoff navigation: the cache page following `AMP-Redirect-To`
/// (what Chromium, Firefox and WebKit send; the cache page URL is the `Referer`).
pub const NAV: [(&str, &str); 3] = [
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
    (
        "referer",
        "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/1",
    ),
];

/// What the app saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub session: Option<AmpSession>,
    pub origin: Option<String>,
}

#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

pub type App = tower::util::BoxCloneService<
    Request<RequestBody<Full<Bytes>>>,
    Response<Full<Bytes>>,
    Infallible,
>;

/// An app that records every request (and so uses its session) and answers with `status`
/// and `extra` headers.
pub fn app(
    rec: &Recorder,
    status: StatusCode,
    extra: &'static [(&'static str, &'static str)],
) -> App {
    app_with(rec, status, extra, true)
}

/// [`app`], that calls `AmpSession::id` (uses the session) only when `uses_session`.
pub fn app_with(
    rec: &Recorder,
    status: StatusCode,
    extra: &'static [(&'static str, &'static str)],
    uses_session: bool,
) -> App {
    let rec = rec.clone();
    tower::util::BoxCloneService::new(tower::service_fn(
        move |req: Request<RequestBody<Full<Bytes>>>| {
            let rec = rec.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                rec.0.lock().unwrap().push(Seen {
                    method: parts.method.clone(),
                    uri: parts.uri.to_string(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned()),
                    body,
                    // Recording the session is using it, as an app keyed by it does: in lazy
                    // mode (the default) the answer then sets a new session's cookie.
                    session: parts
                        .extensions
                        .get::<AmpSession>()
                        .inspect(|s| {
                            if uses_session {
                                s.id();
                            }
                        })
                        .cloned(),
                    origin: parts
                        .headers
                        .get("origin")
                        .map(|v| v.to_str().unwrap().to_owned()),
                });
                let mut res = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
                *res.status_mut() = status;
                for (k, v) in extra {
                    res.headers_mut().insert(*k, v.parse().unwrap());
                }
                Ok::<_, Infallible>(res)
            }
        },
    ))
}

pub fn builder() -> ConfigBuilder {
    AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .cache(
            CacheDomain::custom("cache.localhost")
                .allow_http()
                .port(8081),
        )
        // As the shop: adding to the cart applies on arrival from the cache page.
        .direct_route("/cart/add")
}

pub type Svc = tower_amp_session::AmpSessionService<App>;

pub fn service(layer: &AmpSessionLayer, app: App) -> Svc {
    tower::Layer::layer(layer, app)
}

/// A request with `headers`, and a body.
pub fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
    pub rejection: Option<tower_amp_session::Rejection>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }
    /// `name=value` of the session cookie this answer sets.
    pub fn session_cookie(&self) -> Option<String> {
        self.all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("__Host-amp_session="))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }
}

pub async fn send(svc: &mut Svc, req: Request<Full<Bytes>>) -> Answer {
    let res: Response<ResponseBody<Full<Bytes>>> =
        svc.ready().await.unwrap().call(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        rejection: parts.extensions.get().copied(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Path and query of an absolute URL on the publisher.
pub fn path_of(url: &str) -> String {
    url.strip_prefix(PUBLISHER).unwrap_or(url).to_owned()
}

pub fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let b = "----WebKitFormBoundaryAbC123";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{b}--\r\n"));
    (format!("multipart/form-data; boundary={b}"), body)
}

pub fn fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Mints a handoff for adding `product` with a cookieless urlencoded cache POST; returns
/// the handoff path and query.
pub async fn mint_add(svc: &mut Svc, product: u32) -> String {
    let a = send(
        svc,
        request(
            "POST",
            "/cart/add",
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &format!("product_id={product}&quantity=1"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
}

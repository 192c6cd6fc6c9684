//! A test server for the shop's offline stand-in for amp-form (`examples/shop/offline.js`),
//! run inside the test (no shop, no session layer in the way): one page per case, each with a
//! form whose `action-xhr` answers in the way the case needs, and a record of every request
//! the stand-in sent.
//!
//! One port, several names, so that a page and its endpoint can be (`*.localhost` resolves to
//! loopback in the browsers):
//! - [`PAGE_HOST`]: where the case pages are;
//! - [`API_HOST`]: another origin on the same site (cookies still go along with
//!   `credentials: 'include'`, which tells that mode apart from `same-origin`);
//! - [`CACHE_HOST`]: another site, serving a cache copy under `/c/s/<page host>/...`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio::task::JoinHandle;

/// The stand-in, exactly as the shop serves it.
const OFFLINE_JS: &str = include_str!("../../examples/shop/offline.js");

pub const PAGE_HOST: &str = "page.standin.localhost";
pub const API_HOST: &str = "api.standin.localhost";
pub const CACHE_HOST: &str = "copy.cache.localhost";

/// Where a case's form posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The page's own origin.
    SameOrigin,
    /// [`API_HOST`]: cross-origin, same site.
    OtherOrigin,
    /// [`PAGE_HOST`], from a page served by [`CACHE_HOST`]: cross-site, like a cache page
    /// posting to the publisher.
    Publisher,
}

/// One case: the form on the page, and how its endpoint answers.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub endpoint: Endpoint,
    /// `post` or `get`.
    pub method: &'static str,
    /// The form's `enctype` attribute, if any.
    pub enctype: Option<&'static str>,
    pub target: &'static str,
    /// Whether the form is in an iframe of a wrapper page (the redirect must move the top).
    pub in_iframe: bool,
    /// An extra input named `__amp_source_origin`, which amp-form refuses.
    pub illegal_input: bool,
    /// The endpoint's status.
    pub status: u16,
    /// `AMP-Redirect-To`; `{page}` stands for `http://page.standin.localhost:PORT`, `{port}`
    /// for the port.
    pub redirect_to: Option<&'static str>,
    /// Whether `Access-Control-Expose-Headers` lists `AMP-Redirect-To` (cross-origin only).
    pub expose: bool,
}

impl Case {
    /// A POST from the page to its own origin, answered 200 without a redirect.
    pub const fn new(name: &'static str) -> Case {
        Case {
            name,
            endpoint: Endpoint::SameOrigin,
            method: "post",
            enctype: None,
            target: "_top",
            in_iframe: false,
            illegal_input: false,
            status: 200,
            redirect_to: None,
            expose: false,
        }
    }
}

/// What the endpoint saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub host: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Shared {
    port: u16,
    cases: HashMap<&'static str, Case>,
    seen: Mutex<Vec<Seen>>,
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct StandInServer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl StandInServer {
    /// Serves `cases` on a free loopback port (inside the current tokio runtime).
    pub async fn start(cases: &[Case]) -> StandInServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            port,
            cases: cases.iter().map(|c| (c.name, c.clone())).collect(),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/offline/amp-form.js", get(script))
            .route("/case/{name}", get(case_page))
            .route("/c/s/{host}/case/{name}", get(cache_copy))
            .route("/frame/{name}", get(frame_page))
            .route("/echo/{name}", any(echo))
            .route(
                "/landed",
                get(|| async { Html("<!doctype html><title>landed</title><p>landed") }),
            )
            .route("/probe-cookie", get(probe_cookie))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandInServer { shared, task }
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `http://<host>:PORT`.
    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}", self.shared.port)
    }

    /// Replaces `{page}` with the page origin and `{port}` with the port.
    pub fn expand(&self, text: &str) -> String {
        expand(text, self.shared.port)
    }

    /// The URL a case is opened at.
    pub fn case_url(&self, case: &Case) -> String {
        if case.in_iframe {
            format!("{}/frame/{}", self.url(PAGE_HOST), case.name)
        } else if case.endpoint == Endpoint::Publisher {
            format!(
                "{}/c/s/{PAGE_HOST}:{}/case/{}",
                self.url(CACHE_HOST),
                self.shared.port,
                case.name
            )
        } else {
            format!("{}/case/{}", self.url(PAGE_HOST), case.name)
        }
    }

    /// Every request seen so far for `path` (any host).
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .expect("the record")
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    /// Every request with this method seen so far.
    pub fn seen_with_method(&self, method: &Method) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .expect("the record")
            .iter()
            .filter(|s| s.method == method)
            .cloned()
            .collect()
    }
}

impl Drop for StandInServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn expand(text: &str, port: u16) -> String {
    text.replace("{page}", &format!("http://{PAGE_HOST}:{port}"))
        .replace("{port}", &port.to_string())
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        OFFLINE_JS,
    )
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The form page of a case; `action-xhr` is absolute, as on a cache page.
fn render_case(shared: &Shared, case: &Case) -> String {
    let action_host = match case.endpoint {
        Endpoint::SameOrigin | Endpoint::Publisher => PAGE_HOST,
        Endpoint::OtherOrigin => API_HOST,
    };
    let action = format!("http://{action_host}:{}/echo/{}", shared.port, case.name);
    let mut attrs = format!(
        "method=\"{}\" action-xhr=\"{action}\" target=\"{}\"",
        case.method, case.target
    );
    if let Some(enctype) = case.enctype {
        let _ = write!(attrs, " enctype=\"{enctype}\"");
    }
    let illegal = if case.illegal_input {
        "<input type=\"hidden\" name=\"__amp_source_origin\" value=\"http://evil.example\">"
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>case {name}</title>
<meta name="referrer" content="no-referrer-when-downgrade">
<script async src="/offline/amp-form.js"></script>
</head>
<body>
<form {attrs}>
<input type="hidden" name="product_id" value="3">
<input type="number" name="quantity" value="2">
{illegal}
<button type="submit">Send</button>
<div submit-success><template type="amp-mustache">ok {{{{message}}}}</template></div>
<div submit-error><template type="amp-mustache">failed: {{{{error}}}}</template></div>
</form>
</body>
</html>
"#,
        name = case.name,
    )
}

async fn case_page(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.cases.get(name.as_str()) {
        Some(case) => Html(render_case(&shared, case)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/c/s/<host>/case/<name>` on the cache host: the same page, from another site.
async fn cache_copy(
    State(shared): State<Arc<Shared>>,
    Path((_host, name)): Path<(String, String)>,
) -> Response {
    case_page(State(shared), Path(name)).await
}

/// A wrapper page showing the case in a same-origin iframe, as a viewer shows an AMP page.
async fn frame_page(Path(name): Path<String>) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>frame {name}</title>\
         <iframe src=\"/case/{name}\" width=\"600\" height=\"300\"></iframe>"
    ))
}

/// A cookie on whichever host asks, to see which requests carry it (default `SameSite=Lax`).
async fn probe_cookie(headers: HeaderMap) -> Response {
    let cookie = format!("probe={}; Path=/", host_of(&headers));
    (
        [(header::SET_COOKIE, cookie)],
        Html("<!doctype html><title>cookie</title><p>cookie set"),
    )
        .into_response()
}

/// The form endpoint: records the request and answers as the case says, with AMP CORS
/// headers for the page's `Origin` when it sent one.
async fn echo(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    shared.seen.lock().expect("the record").push(Seen {
        method: method.clone(),
        host: host_of(&headers),
        path: uri.path().to_owned(),
        query,
        headers: headers.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    // AMP CORS never needs a preflight: answer one without CORS headers, so it fails.
    if method == Method::OPTIONS {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(case) = shared.cases.get(name.as_str()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let status = StatusCode::from_u16(case.status).expect("a valid status");
    let json = if status.is_success() {
        r#"{"message":"received"}"#
    } else {
        r#"{"error":"the endpoint said no"}"#
    };
    let mut res = (status, [(header::CONTENT_TYPE, "application/json")], json).into_response();
    let h = res.headers_mut();
    if let Some(origin) = headers.get(header::ORIGIN) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if case.expose {
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("AMP-Redirect-To"),
            );
        }
    }
    if let Some(to) = case.redirect_to {
        let to = expand(to, shared.port);
        h.insert(
            "amp-redirect-to",
            HeaderValue::from_str(&to).expect("a header value"),
        );
    }
    res
}

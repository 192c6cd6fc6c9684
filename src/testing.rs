//! Test an app through the layer (feature `test-util`): mint a handoff for a form and
//! complete it, as amp-form and the browser would, in a few lines.
//!
//! [`Handoff`] plays both sides of the flow against the app *with the layer in front*
//! (`layer.wrap_router(app)`, or `ServiceBuilder::new().layer(layer).service(app)`):
//!
//! 1. the cookieless POST from the publisher's page on the AMP cache (the first configured
//!    cache origin), in `multipart/form-data` like amp-form, or urlencoded;
//! 2. the top-level navigation to the `AMP-Redirect-To` URL on the publisher origin;
//! 3. only when asked with [`Handoff::confirm`]: the click on the confirmation page's button
//!    (the first-party POST of the token), when the layer shows that page.
//!
//! By default the handoff stops where a real browser stops: a route that is not declared
//! with [`direct_route`](crate::ConfigBuilder::direct_route) ends on the confirmation page
//! ([`HandoffOutcome::ConfirmationShown`]), and the change is not applied until the shopper
//! clicks, which [`Handoff::confirm`] plays.
//!
//! The click comes as from a shopper who read the page for the
//! [`confirmation_delay`](crate::ConfigBuilder::confirmation_delay): its render time is
//! signed as that long ago, so tests need not sleep or set a clock.
//!
//! Each answer is kept as a [`TestResponse`]; [`Completed`] says what the last one was.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::post, Router};
//! use tower_amp_session::testing::Handoff;
//! use tower_amp_session::{AmpForm, AmpSession, AmpSessionLayer, HandoffOutcome, Keyring};
//!
//! #[derive(serde::Deserialize)]
//! struct Add { product_id: u32 }
//!
//! async fn add(_session: AmpSession, AmpForm(add): AmpForm<Add>) -> String {
//!     format!("{{\"added\":{}}}", add.product_id)
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let layer = AmpSessionLayer::builder()
//!     .publisher_origin("https://shop.example")
//!     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
//!     .direct_route("/cart/add") // applied on arrival; other routes ask first
//!     .build()
//!     .unwrap();
//! let mut app = layer.wrap_router(Router::new().route("/cart/add", post(add)));
//!
//! let done = Handoff::post("/cart/add")
//!     .form(&[("product_id", "3")])
//!     .send(&layer, &mut app)
//!     .await;
//! assert_eq!(done.outcome(), Some(HandoffOutcome::Applied)); // a declared route: applied on arrival
//! assert_eq!(done.status(), http::StatusCode::SEE_OTHER);
//! assert!(done.session_cookie().is_some()); // a new first-party session
//! # });
//! # }
//! ```

use std::fmt;
use std::future::poll_fn;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, REFERER, SET_COOKIE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use crate::handoff::{HandoffOutcome, AMP_REDIRECT_TO, TOKEN_PARAM};
use crate::layer::AmpSessionLayer;
use crate::reject::Rejection;

use crate::RETURN_PATH_FIELD;
const BOUNDARY: &str = "tower-amp-session-testing";

/// One handoff to run through an app: the form, how it is sent, and what the browser has.
///
/// ```
/// use tower_amp_session::testing::Handoff;
///
/// let handoff = Handoff::post("/cart/add")
///     .form(&[("product_id", "3"), ("quantity", "2")])
///     .urlencoded()                       // default: multipart, like amp-form
///     .return_path("/products/3")         // the cache page the form is on
///     .cookie("__Host-amp_session=...");  // the browser already has a session
/// # let _ = handoff;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Handoff {
    path: String,
    fields: Vec<(String, String)>,
    multipart: bool,
    cookie: Option<String>,
    return_path: Option<String>,
    confirm: bool,
}

impl Handoff {
    /// A form posted to `path` (path and query on the publisher origin, e.g. `/cart/add`).
    pub fn post(path: impl Into<String>) -> Self {
        Handoff {
            path: path.into(),
            fields: Vec::new(),
            multipart: true,
            cookie: None,
            return_path: None,
            confirm: false,
        }
    }

    /// Adds the form's fields, in order.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, fields: &[(K, V)]) -> Self {
        self.fields.extend(
            fields
                .iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// Sends the form as `application/x-www-form-urlencoded` (`<form enctype>` on amp-form)
    /// instead of amp-form's default `multipart/form-data`.
    pub fn urlencoded(mut self) -> Self {
        self.multipart = false;
        self
    }

    /// The path of the cache page the form is on: sent as the `Referer` of the cache POST
    /// and as the form's hidden `amp_return_path` field.
    pub fn return_path(mut self, path: impl Into<String>) -> Self {
        self.return_path = Some(path.into());
        self
    }

    /// A `Cookie` header (`name=value`) the browser sends on the navigation to the origin:
    /// the first-party session it already has. Never sent on the cache POST (that is why
    /// there is a handoff).
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookie = Some(cookie.into());
        self
    }

    /// Clicks the confirmation page's button when the layer shows one, as the shopper
    /// would: the change is then applied by that click ([`HandoffOutcome::Confirmed`]).
    /// Without it (the default) the handoff stops at the confirmation page, as a real
    /// browser does until the shopper clicks.
    ///
    /// ```
    /// use tower_amp_session::testing::Handoff;
    ///
    /// let handoff = Handoff::post("/account/email").form(&[("email", "a@b.example")]).confirm();
    /// # let _ = handoff;
    /// ```
    pub fn confirm(mut self) -> Self {
        self.confirm = true;
        self
    }

    /// Stops at the confirmation page, when the layer shows one: the default, kept so that
    /// a test can say so.
    pub fn without_confirming(mut self) -> Self {
        self.confirm = false;
        self
    }

    /// Runs the handoff through `app`, which must have `layer` in front of it.
    ///
    /// # Panics
    ///
    /// When `app` fails (its `Err`) or a response body cannot be read: a test helper
    /// reports those at once.
    pub async fn send<S, B>(self, layer: &AmpSessionLayer, app: &mut S) -> Completed
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>>,
        S::Error: fmt::Debug,
        B: Body,
        B::Error: fmt::Debug,
    {
        let config = &layer.config;
        let publisher = &config.publishers[0];
        let cache = layer
            .cache_origins()
            .next()
            .unwrap_or("https://cdn.ampproject.org")
            .to_owned();
        let cookie_name = &*config.cookie_name;

        // 1. The cookieless POST from the cache page (amp-form's XHR).
        let mut fields = self.fields.clone();
        if let Some(path) = &self.return_path {
            fields.push((RETURN_PATH_FIELD.to_owned(), path.clone()));
        }
        let (content_type, body) = if self.multipart {
            (
                format!("multipart/form-data; boundary={BOUNDARY}"),
                multipart(&fields),
            )
        } else {
            (
                "application/x-www-form-urlencoded".to_owned(),
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&fields)
                    .finish(),
            )
        };
        let sep = if self.path.contains('?') { '&' } else { '?' };
        let source: String = form_urlencoded::byte_serialize(publisher.origin.as_bytes()).collect();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{sep}__amp_source_origin={source}", self.path))
            .header(HOST, &publisher.authority)
            .header(ORIGIN, &cache)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, content_type)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "cors")
            .header("sec-fetch-dest", "empty");
        if let Some(path) = &self.return_path {
            req = req.header(
                REFERER,
                format!("{cache}/c/s/{}{path}", publisher.authority),
            );
        }
        let mint = call(app, req, body).await;
        let mut done = Completed {
            mint,
            completion: None,
            confirmation: None,
            cookie_name: cookie_name.to_owned(),
        };
        let Some(to) = done.mint.header(AMP_REDIRECT_TO.as_str()) else {
            return done;
        };
        let Some(handoff) = to.strip_prefix(&*publisher.origin).map(str::to_owned) else {
            return done;
        };

        // 2. The top-level navigation on the publisher origin.
        let mut req = Request::get(&handoff)
            .header(HOST, &publisher.authority)
            .header(REFERER, format!("{cache}/"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document");
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let completion = call(app, req, String::new()).await;
        if completion.outcome != Some(HandoffOutcome::ConfirmationShown) || !self.confirm {
            done.completion = Some(completion);
            return done;
        }

        // 3. The click on the confirmation page's button: a first-party POST of the token.
        let token = handoff
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k == TOKEN_PARAM)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        // The shopper read the page for the confirmation delay before pressing the button:
        // its render time is signed as that long ago (the layer's own check then passes
        // without the test sleeping; the page's own render field is checked by the layer's
        // tests).
        let read_from = config.now_ms().saturating_sub(config.confirmation_delay_ms);
        let render = crate::token::HandoffToken::open(
            &config.keyring,
            &token,
            config.now(),
            config.clock_skew,
        )
        .map(|t| crate::handoff::render_value(config, &t.nonce, read_from))
        .unwrap_or_default();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair(TOKEN_PARAM, &token)
            .append_pair(crate::handoff::RENDER_FIELD, &render)
            .finish();
        let mut req = Request::post(&*config.handoff_path)
            .header(HOST, &publisher.authority)
            .header(ORIGIN, &*publisher.origin)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document");
        // The cookie the confirmation page set, else the one the browser had.
        let cookie = completion
            .session_cookie(cookie_name)
            .or(self.cookie.clone());
        if let Some(c) = &cookie {
            req = req.header(COOKIE, c);
        }
        done.confirmation = Some(completion);
        done.completion = Some(call(app, req, body).await);
        done
    }
}

/// What a [`Handoff`] did: every answer it got, and the last one's verdict.
#[derive(Debug, Clone)]
pub struct Completed {
    mint: TestResponse,
    confirmation: Option<TestResponse>,
    completion: Option<TestResponse>,
    cookie_name: String,
}

impl Completed {
    /// The answer to the cache POST: with the layer, `200` and `AMP-Redirect-To`; a
    /// rejection (e.g. `413` for a form over the body limit) otherwise.
    pub fn mint(&self) -> &TestResponse {
        &self.mint
    }

    /// The confirmation page, when the layer showed one and it was confirmed.
    pub fn confirmation(&self) -> Option<&TestResponse> {
        self.confirmation.as_ref()
    }

    /// The answer to the navigation (or to the confirmation): `None` when the mint made
    /// no handoff.
    pub fn completion(&self) -> Option<&TestResponse> {
        self.completion.as_ref()
    }

    /// The last answer: the completion, else the mint.
    pub fn last(&self) -> &TestResponse {
        self.completion.as_ref().unwrap_or(&self.mint)
    }

    /// The last answer's [`HandoffOutcome`], if the layer completed (or refused) a handoff.
    pub fn outcome(&self) -> Option<HandoffOutcome> {
        self.completion.as_ref().and_then(|c| c.outcome)
    }

    /// The last answer's status.
    pub fn status(&self) -> StatusCode {
        self.last().status
    }

    /// The last answer's `Location` (the 303's target).
    pub fn location(&self) -> Option<&str> {
        self.last().header(LOCATION.as_str())
    }

    /// `name=value` of the session cookie issued on the way (on the confirmation page or
    /// the completion), ready for a `Cookie` header of the app's next request.
    pub fn session_cookie(&self) -> Option<String> {
        [self.completion.as_ref(), self.confirmation.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|r| r.session_cookie(&self.cookie_name))
    }
}

/// One answer, read whole.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The [`HandoffOutcome`] extension, if any.
    pub outcome: Option<HandoffOutcome>,
    /// The [`Rejection`] extension, if the layer refused the request.
    pub rejection: Option<Rejection>,
}

impl TestResponse {
    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `name=value` of the `Set-Cookie` for cookie `name`.
    fn session_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.split_once('=').is_some_and(|(n, _)| n.trim() == name))
            .map(str::to_owned)
    }
}

async fn call<S, B>(app: &mut S, req: http::request::Builder, body: String) -> TestResponse
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: fmt::Debug,
    B: Body,
    B::Error: fmt::Debug,
{
    let req = req
        .body(Full::new(Bytes::from(body)))
        .expect("the test's path and headers are valid");
    poll_fn(|cx| app.poll_ready(cx))
        .await
        .expect("the app is ready");
    let res = app.call(req).await.expect("the app answers");
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .expect("the answer's body can be read")
        .to_bytes();
    TestResponse {
        status: parts.status,
        outcome: parts.extensions.get().copied(),
        rejection: parts.extensions.get().copied(),
        headers: parts.headers,
        body,
    }
}

fn multipart(fields: &[(String, String)]) -> String {
    let mut body = String::new();
    for (name, value) in fields {
        let name = name.replace('"', "%22");
        body.push_str(&format!(
            "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

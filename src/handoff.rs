//! The handoff: mint on the cache request, complete on the origin.
//!
//! Mint: a state-changing request from the cache without the session cookie is not passed to
//! the app. Its body is read (bounded), signed into a token, and the answer is
//! `AMP-Redirect-To: <publisher origin><handoff path>?token=...`, which makes amp-form
//! navigate the top window to the origin.
//!
//! Complete: on that first-party navigation the token is verified, its nonce consumed, the
//! session read or issued, the change replayed through the app, and the user redirected
//! (303) to a clean URL.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, ORIGIN, REFERER, SET_COOKIE,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use rand::RngCore;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::classify::{Classified, RequestSource};
use crate::config::{Config, Publisher, ReturnTo, SessionMode};
use crate::cors;
use crate::form::{self, FormKind};
use crate::layer::AmpSessionLayer;
use crate::reject::{escape, page, reasons, Rejection};
use crate::replay::NonceStatus;
use crate::return_path::{return_path_from_referer, validate_return_path};
use crate::session::{read_cookie, AmpSession, CookieState, SessionId};
use crate::token::{CapturedChange, HandoffToken, TokenError, MAX_TARGET_LEN};

/// `AMP-Redirect-To`: amp-form navigates the top window to this URL.
pub static AMP_REDIRECT_TO: HeaderName = HeaderName::from_static("amp-redirect-to");
/// The query parameter that carries the token on the handoff URL.
pub const TOKEN_PARAM: &str = "token";

static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
static SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
static REFERRER_POLICY: HeaderName = HeaderName::from_static("referrer-policy");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Mints a handoff for a cookieless state-changing request from the cache.
pub(crate) async fn mint<B, ResB>(
    config: Arc<Config>,
    classified: Classified,
    parts: http::request::Parts,
    body: B,
) -> Response<ResponseBody<ResB>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    let origin = classified.cors_origin.clone();
    let mut res = match mint_response(&config, &classified, parts, body).await {
        Ok(res) => res,
        Err(rejection) => {
            tracing::debug!(
                status = rejection.status().as_u16(),
                reason = rejection.reason(),
                source = classified.source.as_str(),
                stage = "mint",
                "amp_session.rejected"
            );
            rejection.json()
        }
    };
    cors::apply(res.headers_mut(), origin);
    res
}

async fn mint_response<B, ResB>(
    config: &Config,
    classified: &Classified,
    parts: http::request::Parts,
    body: B,
) -> Result<Response<ResponseBody<ResB>>, Rejection>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    let publisher = &config.publishers[classified.publisher];
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    if target.len() > MAX_TARGET_LEN {
        return Err(reasons::TARGET_TOO_LONG);
    }
    let kind = form::form_kind(&parts.headers)?;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.body_limit as u64) {
        return Err(reasons::BODY_TOO_LARGE);
    }
    let bytes = match Limited::new(body, config.body_limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(reasons::BODY_TOO_LARGE)
        }
        Err(_) => return Err(reasons::BODY_UNREADABLE),
    };
    if kind == FormKind::Empty && !bytes.is_empty() {
        return Err(reasons::UNSUPPORTED_FORM);
    }
    let (encoding, body) = form::capture(kind, bytes).await?;
    let return_path = match &config.return_to {
        ReturnTo::Path(p) => p.clone(),
        ReturnTo::Referer => parts
            .headers
            .get(REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| {
                return_path_from_referer(r, &publisher.url, |host| {
                    config
                        .caches
                        .iter()
                        .any(|c| c.is_cache_host(&publisher.cache_subdomain, host))
                })
            })
            .unwrap_or_else(|| "/".to_owned()),
    };
    let change = CapturedChange {
        method: parts.method,
        target,
        encoding,
        body,
        return_path,
    };
    let now = config.now();
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let token = HandoffToken::seal(
        &config.keyring,
        &change,
        now,
        now + config.handoff_ttl,
        nonce,
    )
    .map_err(|_| reasons::BODY_TOO_LARGE)?;
    let mut url = String::with_capacity(
        publisher.origin.len() + config.handoff_path.len() + TOKEN_PARAM.len() + 2 + token.len(),
    );
    for part in [
        &*publisher.origin,
        &*config.handoff_path,
        "?",
        TOKEN_PARAM,
        "=",
        &token,
    ] {
        url.push_str(part);
    }
    // One allocation: the header takes the string's buffer.
    let location =
        HeaderValue::from_maybe_shared(Bytes::from(url)).map_err(|_| reasons::BODY_TOO_LARGE)?;
    tracing::debug!(
        method = %change.method,
        // The path only: a query may carry personal data.
        path = %change.target.split('?').next().unwrap_or(""),
        body_len = change.body.len(),
        "amp_session.handoff_minted"
    );
    let mut res = Response::new(ResponseBody::full(Bytes::from_static(b"{}")));
    let h = res.headers_mut();
    h.insert(&AMP_REDIRECT_TO, location);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, NO_STORE);
    Ok(res)
}

/// Completes a handoff on the publisher origin: the GET of the handoff URL, or the POST of
/// the confirmation page for sensitive routes.
pub(crate) async fn complete<S, B, ResB>(
    config: Arc<Config>,
    inner: S,
    req: Request<B>,
) -> Result<Response<ResponseBody<ResB>>, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<crate::BoxError>,
{
    let publisher = publisher_for(&config, &req);
    let (parts, body) = req.into_parts();
    let confirmed = parts.method == Method::POST;
    let checked = match token_text(&config, &parts, body).await {
        Ok(text) => check(&config, publisher, &parts.headers, &text),
        Err(r) => Err(Refusal::from(r)),
    };
    let checked = match checked {
        Ok(c) => c,
        Err(Refusal { rejection, back }) => {
            tracing::debug!(
                status = rejection.status().as_u16(),
                reason = rejection.reason(),
                source = "handoff",
                stage = "complete",
                "amp_session.rejected"
            );
            let mut res = rejection.page(&back);
            res.headers_mut().insert(&REFERRER_POLICY, NO_REFERRER);
            if rejection.status() == StatusCode::METHOD_NOT_ALLOWED {
                res.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static("GET, POST"));
            }
            return Ok(res);
        }
    };
    if !confirmed && config.is_sensitive(&checked.token.change.target) {
        // A link alone never applies a sensitive change: the user confirms, first-party.
        tracing::debug!(target = %checked.token.change.target, "amp_session.handoff_confirmation_shown");
        let mut res = confirmation_page(&config, &checked);
        res.extensions_mut()
            .insert(HandoffOutcome::ConfirmationShown);
        return Ok(res);
    }
    apply(&config, publisher, inner, parts, checked).await
}

/// Consumes the nonce, replays the change through the app, and redirects.
async fn apply<S, B, ResB>(
    config: &Config,
    publisher: &Publisher,
    mut inner: S,
    parts: http::request::Parts,
    checked: Checked,
) -> Result<Response<ResponseBody<ResB>>, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<crate::BoxError>,
{
    let Checked { token, session, .. } = checked;
    let change = token.change;
    let back = absolute(publisher, &change.return_path);

    let expires =
        UNIX_EPOCH + Duration::from_secs(token.expires_at.saturating_add(config.clock_skew));
    match config
        .replay_guard
        .check_and_mark(&token.key_id, &token.nonce, expires)
        .await
    {
        Ok(NonceStatus::Fresh) => {}
        Ok(NonceStatus::AlreadyUsed) => {
            // A reload or double click: the change was applied once already.
            tracing::debug!("amp_session.handoff_replayed");
            let mut res = see_other(&back, None);
            res.extensions_mut().insert(HandoffOutcome::AlreadyApplied);
            return Ok(res);
        }
        Err(e) => {
            tracing::warn!(error = %e, "amp_session.replay_guard_unavailable");
            let mut res = reasons::REPLAY_UNAVAILABLE.page(&change.return_path);
            res.headers_mut().insert(&REFERRER_POLICY, NO_REFERRER);
            return Ok(res);
        }
    }

    let (content_type, body) = form::rebuild(change.encoding, &change.body, &token.nonce);
    let mut replay = Request::new(RequestBody::full(body.clone()));
    *replay.method_mut() = change.method.clone();
    *replay.version_mut() = parts.version;
    // Checked in `check`: an origin-form path and query.
    *replay.uri_mut() = change.target.parse::<Uri>().unwrap_or_default();
    let h = replay.headers_mut();
    for (name, value) in &parts.headers {
        if !is_dropped_on_replay(name) {
            h.append(name, value.clone());
        }
    }
    // The change is verified to come from the publisher's page, now in first-party context.
    if let Ok(o) = HeaderValue::from_str(&publisher.origin) {
        h.insert(ORIGIN, o);
    }
    if let Some(ct) = content_type {
        h.insert(CONTENT_TYPE, ct);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let ext = replay.extensions_mut();
    ext.insert(ViaHandoff);
    let set_cookie = match session {
        Some((id, is_new)) => {
            ext.insert(AmpSession {
                id,
                is_new,
                source: RequestSource::SameOrigin,
                via_handoff: true,
            });
            is_new.then(|| config.cookie.render(&id))
        }
        None => {
            ext.insert(RequestSource::SameOrigin);
            None
        }
    };

    let res = inner.call(replay).await?;
    if let SessionMode::External(name) = &config.session_mode {
        warn_if_strict(config, name, &res);
    }
    let status = res.status();
    if status.is_success() || status.is_redirection() {
        let to = app_redirect(publisher, &res).unwrap_or(back);
        tracing::info!(
            status = status.as_u16(),
            new_session = set_cookie.is_some(),
            method = %change.method,
            path = %change.target.split('?').next().unwrap_or(""),
            "amp_session.handoff_completed"
        );
        let mut out = see_other(&to, set_cookie);
        for c in res.headers().get_all(SET_COOKIE) {
            out.headers_mut().append(SET_COOKIE, c.clone());
        }
        out.extensions_mut().insert(HandoffOutcome::Applied);
        return Ok(out);
    }
    if status == StatusCode::NOT_FOUND {
        // The usual cause is wiring, not the user: `Router::layer` wraps each route alone.
        tracing::warn!(
            path = %change.target.split('?').next().unwrap_or(""),
            "amp_session.handoff_target_not_found: the replayed change got 404; wrap the whole \
             router with AmpSessionLayer (axum: layer.wrap_router(app)), not Router::layer"
        );
    }
    tracing::info!(status = status.as_u16(), "amp_session.handoff_failed");
    let mut out = failure(res, &change.return_path, set_cookie).await;
    out.extensions_mut().insert(HandoffOutcome::Failed);
    Ok(out)
}

/// What a handoff completion did, attached to its response as an extension so outer
/// middleware (metrics, logs) can tell an applied change from a reload.
///
/// ```
/// use tower_amp_session::HandoffOutcome;
///
/// fn applied<B>(res: &http::Response<B>) -> bool {
///     res.extensions().get::<HandoffOutcome>() == Some(&HandoffOutcome::Applied)
/// }
/// # let _ = applied::<()>;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandoffOutcome {
    /// The change was applied and the user redirected.
    Applied,
    /// The token had been used already (a reload, a double click): nothing applied.
    AlreadyApplied,
    /// A sensitive change: the confirmation page was shown, nothing applied yet.
    ConfirmationShown,
    /// The app refused the change; its failure was shown to the user.
    Failed,
}

/// Marks a request replayed on the origin by a completed handoff (request extension).
///
/// ```
/// use tower_amp_session::ViaHandoff;
///
/// fn is_replay<B>(req: &http::Request<B>) -> bool {
///     req.extensions().get::<ViaHandoff>().is_some()
/// }
/// # let _ = is_replay::<()>;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaHandoff;

/// With an external session layer, `SameSite=Strict` on its cookie breaks every handoff:
/// the cross-site navigation arrives without it and a new session replaces the user's.
fn warn_if_strict<B>(config: &Config, name: &str, res: &Response<B>) {
    use std::sync::atomic::Ordering;
    let strict = res.headers().get_all(SET_COOKIE).iter().any(|v| {
        v.to_str()
            .ok()
            .and_then(|s| cookie::Cookie::parse(s).ok())
            .is_some_and(|c| c.name() == name && c.same_site() == Some(cookie::SameSite::Strict))
    });
    if strict && !config.warned_strict.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            cookie = name,
            "amp_session.app_cookie_samesite_strict: the app's session cookie is SameSite=Strict, \
             which the handoff navigation does not carry; use Lax or None"
        );
    }
}

/// The page that asks the user to confirm a sensitive change. Its form posts the token to
/// the handoff path from the publisher's own page, so the POST carries the first-party
/// cookie and a publisher `Origin`.
fn confirmation_page<B>(config: &Config, checked: &Checked) -> Response<ResponseBody<B>> {
    let change = &checked.token.change;
    let target = change.target.split('?').next().unwrap_or("");
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>Confirm</title></head><body>\
         <h1>Confirm your change</h1><p>You asked to send <code>{} {}</code> from a page \
         served by an AMP cache.</p><form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"{}\" value=\"{}\">\
         <button type=\"submit\">Confirm</button></form>\
         <p><a href=\"{}\">Cancel</a></p></body></html>\n",
        escape(change.method.as_str()),
        escape(target),
        escape(&config.handoff_path),
        TOKEN_PARAM,
        escape(&checked.text),
        escape(&change.return_path),
    );
    let mut res = Response::new(ResponseBody::full(html));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, NO_REFERRER);
    // One click applies the change: never inside another site's frame (clickjacking).
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'; form-action 'self'"),
    );
    res
}

/// What `check` approved.
struct Checked {
    token: HandoffToken,
    /// The token as it was sent, for the confirmation form.
    text: String,
    /// Own-session mode: the session and whether it is new. `None`: the app's own.
    session: Option<(SessionId, bool)>,
}

struct Refusal {
    rejection: Rejection,
    back: String,
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal {
            rejection,
            back: "/".into(),
        }
    }
}

/// The token text: from the query of a GET navigation, or from the confirmation form of a
/// same-origin POST.
async fn token_text<B>(
    config: &Config,
    parts: &http::request::Parts,
    body: B,
) -> Result<String, Rejection>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    let h = &parts.headers;
    // An <img>, <iframe> or fetch() cannot fire a handoff; only a top-level navigation.
    let header_is = |name: &HeaderName, want: &str| {
        h.get_all(name)
            .iter()
            .all(|v| v.as_bytes().eq_ignore_ascii_case(want.as_bytes()))
    };
    if !header_is(&SEC_FETCH_MODE, "navigate") || !header_is(&SEC_FETCH_DEST, "document") {
        return Err(reasons::HANDOFF_NOT_NAVIGATION);
    }
    match parts.method {
        Method::GET => token_param(parts.uri.query().unwrap_or("").as_bytes()),
        Method::POST => {
            let mut origins = h.get_all(ORIGIN).iter();
            let same_origin = match (origins.next(), origins.next()) {
                (Some(o), None) => o.to_str().is_ok_and(|o| config.allowlist.is_publisher(o)),
                _ => false,
            };
            if !same_origin {
                return Err(reasons::CONFIRM_ORIGIN);
            }
            let is_form = h
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                });
            if !is_form {
                return Err(reasons::CONFIRM_BODY);
            }
            let limit = crate::token::MAX_TOKEN_LEN + 64;
            let bytes = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|_| reasons::CONFIRM_BODY)?
                .to_bytes();
            token_param(&bytes)
        }
        _ => Err(reasons::HANDOFF_METHOD),
    }
}

/// Everything that can refuse a handoff, before the nonce is consumed: a refusal here
/// leaves the token usable for a correct retry.
fn check(
    config: &Config,
    publisher: &Publisher,
    h: &http::HeaderMap,
    text: &str,
) -> Result<Checked, Refusal> {
    let token = HandoffToken::open(&config.keyring, text, config.now(), config.clock_skew)
        .map_err(token_rejection)?;
    let change = &token.change;
    let return_path = validate_return_path(&change.return_path, &publisher.url)
        .map_err(|_| Refusal::from(reasons::HANDOFF_RETURN_PATH))?;
    let back = return_path.clone();
    let target_ok = change.target.starts_with('/')
        && !change.target.starts_with("//")
        && change
            .target
            .parse::<Uri>()
            .is_ok_and(|u| u.path() != &*config.handoff_path);
    if !target_ok {
        return Err(Refusal {
            rejection: reasons::HANDOFF_TARGET,
            back,
        });
    }
    let session = match config.session_mode {
        SessionMode::External(_) => None,
        SessionMode::Own => Some(match read_cookie(h, &config.cookie_name) {
            CookieState::Valid(id) => (id, false),
            CookieState::Absent => (SessionId::generate(), true),
            CookieState::Conflicting => {
                return Err(Refusal {
                    rejection: reasons::CONFLICTING_COOKIES,
                    back,
                })
            }
        }),
    };
    let mut token = token;
    token.change.return_path = return_path;
    Ok(Checked {
        token,
        text: text.to_owned(),
        session,
    })
}

fn token_rejection(e: TokenError) -> Refusal {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::BAD_REQUEST,
    };
    Rejection::new(status, e.reason()).into()
}

/// The one `token` parameter; other parameters (e.g. appended by AMP linkers) are ignored.
fn token_param(form: &[u8]) -> Result<String, Rejection> {
    let mut found = None;
    for (k, v) in form_urlencoded::parse(form) {
        if k == TOKEN_PARAM {
            if found.is_some() {
                return Err(reasons::HANDOFF_SEVERAL_TOKENS);
            }
            found = Some(v.into_owned());
        }
    }
    found.ok_or(reasons::HANDOFF_NO_TOKEN)
}

/// The publisher whose origin this request was sent to (by `Host`), else the first.
fn publisher_for<'c, B>(config: &'c Config, req: &Request<B>) -> &'c Publisher {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    host.and_then(|h| {
        config
            .publishers
            .iter()
            .find(|p| p.authority.eq_ignore_ascii_case(h))
    })
    .unwrap_or(&config.publishers[0])
}

fn is_dropped_on_replay(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("sec-fetch-")
        || matches!(
            n,
            "content-type"
                | "content-length"
                | "transfer-encoding"
                | "content-encoding"
                | "origin"
                | "amp-same-origin"
                | "upgrade-insecure-requests"
        )
}

fn absolute(publisher: &Publisher, path: &str) -> String {
    format!("{}{}", publisher.origin, path)
}

/// A same-origin `AMP-Redirect-To` or `Location` the app answered with, as an absolute URL.
fn app_redirect<B>(publisher: &Publisher, res: &Response<B>) -> Option<String> {
    let value = res
        .headers()
        .get(&AMP_REDIRECT_TO)
        .or_else(|| res.headers().get(LOCATION))?
        .to_str()
        .ok()?;
    let url = publisher.url.join(value).ok()?;
    if url.origin() != publisher.url.origin() {
        return None;
    }
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    validate_return_path(&path, &publisher.url)
        .ok()
        .map(|p| absolute(publisher, &p))
}

fn see_other<B>(location: &str, set_cookie: Option<HeaderValue>) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = StatusCode::SEE_OTHER;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, NO_REFERRER);
    if let Some(c) = set_cookie {
        h.append(SET_COOKIE, c);
    }
    res
}

/// The app refused the change: the user is told, with the app's own words where it gave some.
async fn failure<ResB>(
    res: Response<ResB>,
    back: &str,
    set_cookie: Option<HeaderValue>,
) -> Response<ResponseBody<ResB>>
where
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<crate::BoxError>,
{
    let (parts, body) = res.into_parts();
    let cookies: Vec<HeaderValue> = parts.headers.get_all(SET_COOKIE).iter().cloned().collect();
    let is_html = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let mut out = if is_html {
        // The app wrote a page for people: show it as it is.
        Response::from_parts(parts, ResponseBody::inner(body))
    } else {
        let detail = match Limited::new(body, 1024).collect().await {
            Ok(c) => app_message(&c.to_bytes()),
            Err(_) => String::new(),
        };
        let mut message = String::from("Your change could not be applied.");
        if !detail.trim().is_empty() {
            message.push(' ');
            message.push_str(detail.trim());
        }
        let mut out = Response::new(ResponseBody::full(page(parts.status, &message, back)));
        *out.status_mut() = parts.status;
        out.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        for c in cookies {
            out.headers_mut().append(SET_COOKIE, c);
        }
        out
    };
    let h = out.headers_mut();
    h.remove(CONTENT_LENGTH);
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, NO_REFERRER);
    if let Some(c) = set_cookie {
        h.append(SET_COOKIE, c);
    }
    out
}

/// The app's own words from an error body: the `error` or `message` of a JSON object
/// (amp-form endpoints answer JSON), else the text itself.
fn app_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(m)) = map.get(key) {
                return m.clone();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

/// Completes handoffs on the origin, on its own: mount it at the configured handoff path
/// when the rest of the app does not sit behind [`AmpSessionLayer`] (which completes
/// handoffs itself, so with the layer you do not need this).
///
/// The wrapped service is the app that applies the replayed change.
///
/// ```
/// use tower_amp_session::{AmpSessionLayer, HandoffService, Keyring, RequestBody};
///
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
///     .build()
///     .unwrap();
/// let app = tower::service_fn(|_req: http::Request<RequestBody<String>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let handoff: HandoffService<_> = layer.handoff_service(app);
/// # let _ = handoff;
/// ```
#[derive(Clone)]
pub struct HandoffService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> HandoffService<S> {
    /// A handoff service for `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: &AmpSessionLayer) -> Self {
        HandoffService {
            inner,
            config: layer.config.clone(),
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for HandoffService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for HandoffService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<crate::BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(complete(self.config.clone(), inner, req))
    }
}

//! Complete: verify the token, consume its nonce, replay the change, redirect.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::classify::RequestSource;
use crate::config::{Config, Publisher, SessionMode};
use crate::form;
use crate::reject::{reasons, Rejection};
use crate::replay::NonceStatus;
use crate::return_path::validate_return_path;
use crate::session::{read_cookie, AmpSession, CookieState, SessionId};
use crate::token::{HandoffToken, TokenError};

use super::answers::{confirmation_page, failure, see_other};
use super::*;

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
    // And addressed to the publisher, whatever `Host` a proxy forwarded: an inner
    // `CsrfLayer` compares `Origin` with `Host`.
    if let Ok(host) = HeaderValue::from_str(&publisher.authority) {
        h.insert(HOST, host);
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

/// What `check` approved.
pub(super) struct Checked {
    pub(super) token: HandoffToken,
    /// The token as it was sent, for the confirmation form.
    pub(super) text: String,
    /// Own-session mode: the session and whether it is new. `None`: the app's own.
    pub(super) session: Option<(SessionId, bool)>,
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

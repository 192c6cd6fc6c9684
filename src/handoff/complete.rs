//! Complete: verify the token, consume its nonce, replay the change, redirect.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, ORIGIN, REFERER, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::classify::RequestSource;
use crate::config::{Config, Publisher, SessionMode};
use crate::form;
use crate::reject::{reasons, Rejection};
use crate::replay::{ReplayGuard, ReplayGuardError, Reservation};
use crate::return_path::{is_plain_origin, validate_return_path, validate_return_path_cow};
use crate::session::AmpSession;
use crate::session_id::{read_cookie, SessionId};
use crate::token::{HandoffToken, TokenError};

use super::answers::{already_applied, confirmation_page, failure, see_other, PageContext};
use super::checked::Checked;
use super::render::{check_render, RenderRefusal, RENDER_FIELD};
use super::*;

/// Completes a handoff on the publisher origin: the GET of the handoff URL, or the POST of
/// its confirmation page.
///
/// The change is applied on arrival only when the navigation comes from this publisher's
/// AMP cache page to a declared route ([`direct`]); any other navigation gets the
/// confirmation page, and only its first-party POST applies the change.
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
    let (parts, body) = req.into_parts();
    let checked = match publisher_for(&config, &parts) {
        None => Err(Refusal::from(reasons::HANDOFF_PUBLISHER)),
        Some(index) => match token_text(&config.publishers[index], &parts, body).await {
            Ok((text, render)) => {
                check(&config, index, &parts.headers, &text).map(|c| (c, text, render))
            }
            Err(r) => Err(Refusal::from(r)),
        },
    };
    // `text` borrows the request's query (a GET, the usual case): no copy of the token.
    let (checked, text, render) = match checked {
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
            res.extensions_mut()
                .insert(if rejection.status() == StatusCode::GONE {
                    HandoffOutcome::Expired
                } else {
                    HandoffOutcome::Refused
                });
            if rejection.status() == StatusCode::METHOD_NOT_ALLOWED {
                res.headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static("GET, POST"));
            }
            return Ok(res);
        }
    };
    let confirmed = parts.method == Method::POST;
    if confirmed
        || !direct(
            &config,
            checked.publisher,
            &parts,
            &checked.token.change.target,
        )
    {
        // The confirmation step. A link already used is not offered again.
        if let Some(res) = used_link(&config, &checked).await {
            return Ok(res);
        }
        let again = if confirmed {
            match check_render(&config, &checked.token.nonce, render.as_deref()) {
                Ok(()) => {
                    drop(text);
                    let publisher = &config.publishers[checked.publisher];
                    return apply(&config, publisher, inner, parts, checked).await;
                }
                Err(why) => {
                    // Too soon after the page was shown (a double-click lure's second
                    // click), or no valid render time: the page again, nothing applied.
                    tracing::info!(
                        why = match why {
                            RenderRefusal::Missing => "render time missing or forged",
                            RenderRefusal::TooSoon => "sooner than the confirmation delay",
                            RenderRefusal::TooOld => "page older than a token's life",
                        },
                        "amp_session.handoff_confirmation_refused"
                    );
                    true
                }
            }
        } else {
            false
        };
        // Not provably the shopper's own flow from the cache to a declared route: show what
        // would happen and let the shopper decide. Nothing applied, the token not used up.
        tracing::debug!(
            path = %checked.token.change.target.split('?').next().unwrap_or(""),
            "amp_session.handoff_confirmation_shown"
        );
        let publisher = &config.publishers[checked.publisher];
        let came_from = one_referer(&parts.headers)
            .and_then(|r| url::Url::parse(r).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .filter(|h| !h.eq_ignore_ascii_case(&publisher.host));
        let context = PageContext {
            came_from: came_from.as_deref(),
            again,
        };
        let mut res = confirmation_page(&config, &checked, &text, &context);
        res.extensions_mut()
            .insert(HandoffOutcome::ConfirmationShown);
        return Ok(res);
    }
    drop(text);
    let publisher = &config.publishers[checked.publisher];
    apply(&config, publisher, inner, parts, checked).await
}

/// The answer for a link the replay guard already knows (read-only lookup, nothing
/// reserved): applied → a notice that goes on to the return path; pending → "still being
/// applied" (`409`); forgotten by a full guard → "send the form again" (`410`). `None`:
/// unknown (or the guard cannot say now), so the confirmation step goes on; the POST's
/// `reserve` decides in any case.
async fn used_link<B>(config: &Config, checked: &Checked) -> Option<Response<ResponseBody<B>>> {
    let guard = &*config.replay_guard;
    let change = &checked.token.change;
    let state = guard
        .state(&checked.token.nonce, checked.guard_expiry(config))
        .await;
    let (mut res, outcome) = match state {
        Ok(Some(Reservation::Applied)) => {
            tracing::debug!("amp_session.handoff_replayed");
            let publisher = &config.publishers[checked.publisher];
            (
                already_applied(&absolute(publisher, &change.return_path)),
                HandoffOutcome::AlreadyApplied,
            )
        }
        Ok(Some(_)) => (
            reasons::HANDOFF_PENDING.page(&change.return_path),
            HandoffOutcome::Pending,
        ),
        Err(ReplayGuardError::Full) => (
            reasons::REPLAY_FULL.page(&change.return_path),
            HandoffOutcome::GuardUnavailable,
        ),
        Ok(None) | Err(_) => return None,
    };
    res.headers_mut().insert(&REFERRER_POLICY, NO_REFERRER);
    res.extensions_mut().insert(outcome);
    Some(res)
}

/// Whether a handoff GET may apply its change without the confirmation step. All of:
/// - the browser sent `Sec-Fetch-Mode` and `Sec-Fetch-Dest` (their values are checked in
///   [`token_text`]): a browser that sends them also sends an honest `Referer`;
/// - exactly one `Referer`, whose origin is one of THIS publisher's cache origins (the
///   classification allowlist). A page cannot forge a `Referer`, only remove it; a removed,
///   malformed or foreign one leads here to the confirmation, never to an apply;
/// - the target is a declared route ([`Config::is_direct_route`]).
fn direct(config: &Config, publisher: usize, parts: &http::request::Parts, target: &str) -> bool {
    let h = &parts.headers;
    parts.method == Method::GET
        && h.contains_key(&SEC_FETCH_MODE)
        && h.contains_key(&SEC_FETCH_DEST)
        && one_referer(h).is_some_and(|referer| {
            // The plain cache origins were found at build time ([`plainly_from`]).
            let plain = config
                .plain_caches
                .iter()
                .any(|(c, i)| *i == publisher && starts_with_origin(referer, c));
            if plain {
                return true;
            }
            let mut caches = config
                .allowlist
                .caches
                .iter()
                .filter(|(_, i)| *i == publisher)
                .map(|(c, _)| &**c);
            referer_from_cache(referer, &mut caches)
        })
        && config.is_direct_route(target)
}

/// The request's one `Referer` as text. Several, or one that is not visible ASCII, count as
/// no `Referer`.
fn one_referer(h: &http::HeaderMap) -> Option<&str> {
    let mut values = h.get_all(REFERER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// Whether the origin of `referer` is one of `caches` (serialized origins).
fn referer_from_cache<'c>(
    referer: &str,
    caches: &mut (impl Iterator<Item = &'c str> + Clone),
) -> bool {
    // The usual Referer is a cache page URL spelled exactly as its origin serializes: a
    // prefix comparison answers, without parsing the URL (held equal by a differential test).
    if caches.clone().any(|c| plainly_from(referer, c)) {
        return true;
    }
    referer_origin(referer).is_some_and(|o| caches.any(|c| c == o))
}

/// The serialized origin of `referer`, when it is an http(s) URL; `None` for anything else
/// (not a URL, opaque).
fn referer_origin(referer: &str) -> Option<String> {
    let url = url::Url::parse(referer).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// The fast path of [`referer_from_cache`]: `referer` is `origin` itself or `origin` then
/// `/`, `?` or `#` (where the authority ends), and `origin` is spelled the way URL parsing
/// leaves it (so parsing `referer` yields exactly `origin`). `false` says nothing.
fn plainly_from(referer: &str, origin: &str) -> bool {
    starts_with_origin(referer, origin) && is_plain_origin(origin)
}

/// `referer` is `origin` itself or `origin` then `/`, `?` or `#`.
fn starts_with_origin(referer: &str, origin: &str) -> bool {
    matches!(
        referer.as_bytes().strip_prefix(origin.as_bytes()),
        Some([] | [b'/' | b'?' | b'#', ..])
    )
}

/// Reserves the nonce, replays the change through the app, records the outcome, and
/// redirects (or shows the failure).
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
    let expires = checked.guard_expiry(config);
    let Checked {
        token,
        session,
        uri,
        ..
    } = checked;
    let change = token.change;
    let back = absolute(publisher, &change.return_path);
    // The confirmation page's own POST, not the navigation from the cache page.
    let confirmed = parts.method == Method::POST;

    let guard = &*config.replay_guard;
    let nonce = &token.nonce;
    // Held (pending) from here until the app answered; see `ReplayGuard` for a dropped future.
    match guard.reserve(nonce, expires).await {
        Ok(Reservation::Reserved) => {}
        Ok(Reservation::Applied) => {
            // A reload or double click: the change was applied once already. From the
            // cache page, on to the return path; a confirmation sent again says so.
            tracing::debug!("amp_session.handoff_replayed");
            let mut res = if confirmed {
                already_applied(&back)
            } else {
                see_other(back, None)
            };
            res.extensions_mut().insert(HandoffOutcome::AlreadyApplied);
            return Ok(res);
        }
        Ok(_) => {
            // Pending: being applied by another completion, or its result is unknown.
            tracing::info!("amp_session.handoff_pending");
            let mut res = reasons::HANDOFF_PENDING.page(&change.return_path);
            res.headers_mut().insert(&REFERRER_POLICY, NO_REFERRER);
            res.extensions_mut().insert(HandoffOutcome::Pending);
            return Ok(res);
        }
        Err(ReplayGuardError::Full) => {
            // The guard forgot nonces that expire no later than this one: it cannot tell.
            tracing::warn!("amp_session.replay_guard_full");
            let mut res = reasons::REPLAY_FULL.page(&change.return_path);
            res.headers_mut().insert(&REFERRER_POLICY, NO_REFERRER);
            res.extensions_mut()
                .insert(HandoffOutcome::GuardUnavailable);
            return Ok(res);
        }
        Err(e) => {
            // Nothing reserved, nothing applied: the link stays usable.
            tracing::warn!(error = %e, "amp_session.replay_guard_unavailable");
            let mut res = reasons::REPLAY_UNAVAILABLE.page(&change.return_path);
            let h = res.headers_mut();
            h.insert(&REFERRER_POLICY, NO_REFERRER);
            h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("2"));
            res.extensions_mut()
                .insert(HandoffOutcome::GuardUnavailable);
            return Ok(res);
        }
    }

    let (content_type, body) = form::rebuild(change.encoding, &change.body, &token.nonce);
    let len = body.len();
    let mut replay = Request::new(RequestBody::full(body));
    *replay.method_mut() = change.method.clone();
    *replay.version_mut() = parts.version;
    // Parsed and checked in `check`: an origin-form path and query.
    *replay.uri_mut() = uri;
    *replay.headers_mut() = replay_headers(publisher, parts.headers, content_type, len);
    let ext = replay.extensions_mut();
    ext.insert(ViaHandoff);
    let set_cookie = match session {
        Some((id, is_new)) => {
            ext.insert(AmpSession::new(id, is_new, RequestSource::SameOrigin, true));
            is_new.then(|| config.cookie.render(&id))
        }
        None => {
            ext.insert(RequestSource::SameOrigin);
            None
        }
    };

    let res = match inner.call(replay).await {
        Ok(res) => res,
        Err(e) => {
            // Not applied as far as we know: give the link back, then pass the error on.
            release(guard, nonce).await;
            return Err(e);
        }
    };
    if let SessionMode::External(name) = &config.session_mode {
        warn_if_strict(config, name, &res);
    }
    let status = res.status();
    if status.is_success() || status.is_redirection() {
        if let Err(e) = guard.mark_applied(nonce, expires).await {
            // It WAS applied; the reservation stays pending (409 on a reload) until expiry.
            tracing::warn!(error = %e, "amp_session.replay_guard_commit_failed");
        }
        let to = app_redirect(publisher, |p| config.is_layer_path(p), &res).unwrap_or(back);
        tracing::info!(
            status = status.as_u16(),
            new_session = set_cookie.is_some(),
            method = %change.method,
            path = %change.target.split('?').next().unwrap_or(""),
            "amp_session.handoff_completed"
        );
        let mut out = see_other(to, set_cookie);
        for c in res.headers().get_all(SET_COOKIE) {
            out.headers_mut().append(SET_COOKIE, c.clone());
        }
        crate::metrics::handoff_applied(config, token.issued_at, confirmed);
        out.extensions_mut().insert(if confirmed {
            HandoffOutcome::Confirmed
        } else {
            HandoffOutcome::Applied
        });
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
    // Refused or failed: not applied, so a reload of the link tries again.
    let retry = release(guard, nonce).await;
    let mut out = failure(res, &change.return_path, set_cookie, retry).await;
    out.extensions_mut().insert(HandoffOutcome::Failed);
    Ok(out)
}

/// The headers of the replayed request: the navigation's own, less those that describe the
/// navigation or its body, then `Origin`, `Host`, `Content-Type` and `Content-Length` of the
/// rebuilt form. The navigation's map is edited in place (its values are not moved or
/// copied); removing a name may change the order of different names, which HTTP gives no
/// meaning (RFC 9110 §5.3).
fn replay_headers(
    publisher: &Publisher,
    mut h: HeaderMap,
    content_type: Option<HeaderValue>,
    len: usize,
) -> HeaderMap {
    // One look at the names (no hashing), then a removal only for those present: a
    // navigation carries four `Sec-Fetch-*`, rarely more.
    let mut present: [Option<HeaderName>; 8] = Default::default();
    for (slot, name) in present
        .iter_mut()
        .zip(h.keys().filter(|n| is_dropped_on_replay(n)))
    {
        *slot = Some(name.clone());
    }
    for name in present.into_iter().flatten() {
        h.remove(name);
    }
    while let Some(name) = h.keys().find(|n| is_dropped_on_replay(n)).cloned() {
        h.remove(name);
    }
    // The change is verified to come from the publisher's page, now in first-party context.
    h.insert(ORIGIN, publisher.origin_value.clone());
    // And addressed to the publisher, whatever `Host` a proxy forwarded: an inner
    // `CsrfLayer` compares `Origin` with `Host`. The `Host` the browser sent is usually the
    // publisher's, byte for byte: then it stays.
    let same_host = h
        .get(HOST)
        .is_some_and(|v| v.as_bytes() == publisher.authority.as_bytes());
    if !same_host {
        if let Ok(host) = HeaderValue::from_str(&publisher.authority) {
            h.insert(HOST, host);
        }
    }
    if let Some(ct) = content_type {
        h.insert(CONTENT_TYPE, ct);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h
}

/// Gives a reserved nonce back after the app did not apply the change. `false` when the
/// guard failed (the reservation then stays pending until the token expires).
async fn release(guard: &dyn ReplayGuard, nonce: &[u8; 16]) -> bool {
    match guard.release(nonce).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "amp_session.replay_guard_release_failed");
            false
        }
    }
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
/// same-origin POST (with the form's render time).
async fn token_text<'p, B>(
    publisher: &Publisher,
    parts: &'p http::request::Parts,
    body: B,
) -> Result<(Cow<'p, str>, Option<String>), Rejection>
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
        Method::GET => token_param(parts.uri.query().unwrap_or("").as_bytes()).map(|t| (t, None)),
        Method::POST => {
            let mut origins = h.get_all(ORIGIN).iter();
            // The confirmation page's own form, on this publisher's origin.
            let same_origin = match (origins.next(), origins.next()) {
                (Some(o), None) => o.as_bytes() == publisher.origin.as_bytes(),
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
            // The token, the render time and their names, with room to spare.
            let limit = crate::token::MAX_TOKEN_LEN + 256;
            let bytes = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|_| reasons::CONFIRM_BODY)?
                .to_bytes();
            let token = token_param(&bytes)?.into_owned();
            let render = form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == RENDER_FIELD)
                .map(|(_, v)| v.into_owned());
            Ok((Cow::Owned(token), render))
        }
        _ => Err(reasons::HANDOFF_METHOD),
    }
}

/// Everything that can refuse a handoff, before the nonce is consumed: a refusal here
/// leaves the token usable for a correct retry.
fn check(
    config: &Config,
    index: usize,
    h: &http::HeaderMap,
    text: &str,
) -> Result<Checked, Refusal> {
    let publisher = &config.publishers[index];
    let mut token = HandoffToken::open(&config.keyring, text, config.now(), config.clock_skew)
        .map_err(token_rejection)?;
    let change = &token.change;
    // The mint validates the return path and falls back (field → Referer → `/`), so a
    // token with an invalid one, or one that is the handoff path (a chained handoff), was
    // not written by this mint as configured: a minter bug, a leaked key, or instances
    // that disagree on the handoff path. Refused before the replay guard, so nothing is
    // half done; the page links to `/`, never to the bad path.
    let return_path =
        match validate_return_path_cow(Cow::Borrowed(&change.return_path), &publisher.url) {
            // In normal form already (the mint wrote it so): the token's own bytes.
            Ok(Cow::Borrowed(_)) => Some(change.return_path.clone()),
            Ok(Cow::Owned(p)) => Some(ByteString::from(p)),
            Err(_) => None,
        }
        .filter(|p| !config.is_layer_path(p))
        .ok_or(Refusal::from(reasons::HANDOFF_RETURN_PATH))?;
    // Minted for another publisher origin of this layer: never applied here.
    if token.publisher != *publisher.origin {
        return Err(reasons::HANDOFF_PUBLISHER.into());
    }
    let target = &change.target;
    let uri = Some(target)
        .filter(|t| t.starts_with('/') && !t.starts_with("//") && !config.is_layer_path(t))
        // The token's own bytes become the URI: parsed, not copied.
        .and_then(|t| Uri::from_maybe_shared(t.as_bytes().clone()).ok());
    let Some(uri) = uri else {
        return Err(Refusal {
            rejection: reasons::HANDOFF_TARGET,
            back: return_path.to_string(),
        });
    };
    let session = match config.session_mode {
        SessionMode::External(_) => None,
        SessionMode::Own => Some(match read_cookie(h, &config.cookie_name) {
            Some(id) => (id, false),
            None => (SessionId::generate(), true),
        }),
    };
    token.change.return_path = return_path;
    Ok(Checked {
        publisher: index,
        token,
        uri,
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
fn token_param(form: &[u8]) -> Result<Cow<'_, str>, Rejection> {
    // Plain queries (the usual case) need no decoding: the fast path answers the same.
    if let Some(answer) = crate::query::token_param_fast(form) {
        return answer.map(Cow::Borrowed);
    }
    let mut found = None;
    for (k, v) in form_urlencoded::parse(form) {
        if k == TOKEN_PARAM {
            if found.is_some() {
                return Err(reasons::HANDOFF_SEVERAL_TOKENS);
            }
            found = Some(v);
        }
    }
    found.ok_or(reasons::HANDOFF_NO_TOKEN)
}

/// The publisher whose origin this request was sent to: by `Host`, else the URI's
/// authority. When neither names one and the layer has exactly one publisher, that one;
/// with several, `None` (the token's binding cannot be checked against a guess).
fn publisher_for(config: &Config, parts: &http::request::Parts) -> Option<usize> {
    let named = |h: &str| {
        config
            .publishers
            .iter()
            .position(|p| p.authority.eq_ignore_ascii_case(h))
    };
    let by_host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(named);
    let by_uri = || parts.uri.authority().and_then(|a| named(a.as_str()));
    by_host
        .or_else(by_uri)
        .or((config.publishers.len() == 1).then_some(0))
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
    let mut url = String::with_capacity(publisher.origin.len() + path.len());
    url.push_str(&publisher.origin);
    url.push_str(path);
    url
}

/// A same-origin `AMP-Redirect-To` or `Location` the app answered with, as an absolute URL.
/// Never the handoff path (no chained handoffs): the token's return path is used instead.
fn app_redirect<B>(
    publisher: &Publisher,
    is_layer_path: impl Fn(&str) -> bool,
    res: &Response<B>,
) -> Option<String> {
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
        .filter(|p| !is_layer_path(p))
        .map(|p| absolute(publisher, &p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    /// The general code: parse the `Referer`, serialize its origin, compare.
    fn general(referer: &str, origin: &str) -> bool {
        referer_origin(referer).is_some_and(|o| o == origin)
    }

    #[test]
    fn referer_table() {
        const CACHE: &str = "https://shop-example.cdn.ampproject.org";
        // (referer, from the cache?, fast path answers?)
        let rows: &[(&str, bool, bool)] = &[
            (
                "https://shop-example.cdn.ampproject.org/c/s/shop.example/p/3",
                true,
                true,
            ),
            ("https://shop-example.cdn.ampproject.org", true, true),
            ("https://shop-example.cdn.ampproject.org/", true, true),
            ("https://shop-example.cdn.ampproject.org?x", true, true),
            ("https://shop-example.cdn.ampproject.org#x", true, true),
            // Same origin, other spellings: the general code says so.
            ("https://shop-example.cdn.ampproject.org:443/", true, false),
            ("HTTPS://Shop-Example.cdn.ampproject.org/", true, false),
            ("https://shop-example.cdn.ampproject.org.", false, false),
            ("https://shop-example.cdn.ampproject.org\\c", true, false),
            (" https://shop-example.cdn.ampproject.org/", true, false),
            // Another origin.
            (
                "https://shop-example.cdn.ampproject.org.evil.example/",
                false,
                false,
            ),
            (
                "https://shop-example.cdn.ampproject.org@evil.example/",
                false,
                false,
            ),
            (
                "https://shop-example.cdn.ampproject.org:8443/",
                false,
                false,
            ),
            ("http://shop-example.cdn.ampproject.org/", false, false),
            ("https://shop.example/", false, false),
            ("", false, false),
        ];
        for (referer, want, fast) in rows {
            assert_eq!(general(referer, CACHE), *want, "{referer:?}");
            assert_eq!(plainly_from(referer, CACHE), *fast, "{referer:?}");
            let mut caches = [CACHE].into_iter();
            assert_eq!(
                referer_from_cache(referer, &mut caches),
                *want,
                "{referer:?}"
            );
        }
    }

    #[test]
    fn plain_origin_table() {
        let rows: &[(&str, bool)] = &[
            ("https://shop-example.cdn.ampproject.org", true),
            ("https://shop-example.bing-amp.com", true),
            ("http://shop.localhost:8080", true),
            ("https://a1.b-2.c", true),
            ("https://Shop.example", false),
            ("https://shop.example:443", false),
            ("http://shop.example:80", false),
            ("https://shop.example:0443", false),
            ("https://shop.example:65536", false),
            ("https://shop.example:", false),
            ("https://shop.example.", false),
            ("https://shop..example", false),
            ("https://xn--bcher-kva.example", false),
            ("https://127.0.0.1", false),
            ("https://a.0x7f", false),
            ("https://shop_example.com", false),
            ("ftp://shop.example", false),
        ];
        for (origin, want) in rows {
            assert_eq!(is_plain_origin(origin), *want, "{origin:?}");
        }
    }

    fn origin_like() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec![
            "https://", "https://", "https://", "http://", "HTTPS://", "ftp://", "https:/", "",
        ]);
        // Plain labels weighted up (three times), so that many origins are plain.
        const PLAIN: [&str; 8] = [
            "shop-example",
            "cdn",
            "ampproject",
            "org",
            "bing-amp",
            "com",
            "localhost",
            "a",
        ];
        let label = prop::sample::select(
            [
                &PLAIN[..],
                &PLAIN[..],
                &PLAIN[..],
                &PLAIN[..],
                &[
                    "xn--bcher-kva",
                    "xn--zz",
                    "0x7f",
                    "0x",
                    "1",
                    "127",
                    "0",
                    "Shop",
                    "-a-",
                    "a--b",
                    "",
                    "ex_ample",
                    "1a",
                    "a1",
                    "%41",
                    "\u{e9}",
                    "ß",
                    "x y",
                ],
            ]
            .concat(),
        );
        let port = prop::sample::select(vec![
            "", "", "", ":443", ":80", ":8080", ":0", ":08080", ":65535", ":65536", ":", ":1",
            ":99999", ":8o",
        ]);
        let dot = prop::sample::select(vec!["", "", "", "."]);
        (scheme, prop::collection::vec(label, 1..5), dot, port)
            .prop_map(|(s, l, d, p)| format!("{s}{}{d}{p}", l.join(".")))
    }

    fn suffix_like() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "",
            "/",
            "/c/s/shop.example/p/3",
            "?",
            "?x=1",
            "#",
            "#f",
            ".evil",
            "@evil.example",
            ":443",
            ":8080/",
            "\\",
            "/\t",
            "\t",
            " ",
            "//",
            "/..",
            "%2F",
            ".",
            "x",
            "-",
            "0",
            "@",
            ":",
            "/%zz",
            "?#",
            "\u{e9}",
        ]);
        prop::collection::vec(piece, 0..4).prop_map(|v| v.concat())
    }

    /// The common shape: a plain origin, then a path, query or fragment.
    fn cache_page_like() -> impl Strategy<Value = (String, String)> {
        let scheme = prop::sample::select(vec!["https://", "http://"]);
        let label = prop::sample::select(vec!["shop-example", "cdn", "ampproject", "org", "a1"]);
        let port = prop::sample::select(vec!["", "", ":8080", ":1", ":65535"]);
        let sep = prop::sample::select(vec!["", "/", "?", "#"]);
        (
            scheme,
            prop::collection::vec(label, 1..5),
            port,
            sep,
            suffix_like(),
        )
            .prop_map(|(s, l, p, sep, rest)| {
                let origin = format!("{s}{}{p}", l.join("."));
                (format!("{origin}{sep}{rest}"), origin)
            })
    }

    fn referer_like() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            cache_page_like(),
            // A referer on the origin compared (near misses of the common shape).
            (origin_like(), suffix_like()).prop_map(|(o, s)| (format!("{o}{s}"), o)),
            // On another origin.
            (origin_like(), origin_like(), suffix_like())
                .prop_map(|(o, other, s)| (format!("{other}{s}"), o)),
            (origin_like(), "[ -~\t]{0,40}").prop_map(|(o, r)| (r, o)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60_000))]

        /// Where the fast path answers, the URL parser agrees; and with it, the whole check
        /// answers what the URL parser answers.
        #[test]
        fn fast_referer_agrees_with_the_url_parser((referer, origin) in referer_like()) {
            let general = general(&referer, &origin);
            if plainly_from(&referer, &origin) {
                prop_assert!(general, "{:?} vs {:?}", referer, origin);
            }
            let mut caches = [origin.as_str()].into_iter();
            prop_assert_eq!(referer_from_cache(&referer, &mut caches), general);
        }
    }

    /// The generator is biased enough: both fast-path answers and near misses are common.
    #[test]
    fn referer_generator_reaches_both_sides() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = referer_like();
        let (mut fast, mut slow_same) = (0, 0);
        for _ in 0..10_000 {
            let (referer, origin) = strategy.new_tree(&mut runner).unwrap().current();
            if plainly_from(&referer, &origin) {
                fast += 1;
            } else if general(&referer, &origin) {
                slow_same += 1;
            }
        }
        assert!(
            fast > 1000 && slow_same > 100,
            "fast {fast}, same origin otherwise {slow_same}"
        );
    }

    /// The fast path answers for the Referer browsers send from a cache page.
    #[test]
    fn cache_pages_take_the_fast_path() {
        for (page, cache) in [
            (
                "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3",
                "https://shop-example.cdn.ampproject.org",
            ),
            (
                "https://shop-example.cdn.ampproject.org/",
                "https://shop-example.cdn.ampproject.org",
            ),
            (
                "http://shop.localhost:8080/c/s/shop.localhost/p",
                "http://shop.localhost:8080",
            ),
        ] {
            assert!(plainly_from(page, cache), "{page}");
        }
    }

    #[test]
    fn replayed_headers_are_the_navigations_less_what_describes_it() {
        let config = crate::AmpSessionLayer::builder()
            .publisher_origin("https://shop.example")
            .keyring(
                crate::Keyring::builder()
                    .signing("k1", [7u8; 32])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
            .config;
        let publisher = &config.publishers[0];
        let sorted = |h: &HeaderMap| {
            let mut v: Vec<(String, String)> = h
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            v.sort();
            v
        };
        // (navigation's headers, Host the app gets)
        let rows: &[(&[(&str, &str)], &str)] = &[
            (&[("host", "shop.example")], "shop.example"),
            (&[("host", "proxy.internal:8080")], "shop.example"),
            (&[], "shop.example"),
        ];
        let navigation: &[(&str, &str)] = &[
            ("user-agent", "UA"),
            ("accept", "text/html"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            (
                "referer",
                "https://shop-example.cdn.ampproject.org/c/s/shop.example/p",
            ),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
            ("sec-fetch-user", "?1"),
            ("sec-fetch-storage-access", "none"),
            ("upgrade-insecure-requests", "1"),
            ("amp-same-origin", "true"),
            ("origin", "null"),
            ("content-length", "0"),
            ("content-type", "text/plain"),
            ("transfer-encoding", "chunked"),
            ("content-encoding", "gzip"),
        ];
        for (host, want_host) in rows {
            let mut from = HeaderMap::new();
            for (n, v) in host.iter().chain(navigation) {
                from.append(HeaderName::from_static(n), HeaderValue::from_static(v));
            }
            let got = replay_headers(
                publisher,
                from,
                Some(HeaderValue::from_static(
                    "application/x-www-form-urlencoded",
                )),
                7,
            );
            let want: Vec<(String, String)> = [
                ("accept", "text/html"),
                ("content-length", "7"),
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("host", *want_host),
                ("origin", "https://shop.example"),
                (
                    "referer",
                    "https://shop-example.cdn.ampproject.org/c/s/shop.example/p",
                ),
                ("user-agent", "UA"),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
            assert_eq!(sorted(&got), want, "{host:?}");
        }
    }
}

//! `AmpSessionService`: the per-request decisions.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::ACCEPT;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::classify::{Classified, RequestSource};
use crate::config::{Config, SessionMode};
use crate::cors;
use crate::future::{Extra, ResponseFuture};
use crate::handled::{Handled, MarkReplays};
use crate::handoff;
use crate::reject::{reasons, Rejection};
use crate::session::{AmpSession, LazyCookie};
use crate::session_id::SessionId;
use crate::source_origin;

/// The service made by [`AmpSessionLayer`](crate::AmpSessionLayer).
///
/// The wrapped service receives `Request<RequestBody<B>>` with an [`AmpSession`] in its
/// extensions, and answers `Response<ResB>`; this service answers
/// `Response<ResponseBody<ResB>>`. The wrapped service's errors pass through untouched.
#[derive(Clone)]
pub struct AmpSessionService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> AmpSessionService<S> {
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

    /// Takes the ready service for a future that outlives `call`, leaving a clone behind
    /// (the usual tower pattern: the clone may not be ready).
    fn take_ready(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

impl<S: fmt::Debug> fmt::Debug for AmpSessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmpSessionService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for AmpSessionService<S>
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
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ext = req.extensions();
        if ext.get::<AmpSession>().is_some() || ext.get::<Handled>().is_some() {
            // A copy of this layer further out handled this request (it left its session,
            // or the marker): pass it through.
            let future = self.inner.call(req.map(RequestBody::inner));
            return ResponseFuture::call(future, None, crate::future::Extra::None);
        }
        if !self.config.pass_through.is_empty() && self.config.passes_through(req.uri().path()) {
            // `pass_through`: the app's own path (an API with its own CORS); nothing to do.
            let future = self.inner.call(req.map(RequestBody::inner));
            return ResponseFuture::call(future, None, Extra::None);
        }
        if req.uri().path() == &*self.config.handoff_path {
            let inner = self.take_ready();
            if crate::one_route::wraps_one_route::<S>() {
                // `Router::layer`: this copy cannot reach the other routes. Say so.
                return ResponseFuture::handoff(crate::one_route::per_route_handoff(inner, req));
            }
            let config = self.config.clone();
            let inner = MarkReplays(inner);
            return ResponseFuture::handoff(Box::pin(handoff::complete(config, inner, req)));
        }
        let config = &self.config;
        let changing = config.is_state_changing(req.method());
        let own = matches!(config.session_mode, SessionMode::Own);
        // A signer's fetch is answered to everyone under the publisher's URL: it gets no
        // shopper's session, even with the cookie, and sets none. Safe methods only: signers
        // only GET, and a change must reach its handoff.
        let scan = config.allowlist.scan(
            req.headers(),
            own && !changing,
            own.then_some(&config.cookie_name),
        );
        let classified = scan.classified;
        tracing::trace!(
            source = classified.source.as_str(),
            "amp_session.classified"
        );

        if let Some(query) = req.uri().query() {
            // Cheap test first, and one that cannot miss: the name reaches the app as
            // `__amp_source_origin` only if its raw key holds those letters as they are or
            // some byte percent-encoded (`%5F%5Famp_source_origin`, `__%61mp_...`).
            if source_origin::may_name(query) {
                match source_origin::strip(req.uri(), config, &classified) {
                    Ok(Some(uri)) => *req.uri_mut() = uri,
                    Ok(None) => {}
                    Err(r) => return reject(r, &req, classified),
                }
            }
        }

        if changing {
            match classified.source {
                RequestSource::Foreign => {
                    // Almost the cache origin: a misconfiguration, said in the answer and logs.
                    if let Some(res) = config.near_misses.refusal(req.headers()) {
                        return ResponseFuture::ready(res);
                    }
                    return reject(reasons::FOREIGN_ORIGIN, &req, classified);
                }
                RequestSource::Direct if !config.allow_direct_changes => {
                    return reject(reasons::NO_ORIGIN, &req, classified)
                }
                _ => {}
            }
        }
        // The browser withheld (or never had) the cookie on the cache: hand off.
        let hand_off = changing && classified.source == RequestSource::AmpCache;

        let mut extra = Extra::None;
        match &config.session_mode {
            SessionMode::Own => {
                let signer = scan.signer;
                let cookie = if signer { None } else { scan.cookie };
                let (id, is_new) = match cookie {
                    Some(id) => (id, false),
                    None if hand_off => {
                        return mint(
                            config,
                            classified,
                            req,
                            crate::one_route::wraps_one_route::<S>(),
                        )
                    }
                    None => (SessionId::generate(), true),
                };
                let mut session = AmpSession::new(id, is_new, classified.source, false);
                if signer {
                    tracing::trace!(
                        source = classified.source.as_str(),
                        "amp_session.signer_fetch"
                    );
                    session.signer_fetch = true;
                } else if is_new && gets_cookie(classified.source, req.method()) {
                    if config.lazy_cookie {
                        let lazy = LazyCookie::new(id, classified.source, config.clone());
                        session.lazy = Some(lazy.clone());
                        extra = Extra::LazyCookie(lazy);
                    } else {
                        tracing::debug!(
                            source = classified.source.as_str(),
                            session = %id.redacted(),
                            "amp_session.session_issued"
                        );
                        extra = Extra::SetCookie(config.cookie.render(&id));
                    }
                }
                // The session marks the request as handled for copies further in: one
                // extension, not two (each insert hashes and may grow the map).
                req.extensions_mut().insert(session);
            }
            SessionMode::External(name) => {
                if hand_off && !has_cookie(req.headers(), name) {
                    return mint(
                        config,
                        classified,
                        req,
                        crate::one_route::wraps_one_route::<S>(),
                    );
                }
                let ext = req.extensions_mut();
                ext.insert(classified.source);
                ext.insert(Handled);
            }
        }
        if classified.cors_origin.is_some() {
            tracing::trace!(
                source = classified.source.as_str(),
                "amp_session.cors_answered"
            );
        }
        let future = self.inner.call(req.map(RequestBody::inner));
        let extra = match (extra, classified.email_sender) {
            // Email requests get no cookie, so the two never meet.
            (Extra::None, Some(sender)) => Extra::EmailSender(sender),
            (extra, _) => extra,
        };
        ResponseFuture::call(future, classified.cors_origin, extra)
    }
}

fn mint<B, ResB, F, E>(
    config: &Arc<Config>,
    classified: Classified,
    req: Request<B>,
    wraps_one_route: bool,
) -> ResponseFuture<F, ResB, E>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
    ResB: Send + 'static,
    E: Send + 'static,
{
    if wraps_one_route {
        crate::one_route::warn_at_mint(config);
    }
    let (parts, body) = req.into_parts();
    let config = config.clone();
    ResponseFuture::handoff(Box::pin(async move {
        Ok(handoff::mint(config, classified, parts, body).await)
    }))
}

/// Whether a new session's answer sets its cookie. Not to `HEAD` (a shared cache may update a
/// stored `GET` answer with a `HEAD` answer's headers, and link checkers and monitors would
/// start sessions) nor `OPTIONS` (a preflight, or a probe: no browser keeps a session from
/// it); not to a foreign origin (a page elsewhere must not start or learn the visitor's
/// session, and may be a cache in front of someone else); not to an AMP email (no cookies).
/// Those requests get a session that lasts one request.
fn gets_cookie(source: RequestSource, method: &http::Method) -> bool {
    !matches!(source, RequestSource::Foreign | RequestSource::AmpEmail)
        && method != http::Method::HEAD
        && method != http::Method::OPTIONS
}

/// Whether the app's own session cookie is present with a value (bring-your-own mode).
fn has_cookie(headers: &http::HeaderMap, name: &str) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .any(|v| crate::cookie_name::named_values(v.as_bytes(), name).any(|v| !v.is_empty()))
}

/// A rejection in the style the client reads: JSON for amp-form and other JSON clients,
/// text otherwise; with CORS headers for allowed origins so amp-form can show it.
fn reject<B, ResB, F, E>(
    rejection: Rejection,
    req: &Request<B>,
    classified: Classified,
) -> ResponseFuture<F, ResB, E> {
    tracing::debug!(
        status = rejection.status().as_u16(),
        reason = rejection.reason(),
        source = classified.source.as_str(),
        stage = "request",
        "amp_session.rejected"
    );
    let wants_json = classified.cors_origin.is_some()
        || req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
    let mut res = if wants_json {
        rejection.json()
    } else {
        rejection.text()
    };
    cors::apply(res.headers_mut(), classified.cors_origin);
    ResponseFuture::ready(res)
}

//! `AmpSessionService`: the per-request decisions.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::ACCEPT;
use http::{Request, Response, Uri};
use http_body::Body;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::classify::{Classified, RequestSource};
use crate::config::{Config, SessionMode};
use crate::cors;
use crate::future::ResponseFuture;
use crate::handoff;
use crate::layer::{Handled, MarkReplays};
use crate::reject::{reasons, Rejection};
use crate::session::{read_cookie, AmpSession, CookieState, SessionId};

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
        if req.extensions().get::<Handled>().is_some() {
            // A copy of this layer further out handled this request: pass it through.
            let future = self.inner.call(req.map(RequestBody::inner));
            return ResponseFuture::call(future, None, None, None);
        }
        if req.uri().path() == &*self.config.handoff_path {
            let inner = self.take_ready();
            if crate::router::wraps_one_route::<S>() {
                // `Router::layer`: this copy cannot reach the other routes. Say so.
                return ResponseFuture::handoff(crate::router::per_route_handoff(inner, req));
            }
            let config = self.config.clone();
            let inner = MarkReplays(inner);
            return ResponseFuture::handoff(Box::pin(handoff::complete(config, inner, req)));
        }
        let config = &self.config;

        let classified = config.allowlist.classify(req.headers());
        tracing::trace!(
            source = classified.source.as_str(),
            "amp_session.classified"
        );

        if let Some(query) = req.uri().query() {
            // Cheap test first: almost no request carries it.
            if query.contains("__amp_source") {
                match strip_source_origin(req.uri(), config, &classified) {
                    Ok(Some(uri)) => *req.uri_mut() = uri,
                    Ok(None) => {}
                    Err(r) => return reject(r, &req, classified),
                }
            }
        }

        let changing = config.is_state_changing(req.method());
        if changing {
            match classified.source {
                RequestSource::Foreign => return reject(reasons::FOREIGN_ORIGIN, &req, classified),
                RequestSource::Direct if !config.allow_direct_changes => {
                    return reject(reasons::NO_ORIGIN, &req, classified)
                }
                _ => {}
            }
        }
        // The browser withheld (or never had) the cookie on the cache: hand off.
        let hand_off = changing && classified.source == RequestSource::AmpCache;

        let mut set_cookie = None;
        match &config.session_mode {
            SessionMode::Own => {
                let (id, is_new) = match read_cookie(req.headers(), &config.cookie_name) {
                    CookieState::Valid(id) => (id, false),
                    CookieState::Conflicting => {
                        return reject(reasons::CONFLICTING_COOKIES, &req, classified)
                    }
                    CookieState::Absent if hand_off => return mint(config, classified, req),
                    CookieState::Absent => (SessionId::generate(), true),
                };
                // Email clients send no cookies: an ephemeral session, no cookie to set.
                if is_new && classified.source != RequestSource::AmpEmail {
                    tracing::debug!(source = classified.source.as_str(), session = %id, "amp_session.session_issued");
                    set_cookie = Some(config.cookie.render(&id));
                }
                req.extensions_mut().insert(AmpSession {
                    id,
                    is_new,
                    source: classified.source,
                    via_handoff: false,
                });
            }
            SessionMode::External(name) => {
                if hand_off && !has_cookie(req.headers(), name) {
                    return mint(config, classified, req);
                }
                req.extensions_mut().insert(classified.source);
            }
        }
        if classified.cors_origin.is_some() {
            tracing::trace!(
                source = classified.source.as_str(),
                "amp_session.cors_answered"
            );
        }
        req.extensions_mut().insert(Handled);
        let future = self.inner.call(req.map(RequestBody::inner));
        ResponseFuture::call(
            future,
            classified.cors_origin,
            set_cookie,
            classified.email_sender,
        )
    }
}

fn mint<B, ResB, F, E>(
    config: &Arc<Config>,
    classified: Classified,
    req: Request<B>,
) -> ResponseFuture<F, ResB, E>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
    ResB: Send + 'static,
    E: Send + 'static,
{
    let (parts, body) = req.into_parts();
    let config = config.clone();
    ResponseFuture::handoff(Box::pin(async move {
        Ok(handoff::mint(config, classified, parts, body).await)
    }))
}

/// Whether the app's own session cookie is present with a value (bring-your-own mode).
fn has_cookie(headers: &http::HeaderMap, name: &str) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .any(|v| crate::session::named_values(v.as_bytes(), name).any(|v| !v.is_empty()))
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

/// Checks and removes `__amp_source_origin` from the query. `Ok(None)`: it was not there.
/// It must name a publisher origin (or, from an AMP email, the allowed sender).
fn strip_source_origin(
    uri: &Uri,
    config: &Config,
    classified: &Classified,
) -> Result<Option<Uri>, Rejection> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut kept = String::with_capacity(query.len());
    let mut found = false;
    for pair in query.split('&') {
        let (key, value) = form_urlencoded::parse(pair.as_bytes())
            .next()
            .unwrap_or_default();
        if key == "__amp_source_origin" {
            let is_sender = classified
                .email_sender
                .as_ref()
                .is_some_and(|s| s.as_bytes().eq_ignore_ascii_case(value.as_bytes()));
            if !config.allowlist.is_publisher(&value) && !is_sender {
                return Err(reasons::SOURCE_ORIGIN);
            }
            found = true;
            continue;
        }
        if !kept.is_empty() {
            kept.push('&');
        }
        kept.push_str(pair);
    }
    if !found {
        return Ok(None);
    }
    let mut pq = String::with_capacity(uri.path().len() + 1 + kept.len());
    pq.push_str(uri.path());
    if !kept.is_empty() {
        pq.push('?');
        pq.push_str(&kept);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().map_err(|_| reasons::SOURCE_ORIGIN)?);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| reasons::SOURCE_ORIGIN)
}

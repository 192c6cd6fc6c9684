//! Extractors for axum and other frameworks on axum-core (feature `axum-core`).
//!
//! | extractor | what it gives | without the layer |
//! |---|---|---|
//! | [`AmpSession`] | the session of this request | rejected: [`MissingAmpSession`] (500, a wiring mistake) |
//! | `Option<AmpSession>` | the session, if the layer runs in front | `None` |
//! | [`RequestSource`] | where the request came from, in both session modes | rejected: [`MissingAmpSession`] |
//! | `Option<ViaHandoff>` | `Some` on a change replayed by a completed handoff | `None` |
//!
//! The form extractor [`AmpForm`](crate::AmpForm) (feature `axum`) lives in its own module.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::classify::RequestSource;
use crate::handoff::ViaHandoff;
use crate::session::AmpSession;

#[cfg(feature = "axum")]
pub(crate) mod form;

/// The rejection of the [`AmpSession`] and [`RequestSource`] extractors: the handler runs
/// without [`AmpSessionLayer`](crate::AmpSessionLayer) in front of it.
///
/// That is a wiring mistake, not a client error, so it answers `500 Internal Server Error`
/// with a text that names the layer. Take `Option<AmpSession>` in handlers that also run
/// without the layer.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use tower_amp_session::MissingAmpSession;
///
/// let res = MissingAmpSession.into_response();
/// assert_eq!(res.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingAmpSession;

impl std::fmt::Display for MissingAmpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AmpSessionLayer is not installed in front of this handler")
    }
}

impl std::error::Error for MissingAmpSession {}

impl IntoResponse for MissingAmpSession {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// `session: AmpSession` in a handler; see [`AmpSession`].
impl<S: Send + Sync> FromRequestParts<S> for AmpSession {
    type Rejection = MissingAmpSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AmpSession>()
            .cloned()
            .ok_or(MissingAmpSession)
    }
}

/// `session: Option<AmpSession>`: `None` when the layer does not run in front of the handler
/// (or runs with [`external_session`](crate::ConfigBuilder::external_session)).
impl<S: Send + Sync> OptionalFromRequestParts<S> for AmpSession {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AmpSession>().cloned())
    }
}

/// `source: RequestSource`: where the request came from. Works in both session modes (with
/// an external session layer there is no [`AmpSession`], only the source).
impl<S: Send + Sync> FromRequestParts<S> for RequestSource {
    type Rejection = MissingAmpSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        request_source(parts).ok_or(MissingAmpSession)
    }
}

/// `source: Option<RequestSource>`: `None` without the layer.
impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestSource {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(request_source(parts))
    }
}

/// `via: Option<ViaHandoff>`: `Some` on a change that a completed handoff replays.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ViaHandoff {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ViaHandoff>().copied())
    }
}

fn request_source(parts: &Parts) -> Option<RequestSource> {
    match parts.extensions.get::<AmpSession>() {
        Some(session) => Some(session.source()),
        None => parts.extensions.get::<RequestSource>().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(ext: impl FnOnce(&mut http::Extensions)) -> Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        ext(&mut parts.extensions);
        parts
    }

    async fn source(mut p: Parts) -> (Option<RequestSource>, Result<RequestSource, ()>) {
        let opt = <RequestSource as OptionalFromRequestParts<()>>::from_request_parts(&mut p, &())
            .await
            .unwrap();
        let req = <RequestSource as FromRequestParts<()>>::from_request_parts(&mut p, &())
            .await
            .map_err(|_| ());
        (opt, req)
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("extractors never wait")
    }

    #[test]
    fn extractors_read_what_the_layer_left() {
        // (what, extensions, Option<AmpSession> is some, RequestSource, Option<ViaHandoff>)
        type Row = (
            &'static str,
            fn(&mut http::Extensions),
            bool,
            Option<RequestSource>,
            bool,
        );
        // With an own session the layer leaves an `AmpSession` (tests/axum_router.rs drives
        // those rows through the layer); here what the other modes leave.
        let rows: [Row; 3] = [
            ("no layer", |_| {}, false, None, false),
            (
                "external session mode",
                |e| {
                    e.insert(RequestSource::Direct);
                },
                false,
                Some(RequestSource::Direct),
                false,
            ),
            (
                "external session mode, replayed by a handoff",
                |e| {
                    e.insert(RequestSource::SameOrigin);
                    e.insert(ViaHandoff);
                },
                false,
                Some(RequestSource::SameOrigin),
                true,
            ),
        ];
        for (what, ext, has_session, want_source, via) in rows {
            let mut p = parts(ext);
            let s = block(
                <AmpSession as OptionalFromRequestParts<()>>::from_request_parts(&mut p, &()),
            )
            .unwrap();
            assert_eq!(s.is_some(), has_session, "{what}");
            let required = block(<AmpSession as FromRequestParts<()>>::from_request_parts(
                &mut p,
                &(),
            ));
            assert_eq!(required.is_ok(), has_session, "{what}");
            let (opt, req) = block(source(parts(ext)));
            assert_eq!(opt, want_source, "{what}");
            assert_eq!(req.ok(), want_source, "{what}");
            let v = block(
                <ViaHandoff as OptionalFromRequestParts<()>>::from_request_parts(&mut p, &()),
            )
            .unwrap();
            assert_eq!(v.is_some(), via, "{what}");
        }
    }
}

//! `AmpSession` as an axum extractor (feature `axum`).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::session::AmpSession;

/// The extractor's rejection: the handler runs without
/// [`AmpSessionLayer`](crate::AmpSessionLayer) in front of it, a wiring mistake.
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

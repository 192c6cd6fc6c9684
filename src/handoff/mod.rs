//! The handoff: mint on the cache request, complete on the origin.
//!
//! Mint: a state-changing request from the cache without the session cookie is not passed to
//! the app. Its body is read (bounded), signed into a token, and the answer is
//! `AMP-Redirect-To: <publisher origin><handoff path>?token=...`, which makes amp-form
//! navigate the top window to the origin.
//!
//! Complete: on that first-party navigation the token is verified and its publisher checked.
//! When the navigation comes from this publisher's cache page (`Referer`) to a declared
//! route, the nonce is consumed, the session read or issued, the change replayed through the
//! app, and the user redirected (303) to a clean URL. Any other navigation gets a
//! confirmation page; only its first-party POST applies the change.

mod answers;
mod checked;
mod complete;
mod mint;
mod render;
mod service;

use http::{HeaderName, HeaderValue};

pub use crate::outcome::HandoffOutcome;
#[cfg(not(feature = "metrics"))]
pub(crate) use complete::complete;
pub(crate) use mint::mint;
#[cfg(feature = "test-util")]
pub(crate) use render::{render_value, RENDER_FIELD};
pub use service::HandoffService;

/// `AMP-Redirect-To`: amp-form navigates the top window to this URL.
///
/// A `const`, like `http`'s own header names, so it works in a header array:
///
/// ```
/// use tower_amp_session::AMP_REDIRECT_TO;
///
/// // An app's answer that sends the user to the cart after an add on the cache.
/// let res = http::Response::builder()
///     .header(AMP_REDIRECT_TO, "https://shop.example/cart")
///     .body(())
///     .unwrap();
/// assert_eq!(res.headers()[AMP_REDIRECT_TO], "https://shop.example/cart");
/// ```
pub const AMP_REDIRECT_TO: HeaderName = HeaderName::from_static("amp-redirect-to");
/// The query parameter that carries the token on the handoff URL.
pub const TOKEN_PARAM: &str = "token";

/// The form field that tells the layer, at mint, which page the shopper was on: the
/// handoff lands there once the change is applied. The layer reads it, checks it (a path
/// on the publisher origin, never the handoff path) and removes it, so the app never
/// sees it. Without it (or when it is not a valid path) the return path comes from the
/// cache page URL in `Referer`, else `/`; [`ReturnTo::Path`](crate::ReturnTo::Path)
/// overrides both.
///
/// Firefox and WebKit send the cache's POST with `Referer: <cache origin>/` only, so this
/// field is the one way to land every engine on the product page. amp-form fills it in
/// from the page's source URL (`SOURCE_URL`, reduced by the layer to the path and query on the
/// publisher origin; the older `SOURCE_PATH`, without the query, still works):
///
/// ```html
/// <input type="hidden" name="amp_return_path" value="SOURCE_URL" data-amp-replace="SOURCE_URL">
/// ```
///
/// ```
/// assert_eq!(tower_amp_session::RETURN_PATH_FIELD, "amp_return_path");
/// ```
pub const RETURN_PATH_FIELD: &str = "amp_return_path";

pub(crate) static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
pub(crate) static SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
pub(crate) static REFERRER_POLICY: HeaderName = HeaderName::from_static("referrer-policy");
pub(crate) const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
pub(crate) const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

/// Completes a handoff and counts its outcome: the one place completions are counted, for
/// both the layer and [`HandoffService`] (feature `metrics`; without it, `complete::complete`
/// is used as it is).
#[cfg(feature = "metrics")]
pub(crate) async fn complete<S, B, ResB>(
    config: std::sync::Arc<crate::config::Config>,
    inner: S,
    req: http::Request<B>,
) -> Result<http::Response<crate::body::ResponseBody<ResB>>, S::Error>
where
    S: tower_service::Service<
        http::Request<crate::body::RequestBody<B>>,
        Response = http::Response<ResB>,
    >,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<crate::BoxError>,
    ResB: http_body::Body<Data = bytes::Bytes>,
    ResB::Error: Into<crate::BoxError>,
{
    let answer = complete::complete(config.clone(), inner, req).await;
    crate::metrics::handoff_completed(&config, &answer);
    answer
}

pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

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

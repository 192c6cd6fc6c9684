//! The diagnosis of `Router::layer`: a copy of the layer that wraps one axum route only.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use std::sync::atomic::Ordering;

use crate::body::{RequestBody, ResponseBody};
use crate::config::Config;
use crate::handled::Handled;
use crate::handoff::{BoxFuture, HandoffOutcome};
use crate::reject::Rejection;

/// The handoff page of a copy of the layer that wraps one route only.
const ONE_ROUTE: Rejection = Rejection::new(
    StatusCode::NOT_FOUND,
    "This handoff cannot be completed: AmpSessionLayer was added with axum's Router::layer, \
     which wraps each route on its own, so the change cannot reach its route. Wrap the whole \
     router instead: layer.wrap_router(app) (or ServiceBuilder::new().layer(layer).service(app)). \
     The link was not used; it works once the layer is fixed.",
);

/// Whether `S` is axum's `Route`: the layer was added with `Router::layer` (or
/// `route_layer`, `MethodRouter::layer`) and this copy wraps one route, or the fallback.
///
/// By type name, so it also works without the `axum` feature (and for any axum version); a
/// name that ever changes only loses this diagnosis (the replay then answers the app's 404).
pub(crate) fn wraps_one_route<S>() -> bool {
    std::any::type_name::<S>().starts_with("axum::routing::route::Route")
}

/// A copy of the layer that wraps one route mints a handoff: the handoff path is another
/// route, which this copy cannot reach. Said once, at the first mint, so the mistake shows
/// in the logs before a shopper meets it. (A [`HandoffService`](crate::HandoffService)
/// mounted at the handoff path around the whole app makes it work; hence a warning.)
pub(crate) fn warn_at_mint(config: &Config) {
    if config.warned_one_route.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        handoff_path = &*config.handoff_path,
        "amp_session.layer_per_route: AmpSessionLayer wraps one route (axum's Router::layer), \
         so the handoff it just minted cannot reach its route on completion unless a \
         HandoffService is mounted at the handoff path; wrap the whole router: \
         layer.wrap_router(app)"
    );
}

/// The handoff path reached a copy of the layer that wraps one route. That route may be a
/// [`HandoffService`](crate::HandoffService) mounted there (`route_service`): the request
/// is passed on, marked as handled, and its answer kept. Anything else means the layer is
/// wired per route: the answer is replaced by a page that names the fix.
pub(crate) fn per_route_handoff<S, B, ResB>(
    mut inner: S,
    mut req: Request<B>,
) -> BoxFuture<Result<Response<ResponseBody<ResB>>, S::Error>>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    ResB: Send + 'static,
{
    req.extensions_mut().insert(Handled);
    let future = inner.call(req.map(RequestBody::inner));
    Box::pin(async move {
        let res = future.await?;
        let ext = res.extensions();
        if ext.get::<HandoffOutcome>().is_some() || ext.get::<Rejection>().is_some() {
            return Ok(res.map(ResponseBody::inner));
        }
        tracing::error!(
            status = res.status().as_u16(),
            "amp_session.handoff_unreachable: AmpSessionLayer wraps one route (axum's \
             Router::layer); wrap the whole router: layer.wrap_router(app)"
        );
        Ok(ONE_ROUTE.page("/"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_route_is_told_from_a_whole_app() {
        assert!(!super::wraps_one_route::<String>());
        #[cfg(feature = "axum")]
        {
            assert!(super::wraps_one_route::<axum::routing::Route>());
            assert!(!super::wraps_one_route::<axum::Router>());
        }
    }
}

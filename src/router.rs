//! Wrapping a whole axum `Router` (feature `axum`), and the diagnosis of `Router::layer`.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::handoff::{BoxFuture, HandoffOutcome};
use crate::layer::Handled;
use crate::reject::Rejection;

#[cfg(feature = "axum")]
impl crate::layer::AmpSessionLayer {
    /// Wraps a whole axum [`Router`](axum::Router) and returns a `Router`, so that the
    /// handoff endpoint can replay a change to any of its routes.
    ///
    /// Use this instead of `Router::layer`: axum applies `Router::layer` to each route on
    /// its own (and to the fallback), so the copy of the layer that receives the handoff
    /// URL could only reach the fallback, never `/cart/add`. Such a copy answers the
    /// handoff with a page that names this method (and leaves the token unused), so the
    /// mistake shows on the first handoff. Middleware that changes the request's path must
    /// wrap the whole router, as axum's docs say.
    ///
    /// A router that already has the layer inside (`layer.wrap_router(router.layer(layer))`)
    /// works too: the inner copies see that the outer one handled the request and pass it
    /// through, so there is one session and one cookie.
    ///
    /// ```
    /// use axum::{routing::post, Router};
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .build()
    ///     .unwrap();
    /// let app: Router = layer.wrap_router(Router::new().route("/cart/add", post(|| async { "{}" })));
    /// // axum::serve(listener, app).await
    /// # let _ = app;
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn wrap_router(&self, router: axum::Router) -> axum::Router {
        axum::Router::new().fallback_service(tower_layer::Layer::layer(self, router))
    }
}

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

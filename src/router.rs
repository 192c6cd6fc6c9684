//! Wrapping a whole axum `Router` (feature `axum`); `one_route` diagnoses `Router::layer`.

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

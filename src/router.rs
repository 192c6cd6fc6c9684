//! Wrapping a whole axum `Router` (feature `axum`).

use crate::layer::AmpSessionLayer;

impl AmpSessionLayer {
    /// Wraps a whole axum [`Router`](axum::Router) and returns a `Router`, so that the
    /// handoff endpoint can replay a change to any of its routes.
    ///
    /// Use this instead of `Router::layer`: axum applies `Router::layer` to each route on
    /// its own (and to the fallback), so the copy of the layer that receives the handoff
    /// URL could only reach the fallback, never `/cart/add`. Middleware that changes the
    /// request's path must wrap the whole router, as axum's docs say.
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
    pub fn wrap_router(&self, router: axum::Router) -> axum::Router {
        axum::Router::new().fallback_service(tower_layer::Layer::layer(self, router))
    }
}

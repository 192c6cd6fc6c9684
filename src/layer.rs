//! `AmpSessionLayer`: the one `.layer(...)` that enables the whole flow.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::config::{Config, ConfigBuilder};
use crate::handoff::HandoffService;
use crate::service::AmpSessionService;

/// Keeps one session between the publisher's origin and the AMP caches serving its pages.
///
/// Wraps any service: classifies each request, answers AMP CORS, reads or issues the session
/// cookie, turns cookieless state-changing requests from a cache into handoffs, and completes
/// handoffs at the configured path. Build it with [`AmpSessionLayer::builder`].
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_amp_session::{AmpSessionLayer, Keyring};
///
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
///     .build()
///     .expect("valid configuration");
/// let app: Router = Router::new().route("/cart/add", post(|| async { "added" }));
/// // Around the whole router: with axum, `layer.wrap_router(app)`; with tower,
/// // `ServiceBuilder::new().layer(layer).service(app)`. Not `Router::layer`, which wraps
/// // each route on its own, so the handoff endpoint could not reach `/cart/add`.
/// let app: Router = layer.wrap_router(app);
/// # let _ = app;
/// ```
#[derive(Clone)]
#[must_use]
pub struct AmpSessionLayer {
    pub(crate) config: Arc<Config>,
}

impl AmpSessionLayer {
    /// Starts the configuration; see [`ConfigBuilder`] for every option and its default.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    pub(crate) fn from_config(config: Arc<Config>) -> Self {
        AmpSessionLayer { config }
    }

    /// A [`HandoffService`] with this layer's configuration, for apps that mount the
    /// handoff endpoint on their own instead of wrapping the whole app in the layer.
    pub fn handoff_service<S>(&self, inner: S) -> HandoffService<S> {
        HandoffService::new(inner, self)
    }

    /// The path that completes handoffs.
    pub fn handoff_path(&self) -> &str {
        &self.config.handoff_path
    }

    /// The AMP cache origins accepted for each publisher, as `Origin` headers spell them.
    pub fn cache_origins(&self) -> impl Iterator<Item = &str> {
        self.config.allowlist.caches.iter().map(|(o, _)| &**o)
    }
}

impl fmt::Debug for AmpSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmpSessionLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for AmpSessionLayer {
    type Service = AmpSessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AmpSessionService {
            inner,
            config: self.config.clone(),
        }
    }
}

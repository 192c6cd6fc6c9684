//! `AmpSessionLayer`: the one `.layer(...)` that enables the whole flow.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::config::{Config, ConfigBuilder, ConfigError};
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
/// use tower::ServiceBuilder;
/// use tower_amp_session::{AmpSessionLayer, Keyring};
///
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
///     .build()
///     .expect("valid configuration");
/// let app: Router = Router::new().route("/cart/add", post(|| async { "added" }));
/// // Around the whole app: with plain tower (or hyper), a `ServiceBuilder`; with axum
/// // (feature `axum`), `layer.wrap_router(app)`. Not `Router::layer`, which wraps each
/// // route on its own, so the handoff endpoint could not reach `/cart/add`.
/// let svc = ServiceBuilder::new().layer(layer.clone()).service(app.clone());
/// # let _ = svc;
/// # #[cfg(feature = "axum")]
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

    /// A [`HandoffService`] with this layer's configuration, for apps that mount the
    /// handoff endpoint on their own instead of wrapping the whole app in the layer; see
    /// [`HandoffService`] for an example.
    pub fn handoff_service<S>(&self, inner: S) -> HandoffService<S> {
        HandoffService::new(inner, self)
    }

    /// The path that completes handoffs (`/_amp/handoff` by default).
    ///
    /// ```
    /// # use tower_amp_session::{AmpSessionLayer, Keyring};
    /// # let amp = AmpSessionLayer::builder()
    /// #     .publisher_origin("https://shop.example")
    /// #     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    /// #     .build()
    /// #     .unwrap();
    /// assert_eq!(amp.handoff_path(), "/_amp/handoff");
    /// ```
    pub fn handoff_path(&self) -> &str {
        &self.config.handoff_path
    }

    /// The AMP cache origins accepted for each publisher, as `Origin` headers spell them.
    ///
    /// For the trusted origins of an inner `CsrfLayer` (see [the stacking
    /// guide](crate::docs::stacking)):
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let amp = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .build()
    ///     .unwrap();
    /// assert!(amp.cache_origins().any(|o| o == "https://shop-example.cdn.ampproject.org"));
    /// ```
    pub fn cache_origins(&self) -> impl Iterator<Item = &str> {
        self.config.allowlist.caches.iter().map(|(o, _)| &**o)
    }

    /// The publisher origins, as `Origin` headers spell them (`https://shop.example`).
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let amp = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(amp.publisher_origins().collect::<Vec<_>>(), ["https://shop.example"]);
    /// ```
    pub fn publisher_origins(&self) -> impl Iterator<Item = &str> {
        self.config.publishers.iter().map(|p| &*p.origin)
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

// Here rather than in config.rs, so that the configuration knows nothing of the layer made
// from it: the builder checks and produces a `Config`, and the layer is made from that.
impl ConfigBuilder {
    /// Checks the configuration and builds the layer.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, ConfigError, Keyring};
    ///
    /// let refused = AmpSessionLayer::builder()
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .build();
    /// assert_eq!(refused.unwrap_err(), ConfigError::NoPublisherOrigin);
    /// ```
    pub fn build(self) -> Result<AmpSessionLayer, ConfigError> {
        Ok(AmpSessionLayer {
            config: Arc::new(self.into_config()?),
        })
    }
}

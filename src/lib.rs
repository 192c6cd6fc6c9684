//! Keep one user session between a publisher's origin and the AMP caches that serve its pages.
//!
//! A page served from an AMP cache (`shop-example.cdn.ampproject.org`) posts its forms to the
//! origin (`shop.example`). Browsers increasingly withhold the origin's cookie on that
//! cross-site request, so the shopper's cart is lost between cache and origin.
//! [`AmpSessionLayer`] wraps any tower service and fixes that:
//!
//! ```no_run
//! use axum::{routing::{get, post}, Form, Router};
//! use tower_amp_session::{AmpSession, AmpSessionLayer, Keyring};
//!
//! #[derive(serde::Deserialize)]
//! struct Add { product_id: u32, quantity: u32 }
//!
//! async fn add(session: AmpSession, Form(add): Form<Add>) -> &'static str {
//!     // Key your own cart store by session.id(); the layer stores nothing.
//!     let _ = (session.id(), add.product_id, add.quantity);
//!     "{}"
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = AmpSessionLayer::builder()
//!     .publisher_origin("https://shop.example")
//!     .keyring(Keyring::builder().signing_base64("k1", &std::env::var("AMP_SESSION_KEY")?))
//!     .build()?;
//! let app = Router::new()
//!     .route("/", get(|| async { "products" }))
//!     .route("/cart/add", post(add));
//! // Wrap the whole router (not `Router::layer`, which wraps routes one by one): the
//! // handoff endpoint replays changes to any route.
//! let app = layer.wrap_router(app);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # The flow
//!
//! 1. Every request is classified ([`RequestSource`]) by its `Origin` / `AMP-Same-Origin`
//!    against an allowlist built from the configuration: the publisher's origins and its
//!    computed subdomain on each AMP cache ([`cache_url::cache_subdomain`]).
//! 2. State-changing requests from foreign origins, or with neither header, are refused (403).
//!    `__amp_source_origin` must name a publisher origin and is removed before the app sees it.
//! 3. Requests from the publisher's pages get AMP CORS headers (exact `Origin`, credentials,
//!    `AMP-Redirect-To` exposed) and `Vary: Origin`.
//! 4. The session cookie (`HttpOnly; Secure; Path=/; SameSite=None` by default) is read, or a
//!    new 128-bit ID is issued; handlers find an [`AmpSession`] in the request extensions.
//! 5. A state-changing request from the cache **without** the cookie is not passed to the app.
//!    The layer reads the form (bounded), seals it into an encrypted handoff token and answers
//!    `AMP-Redirect-To: https://shop.example/_amp/handoff?token=...`; amp-form navigates the
//!    top window there.
//! 6. On the origin the layer verifies the token, consumes its nonce ([`ReplayGuard`]), reads
//!    or issues the first-party session, replays the change through the app, and answers
//!    `303 See Other` to a clean URL. The session ID never travels in a URL.
//!
//! # Feature flags
//!
//! - `axum` (default): [`AmpSession`] implements axum's `FromRequestParts`.
//! - `redis`: `RedisReplayGuard`, a replay guard shared by several origin instances.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Table tests keep rows as tuples.
#![cfg_attr(test, allow(clippy::type_complexity))]

mod body;
mod cache_control;
mod cache_domain;
pub mod cache_url;
mod classify;
mod config;
mod cors;
mod email;
#[cfg(feature = "axum")]
mod extract;
mod form;
mod future;
mod handoff;
mod keyring;
mod layer;
mod query;
mod reject;
mod replay;
#[cfg(feature = "redis")]
mod replay_redis;
pub mod return_path;
#[cfg(feature = "axum")]
mod router;
mod service;
mod session;
mod token;

pub use body::{RequestBody, ResponseBody};
pub use cache_domain::CacheDomain;
pub use classify::{RequestSource, AMP_SAME_ORIGIN};
pub use config::{ConfigBuilder, ConfigError, ReturnTo, SameSite};
pub use email::{AMP_EMAIL_ALLOW_SENDER, AMP_EMAIL_SENDER};
#[cfg(feature = "axum")]
pub use extract::MissingAmpSession;
pub use future::ResponseFuture;
pub use handoff::{
    HandoffOutcome, HandoffService, ViaHandoff, AMP_REDIRECT_TO, RETURN_PATH_FIELD, TOKEN_PARAM,
};
pub use keyring::{KeyError, Keyring, KeyringBuilder, MAX_KEY_ID_LEN, MIN_KEY_LEN};
pub use layer::AmpSessionLayer;
pub use reject::Rejection;
pub use replay::{MemoryReplayGuard, ReplayFuture, ReplayGuard, ReplayGuardError, Reservation};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use replay_redis::RedisReplayGuard;
pub use service::AmpSessionService;
pub use session::{AmpSession, SessionId};

/// The boxed error type bodies may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

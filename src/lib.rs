//! Keep one user session between a publisher's origin and the AMP caches that serve its pages.
//!
//! A page served from an AMP cache (`shop-example.cdn.ampproject.org`) posts its forms to the
//! origin (`shop.example`). Browsers increasingly withhold the origin's cookie on that
//! cross-site request, so the shopper's cart is lost between cache and origin.
//! [`AmpSessionLayer`] wraps any tower service and fixes that:
//!
//! ```no_run
//! # #[cfg(feature = "axum")] mod quick_start {
//! use axum::{routing::{get, post}, Router};
//! use tower_amp_session::{AmpForm, AmpSession, AmpSessionLayer, Keyring};
//!
//! #[derive(serde::Deserialize)]
//! struct Add { product_id: u32, quantity: u32 }
//!
//! // `AmpForm` reads amp-form's multipart posts and plain urlencoded forms alike.
//! async fn add(session: AmpSession, AmpForm(add): AmpForm<Add>) -> &'static str {
//!     // Key your own cart store by session.id(); the layer stores nothing.
//!     let _ = (session.id(), add.product_id, add.quantity);
//!     "{}"
//! }
//!
//! pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
//!     let layer = AmpSessionLayer::builder()
//!         .publisher_origin("https://shop.example")
//!         .keyring(Keyring::from_env("AMP_SESSION_KEYS")?) // k1:<base64 of 32 random bytes>
//!         // Applied on arrival from the cache page; other routes show a confirmation page.
//!         .direct_route("/cart/add")
//!         .build()?;
//!     let app = Router::new()
//!         .route("/", get(|| async { "products" }))
//!         .route("/cart/add", post(add));
//!     // Around the whole router (not `Router::layer`, which wraps routes one by one): the
//!     // handoff endpoint replays changes to any route.
//!     let app = layer.wrap_router(app);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! # }
//! ```
//!
//! With plain tower or hyper: `ServiceBuilder::new().layer(layer).service(app)`; the app
//! receives `Request<`[`RequestBody`]`<B>>` with an [`AmpSession`] in its extensions.
//!
//! # The flow
//!
//! ```text
//!  browser, on the cache page                    origin: AmpSessionLayer + app
//!  https://shop-example.cdn.ampproject.org       https://shop.example
//!        │                                              │
//!   1    │ POST /cart/add  (amp-form XHR)               │
//!        │ Origin: <cache>, no cookie (third-party) ──► │ mint: read the form (bounded),
//!        │                                              │ seal it into a handoff token;
//!        │                                              │ the app is NOT called
//!   2    │ ◄── 200 {"handoff":true,"message":…}         │
//!        │     AMP-Redirect-To: https://shop.example/_amp/handoff?token=…
//!        │                                              │
//!   3    │ top-level navigation (first-party) ────────► │ complete: open the token, check
//!        │ GET /_amp/handoff?token=…  (+ cookie, if any)│ the publisher, reserve its nonce,
//!        │                                              │ read or issue the session cookie,
//!        │                                              │ replay POST /cart/add → app
//!   4    │ ◄── 303 See Other                            │
//!        │     Location: https://shop.example/products/3│
//!        │     Set-Cookie: <session> (when new)         │
//!   5    │ GET /products/3  (clean URL, the session) ─► │
//! ```
//!
//! 1. Every request is classified ([`RequestSource`]) by its `Origin` / `AMP-Same-Origin`
//!    against an allowlist built from the configuration: the publisher's origins and its
//!    computed subdomain on each AMP cache ([`cache_url::cache_subdomain`]).
//! 2. State-changing requests from foreign origins, or with neither header, are refused (403).
//!    `__amp_source_origin` must name a publisher origin and is removed before the app sees it.
//! 3. Requests from the publisher's pages get AMP CORS headers (exact `Origin`, credentials,
//!    `AMP-Redirect-To` exposed) and `Vary: Origin`.
//! 4. The session cookie (`__Host-amp_session; HttpOnly; Secure; Path=/; SameSite=None` by
//!    default) is read, or a new 128-bit ID is issued; handlers find an [`AmpSession`] in the
//!    request extensions.
//! 5. A state-changing request from the cache **without** the cookie is not passed to the
//!    app: the layer seals the form into an encrypted handoff token and answers with
//!    `AMP-Redirect-To`; amp-form navigates the top window there (steps 1–2 above).
//! 6. On the origin the layer verifies the token, uses its nonce once ([`ReplayGuard`]),
//!    reads or issues the first-party session, replays the change through the app, and
//!    answers `303 See Other` to a clean URL (steps 3–4). The session ID never travels in
//!    a URL.
//!
//! # Guides
//!
//! The [`docs`] module holds the long-form guides: [stacking with tower-http](docs::stacking),
//! [your own session layer](docs::own_session), [several instances](docs::several_instances),
//! [security](docs::security), [tracing events](docs::tracing_events) and
//! [testing an app through the layer](docs::testing).
//!
//! # Feature flags
//!
//! No feature is on by default: a hyper or plain-tower user compiles no web framework, and
//! axum users turn on `axum`, which brings everything axum-specific at once.
//!
//! | feature | what it adds | pulls in |
//! |---|---|---|
//! | `axum-core` | extractors: [`AmpSession`], `Option<AmpSession>`, [`RequestSource`], `Option<ViaHandoff>` | `axum-core` |
//! | `axum` | `axum-core`, plus `AmpSessionLayer::wrap_router` and the `AmpForm` extractor | `axum` (no default features), `serde` |
//! | `redis` | `RedisReplayGuard`: single use across several origin instances | `fred`, `tokio` |
//! | `test-util` | the `testing` module: mint and complete a handoff in an app's tests | nothing |
//!
//! # Minimum supported Rust version
//!
//! 1.85, checked in CI with Debian's `rustc-web`/`cargo-web` 1.85 and a resolver that honours
//! `rust-version` (`resolver.incompatible-rust-versions = "fallback"`).

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
mod cookie_name;
mod cookie_template;
mod cors;
mod describe;
pub mod docs;
mod email;
#[cfg(feature = "axum-core")]
mod extract;
mod form;
mod future;
mod handled;
mod handoff;
mod keyring;
mod layer;
mod metrics;
mod near_miss;
mod one_route;
mod outcome;
mod query;
mod reject;
mod replay;
#[cfg(feature = "redis")]
mod replay_redis;
pub mod return_path;
mod router;
mod service;
mod session;
mod session_id;
mod source_origin;
mod sxg;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod token;

pub use body::{RequestBody, ResponseBody};
pub use cache_domain::CacheDomain;
pub use classify::{RequestSource, AMP_SAME_ORIGIN};
pub use config::{ConfigBuilder, ConfigError, ReturnTo, SameSite, MIN_CONFIRMATION_DELAY};
pub use describe::PendingChange;
pub use email::{AMP_EMAIL_ALLOW_SENDER, AMP_EMAIL_SENDER};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::form::{AmpForm, AmpFormRejection};
#[cfg(feature = "axum-core")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum-core")))]
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
pub use session::AmpSession;
pub use session_id::SessionId;
pub use sxg::is_signer_fetch;

// Every Rust snippet of the README compiles (`cargo test --doc`); they use these features.
#[cfg(all(doctest, feature = "axum", feature = "redis", feature = "test-util"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The boxed error type the layer's bounds accept from bodies
/// (`B::Error: Into<BoxError>`), as in tower and hyper.
///
/// ```
/// fn boxed(e: std::io::Error) -> tower_amp_session::BoxError {
///     e.into()
/// }
/// # let _ = boxed;
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

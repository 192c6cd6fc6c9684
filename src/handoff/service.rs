//! `HandoffService`: the handoff endpoint on its own.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::config::Config;
use crate::layer::AmpSessionLayer;

use super::complete;
use super::*;

/// Completes handoffs on the origin, on its own: mount it at the configured handoff path
/// when the rest of the app does not sit behind [`AmpSessionLayer`] (which completes
/// handoffs itself, so with the layer you do not need this).
///
/// The wrapped service is the app that applies the replayed change.
///
/// ```
/// use tower_amp_session::{AmpSessionLayer, HandoffService, Keyring, RequestBody};
///
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
///     .build()
///     .unwrap();
/// let app = tower::service_fn(|_req: http::Request<RequestBody<String>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// let handoff: HandoffService<_> = layer.handoff_service(app);
/// # let _ = handoff;
/// ```
#[derive(Clone)]
pub struct HandoffService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> HandoffService<S> {
    /// A handoff service for `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: &AmpSessionLayer) -> Self {
        HandoffService {
            inner,
            config: layer.config.clone(),
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for HandoffService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoffService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for HandoffService<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<crate::BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let inner = crate::handled::MarkReplays(inner);
        Box::pin(complete(self.config.clone(), inner, req))
    }
}

//! STUB, not the ideal handoff: a placeholder with the interface of the lead's
//! `ideal_handoff.rs` so the HTTP part compiles and its Lua scripts run. It does none of the
//! required work (no seal, no open, no replay guard): any ratio measured against it means
//! nothing. The lead's file replaces this one at merge.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_amp_session::AmpSessionLayer;

/// STUB: see the module comment.
#[derive(Clone)]
pub struct IdealHandoff<S> {
    inner: S,
}

/// STUB: see the module comment.
pub fn ideal_handoff<S>(ours: &AmpSessionLayer, cookie: &'static str, inner: S) -> IdealHandoff<S> {
    let _ = (ours, cookie);
    IdealHandoff { inner }
}

impl<S, B> Service<Request<B>> for IdealHandoff<S>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.expect("request body").to_bytes();
            if parts.method == Method::POST {
                // A "mint": the answer shape the scripts expect, with a fixed token.
                let mut res = Response::new(Full::new(Bytes::from_static(
                    b"{\"redirectTo\":\"https://shop.example/_amp/handoff?token=x\"}",
                )));
                let h = res.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                h.insert(
                    "amp-redirect-to",
                    HeaderValue::from_static("https://shop.example/_amp/handoff?token=x"),
                );
                return Ok(res);
            }
            // A "completion": call the app, answer 303 to the cache page's path.
            inner
                .ready()
                .await?
                .call(Request::from_parts(parts, Full::new(body)))
                .await?;
            let mut res = Response::new(Full::default());
            *res.status_mut() = StatusCode::SEE_OTHER;
            res.headers_mut().insert(
                LOCATION,
                HeaderValue::from_static("https://shop.example/products/3"),
            );
            Ok(res)
        })
    }
}

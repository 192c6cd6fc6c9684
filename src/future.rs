//! The response future: unboxed on the pass-through path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::SET_COOKIE;
use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::cache_control::keep_private;
use crate::cors;
use crate::handoff::BoxFuture;
use crate::session::LazyCookie;

pin_project! {
    /// Response future of [`AmpSessionService`](crate::AmpSessionService): named only as
    /// its `Service::Future`; the pass-through path is not boxed.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionService, ResponseFuture};
    ///
    /// // The type an outer middleware sees when it names the inner future.
    /// type Fut<S, ResB, E> = ResponseFuture<S, ResB, E>;
    /// # let _: Option<Fut<std::future::Ready<Result<http::Response<String>, ()>>, String, ()>> = None;
    /// # let _ = std::marker::PhantomData::<AmpSessionService<()>>;
    /// ```
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        // The app answers; the layer adds CORS headers and the new session's cookie.
        Call {
            #[pin]
            future: F,
            cors_origin: Option<HeaderValue>,
            extra: Extra,
        },
        // The layer answered at once (a rejection). Boxed: a rare path should not make
        // every future larger to move.
        Ready {
            response: Option<Box<Response<ResponseBody<B>>>>,
        },
        // Mint and complete: they read bodies and await the replay guard.
        Handoff {
            future: BoxFuture<Result<Response<ResponseBody<B>>, E>>,
        },
    }
}

/// The one other thing a passed-through answer may get: a session's cookie and an AMP email
/// sender never come together (email requests get no cookie).
pub(crate) enum Extra {
    None,
    /// A new session's cookie (the answer is also made `private`).
    SetCookie(HeaderValue),
    /// Lazy mode: the cookie, if the handler used the session.
    LazyCookie(Arc<LazyCookie>),
    EmailSender(HeaderValue),
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn call(future: F, cors_origin: Option<HeaderValue>, extra: Extra) -> Self {
        ResponseFuture {
            kind: Kind::Call {
                future,
                cors_origin,
                extra,
            },
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(crate) fn handoff(future: BoxFuture<Result<Response<ResponseBody<B>>, E>>) -> Self {
        ResponseFuture {
            kind: Kind::Handoff { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Call {
                future,
                cors_origin,
                extra,
            } => {
                let res = ready!(future.poll(cx))?;
                let mut res = res.map(ResponseBody::inner);
                let headers = res.headers_mut();
                cors::apply(headers, cors_origin.take());
                match std::mem::replace(extra, Extra::None) {
                    Extra::None => {}
                    Extra::SetCookie(cookie) => {
                        headers.append(SET_COOKIE, cookie);
                        keep_private(headers);
                    }
                    Extra::LazyCookie(lazy) => {
                        if let Some(cookie) = lazy.cookie() {
                            tracing::debug!(
                                source = lazy.source.as_str(),
                                session = %lazy.id.redacted(),
                                "amp_session.session_issued"
                            );
                            headers.append(SET_COOKIE, cookie);
                            keep_private(headers);
                        }
                    }
                    Extra::EmailSender(sender) => {
                        headers.insert(&crate::email::AMP_EMAIL_ALLOW_SENDER, sender);
                    }
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Ready { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(*res)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Handoff { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

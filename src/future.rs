//! The response future: unboxed on the pass-through path.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::header::SET_COOKIE;
use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::body::ResponseBody;
use crate::cors;
use crate::handoff::BoxFuture;

pin_project! {
    /// Response future of [`AmpSessionService`](crate::AmpSessionService).
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
            set_cookie: Option<HeaderValue>,
            email_sender: Option<HeaderValue>,
        },
        // The layer answered at once (a rejection).
        Ready {
            response: Option<Response<ResponseBody<B>>>,
        },
        // Mint and complete: they read bodies and await the replay guard.
        Handoff {
            future: BoxFuture<Result<Response<ResponseBody<B>>, E>>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn call(
        future: F,
        cors_origin: Option<HeaderValue>,
        set_cookie: Option<HeaderValue>,
        email_sender: Option<HeaderValue>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Call {
                future,
                cors_origin,
                set_cookie,
                email_sender,
            },
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
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
                set_cookie,
                email_sender,
            } => {
                let res = ready!(future.poll(cx))?;
                let mut res = res.map(ResponseBody::inner);
                let headers = res.headers_mut();
                cors::apply(headers, cors_origin.take());
                if let Some(cookie) = set_cookie.take() {
                    headers.append(SET_COOKIE, cookie);
                }
                if let Some(sender) = email_sender.take() {
                    headers.insert(&crate::email::AMP_EMAIL_ALLOW_SENDER, sender);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Ready { response } => match response.take() {
                Some(res) => Poll::Ready(Ok(res)),
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

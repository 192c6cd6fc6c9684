//! Body types: the app's own bodies pass through untouched; the layer's answers and replayed
//! handoff changes are small buffered bodies.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The request body the wrapped service receives: the client's body as it came, or the
    /// change a completed handoff replays.
    ///
    /// The app names it in its request type; it is an [`http_body::Body`] like any other:
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use tower_amp_session::RequestBody;
    ///
    /// async fn read<B>(req: http::Request<RequestBody<B>>) -> Vec<u8>
    /// where
    ///     B: http_body::Body<Data = bytes::Bytes>,
    /// {
    ///     match req.into_body().collect().await {
    ///         Ok(body) => body.to_bytes().to_vec(),
    ///         Err(_) => Vec::new(),
    ///     }
    /// }
    /// # let _ = read::<String>;
    /// ```
    #[derive(Debug)]
    pub struct RequestBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    /// The response body: the app's body as it came, or a short body written by this layer
    /// (a rejection, a handoff answer). `Default` is the empty body, for outer middleware
    /// that answers on its own.
    ///
    /// ```
    /// use tower_amp_session::ResponseBody;
    ///
    /// let empty: ResponseBody<String> = ResponseBody::default();
    /// assert!(http_body::Body::is_end_stream(&empty));
    /// ```
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        RequestBody {
            kind: Kind::Inner { body },
        }
    }

    /// A buffered body, as a completed handoff replays it.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        RequestBody {
            kind: Kind::Full {
                data: Some(data.into()).filter(|d| !d.is_empty()),
            },
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    /// A buffered body written by this layer.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Full {
                data: Some(data.into()).filter(|d| !d.is_empty()),
            },
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        ResponseBody {
            kind: Kind::Full { data: None },
        }
    }
}

impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

fn poll_kind<B>(
    kind: Pin<&mut Kind<B>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
where
    B: Body<Data = Bytes>,
{
    match kind.project() {
        KindProj::Inner { body } => body.poll_frame(cx),
        KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
    }
}

fn end_kind<B: Body>(kind: &Kind<B>) -> bool {
    match kind {
        Kind::Inner { body } => body.is_end_stream(),
        Kind::Full { data } => data.is_none(),
    }
}

fn hint_kind<B: Body>(kind: &Kind<B>) -> SizeHint {
    match kind {
        Kind::Inner { body } => body.size_hint(),
        Kind::Full { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        poll_kind(self.project().kind, cx)
    }

    fn is_end_stream(&self) -> bool {
        end_kind(&self.kind)
    }

    fn size_hint(&self) -> SizeHint {
        hint_kind(&self.kind)
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        poll_kind(self.project().kind, cx)
    }

    fn is_end_stream(&self) -> bool {
        end_kind(&self.kind)
    }

    fn size_hint(&self) -> SizeHint {
        hint_kind(&self.kind)
    }
}

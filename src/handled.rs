//! The mark a copy of the layer leaves on the requests it handled, so that copies further
//! in pass them through.

/// Put on requests a copy of this layer handled where its [`AmpSession`](crate::AmpSession)
/// does not already say so (bring-your-own-session mode, replays, per-route copies). A copy
/// further in that sees either passes the request through untouched, so two copies in one
/// stack (`wrap_router(router.layer(amp))`, or the layer added twice) act as one: one
/// classification, one session, never two cookies.
///
/// A zero-sized type: inserting it allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handled;

/// Marks the requests a handoff replays into the app with [`Handled`].
#[derive(Debug, Clone)]
pub(crate) struct MarkReplays<S>(pub(crate) S);

impl<S, B> tower_service::Service<http::Request<B>> for MarkReplays<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        req.extensions_mut().insert(Handled);
        self.0.call(req)
    }
}

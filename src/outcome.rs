//! What a handoff completion did: one answer, one outcome, read by metrics and logs.
//!
//! Its own module, below both `handoff` (which attaches it) and `metrics` (which counts it).

/// What a handoff completion did, attached to its response as an extension so outer
/// middleware (metrics, logs) can tell an applied change from a reload.
///
/// ```
/// use tower_amp_session::HandoffOutcome;
///
/// fn applied<B>(res: &http::Response<B>) -> bool {
///     res.extensions().get::<HandoffOutcome>() == Some(&HandoffOutcome::Applied)
/// }
/// # let _ = applied::<()>;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandoffOutcome {
    /// The change was applied on arrival (the shopper's own navigation from this
    /// publisher's cache page to a declared route) and the user redirected.
    Applied,
    /// The change was applied by the confirmation page's own POST (the shopper pressed
    /// its button) and the user redirected.
    Confirmed,
    /// The token had been used already (a reload, a double click): nothing applied.
    AlreadyApplied,
    /// The confirmation page was shown (the navigation did not come from this publisher's
    /// cache page, or the route is not declared): nothing applied, the token still usable.
    ConfirmationShown,
    /// The app refused or failed the change; its failure was shown to the user, and the
    /// link was given back to the replay guard, so a reload tries again.
    Failed,
    /// Another completion of the same link is applying the change, or never finished
    /// (its result is unknown): nothing applied, the user was told to check (`409`).
    Pending,
    /// The token had expired (`410`): nothing applied.
    Expired,
    /// The handoff was refused before anything was applied (`4xx`): a malformed, forged or
    /// tampered token, another publisher's token, a request that is not a navigation, a
    /// confirmation POST that is not the publisher's own.
    Refused,
    /// The replay guard could not answer (full, or its store unreachable; `503`): nothing
    /// applied, the link stays usable.
    GuardUnavailable,
}

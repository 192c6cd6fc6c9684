//! What the completion's checks approved, shared by the completion and its answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Uri;

use crate::config::Config;
use crate::session_id::SessionId;
use crate::token::HandoffToken;

/// What `check` approved: an authentic, unexpired token for this publisher, with a valid
/// target and return path.
pub(super) struct Checked {
    /// Index of the publisher the request was sent to, which the token is bound to.
    pub(super) publisher: usize,
    pub(super) token: HandoffToken,
    /// The token's target, parsed once here for the replayed request.
    pub(super) uri: Uri,
    /// Own-session mode: the session and whether it is new. `None`: the app's own.
    pub(super) session: Option<(SessionId, bool)>,
}

impl Checked {
    /// How long the replay guard keeps the nonce: the token's expiry plus the clock skew
    /// (the same value for every call about this nonce).
    pub(super) fn guard_expiry(&self, config: &Config) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.token.expires_at.saturating_add(config.clock_skew))
    }
}

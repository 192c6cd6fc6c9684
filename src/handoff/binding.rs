//! The publisher origin a token is bound to.
//!
//! A token minted for one publisher origin of the layer must never complete on another
//! (DESIGN "Complete" 3). The token carries the publisher origin in its encrypted contents
//! (`HandoffToken::publisher`); this module is the one place the handoff code reads and
//! writes it.

use crate::keyring::Keyring;
use crate::token::{CapturedChange, HandoffToken, TokenError};

/// Seals `change` bound to `publisher` (a serialized origin, `https://shop.example`).
pub(super) fn seal(
    keyring: &Keyring,
    publisher: &str,
    change: &CapturedChange,
    issued_at: u64,
    expires_at: u64,
    nonce: [u8; 16],
) -> Result<String, TokenError> {
    HandoffToken::seal(keyring, publisher, change, issued_at, expires_at, nonce)
}

/// The publisher origin `token` is bound to. `None`: the token names no publisher (an
/// empty origin, never minted by this layer).
pub(super) fn take_publisher(token: &mut HandoffToken) -> Option<String> {
    Some(std::mem::take(&mut token.publisher)).filter(|p| !p.is_empty())
}

//! The publisher origin a token is bound to.
//!
//! A token minted for one publisher origin of the layer must never complete on another
//! (DESIGN "Complete" 3). The token format gains a `publisher` field (owner: the token
//! module); until it has landed, the binding travels in the signed return path as
//! `\0<publisher origin>\0<path>`, which only this module writes and reads. A NUL never
//! survives return path validation, so no return path written any other way can be taken
//! for a binding. When
//! `HandoffToken::seal` takes `publisher: &str` and the token has `publisher: String`, the
//! bodies of [`seal`] and [`take_publisher`] become one line each and nothing else changes.

use crate::keyring::Keyring;
use crate::token::{CapturedChange, HandoffToken, TokenError, MAX_TARGET_LEN};

/// Seals `change` bound to `publisher` (a serialized origin, `https://shop.example`).
pub(super) fn seal(
    keyring: &Keyring,
    publisher: &str,
    change: &CapturedChange,
    issued_at: u64,
    expires_at: u64,
    nonce: [u8; 16],
) -> Result<String, TokenError> {
    let mut bound = change.clone();
    bound.return_path = if publisher.len() + 2 + change.return_path.len() <= MAX_TARGET_LEN {
        format!("\0{publisher}\0{}", change.return_path)
    } else {
        // Too long to carry with the binding: land on the home page instead.
        format!("\0{publisher}\0/")
    };
    HandoffToken::seal(keyring, &bound, issued_at, expires_at, nonce)
}

/// The publisher origin `token` is bound to, with the token's return path left as a path.
/// `None`: the token names no publisher (never minted by this version).
pub(super) fn take_publisher(token: &mut HandoffToken) -> Option<String> {
    let rest = token.change.return_path.strip_prefix('\0')?;
    let (publisher, path) = rest.split_once('\0')?;
    let publisher = publisher.to_owned();
    token.change.return_path = path.to_owned();
    Some(publisher)
}

//! The handoff token: a signed, self-contained description of one change.
//!
//! Binary layout (big-endian), then base64url without padding:
//!
//! ```text
//! version u8 | key id len u8 | key id | issued_at u64 | expires_at u64 | nonce [16]
//! | method len u8 | method | target len u16 | target | form u8 | body len u16 | body
//! | return len u16 | return path | HMAC-SHA256 [32]
//! ```
//!
//! The MAC covers the purpose string (length-prefixed, absorbed into the key state once) and
//! every byte before it. Only the version and key id are read before the MAC is checked: they
//! pick the key. Everything else is parsed after the constant-time comparison succeeds.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::Mac;
use http::Method;

use crate::keyring::Keyring;

/// The token format version this crate writes and reads.
pub const TOKEN_VERSION: u8 = 1;
/// The longest token text accepted, in characters (keeps the handoff URL under 8 KiB).
pub const MAX_TOKEN_LEN: usize = 7168;
/// The longest captured path-and-query or return path, in bytes.
pub const MAX_TARGET_LEN: usize = 2048;

const MAC_LEN: usize = 32;
const NONCE_LEN: usize = 16;
const MAX_METHOD_LEN: usize = 16;

/// How the captured body is encoded, so the origin can rebuild an equivalent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FormEncoding {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded`: the body is carried as it was sent.
    UrlEncoded,
    /// `multipart/form-data`: the text fields are carried url-encoded (half the size of the
    /// multipart framing) and a multipart body is rebuilt on the origin.
    Multipart,
}

impl FormEncoding {
    fn to_byte(self) -> u8 {
        match self {
            FormEncoding::Empty => 0,
            FormEncoding::UrlEncoded => 1,
            FormEncoding::Multipart => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(FormEncoding::Empty),
            1 => Some(FormEncoding::UrlEncoded),
            2 => Some(FormEncoding::Multipart),
            _ => None,
        }
    }
}

/// The change a handoff carries from the cache page to the origin. Never a session ID.
///
/// ```
/// use tower_amp_session::{CapturedChange, FormEncoding};
///
/// let change = CapturedChange {
///     method: http::Method::POST,
///     target: "/cart/add".into(),
///     encoding: FormEncoding::UrlEncoded,
///     body: "product_id=3&quantity=1".into(),
///     return_path: "/products/3".into(),
/// };
/// assert_eq!(change.method, http::Method::POST);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedChange {
    /// The request method (`POST`, `PUT`, ...).
    pub method: Method,
    /// Path and query the form was sent to, on the publisher origin.
    pub target: String,
    /// How [`CapturedChange::body`] is encoded.
    pub encoding: FormEncoding,
    /// The form fields, url-encoded.
    pub body: Bytes,
    /// Where the user lands when the change has been applied.
    pub return_path: String,
}

/// A verified handoff token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffToken {
    /// The id of the key that signed it.
    pub key_id: String,
    /// Unix seconds when it was minted.
    pub issued_at: u64,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// Random single-use value, consumed by the replay guard.
    pub nonce: [u8; NONCE_LEN],
    /// The change to apply.
    pub change: CapturedChange,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not canonical base64url, too short, too long, or badly framed.
    Malformed,
    /// The key id is not in the keyring.
    UnknownKey,
    /// The MAC does not match (tampered, another key, another purpose).
    BadSignature,
    /// A format version this build does not read.
    UnsupportedVersion,
    /// Past its expiry.
    Expired,
    /// Issued further in the future than the allowed clock skew.
    IssuedInFuture,
    /// A field is over its cap, so the token would not fit in a URL.
    TooLarge,
}

impl TokenError {
    /// A short reason, fit to show a user.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "the handoff link is malformed",
            TokenError::UnknownKey => "the handoff link was signed with an unknown key",
            TokenError::BadSignature => "the handoff link has an invalid signature",
            TokenError::UnsupportedVersion => "the handoff link has an unsupported version",
            TokenError::Expired => "the handoff link has expired",
            TokenError::IssuedInFuture => "the handoff link is not valid yet",
            TokenError::TooLarge => "the handoff link is too long",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

impl HandoffToken {
    /// Signs `change` with the keyring's signing key and returns the token text.
    ///
    /// ```
    /// use tower_amp_session::{CapturedChange, FormEncoding, HandoffToken, Keyring};
    ///
    /// let keyring = Keyring::builder().signing("k1", [1u8; 32]).build().unwrap();
    /// let change = CapturedChange {
    ///     method: http::Method::POST,
    ///     target: "/cart/add".into(),
    ///     encoding: FormEncoding::UrlEncoded,
    ///     body: "product_id=3".into(),
    ///     return_path: "/".into(),
    /// };
    /// let text = HandoffToken::seal(&keyring, &change, 1_000, 1_300, [0u8; 16]).unwrap();
    /// let token = HandoffToken::open(&keyring, &text, 1_010, 30).unwrap();
    /// assert_eq!(token.change, change);
    /// ```
    pub fn seal(
        keyring: &Keyring,
        change: &CapturedChange,
        issued_at: u64,
        expires_at: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<String, TokenError> {
        let signer = keyring.signer();
        let method = change.method.as_str().as_bytes();
        if method.len() > MAX_METHOD_LEN
            || change.target.len() > MAX_TARGET_LEN
            || change.return_path.len() > MAX_TARGET_LEN
            || change.body.len() > u16::MAX as usize
        {
            return Err(TokenError::TooLarge);
        }
        let len = 2
            + signer.id.len()
            + 16
            + NONCE_LEN
            + 1
            + method.len()
            + 2
            + change.target.len()
            + 1
            + 2
            + change.body.len()
            + 2
            + change.return_path.len()
            + MAC_LEN;
        if base64::encoded_len(len, false).is_none_or(|n| n > MAX_TOKEN_LEN) {
            return Err(TokenError::TooLarge);
        }
        let mut buf = Vec::with_capacity(len);
        buf.push(TOKEN_VERSION);
        buf.push(signer.id.len() as u8);
        buf.extend_from_slice(signer.id.as_bytes());
        buf.extend_from_slice(&issued_at.to_be_bytes());
        buf.extend_from_slice(&expires_at.to_be_bytes());
        buf.extend_from_slice(&nonce);
        buf.push(method.len() as u8);
        buf.extend_from_slice(method);
        put16(&mut buf, change.target.as_bytes());
        buf.push(change.encoding.to_byte());
        put16(&mut buf, &change.body);
        put16(&mut buf, change.return_path.as_bytes());
        let mut mac = signer.mac.clone();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        Ok(URL_SAFE_NO_PAD.encode(&buf))
    }

    /// Verifies `text` and returns the token, or why it was refused.
    ///
    /// `now` is Unix seconds; `skew` is how many seconds in the future `issued_at` may be.
    /// The MAC is checked in constant time before anything but the version and key id is read.
    pub fn open(keyring: &Keyring, text: &str, now: u64, skew: u64) -> Result<Self, TokenError> {
        let token = Self::open_unchecked_time(keyring, text)?;
        if token.issued_at > now.saturating_add(skew) {
            return Err(TokenError::IssuedInFuture);
        }
        if now >= token.expires_at || token.expires_at < token.issued_at {
            return Err(TokenError::Expired);
        }
        Ok(token)
    }

    fn open_unchecked_time(keyring: &Keyring, text: &str) -> Result<Self, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        // Strict: no padding, no other alphabet, no non-zero trailing bits.
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() < 2 + MAC_LEN {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = raw.split_at(raw.len() - MAC_LEN);
        let kid_len = signed[1] as usize;
        let kid = signed.get(2..2 + kid_len).ok_or(TokenError::Malformed)?;
        let key = keyring.find(kid).ok_or(TokenError::UnknownKey)?;
        let mut mac = key.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag)
            .map_err(|_| TokenError::BadSignature)?;

        // Authentic from here on; still parse defensively.
        if signed[0] != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion);
        }
        let mut r = Reader(&signed[2 + kid_len..]);
        let issued_at = r.u64()?;
        let expires_at = r.u64()?;
        let nonce: [u8; NONCE_LEN] = r
            .take(NONCE_LEN)?
            .try_into()
            .map_err(|_| TokenError::Malformed)?;
        let method_len = r.u8()? as usize;
        let method = Method::from_bytes(r.take(method_len)?).map_err(|_| TokenError::Malformed)?;
        let target = r.str16()?;
        let encoding = FormEncoding::from_byte(r.u8()?).ok_or(TokenError::Malformed)?;
        let body_len = r.u16()? as usize;
        let body = Bytes::copy_from_slice(r.take(body_len)?);
        let return_path = r.str16()?;
        if !r.0.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(HandoffToken {
            key_id: String::from_utf8_lossy(kid).into_owned(),
            issued_at,
            expires_at,
            nonce,
            change: CapturedChange {
                method,
                target,
                encoding,
                body,
                return_path,
            },
        })
    }
}

fn put16(buf: &mut Vec<u8>, field: &[u8]) {
    buf.extend_from_slice(&(field.len() as u16).to_be_bytes());
    buf.extend_from_slice(field);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, TokenError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Result<u64, TokenError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn str16(&mut self) -> Result<String, TokenError> {
        let n = self.u16()? as usize;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| TokenError::Malformed)?;
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests;

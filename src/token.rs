//! The handoff token: a sealed, self-contained description of one change.
//!
//! The token travels in the handoff URL (`?token=...`), so it lands in browser history and in
//! every access log in front of the origin. Its contents are therefore encrypted, not only
//! signed.
//!
//! # Layout (format version 2)
//!
//! Big-endian, then base64url without padding:
//!
//! ```text
//! clear, and the AEAD's associated data:
//!   version u8 (= 2) | key id len u8 | key id
//! clear:
//!   XChaCha20 nonce [24]
//! encrypted (XChaCha20-Poly1305), then the Poly1305 tag [16]:
//!   issued_at u64 | expires_at u64 | replay nonce [16] | publisher len u16 | publisher
//!   | method len u8 | method | target len u16 | target | form u8 | body len u16 | body
//!   | return len u16 | return path
//! ```
//!
//! # Cipher and keys
//!
//! - **XChaCha20-Poly1305**, computed as HChaCha20 + ring's ChaCha20-Poly1305 ([`aead`]:
//!   byte for byte the RustCrypto `XChaCha20Poly1305` tokens were sealed with until 0.1,
//!   five times faster on a token). Its 192-bit nonce is drawn at
//!   random for every token from the thread-local CSPRNG (`rand::rng()`, seeded once per
//!   thread from the OS, no syscall per token); at 192 bits a random nonce never needs a
//!   counter, at any volume and across any number of instances sharing a key. It is a
//!   constant-time software construction that needs no AES-NI (unlike AES-GCM), so it is as
//!   safe on a small ARM box as on a server.
//! - **Keys derived per purpose.** Each keyring key is expanded once, when the keyring is
//!   built, with HKDF-SHA256 and `info = "tower-amp-session/handoff/v2"` (purpose and format
//!   version) into the token key. The raw keyring key is never used as a cipher key, and no
//!   key derivation runs per token.
//! - **The key id picks the key.** The version and key id are read in clear; the key id
//!   selects one key (no trying every key), and both are the AEAD's associated data, so
//!   changing either breaks the tag.
//!
//! # Opening
//!
//! In this order, stopping at the first failure: the text's length against
//! [`MAX_TOKEN_LEN`] (before any decoding), strict canonical base64url (no padding, no other
//! alphabet, no non-zero trailing bits: one token has one spelling), the version, the key
//! id, the tag (checked in constant time by the AEAD before any plaintext is used), then the
//! framing of the plaintext, then the time window (expired, or issued further in the future
//! than the allowed clock skew).
//!
//! # What the token hides, and what it does not
//!
//! Hidden: the form fields (names and values), the target route and its query, the return
//! path, the times and the replay nonce. Without a keyring key nobody can read them, and
//! changing any byte gets the token refused.
//!
//! Visible to whoever sees the URL: the format version, the key id, and the token's length,
//! hence roughly the length of the form (the body is not padded). The publisher origin it is
//! bound to is inside the ciphertext but is the URL's own host anyway. The token is still a
//! bearer credential for one change until it expires or is applied: treat handoff URLs in
//! logs as you would a password-reset link, and keep the lifetime short.
//!
//! # Size
//!
//! Over the captured fields a token adds 2 + key id + 24 + 16 + 16 + 2 + publisher + 8
//! framing bytes + 16 (tag), then base64 (4/3). With the largest form the layer accepts
//! (`body_limit` at most 5 120 bytes), a 20-character publisher, a 2-character key id and
//! short target and return paths, the token is about 7 000 characters, under
//! [`MAX_TOKEN_LEN`] (7 168); the whole URL (origin + handoff path of at most 256 bytes +
//! `?token=` + token) stays under 7.7 KiB, well under the 8 KiB that common proxies accept.
//! A change that would not fit is refused at mint (413), never cut.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use http::Method;
use rand::RngCore;

use crate::keyring::Keyring;

/// The token format version this crate writes and reads.
pub(crate) const TOKEN_VERSION: u8 = 2;
/// The longest token text accepted, in characters (keeps the handoff URL under 8 KiB).
pub(crate) const MAX_TOKEN_LEN: usize = 7168;
/// The longest captured path-and-query, return path or publisher origin, in bytes.
pub(crate) const MAX_TARGET_LEN: usize = 2048;

/// The XChaCha20 nonce, in clear after the key id.
const AEAD_NONCE_LEN: usize = aead::NONCE_LEN;
/// The Poly1305 tag, last.
const TAG_LEN: usize = aead::TAG_LEN;
/// The replay guard's single-use value, inside the ciphertext.
const NONCE_LEN: usize = 16;
const MAX_METHOD_LEN: usize = 16;

/// How the captured body is encoded, so the origin can rebuild an equivalent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FormEncoding {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapturedChange {
    /// The request method (`POST`).
    pub(crate) method: Method,
    /// Path and query the form was sent to, on the publisher origin.
    pub(crate) target: ByteString,
    /// How [`CapturedChange::body`] is encoded.
    pub(crate) encoding: FormEncoding,
    /// The form fields, url-encoded.
    pub(crate) body: Bytes,
    /// Where the user lands when the change has been applied.
    pub(crate) return_path: ByteString,
}

/// An opened (authentic, unexpired) handoff token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandoffToken {
    /// The id of the key that sealed it (read by the tests; the completion needs none).
    #[cfg(test)]
    pub(crate) key_id: String,
    /// Unix seconds when it was minted.
    pub(crate) issued_at: u64,
    /// Unix seconds after which it is refused.
    pub(crate) expires_at: u64,
    /// Random single-use value, consumed by the replay guard.
    pub(crate) nonce: [u8; NONCE_LEN],
    /// The publisher origin it was minted for (ASCII serialization, e.g.
    /// `https://shop.example`); completion checks the request names the same publisher.
    pub(crate) publisher: ByteString,
    /// The change to apply.
    pub(crate) change: CapturedChange,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Not canonical base64url, too short, or badly framed.
    Malformed,
    /// The key id is not in the keyring.
    UnknownKey,
    /// The AEAD tag does not match: tampered, another key, another purpose.
    Inauthentic,
    /// A format version this build does not read.
    UnsupportedVersion,
    /// Past its expiry.
    Expired,
    /// Issued further in the future than the allowed clock skew.
    IssuedInFuture,
    /// Over a length cap, so the token would not fit in a URL.
    TooLarge,
}

impl TokenError {
    /// A short reason, fit to show a user.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "the handoff link is malformed",
            TokenError::UnknownKey => "the handoff link was sealed with an unknown key",
            TokenError::Inauthentic => "the handoff link was altered or not made by this site",
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
    /// Seals `change`, bound to `publisher`, with the keyring's signing key and returns the
    /// token text. The AEAD nonce comes from the thread-local CSPRNG. (The mint seals with
    /// [`HandoffToken::seal_url`]; this form is the tests'.)
    #[cfg(test)]
    pub(crate) fn seal(
        keyring: &Keyring,
        publisher: &str,
        change: &CapturedChange,
        issued_at: u64,
        expires_at: u64,
        nonce: [u8; NONCE_LEN],
    ) -> Result<String, TokenError> {
        let mut aead_nonce = [0u8; AEAD_NONCE_LEN];
        rand::rng().fill_bytes(&mut aead_nonce);
        Self::seal_with_aead_nonce(
            keyring, publisher, change, issued_at, expires_at, nonce, aead_nonce,
        )
    }

    /// [`HandoffToken::seal`] with a given AEAD nonce: deterministic, for tests. A nonce must
    /// never be used twice with one key.
    #[cfg(test)]
    pub(crate) fn seal_with_aead_nonce(
        keyring: &Keyring,
        publisher: &str,
        change: &CapturedChange,
        issued_at: u64,
        expires_at: u64,
        nonce: [u8; NONCE_LEN],
        aead_nonce: [u8; AEAD_NONCE_LEN],
    ) -> Result<String, TokenError> {
        let contents = Unsealed {
            publisher,
            method: change.method.as_str(),
            target: &change.target,
            encoding: change.encoding,
            body: &change.body,
            return_path: &change.return_path,
            issued_at,
            expires_at,
            nonce,
        };
        seal_after(&[], keyring, &contents, aead_nonce)
    }

    /// The token of `contents` appended to `prefix` (the handoff URL up to `token=`), in one
    /// buffer of exactly the right size: the mint's `AMP-Redirect-To` value. The AEAD nonce
    /// comes from the thread-local CSPRNG.
    pub(crate) fn seal_url(
        prefix: &[&str],
        keyring: &Keyring,
        contents: &Unsealed<'_>,
    ) -> Result<String, TokenError> {
        let mut aead_nonce = [0u8; AEAD_NONCE_LEN];
        rand::rng().fill_bytes(&mut aead_nonce);
        seal_after(prefix, keyring, contents, aead_nonce)
    }

    /// Opens `text` and returns the token, or why it was refused.
    ///
    /// `now` is Unix seconds; `skew` is how many seconds in the future `issued_at` may be.
    /// Nothing but the version and key id is read before the AEAD tag has been checked.
    pub(crate) fn open(
        keyring: &Keyring,
        text: &str,
        now: u64,
        skew: u64,
    ) -> Result<Self, TokenError> {
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
        // Before any decoding: a long input costs nothing.
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        // Strict: no padding, no other alphabet, no non-zero trailing bits. Decoded into a
        // buffer of the exact size (what canonical unpadded base64 of this length holds; a
        // length it cannot have fails to decode), so that the plaintext becomes `Bytes`
        // as it is and the body is a slice of it, not a copy.
        let mut raw = vec![0u8; text.len() / 4 * 3 + (text.len() % 4 * 3 / 4)];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut raw) {
            Ok(n) if n == raw.len() => {}
            _ => return Err(TokenError::Malformed),
        }
        let [version, kid_len, ..] = raw[..] else {
            return Err(TokenError::Malformed);
        };
        // The version says how the rest is laid out; it is in clear, so no key is needed.
        if version != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion);
        }
        let aad_len = 2 + usize::from(kid_len);
        if raw.len() < aad_len + AEAD_NONCE_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let key = keyring
            .find(&raw[2..aad_len])
            .ok_or(TokenError::UnknownKey)?;
        let plain_at = aad_len + AEAD_NONCE_LEN;
        let plain_end = raw.len() - TAG_LEN;
        let (head, rest) = raw.split_at_mut(plain_at);
        let (sealed, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let (aad, aead_nonce) = head.split_at(aad_len);
        let aead_nonce: &[u8; AEAD_NONCE_LEN] =
            aead_nonce.try_into().map_err(|_| TokenError::Malformed)?;
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| TokenError::Malformed)?;
        aead::open(&key.handoff, aead_nonce, aad, sealed, tag)
            .map_err(|_| TokenError::Inauthentic)?;

        // Authentic from here on (only a key holder could have sealed it); still parse
        // defensively.
        let raw = Bytes::from(raw);
        let plain = &raw[plain_at..plain_end];
        let mut r = Reader(plain);
        let issued_at = r.u64()?;
        let expires_at = r.u64()?;
        let nonce: [u8; NONCE_LEN] = r
            .take(NONCE_LEN)?
            .try_into()
            .map_err(|_| TokenError::Malformed)?;
        // Strings and the body are slices of the one decrypted buffer: no copy per field.
        let text = |r: &mut Reader<'_>| {
            let field = r.take16()?;
            let at = plain_end - r.0.len() - field.len();
            ByteString::try_from(raw.slice(at..at + field.len())).map_err(|_| TokenError::Malformed)
        };
        let publisher = text(&mut r)?;
        let method_len = usize::from(r.u8()?);
        let method = Method::from_bytes(r.take(method_len)?).map_err(|_| TokenError::Malformed)?;
        let target = text(&mut r)?;
        let encoding = FormEncoding::from_byte(r.u8()?).ok_or(TokenError::Malformed)?;
        let body_len = usize::from(r.u16()?);
        let body_at = plain_end - r.0.len();
        r.take(body_len)?;
        let body = raw.slice(body_at..body_at + body_len);
        let return_path = text(&mut r)?;
        if !r.0.is_empty() {
            return Err(TokenError::Malformed);
        }
        Ok(HandoffToken {
            #[cfg(test)]
            key_id: key.id.to_string(),
            issued_at,
            expires_at,
            nonce,
            publisher,
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

/// What a token seals, by reference: a mint seals the parts it holds without first building
/// an owned [`CapturedChange`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unsealed<'a> {
    /// The publisher origin the token is bound to.
    pub(crate) publisher: &'a str,
    /// [`CapturedChange::method`].
    pub(crate) method: &'a str,
    /// [`CapturedChange::target`].
    pub(crate) target: &'a str,
    /// [`CapturedChange::encoding`].
    pub(crate) encoding: FormEncoding,
    /// [`CapturedChange::body`].
    pub(crate) body: &'a [u8],
    /// [`CapturedChange::return_path`].
    pub(crate) return_path: &'a str,
    /// Unix seconds when it is minted.
    pub(crate) issued_at: u64,
    /// Unix seconds after which it is refused.
    pub(crate) expires_at: u64,
    /// The replay guard's single-use value.
    pub(crate) nonce: [u8; NONCE_LEN],
}

/// Tokens whose raw bytes fit here are laid out on the stack (every usual form does); a
/// larger one gets a heap buffer. Either way the plaintext is encrypted in place, so after
/// sealing the buffer holds only what the token shows anyway.
const STACK_RAW: usize = 1024;

/// `prefix` then the token text of `contents`, in one exactly sized buffer.
fn seal_after(
    prefix: &[&str],
    keyring: &Keyring,
    c: &Unsealed<'_>,
    aead_nonce: [u8; AEAD_NONCE_LEN],
) -> Result<String, TokenError> {
    let signer = keyring.signer();
    let method = c.method.as_bytes();
    if method.len() > MAX_METHOD_LEN
        || c.target.len() > MAX_TARGET_LEN
        || c.return_path.len() > MAX_TARGET_LEN
        || c.publisher.len() > MAX_TARGET_LEN
        || c.body.len() > u16::MAX as usize
    {
        return Err(TokenError::TooLarge);
    }
    let aad_len = 2 + signer.id.len();
    let plain_len = 8
        + 8
        + NONCE_LEN
        + 2
        + c.publisher.len()
        + 1
        + method.len()
        + 2
        + c.target.len()
        + 1
        + 2
        + c.body.len()
        + 2
        + c.return_path.len();
    let len = aad_len + AEAD_NONCE_LEN + plain_len + TAG_LEN;
    let text_len = base64::encoded_len(len, false)
        .filter(|&n| n <= MAX_TOKEN_LEN)
        .ok_or(TokenError::TooLarge)?;

    let mut stack = [0u8; STACK_RAW];
    let mut heap = Vec::new();
    let raw: &mut [u8] = if len <= STACK_RAW {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut w = Cursor {
        buf: &mut *raw,
        at: 0,
    };
    w.put(&[TOKEN_VERSION, signer.id.len() as u8]);
    w.put(signer.id.as_bytes());
    w.put(&aead_nonce);
    w.put(&c.issued_at.to_be_bytes());
    w.put(&c.expires_at.to_be_bytes());
    w.put(&c.nonce);
    put16(&mut w, c.publisher.as_bytes());
    w.put(&[method.len() as u8]);
    w.put(method);
    put16(&mut w, c.target.as_bytes());
    w.put(&[c.encoding.to_byte()]);
    put16(&mut w, c.body);
    put16(&mut w, c.return_path.as_bytes());
    debug_assert_eq!(w.at, len - TAG_LEN);
    let (head, rest) = raw.split_at_mut(aad_len + AEAD_NONCE_LEN);
    let (plain, tag_out) = rest.split_at_mut(plain_len);
    let tag = aead::seal(&signer.handoff, &aead_nonce, &head[..aad_len], plain)
        .map_err(|_| TokenError::TooLarge)?;
    tag_out.copy_from_slice(&tag);

    let prefix_len: usize = prefix.iter().map(|p| p.len()).sum();
    let mut out = String::with_capacity(prefix_len + text_len);
    for p in prefix {
        out.push_str(p);
    }
    // Into the `String` as it is: base64 is ASCII, no UTF-8 check afterwards.
    URL_SAFE_NO_PAD.encode_string(&*raw, &mut out);
    debug_assert_eq!(out.len(), prefix_len + text_len);
    Ok(out)
}

/// Writes the token's fields one after the other into a buffer sized for them.
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

fn put16(w: &mut Cursor<'_>, field: &[u8]) {
    w.put(&(field.len() as u16).to_be_bytes());
    w.put(field);
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
    /// A `u16`-length-prefixed field, borrowed from the plaintext.
    fn take16(&mut self) -> Result<&'a [u8], TokenError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

mod aead;

#[cfg(test)]
mod tests;

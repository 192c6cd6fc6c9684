//! Session IDs and reading them from the session cookie.
//!
//! A leaf module: what the request scan in `classify` and the session in `session` both
//! need, so neither imports the other for it.

use std::fmt;

use http::header::COOKIE;
use http::HeaderMap;
use rand::RngCore;

use crate::cookie_name::CookieName;
use crate::cookie_template::CookieValue;

/// Bytes of CSPRNG output in a session ID (SPEC: at least 128 bits).
const ID_BYTES: usize = 16;
/// Length of a session ID's text: base64url of 16 bytes, unpadded.
const ID_LEN: usize = 22;

/// The value of each base64url character; 0xff for bytes outside the alphabet.
const B64URL: [u8; 256] = {
    let alphabet = ALPHABET;
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The base64url alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url of 16 bytes, straight into the ID's array: five 3-byte groups make 20
/// characters, the last byte two more (its low 2 bits, then 4 zero bits). The general
/// engine's loop costs more than the ID's randomness; a property test holds this equal to it.
fn encode(raw: &[u8; ID_BYTES]) -> [u8; ID_LEN] {
    let mut text = [0u8; ID_LEN];
    for g in 0..5 {
        let n = u32::from(raw[3 * g]) << 16
            | u32::from(raw[3 * g + 1]) << 8
            | u32::from(raw[3 * g + 2]);
        for (k, out) in text[4 * g..4 * g + 4].iter_mut().enumerate() {
            *out = ALPHABET[(n >> (18 - 6 * k) & 63) as usize];
        }
    }
    let last = raw[ID_BYTES - 1];
    text[20] = ALPHABET[usize::from(last >> 2)];
    text[21] = ALPHABET[usize::from(last & 3) << 4];
    text
}

/// An opaque session identifier: 128 bits from a CSPRNG, as 22 URL-safe characters.
///
/// The library does not store session data: key your own store by the ID. The ID itself
/// (`SessionId` is `Copy + Eq + Hash`), its `Display` / `to_string()` and
/// [`SessionId::as_str`] are all the full ID, so any of them is a correct key.
///
/// `Debug` shows only a 4-character prefix (`SessionId(AbCd…)`), and so do the layer's own
/// log lines. In your logs, print `?id` (the redacted `Debug`), never `%id`: whoever reads a
/// full ID can ride the session.
///
/// ```
/// use std::collections::HashMap;
/// use tower_amp_session::SessionId;
///
/// let id = SessionId::generate();
/// assert_eq!(id.as_str().len(), 22);
/// assert_eq!(id.to_string(), id.as_str());
/// assert_eq!(SessionId::parse(id.as_str()), Some(id));
/// assert_eq!(SessionId::parse("not-a-session"), None);
/// assert!(!format!("{id:?}").contains(id.as_str()));
///
/// let mut carts: HashMap<SessionId, Vec<u32>> = HashMap::new();
/// carts.entry(id).or_default().push(3);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A new random ID from the thread-local CSPRNG (ChaCha seeded from the OS once per
    /// thread, so there is no syscall per ID).
    pub fn generate() -> Self {
        Self::from_rng(&mut rand::rng())
    }

    /// 16 bytes of `rng` as an ID. Two `next_u64` give the bytes `fill_bytes` would (both
    /// take the block's words in order, little-endian) without its chunked copy loop.
    fn from_rng<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let mut raw = [0u8; ID_BYTES];
        raw[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        raw[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        SessionId(encode(&raw))
    }
    /// Parses an ID as it appears in the cookie; `None` unless it is exactly what
    /// [`SessionId::generate`] produces (22 canonical base64url characters).
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    pub(crate) fn parse_bytes(text: &[u8]) -> Option<Self> {
        let bytes: [u8; ID_LEN] = text.try_into().ok()?;
        // What strict base64url decoding of 22 characters accepts, without decoding: every
        // character in the alphabet, and the last one's 4 trailing bits zero (16 bytes use
        // only 2 bits of it), so one ID has one spelling.
        let mut ok = true;
        for &b in &bytes {
            ok &= B64URL[b as usize] != 0xff;
        }
        (ok && B64URL[bytes[ID_LEN - 1] as usize] & 0x0f == 0).then_some(SessionId(bytes))
    }

    /// The ID as text (ASCII, URL-safe).
    pub fn as_str(&self) -> &str {
        // Only ever built from base64url output or checked base64url input.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// A form safe to log: the first 4 characters and `…` (24 of 128 bits, enough to tell
    /// sessions apart in one log, far too few to guess the rest). For the layer's tracing
    /// fields: `session = %id.redacted()`.
    pub(crate) fn redacted(&self) -> Redacted<'_> {
        Redacted(self)
    }
}

/// [`SessionId::redacted`]: displays as `AbCd…`.
pub(crate) struct Redacted<'a>(&'a SessionId);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0.as_str()[..4])
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.redacted())
    }
}

/// The full ID, as in the cookie: the key of the app's session store.
impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The session in the `Cookie` headers: the first value of the cookie `name` (in header
/// order, then pair order) that is a valid ID. Malformed values are skipped; later values
/// are never looked at, so extra copies (a program can send anything) can neither replace
/// nor lock out the session. With the `__Host-` prefix no browser sends a second one: a
/// sibling subdomain cannot set it.
pub(crate) fn read_cookie(headers: &HeaderMap, name: &CookieName) -> Option<SessionId> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|value| first_id(name, value.as_bytes()))
}

/// The first valid ID of cookie `name` in one `Cookie` value, for [`read_cookie`] and the
/// one-pass request scan in `classify`. A call, not inlined: the scan's loop over the headers
/// stays small (its registers are not spilled around the search).
#[inline(never)]
pub(crate) fn first_id(name: &CookieName, value: &[u8]) -> Option<SessionId> {
    name.values(value).find_map(SessionId::parse_bytes)
}

/// The ID is what the session cookie carries ([`CookieTemplate`](crate::cookie_template::CookieTemplate)).
impl CookieValue for SessionId {
    fn cookie_value(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use http::HeaderValue;
    use rand::{Rng, SeedableRng};
    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn cookie_reading_table() {
        let id = SessionId::generate();
        let other = SessionId::generate();
        let v = id.as_str();
        let w = other.as_str();
        let rows: Vec<(Vec<String>, Option<SessionId>)> = vec![
            (vec![], None),
            (vec!["a=1; b=2".into()], None),
            (vec![format!("s={v}")], Some(id)),
            (vec![format!("a=1; s={v}; b=2")], Some(id)),
            (vec!["a=1".into(), format!("s={v}")], Some(id)),
            (vec![format!("s={v}; s={v}")], Some(id)),
            (vec![format!("s=junk; s={v}")], Some(id)),
            (vec![format!("s={v}x")], None),
            (vec!["s=".into()], None),
            (vec![format!("S={v}")], None),
            (vec![format!("ss={v}")], None),
            (vec![format!("s={}", "A".repeat(8192))], None),
            // Several valid values: the first one wins, never a refusal.
            (vec![format!("s={v}; s={w}")], Some(id)),
            (vec![format!("s={w}; s={v}")], Some(other)),
            (vec![format!("s={v}"), format!("s={w}")], Some(id)),
            (
                vec![format!("s=junk"), format!("s={w}; s={v}")],
                Some(other),
            ),
        ];
        for (cookies, want) in rows {
            let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
            assert_eq!(
                read_cookie(&headers(&refs), &CookieName::new("s")),
                want,
                "{cookies:?}"
            );
        }
    }

    #[test]
    fn only_the_exact_name_is_read() {
        // A tossed cookie without the prefix (or with another spelling of it) is not the session.
        let tossed = SessionId::generate();
        let name = "__Host-amp_session";
        let t = tossed.as_str();
        for cookie in [
            format!("amp_session={t}"),
            format!("__host-amp_session={t}"),
            format!("__Host-amp_sessionx={t}"),
            format!("x__Host-amp_session={t}"),
            format!("__Secure-amp_session={t}"),
        ] {
            assert_eq!(
                read_cookie(&headers(&[&cookie]), &CookieName::new(name)),
                None,
                "{cookie}"
            );
        }
    }

    #[test]
    fn display_is_the_full_id_and_debug_is_redacted() {
        let id = SessionId::generate();
        assert_eq!(id.to_string(), id.as_str());
        assert_eq!(format!("{id}"), id.as_str());
        let debug = format!("{id:?}");
        assert_eq!(debug, format!("SessionId({}…)", &id.as_str()[..4]));
        assert_eq!(id.redacted().to_string(), format!("{}…", &id.as_str()[..4]));
    }

    proptest::proptest! {
        /// The table check accepts exactly what strict base64url decoding to 16 bytes does.
        #[test]
        fn parse_agrees_with_strict_base64(text in "[A-Za-z0-9_=+/.-]{22}|[A-Za-z0-9_-]{21}[AQgw]|[A-Za-z0-9_-]{21,23}") {
            let mut raw = [0u8; 24];
            let strict = text.len() == ID_LEN
                && URL_SAFE_NO_PAD.decode_slice(text.as_bytes(), &mut raw) == Ok(ID_BYTES);
            proptest::prop_assert_eq!(SessionId::parse(&text).is_some(), strict);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// The hand-written encoder writes what the base64 crate's unpadded base64url does.
        #[test]
        fn encode_agrees_with_the_base64_crate(raw in proptest::prelude::any::<[u8; ID_BYTES]>()) {
            let ours = encode(&raw);
            let want = URL_SAFE_NO_PAD.encode(raw);
            proptest::prop_assert_eq!(&ours[..], want.as_bytes());
            proptest::prop_assert_eq!(SessionId::parse_bytes(&ours), Some(SessionId(ours)));
        }

        /// Two `next_u64` draw the bytes `fill_bytes` draws, wherever the generator stands in
        /// its block (`skip` words already used), and leave it in the same state.
        #[test]
        fn from_rng_draws_what_fill_bytes_draws(seed in proptest::prelude::any::<u64>(), skip in 0usize..70) {
            let mut a = rand::rngs::StdRng::seed_from_u64(seed);
            for _ in 0..skip {
                a.next_u32();
            }
            let mut b = a.clone();
            let mut raw = [0u8; ID_BYTES];
            a.fill_bytes(&mut raw);
            let want = URL_SAFE_NO_PAD.encode(raw);
            let ours = SessionId::from_rng(&mut b);
            proptest::prop_assert_eq!(ours.as_str(), want.as_str());
            proptest::prop_assert_eq!(a.random::<u64>(), b.random::<u64>());
        }
    }

    #[test]
    fn headers_with_non_ascii_bytes_are_skipped_whole() {
        let id = SessionId::generate();
        let mut h = HeaderMap::new();
        let mut bad = format!("s={}; x=", id.as_str()).into_bytes();
        bad.push(0xe9);
        h.append(COOKIE, HeaderValue::from_bytes(&bad).unwrap());
        assert_eq!(read_cookie(&h, &CookieName::new("s")), None);
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("s={}", id.as_str())).unwrap(),
        );
        assert_eq!(read_cookie(&h, &CookieName::new("s")), Some(id));
    }

    #[test]
    fn non_canonical_ids_are_refused() {
        // 'B' at the end sets a trailing bit that 16 bytes never produce.
        assert_eq!(SessionId::parse(&format!("{}B", "A".repeat(21))), None);
        assert!(SessionId::parse(&format!("{}A", "A".repeat(21))).is_some());
        assert_eq!(SessionId::parse(&format!("{}+", "A".repeat(21))), None);
    }
}

//! Session IDs, the session cookie, and the session handlers see.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use rand::RngCore;

use crate::classify::RequestSource;

/// Bytes of CSPRNG output in a session ID (SPEC: at least 128 bits).
const ID_BYTES: usize = 16;
/// Length of a session ID's text: base64url of 16 bytes, unpadded.
const ID_LEN: usize = 22;

/// The value of each base64url character; 0xff for bytes outside the alphabet.
const B64URL: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// An opaque session identifier: 128 bits from a CSPRNG, as 22 URL-safe characters.
///
/// The library does not store session data; key your own store by [`SessionId::as_str`].
/// `Debug` and `Display` show only a short prefix, so logging a session never leaks it.
///
/// ```
/// use tower_amp_session::SessionId;
///
/// let id = SessionId::generate();
/// assert_eq!(id.as_str().len(), 22);
/// assert_eq!(SessionId::parse(id.as_str()), Some(id));
/// assert_eq!(SessionId::parse("not-a-session"), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A new random ID from the thread-local CSPRNG (ChaCha seeded from the OS once per
    /// thread, so there is no syscall per ID).
    pub fn generate() -> Self {
        let mut raw = [0u8; ID_BYTES];
        rand::rng().fill_bytes(&mut raw);
        let mut text = [0u8; ID_LEN];
        // Writing 16 bytes as unpadded base64url always yields exactly 22 bytes.
        let n = URL_SAFE_NO_PAD
            .encode_slice(raw, &mut text)
            .unwrap_or_default();
        debug_assert_eq!(n, ID_LEN);
        SessionId(text)
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

    fn prefix(&self) -> &str {
        &self.as_str()[..4]
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.prefix())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.prefix())
    }
}

/// The session of the current request, placed in the request extensions by
/// [`AmpSessionLayer`](crate::AmpSessionLayer).
///
/// ```
/// use tower_amp_session::AmpSession;
///
/// fn handler(req: &http::Request<()>) -> String {
///     match req.extensions().get::<AmpSession>() {
///         Some(session) => format!("cart of {}", session.id()),
///         None => "no AmpSessionLayer".into(),
///     }
/// }
/// # let _ = handler;
/// ```
///
/// With the `axum` feature, `AmpSession` is also an extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmpSession {
    pub(crate) id: SessionId,
    pub(crate) is_new: bool,
    pub(crate) source: RequestSource,
    pub(crate) via_handoff: bool,
}

impl AmpSession {
    /// The session ID: the key of the app's own session store.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Whether the ID was issued by this request (the response sets the cookie).
    pub fn is_new(&self) -> bool {
        self.is_new
    }

    /// Where the request came from.
    pub fn source(&self) -> RequestSource {
        self.source
    }

    /// Whether this request is a change replayed on the origin by a completed handoff.
    /// Its [`source`](AmpSession::source) is then [`RequestSource::SameOrigin`].
    pub fn via_handoff(&self) -> bool {
        self.via_handoff
    }
}

/// What the `Cookie` headers say about the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieState {
    /// No cookie of that name, or only malformed ones.
    Absent,
    /// One valid ID (possibly repeated with the same value).
    Valid(SessionId),
    /// Two different valid IDs: cookie tossing from a sibling domain, or a stale path cookie.
    Conflicting,
}

/// Reads the session cookie named `name` from every `Cookie` header.
pub(crate) fn read_cookie(headers: &HeaderMap, name: &str) -> CookieState {
    let mut found: Option<SessionId> = None;
    for value in headers.get_all(COOKIE) {
        for value in named_values(value.as_bytes(), name) {
            let Some(id) = SessionId::parse_bytes(value) else {
                continue;
            };
            match found {
                None => found = Some(id),
                Some(prev) if prev == id => {}
                Some(_) => return CookieState::Conflicting,
            }
        }
    }
    match found {
        Some(id) => CookieState::Valid(id),
        None => CookieState::Absent,
    }
}

/// The values of the cookies named `name` (a cookie token, as the config checks) in one
/// `Cookie` header value: what [`cookie_pairs`] yields for that name, but only pairs that
/// start with `name` are looked at past their first bytes (most of a header is other
/// cookies). A header that fails [`HeaderValue::to_str`]'s test (visible ASCII, space, tab)
/// yields nothing, as the `cookie` crate would never see it.
pub(crate) fn named_values<'a>(header: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    // Branch-free so it vectorizes.
    let printable = header.iter().fold(true, |ok, &b| {
        ok & (b == b'\t' || (0x20..0x7f).contains(&b))
    });
    let pairs = if printable { header } else { &[][..] };
    pairs.split(|&b| b == b';').filter_map(move |pair| {
        let rest = pair.trim_ascii_start().strip_prefix(name.as_bytes())?;
        let value = rest.trim_ascii_start().strip_prefix(b"=")?;
        Some(value.trim_ascii())
    })
}

/// The `name=value` pairs of one `Cookie` header, exactly as the `cookie` crate's
/// `Cookie::split_parse(text).flatten()` yields them (no percent-decoding, quotes kept):
/// `;`-separated, each pair and each side of its first `=` trimmed, pairs without `=` or with
/// an empty name skipped. Hand-written because the crate's `Cookie` is a large struct (dates,
/// attributes) that is built and moved for every pair: most of the cost of reading a header.
/// The reference for [`named_values`] in tests.
///
/// `text` is a header value that passed [`HeaderValue::to_str`] (visible ASCII, space, tab),
/// where ASCII trimming is the crate's Unicode trimming.
#[cfg(test)]
fn cookie_pairs(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = pair[..eq].trim_ascii();
        (!name.is_empty()).then(|| (name, pair[eq + 1..].trim_ascii()))
    })
}

/// The `Set-Cookie` header for a session, split around the ID so that issuing one costs a
/// single allocation. Attributes are rendered once, by the `cookie` crate, at build time.
#[derive(Debug, Clone)]
pub(crate) struct CookieTemplate {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl CookieTemplate {
    pub(crate) fn new(
        name: &str,
        max_age: std::time::Duration,
        same_site: cookie::SameSite,
        domain: Option<&str>,
    ) -> Self {
        const MARK: &str = "\u{1}ID\u{1}";
        let mut c = cookie::Cookie::new(name.to_owned(), "X".to_owned());
        c.set_http_only(true);
        c.set_secure(true);
        c.set_path("/");
        c.set_same_site(same_site);
        c.set_max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ));
        if let Some(d) = domain {
            c.set_domain(d.to_owned());
        }
        let rendered = c.to_string().replacen("=X", &format!("={MARK}"), 1);
        let (prefix, suffix) = rendered.split_once(MARK).unwrap_or((&rendered, ""));
        CookieTemplate {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    pub(crate) fn render(&self, id: &SessionId) -> HeaderValue {
        let mut s = String::with_capacity(self.prefix.len() + ID_LEN + self.suffix.len());
        s.push_str(&self.prefix);
        s.push_str(id.as_str());
        s.push_str(&self.suffix);
        HeaderValue::from_maybe_shared(bytes::Bytes::from(s))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let rows: Vec<(Vec<String>, CookieState)> = vec![
            (vec![], CookieState::Absent),
            (vec!["a=1; b=2".into()], CookieState::Absent),
            (vec![format!("s={v}")], CookieState::Valid(id)),
            (vec![format!("a=1; s={v}; b=2")], CookieState::Valid(id)),
            (vec!["a=1".into(), format!("s={v}")], CookieState::Valid(id)),
            (vec![format!("s={v}; s={v}")], CookieState::Valid(id)),
            (vec![format!("s=junk; s={v}")], CookieState::Valid(id)),
            (vec![format!("s={v}x")], CookieState::Absent),
            (vec!["s=".into()], CookieState::Absent),
            (vec![format!("S={v}")], CookieState::Absent),
            (vec![format!("ss={v}")], CookieState::Absent),
            (vec![format!("s={}", "A".repeat(8192))], CookieState::Absent),
            (
                vec![format!("s={v}; s={}", other.as_str())],
                CookieState::Conflicting,
            ),
        ];
        for (cookies, want) in rows {
            let refs: Vec<&str> = cookies.iter().map(String::as_str).collect();
            assert_eq!(read_cookie(&headers(&refs), "s"), want, "{cookies:?}");
        }
    }

    #[test]
    fn cookie_pairs_match_the_cookie_crate() {
        let rows = [
            "",
            ";",
            " ; ;; ",
            "a=1",
            "a=1; b=2",
            "a=1;b=2",
            "  a = 1 ;\tb=\t2\t",
            "a",
            "a; b=2",
            "=1; b=2",
            " =1",
            "a==1",
            "a=; b",
            "a=\"q\"; b=%41",
            "a=1; a=2; a=1",
            "a=1;;;b=2;",
            "x y=1; z =2",
            "\t",
            "a=1 2 ; b",
        ];
        for text in rows {
            let ours: Vec<(&str, &str)> = cookie_pairs(text.as_bytes())
                .map(|(n, v)| {
                    (
                        std::str::from_utf8(n).unwrap(),
                        std::str::from_utf8(v).unwrap(),
                    )
                })
                .collect();
            let theirs: Vec<(String, String)> = cookie::Cookie::split_parse(text)
                .flatten()
                .map(|c| (c.name().to_owned(), c.value().to_owned()))
                .collect();
            let theirs: Vec<(&str, &str)> = theirs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn cookie_pairs_agree_with_the_cookie_crate(text in "[ab;= \t\"%]{0,40}|[ -~\t]{0,80}") {
            let ours: Vec<(String, String)> = cookie_pairs(text.as_bytes())
                .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
                .collect();
            let theirs: Vec<(String, String)> = cookie::Cookie::split_parse(text.as_str())
                .flatten()
                .map(|c| (c.name().to_owned(), c.value().to_owned()))
                .collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
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

    #[test]
    fn headers_with_non_ascii_bytes_are_skipped_whole() {
        let id = SessionId::generate();
        let mut h = HeaderMap::new();
        let mut bad = format!("s={}; x=", id.as_str()).into_bytes();
        bad.push(0xe9);
        h.append(COOKIE, HeaderValue::from_bytes(&bad).unwrap());
        assert_eq!(read_cookie(&h, "s"), CookieState::Absent);
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("s={}", id.as_str())).unwrap(),
        );
        assert_eq!(read_cookie(&h, "s"), CookieState::Valid(id));
    }

    proptest::proptest! {
        /// The fast reader yields, for a name, exactly the values the reference split does.
        #[test]
        fn named_values_agree_with_cookie_pairs(text in "[ab;= \t\"%]{0,40}|[ -~\t]{0,80}", name in "a|b|ab") {
            let fast: Vec<&[u8]> = named_values(text.as_bytes(), &name).collect();
            let slow: Vec<&[u8]> = cookie_pairs(text.as_bytes())
                .filter(|(n, _)| *n == name.as_bytes())
                .map(|(_, v)| v)
                .collect();
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn non_canonical_ids_are_refused() {
        // 'B' at the end sets a trailing bit that 16 bytes never produce.
        assert_eq!(SessionId::parse(&format!("{}B", "A".repeat(21))), None);
        assert!(SessionId::parse(&format!("{}A", "A".repeat(21))).is_some());
        assert_eq!(SessionId::parse(&format!("{}+", "A".repeat(21))), None);
    }

    #[test]
    fn cookie_template_renders_secure_attributes() {
        let t = CookieTemplate::new(
            "amp_session",
            std::time::Duration::from_secs(3600),
            cookie::SameSite::None,
            None,
        );
        let id = SessionId::generate();
        let v = t.render(&id);
        let s = v.to_str().unwrap();
        assert!(
            s.starts_with(&format!("amp_session={}", id.as_str())),
            "{s}"
        );
        for attr in [
            "HttpOnly",
            "Secure",
            "Path=/",
            "SameSite=None",
            "Max-Age=3600",
        ] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
    }
}

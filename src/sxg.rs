//! Signed exchanges: telling a signer's fetch from a visitor's.
//!
//! A signer (amppackager, sxg-rs on Cloudflare or Fastly, webpkgserver) fetches a page from
//! the origin and signs the answer, which the Google SXG cache then serves under the
//! publisher's URL to everyone. The SXG spec forbids stateful headers in a signed answer
//! (`Set-Cookie`, `Set-Cookie2`, `Clear-Site-Data`, `Authentication-Info`, …), and the Google
//! SXG cache refuses `Cache-Control: private`, `no-store` or `no-cache`. So for a signer's
//! fetch the layer adds nothing: no cookie, no `Cache-Control` change, and no session from a
//! cookie (the page would be signed with one shopper's state in it).
//!
//! A request is a signer's fetch when any of these holds:
//! - its `Accept` prefers a signed exchange: `application/signed-exchange` with `v=b3` at
//!   `q=1` (explicit or implied), as the Google SXG cache and crawlers send it
//!   (sxg-rs `sxg_rs/src/headers.rs`, `validate_accept_header` with `PrefersSxg`). A browser
//!   is not a signer: Chromium's navigations send `application/signed-exchange;v=b3;q=0.7`;
//! - it carries `AMP-Cache-Transform` (the Google AMP cache asking for an AMP SXG,
//!   amppackager `packager/amp_cache_transform/amp_cache_transform.go`);
//! - its `Via` names a signer's pseudonym: `amppkg` (amppackager's own fetch,
//!   `packager/signer/signer.go` `fetchURL`, which forwards neither `Accept` nor
//!   `AMP-Cache-Transform` by default) or `sxgrs` (sxg-rs's fetch to the origin,
//!   `sxg_rs/src/headers.rs` `forward_to_origin_server`, which forwards only the configured
//!   headers, by default `User-Agent` and `CF-IPCountry`).
//!
//! Browsers cannot send `Via` (a forbidden request header in Fetch), and a page that adds
//! `Accept` or `AMP-Cache-Transform` to its own request only loses the session for that one
//! request; so none of these lets anyone take or spoil another visitor's session. Only safe
//! methods are ever treated as a signer's fetch (signers only `GET`; a change must reach its
//! handoff).

use std::borrow::Cow;

use http::header::{ACCEPT, VIA};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `AMP-Cache-Transform`: the AMP cache asks for an AMP signed exchange.
pub(crate) static AMP_CACHE_TRANSFORM: HeaderName = HeaderName::from_static("amp-cache-transform");

/// The media type of a signed exchange.
const SXG: &str = "application/signed-exchange";
/// The only SXG version a signer produces today (amppackager `packager/accept/accept.go`).
const SXG_VERSION: &str = "b3";
/// `Via` pseudonyms of signers fetching the origin (see the module docs).
const SIGNER_VIAS: [&str; 2] = ["amppkg", "sxgrs"];
/// Optional whitespace (RFC 9110, 5.6.3).
const OWS: &[char] = &[' ', '\t'];

/// Whether a request with these headers is a signer's fetch: its `Accept` prefers a signed
/// exchange (`application/signed-exchange;v=b3` at `q=1`), it carries
/// `AMP-Cache-Transform`, or its `Via` names amppackager (`amppkg`) or sxg-rs (`sxgrs`).
///
/// The layer answers such a `GET` without a `Set-Cookie` and without touching its
/// `Cache-Control`, and gives the handler a session that lasts one request
/// ([`AmpSession::is_signer_fetch`](crate::AmpSession::is_signer_fetch)). Apps with their own
/// session layer can call this to do the same.
///
/// ```
/// use tower_amp_session::is_signer_fetch;
///
/// let mut h = http::HeaderMap::new();
/// // What the Google SXG cache sends.
/// h.insert("accept", "application/signed-exchange;v=b3,*/*;q=0.8".parse().unwrap());
/// assert!(is_signer_fetch(&h));
/// // What Chromium sends on a navigation: it accepts an SXG, but prefers HTML.
/// h.insert(
///     "accept",
///     "text/html,application/xhtml+xml,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
///         .parse()
///         .unwrap(),
/// );
/// assert!(!is_signer_fetch(&h));
/// ```
pub fn is_signer_fetch(headers: &HeaderMap) -> bool {
    // One pass over the names: `Accept` and `Via` are standard names (an enum compare); a
    // lookup of the custom `AMP-Cache-Transform` would hash it on every request.
    headers
        .iter()
        .any(|(name, value)| signals_signer(name, value))
}

/// Whether one header says the request is a signer's fetch: what [`is_signer_fetch`] asks of
/// each, so that the layer's one pass over a request's headers can ask it too. The name
/// compares are inlined into that loop; the value readers stay calls, made for one header.
#[inline(always)]
pub(crate) fn signals_signer(name: &HeaderName, value: &HeaderValue) -> bool {
    if name == ACCEPT {
        prefers_sxg(value.as_bytes())
    } else if name == VIA {
        names_signer(value.as_bytes())
    } else {
        name == AMP_CACHE_TRANSFORM
    }
}

/// Whether one `Accept` value has `application/signed-exchange` with `v=b3` at `q=1`.
#[inline(never)]
fn prefers_sxg(value: &[u8]) -> bool {
    // Most `Accept` values never mention it: a cheap scan first, the parse only when needed.
    if !mentions_sxg(value) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    split_outside_quotes(text, b',').any(range_prefers_sxg)
}

/// One media range of `Accept` (`type/subtype *( OWS ";" OWS parameter )`): the SXG type,
/// a `v` listing `b3` before any `q` (RFC 9110 12.5.1: `q` ends the media type's own
/// parameters; what follows it are extensions), and a weight of 1 (absent means 1).
/// Anything malformed is not a preference.
fn range_prefers_sxg(range: &str) -> bool {
    let mut parts = split_outside_quotes(range, b';');
    let media = parts.next().unwrap_or("").trim_matches(OWS);
    if !media.eq_ignore_ascii_case(SXG) {
        return false;
    }
    let mut version = false;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        let (name, value) = (name.trim_matches(OWS), value.trim_matches(OWS));
        if name.eq_ignore_ascii_case("q") {
            return version && is_weight_one(value);
        }
        if name.eq_ignore_ascii_case("v") {
            // A list is allowed (`v="b2,b3"`, as amppackager reads it).
            version |= unquote(value)
                .split(',')
                .any(|v| v.trim_matches(OWS) == SXG_VERSION);
        }
    }
    version
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, and it is 1.
fn is_weight_one(q: &str) -> bool {
    match q.strip_prefix('1') {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|zeros| zeros.len() <= 3 && zeros.bytes().all(|b| b == b'0')),
        None => false,
    }
}

/// Whether a `Via` value (`1#( received-protocol RWS received-by [ RWS comment ] )`) has an
/// entry received by a signer. sxg-rs writes the pseudonym alone, without a protocol.
#[inline(never)]
fn names_signer(value: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(value) else {
        return false;
    };
    text.split(',').any(|entry| {
        let entry = entry.split('(').next().unwrap_or("");
        let mut words = entry.split_ascii_whitespace();
        let by = match (words.next(), words.next()) {
            (Some(_protocol), Some(by)) => by,
            (Some(alone), None) => alone,
            _ => return false,
        };
        SIGNER_VIAS.iter().any(|s| by.eq_ignore_ascii_case(s))
    })
}

/// A parameter value without its quotes and escapes (RFC 9110 5.6.4).
fn unquote(value: &str) -> Cow<'_, str> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(value);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    Cow::Owned(out)
}

/// The parts of `text` between `sep` bytes outside quoted strings (a `,` or `;` inside
/// `"…"` does not split; `\` escapes the next character there).
fn split_outside_quotes(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, b) in s.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ if b == sep && !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

/// Whether `value` holds `signed-exchange` in any case: found by its `-`, the one byte case
/// cannot change and that the usual `Accept` values (`text/html`, `application/json`, `*/*`,
/// browsers' lists up to the SXG entry) lack, so one byte search settles them. A
/// property test holds it equal to [`contains_ignore_case`].
fn mentions_sxg(value: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"signed-exchange";
    const DASH: usize = 6;
    let at = |i: usize| {
        i >= DASH
            && value
                .get(i - DASH..i - DASH + NEEDLE.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(NEEDLE))
    };
    // Values shorter than one vector (`text/html`, `*/*`) cost less to walk than memchr's
    // set-up.
    if value.len() < 16 {
        value.iter().enumerate().any(|(i, &b)| b == b'-' && at(i))
    } else {
        memchr::memchr_iter(b'-', value).any(at)
    }
}

/// Whether `hay` contains `needle` (lower-case ASCII) in any ASCII case: the general search,
/// the reference of [`mentions_sxg`].
#[cfg(test)]
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, tail)) = needle.split_first() else {
        return true;
    };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), hay).any(|i| {
        hay.get(i + 1..i + needle.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(tail))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, value.parse().unwrap());
        is_signer_fetch(&h)
    }

    #[test]
    fn accept_table() {
        // (Accept, a signer's fetch)
        let rows = [
            // The Google SXG cache and crawlers (sxg-rs's `PrefersSxg` accepts these).
            ("application/signed-exchange;v=b3", true),
            ("application/signed-exchange;v=b3;q=1", true),
            ("application/signed-exchange;v=b3;q=1.0", true),
            ("application/signed-exchange;v=b3;q=1.000", true),
            ("application/signed-exchange;v=b3,*/*;q=0.8", true),
            ("text/html;q=0.5,application/signed-exchange;v=b3", true),
            ("application/signed-exchange;v=b3;q=1,*/*;q=0.8", true),
            (
                "  application/signed-exchange  ;  v=b3  ;  q=1  ,  */*  ;  q=0.8  ",
                true,
            ),
            ("text/html;q=0.5,application/signed-exchange;V=b3;Q=1", true),
            ("Application/Signed-Exchange;v=b3", true),
            ("application/signed-exchange;v=\"b3\"", true),
            ("application/signed-exchange;v=\"b2,b3\"", true),
            ("application/signed-exchange;v=b3;q=1;ext=\"a,b\"", true),
            // Browsers: they accept an SXG but prefer HTML.
            (
                "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
                 image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
                false,
            ),
            ("application/signed-exchange;v=b3;q=0.9,*/*;q=0.8", false),
            ("application/signed-exchange;v=b3;q=0.999", false),
            // `q` ends the media type's parameters: a `v` after it is an extension.
            ("application/signed-exchange;q=1;v=b3", false),
            // Not the version signers produce, or none.
            ("application/signed-exchange", false),
            ("application/signed-exchange;v=b2", false),
            ("application/signed-exchange;v=B3", false),
            ("application/signed-exchange;v=\"b2\"", false),
            // Malformed weights and parameters.
            ("application/signed-exchange;v=b3;q=1.0000", false),
            ("application/signed-exchange;v=b3;q=2", false),
            ("application/signed-exchange;v=b3;q=", false),
            ("application/signed-exchange;v=b3;q", false),
            ("application/signed-exchange;v", false),
            // Other types that merely mention it.
            ("text/html;note=\"application/signed-exchange;v=b3\"", false),
            ("application/signed-exchange-x;v=b3", false),
            ("x-application/signed-exchange;v=b3", false),
            ("*/*", false),
            ("", false),
            ("text/html", false),
        ];
        for (value, want) in rows {
            assert_eq!(accept(value), want, "{value:?}");
        }
    }

    #[test]
    fn amp_cache_transform_and_via_table() {
        // (header, value, a signer's fetch)
        let rows = [
            ("amp-cache-transform", "google;v=\"1..100\"", true),
            ("amp-cache-transform", "any", true),
            ("via", "1.1 amppkg", true),
            ("via", "HTTP/2.0 amppkg", true),
            ("via", "1.1 proxy.example, 1.1 AMPPKG (Go)", true),
            ("via", "sxgrs", true),
            ("via", "1.1 google, sxgrs", true),
            ("via", "1.1 varnish", false),
            ("via", "1.1 amppkg-lookalike", false),
            ("via", "1.1 proxy (amppkg)", false),
            ("x-amp-cache-transform", "google", false),
        ];
        for (name, value, want) in rows {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), value.parse().unwrap());
            assert_eq!(is_signer_fetch(&h), want, "{name}: {value}");
        }
    }

    #[test]
    fn quoted_separators_do_not_split() {
        let parts: Vec<&str> = split_outside_quotes("a;b=\"x;y\";c=\"\\\";\"", b';').collect();
        assert_eq!(parts, ["a", "b=\"x;y\"", "c=\"\\\";\""]);
        assert_eq!(unquote("\"b\\3\""), "b3");
        assert!(contains_ignore_case(
            b"xx-SIGNED-exchange",
            b"signed-exchange"
        ));
        assert!(!contains_ignore_case(b"signed-exchang", b"signed-exchange"));
        assert!(mentions_sxg(b"xx-SIGNED-exchange"));
        assert!(!mentions_sxg(b"signed-exchang"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// The search by `-` finds exactly what the general case-insensitive search finds.
        #[test]
        fn mentions_sxg_agrees_with_contains_ignore_case(
            value in "((signed|SiGnEd|exchange|ExChAnGe|-|s|e|,|;|/| )[a-z-]{0,3}){0,12}|[ -~]{0,40}"
        ) {
            proptest::prop_assert_eq!(
                mentions_sxg(value.as_bytes()),
                contains_ignore_case(value.as_bytes(), b"signed-exchange")
            );
        }
    }
}

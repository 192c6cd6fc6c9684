//! Return paths: where the browser is sent on the publisher origin after a
//! handoff. Only a path on the publisher origin is ever accepted, so a return
//! path can never become an open redirect.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode;
use url::Url;

use crate::cache_url::publisher_path_from_cache_path;

/// Longest return path accepted, in bytes, before and after normalization.
///
/// ```
/// use tower_amp_session::return_path::{validate_return_path, MAX_RETURN_PATH_LEN};
///
/// let origin = url::Url::parse("https://shop.example/").unwrap();
/// let long = format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN));
/// assert!(validate_return_path(&long, &origin).is_err());
/// ```
pub const MAX_RETURN_PATH_LEN: usize = 2048;

/// How many nested percent-decodings are checked. One is what the spec asks;
/// a few more catch `%255C`-style payloads aimed at code that decodes twice.
const DECODE_ROUNDS: usize = 3;

/// Why a return path was refused.
///
/// ```
/// use tower_amp_session::return_path::{validate_return_path, ReturnPathError};
///
/// let origin = url::Url::parse("https://shop.example/").unwrap();
/// let err = validate_return_path("//evil.com", &origin).unwrap_err();
/// assert_eq!(err, ReturnPathError::NotSingleSlash);
/// assert_eq!(err.to_string(), "return path must start with a single '/'");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReturnPathError {
    /// The return path is the empty string.
    Empty,
    /// Longer than [`MAX_RETURN_PATH_LEN`] bytes.
    TooLong,
    /// Contains a space, a control character or a non-ASCII character.
    InvalidCharacter,
    /// Contains `\`, which browsers read as `/`.
    Backslash,
    /// Does not start with exactly one `/`.
    NotSingleSlash,
    /// Percent-decoding yields `\`, a control character or a leading `//`.
    UnsafeEncoding,
    /// Resolved against the origin, it lands elsewhere or on a `//` path.
    NotSameOrigin,
    /// The URL parser refused it.
    Unparsable,
    /// The publisher origin is not an http(s) origin with a host.
    InvalidOrigin,
}

impl fmt::Display for ReturnPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "return path is empty",
            Self::TooLong => "return path is too long",
            Self::InvalidCharacter => "return path must be printable ascii without spaces",
            Self::Backslash => "return path must not contain '\\'",
            Self::NotSingleSlash => "return path must start with a single '/'",
            Self::UnsafeEncoding => "return path is unsafe once percent-decoded",
            Self::NotSameOrigin => "return path must stay on the publisher origin",
            Self::Unparsable => "return path is not a valid url path",
            Self::InvalidOrigin => "publisher origin must be an http(s) origin",
        })
    }
}

impl std::error::Error for ReturnPathError {}

/// Checks that `candidate` is a path on `publisher_origin` and returns it
/// normalized (path and query as the WHATWG URL parser serializes them; any
/// fragment dropped).
///
/// Accepted: printable ASCII only, exactly one leading `/`, no `\` (raw or
/// percent-encoded), no percent-encoded control characters, at most
/// [`MAX_RETURN_PATH_LEN`] bytes, and still a single-`/` path on the same origin
/// once resolved against `publisher_origin`.
///
/// # Errors
///
/// A [`ReturnPathError`] naming the first rule the candidate breaks.
///
/// ```
/// use tower_amp_session::return_path::validate_return_path;
///
/// let origin = url::Url::parse("https://shop.example/").unwrap();
/// assert_eq!(validate_return_path("/a/../cart?x=1#top", &origin).as_deref(), Ok("/cart?x=1"));
/// assert!(validate_return_path("/\\evil.com", &origin).is_err());
/// assert!(validate_return_path("https://evil.com/", &origin).is_err());
/// ```
pub fn validate_return_path(
    candidate: &str,
    publisher_origin: &Url,
) -> Result<String, ReturnPathError> {
    if !is_http_origin(publisher_origin) {
        return Err(ReturnPathError::InvalidOrigin);
    }
    // The usual return path (`/products/3?x=1`) is its own normal form: no WHATWG parse.
    if is_plain_path(candidate.as_bytes()) {
        return Ok(candidate.to_owned());
    }
    validate_general(candidate, publisher_origin)
}

/// [`validate_return_path`] that hands a candidate already in normal form back as it is
/// (borrowed stays borrowed): the mint's usual return path costs no allocation.
pub(crate) fn validate_return_path_cow<'a>(
    candidate: Cow<'a, str>,
    publisher_origin: &Url,
) -> Result<Cow<'a, str>, ReturnPathError> {
    if is_http_origin(publisher_origin) && is_plain_path(candidate.as_bytes()) {
        return Ok(candidate);
    }
    validate_general(&candidate, publisher_origin).map(Cow::Owned)
}

/// An http(s) origin with a host: the only kind a return path is resolved against.
fn is_http_origin(origin: &Url) -> bool {
    matches!(origin.scheme(), "http" | "https") && origin.host_str().is_some()
}

/// Bytes a WHATWG parser leaves as they are in the path and the query of an http(s) URL,
/// and that need no decoding: ASCII letters and digits, `-._~`, the sub-delimiters but `'`
/// (which the query percent-encodes), `:`, `@`, `/` and `?`. Not `%`, `#`, `\`, quotes, `<>`,
/// `` ` ``, `{}`, `|`, `^`, `[]`, space or controls.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let extra = b"-._~!$&()*+,;=:@/?";
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether `p` is a return path in normal form that every check accepts as it is: at most
/// [`MAX_RETURN_PATH_LEN`] [`PLAIN`] bytes, one leading `/`, and no `.` or `..` segment
/// before the query (the only thing resolution would change). Nothing to decode (no `%`),
/// no fragment (no `#`): [`validate_general`] returns such a path unchanged (a property test
/// holds them equal on random inputs).
fn is_plain_path(p: &[u8]) -> bool {
    if p.len() > MAX_RETURN_PATH_LEN || !is_single_slash_path(p) {
        return false;
    }
    // Branch-free so it vectorizes.
    let plain = p.iter().fold(true, |ok, &b| ok & PLAIN[b as usize]);
    if !plain {
        return false;
    }
    let path = p.split(|&b| b == b'?').next().unwrap_or_default();
    !path
        .split(|&b| b == b'/')
        .any(|seg| seg == b"." || seg == b"..")
}

/// The fast path of the mint's return path: `referer` is `cache_origin` (serialized, as the
/// layer's allowlist holds it) then `/c/s/` or `/c/`, `publisher_authority` and a plain path
/// without a query ([`is_plain_path`]): that path, a slice of `referer`. `None` says nothing
/// (the caller goes on with [`return_path_from_referer_cow`]), and where this answers, that
/// general code answers the same (held equal by a differential test in `handoff::mint`).
pub(crate) fn plain_cache_page_path<'r>(
    referer: &'r str,
    cache_origin: &str,
    publisher_authority: &str,
) -> Option<&'r str> {
    let rest = referer.strip_prefix(cache_origin)?;
    let rest = rest
        .strip_prefix("/c/s/")
        .or_else(|| rest.strip_prefix("/c/"))?;
    let path = rest.strip_prefix(publisher_authority)?;
    (path.starts_with('/') && !path.contains('?') && is_plain_path(path.as_bytes())).then_some(path)
}

/// [`validate_return_path`] without the fast path: the WHATWG resolution and every check.
fn validate_general(candidate: &str, publisher_origin: &Url) -> Result<String, ReturnPathError> {
    if !is_http_origin(publisher_origin) {
        return Err(ReturnPathError::InvalidOrigin);
    }
    if candidate.is_empty() {
        return Err(ReturnPathError::Empty);
    }
    if candidate.len() > MAX_RETURN_PATH_LEN {
        return Err(ReturnPathError::TooLong);
    }
    // The WHATWG parser silently drops tabs and newlines and trims spaces, so
    // anything outside printable ASCII could change meaning; refuse it.
    if !candidate.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ReturnPathError::InvalidCharacter);
    }
    if candidate.contains('\\') {
        return Err(ReturnPathError::Backslash);
    }
    if !is_single_slash_path(candidate.as_bytes()) {
        return Err(ReturnPathError::NotSingleSlash);
    }
    check_decoded(candidate.as_bytes())?;

    let resolved = publisher_origin
        .join(candidate)
        .map_err(|_| ReturnPathError::Unparsable)?;
    // `/..//evil.com` resolves to the path `//evil.com`, which a browser reads
    // as another host when sent back as a relative Location.
    if resolved.origin() != publisher_origin.origin()
        || !is_single_slash_path(resolved.path().as_bytes())
    {
        return Err(ReturnPathError::NotSameOrigin);
    }
    let mut out = resolved.path().to_owned();
    if let Some(query) = resolved.query() {
        out.push('?');
        out.push_str(query);
    }
    if out.len() > MAX_RETURN_PATH_LEN {
        return Err(ReturnPathError::TooLong);
    }
    // Dot-segment removal can expose an encoded prefix (`/%2e%2e/%2fevil`
    // becomes `/%2fevil`), so the output passes the same checks as the input.
    if out.contains('\\') || !out.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ReturnPathError::InvalidCharacter);
    }
    check_decoded(out.as_bytes())?;
    Ok(out)
}

/// Starts with `/` and not `//`.
fn is_single_slash_path(p: &[u8]) -> bool {
    p.first() == Some(&b'/') && p.get(1) != Some(&b'/')
}

/// Percent-decodes a few times; every layer must stay a single-`/` path with
/// no `\` and no control character.
fn check_decoded(raw: &[u8]) -> Result<(), ReturnPathError> {
    let mut layer = raw.to_vec();
    for _ in 0..DECODE_ROUNDS {
        let decoded: Vec<u8> = percent_decode(&layer).collect();
        if decoded == layer {
            break;
        }
        let unsafe_byte = decoded.iter().any(|&b| b == b'\\' || b.is_ascii_control());
        if unsafe_byte || !is_single_slash_path(&decoded) {
            return Err(ReturnPathError::UnsafeEncoding);
        }
        layer = decoded;
    }
    Ok(())
}

/// The default return path for a handoff, taken from the `Referer` of the
/// state-changing request.
///
/// - A Referer on the publisher origin gives its own path and query.
/// - A Referer on an AMP cache (its `host[:port]` accepted by
///   `cache_host_matches`) whose path is `/c/s/<publisher host>/<path>` (`/c/`
///   for an http origin) gives `/<path>` and the query, provided the publisher
///   host in the path is `publisher_origin`'s (ASCII case-insensitive, default
///   port optional).
///
/// The result always went through [`validate_return_path`]; anything else is
/// `None` (the caller then uses `/`).
///
/// ```
/// use tower_amp_session::return_path::return_path_from_referer;
///
/// let origin = url::Url::parse("https://shop.example/").unwrap();
/// let on_cache = |host: &str| host == "shop-example.cdn.ampproject.org";
/// assert_eq!(
///     return_path_from_referer(
///         "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3?x=1",
///         &origin,
///         on_cache,
///     )
///     .as_deref(),
///     Some("/products/3?x=1")
/// );
/// assert_eq!(return_path_from_referer("https://evil.com/c/s/shop.example/", &origin, on_cache), None);
/// ```
#[must_use]
pub fn return_path_from_referer(
    referer: &str,
    publisher_origin: &Url,
    cache_host_matches: impl Fn(&str) -> bool,
) -> Option<String> {
    return_path_from_referer_cow(referer, publisher_origin, cache_host_matches).map(Cow::into_owned)
}

/// [`return_path_from_referer`], borrowing from `referer` when the return path is a slice
/// of it (the usual case: a plain cache page URL).
pub(crate) fn return_path_from_referer_cow<'r>(
    referer: &'r str,
    publisher_origin: &Url,
    cache_host_matches: impl Fn(&str) -> bool,
) -> Option<Cow<'r, str>> {
    match PlainReferer::parse(referer) {
        Some(plain) => from_referer_parts(&plain.parts(), publisher_origin, cache_host_matches),
        None => referer_general(referer, publisher_origin, cache_host_matches)
            .map(|p| Cow::Owned(p.into_owned())),
    }
}

/// The return path from the URL of the page a form was on, as amp-form's `SOURCE_URL`
/// fills it in: the page's path and query on the publisher origin, so a form on
/// `/products/6?color=red` lands back on `/products/6?color=red` (`SOURCE_PATH` drops the
/// query).
///
/// Both forms are read, with the same rules as [`return_path_from_referer`]: the origin URL
/// (`https://shop.example/products/6?color=red`, what the runtime gives on the origin and,
/// rebuilt from the `/c/s/<host>/` path, on a cache) and the cache URL
/// (`https://<cache host>/c/s/shop.example/products/6?color=red`). The parameters the AMP
/// runtime and caches add to a page's URL are removed from the query: `amp_js*`, `amp_gsa`,
/// `amp_r`, `amp_kit`, `usqp` (what amphtml's `removeAmpJsParamsFromSearch` removes in
/// `src/url.js` `getSourceUrl`) and `__amp_source_origin`. A value that is not such a URL is
/// `None` (the caller then uses the next source).
///
/// ```
/// use tower_amp_session::return_path::return_path_from_source_url;
///
/// let origin = url::Url::parse("https://shop.example/").unwrap();
/// let on_cache = |host: &str| host == "shop-example.cdn.ampproject.org";
/// for source in [
///     "https://shop.example/products/6?color=red&amp_js_v=0.1",
///     "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/6?usqp=mq331AQ&color=red",
/// ] {
///     assert_eq!(
///         return_path_from_source_url(source, &origin, on_cache).as_deref(),
///         Some("/products/6?color=red")
///     );
/// }
/// assert_eq!(return_path_from_source_url("https://evil.example/", &origin, on_cache), None);
/// assert_eq!(return_path_from_source_url("/products/6", &origin, on_cache), None);
/// ```
#[must_use]
pub fn return_path_from_source_url(
    source_url: &str,
    publisher_origin: &Url,
    cache_host_matches: impl Fn(&str) -> bool,
) -> Option<String> {
    return_path_from_source_url_cow(source_url, publisher_origin, cache_host_matches)
        .map(Cow::into_owned)
}

/// [`return_path_from_source_url`], borrowing from `source_url` when it can.
pub(crate) fn return_path_from_source_url_cow<'s>(
    source_url: &'s str,
    publisher_origin: &Url,
    cache_host_matches: impl Fn(&str) -> bool,
) -> Option<Cow<'s, str>> {
    // An absolute http(s) URL only: a bare path is `SOURCE_PATH`'s, read elsewhere.
    let scheme = source_url.get(..8).unwrap_or(source_url);
    let absolute = scheme.eq_ignore_ascii_case("https://")
        || scheme
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if !absolute {
        return None;
    }
    let path = return_path_from_referer_cow(source_url, publisher_origin, cache_host_matches)?;
    let stripped = without_amp_params(path);
    // Removing whole `&`-separated pairs keeps the path valid; checked again all the same.
    validate_return_path_cow(stripped, publisher_origin).ok()
}

/// Whether a query pair is a parameter the AMP runtime or a cache adds to a page URL (not
/// the shopper's): its name, percent-decoded, is `amp_js…`, `amp_gsa`, `amp_r`, `amp_kit`,
/// `usqp` or `__amp_source_origin`.
fn is_amp_param(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or_default();
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    name.starts_with("amp_js")
        || matches!(
            &*name,
            "amp_gsa" | "amp_r" | "amp_kit" | "usqp" | "__amp_source_origin"
        )
}

/// `path` without the AMP runtime's query parameters ([`is_amp_param`]); the other pairs are
/// kept byte for byte, in order, and the `?` goes when nothing is left.
pub(crate) fn without_amp_params(path: Cow<'_, str>) -> Cow<'_, str> {
    let Some((before, query)) = path.split_once('?') else {
        return path;
    };
    if !query.split('&').any(is_amp_param) {
        return path;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !is_amp_param(p)).collect();
    if kept.is_empty() {
        return Cow::Owned(before.to_owned());
    }
    Cow::Owned(format!("{before}?{}", kept.join("&")))
}

/// [`return_path_from_referer`] without the fast path: the `Referer` parsed by the WHATWG
/// URL parser.
fn referer_general(
    referer: &str,
    publisher_origin: &Url,
    cache_host_matches: impl Fn(&str) -> bool,
) -> Option<Cow<'static, str>> {
    let referer = Url::parse(referer).ok()?;
    if !matches!(referer.scheme(), "http" | "https")
        || !referer.username().is_empty()
        || referer.password().is_some()
    {
        return None;
    }
    let host = referer.host_str()?;
    let authority = match referer.port() {
        Some(port) => Cow::Owned(format!("{host}:{port}")),
        None => Cow::Borrowed(host),
    };
    let parts = RefererParts {
        scheme: referer.scheme(),
        host,
        port: referer.port_or_known_default(),
        authority: &authority,
        path: referer.path(),
        query: referer.query(),
        tail: &referer[url::Position::BeforePath..url::Position::AfterQuery],
    };
    from_referer_parts(&parts, publisher_origin, cache_host_matches)
        .map(|p| Cow::Owned(p.into_owned()))
}

/// What [`return_path_from_referer`] needs of a parsed http(s) `Referer` without userinfo.
#[derive(Debug, PartialEq, Eq)]
struct RefererParts<'a> {
    scheme: &'a str,
    /// As the WHATWG parser serializes it (lowercase, IDNA applied).
    host: &'a str,
    /// The port, or the scheme's default.
    port: Option<u16>,
    /// `host`, with `:port` unless it is the scheme's default.
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// `path`, then `?` and `query` if there is one: as they follow each other in the URL.
    tail: &'a str,
}

fn from_referer_parts<'a>(
    referer: &RefererParts<'a>,
    publisher_origin: &Url,
    cache_host_matches: impl Fn(&str) -> bool,
) -> Option<Cow<'a, str>> {
    // Tuple origins compare scheme, host and port (default ports filled in).
    let same_origin = referer.scheme == publisher_origin.scheme()
        && Some(referer.host) == publisher_origin.host_str()
        && referer.port == publisher_origin.port_or_known_default();
    // The candidate is the path (on the cache: what follows the publisher host) and the
    // query, which in the URL already follow each other: a slice of it.
    let candidate = if same_origin {
        Cow::Borrowed(referer.tail)
    } else {
        if !cache_host_matches(referer.authority) {
            return None;
        }
        // The `s/` flag is not compared: caches in local testing serve http origins under
        // `/c/s/` too, and the host (with port) is what ties the page to this publisher.
        let (host, _https, rest) = publisher_path_from_cache_path(referer.path)?;
        let scheme = publisher_origin.scheme();
        // Parsing `scheme://host/` compares the way origins compare: case,
        // default ports and IDNA are normalized by the URL parser.
        // The usual case, the publisher's host as written, needs no second parse.
        let same = publisher_origin.port().is_none() && publisher_origin.host_str() == Some(host);
        if !same
            && Url::parse(&format!("{scheme}://{host}/")).ok()?.origin()
                != publisher_origin.origin()
        {
            return None;
        }
        match (rest.is_empty(), referer.query) {
            // `rest` ends `path`, which `tail` starts with.
            (false, _) => Cow::Borrowed(&referer.tail[referer.path.len() - rest.len()..]),
            (true, None) => Cow::Borrowed("/"),
            (true, Some(query)) => Cow::Owned(format!("/?{query}")),
        }
    };
    validate_return_path_cow(candidate, publisher_origin).ok()
}

/// A `Referer` the WHATWG parser would leave exactly as it is, split without it: `http://`
/// or `https://` (lowercase), a host of lowercase ASCII labels (letters, digits, `-`; none
/// empty, none `xn--`, the last one starting with a letter so it is never read as an IPv4
/// number), an optional port that is not the default (no leading zero), then nothing or a
/// [`is_plain_path`]-style path and query (no `%`, no `#`, no dot segment). Anything else is
/// left to the parser (a property test holds the two equal on random inputs).
struct PlainReferer<'a> {
    https: bool,
    host: &'a str,
    port: Option<u16>,
    authority: &'a str,
    path_and_query: &'a str,
}

impl<'a> PlainReferer<'a> {
    fn parse(referer: &'a str) -> Option<Self> {
        let (https, rest) = match referer.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, referer.strip_prefix("http://")?),
        };
        let end = rest.find('/').unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(end);
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if !is_plain_host(host.as_bytes()) {
            return None;
        }
        let port = match port {
            None => None,
            Some(p) => {
                let ok = (1..=5).contains(&p.len())
                    && !p.starts_with('0')
                    && p.bytes().all(|b| b.is_ascii_digit());
                let n: u16 = if ok { p.parse().ok()? } else { return None };
                if n == if https { 443 } else { 80 } {
                    return None;
                }
                Some(n)
            }
        };
        if !path_and_query.is_empty() && !is_plain_path(path_and_query.as_bytes()) {
            return None;
        }
        Some(PlainReferer {
            https,
            host,
            port,
            authority,
            path_and_query,
        })
    }

    fn parts(&self) -> RefererParts<'a> {
        let (path, query) = match self.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None if self.path_and_query.is_empty() => ("/", None),
            None => (self.path_and_query, None),
        };
        RefererParts {
            scheme: if self.https { "https" } else { "http" },
            host: self.host,
            port: Some(self.port.unwrap_or(if self.https { 443 } else { 80 })),
            authority: self.authority,
            path,
            query,
            tail: if self.path_and_query.is_empty() {
                "/"
            } else {
                self.path_and_query
            },
        }
    }
}

/// An http(s) origin that URL parsing and serialization leave as it is: lower-case ASCII
/// labels of letters, digits and `-` (none empty, none punycode `xn--`, which IDNA checks),
/// the last starting with a letter (so never read as an IPv4 number), and no port or a
/// canonical non-default one.
pub(crate) fn is_plain_origin(origin: &str) -> bool {
    let (rest, default_port) = if let Some(r) = origin.strip_prefix("https://") {
        (r.as_bytes(), &b"443"[..])
    } else if let Some(r) = origin.strip_prefix("http://") {
        (r.as_bytes(), &b"80"[..])
    } else {
        return false;
    };
    let (host, port) = match rest.iter().position(|&b| b == b':') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    // The same host rule as a plain `Referer` at mint.
    if !is_plain_host(host) {
        return false;
    }
    port.is_none_or(|p| {
        !p.is_empty()
            && p[0] != b'0'
            && p.len() <= 5
            && p.iter().all(u8::is_ascii_digit)
            && p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
            && p != default_port
    })
}

/// Lowercase ASCII labels of letters, digits and `-`, none empty, none starting with `xn--`
/// (punycode, which IDNA checks), the last starting with a letter (never an IPv4 number).
pub(crate) fn is_plain_host(host: &[u8]) -> bool {
    let mut last_first = 0u8;
    for label in host.split(|&b| b == b'.') {
        let ok = !label.is_empty()
            && !label.starts_with(b"xn--")
            && label
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return false;
        }
        last_first = label[0];
    }
    last_first.is_ascii_lowercase()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn shop() -> Url {
        Url::parse("https://shop.example/").unwrap()
    }

    fn local() -> Url {
        Url::parse("http://shop.localhost:8080/").unwrap()
    }

    /// Open-redirect payloads: every row must be refused, with this reason.
    const REJECTED: &[(&str, ReturnPathError)] = &[
        ("//evil.com", ReturnPathError::NotSingleSlash),
        ("///evil.com", ReturnPathError::NotSingleSlash),
        ("/\\evil.com", ReturnPathError::Backslash),
        ("\\\\evil.com", ReturnPathError::Backslash),
        ("\\/evil.com", ReturnPathError::Backslash),
        ("/%5Cevil.com", ReturnPathError::UnsafeEncoding),
        ("/%5cevil.com", ReturnPathError::UnsafeEncoding),
        ("/%255Cevil.com", ReturnPathError::UnsafeEncoding),
        ("/%2F%2Fevil.com", ReturnPathError::UnsafeEncoding),
        ("/%2f%2fevil.com", ReturnPathError::UnsafeEncoding),
        ("/%2F/evil.com", ReturnPathError::UnsafeEncoding),
        ("/%252F%252Fevil.com", ReturnPathError::UnsafeEncoding),
        ("%2F%2Fevil.com", ReturnPathError::NotSingleSlash),
        ("https:evil.com", ReturnPathError::NotSingleSlash),
        ("http:/\\/evil.com", ReturnPathError::Backslash),
        ("https://evil.com", ReturnPathError::NotSingleSlash),
        ("https://shop.example/", ReturnPathError::NotSingleSlash),
        ("javascript:alert(1)", ReturnPathError::NotSingleSlash),
        ("data:text/html,x", ReturnPathError::NotSingleSlash),
        ("/x\ty", ReturnPathError::InvalidCharacter),
        ("/\t/evil.com", ReturnPathError::InvalidCharacter),
        ("/x\ry", ReturnPathError::InvalidCharacter),
        ("/x\ny", ReturnPathError::InvalidCharacter),
        ("/\n/evil.com", ReturnPathError::InvalidCharacter),
        ("/x\u{0}", ReturnPathError::InvalidCharacter),
        ("/x\u{7f}", ReturnPathError::InvalidCharacter),
        ("/%0d%0aSet-Cookie:x=1", ReturnPathError::UnsafeEncoding),
        ("/%0D%0ASet-Cookie:x=1", ReturnPathError::UnsafeEncoding),
        ("/%00", ReturnPathError::UnsafeEncoding),
        ("/%09/evil.com", ReturnPathError::UnsafeEncoding),
        ("/%7f", ReturnPathError::UnsafeEncoding),
        ("/x?next=%0a", ReturnPathError::UnsafeEncoding),
        ("target.com@evil.com", ReturnPathError::NotSingleSlash),
        ("//target.com@evil.com", ReturnPathError::NotSingleSlash),
        ("evil%E3%80%82com", ReturnPathError::NotSingleSlash),
        ("//evil%E3%80%82com", ReturnPathError::NotSingleSlash),
        ("/.//evil.com", ReturnPathError::NotSameOrigin),
        ("/..//evil.com", ReturnPathError::NotSameOrigin),
        ("/x/..//evil.com", ReturnPathError::NotSameOrigin),
        ("/%2e%2e//evil.com", ReturnPathError::NotSameOrigin),
        ("/%2e//evil.com", ReturnPathError::NotSameOrigin),
        ("/%2e%2e/%2fevil.com", ReturnPathError::UnsafeEncoding),
        ("", ReturnPathError::Empty),
        (" /x", ReturnPathError::InvalidCharacter),
        ("/x ", ReturnPathError::InvalidCharacter),
        ("/caf\u{e9}", ReturnPathError::InvalidCharacter),
        ("/evil\u{3002}com", ReturnPathError::InvalidCharacter),
        ("/\u{ff0f}evil.com", ReturnPathError::InvalidCharacter),
        ("?x=1", ReturnPathError::NotSingleSlash),
        ("#x", ReturnPathError::NotSingleSlash),
        ("x", ReturnPathError::NotSingleSlash),
        ("evil.com", ReturnPathError::NotSingleSlash),
    ];

    #[test]
    fn open_redirect_payloads_are_rejected() {
        for origin in [shop(), local()] {
            for (payload, reason) in REJECTED {
                assert_eq!(
                    validate_return_path(payload, &origin).as_ref(),
                    Err(reason),
                    "payload {payload:?} on {origin}"
                );
            }
        }
    }

    /// Safe paths and their normalized form.
    const ACCEPTED: &[(&str, &str)] = &[
        ("/", "/"),
        ("/cart", "/cart"),
        ("/products/3?x=1&y=%20", "/products/3?x=1&y=%20"),
        ("/a/../b", "/b"),
        ("/a/./b/", "/a/b/"),
        ("/../../etc", "/etc"),
        ("/%2e%2e/x", "/x"),
        // A path segment that merely looks like a host stays on the origin.
        ("/@evil.com", "/@evil.com"),
        ("/evil.com", "/evil.com"),
        ("/x#//evil", "/x"),
        ("/x#", "/x"),
        ("/x?", "/x?"),
        ("/x?next=//evil.com", "/x?next=//evil.com"),
        ("/x?next=https://evil.com", "/x?next=https://evil.com"),
        ("/%E3%80%82", "/%E3%80%82"),
        ("/a%2Fb", "/a%2Fb"),
        ("/%25", "/%25"),
        ("/50%off", "/50%off"),
        ("/q?a=<b>", "/q?a=%3Cb%3E"),
        ("/\"x\"", "/%22x%22"),
        ("/a:b", "/a:b"),
    ];

    #[test]
    fn safe_paths_are_accepted_and_normalized() {
        for origin in [shop(), local()] {
            for (candidate, expected) in ACCEPTED {
                assert_eq!(
                    validate_return_path(candidate, &origin).as_deref(),
                    Ok(*expected),
                    "candidate {candidate:?} on {origin}"
                );
            }
        }
    }

    #[test]
    fn length_cap() {
        let at_cap = format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN - 1));
        let over = format!("/{}", "a".repeat(MAX_RETURN_PATH_LEN));
        // Fits raw but grows past the cap once percent-encoded.
        let grows = format!("/{}", "\"".repeat(MAX_RETURN_PATH_LEN - 1));
        let rows: [(&str, Result<&str, ReturnPathError>); 3] = [
            (&at_cap, Ok(&at_cap)),
            (&over, Err(ReturnPathError::TooLong)),
            (&grows, Err(ReturnPathError::TooLong)),
        ];
        for (candidate, expected) in rows {
            assert_eq!(
                validate_return_path(candidate, &shop())
                    .as_deref()
                    .map_err(Clone::clone),
                expected,
                "length {}",
                candidate.len()
            );
        }
    }

    #[test]
    fn non_http_origin_is_refused() {
        for origin in ["data:text/plain,x", "file:///tmp/", "mailto:a@b.example"] {
            let origin = Url::parse(origin).unwrap();
            assert_eq!(
                validate_return_path("/", &origin),
                Err(ReturnPathError::InvalidOrigin),
                "origin {origin}"
            );
        }
    }

    /// Pieces that open redirects are made of; the property test below glues
    /// them together in every order.
    const TOKENS: &[&str] = &[
        "/",
        "//",
        "\\",
        ".",
        "..",
        "%2f",
        "%2F",
        "%5c",
        "%2e",
        "%25",
        "%",
        "@",
        ":",
        "?",
        "#",
        "evil.com",
        "a",
        "http:",
        "https:",
        "\t",
        " ",
        "%0a",
        "%00",
        "\u{3002}",
        "%E3%80%82",
        "shop.example",
        ";",
        "&",
        "=",
        "~",
    ];

    /// Whatever is accepted resolves on the origin, stays a single-`/` path,
    /// and is a fixed point of validation.
    fn assert_accepted_is_safe(candidate: &str, origin: &Url) -> bool {
        let accepted = validate_return_path(candidate, origin);
        if let Ok(path) = &accepted {
            let joined = origin.join(path).unwrap();
            assert_eq!(
                joined.origin(),
                origin.origin(),
                "{candidate:?} -> {path:?}"
            );
            assert!(
                is_single_slash_path(joined.path().as_bytes()),
                "{candidate:?} -> {path:?}"
            );
            assert!(path.starts_with('/') && !path.starts_with("//"), "{path:?}");
            assert_eq!(
                validate_return_path(path, origin).as_deref(),
                Ok(path.as_str()),
                "{candidate:?} is not idempotent"
            );
        }
        accepted.is_ok()
    }

    #[test]
    fn property_every_short_token_sequence() {
        let mut accepted = 0usize;
        for origin in [shop(), local()] {
            for a in TOKENS {
                for b in TOKENS {
                    for c in TOKENS {
                        for s in [format!("{a}{b}{c}"), format!("/{a}{b}{c}")] {
                            accepted += usize::from(assert_accepted_is_safe(&s, &origin));
                        }
                    }
                }
            }
        }
        // Not vacuous: plenty of the combinations are legitimate paths.
        assert!(accepted > 10_000, "only {accepted} accepted");
    }

    #[test]
    fn property_random_token_sequences() {
        // xorshift64: deterministic, dependency-free pseudo-randomness.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let origin = shop();
        let mut accepted = 0usize;
        for _ in 0..50_000 {
            let len = next() % 10;
            let mut s = String::from("/");
            for _ in 0..len {
                let i = (next() % TOKENS.len() as u64) as usize;
                s.push_str(TOKENS.get(i).copied().unwrap_or_default());
            }
            accepted += usize::from(assert_accepted_is_safe(&s, &origin));
        }
        assert!(accepted > 5_000, "only {accepted} accepted");
    }

    fn on_cache(host: &str) -> bool {
        host == "shop-example.cdn.ampproject.org"
            || host == "shop-localhost.cdn.ampproject.org"
            || host == "shop-example.www.bing-amp.com"
    }

    const REFERERS: &[(&str, Option<&str>)] = &[
        // Cache pages of this publisher.
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3?x=1",
            Some("/products/3?x=1"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3?x=1#reviews",
            Some("/products/3?x=1"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example",
            Some("/"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example?x=1",
            Some("/?x=1"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/SHOP.EXAMPLE/a/../b",
            Some("/b"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example:443/p",
            Some("/p"),
        ),
        (
            "https://shop-example.www.bing-amp.com/c/s/shop.example/p",
            Some("/p"),
        ),
        // The origin itself.
        ("https://shop.example/cart?step=2", Some("/cart?step=2")),
        ("https://shop.example/", Some("/")),
        ("https://SHOP.example:443/x#frag", Some("/x")),
        // Other publisher, scheme or port in the cache path.
        (
            "https://shop-example.cdn.ampproject.org/c/s/evil.example/p",
            None,
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/shop.example/p",
            Some("/p"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example:8443/p",
            None,
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example.evil.com/p",
            None,
        ),
        // Foreign hosts, even with a matching cache path.
        ("https://evil.com/c/s/shop.example/p", None),
        ("https://evil.com/cart", None),
        ("http://shop.example/cart", None),
        ("https://shop.example:8443/cart", None),
        // Cache origin only (what `strict-origin-when-cross-origin` sends).
        ("https://shop-example.cdn.ampproject.org/", None),
        ("https://shop-example.cdn.ampproject.org/products/3", None),
        // Paths that would be open redirects once on the origin.
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example//evil.com",
            None,
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/%2F%2Fevil.com",
            None,
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/%5Cevil.com",
            None,
        ),
        ("https://shop.example//evil.com", None),
        ("https://shop.example/.//evil.com", None),
        // Malformed.
        ("", None),
        ("not a url", None),
        ("/products/3", None),
        ("javascript:alert(1)", None),
        ("https://user:pw@shop.example/x", None),
        (
            "https://shop-example.cdn.ampproject.org/c/s/user@shop.example/p",
            None,
        ),
    ];

    #[test]
    fn referer_table() {
        let origin = shop();
        for (referer, expected) in REFERERS {
            assert_eq!(
                return_path_from_referer(referer, &origin, on_cache).as_deref(),
                *expected,
                "referer {referer:?}"
            );
        }
    }

    #[test]
    fn referer_table_http_origin_with_port() {
        const ROWS: &[(&str, Option<&str>)] = &[
            (
                "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080/p?q",
                Some("/p?q"),
            ),
            ("http://shop.localhost:8080/cart", Some("/cart")),
            // SPEC section 8: the local cache serves the http origin under `/c/s/` too.
            (
                "https://shop-localhost.cdn.ampproject.org/c/s/shop.localhost:8080/p",
                Some("/p"),
            ),
            (
                "https://shop-localhost.cdn.ampproject.org/c/shop.localhost/p",
                None,
            ),
            ("http://shop.localhost:8081/cart", None),
        ];
        let origin = local();
        for (referer, expected) in ROWS {
            assert_eq!(
                return_path_from_referer(referer, &origin, on_cache).as_deref(),
                *expected,
                "referer {referer:?}"
            );
        }
    }

    #[test]
    fn cache_host_predicate_sees_host_and_port() {
        let seen = std::cell::RefCell::new(Vec::new());
        let origin = shop();
        let result = return_path_from_referer(
            "https://cache.localhost:8081/c/s/shop.example/x",
            &origin,
            |h: &str| {
                seen.borrow_mut().push(h.to_owned());
                h == "cache.localhost:8081"
            },
        );
        assert_eq!(result.as_deref(), Some("/x"));
        assert_eq!(seen.into_inner(), ["cache.localhost:8081"]);
    }

    #[test]
    fn errors_display_short_lowercase() {
        const ALL: &[ReturnPathError] = &[
            ReturnPathError::Empty,
            ReturnPathError::TooLong,
            ReturnPathError::InvalidCharacter,
            ReturnPathError::Backslash,
            ReturnPathError::NotSingleSlash,
            ReturnPathError::UnsafeEncoding,
            ReturnPathError::NotSameOrigin,
            ReturnPathError::Unparsable,
            ReturnPathError::InvalidOrigin,
        ];
        for e in ALL {
            let s = e.to_string();
            assert!(
                s.starts_with("return path") || s.starts_with("publisher"),
                "{s}"
            );
            assert_eq!(s, s.to_lowercase(), "{s}");
        }
    }

    // Differential tests of the fast paths against the general code (SPEC section 7: fast
    // paths only where a differential test holds them equal on many random inputs).

    /// Cases per differential property: 4 096 by default (seconds in a debug build);
    /// `AMP_DIFF_CASES=200000 cargo test --release --lib fast_` for a long run.
    pub(crate) fn diff_cases() -> proptest::prelude::ProptestConfig {
        let cases = std::env::var("AMP_DIFF_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(4096);
        proptest::prelude::ProptestConfig::with_cases(cases)
    }

    /// Path pieces near the edge of the fast path: every plain byte class, dot segments,
    /// and bytes it leaves to the parser.
    const PATH_PIECES: &[&str] = &[
        "/",
        "/",
        "a",
        "Z",
        "9",
        "-",
        ".",
        "..",
        "_",
        "~",
        "!",
        "$",
        "&",
        "'",
        "(",
        ")",
        "*",
        "+",
        ",",
        ";",
        "=",
        ":",
        "@",
        "?",
        "#",
        "%",
        "%2e",
        "%2F",
        "%41",
        "\\",
        "\"",
        "<",
        ">",
        "`",
        "{",
        "}",
        "|",
        "^",
        "[",
        "]",
        " ",
        "\t",
        "\n",
        "\u{7f}",
        "\u{e9}",
        "//",
        "/./",
        "/../",
        "/.",
        "/..",
        "shop.example",
        "evil.com",
    ];

    fn path_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            prop::collection::vec(prop::sample::select(PATH_PIECES), 0..12)
                .prop_map(|v| v.concat()),
            "/[-a-zA-Z0-9._~!$&'()*+,;=:@/?]{0,30}",
            "/[ -~]{0,30}",
            any::<String>(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(diff_cases())]

        /// The fast path answers exactly what the WHATWG resolution and every check answer.
        #[test]
        fn fast_return_path_agrees_with_the_general_code(c in path_like()) {
            for origin in [shop(), local()] {
                let general = validate_general(&c, &origin);
                if is_plain_path(c.as_bytes()) {
                    proptest::prop_assert_eq!(general.as_deref(), Ok(c.as_str()), "{:?}", c);
                }
                proptest::prop_assert_eq!(validate_return_path(&c, &origin), general.clone(), "{:?}", c);
                let cow = validate_return_path_cow(Cow::Borrowed(&c), &origin);
                proptest::prop_assert_eq!(cow.map(Cow::into_owned), general, "{:?}", c);
            }
        }
    }

    /// Scheme and authority pieces for `Referer`s: plain ones, and every way out of the fast
    /// path (case, IDNA, numbers, default and odd ports, userinfo, IPv6, empty labels).
    const AUTHORITIES: &[&str] = &[
        "https://shop-example.cdn.ampproject.org",
        "https://shop-localhost.cdn.ampproject.org",
        "http://shop-example.cache.localhost:8081",
        "https://shop.example",
        "http://shop.localhost:8080",
        "https://shop.example:443",
        "http://shop.example:80",
        "https://shop.example:8443",
        "https://shop.example:08443",
        "https://shop.example:0",
        "https://shop.example:",
        "https://shop.example:99999",
        "https://SHOP.example",
        "HTTPS://shop.example",
        "https://xn--shp-sna.example",
        "https://xn--a.example",
        "https://a.xn--p1ai",
        "https://1.2.3.4",
        "https://shop.0x10",
        "https://shop.123",
        "https://shop.example.",
        "https://shop..example",
        "https://-shop-.example",
        "https://user:pw@shop.example",
        "https://user@shop.example",
        "https://[::1]",
        "https://sh_op.example",
        "https://shop%2eexample",
        "https:shop.example",
        "https:/shop.example",
        "ftp://shop.example",
        "",
    ];

    fn referer_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            (prop::sample::select(AUTHORITIES), path_like()).prop_map(|(a, p)| format!("{a}{p}")),
            (
                prop::sample::select(AUTHORITIES),
                prop::sample::select(vec!["/c/s/", "/c/", "/i/s/", "/"]),
                prop::sample::select(vec![
                    "shop.example",
                    "shop.localhost:8080",
                    "SHOP.example",
                    "evil.com",
                    "shop.example:443"
                ]),
                path_like(),
            )
                .prop_map(|(a, k, h, p)| format!("{a}{k}{h}{p}")),
            ("(https?://)?[a-zA-Z0-9.:@_-]{0,20}", path_like())
                .prop_map(|(a, p)| format!("{a}{p}")),
        ]
    }

    /// The return path from a `Referer` as it was first built, by copies: the WHATWG parse,
    /// then path (or what follows the publisher host) and query pushed into a new string.
    fn referer_by_copies(referer: &str, origin: &Url) -> Option<String> {
        let url = Url::parse(referer).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let same_origin = url.origin() == origin.origin();
        let mut candidate = if same_origin {
            url.path().to_owned()
        } else {
            if !on_cache(&authority) {
                return None;
            }
            let (host, _, rest) = publisher_path_from_cache_path(url.path())?;
            let page = Url::parse(&format!("{}://{host}/", origin.scheme())).ok()?;
            if page.origin() != origin.origin() {
                return None;
            }
            if rest.is_empty() {
                "/".to_owned()
            } else {
                rest.to_owned()
            }
        };
        if let Some(query) = url.query() {
            candidate.push('?');
            candidate.push_str(query);
        }
        validate_general(&candidate, origin).ok()
    }

    proptest::proptest! {
        #![proptest_config(diff_cases())]

        /// What the fast split accepts, the WHATWG parser parses to the same parts; and the
        /// return path is the same with or without the fast split.
        #[test]
        fn fast_referer_agrees_with_the_url_parser(r in referer_like()) {
            if let Some(plain) = PlainReferer::parse(&r) {
                let url = Url::parse(&r);
                proptest::prop_assert!(url.is_ok(), "{:?}: {:?}", r, url);
                let url = url.unwrap();
                proptest::prop_assert!(url.username().is_empty() && url.password().is_none());
                proptest::prop_assert_eq!(url.fragment(), None);
                let authority = match url.port() {
                    Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_owned(),
                };
                let want = RefererParts {
                    scheme: url.scheme(),
                    host: url.host_str().unwrap_or_default(),
                    port: url.port_or_known_default(),
                    authority: &authority,
                    path: url.path(),
                    query: url.query(),
                    tail: &url[url::Position::BeforePath..url::Position::AfterQuery],
                };
                proptest::prop_assert_eq!(plain.parts(), want, "{:?}", r);
            }
            for origin in [shop(), local()] {
                proptest::prop_assert_eq!(
                    return_path_from_referer(&r, &origin, on_cache),
                    referer_by_copies(&r, &origin),
                    "{:?}", r
                );
                proptest::prop_assert_eq!(
                    return_path_from_referer(&r, &origin, on_cache),
                    referer_general(&r, &origin, on_cache).map(Cow::into_owned),
                    "{:?}", r
                );
            }
        }
    }

    #[test]
    fn fast_paths_take_the_usual_inputs() {
        for p in [
            "/",
            "/products/3",
            "/products/3?x=1&y=2",
            "/a:b/@c",
            "/cart?",
        ] {
            assert!(is_plain_path(p.as_bytes()), "{p}");
        }
        for p in [
            "//x", "/a/./b", "/a/..", "/%41", "/x#y", "/x y", "/q?a='b'", "x",
        ] {
            assert!(!is_plain_path(p.as_bytes()), "{p}");
        }
        for r in [
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3",
            "https://shop-example.cdn.ampproject.org/",
            "https://shop-example.cdn.ampproject.org",
            "http://shop-example.cache.localhost:8081/c/s/shop.example/p?q=1",
        ] {
            assert!(PlainReferer::parse(r).is_some(), "{r}");
        }
        for r in [
            "https://SHOP.example/",
            "https://shop.example:443/",
            "https://user@shop.example/",
            "https://1.2.3.4/",
            "https://shop.example/a/../b",
            "https://shop.example/x#frag",
        ] {
            assert!(PlainReferer::parse(r).is_none(), "{r}");
        }
    }
}

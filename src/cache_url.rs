//! AMP cache URLs: the cache subdomain of a publisher host, and the mapping
//! between a publisher URL and its AMP cache URL (`/c/s/<host>/<path>`).
//!
//! The subdomain algorithm follows the AMP project's reference implementation
//! (amp-toolbox `packages/cache-url/lib/AmpCurlUrlGenerator.js`), including its
//! fallback to a SHA-256 based label.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use idna::AsciiDenyList;
use sha2::{Digest, Sha256};
use url::Url;

/// DNS limit on one label; the AMP algorithm falls back to the hash above it.
const MAX_LABEL_LEN: usize = 63;

/// Why a host or URL could not be mapped to or from the AMP cache.
///
/// ```
/// use tower_amp_session::cache_url::{cache_subdomain, CacheUrlError};
///
/// assert_eq!(cache_subdomain("shop.example:443"), Err(CacheUrlError::HostHasPort));
/// assert_eq!(CacheUrlError::HostHasPort.to_string(), "host must not contain a port");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheUrlError {
    /// The host is the empty string.
    EmptyHost,
    /// The host has a `:port` suffix; pass the bare host name.
    HostHasPort,
    /// The host contains `/`, whitespace or anything else that is not a domain name.
    InvalidHost,
    /// The cache domain (such as `cdn.ampproject.org`) is not a plain host name.
    InvalidCacheDomain,
    /// The URL could not be parsed, or has credentials or no host.
    InvalidUrl,
    /// The URL's scheme is neither `http` nor `https`.
    UnsupportedScheme,
    /// The URL's path is not an AMP cache path (`/c/`, `/i/` or `/r/`).
    NotACacheUrl,
    /// The cache host's first label is not the subdomain of the publisher host in the path.
    SubdomainMismatch,
}

impl fmt::Display for CacheUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyHost => "host is empty",
            Self::HostHasPort => "host must not contain a port",
            Self::InvalidHost => "host is not a valid domain name",
            Self::InvalidCacheDomain => "cache domain is not a valid host name",
            Self::InvalidUrl => "url is not a valid http(s) url",
            Self::UnsupportedScheme => "url scheme must be http or https",
            Self::NotACacheUrl => "url is not an amp cache url",
            Self::SubdomainMismatch => "cache subdomain does not match the publisher host",
        })
    }
}

impl std::error::Error for CacheUrlError {}

/// The kind of resource an AMP cache URL serves, which picks its path prefix.
///
/// ```
/// use tower_amp_session::cache_url::{cache_url, CacheResource};
///
/// let url = cache_url("https://shop.example/logo.png", "cdn.ampproject.org", CacheResource::Image);
/// assert_eq!(
///     url.as_deref(),
///     Ok("https://shop-example.cdn.ampproject.org/i/s/shop.example/logo.png")
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheResource {
    /// An AMP document: `/c/`.
    Page,
    /// An image: `/i/`.
    Image,
    /// A font: `/r/`.
    Font,
}

impl CacheResource {
    fn prefix(self) -> &'static str {
        match self {
            Self::Page => "/c/",
            Self::Image => "/i/",
            Self::Font => "/r/",
        }
    }
}

/// The AMP cache subdomain (the first label of `<sub>.cdn.ampproject.org`) of a
/// publisher host, computed as the AMP project does.
///
/// `host` is a bare host name, ASCII (punycode) or Unicode, in any case; it must
/// not carry a port, a path or whitespace.
///
/// # Errors
///
/// [`CacheUrlError::EmptyHost`], [`CacheUrlError::HostHasPort`], or
/// [`CacheUrlError::InvalidHost`] when IDNA processing refuses the name.
///
/// ```
/// use tower_amp_session::cache_url::cache_subdomain;
///
/// assert_eq!(cache_subdomain("shop.example").as_deref(), Ok("shop-example"));
/// assert_eq!(cache_subdomain("en-us.example.com").as_deref(), Ok("0-en--us-example-com-0"));
/// assert!(cache_subdomain("shop.example/").is_err());
/// ```
pub fn cache_subdomain(host: &str) -> Result<String, CacheUrlError> {
    if host.is_empty() {
        return Err(CacheUrlError::EmptyHost);
    }
    // IPv6 literals contain ':' too; call them invalid, not "has a port".
    if host.contains(['[', ']']) {
        return Err(CacheUrlError::InvalidHost);
    }
    if host.contains(':') {
        return Err(CacheUrlError::HostHasPort);
    }
    if host.contains('/') || host.chars().any(char::is_whitespace) {
        return Err(CacheUrlError::InvalidHost);
    }
    // Same mapping as the WHATWG URL parser: lowercases, maps and punycodes,
    // and refuses forbidden domain code points.
    let ascii = idna::domain_to_ascii_cow(host.as_bytes(), AsciiDenyList::URL)
        .map_err(|_| CacheUrlError::InvalidHost)?
        .into_owned();
    // Empty labels ("a..b", trailing dot) would yield labels no cache serves.
    if ascii.split('.').any(str::is_empty) {
        return Err(CacheUrlError::InvalidHost);
    }
    let (unicode, decoded) = idna::domain_to_unicode(&ascii);
    if decoded.is_err() {
        return Err(CacheUrlError::InvalidHost);
    }

    // amp-toolbox checks eligibility on the (lowercased) ASCII host, and the
    // script mix on its Unicode form.
    let eligible = !has_invalid_hyphen_34(&ascii)
        && ascii.len() <= MAX_LABEL_LEN
        && !(unicode.chars().any(is_ltr) && unicode.chars().any(is_rtl))
        && ascii.contains('.');
    if !eligible {
        return Ok(fallback_subdomain(&ascii));
    }

    let replaced = unicode.replace('-', "--").replace('.', "-");
    let encoded = if replaced.is_ascii() {
        replaced
    } else {
        match idna::punycode::encode_str(&replaced) {
            Some(p) => format!("xn--{p}"),
            None => return Ok(fallback_subdomain(&ascii)),
        }
    }
    .to_ascii_lowercase();

    // amp-toolbox compares with 63 before the `0-`/`-0` wrap; keep that order.
    if encoded.len() > MAX_LABEL_LEN {
        return Ok(fallback_subdomain(&ascii));
    }
    if has_invalid_hyphen_34(&encoded) {
        return Ok(format!("0-{encoded}-0"));
    }
    Ok(encoded)
}

/// Lowercase unpadded base32 of SHA-256 of the ASCII host (52 characters).
fn fallback_subdomain(ascii_host: &str) -> String {
    let digest = Sha256::digest(ascii_host.as_bytes());
    BASE32_NOPAD.encode(&digest).to_ascii_lowercase()
}

/// `--` at positions 3 and 4 is reserved for IDNA (`xn--`); any other prefix
/// there makes an invalid label.
fn has_invalid_hyphen_34(s: &str) -> bool {
    s.get(2..4) == Some("--") && s.get(0..2) != Some("xn")
}

/// amp-toolbox's `LTR_CHARS` class. Its regex runs on UTF-16 code units, so
/// characters outside the BMP (surrogate pairs) match neither class.
fn is_ltr(c: char) -> bool {
    matches!(
        c,
        'A'..='Z'
            | 'a'..='z'
            | '\u{00C0}'..='\u{00D6}'
            | '\u{00D8}'..='\u{00F6}'
            | '\u{00F8}'..='\u{02B8}'
            | '\u{0300}'..='\u{0590}'
            | '\u{0800}'..='\u{1FFF}'
            | '\u{200E}'
            | '\u{2C00}'..='\u{FB1C}'
            | '\u{FE00}'..='\u{FE6F}'
            | '\u{FEFD}'..='\u{FFFF}'
    )
}

/// amp-toolbox's `RTL_CHARS` class.
fn is_rtl(c: char) -> bool {
    matches!(
        c,
        '\u{0591}'..='\u{06EF}'
            | '\u{06FA}'..='\u{07FF}'
            | '\u{200F}'
            | '\u{FB1D}'..='\u{FDFF}'
            | '\u{FE70}'..='\u{FEFC}'
    )
}

/// The AMP cache URL of a publisher URL on the cache at `cache_domain`.
///
/// The publisher's `host[:port]` goes into the path after `/c/` (pages), `/i/`
/// (images) or `/r/` (fonts), with `s/` when the publisher URL is https. Path,
/// query and fragment are kept as the WHATWG URL parser serializes them.
///
/// # Errors
///
/// When `publisher_url` is not an absolute http(s) URL without credentials,
/// when its host has no cache subdomain, or when `cache_domain` is not a plain
/// host name.
///
/// ```
/// use tower_amp_session::cache_url::{cache_url, CacheResource};
///
/// assert_eq!(
///     cache_url("https://shop.example/products/1?x=1", "cdn.ampproject.org", CacheResource::Page)
///         .as_deref(),
///     Ok("https://shop-example.cdn.ampproject.org/c/s/shop.example/products/1?x=1")
/// );
/// assert_eq!(
///     cache_url("http://shop.localhost:8080/", "cdn.ampproject.org", CacheResource::Page)
///         .as_deref(),
///     Ok("https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080/")
/// );
/// ```
pub fn cache_url(
    publisher_url: &str,
    cache_domain: &str,
    kind: CacheResource,
) -> Result<String, CacheUrlError> {
    let cache_domain = normalize_cache_domain(cache_domain)?;
    let url = Url::parse(publisher_url).map_err(|_| CacheUrlError::InvalidUrl)?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(CacheUrlError::UnsupportedScheme),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CacheUrlError::InvalidUrl);
    }
    let host = url.host_str().ok_or(CacheUrlError::InvalidUrl)?;
    let sub = cache_subdomain(host)?;

    let mut out = format!("https://{sub}.{cache_domain}{}", kind.prefix());
    if https {
        out.push_str("s/");
    }
    out.push_str(host);
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    // Path, query and fragment as the parser escaped them.
    out.push_str(url.path());
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = url.fragment() {
        out.push('#');
        out.push_str(f);
    }
    Ok(out)
}

/// Lowercased `cache_domain` when it is a plain ASCII host name.
fn normalize_cache_domain(cache_domain: &str) -> Result<String, CacheUrlError> {
    let ok = !cache_domain.is_empty()
        && cache_domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && cache_domain.split('.').all(|label| !label.is_empty());
    if ok {
        Ok(cache_domain.to_ascii_lowercase())
    } else {
        Err(CacheUrlError::InvalidCacheDomain)
    }
}

/// The publisher URL that an AMP cache URL serves, checked against the cache
/// host: its first label must be [`cache_subdomain`] of the publisher host.
///
/// # Errors
///
/// When the URL does not parse, its path is not `/c/`, `/i/` or `/r/` followed
/// by a publisher host, or [`CacheUrlError::SubdomainMismatch`].
///
/// ```
/// use tower_amp_session::cache_url::publisher_url_from_cache_url;
///
/// assert_eq!(
///     publisher_url_from_cache_url("https://shop-example.cdn.ampproject.org/c/s/shop.example/p?q=1")
///         .as_deref(),
///     Ok("https://shop.example/p?q=1")
/// );
/// // Another publisher's subdomain serving shop.example: refused.
/// assert!(publisher_url_from_cache_url("https://evil-example.cdn.ampproject.org/c/s/shop.example/")
///     .is_err());
/// ```
pub fn publisher_url_from_cache_url(cache_url: &str) -> Result<String, CacheUrlError> {
    let url = Url::parse(cache_url).map_err(|_| CacheUrlError::InvalidUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CacheUrlError::UnsupportedScheme);
    }
    let cache_host = url.host_str().ok_or(CacheUrlError::InvalidUrl)?;
    let (host, https, rest) =
        publisher_path_from_cache_path(url.path()).ok_or(CacheUrlError::NotACacheUrl)?;
    let scheme = if https { "https" } else { "http" };
    let mut publisher = format!("{scheme}://{host}{rest}");
    if let Some(q) = url.query() {
        publisher.push('?');
        publisher.push_str(q);
    }
    if let Some(f) = url.fragment() {
        publisher.push('#');
        publisher.push_str(f);
    }
    let publisher = Url::parse(&publisher).map_err(|_| CacheUrlError::InvalidUrl)?;
    // The path host is plain host[:port]; anything that parsed into another
    // authority shape (credentials) is not a cache path.
    if !publisher.username().is_empty() || publisher.password().is_some() {
        return Err(CacheUrlError::InvalidUrl);
    }
    let publisher_host = publisher.host_str().ok_or(CacheUrlError::InvalidUrl)?;
    let expected = cache_subdomain(publisher_host)?;
    let first_label = cache_host.split('.').next().unwrap_or_default();
    if !first_label.eq_ignore_ascii_case(&expected) {
        return Err(CacheUrlError::SubdomainMismatch);
    }
    Ok(publisher.into())
}

/// Splits an AMP cache path into the publisher `host[:port]` (as written), whether
/// the publisher URL is https (`/s/`), and the rest of the path.
///
/// The host ends at the first `/`, `?` or `#`; the rest starts there (so it
/// starts with `/` for a plain path, or is empty). The host may only contain
/// letters, digits, `-`, `.`, `_`, `%` and an optional `:port`.
///
/// ```
/// use tower_amp_session::cache_url::publisher_path_from_cache_path;
///
/// assert_eq!(
///     publisher_path_from_cache_path("/c/s/shop.example/products/1?x"),
///     Some(("shop.example", true, "/products/1?x"))
/// );
/// assert_eq!(
///     publisher_path_from_cache_path("/c/shop.localhost:8080/"),
///     Some(("shop.localhost:8080", false, "/"))
/// );
/// assert_eq!(publisher_path_from_cache_path("/products/1"), None);
/// ```
#[must_use]
pub fn publisher_path_from_cache_path(cache_path: &str) -> Option<(&str, bool, &str)> {
    let after_kind = ["/c/", "/i/", "/r/"]
        .iter()
        .find_map(|prefix| cache_path.strip_prefix(prefix))?;
    let (https, host_and_rest) = match after_kind.strip_prefix("s/") {
        Some(rest) => (true, rest),
        None => (false, after_kind),
    };
    let end = host_and_rest
        .find(['/', '?', '#'])
        .unwrap_or(host_and_rest.len());
    let (host_port, rest) = host_and_rest.split_at_checked(end)?;
    is_plain_host_port(host_port).then_some((host_port, https, rest))
}

/// `name` or `name:port` with a conservative character set; rejects userinfo,
/// IPv6 literals and empty parts.
fn is_plain_host_port(s: &str) -> bool {
    let (name, port) = match s.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (s, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'%'));
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AMP-NOTES.md's table, which is amp-toolbox's `spec/AmpUrlSpec.js`
    /// `createCurlsSubdomain` vectors plus two more.
    const SUBDOMAINS: &[(&str, &str)] = &[
        ("something.com", "something-com"),
        ("SOMETHING.COM", "something-com"),
        ("hello-world.com", "hello--world-com"),
        ("hello--world.com", "hello----world-com"),
        (
            "toplevelnohyphens",
            "qsgpfjzulvuaxb66z77vlhb5gu2irvcnyp6t67cz6tqo5ae6fysa",
        ),
        (
            "no-dot-domain",
            "4lxc7wqq7b25walg4rdiil62veijrmqui5z3ept2lyfqqwpowryq",
        ),
        (
            "itwasadarkandstormynight.therainfellintorrents.exceptatoccasionalintervalswhenitwascheckedby.aviolentgustofwindwhichsweptupthestreets.com",
            "dgz4cnrxufaulnwku4ow5biptyqnenjievjht56hd7wqinbdbteq",
        ),
        ("xn--bcher-kva.ch", "xn--bcher-ch-65a"),
        (
            "xn--4gbrim.xn----rmckbbajlc6dj7bxne2c.xn--wgbh1c",
            "xn-------i5fvcbaopc6fkc0de0d9jybegt6cd",
        ),
        (
            "hello.xn--4gbrim.xn----rmckbbajlc6dj7bxne2c.xn--wgbh1c",
            "a6h5moukddengbsjm77rvbosevwuduec2blkjva4223o4bgafgla",
        ),
        ("en-us.example.com", "0-en--us-example-com-0"),
        ("foo.example.com", "foo-example-com"),
        ("foo-example.com", "foo--example-com"),
        ("xn--57hw060o.com", "xn---com-p33b41770a"),
        // Beyond the table: Unicode input maps like its punycode form.
        ("bücher.ch", "xn--bcher-ch-65a"),
        ("BÜCHER.CH", "xn--bcher-ch-65a"),
        // amp-toolbox createCacheUrl vector: https://點看.com.
        ("點看.com", "xn---com-k47jg78q"),
        ("shop.example", "shop-example"),
        ("shop.localhost", "shop-localhost"),
    ];

    #[test]
    fn subdomain_table() {
        for (host, expected) in SUBDOMAINS {
            assert_eq!(
                cache_subdomain(host).as_deref(),
                Ok(*expected),
                "host {host:?}"
            );
        }
    }

    #[test]
    fn subdomain_hash_fallbacks() {
        // Each row must take the hash path: 52 chars of [a-z2-7].
        const HASHED: &[&str] = &[
            "localhost",
            "ab--cd.example",
            // 64 characters of ASCII host.
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
            // 59 characters, but 86 once each '-' is doubled.
            "a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a-a.com",
        ];
        for host in HASHED {
            let sub = cache_subdomain(host).unwrap_or_default();
            assert_eq!(sub.len(), 52, "host {host:?}");
            assert!(
                sub.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')),
                "host {host:?} -> {sub}"
            );
        }
    }

    #[test]
    fn subdomain_errors() {
        const ROWS: &[(&str, CacheUrlError)] = &[
            ("", CacheUrlError::EmptyHost),
            ("shop.example:8080", CacheUrlError::HostHasPort),
            ("shop.example:", CacheUrlError::HostHasPort),
            ("[::1]", CacheUrlError::InvalidHost),
            ("shop.example/", CacheUrlError::InvalidHost),
            ("shop.example/x", CacheUrlError::InvalidHost),
            ("shop .example", CacheUrlError::InvalidHost),
            (" shop.example", CacheUrlError::InvalidHost),
            ("shop.example\n", CacheUrlError::InvalidHost),
            ("shop.example\t", CacheUrlError::InvalidHost),
            ("shop..example", CacheUrlError::InvalidHost),
            ("shop.example.", CacheUrlError::InvalidHost),
            ("a@b.example", CacheUrlError::InvalidHost),
            ("a%2eb.example", CacheUrlError::InvalidHost),
            ("xn--zz.example", CacheUrlError::InvalidHost),
        ];
        for (host, expected) in ROWS {
            assert_eq!(
                cache_subdomain(host).as_ref(),
                Err(expected),
                "host {host:?}"
            );
        }
    }

    #[test]
    fn bidi_classes_match_toolbox() {
        const ROWS: &[(char, bool, bool)] = &[
            ('a', true, false),
            ('Z', true, false),
            ('1', false, false),
            ('-', false, false),
            ('ü', true, false),
            ('\u{05D0}', false, true), // Hebrew alef
            ('\u{0645}', false, true), // Arabic meem
            ('\u{06F0}', false, false),
            ('點', true, false),
            ('\u{1F600}', false, false), // astral: no class, as in the JS regex
        ];
        for (c, ltr, rtl) in ROWS {
            assert_eq!((is_ltr(*c), is_rtl(*c)), (*ltr, *rtl), "char {c:?}");
        }
    }

    /// amp-toolbox `spec/AmpUrlSpec.js` `createCacheUrl` vectors. Where the
    /// publisher URL has no path, the WHATWG parser serializes `/`, so our
    /// output ends in `/` where the toolbox's does not; the toolbox keeps a
    /// Unicode host in the path, we keep its punycode form.
    const CACHE_URLS: &[(&str, CacheResource, &str)] = &[
        (
            "https://www.example.com",
            CacheResource::Page,
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/",
        ),
        (
            "http://www.example.com",
            CacheResource::Page,
            "https://www-example-com.cdn.ampproject.org/c/www.example.com/",
        ),
        (
            "https://www.example.com/index.html",
            CacheResource::Page,
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/index.html",
        ),
        (
            "http://www.example.com/index.html",
            CacheResource::Page,
            "https://www-example-com.cdn.ampproject.org/c/www.example.com/index.html",
        ),
        (
            "https://www.example.com/image.png",
            CacheResource::Image,
            "https://www-example-com.cdn.ampproject.org/i/s/www.example.com/image.png",
        ),
        (
            "http://www.example.com/image.png",
            CacheResource::Image,
            "https://www-example-com.cdn.ampproject.org/i/www.example.com/image.png",
        ),
        (
            "https://www.example.com/font.woff2",
            CacheResource::Font,
            "https://www-example-com.cdn.ampproject.org/r/s/www.example.com/font.woff2",
        ),
        (
            "http://www.example.com/font.woff2",
            CacheResource::Font,
            "https://www-example-com.cdn.ampproject.org/r/www.example.com/font.woff2",
        ),
        (
            "https://example.com/g?value=Hello%20World",
            CacheResource::Page,
            "https://example-com.cdn.ampproject.org/c/s/example.com/g?value=Hello%20World",
        ),
        (
            "https://點看.com",
            CacheResource::Page,
            "https://xn---com-k47jg78q.cdn.ampproject.org/c/s/xn--c1yn36f.com/",
        ),
        // Ours.
        (
            "https://shop.example/products/1?x=1",
            CacheResource::Page,
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/1?x=1",
        ),
        (
            "https://SHOP.example/p#frag",
            CacheResource::Page,
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/p#frag",
        ),
        (
            "http://shop.localhost:8080/cart",
            CacheResource::Page,
            "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080/cart",
        ),
        (
            "https://shop.example:443/default-port",
            CacheResource::Page,
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/default-port",
        ),
        (
            "https://en-us.example.com/",
            CacheResource::Page,
            "https://0-en--us-example-com-0.cdn.ampproject.org/c/s/en-us.example.com/",
        ),
    ];

    #[test]
    fn cache_url_table() {
        for (publisher, kind, expected) in CACHE_URLS {
            assert_eq!(
                cache_url(publisher, "cdn.ampproject.org", *kind).as_deref(),
                Ok(*expected),
                "publisher {publisher:?}"
            );
        }
    }

    #[test]
    fn cache_url_errors() {
        const ROWS: &[(&str, &str, CacheUrlError)] = &[
            ("not a url", "cdn.ampproject.org", CacheUrlError::InvalidUrl),
            ("/relative", "cdn.ampproject.org", CacheUrlError::InvalidUrl),
            (
                "ftp://shop.example/",
                "cdn.ampproject.org",
                CacheUrlError::UnsupportedScheme,
            ),
            (
                "https://user:pw@shop.example/",
                "cdn.ampproject.org",
                CacheUrlError::InvalidUrl,
            ),
            (
                "https://[::1]/",
                "cdn.ampproject.org",
                CacheUrlError::InvalidHost,
            ),
            (
                "https://shop.example/",
                "",
                CacheUrlError::InvalidCacheDomain,
            ),
            (
                "https://shop.example/",
                "cdn.ampproject.org/x",
                CacheUrlError::InvalidCacheDomain,
            ),
            (
                "https://shop.example/",
                "evil.com:80",
                CacheUrlError::InvalidCacheDomain,
            ),
            (
                "https://shop.example/",
                ".cdn.ampproject.org",
                CacheUrlError::InvalidCacheDomain,
            ),
        ];
        for (publisher, domain, expected) in ROWS {
            assert_eq!(
                cache_url(publisher, domain, CacheResource::Page).as_ref(),
                Err(expected),
                "publisher {publisher:?} on {domain:?}"
            );
        }
    }

    #[test]
    fn cache_url_round_trips() {
        for (publisher, kind, _) in CACHE_URLS {
            let cache = cache_url(publisher, "cdn.ampproject.org", *kind).unwrap_or_default();
            let normalized = Url::parse(publisher).map(String::from).ok();
            assert_eq!(
                publisher_url_from_cache_url(&cache).ok(),
                normalized,
                "cache url {cache:?}"
            );
        }
    }

    const REVERSE: &[(&str, Result<&str, CacheUrlError>)] = &[
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/p?q=1",
            Ok("https://shop.example/p?q=1"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example",
            Ok("https://shop.example/"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/shop.example/p",
            Ok("http://shop.example/p"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/i/s/shop.example/a.png",
            Ok("https://shop.example/a.png"),
        ),
        (
            "https://shop-example.cdn.ampproject.org/r/s/shop.example/f.woff2",
            Ok("https://shop.example/f.woff2"),
        ),
        (
            "https://SHOP-EXAMPLE.www.bing-amp.com/c/s/Shop.Example/p#top",
            Ok("https://shop.example/p#top"),
        ),
        (
            "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080/x",
            Ok("http://shop.localhost:8080/x"),
        ),
        (
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/g?value=Hello%20World",
            Ok("https://www.example.com/g?value=Hello%20World"),
        ),
        // Unicode host, percent-encoded in the path as browsers send it.
        (
            "https://xn---com-k47jg78q.cdn.ampproject.org/c/s/點看.com/",
            Ok("https://xn--c1yn36f.com/"),
        ),
        (
            "https://evil-example.cdn.ampproject.org/c/s/shop.example/",
            Err(CacheUrlError::SubdomainMismatch),
        ),
        (
            "https://cdn.ampproject.org/c/s/shop.example/",
            Err(CacheUrlError::SubdomainMismatch),
        ),
        (
            "https://shop-example.cdn.ampproject.org/v/s/shop.example/",
            Err(CacheUrlError::NotACacheUrl),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/",
            Err(CacheUrlError::NotACacheUrl),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/user@shop.example/",
            Err(CacheUrlError::NotACacheUrl),
        ),
        (
            "https://shop-example.cdn.ampproject.org/c/s/%2F%2Fevil.com/",
            Err(CacheUrlError::InvalidUrl),
        ),
        (
            "https://shop-example.cdn.ampproject.org/products/1",
            Err(CacheUrlError::NotACacheUrl),
        ),
        (
            "ftp://shop-example.cdn.ampproject.org/c/s/shop.example/",
            Err(CacheUrlError::UnsupportedScheme),
        ),
        ("", Err(CacheUrlError::InvalidUrl)),
    ];

    #[test]
    fn publisher_url_from_cache_url_table() {
        for (cache, expected) in REVERSE {
            assert_eq!(
                publisher_url_from_cache_url(cache)
                    .as_deref()
                    .map_err(Clone::clone),
                expected.clone(),
                "cache url {cache:?}"
            );
        }
    }

    type Split = Option<(&'static str, bool, &'static str)>;

    const PATHS: &[(&str, Split)] = &[
        (
            "/c/s/shop.example/products/1?x",
            Some(("shop.example", true, "/products/1?x")),
        ),
        (
            "/c/shop.localhost:8080/",
            Some(("shop.localhost:8080", false, "/")),
        ),
        ("/c/s/shop.example", Some(("shop.example", true, ""))),
        (
            "/c/s/shop.example?x=1",
            Some(("shop.example", true, "?x=1")),
        ),
        (
            "/i/s/shop.example/a.png",
            Some(("shop.example", true, "/a.png")),
        ),
        (
            "/r/shop.example/f.woff",
            Some(("shop.example", false, "/f.woff")),
        ),
        ("/c/s/SHOP.Example/", Some(("SHOP.Example", true, "/"))),
        // "s" alone is a host named "s", as the cache would read it.
        ("/c/s", Some(("s", false, ""))),
        ("/c/s/", None),
        ("/c/", None),
        ("/c", None),
        ("", None),
        ("/", None),
        ("/products/1", None),
        ("/v/s/shop.example/", None),
        ("c/s/shop.example/", None),
        ("//c/s/shop.example/", None),
        ("/c/s//evil.com", None),
        ("/c/s/user@shop.example/", None),
        ("/c/s/shop.example:/", None),
        ("/c/s/shop.example:123456/", None),
        ("/c/s/shop.example:80:80/", None),
        ("/c/s/[::1]/", None),
        ("/c/s/shop.example\\evil/", None),
        ("/c/s/é.example/", None),
    ];

    #[test]
    fn publisher_path_table() {
        for (path, expected) in PATHS {
            assert_eq!(
                publisher_path_from_cache_path(path),
                *expected,
                "path {path:?}"
            );
        }
    }

    #[test]
    fn case_does_not_change_the_hash() {
        const ROWS: &[(&str, &str)] = &[
            ("LOCALHOST", "localhost"),
            ("No-Dot-Domain", "no-dot-domain"),
            ("AB--CD.Example", "ab--cd.example"),
        ];
        for (upper, lower) in ROWS {
            assert_eq!(cache_subdomain(upper), cache_subdomain(lower), "{upper:?}");
        }
    }

    /// Hostile pieces glued in every order of three: nothing panics, and what
    /// is accepted keeps the documented shape.
    #[test]
    fn hostile_inputs_never_panic() {
        const TOKENS: &[&str] = &[
            "/",
            "c/",
            "s/",
            "i/",
            "r/",
            "v/",
            "shop.example",
            "SHOP",
            ".",
            "-",
            "--",
            "xn--",
            ":",
            ":8080",
            "@",
            "%2F",
            "%",
            "?",
            "#",
            "\\",
            " ",
            "\t",
            "\u{0}",
            "é",
            "\u{3002}",
            "\u{0645}",
            "[::1]",
            "https://",
            "a-b",
        ];
        for a in TOKENS {
            for b in TOKENS {
                for c in TOKENS {
                    let s = format!("{a}{b}{c}");
                    if let Some((host, _, rest)) = publisher_path_from_cache_path(&s) {
                        assert!(
                            !host.is_empty() && !host.contains(['/', '@', '\\']),
                            "{s:?}"
                        );
                        assert!(
                            rest.is_empty() || rest.starts_with(['/', '?', '#']),
                            "{s:?}"
                        );
                    }
                    if let Ok(sub) = cache_subdomain(&s) {
                        assert!(!sub.is_empty() && sub.len() <= MAX_LABEL_LEN + 4, "{s:?}");
                        assert!(
                            sub.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                            "{s:?} -> {sub:?}"
                        );
                    }
                    let as_cache = format!("https://shop-example.cdn.ampproject.org/{s}");
                    if let Ok(publisher) = publisher_url_from_cache_url(&as_cache) {
                        assert!(publisher.starts_with("http"), "{as_cache:?}");
                    }
                    let _ = cache_url(
                        &format!("https://{s}"),
                        "cdn.ampproject.org",
                        CacheResource::Page,
                    );
                }
            }
        }
    }

    #[test]
    fn errors_display_short_lowercase() {
        const ALL: &[CacheUrlError] = &[
            CacheUrlError::EmptyHost,
            CacheUrlError::HostHasPort,
            CacheUrlError::InvalidHost,
            CacheUrlError::InvalidCacheDomain,
            CacheUrlError::InvalidUrl,
            CacheUrlError::UnsupportedScheme,
            CacheUrlError::NotACacheUrl,
            CacheUrlError::SubdomainMismatch,
        ];
        for e in ALL {
            let s = e.to_string();
            assert!(!s.is_empty() && s.len() < 60, "{s}");
            assert_eq!(s, s.to_lowercase(), "{s}");
        }
    }
}

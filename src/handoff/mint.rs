//! Mint: a cookieless state change from the cache becomes a signed `AMP-Redirect-To`.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, REFERER};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use rand::RngCore;

use crate::body::ResponseBody;
use crate::classify::Classified;
use crate::config::{Config, Publisher, ReturnTo};
use crate::cors;
use crate::form::{self, FormKind};
use crate::reject::{reasons, Rejection};
use crate::return_path::{
    plain_cache_page_path, return_path_from_referer_cow, return_path_from_source_url_cow,
    validate_return_path_cow, without_amp_params,
};
use crate::token::{HandoffToken, Unsealed, MAX_TARGET_LEN};

use super::*;

/// Mints a handoff for a cookieless state-changing request from the cache.
pub(crate) async fn mint<B, ResB>(
    config: Arc<Config>,
    classified: Classified,
    parts: http::request::Parts,
    body: B,
) -> Response<ResponseBody<ResB>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    let origin = classified.cors_origin.clone();
    let mut res = match mint_response(&config, &classified, parts, body).await {
        Ok(res) => res,
        Err(rejection) => {
            tracing::debug!(
                status = rejection.status().as_u16(),
                reason = rejection.reason(),
                source = classified.source.as_str(),
                stage = "mint",
                "amp_session.rejected"
            );
            let mut res = rejection.json();
            if rejection.status() == StatusCode::METHOD_NOT_ALLOWED {
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
            }
            res
        }
    };
    cors::apply(res.headers_mut(), origin);
    res
}

async fn mint_response<B, ResB>(
    config: &Config,
    classified: &Classified,
    parts: http::request::Parts,
    body: B,
) -> Result<Response<ResponseBody<ResB>>, Rejection>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    // amp-form sends no other state-changing method; a PUT or DELETE "from the cache" is a
    // program, and handing it off would open routes no form of the publisher posts to.
    if parts.method != Method::POST {
        return Err(reasons::MINT_METHOD);
    }
    let publisher = &config.publishers[classified.publisher];
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    if target.len() > MAX_TARGET_LEN {
        return Err(reasons::TARGET_TOO_LONG);
    }
    let kind = form::form_kind(&parts.headers)?;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.body_limit as u64) {
        return Err(reasons::BODY_TOO_LARGE);
    }
    let bytes = read_body(body, config.body_limit).await?;
    if kind == FormKind::Empty && !bytes.is_empty() {
        return Err(reasons::UNSUPPORTED_FORM);
    }
    let (encoding, body) = form::capture(kind, bytes).await?;
    let (body, field) = take_return_field(&body);
    let return_path = return_path(
        config,
        classified.publisher,
        field.as_deref(),
        &parts.headers,
    );
    let now = config.now();
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let contents = Unsealed {
        publisher: &publisher.origin,
        method: parts.method.as_str(),
        target,
        encoding,
        body: &body,
        return_path: &return_path,
        issued_at: now,
        expires_at: now + config.handoff_ttl,
        nonce,
    };
    // The whole `AMP-Redirect-To` value in one buffer, which the header then takes over.
    let prefix = [
        &*publisher.origin,
        &*config.handoff_path,
        "?",
        TOKEN_PARAM,
        "=",
    ];
    let url = HandoffToken::seal_url(&prefix, &config.keyring, &contents)
        .map_err(|_| reasons::BODY_TOO_LARGE)?;
    // amp-form renders its success template before it navigates: the answer says what is
    // happening (the change continues on the origin), never that it is done, and carries the
    // handoff URL for a link, for when the browser refuses the navigation.
    let token_at = prefix.iter().map(|p| p.len()).sum();
    let answer = answer_around(publisher, &url, token_at);
    let location =
        HeaderValue::from_maybe_shared(Bytes::from(url)).map_err(|_| reasons::BODY_TOO_LARGE)?;
    tracing::debug!(
        method = %parts.method,
        // The path only: a query may carry personal data.
        path = %target.split('?').next().unwrap_or(""),
        body_len = body.len(),
        "amp_session.handoff_minted"
    );
    crate::metrics::handoff_minted();
    let mut res = Response::new(ResponseBody::full(Bytes::from(answer)));
    // Room for every header the answer gets, CORS included: no growing one by one.
    *res.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
    let h = res.headers_mut();
    h.insert(&AMP_REDIRECT_TO, location);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, NO_STORE);
    Ok(res)
}

/// The body, at most `limit` bytes. What `collect().to_bytes()` gives, without its frame
/// queue: a body in one frame (a full body, a small form from hyper) is that frame's bytes.
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Rejection>
where
    B: Body<Data = Bytes>,
    B::Error: Into<crate::BoxError>,
{
    let mut body = std::pin::pin!(Limited::new(body, limit));
    let mut first = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                reasons::BODY_TOO_LARGE
            } else {
                reasons::BODY_UNREADABLE
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not part of the form
        };
        if joined.is_none() && first.is_empty() {
            first = data;
        } else {
            joined
                .get_or_insert_with(|| first.to_vec())
                .extend_from_slice(&data);
        }
    }
    Ok(joined.map_or(first, Bytes::from))
}

/// The mint answer's headers: `AMP-Redirect-To`, `Content-Type`, `Cache-Control`, then
/// [`cors::apply`]'s four (allow origin and credentials, expose headers, vary).
const ANSWER_HEADERS: usize = 7;

/// The mint's JSON answer, `{"handoff":true,"handoff_url":…,"message":"Continuing on
/// <host>…","origin":…}` (the fields are documented in [`crate::docs::mint_answer`]), byte
/// for byte what `serde_json` writes for that object (keys in its sorted order), in one
/// buffer of exactly the right size. Strings are escaped by `serde_json` when they need it.
///
/// `handoff_url[token_at..]` is the token, base64url (`A-Z a-z 0-9 - _`), which JSON never
/// escapes: only the origin, the host and the URL up to the token are looked at.
fn answer_json(origin: &str, host: &str, handoff_url: &str, token_at: usize) -> Vec<u8> {
    const HEAD: &str = ANSWER_HEAD;
    const MESSAGE: &str = ",\"message\":";
    const CONTINUING: &str = "Continuing on ";
    const ORIGIN: &str = ",\"origin\":";
    debug_assert!(handoff_url.as_bytes()[token_at..]
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let plain = [
        origin,
        host,
        handoff_url.get(..token_at).unwrap_or(handoff_url),
    ]
    .iter()
    .all(|s| !needs_json_escape(s));
    if plain {
        let parts = [
            HEAD,
            "\"",
            handoff_url,
            "\"",
            MESSAGE,
            "\"",
            CONTINUING,
            host,
            "\u{2026}\"",
            ORIGIN,
            "\"",
            origin,
            "\"}",
        ];
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
        return out;
    }
    let mut out = Vec::new();
    out.extend_from_slice(HEAD.as_bytes());
    serde_json::to_writer(&mut out, handoff_url).expect("a string serializes");
    out.extend_from_slice(MESSAGE.as_bytes());
    serde_json::to_writer(&mut out, &format!("{CONTINUING}{host}\u{2026}"))
        .expect("a string serializes");
    out.extend_from_slice(ORIGIN.as_bytes());
    serde_json::to_writer(&mut out, origin).expect("a string serializes");
    out.push(b'}');
    out
}

/// [`answer_json`] for `handoff_url`, from the publisher's answer without its token (made
/// once): the token, base64url, is copied in as it is, never escaped.
fn answer_around(publisher: &Publisher, handoff_url: &str, token_at: usize) -> Vec<u8> {
    let (prefix, token) = handoff_url.split_at(token_at);
    let (template, at) = publisher.mint_answer.get_or_init(|| {
        let template = answer_json(&publisher.origin, &publisher.host, prefix, prefix.len());
        // The URL's string ends just before its closing quote, the first `"` after the
        // opening one that is not escaped: where `serde_json` writes the prefix, escaped.
        let at = ANSWER_HEAD.len() + serde_json::to_string(prefix).map_or(0, |s| s.len()) - 1;
        (template.into_boxed_slice(), at)
    });
    let mut out = Vec::with_capacity(template.len() + token.len());
    out.extend_from_slice(&template[..*at]);
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(&template[*at..]);
    out
}

/// `answer_json`'s first bytes, up to the handoff URL's opening quote.
const ANSWER_HEAD: &str = r#"{"handoff":true,"handoff_url":"#;

/// Whether `serde_json` would escape anything in `s`: a quote, a backslash, a control byte.
fn needs_json_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Where the shopper lands: `ReturnTo::Path` when configured; else the form's
/// [`RETURN_PATH_FIELD`] (a page URL as amp-form's `SOURCE_URL` gives it, reduced to its path
/// and query, or a path as `SOURCE_PATH` gives it); else the cache page URL in `Referer`;
/// else `/`. A candidate that is not a path on the publisher origin, or that is the handoff
/// path, is skipped. The AMP runtime's own query parameters (`amp_js_v`, `usqp`, ...) never
/// come along from a URL.
fn return_path<'a>(
    config: &'a Config,
    index: usize,
    field: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Cow<'a, str> {
    let publisher = &config.publishers[index];
    if let ReturnTo::Path(p) = &config.return_to {
        return Cow::Borrowed(p);
    }
    let usable = |p: Cow<'a, str>| (!config.is_layer_path(&p)).then_some(p);
    let on_cache = |host: &str| {
        config
            .caches
            .iter()
            .any(|c| c.is_cache_host(&publisher.cache_subdomain, host))
    };
    let from_field = || {
        let path = match field_value(field?) {
            value if value.starts_with('/') => validate_return_path_cow(value, &publisher.url).ok(),
            Cow::Borrowed(url) => return_path_from_source_url_cow(url, &publisher.url, on_cache),
            Cow::Owned(url) => return_path_from_source_url_cow(&url, &publisher.url, on_cache)
                .map(|p| Cow::Owned(p.into_owned())),
        };
        path.and_then(usable)
    };
    let from_referer = || {
        let mut values = headers.get_all(REFERER).iter();
        let referer = match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().ok()?,
            _ => return None,
        };
        // The usual `Referer`, a cache page of this publisher spelled plainly: a slice of
        // it, without parsing it.
        let plain = config
            .allowlist
            .caches
            .iter()
            .filter(|(_, i)| *i == index)
            .find_map(|(cache, _)| plain_cache_page_path(referer, cache, &publisher.authority));
        if let Some(path) = plain {
            return usable(Cow::Borrowed(path));
        }
        return_path_from_referer_cow(referer, &publisher.url, on_cache)
            .map(without_amp_params)
            .and_then(usable)
    };
    from_field()
        .or_else(from_referer)
        .unwrap_or(Cow::Borrowed("/"))
}

/// A [`RETURN_PATH_FIELD`] value as the layer reads it. amp-form fills `SOURCE_URL` and
/// `SOURCE_PATH` in percent-encoded (`https%3A%2F%2Fshop.example%2Fp%3Fa%3D1`,
/// `%2Fproducts%2F3`: its URL variables are encoded with `encodeURIComponent`), so a value
/// that starts with an encoded `/` or `http(s)://` is decoded once; it is validated
/// afterwards like any other.
fn field_value(value: &str) -> Cow<'_, str> {
    let starts = |prefix: &str| {
        value
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    if starts("%2F") || starts("http%3A%2F%2F") || starts("https%3A%2F%2F") {
        if let Ok(decoded) = percent_encoding::percent_decode_str(value).decode_utf8() {
            return Cow::Owned(decoded.into_owned());
        }
    }
    Cow::Borrowed(value)
}

/// Removes every [`RETURN_PATH_FIELD`] from a url-encoded body (names compared decoded, as
/// the app would read them) and returns the body without it and the first value. Other
/// fields are kept byte for byte; a body without the field is returned as it is.
fn take_return_field(body: &[u8]) -> (Cow<'_, [u8]>, Option<String>) {
    let name = RETURN_PATH_FIELD.as_bytes();
    // Cheap test first: the name spelled plainly, or anything percent-encoded.
    let plain = body.windows(name.len()).any(|w| w == name);
    if !plain && !body.contains(&b'%') {
        return (Cow::Borrowed(body), None);
    }
    let mut kept: Vec<u8> = Vec::with_capacity(body.len());
    let mut value = None;
    let mut removed = false;
    for pair in body.split(|&b| b == b'&') {
        let is_field = form_urlencoded::parse(pair)
            .next()
            .is_some_and(|(k, _)| k == RETURN_PATH_FIELD);
        if is_field {
            if value.is_none() {
                value = form_urlencoded::parse(pair)
                    .next()
                    .map(|(_, v)| v.into_owned());
            }
            removed = true;
            continue;
        }
        if !kept.is_empty() {
            kept.push(b'&');
        }
        kept.extend_from_slice(pair);
    }
    if !removed {
        return (Cow::Borrowed(body), None);
    }
    (Cow::Owned(kept), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(
        chunks: &[&'static str],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
        let frames: Vec<_> = chunks
            .iter()
            .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("in-memory body is ready")
    }

    #[test]
    fn body_is_read_as_collect_reads_it() {
        // (frames, limit): the bytes are collect().to_bytes()'s; over the limit is 413.
        let rows: &[(&[&str], usize)] = &[
            (&[], 10),
            (&[""], 10),
            (&["a=1"], 10),
            (&["a=1", "&b=2"], 10),
            (&["", "a=1", "", "&b", "=2"], 10),
            (&["a=1", "&b=2"], 7),
            (&["a=1", "&b=2"], 6),
            (&["0123456789a"], 10),
        ];
        for (chunks, limit) in rows {
            let want = block(Limited::new(frames(chunks), *limit).collect())
                .map(|c| c.to_bytes())
                .map_err(|_| reasons::BODY_TOO_LARGE);
            assert_eq!(
                block(read_body(frames(chunks), *limit)),
                want,
                "{chunks:?} {limit}"
            );
        }
        let broken = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok(http_body::Frame::data(Bytes::from_static(b"a"))),
            Err(std::io::Error::other("reset")),
        ]));
        assert_eq!(block(read_body(broken, 10)), Err(reasons::BODY_UNREADABLE));
    }

    /// The answer as it was first written: a `serde_json` object.
    fn answer_by_serde(origin: &str, host: &str, handoff_url: &str) -> String {
        serde_json::json!({
            "handoff": true,
            "handoff_url": handoff_url,
            "origin": origin,
            "message": format!("Continuing on {host}\u{2026}"),
        })
        .to_string()
    }

    #[test]
    fn answer_is_what_serde_json_writes() {
        // (origin, host): the usual, then every byte serde_json escapes.
        let rows = [
            ("https://shop.example", "shop.example"),
            ("http://shop.localhost:8080", "shop.localhost"),
            ("https://xn--shp-sna.example", "xn--shp-sna.example"),
            ("https://shöp.example", "shöp.example"),
            ("https://a\"b", "a\\b"),
            ("x\u{0}\u{1f}\n\t", "\r\u{8}\u{c}"),
            ("", ""),
        ];
        let url = "https://shop.example/_amp/handoff?token=AQJrMQ-_";
        for (origin, host) in rows {
            let got = answer_json(origin, host, url, url.len() - 8);
            if !needs_json_escape(origin) && !needs_json_escape(host) {
                assert_eq!(
                    got.len(),
                    got.capacity(),
                    "{origin:?} {host:?}: exactly sized"
                );
            }
            assert_eq!(
                got,
                answer_by_serde(origin, host, url).into_bytes(),
                "{origin:?}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(25_000))]

        /// Any origin and host, escapes or not: the same bytes as `serde_json`.
        #[test]
        fn fast_answer_agrees_with_serde_json(
            origin in "(https?://)?[a-z.\"\\\\\u{0}-\u{1f}\u{7f}é\u{2028}-]{0,24}",
            host in proptest::prelude::any::<String>(),
            prefix in "(https?://)?[a-z./?=\"\\\\\u{0}-\u{1f}_-]{0,40}",
            token in "[A-Za-z0-9_-]{0,40}",
        ) {
            // The URL up to the token is looked at; the token is base64url.
            let handoff_url = format!("{prefix}{token}");
            proptest::prop_assert_eq!(
                String::from_utf8(answer_json(&origin, &host, &handoff_url, prefix.len())).unwrap(),
                answer_by_serde(&origin, &host, &handoff_url)
            );
        }
    }

    #[test]
    fn return_field_as_amp_form_fills_it_in() {
        // (field value, path it gives before validation)
        let rows = [
            ("/products/3", "/products/3"),
            ("%2Fproducts%2F3", "/products/3"),
            ("%2fproducts%2f3%3Fa%3D1", "/products/3?a=1"),
            // Decoded once only: what is still encoded is left to the validation.
            ("%2F%252Fevil.com", "/%2Fevil.com"),
            ("%2F%2Fevil.com", "//evil.com"),
            ("products%2F3", "products%2F3"),
            ("%2F%FF", "%2F%FF"),
            ("SOURCE_PATH", "SOURCE_PATH"),
            // SOURCE_URL, on a cache (rebuilt as the origin URL) or on the origin.
            (
                "https%3A%2F%2Fshop.example%2Fproducts%2F6%3Fenctype%3Durlencoded",
                "https://shop.example/products/6?enctype=urlencoded",
            ),
            (
                "HTTP%3a%2f%2fshop.localhost%3A8080%2F",
                "HTTP://shop.localhost:8080/",
            ),
            (
                "https://shop.example/p?a=%41",
                "https://shop.example/p?a=%41",
            ),
            (
                "https%3A%2F%2Fshop.example%2F%FF",
                "https%3A%2F%2Fshop.example%2F%FF",
            ),
            ("https%3A%2Fevil", "https%3A%2Fevil"),
            ("SOURCE_URL", "SOURCE_URL"),
        ];
        for (value, path) in rows {
            assert_eq!(field_value(value), path, "{value}");
        }
        let origin = url::Url::parse("https://shop.example/").unwrap();
        let evil = field_value("%2F%2Fevil.com");
        assert!(crate::return_path::validate_return_path(&evil, &origin).is_err());
    }

    #[test]
    fn return_field_is_taken_out_of_the_body() {
        // (body, body the app gets, value read)
        let rows: &[(&str, &str, Option<&str>)] = &[
            ("a=1&b=2", "a=1&b=2", None),
            ("", "", None),
            ("amp_return_path=%2Fp%2F3&a=1", "a=1", Some("/p/3")),
            ("a=1&amp_return_path=/p/3", "a=1", Some("/p/3")),
            (
                "a=1&amp%5Freturn_path=/p/3&b=%20",
                "a=1&b=%20",
                Some("/p/3"),
            ),
            ("amp_return_path=/x&amp_return_path=/y", "", Some("/x")),
            ("amp_return_path", "", Some("")),
            ("amp_return_paths=/x", "amp_return_paths=/x", None),
            ("a=%ZZ&&b", "a=%ZZ&&b", None),
        ];
        for (body, want_body, want_value) in rows {
            let (got, value) = take_return_field(body.as_bytes());
            assert_eq!(&got[..], want_body.as_bytes(), "{body}");
            assert_eq!(value.as_deref(), *want_value, "{body}");
        }
    }

    /// Layers whose publishers and caches cover the spellings the fast path must get right:
    /// the default caches, a custom one with a port, a publisher with a port.
    fn configs() -> Vec<Arc<Config>> {
        let keys = || {
            crate::Keyring::builder()
                .signing("k1", [7u8; 32])
                .build()
                .unwrap()
        };
        vec![
            crate::AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .publisher_origin("https://xn--shp-sna.example")
                .keyring(keys())
                .build()
                .unwrap()
                .config,
            crate::AmpSessionLayer::builder()
                .publisher_origin("http://shop.localhost:8080")
                .keyring(keys())
                .cache(
                    crate::CacheDomain::custom("cache.localhost")
                        .allow_http()
                        .port(8081),
                )
                .build()
                .unwrap()
                .config,
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Where the plain cache page fast path answers, the general reading of the
        /// `Referer` (parse, cache host, publisher host, AMP parameters) answers the same.
        #[test]
        fn plain_cache_page_path_agrees_with_the_general_referer(
            which in 0usize..2,
            cache_pick in 0usize..8,
            upper_cache in proptest::prelude::any::<bool>(),
            kind in proptest::prelude::prop_oneof!["/c/s/", "/c/", "/i/s/", "/c/S/", "/c/s"],
            authority in proptest::prelude::prop_oneof![
                "shop\\.example", "xn--shp-sna\\.example", "shop\\.localhost:8080",
                "SHOP\\.example", "shop\\.example:443", "shop\\.example\\.", "evil\\.example",
            ],
            path in "(/|[a-z0-9]|\\.|\\.\\.|%2F|\\?|#|amp_js_v=1|&|;|@|:|~|é| )*",
        ) {
            let config = &configs()[which];
            let caches = &config.allowlist.caches;
            let (cache, index) = &caches[cache_pick % caches.len()];
            let cache = if upper_cache { cache.to_ascii_uppercase() } else { cache.to_string() };
            let referer = format!("{cache}{kind}{authority}{path}");
            let publisher = &config.publishers[*index];
            let fast = caches
                .iter()
                .filter(|(_, i)| i == index)
                .find_map(|(c, _)| plain_cache_page_path(&referer, c, &publisher.authority));
            if let Some(fast) = fast {
                let on_cache = |host: &str| {
                    config
                        .caches
                        .iter()
                        .any(|c| c.is_cache_host(&publisher.cache_subdomain, host))
                };
                let general = return_path_from_referer_cow(&referer, &publisher.url, on_cache)
                    .map(without_amp_params);
                proptest::prop_assert_eq!(general.as_deref(), Some(fast), "{}", referer);
            }
        }
    }

    #[test]
    fn plain_cache_page_path_answers_for_the_usual_referer() {
        let config = &configs()[0];
        let (cache, index) = &config.allowlist.caches[0];
        let publisher = &config.publishers[*index];
        // (path after the publisher host, fast path answers)
        let rows = [
            ("/products/3", true),
            ("/", true),
            ("/a/b-c_d.e~f", true),
            ("/p?x=1", false),
            ("/p#x", false),
            ("/p/../q", false),
            ("/p%2F", false),
            ("", false),
            (".evil/p", false),
        ];
        for (path, answers) in rows {
            let referer = format!("{cache}/c/s/{}{path}", publisher.authority);
            assert_eq!(
                plain_cache_page_path(&referer, cache, &publisher.authority),
                answers.then_some(path),
                "{referer}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// The answer copied around the token is the answer written in full.
        #[test]
        fn answer_around_the_token_is_the_whole_answer(token in "[A-Za-z0-9_-]{0,600}", which in 0usize..2) {
            let config = &configs()[which];
            for publisher in &config.publishers {
                let prefix = format!("{}{}?{TOKEN_PARAM}=", publisher.origin, config.handoff_path);
                let url = format!("{prefix}{token}");
                proptest::prop_assert_eq!(
                    answer_around(publisher, &url, prefix.len()),
                    answer_json(&publisher.origin, &publisher.host, &url, prefix.len())
                );
            }
        }
    }
}

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
use crate::return_path::{return_path_from_referer_cow, validate_return_path_cow};
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
    let return_path = return_path(config, publisher, field.as_deref(), &parts.headers);
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
    // amp-form renders its success template before it navigates: the answer says what is
    // happening (the change continues on the origin), never that it is done.
    let answer = answer_json(&publisher.origin, &publisher.host);
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

/// The mint's JSON answer, `{"handoff":true,"message":"Continuing on <host>…","origin":…}`,
/// byte for byte what `serde_json` writes for that object (keys in its sorted order), in one
/// buffer of exactly the right size. Strings are escaped by `serde_json` when they need it.
fn answer_json(origin: &str, host: &str) -> Vec<u8> {
    const HEAD: &str = r#"{"handoff":true,"message":"#;
    const CONTINUING: &str = "Continuing on ";
    const MID: &str = ",\"origin\":";
    let plain = !needs_json_escape(host) && !needs_json_escape(origin);
    let len = HEAD.len() + 1 + CONTINUING.len() + host.len() + "\u{2026}\"".len() + MID.len();
    let mut out = Vec::with_capacity(len + origin.len() + 3);
    out.extend_from_slice(HEAD.as_bytes());
    if plain {
        for part in [
            "\"",
            CONTINUING,
            host,
            "\u{2026}\"",
            MID,
            "\"",
            origin,
            "\"}",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        return out;
    }
    let message = format!("{CONTINUING}{host}\u{2026}");
    serde_json::to_writer(&mut out, &message).expect("a string serializes");
    out.extend_from_slice(MID.as_bytes());
    serde_json::to_writer(&mut out, origin).expect("a string serializes");
    out.push(b'}');
    out
}

/// Whether `serde_json` would escape anything in `s`: a quote, a backslash, a control byte.
fn needs_json_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Where the shopper lands: `ReturnTo::Path` when configured; else the form's
/// [`RETURN_PATH_FIELD`]; else the cache page URL in `Referer`; else `/`. A candidate that is
/// not a path on the publisher origin, or that is the handoff path, is skipped.
fn return_path<'a>(
    config: &'a Config,
    publisher: &Publisher,
    field: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Cow<'a, str> {
    if let ReturnTo::Path(p) = &config.return_to {
        return Cow::Borrowed(p);
    }
    let usable = |p: Cow<'a, str>| (!config.is_layer_path(&p)).then_some(p);
    let from_field = || {
        field
            .map(field_path)
            .and_then(|f| validate_return_path_cow(f, &publisher.url).ok())
            .and_then(usable)
    };
    let from_referer = || {
        let mut values = headers.get_all(REFERER).iter();
        let referer = match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().ok()?,
            _ => return None,
        };
        return_path_from_referer_cow(referer, &publisher.url, |host| {
            config
                .caches
                .iter()
                .any(|c| c.is_cache_host(&publisher.cache_subdomain, host))
        })
        .and_then(usable)
    };
    from_field()
        .or_else(from_referer)
        .unwrap_or(Cow::Borrowed("/"))
}

/// The path in a [`RETURN_PATH_FIELD`] value. amp-form fills `SOURCE_PATH` in percent-encoded
/// (`%2Fproducts%2F3`: its URL variables are encoded with `encodeURIComponent`), so a value
/// that starts with an encoded `/` is decoded once; it is validated afterwards like any other.
fn field_path(value: &str) -> Cow<'_, str> {
    let encoded_slash = value
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("%2F"));
    if encoded_slash {
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
    fn answer_by_serde(origin: &str, host: &str) -> String {
        serde_json::json!({
            "handoff": true,
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
        for (origin, host) in rows {
            let got = answer_json(origin, host);
            if !needs_json_escape(origin) && !needs_json_escape(host) {
                assert_eq!(
                    got.len(),
                    got.capacity(),
                    "{origin:?} {host:?}: exactly sized"
                );
            }
            assert_eq!(
                got,
                answer_by_serde(origin, host).into_bytes(),
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
        ) {
            proptest::prop_assert_eq!(
                String::from_utf8(answer_json(&origin, &host)).unwrap(),
                answer_by_serde(&origin, &host)
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
        ];
        for (value, path) in rows {
            assert_eq!(field_path(value), path, "{value}");
        }
        let origin = url::Url::parse("https://shop.example/").unwrap();
        let evil = field_path("%2F%2Fevil.com");
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
}

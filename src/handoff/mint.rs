//! Mint: a cookieless state change from the cache becomes a signed `AMP-Redirect-To`.

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
use crate::return_path::{return_path_from_referer, validate_return_path};
use crate::token::{CapturedChange, HandoffToken, MAX_TARGET_LEN};

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
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
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
    let bytes = match Limited::new(body, config.body_limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(reasons::BODY_TOO_LARGE)
        }
        Err(_) => return Err(reasons::BODY_UNREADABLE),
    };
    if kind == FormKind::Empty && !bytes.is_empty() {
        return Err(reasons::UNSUPPORTED_FORM);
    }
    let (encoding, body) = form::capture(kind, bytes).await?;
    let (body, field) = take_return_field(body);
    let return_path = return_path(config, publisher, field.as_deref(), &parts.headers);
    let change = CapturedChange {
        method: parts.method,
        target,
        encoding,
        body,
        return_path,
    };
    let now = config.now();
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let token = HandoffToken::seal(
        &config.keyring,
        &publisher.origin,
        &change,
        now,
        now + config.handoff_ttl,
        nonce,
    )
    .map_err(|_| reasons::BODY_TOO_LARGE)?;
    let mut url = String::with_capacity(
        publisher.origin.len() + config.handoff_path.len() + TOKEN_PARAM.len() + 2 + token.len(),
    );
    for part in [
        &*publisher.origin,
        &*config.handoff_path,
        "?",
        TOKEN_PARAM,
        "=",
        &token,
    ] {
        url.push_str(part);
    }
    // One allocation: the header takes the string's buffer.
    let location =
        HeaderValue::from_maybe_shared(Bytes::from(url)).map_err(|_| reasons::BODY_TOO_LARGE)?;
    tracing::debug!(
        method = %change.method,
        // The path only: a query may carry personal data.
        path = %change.target.split('?').next().unwrap_or(""),
        body_len = change.body.len(),
        "amp_session.handoff_minted"
    );
    // amp-form renders its success template before it navigates: the answer says what is
    // happening (the change continues on the origin), never that it is done.
    let answer = serde_json::json!({
        "handoff": true,
        "origin": &*publisher.origin,
        "message": format!("Continuing on {}\u{2026}", publisher.host),
    });
    let mut res = Response::new(ResponseBody::full(Bytes::from(answer.to_string())));
    let h = res.headers_mut();
    h.insert(&AMP_REDIRECT_TO, location);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, NO_STORE);
    Ok(res)
}

/// Where the shopper lands: `ReturnTo::Path` when configured; else the form's
/// [`RETURN_PATH_FIELD`]; else the cache page URL in `Referer`; else `/`. A candidate that is
/// not a path on the publisher origin, or that is the handoff path, is skipped.
fn return_path(
    config: &Config,
    publisher: &Publisher,
    field: Option<&str>,
    headers: &HeaderMap,
) -> String {
    if let ReturnTo::Path(p) = &config.return_to {
        return p.clone();
    }
    let usable = |p: String| (!config.is_layer_path(&p)).then_some(p);
    let from_field = || {
        field
            .map(field_path)
            .and_then(|f| validate_return_path(&f, &publisher.url).ok())
            .and_then(usable)
    };
    let from_referer = || {
        let mut values = headers.get_all(REFERER).iter();
        let referer = match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().ok()?,
            _ => return None,
        };
        return_path_from_referer(referer, &publisher.url, |host| {
            config
                .caches
                .iter()
                .any(|c| c.is_cache_host(&publisher.cache_subdomain, host))
        })
        .and_then(usable)
    };
    from_field()
        .or_else(from_referer)
        .unwrap_or_else(|| "/".to_owned())
}

/// The path in a [`RETURN_PATH_FIELD`] value. amp-form fills `SOURCE_PATH` in percent-encoded
/// (`%2Fproducts%2F3`: its URL variables are encoded with `encodeURIComponent`), so a value
/// that starts with an encoded `/` is decoded once; it is validated afterwards like any other.
fn field_path(value: &str) -> std::borrow::Cow<'_, str> {
    let encoded_slash = value
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("%2F"));
    if encoded_slash {
        if let Ok(decoded) = percent_encoding::percent_decode_str(value).decode_utf8() {
            return std::borrow::Cow::Owned(decoded.into_owned());
        }
    }
    std::borrow::Cow::Borrowed(value)
}

/// Removes every [`RETURN_PATH_FIELD`] from a url-encoded body (names compared decoded, as
/// the app would read them) and returns the body without it and the first value. Other
/// fields are kept byte for byte; a body without the field is returned as it is.
fn take_return_field(body: Bytes) -> (Bytes, Option<String>) {
    let name = RETURN_PATH_FIELD.as_bytes();
    // Cheap test first: the name spelled plainly, or anything percent-encoded.
    let plain = body.windows(name.len()).any(|w| w == name);
    if !plain && !body.contains(&b'%') {
        return (body, None);
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
        return (body, None);
    }
    (Bytes::from(kept), value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(validate_return_path(&field_path("%2F%2Fevil.com"), &origin).is_err());
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
            let (got, value) = take_return_field(Bytes::copy_from_slice(body.as_bytes()));
            assert_eq!(&got[..], want_body.as_bytes(), "{body}");
            assert_eq!(value.as_deref(), *want_value, "{body}");
        }
    }
}

//! Mint: a cookieless state change from the cache becomes a signed `AMP-Redirect-To`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, REFERER};
use http::{HeaderValue, Response};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use rand::RngCore;

use crate::body::ResponseBody;
use crate::classify::Classified;
use crate::config::{Config, ReturnTo};
use crate::cors;
use crate::form::{self, FormKind};
use crate::reject::{reasons, Rejection};
use crate::return_path::return_path_from_referer;
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
            rejection.json()
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
    let return_path = match &config.return_to {
        ReturnTo::Path(p) => p.clone(),
        ReturnTo::Referer => parts
            .headers
            .get(REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| {
                return_path_from_referer(r, &publisher.url, |host| {
                    config
                        .caches
                        .iter()
                        .any(|c| c.is_cache_host(&publisher.cache_subdomain, host))
                })
            })
            .unwrap_or_else(|| "/".to_owned()),
    };
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
    let mut res = Response::new(ResponseBody::full(Bytes::from_static(b"{}")));
    let h = res.headers_mut();
    h.insert(&AMP_REDIRECT_TO, location);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, NO_STORE);
    Ok(res)
}

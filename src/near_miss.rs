//! Near misses: a refused `Origin` that is almost this publisher's cache origin (the
//! publisher's host on a cache with the wrong subdomain shape, `http://` instead of
//! `https://`, another port). Such a refusal is a misconfiguration, not an attack on the
//! shopper: the 403 says which origin was refused and which one was expected, and the first
//! refusal of each such origin is logged at WARN.

use std::sync::Mutex;

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response};

use crate::body::ResponseBody;
use crate::reject::reasons;

/// How many distinct near-miss origins are logged; later ones are still answered precisely,
/// but not logged (an origin with a port can be spelled 65 535 ways).
const MAX_WARNED: usize = 16;

/// One shape a misconfigured cache origin takes: `<label>.<cache host>`, where `label` is
/// the publisher's cache subdomain, its host, or its host with dots turned into dashes.
#[derive(Debug)]
struct Shape {
    label: Box<str>,
    cache_host: Box<str>,
    expected: Box<str>,
}

/// The near-miss shapes of every publisher on every cache, and the origins already logged.
#[derive(Debug, Default)]
pub(crate) struct NearMisses {
    shapes: Vec<Shape>,
    warned: Mutex<Vec<Box<str>>>,
}

impl NearMisses {
    /// Adds the shapes of a publisher (`host`, `cache_subdomain`) on one cache host, whose
    /// right origin is `expected`.
    pub(crate) fn add(
        &mut self,
        host: &str,
        cache_subdomain: &str,
        cache_host: &str,
        expected: &str,
    ) {
        let dashed = host.replace('.', "-");
        for label in [cache_subdomain, host, &dashed] {
            if !self
                .shapes
                .iter()
                .any(|s| *s.label == *label && *s.cache_host == *cache_host)
            {
                self.shapes.push(Shape {
                    label: label.to_ascii_lowercase().into(),
                    cache_host: cache_host.into(),
                    expected: expected.into(),
                });
            }
        }
    }

    /// The cache origin `origin` was likely meant to be, when it is a near miss.
    pub(crate) fn expected(&self, origin: &str) -> Option<&str> {
        let (scheme, authority) = origin.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            return None;
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        self.shapes
            .iter()
            .find(|s| {
                host.len() == s.label.len() + 1 + s.cache_host.len()
                    && host[..s.label.len()].eq_ignore_ascii_case(&s.label)
                    && host.as_bytes()[s.label.len()] == b'.'
                    && host[s.label.len() + 1..].eq_ignore_ascii_case(&s.cache_host)
            })
            .map(|s| &*s.expected)
    }

    /// The 403 for a state-changing request from a near-miss `Origin`, or `None` when the
    /// request's origin is not one.
    pub(crate) fn refusal<B>(&self, headers: &HeaderMap) -> Option<Response<ResponseBody<B>>> {
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?;
        let expected = self.expected(origin)?;
        self.warn_once(origin, expected);
        let rejection = reasons::FOREIGN_ORIGIN;
        let message = format!(
            "{}: Origin {origin} is not this publisher's AMP cache origin; expected {expected} \
             (check the cache domains and the publisher origin in the configuration)",
            rejection.reason()
        );
        let wants_json = headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let (body, content_type) = if wants_json {
            (
                serde_json::json!({ "error": message }).to_string(),
                "application/json",
            )
        } else {
            (format!("{message}\n"), "text/plain; charset=utf-8")
        };
        let mut res = Response::new(ResponseBody::full(body));
        *res.status_mut() = rejection.status();
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.extensions_mut().insert(rejection);
        Some(res)
    }

    fn warn_once(&self, origin: &str, expected: &str) {
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        if warned.len() >= MAX_WARNED || warned.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return;
        }
        warned.push(origin.into());
        drop(warned);
        tracing::warn!(
            origin,
            expected,
            "amp_session.cache_origin_refused: a request from {origin} was refused; this \
             publisher's AMP cache origin is {expected} (check the configured cache domains)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near_misses() -> NearMisses {
        let mut n = NearMisses::default();
        n.add(
            "shop.example",
            "shop-example",
            "cdn.ampproject.org",
            "https://shop-example.cdn.ampproject.org",
        );
        n
    }

    #[test]
    fn near_misses_name_the_expected_origin() {
        let want = Some("https://shop-example.cdn.ampproject.org");
        // (Origin, the cache origin it was meant to be)
        let rows = [
            ("https://shop.example.cdn.ampproject.org", want),
            ("http://shop-example.cdn.ampproject.org", want),
            ("http://Shop-Example.CDN.ampproject.org", want),
            ("https://shop-example.cdn.ampproject.org:8443", want),
            ("https://other-site.cdn.ampproject.org", None),
            ("https://xshop-example.cdn.ampproject.org", None),
            ("https://shop-example.cdn.ampproject.org.evil", None),
            ("https://evil.example", None),
            ("null", None),
            ("ftp://shop-example.cdn.ampproject.org", None),
        ];
        let n = near_misses();
        for (origin, expected) in rows {
            assert_eq!(n.expected(origin), expected, "{origin}");
        }
    }

    #[test]
    fn at_most_a_few_origins_are_remembered() {
        let n = near_misses();
        for port in 0..100 {
            n.warn_once(
                &format!("https://shop-example.cdn.ampproject.org:{port}"),
                "x",
            );
        }
        assert_eq!(n.warned.lock().unwrap().len(), MAX_WARNED);
    }
}

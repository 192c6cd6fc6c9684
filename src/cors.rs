//! AMP CORS response headers.
//!
//! Only for origins the allowlist accepted: the exact `Origin` is echoed, credentials are
//! allowed, and `AMP-Redirect-To` is exposed (without it amp-form cannot read the header on
//! the cache: the classic "works on origin, silent on the cache" bug).

use http::header::Entry;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue};

const TRUE: HeaderValue = HeaderValue::from_static("true");
const EXPOSE: HeaderValue = HeaderValue::from_static("AMP-Redirect-To");
const ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// Adds the AMP CORS headers for an allowed `origin`, and `Vary: Origin` in every case
/// (the answer depends on `Origin`, so a shared cache must key on it).
#[inline]
pub(crate) fn apply(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    // Whether the app set either list header: one pass over an answer's few names costs less
    // than looking each up, and then the usual answer, without them, takes plain inserts.
    let (mut vary, mut expose) = (false, false);
    for name in headers.keys() {
        if name == VARY {
            vary = true;
        } else if name == ACCESS_CONTROL_EXPOSE_HEADERS {
            expose = true;
        }
    }
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        // With credentials, `*` in Expose-Headers is a literal name, not a wildcard (Fetch).
        if expose {
            add_token(
                headers,
                ACCESS_CONTROL_EXPOSE_HEADERS,
                b"amp-redirect-to",
                false,
                EXPOSE,
            );
        } else {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
        }
    }
    if vary {
        add_token(headers, VARY, b"origin", true, ORIGIN);
    } else {
        headers.insert(VARY, ORIGIN);
    }
}

/// Appends `value` to the comma-separated header `name` unless it already names `token`
/// (or `*`, where `star` says it is a wildcard).
fn add_token(
    headers: &mut HeaderMap,
    name: HeaderName,
    token: &[u8],
    star: bool,
    value: HeaderValue,
) {
    match headers.entry(name) {
        Entry::Vacant(v) => {
            v.insert(value);
        }
        Entry::Occupied(mut o) => {
            if !o.iter().any(|v| lists(v, token, star)) {
                o.append(value);
            }
        }
    }
}

/// Whether one comma-separated header value names `token` (or `*` when `star`).
fn lists(value: &HeaderValue, token: &[u8], star: bool) -> bool {
    value.as_bytes().split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        (star && t == b"*") || t.eq_ignore_ascii_case(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_header_table() {
        let origin = HeaderValue::from_static("https://shop-example.cdn.ampproject.org");
        // (app's Vary, app's Expose, origin?, expected Vary values, expected Expose values)
        let rows: &[(&[&str], &[&str], bool, &[&str], &[&str])] = &[
            (&[], &[], true, &["Origin"], &["AMP-Redirect-To"]),
            (&[], &[], false, &["Origin"], &[]),
            // `*` is no wildcard on a credentialed answer: AMP-Redirect-To is still listed.
            (&[], &["*"], true, &["Origin"], &["*", "AMP-Redirect-To"]),
            (
                &["Accept-Encoding"],
                &[],
                true,
                &["Accept-Encoding", "Origin"],
                &["AMP-Redirect-To"],
            ),
            (
                &["accept-encoding, origin"],
                &[],
                true,
                &["accept-encoding, origin"],
                &["AMP-Redirect-To"],
            ),
            (&["*"], &[], false, &["*"], &[]),
            (
                &[],
                &["X-Total"],
                true,
                &["Origin"],
                &["X-Total", "AMP-Redirect-To"],
            ),
            (
                &[],
                &["x-total, amp-redirect-to"],
                true,
                &["Origin"],
                &["x-total, amp-redirect-to"],
            ),
        ];
        for (vary, expose, with_origin, want_vary, want_expose) in rows {
            let mut h = HeaderMap::new();
            for v in *vary {
                h.append(VARY, HeaderValue::from_str(v).unwrap());
            }
            for v in *expose {
                h.append(
                    ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            apply(&mut h, with_origin.then(|| origin.clone()));
            let got_vary: Vec<_> = h
                .get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            let got_expose: Vec<_> = h
                .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(&got_vary, want_vary, "vary row {vary:?}");
            assert_eq!(&got_expose, want_expose, "expose row {expose:?}");
            if *with_origin {
                assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], origin);
                assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
            } else {
                assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
                assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
            }
        }
    }
}

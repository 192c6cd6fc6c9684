//! Keeping an answer that sets the session cookie out of shared caches.
//!
//! One cached copy of such an answer would hand one session to everyone who gets it. When
//! the layer adds its `Set-Cookie` to the app's answer, the answer must be `private` or
//! `no-store`:
//!
//! | the app's `Cache-Control` | sent |
//! |---|---|
//! | none | `private` |
//! | with `no-store` | as it is |
//! | with `private` (unqualified), no `public` / `s-maxage` | as it is |
//! | anything else (`public`, `s-maxage=N`, `max-age=N`, `no-cache`, `private="field"`) | `private`, then the app's directives but `public`, `s-maxage` and `private` |
//!
//! `CDN-Cache-Control` and `Surrogate-Control` (read by CDNs instead of `Cache-Control`)
//! are removed from such an answer.

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};

const PRIVATE: HeaderValue = HeaderValue::from_static("private");
/// RFC 9213, honoured by CDNs in place of `Cache-Control`.
static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// Edge Architecture 1.0, honoured by some CDNs (Fastly, Akamai) in place of `Cache-Control`.
static SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// Makes `headers` (an answer that gets the session cookie) unstorable by shared caches,
/// keeping what the app said for the browser's own cache.
pub(crate) fn keep_private(headers: &mut HeaderMap) {
    // One pass over the names instead of three lookups: an answer has a few headers, and
    // hashing a custom name costs more than comparing it with each of them.
    let (mut cache_control, mut cdn) = (false, false);
    for name in headers.keys() {
        if name == CACHE_CONTROL {
            cache_control = true;
        } else if name == CDN_CACHE_CONTROL || name == SURROGATE_CONTROL {
            cdn = true;
        }
    }
    if cdn {
        headers.remove(&CDN_CACHE_CONTROL);
        headers.remove(&SURROGATE_CONTROL);
    }
    if !cache_control {
        headers.insert(CACHE_CONTROL, PRIVATE);
        return;
    }
    let (mut private, mut no_store, mut shared, mut any) = (false, false, false, false);
    for value in headers.get_all(CACHE_CONTROL) {
        for d in directives(value.as_bytes()) {
            any = true;
            let (name, qualified) = name_of(d);
            if name.eq_ignore_ascii_case(b"no-store") {
                no_store = true;
            } else if name.eq_ignore_ascii_case(b"private") {
                // `private="Set-Cookie"` may leave the rest to a shared cache; some caches
                // ignore the field list. Only the plain form is kept as it is.
                if qualified {
                    shared = true;
                } else {
                    private = true;
                }
            } else if name.eq_ignore_ascii_case(b"public") || name.eq_ignore_ascii_case(b"s-maxage")
            {
                shared = true;
            }
        }
    }
    if !any {
        headers.insert(CACHE_CONTROL, PRIVATE);
        return;
    }
    if no_store || (private && !shared) {
        return;
    }
    let mut out = b"private".to_vec();
    for value in headers.get_all(CACHE_CONTROL) {
        for d in directives(value.as_bytes()) {
            let (name, _) = name_of(d);
            let dropped = [&b"public"[..], b"s-maxage", b"private"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n));
            if !dropped {
                out.extend_from_slice(b", ");
                out.extend_from_slice(d);
            }
        }
    }
    // Built from the app's valid header bytes and ", ": always valid.
    let value = HeaderValue::from_bytes(&out).unwrap_or(PRIVATE);
    headers.insert(CACHE_CONTROL, value);
}

/// A directive's name, and whether it has a `=value`.
fn name_of(directive: &[u8]) -> (&[u8], bool) {
    match directive.iter().position(|&b| b == b'=') {
        Some(eq) => (directive[..eq].trim_ascii(), true),
        None => (directive, false),
    }
}

/// The comma-separated directives of one `Cache-Control` value, trimmed, empty ones skipped;
/// a comma inside a quoted string (`private="a, b"`) does not split.
fn directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (mut quoted, mut escaped, mut end) = (false, false, rest.len());
        for (i, &b) in rest.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let d = rest[..end].trim_ascii();
        rest = rest.get(end + 1..).unwrap_or_default();
        if !d.is_empty() {
            return Some(d);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(app: &[&str], extra: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        let mut h = HeaderMap::new();
        for v in app {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        for (k, v) in extra {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        keep_private(&mut h);
        let cc = h
            .get_all(CACHE_CONTROL)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let others = h
            .keys()
            .filter(|k| *k != CACHE_CONTROL)
            .map(|k| k.as_str().to_owned())
            .collect();
        (cc, others)
    }

    #[test]
    fn cache_control_table() {
        // (the app's Cache-Control values, what is sent)
        let rows: &[(&[&str], &[&str])] = &[
            (&[], &["private"]),
            (&[""], &["private"]),
            (&[" , "], &["private"]),
            (&["private"], &["private"]),
            (&["Private, max-age=60"], &["Private, max-age=60"]),
            (&["no-store"], &["no-store"]),
            (&["public, no-store"], &["public, no-store"]),
            (
                &["no-cache, no-store, must-revalidate"],
                &["no-cache, no-store, must-revalidate"],
            ),
            (&["public"], &["private"]),
            (&["PUBLIC, max-age=3600"], &["private, max-age=3600"]),
            (&["max-age=60, s-maxage=600"], &["private, max-age=60"]),
            (&["s-maxage = 600"], &["private"]),
            (&["max-age=60"], &["private, max-age=60"]),
            (&["no-cache"], &["private, no-cache"]),
            (&["private, public"], &["private"]),
            (&["public", "max-age=5"], &["private, max-age=5"]),
            (&["private", "s-maxage=5"], &["private"]),
            (&["private=\"Set-Cookie\""], &["private"]),
            (
                &["private=\"a, public\", max-age=1"],
                &["private, max-age=1"],
            ),
            (
                &["no-cache=\"x, y\", public"],
                &["private, no-cache=\"x, y\""],
            ),
            (
                &["public, x-ext=\"a\\\"b, c\""],
                &["private, x-ext=\"a\\\"b, c\""],
            ),
        ];
        for (app, want) in rows {
            let (got, _) = run(app, &[]);
            assert_eq!(got, *want, "{app:?}");
        }
    }

    #[test]
    fn cdn_targeted_fields_are_removed() {
        let (cc, others) = run(
            &["no-store"],
            &[
                ("cdn-cache-control", "max-age=600"),
                ("surrogate-control", "max-age=600"),
                ("vary", "Origin"),
            ],
        );
        assert_eq!(cc, ["no-store"]);
        assert_eq!(others, ["vary"]);
    }

    #[test]
    fn directives_split_outside_quotes() {
        let got: Vec<&[u8]> = directives(b"a, b=\"1,2\" ,, c=\"\\\",\" ,d").collect();
        assert_eq!(got, [&b"a"[..], b"b=\"1,2\"", b"c=\"\\\",\"", b"d"]);
    }
}

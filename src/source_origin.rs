//! `__amp_source_origin`: the parameter amp-form appends to every `action-xhr` URL, checked
//! against the allowed origins and removed before the app sees the request.

use std::borrow::Cow;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::Uri;

use crate::classify::Classified;
use crate::config::Config;
use crate::reject::{reasons, Rejection};

/// The name amp-form appends to `action-xhr` URLs.
const NAME: &str = "__amp_source_origin";

/// Whether some key of `query` may decode to `__amp_source_origin`: it holds the name
/// as it is, or a `%` (any byte of the name may be percent-encoded). `+` decodes to a
/// space, never to `_`, so it cannot spell the name. Most queries have neither.
pub(crate) fn may_name(query: &str) -> bool {
    query.contains('%') || query.contains(NAME)
}

/// Checks and removes `__amp_source_origin` from the query, however its name is spelled:
/// each key is compared percent-decoded, as the app's form parser will read it.
/// `Ok(None)`: it was not there. It must name a publisher origin (or, from an AMP email,
/// the allowed sender).
pub(crate) fn strip(
    uri: &Uri,
    config: &Config,
    classified: &Classified,
) -> Result<Option<Uri>, Rejection> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let allowed = |value: &str| {
        // As amp-form spells it, first: equal bytes decode to the same origin.
        config.publishers.iter().any(|p| *p.source_origin == *value)
            || config
                .allowlist
                .publishers
                .iter()
                .any(|p| decodes_to(value, p.as_bytes(), false))
            || classified
                .email_sender
                .as_ref()
                .is_some_and(|s| decodes_to(value, s.as_bytes(), true))
    };
    let alone = query
        .strip_prefix(NAME)
        .and_then(|rest| rest.strip_prefix('='))
        .filter(|value| !value.contains('&'));
    if let Some(value) = alone {
        // What amp-form sends to an `action-xhr` without a query: the parameter alone.
        if !allowed(value) {
            return Err(reasons::SOURCE_ORIGIN);
        }
    } else {
        // Check every occurrence first; build the new query only when there is one (most
        // queries that pass the pre-check merely hold a `%`).
        let mut found = false;
        for pair in query.split('&') {
            if let Some(value) = raw_value(pair) {
                if !allowed(value) {
                    return Err(reasons::SOURCE_ORIGIN);
                }
                found = true;
            }
        }
        if !found {
            return Ok(None);
        }
    }
    // The new path and query in one buffer, which the URI then takes over.
    let mut pq = String::with_capacity(uri.path().len() + 1 + query.len());
    pq.push_str(uri.path());
    if alone.is_none() {
        for pair in query.split('&').filter(|p| raw_value(p).is_none()) {
            pq.push(if pq.len() == uri.path().len() {
                '?'
            } else {
                '&'
            });
            pq.push_str(pair);
        }
    }
    let pq =
        PathAndQuery::from_maybe_shared(Bytes::from(pq)).map_err(|_| reasons::SOURCE_ORIGIN)?;
    if uri.scheme().is_none() && uri.authority().is_none() {
        // Origin-form, what servers receive: the path and query are the whole URI.
        return Ok(Some(Uri::from(pq)));
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| reasons::SOURCE_ORIGIN)
}

/// The value, still encoded, of one `key=value` pair whose key decodes to
/// `__amp_source_origin`.
fn raw_value(pair: &str) -> Option<&str> {
    let (raw_key, value) = pair.split_once('=').unwrap_or((pair, ""));
    if raw_key == NAME {
        return Some(value);
    }
    // A key spelled with `%` escapes is at most three bytes per letter of the name.
    let may_match = raw_key.contains('%') && (NAME.len()..=3 * NAME.len()).contains(&raw_key.len());
    if !may_match {
        return None;
    }
    let (key, _) = form_urlencoded::parse(pair.as_bytes()).next()?;
    (key == NAME).then_some(value)
}

/// Whether the form-encoded `raw` decodes (`+` to a space, `%XX` to its byte, then UTF-8 with
/// replacement, as `form_urlencoded` reads it) to `want`, ASCII case aside when
/// `ignore_case`. Compared byte by byte while decoding, without a decoded copy.
fn decodes_to(raw: &str, want: &[u8], ignore_case: bool) -> bool {
    if !want.is_ascii() {
        // A replacement character in `want` could match invalid UTF-8: decode in full.
        let pair = [b"k=", raw.as_bytes()].concat();
        let decoded: Cow<'_, str> = form_urlencoded::parse(&pair)
            .next()
            .map_or(Cow::Borrowed(""), |(_, v)| v);
        return if ignore_case {
            decoded.as_bytes().eq_ignore_ascii_case(want)
        } else {
            decoded.as_bytes() == want
        };
    }
    let raw = raw.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let byte = match raw[i] {
            b'+' => b' ',
            b'%' => match (
                raw.get(i + 1).and_then(|&h| hex(h)),
                raw.get(i + 2).and_then(|&l| hex(l)),
            ) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b'%',
            },
            b => b,
        };
        i += 1;
        match want.get(j) {
            Some(&w) if w == byte || (ignore_case && w.eq_ignore_ascii_case(&byte)) => j += 1,
            _ => return false,
        }
    }
    j == want.len()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_spelling_of_the_name_is_seen_by_the_pre_check() {
        // (query, names the parameter as the app decodes it)
        let rows = [
            ("__amp_source_origin=x", true),
            ("%5F%5Famp_source_origin=x", true),
            ("_%5Famp_source_origin=x", true),
            ("__amp%5Fsource%5Forigin=x", true),
            ("__%61mp_source_origin=x", true),
            (
                "%5f%5f%61%6d%70%5f%73%6f%75%72%63%65%5f%6f%72%69%67%69%6e=x",
                true,
            ),
            ("__amp+source_origin=x", false),
            ("__AMP_source_origin=x", false),
            ("a=1&b=2", false),
        ];
        for (query, names_it) in rows {
            let decodes_to_it = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == NAME);
            assert_eq!(decodes_to_it, names_it, "{query}");
            if names_it {
                assert!(may_name(query), "{query}");
                assert!(query.split('&').any(|p| raw_value(p).is_some()), "{query}");
            }
        }
    }

    /// The general reading: decode the pair's value in full, then compare.
    fn general(raw: &str, want: &str, ignore_case: bool) -> bool {
        let pair = format!("k={raw}");
        let value = form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if ignore_case {
            value.as_bytes().eq_ignore_ascii_case(want.as_bytes())
        } else {
            value == want
        }
    }

    #[test]
    fn decoding_compare_table() {
        // (raw value, origin, equal)
        let rows = [
            ("https%3A%2F%2Fshop.example", "https://shop.example", true),
            ("https%3a%2f%2fshop.example", "https://shop.example", true),
            ("https://shop.example", "https://shop.example", true),
            ("https%3A%2F%2Fshop.example.", "https://shop.example", false),
            ("https%3A%2F%2Fshop.exampl", "https://shop.example", false),
            ("https%3A%2F%2Fshop.example%", "https://shop.example", false),
            ("a+b", "a b", true),
            ("a%2Bb", "a+b", true),
            ("%", "%", true),
            ("%4", "%4", true),
            ("%zz", "%zz", true),
            ("%FF", "\u{fffd}", true),
            ("", "", true),
        ];
        for (raw, want, equal) in rows {
            assert_eq!(
                decodes_to(raw, want.as_bytes(), false),
                equal,
                "{raw} {want}"
            );
            assert_eq!(general(raw, want, false), equal, "{raw} {want}");
        }
        assert!(decodes_to(
            "HTTPS%3A%2F%2FShop.Example",
            b"https://shop.example",
            true
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The byte-by-byte compare answers as decoding in full, on values near an origin.
        #[test]
        fn decoding_compare_agrees_with_the_general_reading(
            raw in "(https?|%3[aA]|%2[fF]|%[0-9a-fA-F]{0,2}|[+:/.]|shop|\\.example|[A-Za-z%é])*",
            want in prop_oneof![
                Just("https://shop.example".to_owned()),
                Just("https://SHOP.example".to_owned()),
                "(https?|[:/.+ %]|shop|é|\u{fffd})*",
            ],
            ignore_case in any::<bool>(),
        ) {
            prop_assert_eq!(decodes_to(&raw, want.as_bytes(), ignore_case), general(&raw, &want, ignore_case));
        }
    }

    /// What `strip` did before its fast paths: decode every pair, compare, rebuild.
    fn strip_by_decoding(
        path: &str,
        query: &str,
        publishers: &[&str],
    ) -> Result<Option<String>, ()> {
        let is_name = |pair: &str| {
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .filter(|(k, _)| k == NAME)
                .map(|(_, v)| v.into_owned())
        };
        let mut found = false;
        for pair in query.split('&') {
            if let Some(value) = is_name(pair) {
                if !publishers.contains(&value.as_str()) {
                    return Err(());
                }
                found = true;
            }
        }
        if !found {
            return Ok(None);
        }
        let kept: Vec<&str> = query.split('&').filter(|p| is_name(p).is_none()).collect();
        Ok(Some(if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The layer's reading of `__amp_source_origin`, fast paths and all, is the decoding
        /// reading: the same refusals, the same query left for the app.
        #[test]
        fn strip_agrees_with_decoding_every_pair(
            pairs in proptest::collection::vec(
                prop_oneof![
                    Just("__amp_source_origin=https%3A%2F%2Fshop.example".to_owned()),
                    Just("__amp_source_origin=https://shop.example".to_owned()),
                    Just("__amp_source_origin=https%3A%2F%2Fevil.example".to_owned()),
                    Just("%5F%5Famp_source_origin=https%3A%2F%2Fshop.example".to_owned()),
                    Just("__amp_source_origin".to_owned()),
                    Just("__amp_source_origin=".to_owned()),
                    "[a-z_%0-9=+]{0,12}",
                ],
                1..4,
            ),
        ) {
            let config = crate::AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(crate::Keyring::builder().signing("k1", [7u8; 32]).build().unwrap())
                .build()
                .unwrap()
                .config;
            let classified = config.allowlist.classify(&http::HeaderMap::new());
            let query = pairs.join("&");
            let Ok(uri) = format!("/cart/add?{query}").parse::<Uri>() else {
                return Ok(());
            };
            let got = strip(&uri, &config, &classified)
                .map(|u| u.map(|u| u.to_string()))
                .map_err(|_| ());
            prop_assert_eq!(got, strip_by_decoding("/cart/add", &query, &["https://shop.example"]));
        }
    }

    #[test]
    fn each_publisher_spelled_as_amp_form_spells_it() {
        // (publisher origin, its `__amp_source_origin` as amp-form writes it)
        let rows = [
            ("https://shop.example", "https%3A%2F%2Fshop.example"),
            (
                "http://shop.localhost:8080",
                "http%3A%2F%2Fshop.localhost%3A8080",
            ),
            ("https://shöp.example", "https%3A%2F%2Fxn--shp-tna.example"),
        ];
        for (origin, encoded) in rows {
            let config = crate::AmpSessionLayer::builder()
                .publisher_origin(origin)
                .keyring(
                    crate::Keyring::builder()
                        .signing("k1", [7u8; 32])
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
                .config;
            let p = &config.publishers[0];
            assert_eq!(&*p.source_origin, encoded, "{origin}");
            // The exact match answers only what decoding answers.
            assert!(decodes_to(&p.source_origin, p.origin.as_bytes(), false));
        }
    }
}

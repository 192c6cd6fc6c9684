//! Return paths can never become open redirects (SPEC section 5, "Return path").
//!
//! 1. Property (4 096 cases per origin, 2 048 for Referer-derived paths): whatever
//!    `validate_return_path` or `return_path_from_referer` accepts resolves to the publisher
//!    origin, both with `Url::join` and as the `Location` the layer actually writes
//!    (origin text + path).
//!    The same for `return_path_from_source_url` (amp-form's `SOURCE_URL`, 2 048 cases), and
//!    a differential (2 048 cases): a page URL with any query, in its origin form and in its
//!    cache form, with the AMP runtime's parameters mixed in anywhere, gives the page's own
//!    path and query, without those parameters, as `validate_return_path` normalizes it.
//! 2. A table of open-redirect payloads, each refused by `validate_return_path` on both test
//!    origins, by the config builder as a fixed return path, and at mint through `Referer`
//!    (cache page and origin page): the handoff then lands on `https://shop.example/`, never
//!    on the payload.

mod common;

use common::*;
use http::{HeaderValue, StatusCode};
use proptest::prelude::*;
use tower_amp_session::return_path::{
    return_path_from_referer, return_path_from_source_url, validate_return_path,
};
use tower_amp_session::ReturnTo;
use url::Url;

const ORIGINS: [&str; 2] = ["https://shop.example", "http://shop.localhost:8080"];

fn url(origin: &str) -> Url {
    Url::parse(&format!("{origin}/")).unwrap()
}

/// Everything a browser could make of an accepted path lands on `origin`.
fn assert_lands_on_origin(candidate: &str, accepted: &str, origin: &str) {
    let base = url(origin);
    let joined = base.join(accepted).unwrap();
    assert_eq!(
        joined.origin(),
        base.origin(),
        "{candidate:?} -> {accepted:?}"
    );
    assert!(
        joined.path().starts_with('/') && !joined.path().starts_with("//"),
        "{candidate:?} -> {accepted:?} -> path {}",
        joined.path()
    );
    // The layer writes `Location: <origin><path>` by concatenation, not by joining.
    let written = Url::parse(&format!("{origin}{accepted}")).unwrap();
    assert_eq!(
        written.origin(),
        base.origin(),
        "{candidate:?} -> {accepted:?} written"
    );
    assert!(
        !written.path().starts_with("//"),
        "{candidate:?} -> {accepted:?}"
    );
    // The raw candidate resolves there too, so a consumer that skipped normalization is safe.
    assert_eq!(
        base.join(candidate).unwrap().origin(),
        base.origin(),
        "{candidate:?}"
    );
    // Printable ASCII only: safe in a header and in HTML attribute context after escaping.
    assert!(
        accepted.bytes().all(|b| b.is_ascii_graphic()),
        "{accepted:?}"
    );
    // A fixed point: validating the output again yields the output.
    assert_eq!(
        validate_return_path(accepted, &base).as_deref(),
        Ok(accepted),
        "{candidate:?} is not idempotent"
    );
}

/// Pieces that open redirects are made of.
const PIECES: &[&str] = &[
    "/",
    "//",
    "\\",
    ".",
    "..",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%2e",
    "%2E",
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
    "javascript:",
    "\t",
    "\n",
    "\r",
    " ",
    "%0a",
    "%0d",
    "%00",
    "%09",
    "%20",
    "\u{3002}",
    "%E3%80%82",
    "\u{ff0f}",
    "shop.example",
    ";",
    "&",
    "=",
    "~",
    "%252f",
    "%255c",
    "[",
    "]",
    "|",
    "^",
    "`",
    "{",
    "'",
    "\"",
    "<",
    ">",
    "\u{0}",
    "\u{7f}",
    "\u{2028}",
];

fn candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        // Glued pieces, with and without a leading '/'.
        (
            any::<bool>(),
            prop::collection::vec(prop::sample::select(PIECES), 0..10)
        )
            .prop_map(|(slash, v)| {
                let mut s = String::from(if slash { "/" } else { "" });
                s.extend(v);
                s
            }),
        // Printable ASCII after a '/': the accepted space, explored blindly.
        "/[ -~]{0,40}",
        // Anything at all.
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn accepted_paths_resolve_to_the_origin(c in candidate()) {
        for origin in ORIGINS {
            if let Ok(accepted) = validate_return_path(&c, &url(origin)) {
                assert_lands_on_origin(&c, &accepted, origin);
            }
        }
    }
}

fn on_cache(host: &str) -> bool {
    host == "shop-example.cdn.ampproject.org"
        || host == "shop-localhost.cdn.ampproject.org"
        || host == "shop-example.cache.localhost:8081"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A Referer made of a real prefix and any suffix only ever yields a validated path.
    #[test]
    fn referer_paths_resolve_to_the_origin(
        prefix in prop::sample::select(vec![
            "https://shop-example.cdn.ampproject.org/c/s/shop.example",
            "https://shop-example.cdn.ampproject.org/c/shop.example",
            "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080",
            "http://shop-example.cache.localhost:8081/c/s/shop.example",
            "https://shop.example",
            "http://shop.localhost:8080",
            "https://shop-example.cdn.ampproject.org",
            "",
        ]),
        rest in candidate(),
    ) {
        let referer = format!("{prefix}{rest}");
        for origin in ORIGINS {
            if let Some(accepted) = return_path_from_referer(&referer, &url(origin), on_cache) {
                assert_lands_on_origin(&accepted, &accepted, origin);
            }
        }
    }
}

/// Page URL prefixes as `SOURCE_URL` (or a cache page URL) starts, for both test origins.
const SOURCE_PREFIXES: &[&str] = &[
    "https://shop.example",
    "HTTPS://Shop.Example:443",
    "http://shop.localhost:8080",
    "https://shop-example.cdn.ampproject.org/c/s/shop.example",
    "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080",
    "http://shop-example.cache.localhost:8081/c/s/shop.example",
    "https://shop-example.cdn.ampproject.org/c/s/evil.example",
    "https://evil-example.cdn.ampproject.org/c/s/shop.example",
    "https://shop.example.evil.com",
    "https://shop.example@evil.com",
    "/",
    "",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A `SOURCE_URL` made of a real prefix and any suffix only ever yields a validated path
    /// on the origin, with none of the AMP runtime's parameters left in its query.
    #[test]
    fn source_url_paths_resolve_to_the_origin(
        prefix in prop::sample::select(SOURCE_PREFIXES),
        rest in candidate(),
    ) {
        let source = format!("{prefix}{rest}");
        for origin in ORIGINS {
            if let Some(accepted) = return_path_from_source_url(&source, &url(origin), on_cache) {
                assert_lands_on_origin(&accepted, &accepted, origin);
                let query = accepted.split_once('?').map_or("", |(_, q)| q);
                for (name, _) in form_urlencoded::parse(query.as_bytes()) {
                    prop_assert!(!is_amp_param(&name), "{source:?} -> {accepted:?}");
                }
            }
        }
    }
}

/// The parameters amphtml's `removeAmpJsParamsFromSearch` (src/url.js) removes, and
/// `__amp_source_origin` (src/url.js `getCorsUrl`): the model the differential checks against.
fn is_amp_param(name: &str) -> bool {
    name.starts_with("amp_js")
        || ["amp_gsa", "amp_r", "amp_kit", "usqp", "__amp_source_origin"].contains(&name)
}

/// A query pair of the shopper's page (never one of the runtime's).
fn page_pair() -> impl Strategy<Value = String> {
    (
        "[a-z_][a-z0-9_.~-]{0,6}",
        "[A-Za-z0-9%_.~+-]{0,8}",
        any::<bool>(),
    )
        .prop_filter("not a runtime parameter", |(k, _, _)| !is_amp_param(k))
        .prop_map(|(k, v, eq)| if eq { format!("{k}={v}") } else { k })
}

/// A query pair the AMP runtime or a cache adds to a page URL.
fn amp_pair() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "amp_js_v",
            "amp_jsx",
            "amp_gsa",
            "amp_r",
            "amp_kit",
            "usqp",
            "__amp_source_origin",
            "amp_js%5Fv",
        ]),
        // Their values are tokens; a URL with an unsafe encoding anywhere (`%0A`) is refused
        // whole, before anything is removed (the property above covers those).
        "[A-Za-z0-9._-]{0,8}",
    )
        .prop_map(|(k, v)| format!("{k}={v}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Differential: a page `<path>?<query>` on the origin, with the runtime's parameters
    /// mixed in anywhere, read from its origin URL and from its cache URL, gives exactly the
    /// page's own path and query (the shopper's pairs in order), as `validate_return_path`
    /// normalizes that.
    #[test]
    fn source_url_keeps_the_page_query_and_drops_the_runtimes(
        segments in prop::collection::vec("[a-z0-9_~-][a-z0-9._~-]{0,7}", 0..4),
        pairs in prop::collection::vec((page_pair(), any::<bool>()), 0..5),
        extra in prop::collection::vec((amp_pair(), 0usize..6), 0..4),
    ) {
        let path = format!("/{}", segments.join("/"));
        let mut all: Vec<String> = pairs.iter().map(|(p, _)| p.clone()).collect();
        for (pair, at) in &extra {
            all.insert((*at).min(all.len()), pair.clone());
        }
        let with_query = |pairs: &[String]| {
            if pairs.is_empty() { path.clone() } else { format!("{path}?{}", pairs.join("&")) }
        };
        let own: Vec<String> = pairs.iter().map(|(p, _)| p.clone()).collect();
        for (origin, cache_prefix) in [
            ("https://shop.example", "https://shop-example.cdn.ampproject.org/c/s/shop.example"),
            ("http://shop.localhost:8080", "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080"),
        ] {
            let base = url(origin);
            let want = validate_return_path(&with_query(&own), &base).ok();
            for source in [
                format!("{origin}{}", with_query(&all)),
                format!("{cache_prefix}{}", with_query(&all)),
            ] {
                prop_assert_eq!(
                    return_path_from_source_url(&source, &base, on_cache),
                    want.clone(),
                    "{}", source
                );
            }
        }
    }
}

/// Open-redirect payloads. Every one is refused; the comment says what it aims at.
const PAYLOADS: &[&str] = &[
    "//evil.com",                     // protocol-relative URL
    "///evil.com",                    // browsers collapse extra slashes
    "////evil.com",                   //
    "/\\evil.com",                    // browsers read '\' as '/'
    "\\\\evil.com",                   //
    "\\/evil.com",                    //
    "/\\/evil.com",                   //
    "/%5Cevil.com",                   // '\' once decoded
    "/%5C%5Cevil.com",                //
    "/%255C%255Cevil.com",            // '\' after a double decode
    "/%2F%2Fevil.com",                // '//' once decoded
    "/%2f/evil.com",                  //
    "/%252F%252Fevil.com",            // '//' after a double decode
    "%2F%2Fevil.com",                 // no leading '/' at all
    "https:evil.com",                 // scheme-relative, no slashes
    "http:/\\/evil.com",              // mixed slashes after a scheme
    "https://evil.com",               // absolute URL
    "https://shop.example@evil.com",  // userinfo that looks like the publisher
    "https://shop.example.evil.com/", // publisher as a subdomain
    "javascript:alert(1)",            // script URL
    "data:text/html,<script>alert(1)</script>",
    "/\t/evil.com",                        // tab: WHATWG parsers drop it, leaving '//'
    "/\r/evil.com",                        // CR (cannot travel in a header)
    "/\n/evil.com",                        // LF (cannot travel in a header)
    "/x\r\nLocation: https://evil.com",    // raw header injection (cannot travel in a header)
    "/%0d%0aLocation:%20https://evil.com", // encoded header injection
    "/%0D%0ASet-Cookie:%20a=b",            //
    "target.com@evil.com",                 // userinfo trick without a scheme
    "//target.com@evil.com",               //
    "//evil.com\\@shop.example",           // parser differential: '\' ends the authority
    "evil%E3%80%82com",                    // ideographic full stop, encoded
    "//evil%E3%80%82com",                  //
    "//evil\u{3002}com",                   // ideographic full stop, raw
    "/\u{ff0f}evil.com",                   // fullwidth solidus
    "/%00",                                // NUL, encoded
    "/%00//evil.com",                      //
    "/x\u{0}",                             // NUL, raw (cannot travel in a header)
    "/%09/evil.com",                       // encoded tab
    "/.//evil.com",                        // dot segments that leave '//'
    "/..//evil.com",                       //
    "/x/..//evil.com",                     //
    "/%2e%2e//evil.com",                   // encoded dot segments
    "/%2e%2e/%2fevil.com",                 //
    " //evil.com",                         // leading space, trimmed by URL parsers
    "/ /evil.com",                         // space (in a Referer it is encoded: see below)
];

#[test]
fn payloads_are_refused_by_validation_and_config() {
    assert!(PAYLOADS.len() >= 25);
    for origin in ORIGINS {
        for p in PAYLOADS {
            let got = validate_return_path(p, &url(origin));
            assert!(got.is_err(), "{p:?} on {origin}: accepted as {got:?}");
        }
    }
    for p in PAYLOADS {
        let built = builder().return_to(ReturnTo::Path((*p).into())).build();
        assert!(built.is_err(), "{p:?} accepted as a configured return path");
    }
}

// A token sealed with the layer's own key that carries a payload as its return path is
// refused at completion: the token format is private, so that check is a unit test
// (src/token/tests.rs, `hostile_return_paths_in_a_sealed_token_are_refused_at_completion`).

/// Mints a handoff with `referer`, completes it, and returns the final `Location`.
async fn location_after_handoff(referer: &str) -> String {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add",
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
                ("referer", referer),
            ],
            "product_id=1&quantity=1",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{referer:?}: {}", a.body);
    let handoff = path_of(a.header("amp-redirect-to").unwrap());
    let done = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "{referer:?}: {}",
        done.body
    );
    assert_eq!(rec.count(), 1, "{referer:?}");
    done.header("location").unwrap().to_owned()
}

#[tokio::test]
async fn payloads_in_referer_are_not_used_at_mint() {
    let mut sent = 0;
    let mut unsendable = Vec::new();
    for p in PAYLOADS {
        for referer in [
            format!("https://shop-example.cdn.ampproject.org/c/s/shop.example{p}"),
            format!("https://shop.example{p}"),
        ] {
            // In a URL the space is percent-encoded: `/%20/evil.com` is a page on the
            // origin (row in `legitimate_referers_are_used`), not a payload any more.
            if *p == "/ /evil.com" {
                continue;
            }
            // CR, LF and NUL cannot be put in a header at all (validation above covers them).
            if HeaderValue::from_str(&referer).is_err() {
                unsendable.push(*p);
                continue;
            }
            sent += 1;
            assert_eq!(
                location_after_handoff(&referer).await,
                "https://shop.example/",
                "Referer {referer:?} steered the redirect"
            );
        }
    }
    unsendable.dedup();
    assert_eq!(
        unsendable,
        [
            "/\r/evil.com",
            "/\n/evil.com",
            "/x\r\nLocation: https://evil.com",
            "/x\u{0}"
        ]
    );
    assert!(sent >= 2 * 25, "only {sent} Referers sent");
}

/// Control: the same machinery does carry a legitimate page, so the rows above pass because
/// the payloads are refused, not because Referer is ignored.
#[tokio::test]
async fn legitimate_referers_are_used() {
    let rows: &[(&str, &str)] = &[
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3?x=1",
            "https://shop.example/products/3?x=1",
        ),
        ("https://shop.example/cart", "https://shop.example/cart"),
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/@evil.com",
            "https://shop.example/@evil.com",
        ),
        // The URL parser encodes the space: a single-'/' path on the origin.
        (
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/ /evil.com",
            "https://shop.example/%20/evil.com",
        ),
    ];
    for (referer, want) in rows {
        assert_eq!(location_after_handoff(referer).await, *want, "{referer}");
    }
}

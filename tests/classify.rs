//! SPEC section 3 as a table: each request's source, what reaches the app, and the CORS answer.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http::StatusCode;
use tower_amp_session::RequestSource;

/// What the layer does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Reaches the app with this source.
    App(RequestSource),
    /// Answered by the layer with this status; the app is not called.
    Refused(u16),
    /// Handed off (cookieless state change from the cache).
    Handoff,
}
use Outcome::*;

const SAME: RequestSource = RequestSource::SameOrigin;
const CACHE_SRC: RequestSource = RequestSource::AmpCache;
const DIRECT: RequestSource = RequestSource::Direct;
const FOREIGN: RequestSource = RequestSource::Foreign;

#[tokio::test]
async fn classification_table() {
    let id = tower_amp_session::SessionId::generate();
    let cookie = format!("__Host-amp_session={}", id.as_str());
    let c = cookie.as_str();
    // (name, method, uri, headers, outcome)
    let rows: Vec<(&str, &str, &str, Vec<(&str, &str)>, Outcome)> = vec![
        // same origin
        (
            "publisher Origin, GET",
            "GET",
            "/",
            vec![("origin", PUBLISHER)],
            App(SAME),
        ),
        (
            "publisher Origin, POST",
            "POST",
            "/",
            vec![("origin", PUBLISHER)],
            App(SAME),
        ),
        (
            "AMP-Same-Origin, no Origin, POST",
            "POST",
            "/",
            vec![("amp-same-origin", "true")],
            App(SAME),
        ),
        (
            "AMP-Same-Origin with publisher Origin",
            "POST",
            "/",
            vec![("origin", PUBLISHER), ("amp-same-origin", "true")],
            App(SAME),
        ),
        // AMP cache
        (
            "Google cache, GET",
            "GET",
            "/",
            vec![("origin", CACHE)],
            App(CACHE_SRC),
        ),
        (
            "Google cache, POST with cookie",
            "POST",
            "/",
            vec![("origin", CACHE), ("cookie", c)],
            App(CACHE_SRC),
        ),
        (
            "Bing www cache, POST with cookie",
            "POST",
            "/",
            vec![("origin", BING), ("cookie", c)],
            App(CACHE_SRC),
        ),
        (
            "Bing bare cache, POST with cookie",
            "POST",
            "/",
            vec![("origin", BING_BARE), ("cookie", c)],
            App(CACHE_SRC),
        ),
        (
            "custom http cache with port",
            "POST",
            "/",
            vec![("origin", LOCAL_CACHE), ("cookie", c)],
            App(CACHE_SRC),
        ),
        (
            "Google cache, POST without cookie",
            "POST",
            "/",
            vec![("origin", CACHE)],
            Handoff,
        ),
        // direct
        ("no Origin, GET", "GET", "/", vec![], App(DIRECT)),
        ("no Origin, HEAD", "HEAD", "/", vec![], App(DIRECT)),
        ("no Origin, POST", "POST", "/", vec![], Refused(403)),
        ("no Origin, DELETE", "DELETE", "/", vec![], Refused(403)),
        (
            "AMP-Same-Origin: false, POST",
            "POST",
            "/",
            vec![("amp-same-origin", "false")],
            Refused(403),
        ),
        (
            "AMP-Same-Origin: yes, GET",
            "GET",
            "/",
            vec![("amp-same-origin", "yes")],
            App(DIRECT),
        ),
        // foreign
        (
            "foreign Origin, GET",
            "GET",
            "/",
            vec![("origin", "https://evil.example")],
            App(FOREIGN),
        ),
        (
            "foreign Origin, POST",
            "POST",
            "/",
            vec![("origin", "https://evil.example")],
            Refused(403),
        ),
        (
            "null Origin, POST",
            "POST",
            "/",
            vec![("origin", "null")],
            Refused(403),
        ),
        (
            "other publisher's cache subdomain",
            "POST",
            "/",
            vec![("origin", OTHER_CACHE)],
            Refused(403),
        ),
        (
            "foreign Origin with AMP-Same-Origin",
            "POST",
            "/",
            vec![
                ("origin", "https://evil.example"),
                ("amp-same-origin", "true"),
            ],
            Refused(403),
        ),
        (
            "cache host over http (not allowed for Google)",
            "POST",
            "/",
            vec![("origin", "http://shop-example.cdn.ampproject.org")],
            Refused(403),
        ),
        (
            "cache with a port (not allowed for Google)",
            "POST",
            "/",
            vec![("origin", "https://shop-example.cdn.ampproject.org:444")],
            Refused(403),
        ),
        (
            "custom cache over https without its port",
            "POST",
            "/",
            vec![("origin", "https://shop-example.cache.localhost")],
            Refused(403),
        ),
        (
            "publisher over http",
            "POST",
            "/",
            vec![("origin", "http://shop.example")],
            Refused(403),
        ),
        (
            "publisher with trailing slash",
            "POST",
            "/",
            vec![("origin", "https://shop.example/")],
            Refused(403),
        ),
        (
            "subdomain of publisher",
            "POST",
            "/",
            vec![("origin", "https://evil.shop.example")],
            Refused(403),
        ),
        (
            "publisher as a suffix",
            "POST",
            "/",
            vec![("origin", "https://shop.example.evil.com")],
            Refused(403),
        ),
        (
            "two Origin headers",
            "POST",
            "/",
            vec![("origin", PUBLISHER), ("origin", PUBLISHER)],
            Refused(403),
        ),
        (
            "OPTIONS preflight from cache is not answered as CORS",
            "OPTIONS",
            "/",
            vec![("origin", CACHE)],
            App(CACHE_SRC),
        ),
        // __amp_source_origin
        (
            "source origin = publisher",
            "POST",
            "/x?a=1&__amp_source_origin=https%3A%2F%2Fshop.example&b=2",
            vec![("origin", PUBLISHER)],
            App(SAME),
        ),
        (
            "source origin = another publisher",
            "POST",
            "/x?__amp_source_origin=https%3A%2F%2Fevil.example",
            vec![("origin", PUBLISHER)],
            Refused(403),
        ),
        (
            "source origin = the cache",
            "GET",
            "/x?__amp_source_origin=https%3A%2F%2Fshop-example.cdn.ampproject.org",
            vec![("origin", CACHE)],
            Refused(403),
        ),
        (
            "source origin empty",
            "GET",
            "/x?__amp_source_origin=",
            vec![],
            Refused(403),
        ),
        (
            "source origin twice, one bad",
            "POST",
            "/x?__amp_source_origin=https%3A%2F%2Fshop.example&__amp_source_origin=x",
            vec![("origin", PUBLISHER)],
            Refused(403),
        ),
    ];
    for (name, method, uri, headers, want) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let a = send(&mut svc, request(method, uri, &headers, "")).await;
        let got = match rec.seen().first() {
            Some(s) => App(s.session.clone().unwrap().source()),
            None if a.header("amp-redirect-to").is_some() => Handoff,
            None => Refused(a.status.as_u16()),
        };
        assert_eq!(got, want, "{name}");
        if let Refused(_) = want {
            let r = a.rejection.expect("rejections carry their reason");
            assert!(
                !a.body.is_empty() && a.body.contains(r.reason()),
                "{name}: {}",
                a.body
            );
        }
    }
}

#[tokio::test]
async fn amp_source_origin_is_removed_and_the_rest_kept() {
    let rows = [
        ("/x?__amp_source_origin=https%3A%2F%2Fshop.example", "/x"),
        (
            "/x?a=1&__amp_source_origin=https%3A%2F%2Fshop.example&b=%20+2",
            "/x?a=1&b=%20+2",
        ),
        (
            "/x?__amp_source_origin=https%3A%2F%2Fshop.example&a=1",
            "/x?a=1",
        ),
        ("/x?a=__amp_source_origin", "/x?a=__amp_source_origin"),
    ];
    for (uri, want) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let a = send(&mut svc, request("GET", uri, &[("origin", PUBLISHER)], "")).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_eq!(rec.seen()[0].uri, want, "{uri}");
    }
}

#[tokio::test]
async fn direct_changes_can_be_allowed_for_non_browser_clients() {
    let rec = Recorder::default();
    let mut svc = service(
        &builder().allow_direct_changes(true).build().unwrap(),
        app(&rec, StatusCode::OK, &[]),
    );
    let a = send(&mut svc, request("POST", "/api", &[], "")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(rec.seen()[0].session.clone().unwrap().source(), DIRECT);
}

#[tokio::test]
async fn state_changing_methods_are_configurable() {
    let rec = Recorder::default();
    let layer = builder()
        .safe_methods([
            http::Method::GET,
            http::Method::HEAD,
            http::Method::OPTIONS,
            http::Method::from_bytes(b"REPORT").unwrap(),
        ])
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request("REPORT", "/", &[("origin", "https://evil.example")], ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(
        &mut svc,
        request("PATCH", "/", &[("origin", "https://evil.example")], ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cors_headers_table() {
    let rows: &[(&str, Vec<(&str, &str)>, Option<&str>)] = &[
        (
            "publisher Origin",
            vec![("origin", PUBLISHER)],
            Some(PUBLISHER),
        ),
        ("Google cache", vec![("origin", CACHE)], Some(CACHE)),
        ("Bing cache", vec![("origin", BING)], Some(BING)),
        (
            "local cache",
            vec![("origin", LOCAL_CACHE)],
            Some(LOCAL_CACHE),
        ),
        (
            "AMP-Same-Origin without Origin",
            vec![("amp-same-origin", "true")],
            None,
        ),
        ("direct", vec![], None),
        ("foreign", vec![("origin", "https://evil.example")], None),
        (
            "other publisher's cache",
            vec![("origin", OTHER_CACHE)],
            None,
        ),
        ("null", vec![("origin", "null")], None),
    ];
    for (name, headers, want) in rows {
        let rec = Recorder::default();
        let mut svc = service(
            &builder().build().unwrap(),
            app(
                &rec,
                StatusCode::OK,
                &[
                    ("vary", "Accept-Encoding"),
                    ("access-control-expose-headers", "X-Cart-Count"),
                ],
            ),
        );
        let a = send(&mut svc, request("GET", "/cart.json", headers, "")).await;
        assert_eq!(a.header("access-control-allow-origin"), *want, "{name}");
        if want.is_some() {
            assert_eq!(
                a.header("access-control-allow-credentials"),
                Some("true"),
                "{name}"
            );
            assert_eq!(
                a.all("access-control-expose-headers"),
                ["X-Cart-Count", "AMP-Redirect-To"],
                "{name}"
            );
        } else {
            assert_eq!(a.header("access-control-allow-credentials"), None, "{name}");
            assert_eq!(
                a.all("access-control-expose-headers"),
                ["X-Cart-Count"],
                "{name}"
            );
        }
        assert_eq!(
            a.all("vary"),
            ["Accept-Encoding", "Origin"],
            "{name}: Vary appended, never replaced"
        );
    }
}

#[tokio::test]
async fn rejections_from_the_publishers_pages_carry_cors_so_amp_form_can_show_them() {
    let rec = Recorder::default();
    let mut svc = service(
        &builder().body_limit(16).build().unwrap(),
        app(&rec, StatusCode::OK, &[]),
    );
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add",
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &"a=1&".repeat(10),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.header("access-control-allow-origin"), Some(CACHE));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!(a.body.starts_with("{\"error\":"), "{}", a.body);
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn session_cookie_table() {
    let id = tower_amp_session::SessionId::generate();
    let good = format!("__Host-amp_session={}", id.as_str());
    let other = format!(
        "__Host-amp_session={}",
        tower_amp_session::SessionId::generate().as_str()
    );
    // (name, Cookie header values, status, same session kept?, new cookie set?)
    let rows: Vec<(&str, Vec<String>, u16, bool, bool)> = vec![
        ("valid cookie", vec![good.clone()], 200, true, false),
        (
            "valid among others",
            vec![format!("a=1; {good}; b=2")],
            200,
            true,
            false,
        ),
        ("no cookie", vec![], 200, false, true),
        (
            "malformed value",
            vec!["__Host-amp_session=abc".into()],
            200,
            false,
            true,
        ),
        (
            "8 KiB value",
            vec![format!("__Host-amp_session={}", "A".repeat(8192))],
            200,
            false,
            true,
        ),
        (
            "same cookie twice",
            vec![good.clone(), good.clone()],
            200,
            true,
            false,
        ),
        // Never a 400: the first valid value is the session.
        (
            "two different sessions, ours first",
            vec![format!("{good}; {other}")],
            200,
            true,
            false,
        ),
        (
            "two different sessions, the other first",
            vec![format!("{other}; {good}")],
            200,
            false,
            false,
        ),
        (
            "a cookie without the __Host- prefix is not the session",
            vec![format!("amp_session={}", id.as_str())],
            200,
            false,
            true,
        ),
    ];
    for (name, cookies, status, kept, set) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", c.as_str())).collect();
        let a = send(&mut svc, request("GET", "/", &headers, "")).await;
        assert_eq!(a.status.as_u16(), status, "{name}");
        assert_eq!(a.session_cookie().is_some(), set, "{name}");
        if status == 200 {
            let session = rec.seen()[0].session.clone().unwrap();
            assert_eq!(session.id() == id, kept, "{name}");
            assert_eq!(session.is_new(), set, "{name}");
        }
    }
}

//! Cookies and caches (SPEC 4): a cookie the layer adds never reaches a shared cache.
//!
//! One table of answers, each source and status the layer or the app produces: whether the
//! answer carries `Set-Cookie`, and its `Cache-Control`. The layer sets no cookie on its
//! own rejections, on answers to foreign origins, to preflights (`OPTIONS`) or to `HEAD`;
//! where it adds one to the app's answer, the answer is `private` (the app's `no-store` or
//! `private` kept; `public` and `s-maxage` rewritten).

mod common;

use common::{
    app, builder, path_of, request, send, service, Answer, Recorder, CACHE, COOKIE, NAV, PUBLISHER,
};
use http::StatusCode;
use tower_amp_session::SessionId;

const FORM: &str = "application/x-www-form-urlencoded";
const FOREIGN: &str = "https://evil.example";

/// How a row reaches its answer.
#[derive(Debug, Clone)]
enum Ask {
    /// One request: method, path, headers, body.
    Once(
        &'static str,
        &'static str,
        Vec<(&'static str, String)>,
        String,
    ),
    /// A cookieless form post from the cache, then the navigation to its handoff URL.
    Completion,
    /// The same, then that navigation again (a reload), with the session's cookie.
    CompletionReload,
}
use Ask::*;

/// (row, the app's status and headers, how, Set-Cookie?, Cache-Control sent)
type Row = (
    &'static str,
    (StatusCode, &'static [(&'static str, &'static str)]),
    Ask,
    bool,
    Option<&'static str>,
);

const OK: (StatusCode, &[(&str, &str)]) = (StatusCode::OK, &[]);

fn h(name: &'static str, value: &str) -> (&'static str, String) {
    (name, value.to_owned())
}

#[tokio::test]
async fn set_cookie_and_cache_control_table() {
    let id = SessionId::generate();
    let cookie = format!("{COOKIE}={id}");
    let get = |headers: Vec<(&'static str, String)>| Once("GET", "/products/1", headers, "".into());
    let post = |headers: Vec<(&'static str, String)>, body: &str| {
        let mut headers = headers;
        headers.push(h("content-type", FORM));
        Once("POST", "/cart/add", headers, body.to_owned())
    };
    let public: &[(&str, &str)] = &[("cache-control", "public, max-age=600")];
    let rows: Vec<Row> = vec![
        // Sources, the app answering 200 without Cache-Control.
        (
            "same origin, new session",
            OK,
            get(vec![h("origin", PUBLISHER)]),
            true,
            Some("private"),
        ),
        (
            "same origin (AMP-Same-Origin), new session",
            OK,
            post(vec![h("amp-same-origin", "true")], "a=1"),
            true,
            Some("private"),
        ),
        (
            "same origin, with cookie",
            OK,
            get(vec![h("origin", PUBLISHER), h("cookie", &cookie)]),
            false,
            None,
        ),
        (
            "direct navigation, new session",
            OK,
            get(vec![]),
            true,
            Some("private"),
        ),
        (
            "direct navigation, with cookie",
            OK,
            get(vec![h("cookie", &cookie)]),
            false,
            None,
        ),
        (
            "cache GET, new session",
            OK,
            get(vec![h("origin", CACHE)]),
            true,
            Some("private"),
        ),
        (
            "cache GET, with cookie",
            OK,
            get(vec![h("origin", CACHE), h("cookie", &cookie)]),
            false,
            None,
        ),
        (
            "cache POST, with cookie",
            OK,
            post(vec![h("origin", CACHE), h("cookie", &cookie)], "a=1"),
            false,
            None,
        ),
        (
            "cache POST, no cookie: mint",
            OK,
            post(vec![h("origin", CACHE)], "a=1"),
            false,
            Some("no-store"),
        ),
        (
            "foreign GET",
            OK,
            get(vec![h("origin", FOREIGN)]),
            false,
            None,
        ),
        (
            "foreign GET, app says public",
            (StatusCode::OK, public),
            get(vec![h("origin", FOREIGN)]),
            false,
            Some("public, max-age=600"),
        ),
        (
            "preflight from the cache",
            OK,
            Once(
                "OPTIONS",
                "/cart/add",
                vec![
                    h("origin", CACHE),
                    h("access-control-request-method", "POST"),
                ],
                "".into(),
            ),
            false,
            None,
        ),
        (
            "OPTIONS, direct",
            OK,
            Once("OPTIONS", "/", vec![], "".into()),
            false,
            None,
        ),
        (
            "HEAD, direct",
            OK,
            Once("HEAD", "/products/1", vec![], "".into()),
            false,
            None,
        ),
        (
            "HEAD from the cache",
            OK,
            Once("HEAD", "/products/1", vec![h("origin", CACHE)], "".into()),
            false,
            None,
        ),
        // The layer's own rejections.
        (
            "rejection 403: foreign POST",
            OK,
            post(vec![h("origin", FOREIGN)], "a=1"),
            false,
            Some("no-store"),
        ),
        (
            "rejection 403: POST without Origin",
            OK,
            post(vec![], "a=1"),
            false,
            Some("no-store"),
        ),
        (
            "rejection 413: form too large at mint",
            OK,
            post(vec![h("origin", CACHE)], &format!("a={}", "x".repeat(5000))),
            false,
            Some("no-store"),
        ),
        // The app's error answers to a new visitor.
        (
            "404 from the app",
            (StatusCode::NOT_FOUND, &[]),
            get(vec![]),
            true,
            Some("private"),
        ),
        (
            "405 from the app",
            (StatusCode::METHOD_NOT_ALLOWED, &[]),
            post(vec![h("origin", PUBLISHER)], "a=1"),
            true,
            Some("private"),
        ),
        (
            "404 from the app, with cookie",
            (StatusCode::NOT_FOUND, &[]),
            get(vec![h("cookie", &cookie)]),
            false,
            None,
        ),
        // Handoff completions.
        (
            "handoff completion 303",
            OK,
            Completion,
            true,
            Some("no-store"),
        ),
        (
            "handoff completion reloaded 303",
            OK,
            CompletionReload,
            false,
            Some("no-store"),
        ),
        (
            "handoff completion, app refused (422)",
            (StatusCode::UNPROCESSABLE_ENTITY, &[]),
            Completion,
            true,
            Some("no-store"),
        ),
        // What the app said about caching, on an answer that gets the cookie.
        (
            "app: public",
            (StatusCode::OK, public),
            get(vec![]),
            true,
            Some("private, max-age=600"),
        ),
        (
            "app: public, with cookie (left alone)",
            (StatusCode::OK, public),
            get(vec![h("cookie", &cookie)]),
            false,
            Some("public, max-age=600"),
        ),
        (
            "app: s-maxage",
            (
                StatusCode::OK,
                &[("cache-control", "max-age=60, s-maxage=3600")],
            ),
            get(vec![]),
            true,
            Some("private, max-age=60"),
        ),
        (
            "app: max-age only",
            (StatusCode::OK, &[("cache-control", "max-age=60")]),
            get(vec![]),
            true,
            Some("private, max-age=60"),
        ),
        (
            "app: no-cache",
            (StatusCode::OK, &[("cache-control", "no-cache")]),
            get(vec![]),
            true,
            Some("private, no-cache"),
        ),
        (
            "app: private",
            (StatusCode::OK, &[("cache-control", "private, max-age=60")]),
            get(vec![]),
            true,
            Some("private, max-age=60"),
        ),
        (
            "app: no-store",
            (StatusCode::OK, &[("cache-control", "no-store")]),
            get(vec![]),
            true,
            Some("no-store"),
        ),
        (
            "app: public 404",
            (StatusCode::NOT_FOUND, public),
            get(vec![]),
            true,
            Some("private, max-age=600"),
        ),
        (
            "app: public, cache GET",
            (StatusCode::OK, public),
            get(vec![h("origin", CACHE)]),
            true,
            Some("private, max-age=600"),
        ),
    ];
    for (row, (status, extra), ask, want_cookie, want_cc) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, status, extra));
        let a: Answer = match ask {
            Once(method, path, headers, body) => {
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, &**v)).collect();
                send(&mut svc, request(method, path, &headers, &body)).await
            }
            Completion | CompletionReload => {
                let headers = [("origin", CACHE), ("content-type", FORM)];
                let mint = send(&mut svc, request("POST", "/cart/add", &headers, "a=1")).await;
                let to = path_of(mint.header("amp-redirect-to").expect("minted"));
                let done = send(&mut svc, request("GET", &to, &NAV, "")).await;
                if let CompletionReload = ask {
                    let cookie = done.session_cookie().expect("a new session");
                    let headers = [NAV[0], NAV[1], NAV[2], ("cookie", &*cookie)];
                    send(&mut svc, request("GET", &to, &headers, "")).await
                } else {
                    done
                }
            }
        };
        assert!(a.status.as_u16() < 500, "{row}: {}", a.status);
        let cookies = a.all("set-cookie");
        assert_eq!(
            !cookies.is_empty(),
            want_cookie,
            "{row}: Set-Cookie {cookies:?}"
        );
        assert_eq!(
            a.all("cache-control").join(", ").as_str(),
            want_cc.unwrap_or(""),
            "{row}: {} {:?}",
            a.status,
            a.all("cache-control")
        );
        if want_cookie {
            assert!(cookies[0].starts_with(COOKIE), "{row}: {cookies:?}");
        }
    }
}

#[tokio::test]
async fn cdn_targeted_cache_fields_are_removed_with_the_cookie() {
    // CDNs read these instead of Cache-Control: left in place they would store the cookie.
    let extra: &[(&str, &str)] = &[
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=600"),
        ("surrogate-control", "max-age=600"),
    ];
    let rec = Recorder::default();
    let mut svc = service(
        &builder().build().unwrap(),
        app(&rec, StatusCode::OK, extra),
    );
    let a = send(&mut svc, request("GET", "/", &[], "")).await;
    assert!(a.session_cookie().is_some());
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.header("cdn-cache-control"), None);
    assert_eq!(a.header("surrogate-control"), None);

    // Without a cookie to set, the app's fields are its business.
    let id = SessionId::generate();
    let cookie = format!("{COOKIE}={id}");
    let a = send(&mut svc, request("GET", "/", &[("cookie", &cookie)], "")).await;
    assert_eq!(a.header("cdn-cache-control"), Some("max-age=600"));
    assert_eq!(a.header("surrogate-control"), Some("max-age=600"));
}

#[tokio::test]
async fn requests_without_a_cookie_still_get_a_one_request_session() {
    // HEAD, OPTIONS and foreign origins set no cookie, but the app still finds a session.
    for (method, origin) in [
        ("HEAD", None),
        ("OPTIONS", Some(CACHE)),
        ("GET", Some(FOREIGN)),
    ] {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let a = send(&mut svc, request(method, "/", &headers, "")).await;
        assert!(a.all("set-cookie").is_empty(), "{method}");
        let s = rec.seen()[0].session.clone().expect("a session");
        assert!(s.is_new(), "{method}");
    }
}

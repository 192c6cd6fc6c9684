//! The session cookie: nobody but the shopper's browser chooses the session (SPEC 4).
//!
//! - Cookie tossing: a sibling subdomain can set `amp_session` for the whole domain, but not
//!   `__Host-amp_session`; the bare name is never the session, so a tossed cookie can
//!   neither fix the session nor lock it out, and no request is refused for its cookies.
//! - Keying a store: `SessionId` and its `to_string()` are the full ID, so two sessions that
//!   share a prefix (all the logs show) never share a cart.
//! - Lazy cookies: issued only when the handler used the session, and on every completion.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{
    app, builder, path_of, request, send, service, Answer, Recorder, Svc, CACHE, COOKIE, NAV,
    PUBLISHER,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower_amp_session::{AmpSession, ConfigError, RequestBody, SessionId};

const FORM: &str = "application/x-www-form-urlencoded";

/// What a row's request should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The app runs in the session of this (valid, prefixed) cookie; no cookie set.
    Kept(usize),
    /// The app runs in a new session, whose `__Host-` cookie the answer sets.
    New,
    /// A cookieless change from the cache: handed off, the app not called.
    HandedOff,
}
use Want::*;

/// An ID that parses and shares its first four characters with `prefix`.
fn id_with_prefix(prefix: &str) -> SessionId {
    let random = SessionId::generate();
    // 22 characters: the prefix, 17 random ones, and a last one whose low 4 bits are zero.
    let text = format!("{prefix}{}A", &random.as_str()[4..21]);
    SessionId::parse(&text).expect("a canonical ID")
}

#[tokio::test]
async fn cookie_tossing_table() {
    // ids[0] and ids[1]: sessions this layer issued; tossed: chosen by the attacker.
    let ids = [SessionId::generate(), SessionId::generate()];
    let tossed = SessionId::generate().as_str().to_owned();
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let t = tossed.as_str();
    // (row, Cookie header values, want)
    let rows: Vec<(&str, Vec<String>, Want)> = vec![
        ("valid session only", vec![format!("{COOKIE}={a}")], Kept(0)),
        (
            "tossed bare cookie, then the valid session",
            vec![format!("amp_session={t}; {COOKIE}={a}")],
            Kept(0),
        ),
        (
            "valid session, then the tossed bare cookie",
            vec![format!("{COOKIE}={a}; amp_session={t}")],
            Kept(0),
        ),
        (
            "the tossed cookie in its own Cookie header first",
            vec![format!("amp_session={t}"), format!("{COOKIE}={a}")],
            Kept(0),
        ),
        (
            "only the tossed bare cookie",
            vec![format!("amp_session={t}")],
            New,
        ),
        (
            "two tossed bare cookies (the old lock-out)",
            vec![format!("amp_session={t}; amp_session={b}")],
            New,
        ),
        (
            "tossed with another spelling of the prefix",
            vec![format!("__host-amp_session={t}; __HOST-amp_session={t}")],
            New,
        ),
        (
            "two prefixed values, the first invalid",
            vec![format!("{COOKIE}=junk; {COOKIE}={a}")],
            Kept(0),
        ),
        (
            "two prefixed values, the first non-canonical",
            vec![format!("{COOKIE}={}B; {COOKIE}={b}", &a[..21])],
            Kept(1),
        ),
        (
            "two valid prefixed values: the first wins",
            vec![format!("{COOKIE}={a}; {COOKIE}={b}")],
            Kept(0),
        ),
        (
            "... in two Cookie headers",
            vec![format!("{COOKIE}={b}"), format!("{COOKIE}={a}")],
            Kept(1),
        ),
        ("no cookie", vec![], New),
    ];
    for (row, cookies, want) in rows {
        // Each request kind: a navigation, amp-form on the origin, and amp-form on the cache
        // (a GET, and a change that is handed off when there is no valid session).
        let kinds: [(&str, &str, Option<&str>); 4] = [
            ("navigation", "GET", None),
            ("same-origin POST", "POST", Some(PUBLISHER)),
            ("cache GET", "GET", Some(CACHE)),
            ("cache POST", "POST", Some(CACHE)),
        ];
        for (kind, method, origin) in kinds {
            let name = format!("{row} ({kind})");
            let rec = Recorder::default();
            let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
            let mut headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", &**c)).collect();
            if let Some(o) = origin {
                headers.push(("origin", o));
            }
            headers.push(("content-type", FORM));
            let body = if method == "POST" { "product_id=1" } else { "" };
            let a = send(&mut svc, request(method, "/cart", &headers, body)).await;
            assert!(
                a.status.is_success(),
                "{name}: {} {} (no row is refused)",
                a.status,
                a.body
            );
            let want = match want {
                New if method == "POST" && origin == Some(CACHE) => HandedOff,
                w => w,
            };
            check(&name, &a, &rec, want, &ids, &tossed);
        }
    }
}

fn check(name: &str, a: &Answer, rec: &Recorder, want: Want, ids: &[SessionId], tossed: &str) {
    let seen = rec.seen();
    match want {
        HandedOff => {
            assert_eq!(seen.len(), 0, "{name}: applied in a session it chose");
            assert!(a.header("amp-redirect-to").is_some(), "{name}: not minted");
            assert!(
                a.all("set-cookie").is_empty(),
                "{name}: {:?}",
                a.all("set-cookie")
            );
        }
        Kept(i) => {
            assert_eq!(seen.len(), 1, "{name}");
            let s = seen[0].session.clone().expect("a session");
            assert_eq!(s.id(), ids[i], "{name}: not the valid session");
            assert!(!s.is_new(), "{name}");
            assert!(
                a.all("set-cookie").is_empty(),
                "{name}: {:?}",
                a.all("set-cookie")
            );
        }
        New => {
            assert_eq!(seen.len(), 1, "{name}");
            let s = seen[0].session.clone().expect("a session");
            assert!(s.is_new(), "{name}");
            assert_ne!(
                s.id().as_str(),
                tossed,
                "{name}: the tossed ID became the session"
            );
            assert!(!ids.contains(&s.id()), "{name}");
            assert_eq!(
                a.session_cookie(),
                Some(format!("{COOKIE}={}", s.id())),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn a_completion_ignores_tossed_cookies_and_takes_the_first_valid_session() {
    let valid = SessionId::generate();
    let other = SessionId::generate();
    let tossed = SessionId::generate();
    // (row, Cookie header, the session the change lands in: Some(kept) or None for new)
    let rows: Vec<(&str, String, Option<SessionId>)> = vec![
        ("no cookie", String::new(), None),
        (
            "only a tossed bare cookie",
            format!("amp_session={tossed}"),
            None,
        ),
        (
            "tossed and valid",
            format!("amp_session={tossed}; {COOKIE}={valid}"),
            Some(valid),
        ),
        (
            "two valid prefixed values",
            format!("{COOKIE}={valid}; {COOKIE}={other}"),
            Some(valid),
        ),
        (
            "an invalid prefixed value first",
            format!("{COOKIE}=x; {COOKIE}={other}"),
            Some(other),
        ),
    ];
    for (row, cookie, lands_in) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let to = mint(&mut svc).await;
        let mut headers = NAV.to_vec();
        if !cookie.is_empty() {
            headers.push(("cookie", &cookie));
        }
        let a = send(&mut svc, request("GET", &to, &headers, "")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{row}: {}", a.body);
        let s = rec.seen()[0].session.clone().expect("a session");
        match lands_in {
            Some(id) => {
                assert_eq!(s.id(), id, "{row}");
                assert_eq!(a.session_cookie(), None, "{row}");
            }
            None => {
                assert!(s.is_new(), "{row}");
                assert_ne!(s.id(), tossed, "{row}");
                assert_eq!(
                    a.session_cookie(),
                    Some(format!("{COOKIE}={}", s.id())),
                    "{row}"
                );
            }
        }
    }
}

/// A cookieless form post from the cache page: the handoff URL's path and query.
async fn mint(svc: &mut Svc) -> String {
    let headers = [("origin", CACHE), ("content-type", FORM)];
    let a = send(svc, request("POST", "/cart/add", &headers, "product_id=1")).await;
    path_of(a.header("amp-redirect-to").expect("minted"))
}

#[tokio::test]
async fn cookie_name_table() {
    // (row, builder, the cookie sent, whether it carries Domain=)
    type Build = fn() -> tower_amp_session::ConfigBuilder;
    let rows: &[(&str, Build, &str, bool)] = &[
        ("default", builder, "__Host-amp_session", false),
        (
            "own name",
            || builder().cookie_name("sid"),
            "__Host-sid",
            false,
        ),
        (
            "own name, already prefixed",
            || builder().cookie_name("__Host-sid"),
            "__Host-sid",
            false,
        ),
        (
            "configured domain: no prefix",
            || builder().cookie_domain("shop.example"),
            "amp_session",
            true,
        ),
        (
            "configured domain and own name",
            || builder().cookie_domain("shop.example").cookie_name("sid"),
            "sid",
            true,
        ),
    ];
    for (row, build, name, domain) in rows {
        let rec = Recorder::default();
        let mut svc = service(&build().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let a = send(&mut svc, request("GET", "/", &[], "")).await;
        let set = a.header("set-cookie").expect("a new session").to_owned();
        let id = rec.seen()[0].session.clone().unwrap().id();
        assert!(set.starts_with(&format!("{name}={id};")), "{row}: {set}");
        assert_eq!(set.contains("Domain=shop.example"), *domain, "{row}: {set}");
        for attr in ["Secure", "Path=/", "HttpOnly"] {
            assert!(set.contains(attr), "{row}: {set} lacks {attr}");
        }

        // The cookie is read back under exactly that name.
        let cookie = format!("{name}={id}");
        let a = send(&mut svc, request("GET", "/", &[("cookie", &cookie)], "")).await;
        assert_eq!(a.session_cookie(), None, "{row}");
        assert_eq!(rec.seen()[1].session.clone().unwrap().id(), id, "{row}");
    }

    // With a domain the bare name is the session (and the docs say what that gives up).
    let rec = Recorder::default();
    let layer = builder().cookie_domain("shop.example").build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let id = SessionId::generate();
    let prefixed = format!("__Host-amp_session={id}");
    send(&mut svc, request("GET", "/", &[("cookie", &prefixed)], "")).await;
    assert!(rec.seen()[0].session.clone().unwrap().is_new());

    // A `__Host-` name cannot have a domain: browsers would drop every cookie.
    for name in ["__Host-sid", "__host-sid"] {
        let err = builder()
            .cookie_domain("shop.example")
            .cookie_name(name)
            .build()
            .unwrap_err();
        assert_eq!(err, ConfigError::HostPrefixWithDomain(name.into()));
        assert!(err.to_string().contains("__Host-"), "{err}");
    }
}

#[test]
fn ids_with_one_prefix_never_share_a_store_entry() {
    let a = id_with_prefix("AbCd");
    let b = id_with_prefix("AbCd");
    assert_ne!(a, b);
    // What the logs show is the same for both; the keys are not.
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(format!("{a:?}"), "SessionId(AbCd…)");
    assert_ne!(a.to_string(), b.to_string());
    assert_eq!(a.to_string(), a.as_str());
    assert_eq!(format!("cart of {a}"), format!("cart of {}", a.as_str()));

    let mut by_text: HashMap<String, Vec<u32>> = HashMap::new();
    let mut by_id: HashMap<SessionId, Vec<u32>> = HashMap::new();
    for (id, product) in [(a, 1), (b, 2), (a, 3)] {
        by_text.entry(id.to_string()).or_default().push(product);
        by_id.entry(id).or_default().push(product);
    }
    assert_eq!(by_text.len(), 2);
    assert_eq!(by_text[&a.to_string()], [1, 3]);
    assert_eq!(by_text[&b.to_string()], [2]);
    assert_eq!(by_id.len(), 2);
    assert_eq!(by_id[&a], [1, 3]);
    assert_eq!(by_id[&b], [2]);
}

type Carts = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// The app a new user writes: a cart store keyed by `session.id().to_string()`.
fn cart_app(carts: &Carts) -> common::App {
    let carts = carts.clone();
    tower::util::BoxCloneService::new(tower::service_fn(
        move |req: Request<RequestBody<Full<Bytes>>>| {
            let carts = carts.clone();
            async move {
                let session = req.extensions().get::<AmpSession>().cloned().unwrap();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let item = String::from_utf8(body.to_vec()).unwrap();
                carts
                    .lock()
                    .unwrap()
                    .entry(session.id().to_string())
                    .or_default()
                    .push(item);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        },
    ))
}

#[tokio::test]
async fn two_sessions_with_one_prefix_keep_two_carts_through_the_layer() {
    let carts = Carts::default();
    let mut svc = service(&builder().build().unwrap(), cart_app(&carts));
    let a = id_with_prefix("Cart");
    let b = id_with_prefix("Cart");
    for (id, item) in [(a, "apples"), (b, "bread"), (a, "cheese")] {
        let cookie = format!("{COOKIE}={id}");
        let headers = [("origin", PUBLISHER), ("cookie", &*cookie)];
        let answer = send(&mut svc, request("POST", "/cart/add", &headers, item)).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let carts = carts.lock().unwrap();
    assert_eq!(carts.len(), 2);
    assert_eq!(carts[a.as_str()], ["apples", "cheese"]);
    assert_eq!(carts[b.as_str()], ["bread"]);
}

/// An app that reads the session ID on `/uses-session` only.
fn lazy_app(rec: &Recorder) -> common::App {
    let inner = common::app_with(rec, StatusCode::OK, &[], false);
    tower::util::BoxCloneService::new(tower::service_fn(
        move |req: Request<RequestBody<Full<Bytes>>>| {
            let mut inner = inner.clone();
            async move {
                if req.uri().path().starts_with("/uses-session") {
                    let _ = req.extensions().get::<AmpSession>().unwrap().id();
                }
                tower::ServiceExt::oneshot(&mut inner, req).await
            }
        },
    ))
}

#[tokio::test]
async fn lazy_and_eager_cookie_table() {
    let valid = SessionId::generate();
    let cookie = format!("{COOKIE}={valid}");
    // (row, method, path, headers, cookie set: lazy (the default), eager)
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        bool,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            "page that never reads the session",
            "GET",
            "/products/1",
            vec![],
            false,
            true,
        ),
        (
            "page that reads it",
            "GET",
            "/uses-session",
            vec![],
            true,
            true,
        ),
        (
            "amp-form on the origin that reads it",
            "POST",
            "/uses-session/add",
            vec![("origin", PUBLISHER)],
            true,
            true,
        ),
        (
            "amp-form on the origin that does not read it",
            "POST",
            "/add",
            vec![("origin", PUBLISHER)],
            false,
            true,
        ),
        (
            "cache GET that reads it",
            "GET",
            "/uses-session",
            vec![("origin", CACHE)],
            true,
            true,
        ),
        (
            "reads it, but the cookie is there",
            "GET",
            "/uses-session",
            vec![("cookie", &cookie)],
            false,
            false,
        ),
        (
            "reads it, but HEAD",
            "HEAD",
            "/uses-session",
            vec![],
            false,
            false,
        ),
        (
            "reads it, but a foreign origin",
            "GET",
            "/uses-session",
            vec![("origin", "https://evil.example")],
            false,
            false,
        ),
        (
            "reads it, but a signer's fetch",
            "GET",
            "/uses-session",
            vec![("amp-cache-transform", "google;v=\"1..100\"")],
            false,
            false,
        ),
    ];
    for (row, method, path, headers, lazy_set, eager_set) in rows {
        for (mode, set) in [("lazy", lazy_set), ("eager", eager_set)] {
            let rec = Recorder::default();
            let b = builder();
            let layer = if mode == "lazy" { b } else { b.eager_cookie() };
            let mut svc = service(&layer.build().unwrap(), lazy_app(&rec));
            let a = send(&mut svc, request(method, path, &headers, "")).await;
            assert_eq!(a.status, StatusCode::OK, "{row} ({mode})");
            let s = rec.seen()[0].session.clone().unwrap();
            assert_eq!(
                a.session_cookie().is_some(),
                set,
                "{row} ({mode}): {:?}",
                a.all("set-cookie")
            );
            if set {
                assert_eq!(
                    a.session_cookie(),
                    Some(format!("{COOKIE}={}", s.id())),
                    "{row} ({mode})"
                );
                assert_eq!(a.header("cache-control"), Some("private"), "{row} ({mode})");
            } else {
                assert_eq!(
                    a.header("cache-control"),
                    None,
                    "{row} ({mode}): left as the app said"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_completion_always_issues_the_cookie_in_both_modes() {
    for eager in [false, true] {
        let rec = Recorder::default();
        let b = builder();
        let layer = if eager { b.eager_cookie() } else { b }.build().unwrap();
        // The replayed change goes to /cart/add, which never reads the ID in this app.
        let mut svc = service(&layer, lazy_app(&rec));
        let to = mint(&mut svc).await;
        let a = send(&mut svc, request("GET", &to, &NAV, "")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let s = rec.seen()[0].session.clone().unwrap();
        assert!(s.via_handoff() && s.is_new());
        assert_eq!(
            a.session_cookie(),
            Some(format!("{COOKIE}={}", s.id())),
            "eager: {eager}"
        );
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn bring_your_own_session_ignores_the_layer_cookie() {
    // With the app's own session layer, neither the layer's cookie name nor a tossed one
    // counts: only the app's cookie does, and the layer sets no cookie of its own.
    let id = SessionId::generate();
    let rows: Vec<(&str, String, bool)> = vec![
        ("the app's cookie", "app_sid=xyz".into(), true),
        ("the layer's cookie only", format!("{COOKIE}={id}"), false),
        (
            "a bare amp_session only",
            format!("amp_session={id}"),
            false,
        ),
        ("no cookie", String::new(), false),
    ];
    for (row, cookie, passes) in rows {
        let rec = Recorder::default();
        let layer = builder().external_session("app_sid").build().unwrap();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
        let mut headers = vec![("origin", CACHE), ("content-type", FORM)];
        if !cookie.is_empty() {
            headers.push(("cookie", &cookie));
        }
        let a = send(&mut svc, request("POST", "/cart/add", &headers, "a=1")).await;
        assert_eq!(a.status, StatusCode::OK, "{row}");
        assert_eq!(rec.count(), usize::from(passes), "{row}");
        assert_eq!(a.header("amp-redirect-to").is_some(), !passes, "{row}");
        assert!(a.all("set-cookie").is_empty(), "{row}");
        // A navigation: no session of the layer's own either.
        let a = send(&mut svc, request("GET", "/", &[], "")).await;
        assert!(a.all("set-cookie").is_empty(), "{row}");
    }
}

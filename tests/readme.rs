//! The README's quick start, driven as a user's app: its handler, copied verbatim (a test
//! checks the README still holds exactly this text), with multipart and urlencoded bodies,
//! on the origin, on the cache with a cookie, and after a handoff.
//!
//! The README's snippets themselves are compiled as doc tests (`cargo test --doc`).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_amp_session::testing::Handoff;
use tower_amp_session::{AmpForm, AmpSession, AmpSessionLayer, HandoffOutcome, Keyring};

// README: quick start handler (begin)
#[derive(serde::Deserialize)]
struct Add {
    product_id: u32,
    quantity: u32,
}

// `AmpForm` reads amp-form's multipart posts and plain urlencoded forms alike.
async fn add(session: AmpSession, AmpForm(add): AmpForm<Add>) -> String {
    // Key your own cart store by session.id(); the layer stores no session data.
    let _cart_key = session.id();
    let (id, n) = (add.product_id, add.quantity);
    format!("{{\"product_id\":{id},\"quantity\":{n}}}")
}
// README: quick start handler (end)

const PUBLISHER: &str = "https://shop.example";
const CACHE: &str = "https://shop-example.cdn.ampproject.org";
const ADDED: &str = "{\"product_id\":3,\"quantity\":2}";

#[test]
fn the_handler_is_the_readmes_verbatim() {
    let this = include_str!("readme.rs");
    let begin = "// README: quick start handler (begin)\n";
    let start = this.find(begin).unwrap() + begin.len();
    let end = this.find("// README: quick start handler (end)").unwrap();
    let handler = &this[start..end];
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(handler),
        "README.md's quick start no longer holds the handler of tests/readme.rs:\n{handler}"
    );
}

/// What the handler answered, and for which session, as a middleware inside the layer saw it
/// (after a handoff the layer answers 303, so the handler's own answer is only seen here).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, StatusCode, String)>>>);

async fn record(State(seen): State<Seen>, req: Request, next: Next) -> Response {
    let session = req
        .extensions()
        .get::<AmpSession>()
        .map(|s| s.id().as_str().to_owned())
        .unwrap_or_default();
    let res = next.run(req).await;
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    seen.0.lock().unwrap().push((session, parts.status, text));
    Response::from_parts(parts, Body::from(bytes))
}

/// The quick start's app, with a fixed key and the recorder around its routes.
fn quick_start(seen: &Seen) -> (AmpSessionLayer, Router) {
    let layer = AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .direct_route("/cart/add")
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "products" }))
        .route("/cart/add", post(add))
        .layer(middleware::from_fn_with_state(seen.clone(), record));
    (layer.clone(), layer.wrap_router(app))
}

fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--B\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str("--B--\r\n");
    ("multipart/form-data; boundary=B".into(), body)
}

fn urlencoded(fields: &[(&str, &str)]) -> (String, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    ("application/x-www-form-urlencoded".into(), body)
}

/// `name=value` of the session cookie a first visit gets.
async fn first_visit(app: &Router) -> String {
    let res = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

const FIELDS: &[(&str, &str)] = &[
    ("product_id", "3"),
    ("quantity", "2"),
    // The hidden field of the publisher's forms: AmpForm leaves it out.
    ("amp_return_path", "/products/3"),
];

#[tokio::test]
async fn the_quick_start_handler_on_the_origin_and_on_the_cache_with_a_cookie() {
    let seen = Seen::default();
    let (_, app) = quick_start(&seen);
    let cookie = first_visit(&app).await;
    let id = cookie.split_once('=').unwrap().1.to_owned();

    type Encode = fn(&[(&str, &str)]) -> (String, String);
    // (what, Origin, with the cookie, encoding)
    let rows: [(&str, &str, bool, Encode); 5] = [
        (
            "origin, urlencoded, first visit",
            PUBLISHER,
            false,
            urlencoded,
        ),
        (
            "origin, multipart, with the cookie",
            PUBLISHER,
            true,
            multipart,
        ),
        (
            "origin, urlencoded, with the cookie",
            PUBLISHER,
            true,
            urlencoded,
        ),
        ("cache with the cookie, multipart", CACHE, true, multipart),
        ("cache with the cookie, urlencoded", CACHE, true, urlencoded),
    ];
    for (what, origin, with_cookie, encode) in rows {
        let (content_type, body) = encode(FIELDS);
        let mut req = Request::post("/cart/add")
            .header("origin", origin)
            .header("content-type", content_type);
        if with_cookie {
            req = req.header("cookie", &cookie);
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{what}");
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            origin,
            "{what}"
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, ADDED, "{what}");
        let (session, _, _) = seen.0.lock().unwrap().last().cloned().unwrap();
        if with_cookie {
            assert_eq!(session, id, "{what}: the cookie's session");
        }
    }
}

#[tokio::test]
async fn the_quick_start_handler_after_a_handoff() {
    let seen = Seen::default();
    let (layer, app) = quick_start(&seen);
    let cookie = first_visit(&app).await;
    let id = cookie.split_once('=').unwrap().1.to_owned();
    let fields = &FIELDS[..2];

    // (what, multipart?, the browser's cookie on the origin)
    let rows: [(&str, bool, Option<&str>); 4] = [
        ("multipart, new session", true, None),
        ("urlencoded, new session", false, None),
        ("multipart, the browser's session", true, Some(&cookie)),
        ("urlencoded, the browser's session", false, Some(&cookie)),
    ];
    for (what, multipart, browser_cookie) in rows {
        let mut handoff = Handoff::post("/cart/add")
            .form(fields)
            .return_path("/products/3");
        if !multipart {
            handoff = handoff.urlencoded();
        }
        if let Some(c) = browser_cookie {
            handoff = handoff.cookie(c);
        }
        let before = seen.0.lock().unwrap().len();
        let done = handoff.send(&layer, &mut app.clone()).await;
        assert_eq!(done.mint().status, StatusCode::OK, "{what}: minted");
        assert_eq!(done.outcome(), Some(HandoffOutcome::Applied), "{what}");
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{what}");
        // The handler ran once, on the replay, with the form's fields.
        let seen = seen.0.lock().unwrap()[before..].to_vec();
        assert_eq!(seen.len(), 1, "{what}: {seen:?}");
        let (session, status, body) = &seen[0];
        assert_eq!((*status, body.as_str()), (StatusCode::OK, ADDED), "{what}");
        match browser_cookie {
            Some(_) => {
                assert_eq!(session, &id, "{what}");
                assert_eq!(done.session_cookie(), None, "{what}: no new cookie");
            }
            None => {
                let new = done.session_cookie().expect("a new session");
                assert_eq!(new.split_once('=').unwrap().1, session, "{what}");
            }
        }
    }
}

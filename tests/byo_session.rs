//! Bring your own session: tower-sessions keeps the cart, this layer only carries the change
//! from the AMP cache to the origin (`.external_session("id")`).
//!
//! The stack, outermost first:
//!
//! ```text
//! AmpSessionLayer (.external_session("id"))   classifies, answers AMP CORS, mints/completes
//!   SessionManagerLayer (cookie "id")          loads/saves the tower-sessions Session
//!     Router: POST /cart/add, GET /cart.json
//! ```
//!
//! The session layer must sit INSIDE this one: a completed handoff replays the change
//! through it, so the `Set-Cookie` it writes on the replay lands on the 303.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use common::{multipart, path_of, request, Answer, CACHE, NAV};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tower_amp_session::{AmpSession, AmpSessionService, RequestSource, ViaHandoff};
use tower_sessions::cookie::SameSite;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

/// The app's session cookie, named for both layers.
const COOKIE: &str = "id";
const CART: &str = "cart";
const URLENCODED: &str = "application/x-www-form-urlencoded";
/// amp-form appends `__amp_source_origin` to `action-xhr`; the layer checks and removes it.
const ADD: &str = "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    product_id: u32,
    quantity: u32,
}

/// What `/cart/add` found in its request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    source: Option<RequestSource>,
    via_handoff: bool,
    /// Always false in this mode: the layer attaches no `AmpSession` of its own.
    amp_session: bool,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// `POST /cart/add`: appends one item to the cart kept in the tower-sessions `Session`.
/// Accepts both encodings amp-form sends (urlencoded, multipart).
async fn add(
    State(log): State<Log>,
    session: Session,
    req: Request,
) -> Result<Json<Vec<Item>>, (StatusCode, String)> {
    let ext = req.extensions();
    log.0.lock().unwrap().push(Seen {
        source: ext.get::<RequestSource>().copied(),
        via_handoff: ext.get::<ViaHandoff>().is_some(),
        amp_session: ext.get::<AmpSession>().is_some(),
    });
    let item = read_item(req)
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let store_err =
        |e: tower_sessions::session::Error| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let mut cart: Vec<Item> = session
        .get(CART)
        .await
        .map_err(store_err)?
        .unwrap_or_default();
    cart.push(item);
    session.insert(CART, &cart).await.map_err(store_err)?;
    Ok(Json(cart))
}

/// `GET /cart.json`: the cart of the current tower-sessions session.
async fn cart_json(session: Session) -> Json<Vec<Item>> {
    Json(session.get(CART).await.ok().flatten().unwrap_or_default())
}

async fn read_item(req: Request) -> Result<Item, String> {
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    let mut fields: Vec<(String, String)> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(&content_type).map_err(|e| e.to_string())?;
        let stream = futures_util::stream::once(async move { Ok::<_, io::Error>(body) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_owned();
            fields.push((name, field.text().await.map_err(|e| e.to_string())?));
        }
    } else {
        fields = form_urlencoded::parse(&body).into_owned().collect();
    }
    let get = |name: &str| -> Result<u32, String> {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| format!("{name} is missing or not a number"))
    };
    Ok(Item {
        product_id: get("product_id")?,
        quantity: get("quantity")?,
    })
}

type Shop = AmpSessionService<Router>;

/// The shop: tower-sessions (cookie `id`, `same_site` or its default `Strict`) inside
/// `AmpSessionLayer` in bring-your-own-session mode.
fn new_shop(same_site: Option<SameSite>) -> (Shop, Log) {
    let log = Log::default();
    let mut sessions = SessionManagerLayer::new(MemoryStore::default()).with_name(COOKIE);
    if let Some(same_site) = same_site {
        sessions = sessions.with_same_site(same_site);
    }
    let app = Router::new()
        .route("/cart/add", post(add))
        .route("/cart.json", get(cart_json))
        .layer(sessions)
        .with_state(log.clone());
    let amp = common::builder()
        .external_session(COOKIE)
        .build()
        .expect("valid configuration");
    // The layer wraps the whole Router (as `AmpSessionLayer::wrap_router` does), not each
    // route through `Router::layer`: the handoff path has no route of its own, and the
    // replay must reach `/cart/add` through the router (see the last test).
    (tower::Layer::layer(&amp, app), log)
}

async fn send(shop: &Shop, req: http::Request<Full<Bytes>>) -> Answer {
    let res = shop.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        rejection: parts.extensions.get().copied(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `id=<value>` from the app's `Set-Cookie`, if it set one.
fn app_cookie(a: &Answer) -> Option<String> {
    a.all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("id="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// A cookieless POST from the cache page: minted, not applied. Returns the handoff path.
async fn mint(shop: &Shop, content_type: &str, body: &str) -> String {
    let headers = [
        ("origin", CACHE),
        ("content-type", content_type),
        ("accept", "application/json"),
    ];
    let a = send(shop, request("POST", ADD, &headers, body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some(CACHE));
    assert!(a.all("set-cookie").is_empty(), "the mint sets no cookie");
    path_of(a.header("amp-redirect-to").expect("AMP-Redirect-To"))
}

/// The top-level navigation to the handoff URL on the origin, with the app cookie or none.
async fn complete(shop: &Shop, handoff: &str, cookie: Option<&str>) -> Answer {
    let mut headers = NAV.to_vec();
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    let a = send(shop, request("GET", handoff, &headers, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.header("location"), Some("https://shop.example/"));
    assert!(
        a.all("set-cookie")
            .iter()
            .all(|c| !c.contains("amp_session=")),
        "the layer issues no cookie of its own: {:?}",
        a.all("set-cookie")
    );
    a
}

async fn cart(shop: &Shop, cookie: &str) -> Vec<Item> {
    let a = send(
        shop,
        request("GET", "/cart.json", &[("cookie", cookie)], ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    serde_json::from_str(&a.body).unwrap()
}

const fn item(product_id: u32, quantity: u32) -> Item {
    Item {
        product_id,
        quantity,
    }
}

/// The extensions a handler sees on a handoff replay.
const REPLAYED: Seen = Seen {
    source: Some(RequestSource::SameOrigin),
    via_handoff: true,
    amp_session: false,
};

/// (a) cookieless cache POST → handoff → tower-sessions cookie on the 303 → cart on the origin.
#[tokio::test]
async fn cookieless_cache_post_lands_in_a_tower_sessions_session() {
    let (ct, multipart_body) = multipart(&[("product_id", "3"), ("quantity", "2")]);
    // amp-form's two encodings.
    let forms = [
        (URLENCODED, "product_id=3&quantity=2".to_owned()),
        (ct.as_str(), multipart_body),
    ];
    for (content_type, body) in forms {
        let (shop, log) = new_shop(Some(SameSite::Lax));

        let handoff = mint(&shop, content_type, &body).await;
        assert!(log.seen().is_empty(), "the app is not called at mint");

        let done = complete(&shop, &handoff, None).await;
        let cookie = app_cookie(&done).expect("tower-sessions' Set-Cookie rides the 303");
        let set_cookie = done.header("set-cookie").unwrap();
        assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
        assert_eq!(log.seen(), [REPLAYED], "{content_type}");

        // On the origin, first-party, the cart is in the tower-sessions session.
        assert_eq!(cart(&shop, &cookie).await, [item(3, 2)], "{content_type}");
    }
}

/// (b) a cache POST that carries the app's cookie (SameSite=None, third-party cookies
/// allowed) reaches the app at once: no handoff, the cart grows, CORS answered.
#[tokio::test]
async fn cache_post_with_the_app_cookie_reaches_the_app() {
    let (shop, log) = new_shop(Some(SameSite::None));
    let handoff = mint(&shop, URLENCODED, "product_id=1&quantity=1").await;
    let cookie = app_cookie(&complete(&shop, &handoff, None).await).unwrap();

    let headers = [
        ("origin", CACHE),
        ("content-type", URLENCODED),
        ("cookie", cookie.as_str()),
    ];
    let a = send(
        &shop,
        request("POST", ADD, &headers, "product_id=7&quantity=4"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("amp-redirect-to"), None, "no handoff");
    assert_eq!(a.header("access-control-allow-origin"), Some(CACHE));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    let answered: Vec<Item> = serde_json::from_str(&a.body).unwrap();
    assert_eq!(answered, [item(1, 1), item(7, 4)]);

    let direct = Seen {
        source: Some(RequestSource::AmpCache),
        via_handoff: false,
        amp_session: false,
    };
    assert_eq!(log.seen(), [REPLAYED, direct]);
    assert_eq!(cart(&shop, &cookie).await, [item(1, 1), item(7, 4)]);
}

/// (c) a second handoff completed in a browser that has the cookie lands in the same
/// tower-sessions session; one completed without it starts another.
#[tokio::test]
async fn second_handoff_with_the_cookie_keeps_the_session() {
    let (shop, log) = new_shop(Some(SameSite::Lax));
    let first = mint(&shop, URLENCODED, "product_id=1&quantity=1").await;
    let cookie = app_cookie(&complete(&shop, &first, None).await).unwrap();

    let second = mint(&shop, URLENCODED, "product_id=2&quantity=5").await;
    let done = complete(&shop, &second, Some(&cookie)).await;
    // tower-sessions re-sends its cookie when the session changed: same ID, or none at all.
    if let Some(again) = app_cookie(&done) {
        assert_eq!(again, cookie, "no new session");
    }
    assert_eq!(cart(&shop, &cookie).await, [item(1, 1), item(2, 5)]);

    // Another browser (no cookie) completing its own handoff gets its own session.
    let third = mint(&shop, URLENCODED, "product_id=9&quantity=1").await;
    let other = app_cookie(&complete(&shop, &third, None).await).unwrap();
    assert_ne!(other, cookie);
    assert_eq!(cart(&shop, &other).await, [item(9, 1)]);
    assert_eq!(cart(&shop, &cookie).await, [item(1, 1), item(2, 5)]);
    assert_eq!(log.seen(), [REPLAYED; 3]);
}

/// Formatted tracing output, captured for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// (d) tower-sessions' default cookie is `SameSite=Strict`, which the cross-site handoff
/// navigation never carries: the layer warns (once per layer, not once per handoff).
#[tokio::test]
async fn strict_app_cookie_is_warned_about_once() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded: every poll happens under this default.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (shop, _) = new_shop(None);
    for product in ["1", "2"] {
        let body = format!("product_id={product}&quantity=1");
        let handoff = mint(&shop, URLENCODED, &body).await;
        let done = complete(&shop, &handoff, None).await;
        // Still applied: the warning is advice, the handoff itself works.
        let set_cookie = done.header("set-cookie").unwrap();
        assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    }

    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("amp_session.app_cookie_samesite_strict"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains("cookie=\"id\""), "{}", warnings[0]);

    // With Lax, no warning at all.
    let (lax, _) = new_shop(Some(SameSite::Lax));
    let handoff = mint(&lax, URLENCODED, "product_id=3&quantity=1").await;
    complete(&lax, &handoff, None).await;
    assert_eq!(
        logs.text()
            .matches("amp_session.app_cookie_samesite_strict")
            .count(),
        1
    );
}

/// A state-changing request in this mode is still refused from a foreign origin, before the
/// app (and its session store) sees it.
#[tokio::test]
async fn foreign_post_is_refused_before_the_session_layer() {
    let (shop, log) = new_shop(Some(SameSite::Lax));
    let headers = [
        ("origin", "https://evil.example"),
        ("content-type", URLENCODED),
    ];
    let a = send(
        &shop,
        request("POST", ADD, &headers, "product_id=1&quantity=1"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.rejection.is_some());
    assert!(a.all("set-cookie").is_empty(), "no session was created");
    assert!(log.seen().is_empty());
}

/// The wiring the docs recommend for axum, `AmpSessionLayer::wrap_router`, against the
/// tempting `Router::layer`. axum's `Router::layer` wraps each route and the fallback on its
/// own: the handoff URL has no route, so the copy of the layer around the 404 fallback
/// completes it and the replayed `POST /cart/add` lands in that fallback. The user is told
/// the change failed (never a silent drop), but it is never applied.
#[tokio::test]
async fn wrap_the_whole_router_not_each_route() {
    let router = |log: &Log| {
        let sessions = SessionManagerLayer::new(MemoryStore::default())
            .with_name(COOKIE)
            .with_same_site(SameSite::Lax);
        Router::new()
            .route("/cart/add", post(add))
            .route("/cart.json", get(cart_json))
            .layer(sessions)
            .with_state(log.clone())
    };
    let amp = common::builder().external_session(COOKIE).build().unwrap();

    let (good, bad) = (Log::default(), Log::default());
    // (wiring, its log, applied?)
    let rows = [
        ("wrap_router", amp.wrap_router(router(&good)), &good, true),
        (
            "Router::layer",
            router(&bad).layer(amp.clone()),
            &bad,
            false,
        ),
    ];
    for (wiring, app, log, applied) in rows {
        let headers = [("origin", CACHE), ("content-type", URLENCODED)];
        let minted = app
            .clone()
            .oneshot(request("POST", ADD, &headers, "product_id=1&quantity=1"))
            .await
            .unwrap();
        let to = minted.headers()["amp-redirect-to"].to_str().unwrap();
        let done = app
            .clone()
            .oneshot(request("GET", &path_of(to), &NAV, ""))
            .await
            .unwrap();
        if applied {
            assert_eq!(done.status(), StatusCode::SEE_OTHER, "{wiring}");
            assert_eq!(log.seen(), [REPLAYED], "{wiring}");
        } else {
            assert!(
                done.status().is_client_error(),
                "{wiring}: {}",
                done.status()
            );
            let body = done.into_body().collect().await.unwrap().to_bytes();
            let page = String::from_utf8_lossy(&body);
            // The copy of the layer on one route names the fix (and leaves the link unused).
            assert!(page.contains("wrap_router"), "{wiring}: {page}");
            assert!(log.seen().is_empty(), "{wiring}");
        }
    }
}

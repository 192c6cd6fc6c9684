//! axum: `wrap_router` enables the whole flow; `Router::layer` is the known wrong wiring, and
//! it fails loudly on the first handoff (a page naming `wrap_router`), never silently; copies
//! of the layer inside one another act as one (one session, one cookie); the extractors.

use axum::extract::Form;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::{body::Body, Json, Router};
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;
use tower_amp_session::{AmpSession, AmpSessionLayer, HandoffOutcome, Keyring};

type Carts = Arc<Mutex<Vec<(String, u32)>>>;

#[derive(serde::Deserialize)]
struct Add {
    product_id: u32,
}

fn routes(carts: Carts) -> Router {
    let add = {
        let carts = carts.clone();
        move |session: AmpSession, Form(add): Form<Add>| async move {
            if add.product_id > 12 {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(serde_json::json!({"error": "there is no such product"})),
                );
            }
            carts
                .lock()
                .unwrap()
                .push((session.id().as_str().to_owned(), add.product_id));
            (StatusCode::OK, Json(serde_json::json!({"ok": true})))
        }
    };
    Router::new()
        .route("/", get(|| async { "home" }))
        .route("/cart/add", post(add))
}

fn layer() -> AmpSessionLayer {
    AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .direct_route("/cart/add")
        // These tests count the cookies a first visit to `/` gets (a page that does not read
        // the session): eager mode issues one there.
        .eager_cookie()
        .build()
        .unwrap()
}

async fn mint(app: &Router, body: &'static str) -> String {
    let req = Request::post("/cart/add")
        .header("origin", "https://shop-example.cdn.ampproject.org")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let to = res.headers()["amp-redirect-to"].to_str().unwrap();
    to.strip_prefix("https://shop.example").unwrap().to_owned()
}

async fn complete(app: &Router, handoff: &str) -> (http::response::Parts, String) {
    let req = Request::get(handoff)
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .header(
            "referer",
            "https://shop-example.cdn.ampproject.org/c/s/shop.example/",
        )
        .body(Body::empty())
        .unwrap();
    let (parts, body) = app.clone().oneshot(req).await.unwrap().into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn wrap_router_completes_handoffs_into_any_route() {
    let carts = Carts::default();
    let app = layer().wrap_router(routes(carts.clone()));
    let handoff = mint(&app, "product_id=4").await;
    assert!(carts.lock().unwrap().is_empty());
    let (parts, _) = complete(&app, &handoff).await;
    assert_eq!(parts.status, StatusCode::SEE_OTHER);
    assert_eq!(
        parts.extensions.get::<HandoffOutcome>(),
        Some(&HandoffOutcome::Applied)
    );
    let cookie = parts.headers["set-cookie"].to_str().unwrap();
    let cart = carts.lock().unwrap().clone();
    assert_eq!(cart.len(), 1);
    assert!(cookie.starts_with(&format!("__Host-amp_session={}", cart[0].0)));

    let (again, _) = complete(&app, &handoff).await;
    assert_eq!(
        again.extensions.get::<HandoffOutcome>(),
        Some(&HandoffOutcome::AlreadyApplied)
    );
    assert_eq!(carts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_apps_json_error_is_shown_in_its_own_words() {
    let carts = Carts::default();
    let app = layer().wrap_router(routes(carts.clone()));
    let handoff = mint(&app, "product_id=13").await;
    let (parts, body) = complete(&app, &handoff).await;
    assert_eq!(parts.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        parts.extensions.get::<HandoffOutcome>(),
        Some(&HandoffOutcome::Failed)
    );
    assert!(
        body.contains("Your change could not be applied. there is no such product"),
        "{body}"
    );
    assert!(carts.lock().unwrap().is_empty());
}

/// Every `Set-Cookie` of an answer.
fn cookies(parts: &http::response::Parts) -> Vec<String> {
    parts
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn router_layer_fails_loudly_on_the_first_handoff_and_names_the_fix() {
    // `Router::layer` wraps each route alone: the handoff URL reaches the fallback's copy,
    // which cannot route to /cart/add. It answers a page that names the fix, issues no
    // cookie, and leaves the link unused.
    let carts = Carts::default();
    let amp = layer();
    let wrong = routes(carts.clone()).layer(amp.clone());
    let handoff = mint(&wrong, "product_id=4").await;
    let (parts, body) = complete(&wrong, &handoff).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert!(body.contains("wrap_router"), "{body}");
    assert!(body.contains("Router::layer"), "{body}");
    assert!(cookies(&parts).is_empty(), "{:?}", cookies(&parts));
    assert!(carts.lock().unwrap().is_empty());

    // Fixed wiring, same layer (same replay guard): the same link now applies, once.
    let right = amp.wrap_router(routes(carts.clone()));
    let (parts, _) = complete(&right, &handoff).await;
    assert_eq!(parts.status, StatusCode::SEE_OTHER);
    assert_eq!(
        parts.extensions.get::<HandoffOutcome>(),
        Some(&HandoffOutcome::Applied)
    );
    assert_eq!(carts.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn copies_of_the_layer_inside_one_another_act_as_one() {
    // (what, app) for every way two copies can meet on one request.
    let amp = layer();
    let stacked = |carts: &Carts| {
        let inner = tower::ServiceBuilder::new()
            .layer(amp.clone())
            .layer(amp.clone())
            .service(routes(carts.clone()));
        Router::new().fallback_service(inner)
    };
    let handoff_route = |carts: &Carts| {
        // The wiring: the handoff endpoint mounted as a route (HandoffService over
        // the bare router), and the layer per route.
        routes(carts.clone())
            .route_service(
                amp.handoff_path(),
                amp.handoff_service(routes(carts.clone())),
            )
            .layer(amp.clone())
    };
    type MakeApp<'a> = Box<dyn Fn(&Carts) -> Router + 'a>;
    let rows: Vec<(&str, MakeApp<'_>)> = vec![
        (
            "wrap_router(router.layer(amp))",
            Box::new(|c: &Carts| amp.wrap_router(routes(c.clone()).layer(amp.clone()))),
        ),
        ("the layer twice in a ServiceBuilder", Box::new(stacked)),
        (
            "route_service(handoff, handoff_service) + Router::layer",
            Box::new(handoff_route),
        ),
    ];
    for (what, make) in rows {
        let carts = Carts::default();
        let app = make(&carts);

        // A first visit: one cookie.
        let req = Request::get("/").body(Body::empty()).unwrap();
        let (parts, _) = app.clone().oneshot(req).await.unwrap().into_parts();
        assert_eq!(cookies(&parts).len(), 1, "{what}: {:?}", cookies(&parts));

        // A handoff: applied once, one cookie, the cart in that cookie's session.
        let handoff = mint(&app, "product_id=4").await;
        let (parts, body) = complete(&app, &handoff).await;
        assert_eq!(parts.status, StatusCode::SEE_OTHER, "{what}: {body}");
        let set = cookies(&parts);
        assert_eq!(set.len(), 1, "{what}: {set:?}");
        let cart = carts.lock().unwrap().clone();
        assert_eq!(cart.len(), 1, "{what}");
        assert!(
            set[0].contains(&format!("={};", cart[0].0)),
            "{what}: {set:?}"
        );
    }
}

#[tokio::test]
async fn extractors_and_const_header_names() {
    use tower_amp_session::{RequestSource, ViaHandoff, AMP_REDIRECT_TO};

    type Log = Arc<Mutex<Vec<(bool, RequestSource, bool)>>>;
    let log = Log::default();
    let handler = {
        let log = log.clone();
        move |session: Option<AmpSession>, source: RequestSource, via: Option<ViaHandoff>| async move {
            log.lock()
                .unwrap()
                .push((session.is_some(), source, via.is_some()));
            // `const` header names work in a header array.
            ([(AMP_REDIRECT_TO, "https://shop.example/cart")], "{}")
        }
    };
    let app = layer().wrap_router(Router::new().route("/cart/add", post(handler.clone())));

    // From the cache with no cookie: a handoff; its replay is seen as same-origin, via handoff.
    let handoff = mint(&app, "product_id=4").await;
    let (parts, _) = complete(&app, &handoff).await;
    assert_eq!(parts.status, StatusCode::SEE_OTHER);
    // The app's same-origin AMP-Redirect-To is where the user lands.
    assert_eq!(parts.headers["location"], "https://shop.example/cart");
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((true, RequestSource::SameOrigin, true))
    );

    // A same-origin post: no handoff.
    let req = Request::post("/cart/add")
        .header("origin", "https://shop.example")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(
        res.headers()["amp-redirect-to"],
        "https://shop.example/cart"
    );
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((true, RequestSource::SameOrigin, false))
    );

    // Without the layer: `Option<AmpSession>` is None; `RequestSource` is a wiring error.
    let bare = Router::new().route("/cart/add", post(handler));
    let req = Request::post("/cart/add").body(Body::empty()).unwrap();
    let res = bare.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        "AmpSessionLayer is not installed in front of this handler"
    );
    let optional = Router::new().route(
        "/",
        get(|s: Option<AmpSession>| async move { format!("{}", s.is_some()) }),
    );
    let res = optional
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "false");
}

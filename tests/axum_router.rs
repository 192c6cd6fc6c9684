//! axum: `wrap_router` enables the whole flow; `Router::layer` is the known wrong wiring, and
//! it fails loudly (a failure page, a warning), never silently.

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

#[tokio::test]
async fn router_layer_is_the_wrong_wiring_and_says_so() {
    // `Router::layer` wraps each route alone: the handoff URL reaches the fallback's copy,
    // whose inner service cannot route to /cart/add. The user is told; nothing is lost silently.
    let carts = Carts::default();
    let app = routes(carts.clone()).layer(layer());
    let handoff = mint(&app, "product_id=4").await;
    let (parts, body) = complete(&app, &handoff).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert!(body.contains("could not be applied"), "{body}");
    assert!(carts.lock().unwrap().is_empty());
}

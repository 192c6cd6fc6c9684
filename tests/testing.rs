//! `tower_amp_session::testing` (feature `test-util`): an app's own tests run a whole
//! handoff through the layer in a few lines.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tower_amp_session::testing::Handoff;
use tower_amp_session::{AmpForm, AmpSession, AmpSessionLayer, HandoffOutcome, Keyring};

#[derive(Debug, serde::Deserialize)]
struct Add {
    product_id: u32,
}

type Cart = Arc<Mutex<Vec<(String, u32)>>>;

fn app(cart: &Cart) -> (AmpSessionLayer, Router) {
    let layer = AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .body_limit(256)
        // Adding to the cart applies on arrival; `/account/email` asks first.
        .direct_route("/cart/add")
        .build()
        .unwrap();
    let emails = cart.clone();
    let cart = cart.clone();
    let add = move |session: AmpSession, AmpForm(add): AmpForm<Add>| async move {
        if add.product_id == 0 {
            let error = serde_json::json!({"error": "no such product"});
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(error));
        }
        let id = session.id().as_str().to_owned();
        cart.lock().unwrap().push((id, add.product_id));
        (StatusCode::OK, Json(serde_json::json!({"ok": true})))
    };
    let email = move |session: AmpSession| async move {
        let id = session.id().as_str().to_owned();
        emails.lock().unwrap().push((id, 0));
        (StatusCode::OK, Json(serde_json::json!({"ok": true})))
    };
    let router = Router::new()
        .route("/cart/add", post(add))
        .route("/account/email", post(email));
    (layer.clone(), layer.wrap_router(router))
}

#[tokio::test]
async fn a_handoff_in_a_few_lines() {
    let cart = Cart::default();
    let (layer, mut app) = app(&cart);

    // (what, handoff, outcome, final status, items in the cart after it)
    let long = "x".repeat(400);
    let rows: Vec<(&str, Handoff, Option<HandoffOutcome>, StatusCode, usize)> = vec![
        (
            "multipart (amp-form's default)",
            Handoff::post("/cart/add").form(&[("product_id", "3")]),
            Some(HandoffOutcome::Applied),
            StatusCode::SEE_OTHER,
            1,
        ),
        (
            "urlencoded, with a return path",
            Handoff::post("/cart/add")
                .form(&[("product_id", "4")])
                .urlencoded()
                .return_path("/products/4"),
            Some(HandoffOutcome::Applied),
            StatusCode::SEE_OTHER,
            2,
        ),
        (
            "the app refuses: its failure page",
            Handoff::post("/cart/add").form(&[("product_id", "0")]),
            Some(HandoffOutcome::Failed),
            StatusCode::UNPROCESSABLE_ENTITY,
            2,
        ),
        (
            "a form over the body limit: the mint refuses, no completion",
            Handoff::post("/cart/add").form(&[("product_id", "5"), ("note", &long)]),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            2,
        ),
    ];
    for (what, handoff, outcome, status, items) in rows {
        let done = handoff.send(&layer, &mut app).await;
        assert_eq!(done.outcome(), outcome, "{what}: {}", done.last().text());
        assert_eq!(done.status(), status, "{what}");
        assert_eq!(done.completion().is_some(), outcome.is_some(), "{what}");
        assert_eq!(cart.lock().unwrap().len(), items, "{what}");
    }
}

#[tokio::test]
async fn the_session_is_the_browsers_own_or_a_new_one() {
    let cart = Cart::default();
    let (layer, mut app) = app(&cart);

    let first = Handoff::post("/cart/add")
        .form(&[("product_id", "3")])
        .send(&layer, &mut app)
        .await;
    let cookie = first.session_cookie().expect("a new session");
    assert!(first
        .location()
        .is_some_and(|l| l.starts_with("https://shop.example/")));

    // The browser has that cookie now: the next handoff lands in the same session.
    let second = Handoff::post("/cart/add")
        .form(&[("product_id", "4")])
        .cookie(&cookie)
        .send(&layer, &mut app)
        .await;
    assert_eq!(second.outcome(), Some(HandoffOutcome::Applied));
    assert_eq!(second.session_cookie(), None, "no second cookie");
    let cart = cart.lock().unwrap().clone();
    let id = cookie.split_once('=').unwrap().1;
    assert_eq!(cart, [(id.to_owned(), 3), (id.to_owned(), 4)]);
}

/// Like a real browser, a handoff to a route that asks first stops at the confirmation
/// page unless the test asks for the click.
#[tokio::test]
async fn a_sensitive_route_stops_at_the_confirmation_page_unless_confirmed() {
    let cart = Cart::default();
    let (layer, mut app) = app(&cart);
    let form = [("email", "a@b.example")];

    let shown = Handoff::post("/account/email")
        .form(&form)
        .send(&layer, &mut app)
        .await;
    assert_eq!(shown.outcome(), Some(HandoffOutcome::ConfirmationShown));
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(shown.confirmation().is_none(), "no click by default");
    assert!(
        cart.lock().unwrap().is_empty(),
        "nothing applied without the click"
    );

    let clicked = Handoff::post("/account/email")
        .form(&form)
        .confirm()
        .send(&layer, &mut app)
        .await;
    let page = clicked.confirmation().expect("the page that was confirmed");
    assert!(
        page.text().contains("Confirm your change"),
        "{}",
        page.text()
    );
    assert_eq!(clicked.status(), StatusCode::SEE_OTHER);
    assert_eq!(cart.lock().unwrap().len(), 1, "applied by the click");
}

//! The origin's routes: the shop itself. The session comes from the `AmpSession` extractor;
//! the layer in front has already classified the request, refused foreign origins and
//! turned cookieless adds from the cache into handoffs.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tower_amp_session::AmpSession;

use crate::cart::{CartView, Carts, Item};
use crate::catalogue;
use crate::form;
use crate::ledger::{self, Ledger};
use crate::pages::{self, OFFLINE_SCRIPT_PATH};
use crate::runtime::{self, Runtime, RUNTIME_PATH};
use crate::site::Site;
use crate::stats::Stats;

/// The stand-in for amp-form, served in every mode (pages only link it in `--offline`).
pub const OFFLINE_JS: &str = include_str!("offline.js");

/// A form is a few dozen bytes; refuse anything much bigger before reading it.
const FORM_LIMIT: usize = 16 * 1024;

/// `{"ok":true,"message":"Added 2 × Pour-over kettle to your cart.","items":[...]}`:
/// amp-form's `submit-success` template renders `{{message}}`, the same field the layer's
/// handoff answer fills with "Continuing on shop.localhost…".
#[derive(Debug, Serialize)]
struct AddAnswer {
    ok: bool,
    message: String,
    items: Vec<Item>,
}

/// `{"items":[{"product_id":1,"quantity":2}]}`, items in order of first addition.
#[derive(Debug, Serialize)]
struct CartAnswer {
    items: Vec<Item>,
}

#[derive(Debug)]
pub struct Shop {
    pub site: Site,
    pub runtime: Runtime,
    pub carts: Carts,
    pub stats: Arc<Stats>,
    /// `--ledger`: where applied orders are counted.
    pub ledger: Option<Ledger>,
}

pub fn router(shop: Arc<Shop>) -> Router {
    let mut router = Router::new();
    if let Runtime::Local(files) = &shop.runtime {
        router = router.route(
            &format!("{RUNTIME_PATH}/{{*file}}"),
            get(runtime::serve).with_state(files.clone()),
        );
    }
    router
        .route("/", get(index))
        .route("/products/{id}", get(product))
        .route(
            "/cart/add",
            post(add).layer(DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route("/cart", get(cart))
        .route("/cart.json", get(cart_json))
        .route("/_stats.json", get(stats))
        .route(OFFLINE_SCRIPT_PATH, get(offline_js))
        .fallback(not_found)
        .with_state(shop)
}

async fn index(State(shop): State<Arc<Shop>>) -> Html<String> {
    Html(pages::index(&shop.site))
}

async fn product(
    State(shop): State<Arc<Shop>>,
    session: AmpSession,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let found = id.parse::<u32>().ok().and_then(catalogue::find);
    let Some(p) = found else {
        return not_found(State(shop)).await.into_response();
    };
    // `?enctype=urlencoded`: the form posts urlencoded instead of amp-form's default multipart.
    let urlencoded = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "enctype" && v == "urlencoded");
    let view = cart_of(&shop, &session);
    let html = pages::product(&shop.site, &shop.runtime, p, urlencoded, &view);
    personal(&view, Html(html))
}

/// A page that shows the shopper's cart must not be stored for anyone else.
/// The shopper's cart for a page. A new visitor's is empty, so the page reads no session ID
/// and, with the layer's lazy cookies, sets no cookie: a product page fetched by a crawler, the
/// AMP cache or a signer starts no session and stays cacheable.
fn cart_of(shop: &Shop, session: &AmpSession) -> CartView {
    match session.is_new() {
        true => CartView::default(),
        false => shop.carts.view(session.id().as_str()),
    }
}

fn personal(view: &CartView, page: Html<String>) -> Response {
    if view == &CartView::default() {
        page.into_response()
    } else {
        ([(header::CACHE_CONTROL, "private, no-cache")], page).into_response()
    }
}

/// `POST /cart/add`: applies the add to the session's cart. On the origin, directly from the
/// cache when the browser sent the cookie, or replayed by a completed handoff.
///
/// The answer has no `AMP-Redirect-To`: on the shop's own page and on a cache page that
/// sent the cookie, the shopper stays where they are and the form shows `message`; after a
/// handoff the layer sends the shopper back to the page the form was on (its return path),
/// which then says what was added.
async fn add(
    State(shop): State<Arc<Shop>>,
    session: AmpSession,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refused = |status: StatusCode, message: String| {
        tracing::info!(session = ?session.id(), %status, error = %message, "add refused");
        (status, Json(json!({ "error": message }))).into_response()
    };
    let (form, order_ref) = match form::fields(&headers, body).await {
        Ok(fields) => match (form::check(&fields), ledger::order_ref(&fields)) {
            (Ok(form), Ok(order_ref)) => (form, order_ref.map(str::to_owned)),
            (Err(e), _) => return refused(e.status, e.message),
            (_, Err(message)) => return refused(StatusCode::BAD_REQUEST, message),
        },
        Err(e) => return refused(e.status, e.message),
    };
    let items = match shop.carts.add(
        session.id().as_str(),
        form.product_id,
        form.quantity,
        session.via_handoff(),
    ) {
        Ok(items) => items,
        // Unknown product, or more than 99 of it: either way the cart is untouched.
        Err(e) => return refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    if let (Some(ledger), Some(order_ref)) = (&shop.ledger, &order_ref) {
        // Applied and not recorded would make the soak test's count wrong: tell, do not hide.
        if let Err(e) = ledger.record(order_ref) {
            tracing::error!(error = %e, order_ref, "ledger: could not record an applied add");
        }
    }
    shop.stats.count_add();
    tracing::info!(
        session = ?session.id(),
        source = session.source().as_str(),
        via_handoff = session.via_handoff(),
        product_id = form.product_id,
        quantity = form.quantity,
        "added to cart"
    );
    let added = Item {
        product_id: form.product_id,
        quantity: form.quantity,
    };
    let message = format!("Added {} to your cart.", pages::describe(&added));
    Json(AddAnswer {
        ok: true,
        message,
        items,
    })
    .into_response()
}

async fn cart(State(shop): State<Arc<Shop>>, session: AmpSession) -> Response {
    let view = shop.carts.view(session.id().as_str());
    let html = pages::cart(&shop.site, &view);
    personal(&view, Html(html))
}

async fn cart_json(State(shop): State<Arc<Shop>>, session: AmpSession) -> impl IntoResponse {
    // A new visitor's cart is empty: read no ID, so (lazy cookies) no session is started.
    let items = match session.is_new() {
        true => Vec::new(),
        false => shop.carts.items(session.id().as_str()),
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(CartAnswer { items }),
    )
}

async fn stats(State(shop): State<Arc<Shop>>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(shop.stats.snapshot()),
    )
}

pub async fn offline_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        OFFLINE_JS,
    )
}

async fn not_found(State(shop): State<Arc<Shop>>) -> (StatusCode, Html<String>) {
    (StatusCode::NOT_FOUND, Html(pages::not_found(&shop.site)))
}

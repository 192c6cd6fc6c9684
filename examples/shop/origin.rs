//! The origin's routes: the shop itself. The session comes from the `AmpSession` extractor;
//! the layer in front has already classified the request, refused foreign origins and
//! turned cookieless adds from the cache into handoffs.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tower_amp_session::{AmpSession, AMP_REDIRECT_TO};

use crate::cart::{Carts, Item};
use crate::catalogue;
use crate::form;
use crate::pages::{self, OFFLINE_SCRIPT_PATH};
use crate::site::Site;
use crate::stats::Stats;

/// The stand-in for amp-form, served in every mode (pages only link it in `--offline`).
pub const OFFLINE_JS: &str = include_str!("offline.js");

/// A form is a few dozen bytes; refuse anything much bigger before reading it.
const FORM_LIMIT: usize = 16 * 1024;

/// `{"ok":true,"items":[...]}`: amp-form's `submit-success` template gets these fields.
#[derive(Debug, Serialize)]
struct AddAnswer {
    ok: bool,
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
    pub carts: Carts,
    pub stats: Arc<Stats>,
}

pub fn router(shop: Arc<Shop>) -> Router {
    Router::new()
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
    Html(pages::product(&shop.site, p, urlencoded)).into_response()
}

/// `POST /cart/add`: applies the add to the session's cart. On the origin, directly from the
/// cache when the browser sent the cookie, or replayed by a completed handoff.
async fn add(
    State(shop): State<Arc<Shop>>,
    session: AmpSession,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refused = |status: StatusCode, message: String| {
        tracing::info!(session = %session.id(), %status, error = %message, "add refused");
        (status, Json(json!({ "error": message }))).into_response()
    };
    let form = match form::read(&headers, body).await {
        Ok(f) => f,
        Err(e) => return refused(e.status, e.message),
    };
    let items = match shop
        .carts
        .add(session.id().as_str(), form.product_id, form.quantity)
    {
        Ok(items) => items,
        // Unknown product, or more than 99 of it: either way the cart is untouched.
        Err(e) => return refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    shop.stats.count_add();
    tracing::info!(
        session = %session.id(),
        source = session.source().as_str(),
        via_handoff = session.via_handoff(),
        product_id = form.product_id,
        quantity = form.quantity,
        "added to cart"
    );
    // amp-form navigates the top window to the cart. On a handoff the layer turns this
    // same-origin URL into its 303 target instead.
    let mut res = Json(AddAnswer { ok: true, items }).into_response();
    if let Ok(to) = HeaderValue::from_str(&shop.site.origin_url("/cart")) {
        res.headers_mut().insert(&AMP_REDIRECT_TO, to);
    }
    res
}

async fn cart(State(shop): State<Arc<Shop>>, session: AmpSession) -> Html<String> {
    Html(pages::cart(
        &shop.site,
        &shop.carts.items(session.id().as_str()),
    ))
}

async fn cart_json(State(shop): State<Arc<Shop>>, session: AmpSession) -> impl IntoResponse {
    let items = shop.carts.items(session.id().as_str());
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

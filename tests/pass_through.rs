//! A non-AMP API with its own `CorsLayer` next to the AMP pages: a partner's page
//! (`https://partner.example`) preflights and posts to `/api/ping`.
//!
//! Two supported wirings, each with a real tower-http `CorsLayer`: the builder's
//! `pass_through("/api/")` (the layer does nothing for those paths), and axum's `nest` with
//! the layer on the `fallback_service` only. Without either, the layer refuses the
//! partner's post (a foreign origin), as it must for the shop's own routes.

use std::fmt::Debug;

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_amp_session::{AmpSessionLayer, Keyring};
use tower_http::cors::CorsLayer;

const PARTNER: &str = "https://partner.example";

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send<S, B>(svc: S, req: Request<Full<Bytes>>) -> Answer
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn layer(pass_through: Option<&str>) -> AmpSessionLayer {
    let mut b = AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .direct_route("/cart/add");
    if let Some(p) = pass_through {
        b = b.pass_through(p);
    }
    b.build().unwrap()
}

/// The partner API, with its own CORS policy: the partner's origin, no credentials.
fn api() -> Router {
    Router::new()
        .route("/ping", post(|| async { "pong" }))
        .layer(
            CorsLayer::new()
                .allow_origin(HeaderValue::from_static(PARTNER))
                .allow_methods([Method::POST])
                .allow_headers([http::header::CONTENT_TYPE]),
        )
}

fn shop() -> Router {
    Router::new().route("/cart/add", post(|| async { "{}" }))
}

fn preflight() -> Request<Full<Bytes>> {
    Request::builder()
        .method("OPTIONS")
        .uri("/api/ping")
        .header("origin", PARTNER)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Full::default())
        .unwrap()
}

fn ping() -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri("/api/ping")
        .header("origin", PARTNER)
        .header("content-type", "application/json")
        .body(Full::from("{}"))
        .unwrap()
}

fn add_from_partner() -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri("/cart/add")
        .header("origin", PARTNER)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from("product_id=3"))
        .unwrap()
}

/// The wirings, each as a router: (name, router).
fn wirings() -> Vec<(&'static str, Router)> {
    vec![
        (
            "pass_through(\"/api/\") around the whole router",
            layer(Some("/api/")).wrap_router(shop().nest("/api", api())),
        ),
        (
            "nest(\"/api\", api) + fallback_service(layer.layer(shop))",
            Router::new()
                .nest("/api", api())
                .fallback_service(layer(None).layer(shop())),
        ),
    ]
}

#[tokio::test]
async fn the_partner_api_answers_with_its_own_cors() {
    for (name, router) in wirings() {
        let pre = send(router.clone(), preflight()).await;
        assert!(pre.status.is_success(), "{name}: preflight {}", pre.status);
        assert_eq!(
            pre.headers.get("access-control-allow-origin").unwrap(),
            PARTNER,
            "{name}"
        );
        assert!(
            pre.headers
                .get("access-control-allow-credentials")
                .is_none(),
            "{name}: the API's policy has no credentials"
        );

        let res = send(router.clone(), ping()).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.body);
        assert_eq!(res.body, "pong", "{name}");
        assert_eq!(
            res.headers.get("access-control-allow-origin").unwrap(),
            PARTNER,
            "{name}"
        );
        // The layer did nothing: no session cookie, none of its CORS headers.
        assert!(res.headers.get("set-cookie").is_none(), "{name}");
        assert!(
            res.headers.get("access-control-expose-headers").is_none(),
            "{name}"
        );

        // The shop's own routes stay protected from the partner's origin.
        let add = send(router, add_from_partner()).await;
        assert_eq!(add.status, StatusCode::FORBIDDEN, "{name}: {}", add.body);
    }
}

#[tokio::test]
async fn without_either_the_layer_refuses_the_partner() {
    let router = layer(None).wrap_router(shop().nest("/api", api()));
    let res = send(router, ping()).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
}

#[tokio::test]
async fn only_plain_paths_pass_through() {
    // (path, left alone by the layer)
    let rows = [
        ("/api/ping", true),
        ("/api/v1/ping", true),
        ("/api", false),
        ("/apix/ping", false),
        ("/api/../cart/add", false),
        ("/api/%2e%2e/cart/add", false),
        ("/api//ping", false),
        ("/api/a;b", false),
    ];
    for (path, alone) in rows {
        let app = tower::service_fn(|_req: Request<_>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"app"))))
        });
        let svc = layer(Some("/api/")).layer(app);
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("origin", PARTNER)
            .body(Full::default())
            .unwrap();
        let res = send(svc, req).await;
        let passed = res.status == StatusCode::OK;
        assert_eq!(passed, alone, "{path}: {} {}", res.status, res.body);
    }
}

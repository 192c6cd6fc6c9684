//! Misconfigurations that only show in production, said where an operator looks: a refused
//! origin that is almost the cache origin (403 naming both, one WARN per distinct origin),
//! and the layer added with axum's `Router::layer` (WARN at the first mint).

use std::fmt;
use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_amp_session::{AmpSessionLayer, Keyring};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const CACHE: &str = "https://shop-example.cdn.ampproject.org";

/// An event's fields, as (name, value).
type EventFields = Vec<(String, String)>;

/// Every WARN event: (message, fields).
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(String, EventFields)>>>);

#[derive(Default)]
struct Fields(String, Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.1.push((field.name().into(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.1.push((field.name().into(), value.into()));
    }
}

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == Level::WARN {
            let mut f = Fields::default();
            event.record(&mut f);
            self.0.lock().unwrap().push((f.0, f.1));
        }
    }
}

impl Warnings {
    fn named(&self, name: &str) -> Vec<EventFields> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.starts_with(name))
            .map(|(_, f)| f.clone())
            .collect()
    }
}

fn layer() -> AmpSessionLayer {
    AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .direct_route("/cart/add")
        .build()
        .unwrap()
}

fn add(origin: &str, accept: &str) -> Request<Full<Bytes>> {
    Request::post("/cart/add")
        .header("origin", origin)
        .header("accept", accept)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from("product_id=3"))
        .unwrap()
}

async fn answer(router: &Router, req: Request<Full<Bytes>>) -> (StatusCode, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_near_miss_origin_is_named_in_the_403_and_warned_once() {
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let router = layer().wrap_router(Router::new().route("/cart/add", post(|| async { "{}" })));

    // (Origin, Accept, names the expected cache origin, a new WARN)
    let rows = [
        (
            "https://shop.example.cdn.ampproject.org",
            "application/json",
            true,
            true,
        ),
        (
            "https://shop.example.cdn.ampproject.org",
            "text/html",
            true,
            false,
        ),
        (
            "http://shop-example.cdn.ampproject.org",
            "text/html",
            true,
            true,
        ),
        (
            "https://shop-example.www.bing-amp.com:8443",
            "application/json",
            true,
            true,
        ),
        ("https://evil.example", "text/html", false, false),
        (
            "https://other-site.cdn.ampproject.org",
            "application/json",
            false,
            false,
        ),
    ];
    let mut warned = 0;
    for (origin, accept, named, warns) in rows {
        let (status, body) = answer(&router, add(origin, accept)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
        assert_eq!(body.contains(origin), named, "{origin}: {body}");
        let expected = if origin.contains("bing") {
            "https://shop-example.www.bing-amp.com"
        } else {
            CACHE
        };
        assert_eq!(
            body.contains(&format!("expected {expected}")),
            named,
            "{origin}: {body}"
        );
        if accept == "application/json" {
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON for amp-form");
            assert!(json["error"].as_str().is_some(), "{body}");
        }
        warned += usize::from(warns);
        let events = warnings.named("amp_session.cache_origin_refused");
        assert_eq!(events.len(), warned, "{origin}: {events:?}");
        if warns {
            let last = events.last().unwrap();
            assert!(last.contains(&("origin".into(), origin.into())), "{last:?}");
            assert!(
                last.contains(&("expected".into(), expected.into())),
                "{last:?}"
            );
        }
    }
}

#[tokio::test]
async fn router_layer_is_warned_at_the_first_mint() {
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    // The mistake: `Router::layer` wraps each route on its own.
    let per_route: Router = Router::new()
        .route("/cart/add", post(|| async { "{}" }))
        .layer(layer());
    for _ in 0..3 {
        let res = per_route
            .clone()
            .oneshot(add(CACHE, "application/json"))
            .await
            .unwrap();
        assert!(res.headers().contains_key("amp-redirect-to"), "minted");
    }
    let events = warnings.named("amp_session.layer_per_route");
    assert_eq!(events.len(), 1, "{events:?}");

    // The right wiring mints without the warning.
    let whole = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(whole.clone()));
    let router = layer().wrap_router(Router::new().route("/cart/add", post(|| async { "{}" })));
    let res = router
        .oneshot(add(CACHE, "application/json"))
        .await
        .unwrap();
    assert!(res.headers().contains_key("amp-redirect-to"));
    assert!(whole.named("amp_session.layer_per_route").is_empty());
}

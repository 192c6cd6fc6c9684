//! Arbitrary requests (method, URI, headers, body) through the whole layer: never a panic,
//! never a 5xx other than the guard's documented 503, a refused request never reaches the
//! app, and every redirect the layer writes stays on the publisher origin.
#![no_main]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tower_amp_session::{
    AmpSessionLayer, CacheDomain, Keyring, NonceStatus, Rejection, ReplayFuture, ReplayGuard,
    ReplayGuardError, RequestBody,
};

const NOW: u64 = 1_800_000_000;
const PUBLISHER: &str = "https://shop.example";
const KEY: [u8; 32] = [7; 32];

/// A replay guard the input steers through every answer: nonce[0] == 0 was used, 1 is a
/// full guard, anything else is fresh (a real guard would fill up over a long run).
#[derive(Debug)]
struct Steered;

impl ReplayGuard for Steered {
    fn check_and_mark<'a>(
        &'a self,
        _: &'a str,
        nonce: &'a [u8; 16],
        _: SystemTime,
    ) -> ReplayFuture<'a> {
        let r = match nonce[0] {
            0 => Ok(NonceStatus::AlreadyUsed),
            1 => Err(ReplayGuardError::Full),
            _ => Ok(NonceStatus::Fresh),
        };
        Box::pin(std::future::ready(r))
    }
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

struct World {
    layer: AmpSessionLayer,
    rt: tokio::runtime::Runtime,
}

static WORLD: LazyLock<World> = LazyLock::new(|| World {
    layer: AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(Keyring::builder().signing("k1", KEY))
        .cache(
            CacheDomain::custom("cache.localhost")
                .allow_http()
                .port(8081),
        )
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .replay_guard(Steered)
        .direct_route("/cart/")
        .email_sender("@shop.example")
        .build()
        .unwrap(),
    rt: tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap(),
});

#[derive(Arbitrary, Debug)]
enum Name<'a> {
    Known(u8),
    Raw(&'a [u8]),
}

const NAMES: &[&str] = &[
    "origin",
    "amp-same-origin",
    "cookie",
    "content-type",
    "content-length",
    "referer",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "accept",
    "amp-email-sender",
    "host",
    "transfer-encoding",
];

#[derive(Arbitrary, Debug)]
enum Value<'a> {
    Known(u8),
    Raw(&'a [u8]),
}

const VALUES: &[&str] = &[
    PUBLISHER,
    "https://shop-example.cdn.ampproject.org",
    "http://shop-example.cache.localhost:8081",
    "https://evil-example.cdn.ampproject.org",
    "null",
    "true",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "navigate",
    "document",
    "amp_session=AAAAAAAAAAAAAAAAAAAAAA",
    "amp_session=AAAAAAAAAAAAAAAAAAAAAA; amp_session=BBBBBBBBBBBBBBBBBBBBBA",
    "orders@shop.example",
    "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3",
    "application/json",
];

#[derive(Arbitrary, Debug)]
enum Target<'a> {
    /// Any URI text.
    Raw(&'a str),
    /// The handoff path with any query.
    Handoff(&'a str),
    /// A handoff the layer minted for an arbitrary form posted from the cache (the token
    /// format is private: only the layer seals tokens), then extra query text.
    Minted {
        target: &'a str,
        multipart: bool,
        body: &'a [u8],
        extra: &'a str,
    },
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: Value<'a>,
    target: Target<'a>,
    headers: Vec<(Name<'a>, Value<'a>)>,
    body: &'a [u8],
}

fn uri(target: &Target<'_>) -> Option<String> {
    Some(match target {
        Target::Raw(s) => (*s).to_owned(),
        Target::Handoff(q) => format!("/_amp/handoff?{q}"),
        Target::Minted {
            target,
            multipart,
            body,
            extra,
        } => {
            let content_type = if *multipart {
                "multipart/form-data; boundary=b"
            } else {
                "application/x-www-form-urlencoded"
            };
            let req = Request::post(*target)
                .header("origin", "https://shop-example.cdn.ampproject.org")
                .header("content-type", content_type)
                .body(Full::new(Bytes::copy_from_slice(body)))
                .ok()?;
            let app = tower::service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
            let svc = tower::Layer::layer(&WORLD.layer, app);
            let res = WORLD.rt.block_on(svc.oneshot(req)).ok()?;
            let to = res.headers().get("amp-redirect-to")?.to_str().ok()?;
            format!("{}{extra}", to.strip_prefix(PUBLISHER)?)
        }
    })
}

fuzz_target!(|input: Input<'_>| {
    let method = match input.method {
        Value::Known(i) => ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
            [usize::from(i) % 7]
            .parse()
            .unwrap(),
        Value::Raw(b) => match Method::from_bytes(b) {
            Ok(m) => m,
            Err(_) => return,
        },
    };
    let Some(uri) = uri(&input.target) else {
        return;
    };
    let mut req = Request::builder().method(method).uri(uri.as_str());
    for (name, value) in &input.headers {
        let name = match name {
            Name::Known(i) => HeaderName::from_static(NAMES[usize::from(*i) % NAMES.len()]),
            Name::Raw(b) => match HeaderName::from_bytes(b) {
                Ok(n) => n,
                Err(_) => return,
            },
        };
        let value = match value {
            Value::Known(i) => HeaderValue::from_static(VALUES[usize::from(*i) % VALUES.len()]),
            Value::Raw(b) => match HeaderValue::from_bytes(b) {
                Ok(v) => v,
                Err(_) => return,
            },
        };
        req = req.header(name, value);
    }
    let Ok(req) = req.body(Full::new(Bytes::copy_from_slice(input.body))) else {
        return;
    };

    let app = tower::service_fn(|req: Request<RequestBody<Full<Bytes>>>| async move {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // Read the replayed body as an app would.
        let _ = req.into_body().collect().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let svc = tower::Layer::layer(&WORLD.layer, app);
    let before = CALLS.load(Ordering::SeqCst);
    let (status, headers, rejection) = WORLD.rt.block_on(async move {
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let _ = body.collect().await.unwrap();
        (
            parts.status,
            parts.headers,
            parts.extensions.get::<Rejection>().copied(),
        )
    });
    let called = CALLS.load(Ordering::SeqCst) - before;

    assert!(
        status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE,
        "status {status}"
    );
    if let Some(r) = rejection {
        assert_eq!(r.status(), status);
        assert_eq!(called, 0, "a refused request reached the app");
        assert!(headers.get("amp-redirect-to").is_none());
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(rejection.is_some() && called == 0, "a 503 without a reason");
    }
    if let Some(to) = headers.get("amp-redirect-to") {
        let to = to.to_str().unwrap();
        assert!(
            to.starts_with("https://shop.example/_amp/handoff?token="),
            "{to}"
        );
        assert_eq!(called, 0, "minted and applied");
    }
    if let Some(loc) = headers.get("location") {
        let loc = loc.to_str().unwrap();
        let url = url::Url::parse(loc).unwrap();
        assert_eq!(url.origin().ascii_serialization(), PUBLISHER, "{loc}");
        assert!(!url.path().starts_with("//"), "{loc}");
    }
});

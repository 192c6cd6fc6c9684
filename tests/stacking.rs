//! How this layer stacks with tower-http's `CorsLayer`, `CsrfLayer` and `CompressionLayer`.
//!
//! Each test builds one stacking, drives it with `ServiceExt::oneshot`, and says in a comment
//! which order is right and why. In `ServiceBuilder` terms, "outside" is the layer listed
//! first: it sees the request first and the response last.

mod common;

use std::fmt::Debug;

use bytes::Bytes;
use common::{app, builder, path_of, request, Answer, Recorder, CACHE, NAV, PUBLISHER};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::csrf::{CsrfLayer, ProtectionError, ProtectionErrorKind};

const FOREIGN: &str = "https://evil.example";
const URLENCODED: &str = "application/x-www-form-urlencoded";
const ADD: &str = "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example";

/// Sends one request through any stacking and reads the whole answer.
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
        rejection: parts.extensions.get().copied(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A session cookie for the tests that need one: issued by the layer on a first GET.
async fn session_cookie() -> String {
    let svc = builder()
        .build()
        .unwrap()
        .layer(app(&Recorder::default(), StatusCode::OK, &[]));
    let a = send(svc, request("GET", "/", &[], "")).await;
    a.session_cookie().unwrap()
}

/// Every value of `name`, split on commas and lowercased: what a browser would combine.
fn tokens(a: &Answer, name: &str) -> Vec<String> {
    a.all(name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------
// (a) CorsLayer
// ---------------------------------------------------------------------------------------

/// Right order: THIS LAYER OUTSIDE, `CorsLayer` inside (or only on non-AMP routes).
///
/// This layer writes the AMP CORS headers last, so they win: `Access-Control-Allow-Origin`
/// is set (not appended) to the exact allowed origin, credentials are allowed, and
/// `AMP-Redirect-To` is exposed. A `CorsLayer` inside still answers the origins this layer
/// does not know (a public JSON API) with its own policy, untouched.
#[tokio::test]
async fn cors_inside_this_layer_amp_headers_win() {
    let rec = Recorder::default();
    let amp = builder().build().unwrap();
    // A permissive CorsLayer for a public API on the same app.
    let svc = ServiceBuilder::new()
        .layer(amp)
        .layer(CorsLayer::permissive())
        .service(app(&rec, StatusCode::OK, &[]));
    let cookie = session_cookie().await;

    // (what, request, expected Allow-Origin values, expected Allow-Credentials values)
    type Row<'a> = (&'a str, Request<Full<Bytes>>, &'a [&'a str], &'a [&'a str]);
    let rows: Vec<Row<'_>> = vec![
        (
            "cache GET with the cookie",
            request(
                "GET",
                "/cart.json",
                &[("origin", CACHE), ("cookie", &cookie)],
                "",
            ),
            &[CACHE],
            &["true"],
        ),
        (
            "cache POST with the cookie (reaches the app)",
            request(
                "POST",
                ADD,
                &[
                    ("origin", CACHE),
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1&quantity=1",
            ),
            &[CACHE],
            &["true"],
        ),
        (
            "cookieless cache POST (the mint answer)",
            request(
                "POST",
                ADD,
                &[("origin", CACHE), ("content-type", URLENCODED)],
                "product_id=1&quantity=1",
            ),
            &[CACHE],
            &["true"],
        ),
        (
            "same-origin POST",
            request(
                "POST",
                ADD,
                &[
                    ("origin", PUBLISHER),
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1&quantity=1",
            ),
            &[PUBLISHER],
            &["true"],
        ),
        (
            // Not an AMP origin: CorsLayer's own public policy, no credentials.
            "foreign GET",
            request("GET", "/api/products", &[("origin", FOREIGN)], ""),
            &["*"],
            &[],
        ),
    ];
    for (what, req, allow_origin, allow_credentials) in rows {
        let a = send(svc.clone(), req).await;
        assert!(a.status.is_success(), "{what}: {} {}", a.status, a.body);
        assert_eq!(a.all("access-control-allow-origin"), allow_origin, "{what}");
        assert_eq!(
            a.all("access-control-allow-credentials"),
            allow_credentials,
            "{what}"
        );
        // `Vary: Origin` once, whoever wrote it.
        let vary = tokens(&a, "vary");
        assert_eq!(
            vary.iter().filter(|t| *t == "origin").count(),
            1,
            "{what}: {vary:?}"
        );
    }
}

/// BUG: with a `CorsLayer` that exposes `*` inside, the app's own `AMP-Redirect-To` (e.g.
/// "added, go to the cart") is not exposed to amp-form on the cache. In credentialed CORS,
/// which this layer always answers, `Access-Control-Expose-Headers: *` is the literal header
/// name `*`, not a wildcard (Fetch standard), but the layer treats `*` as already listing
/// `AMP-Redirect-To` and adds nothing.
#[tokio::test]
async fn cors_inside_this_layer_app_redirect_is_exposed() {
    let amp = builder().build().unwrap();
    let redirect: &'static [(&str, &str)] = &[("amp-redirect-to", "https://shop.example/cart")];
    let svc = ServiceBuilder::new()
        .layer(amp)
        .layer(CorsLayer::permissive())
        .service(app(&Recorder::default(), StatusCode::OK, redirect));
    let cookie = session_cookie().await;
    let headers = [
        ("origin", CACHE),
        ("cookie", cookie.as_str()),
        ("content-type", URLENCODED),
    ];
    let a = send(
        svc,
        request("POST", ADD, &headers, "product_id=1&quantity=1"),
    )
    .await;
    assert_eq!(
        a.header("amp-redirect-to"),
        Some("https://shop.example/cart")
    );
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert!(
        tokens(&a, "access-control-expose-headers").contains(&"amp-redirect-to".to_owned()),
        "{:?}",
        a.all("access-control-expose-headers")
    );
}

/// Wrong order: `CorsLayer` OUTSIDE this layer. tower-http's `CorsLayer` writes its headers
/// with `HeaderMap::extend`, which REPLACES what this layer wrote (only `Vary` is appended):
///
/// - `CorsLayer::permissive()`: `Access-Control-Allow-Origin: *` next to this layer's
///   `Access-Control-Allow-Credentials: true`, which browsers refuse for a credentialed
///   request (amp-form always sends credentials), and `Expose-Headers: *`, which hides
///   `AMP-Redirect-To`: every handoff fails silently on the cache.
/// - an exact list with credentials and `expose_headers([...])`: the origin is right, but
///   the expose list replaces `AMP-Redirect-To` unless you repeat it there.
#[tokio::test]
async fn cors_outside_this_layer_breaks_the_handoff() {
    let mint = || {
        request(
            "POST",
            ADD,
            &[("origin", CACHE), ("content-type", URLENCODED)],
            "product_id=1&quantity=1",
        )
    };
    let listed = CorsLayer::new()
        .allow_origin(AllowOrigin::list([CACHE.parse().unwrap()]))
        .allow_credentials(true)
        .expose_headers([http::HeaderName::from_static("x-request-id")]);

    // (CorsLayer outside, expected Allow-Origin, expected Expose-Headers)
    let rows: [(&str, CorsLayer, &[&str], &[&str]); 2] = [
        ("permissive", CorsLayer::permissive(), &["*"], &["*"]),
        ("exact list", listed, &[CACHE], &["x-request-id"]),
    ];
    for (what, cors, allow_origin, expose) in rows {
        let rec = Recorder::default();
        let svc = ServiceBuilder::new()
            .layer(cors)
            .layer(builder().build().unwrap())
            .service(app(&rec, StatusCode::OK, &[]));
        let a = send(svc, mint()).await;
        assert!(a.header("amp-redirect-to").is_some(), "{what}: minted");
        assert_eq!(a.all("access-control-allow-origin"), allow_origin, "{what}");
        // This layer's `true` survives, so `*` + credentials is an invalid pair.
        assert_eq!(
            a.all("access-control-allow-credentials"),
            ["true"],
            "{what}"
        );
        assert_eq!(a.all("access-control-expose-headers"), expose, "{what}");
        assert!(
            !tokens(&a, "access-control-expose-headers").contains(&"amp-redirect-to".into()),
            "{what}: amp-form cannot read AMP-Redirect-To"
        );
    }
}

// ---------------------------------------------------------------------------------------
// (b) CsrfLayer
// ---------------------------------------------------------------------------------------

/// Right order: `CsrfLayer` INSIDE this layer, with this publisher's cache origins trusted.
///
/// tower-http's `CsrfLayer` (Go 1.25's `CrossOriginProtection`) passes a state-changing
/// request when `Sec-Fetch-Site` is `same-origin`/`none`, when `Origin` is trusted, or (with
/// no `Sec-Fetch-Site`) when `Origin`'s host equals `Host`. So:
///
/// - a completed handoff passes: the replay drops the navigation's `Sec-Fetch-*` headers and
///   carries `Origin: <publisher origin>` and the original `Host`;
/// - a foreign cross-site POST never reaches it: this layer refuses it first (403 with its
///   own reason), so `CsrfLayer` adds nothing for AMP routes;
/// - a cache POST that carries the cookie (SameSite=None, third-party cookies allowed) is
///   cross-site to `CsrfLayer`: trust `AmpSessionLayer::cache_origins()` in it, or it is
///   refused (and amp-form shows an error). With `SameSite::Lax` no browser sends that
///   request: every cache change is a handoff.
///
/// Outside this layer, `CsrfLayer` would refuse the cookieless cache POST before the mint
/// (no handoff, and no CORS headers, so amp-form cannot even read the error); see the last
/// row.
#[tokio::test]
async fn csrf_inside_this_layer_passes_handoffs_and_refuses_foreign_posts() {
    let amp = builder().build().unwrap();
    let trusting = amp
        .cache_origins()
        .try_fold(CsrfLayer::new(), |csrf, origin| {
            csrf.add_trusted_origin(origin)
        })
        .unwrap();
    let cookie = session_cookie().await;
    let cross_site = ("sec-fetch-site", "cross-site");
    let host = ("host", "shop.example");

    // Mint once; each row that completes uses a fresh mint (the nonce is single use).
    async fn handoff(amp: &tower_amp_session::AmpSessionLayer) -> String {
        let svc = amp.layer(app(&Recorder::default(), StatusCode::OK, &[]));
        let headers = [
            ("origin", CACHE),
            ("content-type", URLENCODED),
            ("sec-fetch-site", "cross-site"),
        ];
        let a = send(
            svc,
            request("POST", ADD, &headers, "product_id=1&quantity=1"),
        )
        .await;
        path_of(a.header("amp-redirect-to").unwrap())
    }

    enum Refused {
        No,
        ByThisLayer,
        ByCsrf(ProtectionErrorKind),
    }
    use Refused::*;

    let strict = CsrfLayer::new();
    // (what, CsrfLayer inside, request, expected status, refused by whom)
    type Row<'a> = (
        &'a str,
        CsrfLayer,
        Request<Full<Bytes>>,
        StatusCode,
        Refused,
    );
    let rows: Vec<Row<'_>> = vec![
        (
            "completed handoff (cross-site navigation)",
            strict.clone(),
            request(
                "GET",
                &handoff(&amp).await,
                &[NAV[0], NAV[1], NAV[2], cross_site, host],
                "",
            ),
            StatusCode::SEE_OTHER,
            No,
        ),
        (
            "foreign cross-site POST",
            strict.clone(),
            request(
                "POST",
                ADD,
                &[
                    ("origin", FOREIGN),
                    cross_site,
                    host,
                    ("content-type", URLENCODED),
                ],
                "product_id=1&quantity=1",
            ),
            StatusCode::FORBIDDEN,
            ByThisLayer,
        ),
        (
            "same-origin POST from the publisher's page",
            strict.clone(),
            request(
                "POST",
                ADD,
                &[
                    ("origin", PUBLISHER),
                    ("sec-fetch-site", "same-origin"),
                    host,
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1&quantity=1",
            ),
            StatusCode::OK,
            No,
        ),
        (
            "cache POST with the cookie, caches not trusted",
            strict.clone(),
            request(
                "POST",
                ADD,
                &[
                    ("origin", CACHE),
                    cross_site,
                    host,
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1&quantity=1",
            ),
            StatusCode::FORBIDDEN,
            ByCsrf(ProtectionErrorKind::CrossOriginRequest),
        ),
        (
            "cache POST with the cookie, caches trusted",
            trusting.clone(),
            request(
                "POST",
                ADD,
                &[
                    ("origin", CACHE),
                    cross_site,
                    host,
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1&quantity=1",
            ),
            StatusCode::OK,
            No,
        ),
    ];
    for (what, csrf, req, status, refused) in rows {
        let rec = Recorder::default();
        let svc = ServiceBuilder::new()
            .layer(amp.clone())
            .layer(csrf)
            .service(app(&rec, StatusCode::OK, &[]));
        let res = svc.oneshot(req).await.unwrap();
        let protection = res.extensions().get::<ProtectionError>().map(|e| e.kind());
        let rejection = res
            .extensions()
            .get::<tower_amp_session::Rejection>()
            .copied();
        assert_eq!(res.status(), status, "{what}");
        match refused {
            No => {
                assert_eq!(rec.count(), 1, "{what}: the app applied it");
                assert!(protection.is_none() && rejection.is_none(), "{what}");
            }
            ByThisLayer => {
                assert_eq!(rec.count(), 0, "{what}");
                assert!(rejection.is_some() && protection.is_none(), "{what}");
            }
            ByCsrf(kind) => {
                assert_eq!(rec.count(), 0, "{what}");
                assert_eq!(protection, Some(kind), "{what}");
                // This layer still answers CORS, so amp-form can read the refusal.
                assert_eq!(res.headers()["access-control-allow-origin"], CACHE);
            }
        }
        if what.starts_with("completed") {
            assert_eq!(rec.seen()[0].origin.as_deref(), Some(PUBLISHER));
        }
    }

    // Wrong order: CsrfLayer outside refuses the cookieless cache POST before the mint.
    let svc = ServiceBuilder::new()
        .layer(CsrfLayer::new())
        .layer(amp.clone())
        .service(app(&Recorder::default(), StatusCode::OK, &[]));
    let headers = [
        ("origin", CACHE),
        cross_site,
        host,
        ("content-type", URLENCODED),
    ];
    let a = send(
        svc,
        request("POST", ADD, &headers, "product_id=1&quantity=1"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.header("amp-redirect-to"), None, "no handoff");
    assert_eq!(
        a.header("access-control-allow-origin"),
        None,
        "unreadable on the cache"
    );
}

// ---------------------------------------------------------------------------------------
// (c) CompressionLayer
// ---------------------------------------------------------------------------------------

/// Right order: `CompressionLayer` OUTSIDE this layer, so it also compresses this layer's
/// own answers (rejections, error pages). Either order keeps the headers that matter: this
/// layer appends `Vary: Origin` and compression appends `Vary: Accept-Encoding`, neither
/// replaces the other, and compression never touches `AMP-Redirect-To` or `Location`.
/// Bodies under 32 bytes (the mint's `{}`, the 303's empty body) are left as they are.
#[tokio::test]
async fn compression_outside_this_layer() {
    let big = Bytes::from(format!(
        "{{\"items\":[{}]}}",
        "{\"product_id\":1},".repeat(100)
    ));
    let app = {
        let big = big.clone();
        tower::service_fn(
            move |_req: Request<tower_amp_session::RequestBody<Full<Bytes>>>| {
                let big = big.clone();
                async move {
                    let mut res = Response::new(Full::new(big));
                    res.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(res)
                }
            },
        )
    };
    let amp = builder().build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .layer(amp)
        .service(app);
    let cookie = session_cookie().await;
    let gzip = ("accept-encoding", "gzip");

    let minted = send(
        svc.clone(),
        request(
            "POST",
            ADD,
            &[("origin", CACHE), ("content-type", URLENCODED), gzip],
            "product_id=1&quantity=1",
        ),
    )
    .await;
    let handoff = path_of(
        minted
            .header("amp-redirect-to")
            .expect("AMP-Redirect-To survives"),
    );

    // (what, request, compressed?, expected Vary tokens, header that must survive)
    type Row<'a> = (
        &'a str,
        Request<Full<Bytes>>,
        bool,
        &'a [&'a str],
        Option<&'a str>,
    );
    let rows: Vec<Row<'_>> = vec![
        (
            "app answer to the cache, gzip accepted",
            request(
                "GET",
                "/cart.json",
                &[("origin", CACHE), ("cookie", &cookie), gzip],
                "",
            ),
            true,
            &["origin", "accept-encoding"],
            Some("access-control-allow-origin"),
        ),
        (
            "app answer, gzip not accepted",
            request(
                "GET",
                "/cart.json",
                &[("origin", CACHE), ("cookie", &cookie)],
                "",
            ),
            false,
            // The answer could have been compressed, so it still varies on Accept-Encoding.
            &["origin", "accept-encoding"],
            Some("access-control-allow-origin"),
        ),
        (
            "this layer's own 403",
            request(
                "POST",
                ADD,
                &[("origin", FOREIGN), ("content-type", URLENCODED), gzip],
                "product_id=1&quantity=1",
            ),
            true,
            &["origin", "accept-encoding"],
            None,
        ),
        (
            "bad handoff token (HTML page)",
            request(
                "GET",
                "/_amp/handoff?token=AAAA",
                &[NAV[0], NAV[1], NAV[2], gzip],
                "",
            ),
            true,
            &["accept-encoding"],
            None,
        ),
        (
            "completed handoff (303, empty body)",
            request("GET", &handoff, &[NAV[0], NAV[1], NAV[2], gzip], ""),
            false,
            &[],
            Some("location"),
        ),
    ];
    for (what, req, compressed, vary, kept) in rows {
        let res = svc.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let encoding = parts.headers.get("content-encoding");
        let got_vary: Vec<String> = parts
            .headers
            .get_all("vary")
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        assert_eq!(got_vary, vary, "{what}");
        if compressed {
            assert_eq!(encoding.map(|v| v.as_bytes()), Some(&b"gzip"[..]), "{what}");
            assert_eq!(&body[..2], [0x1f, 0x8b], "{what}: gzip magic");
        } else {
            assert!(encoding.is_none(), "{what}");
        }
        if let Some(name) = kept {
            assert!(parts.headers.contains_key(name), "{what}: {name} kept");
        }
    }

    // The mint's own answer (the JSON amp-form renders, "Continuing on ..."): compressed
    // like any JSON, with AMP-Redirect-To and CORS intact.
    assert_eq!(minted.header("content-encoding"), Some("gzip"));
    assert_eq!(minted.header("access-control-allow-origin"), Some(CACHE));
    assert!(tokens(&minted, "access-control-expose-headers").contains(&"amp-redirect-to".into()));
    assert_eq!(tokens(&minted, "vary"), ["origin", "accept-encoding"]);
}

/// Behind a proxy that rewrites `Host` (`Host: backend:8080`), with a strict `CsrfLayer`
/// inside and NOTHING configured on it: a completed handoff still passes, because the replay
/// carries `Origin: <publisher>` and `Host: <publisher authority>` (never the forwarded
/// `Host`), and `CsrfLayer` compares exactly those two when there is no `Sec-Fetch-Site`.
///
/// What does need configuring behind such a proxy is the publisher's own same-origin POST
/// from a browser that sends no `Sec-Fetch-Site` (old browsers): `Origin: https://shop.example`
/// against `Host: backend:8080` is refused unless `amp.publisher_origins()` are trusted.
#[tokio::test]
async fn csrf_passes_the_replay_whatever_host_the_proxy_forwarded() {
    use std::sync::{Arc, Mutex};

    // `/cart/add` applies on arrival from the cache page (no confirmation page).
    let amp = builder().direct_route("/cart/add").build().unwrap();
    let cookie = session_cookie().await;
    // What the app saw: (Host, Origin) of each request that reached it.
    type Saw = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;
    let saw = Saw::default();
    let app = {
        let saw = saw.clone();
        tower::service_fn(
            move |req: Request<tower_amp_session::RequestBody<Full<Bytes>>>| {
                let header = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
                saw.lock().unwrap().push((header("host"), header("origin")));
                async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new()))) }
            },
        )
    };
    let stack = |csrf: CsrfLayer| {
        ServiceBuilder::new()
            .layer(amp.clone())
            .layer(csrf)
            .service(app.clone())
    };
    let trusting_publisher = amp
        .publisher_origins()
        .try_fold(CsrfLayer::new(), |csrf, o| csrf.add_trusted_origin(o))
        .unwrap();
    let mint = || async {
        let svc = amp.layer(common::app(&Recorder::default(), StatusCode::OK, &[]));
        let headers = [("origin", CACHE), ("content-type", URLENCODED)];
        let a = send(svc, request("POST", ADD, &headers, "product_id=1")).await;
        path_of(a.header("amp-redirect-to").unwrap())
    };
    let cross_site = ("sec-fetch-site", "cross-site");

    // (what, CsrfLayer inside, request, expected status)
    let rows: Vec<(&str, CsrfLayer, Request<Full<Bytes>>, StatusCode)> = vec![
        (
            "handoff, Host as the browser sent it",
            CsrfLayer::new(),
            request(
                "GET",
                &mint().await,
                &[NAV[0], NAV[1], NAV[2], cross_site, ("host", "shop.example")],
                "",
            ),
            StatusCode::SEE_OTHER,
        ),
        (
            "handoff, Host rewritten by a proxy",
            CsrfLayer::new(),
            request(
                "GET",
                &mint().await,
                &[NAV[0], NAV[1], NAV[2], cross_site, ("host", "backend:8080")],
                "",
            ),
            StatusCode::SEE_OTHER,
        ),
        (
            "handoff, no Host at all",
            CsrfLayer::new(),
            request(
                "GET",
                &mint().await,
                &[NAV[0], NAV[1], NAV[2], cross_site],
                "",
            ),
            StatusCode::SEE_OTHER,
        ),
        (
            "old browser's same-origin POST, Host rewritten, publisher not trusted",
            CsrfLayer::new(),
            request(
                "POST",
                ADD,
                &[
                    ("origin", PUBLISHER),
                    ("host", "backend:8080"),
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1",
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            "old browser's same-origin POST, Host rewritten, publisher trusted",
            trusting_publisher,
            request(
                "POST",
                ADD,
                &[
                    ("origin", PUBLISHER),
                    ("host", "backend:8080"),
                    ("cookie", &cookie),
                    ("content-type", URLENCODED),
                ],
                "product_id=1",
            ),
            StatusCode::OK,
        ),
    ];
    for (what, csrf, req, status) in rows {
        let before = saw.lock().unwrap().len();
        let res = stack(csrf).oneshot(req).await.unwrap();
        assert_eq!(res.status(), status, "{what}");
        let reached: Vec<_> = saw.lock().unwrap()[before..].to_vec();
        if status == StatusCode::FORBIDDEN {
            assert!(reached.is_empty(), "{what}");
            assert!(
                res.extensions().get::<ProtectionError>().is_some(),
                "{what}"
            );
            continue;
        }
        assert_eq!(reached.len(), 1, "{what}");
        if what.starts_with("handoff") {
            assert_eq!(
                reached[0],
                (Some("shop.example".into()), Some(PUBLISHER.into())),
                "{what}: the replay is addressed to the publisher"
            );
            assert_eq!(
                res.extensions().get::<tower_amp_session::HandoffOutcome>(),
                Some(&tower_amp_session::HandoffOutcome::Applied),
                "{what}"
            );
        }
    }
}

/// The README's stack, as `axum::serve` would run it: `TraceLayer` > `CompressionLayer` >
/// this layer (`wrap_router`) > `TimeoutLayer` > `CsrfLayer` > routes. A handoff applies
/// through all of it, and a same-origin answer is still compressed and CORS-headed.
#[tokio::test]
async fn the_readme_stack_completes_a_handoff() {
    use axum::{routing::post, Router};
    use std::time::Duration;
    use tower_amp_session::testing::Handoff;
    use tower_amp_session::HandoffOutcome;
    use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

    let amp = builder().build().unwrap();
    let csrf = amp
        .cache_origins()
        .chain(amp.publisher_origins())
        .try_fold(CsrfLayer::new(), |csrf, origin| {
            csrf.add_trusted_origin(origin)
        })
        .unwrap();
    let big = "{\"product_id\":1},".repeat(100);
    let router = Router::new()
        .route("/cart/add", post(move || async move { big }))
        .layer(csrf)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ));
    let mut app = amp
        .wrap_router(router)
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http());

    let done = Handoff::post("/cart/add")
        .form(&[("product_id", "1")])
        .send(&amp, &mut app)
        .await;
    assert_eq!(done.outcome(), Some(HandoffOutcome::Applied));
    let cookie = done.session_cookie().expect("a new session");

    let req = request(
        "POST",
        ADD,
        &[
            ("origin", CACHE),
            ("cookie", &cookie),
            ("sec-fetch-site", "cross-site"),
            ("accept-encoding", "gzip"),
            ("content-type", URLENCODED),
        ],
        "product_id=1",
    );
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.headers()["access-control-allow-origin"], CACHE);
}

//! "Nothing the shopper did is lost" (SPEC section 5, Complete step 4; issue 12): what the
//! shopper sees when the app, the replay guard or the clock gets in the way, and what a
//! reload of the same link does then. Each test is a table of visits to one handoff link.

mod common;
mod replay_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::mint_add as mint;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use replay_support::{Faulty, Scripted, Step};
use tower::{Service, ServiceExt};
use tower_amp_session::{HandoffOutcome, MemoryReplayGuard, RequestBody};

/// One visit of a handoff link: the answer and the outcome the layer recorded.
async fn visit(svc: &mut Svc, handoff: &str) -> (Answer, Option<HandoffOutcome>) {
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request("GET", handoff, &NAV, ""))
        .await
        .unwrap();
    let outcome = res.extensions().get::<HandoffOutcome>().copied();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let answer = Answer {
        status: parts.status,
        rejection: parts.extensions.get().copied(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    (answer, outcome)
}

/// What one visit must show: status, words on the page (all of them), outcome, and how many
/// changes the app has applied after it.
struct Expect {
    status: StatusCode,
    says: Vec<&'static str>,
    outcome: Option<HandoffOutcome>,
    applied: usize,
}

fn expect(
    status: StatusCode,
    says: &[&'static str],
    outcome: Option<HandoffOutcome>,
    applied: usize,
) -> Expect {
    Expect {
        status,
        says: says.to_vec(),
        outcome,
        applied,
    }
}

fn check(
    row: &str,
    i: usize,
    got: &(Answer, Option<HandoffOutcome>),
    app: &Scripted,
    want: &Expect,
) {
    let (a, outcome) = got;
    assert_eq!(a.status, want.status, "{row}, visit {i}: {}", a.body);
    for words in &want.says {
        assert!(
            a.body.contains(words),
            "{row}, visit {i}: {words:?} not in {}",
            a.body
        );
    }
    assert_eq!(*outcome, want.outcome, "{row}, visit {i}: outcome");
    assert_eq!(app.applied(), want.applied, "{row}, visit {i}: applied");
    assert_eq!(
        a.header("cache-control"),
        Some("no-store"),
        "{row}, visit {i}"
    );
}

const RETRY: &str = "reloading this page will try again";
const APPLIED: Option<HandoffOutcome> = Some(HandoffOutcome::Applied);
const AGAIN: Option<HandoffOutcome> = Some(HandoffOutcome::AlreadyApplied);
const FAILED: Option<HandoffOutcome> = Some(HandoffOutcome::Failed);
const PENDING: Option<HandoffOutcome> = Some(HandoffOutcome::Pending);

/// The app fails the first call and succeeds the second: the first completion shows the
/// failure (the app's status and words), a reload applies the change once, a third visit
/// redirects as applied.
#[tokio::test]
async fn a_failed_change_is_shown_then_a_reload_applies_it_once() {
    let first_calls: &[(&str, Step)] = &[
        (
            "app 422",
            Step::Refuse(StatusCode::UNPROCESSABLE_ENTITY, "choose a size"),
        ),
        (
            "app 409",
            Step::Refuse(StatusCode::CONFLICT, "cart is locked"),
        ),
        (
            "app 500",
            Step::Refuse(StatusCode::INTERNAL_SERVER_ERROR, "database error"),
        ),
        (
            "app 503",
            Step::Refuse(StatusCode::SERVICE_UNAVAILABLE, "try later"),
        ),
    ];
    for (row, first) in first_calls {
        let app = Scripted::new(&[*first, Step::Apply]);
        let mut svc = service(&builder().build().unwrap(), app.app());
        let handoff = mint(&mut svc, 1).await;
        let Step::Refuse(status, message) = first else {
            unreachable!()
        };
        let visits = [
            expect(
                *status,
                &[message, "could not be applied", RETRY],
                FAILED,
                0,
            ),
            expect(StatusCode::SEE_OTHER, &[], APPLIED, 1),
            expect(StatusCode::SEE_OTHER, &[], AGAIN, 1),
        ];
        for (i, want) in visits.iter().enumerate() {
            let got = visit(&mut svc, &handoff).await;
            check(row, i, &got, &app, want);
            if want.status == StatusCode::SEE_OTHER {
                assert_eq!(got.0.header("location"), Some("https://shop.example/"));
            }
        }
        assert_eq!(
            app.calls(),
            2,
            "{row}: the app is not called for the third visit"
        );
    }
}

/// The app's service returns `Err` (it is not an HTTP answer): the layer gives the link
/// back and passes the error on; a reload applies the change.
#[tokio::test]
async fn an_app_error_passes_through_and_a_reload_applies() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let app = tower::service_fn(move |_req: Request<RequestBody<Full<Bytes>>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err::<Response<Full<Bytes>>, tower_amp_session::BoxError>("connection reset".into())
            } else {
                Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
            }
        }
    });
    let layer = builder().build().unwrap();
    let mut svc = tower::Layer::layer(&layer, app);
    let cache_post = || {
        request(
            "POST",
            "/cart/add",
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "product_id=1",
        )
    };
    let minted = svc.ready().await.unwrap().call(cache_post()).await.unwrap();
    let handoff = path_of(minted.headers()["amp-redirect-to"].to_str().unwrap());
    let nav = || request("GET", &handoff, &NAV, "");

    let first = svc.ready().await.unwrap().call(nav()).await;
    assert_eq!(first.unwrap_err().to_string(), "connection reset");
    let second = svc.ready().await.unwrap().call(nav()).await.unwrap();
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    let third = svc.ready().await.unwrap().call(nav()).await.unwrap();
    assert_eq!(third.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        third.extensions().get::<HandoffOutcome>(),
        Some(&HandoffOutcome::AlreadyApplied)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The replay guard in trouble at each of its three steps.
#[tokio::test]
async fn replay_guard_trouble_never_applies_twice_and_always_tells() {
    let not_applied =
        "this link cannot be checked right now, so nothing was done; please try again in a moment";
    let pending = "still being applied, or its result is unknown; check before trying again";

    // Down when reserving: 503 with Retry-After, nothing applied, the link still usable.
    let guard = Faulty::default();
    let app = Scripted::new(&[Step::Apply]);
    let mut svc = service(
        &builder().replay_guard(guard.clone()).build().unwrap(),
        app.app(),
    );
    let handoff = mint(&mut svc, 1).await;
    guard.reserve_down.store(true, Ordering::SeqCst);
    let got = visit(&mut svc, &handoff).await;
    check(
        "reserve down",
        0,
        &got,
        &app,
        &expect(
            StatusCode::SERVICE_UNAVAILABLE,
            &[not_applied],
            Some(HandoffOutcome::GuardUnavailable),
            0,
        ),
    );
    assert_eq!(got.0.header("retry-after"), Some("2"));
    assert!(got.0.rejection.is_some());
    guard.reserve_down.store(false, Ordering::SeqCst);
    let got = visit(&mut svc, &handoff).await;
    check(
        "reserve down",
        1,
        &got,
        &app,
        &expect(StatusCode::SEE_OTHER, &[], APPLIED, 1),
    );

    // Down when committing: the change WAS applied (303); a reload cannot tell (409).
    let guard = Faulty::default();
    guard.commit_down.store(true, Ordering::SeqCst);
    let app = Scripted::new(&[Step::Apply]);
    let mut svc = service(
        &builder().replay_guard(guard.clone()).build().unwrap(),
        app.app(),
    );
    let handoff = mint(&mut svc, 1).await;
    let visits = [
        expect(StatusCode::SEE_OTHER, &[], APPLIED, 1),
        expect(StatusCode::CONFLICT, &[pending], PENDING, 1),
    ];
    for (i, want) in visits.iter().enumerate() {
        check(
            "commit down",
            i,
            &visit(&mut svc, &handoff).await,
            &app,
            want,
        );
    }
    assert_eq!(app.calls(), 1);

    // Down when releasing after the app refused: the failure is shown without promising a
    // retry; a reload says the result is unknown, never applies behind the shopper's back.
    let guard = Faulty::default();
    guard.release_down.store(true, Ordering::SeqCst);
    let app = Scripted::new(&[
        Step::Refuse(StatusCode::INTERNAL_SERVER_ERROR, "oops"),
        Step::Apply,
    ]);
    let mut svc = service(
        &builder().replay_guard(guard.clone()).build().unwrap(),
        app.app(),
    );
    let handoff = mint(&mut svc, 1).await;
    let visits = [
        expect(
            StatusCode::INTERNAL_SERVER_ERROR,
            &["oops", "send the form again"],
            FAILED,
            0,
        ),
        expect(StatusCode::CONFLICT, &[pending], PENDING, 0),
    ];
    for (i, want) in visits.iter().enumerate() {
        let got = visit(&mut svc, &handoff).await;
        check("release down", i, &got, &app, want);
        assert!(!got.0.body.contains(RETRY));
    }
    assert_eq!(app.calls(), 1);
    assert_eq!(
        *guard.log.lock().unwrap(),
        ["reserve", "release", "reserve"],
        "the guard's calls, in order"
    );
}

/// A full guard (a flood): the link whose nonce it had to forget, and any link expiring no
/// later, is refused with "send the form again" (410), never applied twice; a link minted
/// after the forgotten ones works.
#[tokio::test]
async fn a_full_guard_asks_to_send_again_and_never_applies_twice() {
    let app = Scripted::new(&[Step::Apply]);
    let layer = builder()
        .replay_guard(MemoryReplayGuard::new(1))
        .build()
        .unwrap();
    let mut svc = service(&layer, app.app());
    let sent_again = "this link has expired; please go back and send the form again";
    // Both minted in the same second: they expire together.
    at_second_start().await;
    let a = mint(&mut svc, 1).await;
    let b = mint(&mut svc, 2).await;
    let visits: &[(&str, &String, Expect)] = &[
        ("a", &a, expect(StatusCode::SEE_OTHER, &[], APPLIED, 1)),
        // Room for b means forgetting a; b expires with a, so it may be a: refused.
        (
            "b",
            &b,
            expect(
                StatusCode::GONE,
                &[sent_again],
                Some(HandoffOutcome::GuardUnavailable),
                1,
            ),
        ),
        // a is forgotten: refused, not applied again.
        (
            "a again",
            &a,
            expect(
                StatusCode::GONE,
                &[sent_again],
                Some(HandoffOutcome::GuardUnavailable),
                1,
            ),
        ),
    ];
    for (i, (row, link, want)) in visits.iter().enumerate() {
        check(row, i, &visit(&mut svc, link).await, &app, want);
    }
    // A second later, a new link expires after everything forgotten: applied as usual.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = mint(&mut svc, 3).await;
    check(
        "c",
        3,
        &visit(&mut svc, &c).await,
        &app,
        &expect(StatusCode::SEE_OTHER, &[], APPLIED, 2),
    );
}

/// The completion future is dropped while the app runs (a timeout layer, a client gone):
/// the link stays pending, so a reload says "still being applied, or unknown" (409) and never
/// calls the app again; once the token expires, the link says so (410).
#[tokio::test]
async fn a_dropped_completion_stays_pending_until_the_token_expires() {
    let app = Scripted::new(&[Step::Hang, Step::Apply]);
    let layer = builder()
        .handoff_ttl(Duration::from_secs(1))
        .clock_skew(Duration::ZERO)
        .build()
        .unwrap();
    let mut svc = service(&layer, app.app());
    at_second_start().await;
    let handoff = mint(&mut svc, 1).await;

    let dropped = tokio::time::timeout(Duration::from_millis(100), visit(&mut svc, &handoff)).await;
    assert!(dropped.is_err(), "the app never answers");
    assert_eq!(app.calls(), 1);
    let pending = "still being applied, or its result is unknown; check before trying again";
    let got = visit(&mut svc, &handoff).await;
    check(
        "reload",
        1,
        &got,
        &app,
        &expect(StatusCode::CONFLICT, &[pending, "Go back"], PENDING, 0),
    );
    assert!(got.0.rejection.is_some());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = visit(&mut svc, &handoff).await;
    check(
        "after expiry",
        2,
        &got,
        &app,
        &expect(
            StatusCode::GONE,
            &["the handoff link has expired"],
            Some(HandoffOutcome::Expired),
            0,
        ),
    );
    assert_eq!(app.calls(), 1, "never called again");
}

/// Tokens count whole seconds: start just after a second begins, so that tokens minted now
/// share an expiry second and a 1 s token is still valid a few milliseconds later.
async fn at_second_start() {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1010 - ms))).await;
}

/// A rate limiter on the handoff path only (the README's wiring): completions beyond the
/// burst from one client get `429` from `tower_governor`, before the replay guard; other
/// routes and other clients are not limited.
#[tokio::test]
async fn a_rate_limiter_on_the_handoff_path() {
    use axum::extract::ConnectInfo;
    use axum::routing::post;
    use axum::Router;
    use std::net::SocketAddr;
    use tower_governor::governor::GovernorConfigBuilder;
    use tower_governor::GovernorLayer;

    let layer = builder().build().unwrap();
    let shop = Router::new().route("/cart/add", post(|| async { "{}" }));
    // --- as in the README ---
    let app = layer.wrap_router(shop);
    let limit = GovernorConfigBuilder::default()
        .per_second(1)
        .burst_size(3)
        .finish()
        .unwrap();
    let app: Router = Router::new()
        .route_service(
            "/_amp/handoff",
            tower::ServiceBuilder::new()
                .layer(GovernorLayer::new(limit))
                .service(app.clone()),
        )
        .fallback_service(app);
    // --- end ---

    let peer = |ip: [u8; 4]| ConnectInfo(SocketAddr::from((ip, 40000)));
    let send = |req: Request<axum::body::Body>, ip: [u8; 4]| {
        let mut req = req;
        req.extensions_mut().insert(peer(ip));
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.unwrap();
            let status = res.status();
            let location = res
                .headers()
                .get("amp-redirect-to")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, location)
        }
    };
    let cache_post = || {
        Request::post("/cart/add")
            .header("origin", CACHE)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from("product_id=1"))
            .unwrap()
    };
    let nav = |link: &str| {
        let mut req = Request::get(link);
        for (k, v) in NAV {
            req = req.header(k, v);
        }
        req.body(axum::body::Body::empty()).unwrap()
    };
    // One client mints five links (minting is not limited here) and opens them at once.
    let mut links = Vec::new();
    for _ in 0..5 {
        let (status, to) = send(cache_post(), [10, 0, 0, 1]).await;
        assert_eq!(status, StatusCode::OK);
        links.push(path_of(&to.unwrap()));
    }
    let rows: &[([u8; 4], usize, StatusCode)] = &[
        ([10, 0, 0, 1], 0, StatusCode::SEE_OTHER),
        ([10, 0, 0, 1], 1, StatusCode::SEE_OTHER),
        ([10, 0, 0, 1], 2, StatusCode::SEE_OTHER),
        // Burst used up: refused before the layer, so the guard never sees it.
        ([10, 0, 0, 1], 3, StatusCode::TOO_MANY_REQUESTS),
        // Another client is not affected.
        ([10, 0, 0, 2], 4, StatusCode::SEE_OTHER),
    ];
    for (ip, link, status) in rows {
        assert_eq!(
            send(nav(&links[*link]), *ip).await.0,
            *status,
            "link {link} from {ip:?}"
        );
    }
    // Other routes are not limited.
    assert_eq!(send(cache_post(), [10, 0, 0, 1]).await.0, StatusCode::OK);
}

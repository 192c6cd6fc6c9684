//! Sensitive routes: a handoff shows a confirmation page; only its first-party POST applies.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http::StatusCode;

async fn mint_to(svc: &mut Svc, target: &str) -> String {
    let a = send(
        svc,
        request(
            "POST",
            target,
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "confirm=1",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
}

fn token_of(handoff: &str) -> String {
    handoff.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn sensitive_route_asks_first_and_applies_on_the_confirmation_post() {
    let rec = Recorder::default();
    let layer = builder().sensitive_path("/checkout/").build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint_to(&mut svc, "/checkout/pay").await;

    // The link shows a page; nothing is applied, no nonce consumed.
    for _ in 0..2 {
        let page = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains("<form method=\"post\" action=\"/_amp/handoff\">"),
            "{}",
            page.body
        );
        assert!(page.body.contains(&token_of(&handoff)));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert!(page
            .header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(rec.count(), 0);
    }

    let form = format!("token={}", token_of(&handoff));
    let confirm_headers = [
        ("origin", PUBLISHER),
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    let a = send(
        &mut svc,
        request("POST", "/_amp/handoff", &confirm_headers, &form),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.session_cookie().is_some());
    assert_eq!(rec.count(), 1);
    assert_eq!(rec.seen()[0].uri, "/checkout/pay");

    // Submitting the confirmation twice applies once.
    let again = send(
        &mut svc,
        request("POST", "/_amp/handoff", &confirm_headers, &form),
    )
    .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn confirmation_post_refusals() {
    let rec = Recorder::default();
    let layer = builder().sensitive_path("/account/delete").build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint_to(&mut svc, "/account/delete").await;
    let form = format!("token={}", token_of(&handoff));
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let rows: Vec<(&str, Vec<(&str, &str)>, String, StatusCode)> = vec![
        (
            "from the cache's page",
            vec![("origin", CACHE), ct],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "from a foreign page",
            vec![("origin", "https://evil.example"), ct],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "without Origin",
            vec![ct],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "as fetch()",
            vec![("origin", PUBLISHER), ct, ("sec-fetch-mode", "cors")],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "as JSON",
            vec![("origin", PUBLISHER), ("content-type", "application/json")],
            form.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "without a token",
            vec![("origin", PUBLISHER), ct],
            "x=1".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "with a forged token",
            vec![("origin", PUBLISHER), ct],
            "token=AAAA".into(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, headers, body, want) in rows {
        let a = send(&mut svc, request("POST", "/_amp/handoff", &headers, &body)).await;
        assert_eq!(a.status, want, "{name}: {}", a.body);
    }
    assert_eq!(rec.count(), 0, "no refused confirmation applies anything");
}

#[tokio::test]
async fn sensitive_path_matching() {
    let rec = Recorder::default();
    let layer = builder()
        .sensitive_path("/checkout/")
        .sensitive_path("/account/delete")
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    // (target, asks for confirmation?)
    let rows = [
        ("/checkout/pay", true),
        ("/checkout/", true),
        ("/checkout", false),
        ("/account/delete", true),
        ("/account/delete?now=1", true),
        ("/account/delete/x", false),
        ("/cart/add", false),
    ];
    for (target, confirm) in rows {
        let handoff = mint_to(&mut svc, target).await;
        let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        let asked = a.status == StatusCode::OK;
        assert_eq!(asked, confirm, "{target}: {}", a.status);
    }
}

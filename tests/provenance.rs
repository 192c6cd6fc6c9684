//! Who may start a handoff: the navigation × route table (issue 10).
//!
//! A token alone never applies a change: anyone can mint one and any site can navigate a
//! browser to it. The change is applied on arrival only when the navigation comes from this
//! publisher's AMP cache page (`Referer`, which a page can remove but not forge) with
//! `Sec-Fetch-*`, to a declared route. Every other navigation gets the confirmation page:
//! never a silent apply, never a refusal that loses the change.
//!
//! Run with `cargo test --test provenance -- --nocapture` to see the table.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http::StatusCode;

const OWN_CACHE_PAGE: &str = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/1";
const OWN_CACHE_ORIGIN: &str = "https://shop-example.cdn.ampproject.org/";
const OWN_BING_PAGE: &str = "https://shop-example.www.bing-amp.com/c/s/shop.example/products/1";
const OTHER_CACHE_PAGE: &str = "https://evil-example.cdn.ampproject.org/c/s/evil.example/";
const OTHER_SITE: &str = "http://evil.localhost:8099/attack.html";
const PUBLISHER_PAGE: &str = "https://shop.example/products/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    ConfirmationShown,
    Refused,
}

impl Outcome {
    fn of(a: &Answer) -> Outcome {
        if a.rejection.is_some() {
            Outcome::Refused
        } else if a.status == StatusCode::SEE_OTHER {
            Outcome::Applied
        } else if a.status == StatusCode::OK && a.header("x-frame-options") == Some("DENY") {
            Outcome::ConfirmationShown
        } else {
            panic!("unexpected answer {} {}", a.status, a.body)
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::ConfirmationShown => "confirmation shown",
            Outcome::Refused => "refused",
        }
    }
}

/// Mints a cookieless cache POST to `route` and returns the handoff path and query.
async fn mint(svc: &mut Svc, route: &str) -> String {
    let a = send(
        svc,
        request(
            "POST",
            route,
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "product_id=4&quantity=99",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
}

#[tokio::test]
async fn navigation_by_route_table() {
    use Outcome::*;
    let sec_fetch = [
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-site", "cross-site"),
    ];
    // (Referer, its value, Sec-Fetch-* sent?, route declared?, outcome)
    let mut rows: Vec<(&str, Option<&[u8]>, &str, bool, Outcome)> = Vec::new();
    let referers: [(&str, Option<&[u8]>); 9] = [
        (
            "this publisher's cache page",
            Some(OWN_CACHE_PAGE.as_bytes()),
        ),
        (
            "this publisher's cache, origin only",
            Some(OWN_CACHE_ORIGIN.as_bytes()),
        ),
        (
            "this publisher's Bing cache page",
            Some(OWN_BING_PAGE.as_bytes()),
        ),
        (
            "another publisher's cache",
            Some(OTHER_CACHE_PAGE.as_bytes()),
        ),
        ("another site", Some(OTHER_SITE.as_bytes())),
        ("the publisher's own page", Some(PUBLISHER_PAGE.as_bytes())),
        ("absent", None),
        (
            "malformed (not a URL)",
            Some(b"shop-example.cdn.ampproject.org"),
        ),
        (
            "malformed (not UTF-8)",
            Some(b"https://shop-example.cdn.ampproject.org/\xff"),
        ),
    ];
    for (name, value) in referers {
        let own_cache = name.starts_with("this publisher's");
        for sent in [true, false] {
            for declared in [true, false] {
                let outcome = if own_cache && sent && declared {
                    Applied
                } else {
                    ConfirmationShown
                };
                rows.push((
                    name,
                    value,
                    if sent { "present" } else { "absent" },
                    declared,
                    outcome,
                ));
            }
        }
    }

    println!();
    println!(
        "| {:<38} | {:<30} | {:<20} | {:<18} | {:<6} | {:<9} |",
        "Referer", "Sec-Fetch-*", "route", "outcome", "status", "app calls"
    );
    println!(
        "|{:-<40}|{:-<32}|{:-<22}|{:-<20}|{:-<8}|{:-<11}|",
        "", "", "", "", "", ""
    );
    let print = |referer: &str,
                 fetch: &str,
                 route: &str,
                 outcome: Outcome,
                 status: StatusCode,
                 calls: usize| {
        println!(
            "| {:<38} | {:<30} | {:<20} | {:<18} | {:<6} | {:<9} |",
            referer,
            fetch,
            route,
            outcome.as_str(),
            status.as_u16(),
            calls
        );
    };
    for (referer, value, fetch, declared, want) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let route = if declared {
            "/cart/add"
        } else {
            "/account/email"
        };
        let handoff = mint(&mut svc, route).await;
        let mut req = request("GET", &handoff, &[], "");
        if fetch == "present" {
            for (k, v) in sec_fetch {
                req.headers_mut().insert(k, v.parse().unwrap());
            }
        }
        if let Some(v) = value {
            req.headers_mut()
                .insert("referer", http::HeaderValue::from_bytes(v).unwrap());
        }
        let a = send(&mut svc, req).await;
        let got = Outcome::of(&a);
        let route_label = if declared {
            "/cart/add (declared)"
        } else {
            "/account/email (not)"
        };
        print(referer, fetch, route_label, got, a.status, rec.count());
        assert_eq!(got, want, "{referer} / Sec-Fetch-* {fetch} / {route}");
        let want_calls = usize::from(want == Applied);
        assert_eq!(rec.count(), want_calls, "{referer} / {fetch} / {route}");
    }

    // Requests that are not a page navigation at all cannot even show the page.
    let refused: [(&str, &[(&str, &str)]); 3] = [
        (
            "fetch() (Sec-Fetch-Mode: cors)",
            &[("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
        ),
        (
            "<img> (no-cors, image)",
            &[("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "image")],
        ),
        (
            "<iframe> (navigate, iframe)",
            &[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")],
        ),
    ];
    for (what, headers) in refused {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let handoff = mint(&mut svc, "/cart/add").await;
        let mut h = headers.to_vec();
        h.push(("referer", OWN_CACHE_PAGE));
        let a = send(&mut svc, request("GET", &handoff, &h, "")).await;
        let got = Outcome::of(&a);
        print(
            "this publisher's cache page",
            what,
            "/cart/add (declared)",
            got,
            a.status,
            rec.count(),
        );
        assert_eq!(got, Refused, "{what}");
        assert_eq!(rec.count(), 0, "{what}");
    }
}

#[tokio::test]
async fn showing_the_confirmation_never_uses_up_the_token() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let handoff = mint(&mut svc, "/cart/add").await;
    // A link scanner, a preview, an attacker's page: each sees the page, none applies.
    for referer in [None, Some(OTHER_SITE), Some(OTHER_CACHE_PAGE)] {
        let mut h = vec![NAV[0], NAV[1]];
        if let Some(r) = referer {
            h.push(("referer", r));
        }
        let a = send(&mut svc, request("GET", &handoff, &h, "")).await;
        assert_eq!(Outcome::of(&a), Outcome::ConfirmationShown, "{referer:?}");
    }
    assert_eq!(rec.count(), 0);
    // The shopper's own navigation from the cache page still applies, once.
    let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(Outcome::of(&a), Outcome::Applied);
    let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "a reload: already applied");
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn the_cache_of_another_publisher_of_the_same_layer_is_not_provenance() {
    // Two publishers behind one layer: B's cache page cannot apply A's change directly.
    let rec = Recorder::default();
    let layer = builder()
        .publisher_origin("https://other.example")
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint(&mut svc, "/cart/add").await;
    let host = ("host", "shop.example");
    let b_cache = "https://other-example.cdn.ampproject.org/c/s/other.example/";
    let a = send(
        &mut svc,
        request(
            "GET",
            &handoff,
            &[NAV[0], NAV[1], ("referer", b_cache), host],
            "",
        ),
    )
    .await;
    assert_eq!(Outcome::of(&a), Outcome::ConfirmationShown);
    assert_eq!(rec.count(), 0);
    let a = send(
        &mut svc,
        request("GET", &handoff, &[NAV[0], NAV[1], NAV[2], host], ""),
    )
    .await;
    assert_eq!(Outcome::of(&a), Outcome::Applied);
    assert_eq!(rec.count(), 1);
}

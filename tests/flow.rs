//! The handoff flow end to end through `ServiceExt`: mint on the cache, complete on the origin.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http::StatusCode;
use tower_amp_session::{RequestSource, ReturnTo, SameSite};

/// Mints a handoff for a cookieless cache POST and returns the handoff path and query.
async fn mint(svc: &mut Svc, content_type: &str, body: &str, referer: Option<&str>) -> String {
    let mut headers = vec![
        ("origin", CACHE),
        ("content-type", content_type),
        ("accept", "application/json"),
    ];
    if let Some(r) = referer {
        headers.push(("referer", r));
    }
    let uri = "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example";
    let a = send(svc, request("POST", uri, &headers, body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some(CACHE));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert!(a
        .all("access-control-expose-headers")
        .contains(&"AMP-Redirect-To"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let to = a
        .header("amp-redirect-to")
        .expect("AMP-Redirect-To")
        .to_owned();
    assert!(
        to.starts_with("https://shop.example/_amp/handoff?token="),
        "{to}"
    );
    assert!(to.len() < 8192);
    path_of(&to)
}

#[tokio::test]
async fn urlencoded_post_from_cache_is_handed_off_and_applied_once() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));

    let handoff = mint(
        &mut svc,
        "application/x-www-form-urlencoded",
        "product_id=3&quantity=2",
        None,
    )
    .await;
    assert_eq!(rec.count(), 0, "the app is not called at mint");

    let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.header("location"), Some("https://shop.example/"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    let cookie = a.session_cookie().expect("a new session is set");
    for attr in ["HttpOnly", "Secure", "Path=/", "SameSite=None"] {
        assert!(a.header("set-cookie").unwrap().contains(attr), "{attr}");
    }

    let seen = rec.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, http::Method::POST);
    assert_eq!(s.uri, "/cart/add", "__amp_source_origin is removed");
    assert_eq!(
        s.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        fields(&s.body),
        [
            ("product_id".into(), "3".into()),
            ("quantity".into(), "2".into())
        ]
    );
    assert_eq!(s.origin.as_deref(), Some(PUBLISHER));
    let session = s.session.clone().expect("session attached");
    assert!(session.via_handoff() && session.is_new());
    assert_eq!(session.source(), RequestSource::SameOrigin);
    assert_eq!(
        cookie,
        format!("__Host-amp_session={}", session.id().as_str())
    );

    // A reload of the handoff URL: redirected, not applied again.
    let again = send(
        &mut svc,
        request(
            "GET",
            &handoff,
            &[NAV[0], NAV[1], NAV[2], ("cookie", &cookie)],
            "",
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(rec.count(), 1, "applied exactly once");
}

#[tokio::test]
async fn multipart_post_arrives_as_equivalent_multipart() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let (ct, body) = multipart(&[
        ("product_id", "5"),
        ("quantity", "1"),
        ("note", "gift & \"wrap\""),
    ]);
    let handoff = mint(&mut svc, &ct, &body, None).await;
    let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let s = &rec.seen()[0];
    let ct = s.content_type.clone().unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap().to_owned();
    // Parse the replayed body as a server would.
    let stream =
        futures_util::stream::once(async { Ok::<_, std::convert::Infallible>(s.body.clone()) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut got = Vec::new();
    while let Some(f) = mp.next_field().await.unwrap() {
        let name = f.name().unwrap().to_owned();
        got.push((name, f.text().await.unwrap()));
    }
    assert_eq!(
        got,
        [
            ("product_id".to_owned(), "5".to_owned()),
            ("quantity".to_owned(), "1".to_owned()),
            ("note".to_owned(), "gift & \"wrap\"".to_owned())
        ]
    );
}

#[tokio::test]
async fn second_handoff_with_the_cookie_keeps_the_session() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let first = mint(
        &mut svc,
        "application/x-www-form-urlencoded",
        "product_id=1&quantity=1",
        None,
    )
    .await;
    let cookie = send(&mut svc, request("GET", &first, &NAV, ""))
        .await
        .session_cookie()
        .unwrap();
    let second = mint(
        &mut svc,
        "application/x-www-form-urlencoded",
        "product_id=2&quantity=1",
        None,
    )
    .await;
    let a = send(
        &mut svc,
        request(
            "GET",
            &second,
            &[NAV[0], NAV[1], NAV[2], ("cookie", &cookie)],
            "",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.session_cookie(),
        None,
        "no new cookie for an existing session"
    );
    let seen = rec.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].session.clone().unwrap().id(),
        seen[1].session.clone().unwrap().id()
    );
    assert!(!seen[1].session.clone().unwrap().is_new());
}

#[tokio::test]
async fn cache_post_with_cookie_and_same_origin_post_reach_the_app_directly() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let id = tower_amp_session::SessionId::generate();
    let cookie = format!("__Host-amp_session={}", id.as_str());
    let rows: &[(&str, Vec<(&str, &str)>, RequestSource)] = &[
        (
            "cache with cookie",
            vec![("origin", CACHE), ("cookie", &cookie)],
            RequestSource::AmpCache,
        ),
        (
            "bing with cookie",
            vec![("origin", BING), ("cookie", &cookie)],
            RequestSource::AmpCache,
        ),
        (
            "AMP-Same-Origin",
            vec![("amp-same-origin", "true"), ("cookie", &cookie)],
            RequestSource::SameOrigin,
        ),
        (
            "publisher Origin",
            vec![("origin", PUBLISHER), ("cookie", &cookie)],
            RequestSource::SameOrigin,
        ),
    ];
    for (i, (name, headers, source)) in rows.iter().enumerate() {
        let mut h = headers.clone();
        h.push(("content-type", "application/x-www-form-urlencoded"));
        let a = send(&mut svc, request("POST", "/cart/add", &h, "product_id=1")).await;
        assert_eq!(a.status, StatusCode::OK, "{name}");
        assert_eq!(a.header("amp-redirect-to"), None, "{name}: no handoff");
        assert_eq!(a.session_cookie(), None, "{name}");
        let s = &rec.seen()[i];
        assert_eq!(s.session.clone().unwrap().id(), id, "{name}");
        assert_eq!(s.session.clone().unwrap().source(), *source, "{name}");
        assert_eq!(&s.body[..], b"product_id=1", "{name}");
    }
}

#[tokio::test]
async fn same_origin_post_without_cookie_gets_a_new_session_not_a_handoff() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request("POST", "/cart/add", &[("origin", PUBLISHER)], ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.session_cookie().is_some());
    assert!(rec.seen()[0].session.clone().unwrap().is_new());
}

#[tokio::test]
async fn return_path_comes_from_referer_or_config_or_app() {
    let rows: &[(
        &str,
        ReturnTo,
        Option<&str>,
        &'static [(&'static str, &'static str)],
        &str,
    )] = &[
        (
            "cache page in Referer",
            ReturnTo::Referer,
            Some("https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3?x=1"),
            &[],
            "https://shop.example/products/3?x=1",
        ),
        (
            "origin-only Referer",
            ReturnTo::Referer,
            Some("https://shop-example.cdn.ampproject.org/"),
            &[],
            "https://shop.example/",
        ),
        (
            "open redirect in Referer",
            ReturnTo::Referer,
            Some("https://shop-example.cdn.ampproject.org/c/s/shop.example//evil.com"),
            &[],
            "https://shop.example/",
        ),
        (
            "fixed path",
            ReturnTo::Path("/cart".into()),
            None,
            &[],
            "https://shop.example/cart",
        ),
        (
            "app's same-origin AMP-Redirect-To",
            ReturnTo::Referer,
            None,
            &[("amp-redirect-to", "https://shop.example/cart?added=1")],
            "https://shop.example/cart?added=1",
        ),
        (
            "app's relative Location",
            ReturnTo::Referer,
            None,
            &[("location", "/cart")],
            "https://shop.example/cart",
        ),
        (
            "app's foreign AMP-Redirect-To is ignored",
            ReturnTo::Path("/cart".into()),
            None,
            &[("amp-redirect-to", "https://evil.com/")],
            "https://shop.example/cart",
        ),
    ];
    for (name, return_to, referer, extra, want) in rows {
        let rec = Recorder::default();
        let layer = builder().return_to(return_to.clone()).build().unwrap();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, extra));
        let handoff = mint(
            &mut svc,
            "application/x-www-form-urlencoded",
            "a=1",
            *referer,
        )
        .await;
        let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{name}");
        assert_eq!(a.header("location"), Some(*want), "{name}");
    }
}

#[tokio::test]
async fn an_app_failure_is_shown_on_a_no_store_page() {
    let rec = Recorder::default();
    let mut svc = service(
        &builder().build().unwrap(),
        app(&rec, StatusCode::UNPROCESSABLE_ENTITY, &[]),
    );
    let handoff = mint(
        &mut svc,
        "application/x-www-form-urlencoded",
        "product_id=13",
        None,
    )
    .await;
    let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("could not be applied"), "{}", a.body);
    assert!(a.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn handoff_completion_refusals() {
    let rec = Recorder::default();
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1_800_000_000));
    let c = clock.clone();
    let layer = builder()
        .clock(move || {
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(c.load(std::sync::atomic::Ordering::SeqCst))
        })
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint(&mut svc, "application/x-www-form-urlencoded", "a=1", None).await;
    let token = handoff.split("token=").nth(1).unwrap().to_owned();
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let rows: Vec<(&str, String, Vec<(&str, &str)>, &str, StatusCode)> = vec![
        (
            "fetch() cannot complete",
            handoff.clone(),
            vec![("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")],
            "GET",
            StatusCode::FORBIDDEN,
        ),
        (
            "<img> cannot complete",
            handoff.clone(),
            vec![("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "image")],
            "GET",
            StatusCode::FORBIDDEN,
        ),
        (
            "POST without the publisher's Origin",
            handoff.clone(),
            NAV.to_vec(),
            "POST",
            StatusCode::FORBIDDEN,
        ),
        (
            "PUT to the handoff path",
            handoff.clone(),
            NAV.to_vec(),
            "PUT",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "no token",
            "/_amp/handoff".into(),
            NAV.to_vec(),
            "GET",
            StatusCode::BAD_REQUEST,
        ),
        (
            "two tokens",
            format!("{handoff}&token={token}"),
            NAV.to_vec(),
            "GET",
            StatusCode::BAD_REQUEST,
        ),
        (
            "tampered",
            format!("/_amp/handoff?token={tampered}"),
            NAV.to_vec(),
            "GET",
            StatusCode::BAD_REQUEST,
        ),
        (
            "garbage",
            "/_amp/handoff?token=%00%ff".into(),
            NAV.to_vec(),
            "GET",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, uri, headers, method, want) in rows {
        let a = send(&mut svc, request(method, &uri, &headers, "")).await;
        assert_eq!(a.status, want, "{name}: {}", a.body);
        assert!(
            a.header("content-type").unwrap().starts_with("text/html"),
            "{name}"
        );
        assert!(a.rejection.is_some(), "{name}");
    }
    assert_eq!(rec.count(), 0, "nothing applied by a refused handoff");

    // Linkers may append parameters: ignored.
    let a = send(
        &mut svc,
        request("GET", &format!("{handoff}&_gl=1*abc"), &NAV, ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(rec.count(), 1);

    // Expired: 410 with a page that links back.
    let late = mint(&mut svc, "application/x-www-form-urlencoded", "a=2", None).await;
    clock.fetch_add(121, std::sync::atomic::Ordering::SeqCst);
    let a = send(&mut svc, request("GET", &late, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::GONE);
    assert!(a.body.contains("href=\"/\""), "{}", a.body);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn navigation_without_sec_fetch_headers_asks_first() {
    // Older browsers and programs send no Sec-Fetch-*: enforced only when present, and
    // without them the navigation's provenance is unknown, so the shopper confirms.
    let rec = Recorder::default();
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = clock.clone();
    let start = std::time::SystemTime::now();
    let layer = builder()
        .clock(move || {
            start + std::time::Duration::from_millis(c.load(std::sync::atomic::Ordering::SeqCst))
        })
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint(&mut svc, "application/x-www-form-urlencoded", "a=1", None).await;
    let a = send(&mut svc, request("GET", &handoff, &[NAV[2]], "")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert_eq!(rec.count(), 0);
    let token = handoff.split("token=").nth(1).unwrap();
    // The page's render time, and the shopper reading it for the confirmation delay.
    let at = a.body.find("name=\"amp_render\" value=\"").unwrap() + 25;
    let render = &a.body[at..at + a.body[at..].find('"').unwrap()];
    clock.fetch_add(1000, std::sync::atomic::Ordering::SeqCst);
    let a = send(
        &mut svc,
        request(
            "POST",
            "/_amp/handoff",
            &[
                ("origin", PUBLISHER),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &format!("token={token}&amp_render={render}"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn same_site_lax_cookie() {
    let rec = Recorder::default();
    let layer = builder().same_site(SameSite::Lax).build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let a = send(&mut svc, request("GET", "/", &[], "")).await;
    assert!(a.header("set-cookie").unwrap().contains("SameSite=Lax"));
}

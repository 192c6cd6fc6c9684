//! Mint: what a cookieless request from the cache gets, and what the token carries.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http::StatusCode;
use tower_amp_session::{ConfigError, ReturnTo, RETURN_PATH_FIELD};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn each_method_from_the_cache_without_cookie() {
    // (method, status, handed off?, app calls)
    let rows: &[(&str, StatusCode, bool, usize)] = &[
        ("POST", StatusCode::OK, true, 0),
        ("PUT", StatusCode::METHOD_NOT_ALLOWED, false, 0),
        ("DELETE", StatusCode::METHOD_NOT_ALLOWED, false, 0),
        ("PATCH", StatusCode::METHOD_NOT_ALLOWED, false, 0),
        ("PURGE", StatusCode::METHOD_NOT_ALLOWED, false, 0),
        ("GET", StatusCode::OK, false, 1),
        ("HEAD", StatusCode::OK, false, 1),
    ];
    for (method, status, handed_off, calls) in rows {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let a = send(
            &mut svc,
            request(
                method,
                "/cart/add",
                &[("origin", CACHE), FORM, ("accept", "application/json")],
                if *method == "GET" || *method == "HEAD" {
                    ""
                } else {
                    "product_id=1"
                },
            ),
        )
        .await;
        assert_eq!(a.status, *status, "{method}: {}", a.body);
        assert_eq!(
            a.header("amp-redirect-to").is_some(),
            *handed_off,
            "{method}"
        );
        assert_eq!(rec.count(), *calls, "{method}");
        // amp-form can read every answer: CORS headers on the refusal too.
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some(CACHE),
            "{method}"
        );
        assert_eq!(
            a.header("access-control-allow-credentials"),
            Some("true"),
            "{method}"
        );
        if *status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(a.header("allow"), Some("POST"), "{method}");
            assert_eq!(a.header("content-type"), Some("application/json"));
            let json: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(json["error"], "only POST forms can be sent from this page");
            assert_eq!(a.session_cookie(), None, "{method}");
        }
    }
}

#[tokio::test]
async fn with_the_cookie_other_methods_reach_the_app() {
    // Not a handoff: the browser sent the cookie, the app decides.
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let id = tower_amp_session::SessionId::generate();
    let cookie = format!("__Host-amp_session={}", id.as_str());
    for method in ["PUT", "DELETE", "PATCH"] {
        let a = send(
            &mut svc,
            request(
                method,
                "/cart/1",
                &[("origin", CACHE), ("cookie", &cookie)],
                "",
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{method}");
    }
    assert_eq!(rec.count(), 3);
}

#[tokio::test]
async fn the_mint_answer_says_the_change_continues_on_the_origin() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add",
            &[("origin", CACHE), FORM],
            "product_id=1",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    let json: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let to = a.header("amp-redirect-to").unwrap();
    assert!(to.starts_with("https://shop.example/_amp/handoff?token="));
    // `handoff_url`: the same URL, for a link when the browser refuses the navigation.
    assert_eq!(
        json,
        serde_json::json!({
            "handoff": true,
            "handoff_url": to,
            "origin": "https://shop.example",
            "message": "Continuing on shop.example\u{2026}",
        })
    );
}

#[tokio::test]
async fn source_origin_is_recognised_however_its_name_is_spelled() {
    // (query, publisher value?) → checked (a foreign value is refused) and removed.
    let spellings = [
        "__amp_source_origin",
        "%5F%5Famp_source_origin",
        "_%5Famp_source_origin",
        "__amp%5Fsource%5Forigin",
        "%5f%5famp_source_origin",
        "__%61mp_source_origin",
    ];
    let id = tower_amp_session::SessionId::generate();
    let cookie = format!("__Host-amp_session={}", id.as_str());
    for name in spellings {
        for (value, ok) in [
            ("https%3A%2F%2Fshop.example", true),
            ("https%3A%2F%2Fevil.example", false),
        ] {
            let uri = format!("/cart/add?a=1&{name}={value}&b=2");
            // On the origin, with the cookie: the app sees the query without it.
            let rec = Recorder::default();
            let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
            let a = send(
                &mut svc,
                request(
                    "POST",
                    &uri,
                    &[("origin", PUBLISHER), ("cookie", &cookie)],
                    "",
                ),
            )
            .await;
            if ok {
                assert_eq!(a.status, StatusCode::OK, "{uri}");
                assert_eq!(rec.seen()[0].uri, "/cart/add?a=1&b=2", "{uri}");
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}");
                assert_eq!(rec.count(), 0, "{uri}");
            }
            // From the cache without the cookie: the minted target lacks it too.
            let a = send(
                &mut svc,
                request("POST", &uri, &[("origin", CACHE), FORM], "x=1"),
            )
            .await;
            if !ok {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}");
                assert_eq!(a.header("amp-redirect-to"), None);
                continue;
            }
            let to = path_of(a.header("amp-redirect-to").unwrap());
            let done = send(&mut svc, request("GET", &to, &NAV, "")).await;
            // `/cart/add` is declared, and the query is not compared.
            assert_eq!(done.status, StatusCode::SEE_OTHER, "{uri}: {}", done.body);
            assert_eq!(rec.seen()[1].uri, "/cart/add?a=1&b=2", "{uri}");
        }
    }
    // `+` decodes to a space, not `_`: that is another name, for the layer and the app alike.
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add?__amp+source_origin=https%3A%2F%2Fevil.example",
            &[("origin", PUBLISHER), ("cookie", &cookie)],
            "",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let seen = &rec.seen()[0].uri;
    let names: Vec<String> = form_urlencoded::parse(seen.split('?').nth(1).unwrap().as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(names, ["__amp source_origin"]);
}

/// Mints a cache POST and completes it from the cache page; returns where the shopper
/// lands and the fields the app got.
async fn land(
    svc: &mut Svc,
    rec: &Recorder,
    content_type: &str,
    body: &str,
    referer: Option<&str>,
) -> (String, Vec<(String, String)>) {
    let mut h = vec![("origin", CACHE), ("content-type", content_type)];
    if let Some(r) = referer {
        h.push(("referer", r));
    }
    let a = send(svc, request("POST", "/cart/add", &h, body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let to = path_of(a.header("amp-redirect-to").unwrap());
    let done = send(svc, request("GET", &to, &NAV, "")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let seen = rec.seen().pop().unwrap();
    let fields = if seen
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("multipart/"))
    {
        let boundary = seen
            .content_type
            .unwrap()
            .split("boundary=")
            .nth(1)
            .unwrap()
            .to_owned();
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(seen.body) });
        let mut mp = multer::Multipart::new(stream, boundary);
        let mut out = Vec::new();
        while let Some(f) = mp.next_field().await.unwrap() {
            let n = f.name().unwrap().to_owned();
            out.push((n, f.text().await.unwrap()));
        }
        out
    } else {
        fields(&seen.body)
    };
    (path_of(done.header("location").unwrap()), fields)
}

#[tokio::test]
async fn return_path_field_then_referer_then_home() {
    let cache_page = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/1";
    let cache_origin = "https://shop-example.cdn.ampproject.org/";
    // (case, ReturnTo, field value, Referer, landing)
    let rows: &[(&str, ReturnTo, Option<&str>, Option<&str>, &str)] = &[
        (
            "field",
            ReturnTo::Referer,
            Some("/products/3"),
            Some(cache_origin),
            "/products/3",
        ),
        (
            "field beats Referer",
            ReturnTo::Referer,
            Some("/products/3?c=red"),
            Some(cache_page),
            "/products/3?c=red",
        ),
        // SOURCE_URL as amp-form fills it in (percent-encoded): the query stays, the
        // runtime's own parameters go.
        (
            "SOURCE_URL on the origin",
            ReturnTo::Referer,
            Some("https%3A%2F%2Fshop.example%2Fproducts%2F6%3Fenctype%3Durlencoded"),
            Some(cache_origin),
            "/products/6?enctype=urlencoded",
        ),
        (
            "SOURCE_URL, AMP parameters removed",
            ReturnTo::Referer,
            Some("https://shop.example/products/6?amp_js_v=0.1&c=red&usqp=mq331AQ&__amp_source_origin=x"),
            None,
            "/products/6?c=red",
        ),
        (
            "SOURCE_URL as a cache URL",
            ReturnTo::Referer,
            Some("https://shop-example.cdn.ampproject.org/c/s/shop.example/products/6?c=red"),
            None,
            "/products/6?c=red",
        ),
        (
            "SOURCE_URL another origin",
            ReturnTo::Referer,
            Some("https%3A%2F%2Fevil.example%2Fproducts%2F6"),
            Some(cache_page),
            "/products/1",
        ),
        (
            "SOURCE_URL another publisher's cache page",
            ReturnTo::Referer,
            Some("https://shop-example.cdn.ampproject.org/c/s/evil.example/p"),
            None,
            "/",
        ),
        (
            "SOURCE_URL chained",
            ReturnTo::Referer,
            Some("https://shop.example/_amp/handoff?token=x"),
            None,
            "/",
        ),
        (
            "SOURCE_URL not filled in",
            ReturnTo::Referer,
            Some("SOURCE_URL"),
            Some(cache_page),
            "/products/1",
        ),
        (
            "Referer, AMP parameters removed",
            ReturnTo::Referer,
            None,
            Some("https://shop-example.cdn.ampproject.org/c/s/shop.example/products/2?amp_js_v=a6&amp_gsa=1&x=1"),
            "/products/2?x=1",
        ),
        (
            "field not filled in",
            ReturnTo::Referer,
            Some("SOURCE_PATH"),
            Some(cache_page),
            "/products/1",
        ),
        (
            "field another origin",
            ReturnTo::Referer,
            Some("https://evil.example/"),
            None,
            "/",
        ),
        (
            "field protocol-relative",
            ReturnTo::Referer,
            Some("//evil.example/"),
            Some(cache_page),
            "/products/1",
        ),
        ("field empty", ReturnTo::Referer, Some(""), None, "/"),
        (
            "field chained",
            ReturnTo::Referer,
            Some("/_amp/handoff?token=x"),
            Some(cache_page),
            "/products/1",
        ),
        (
            "field chained, encoded",
            ReturnTo::Referer,
            Some("/_amp/%68andoff?token=x"),
            None,
            "/",
        ),
        (
            "field chained, dot segments",
            ReturnTo::Referer,
            Some("/x/../_amp/handoff"),
            None,
            "/",
        ),
        (
            "Referer chained",
            ReturnTo::Referer,
            None,
            Some("https://shop-example.cdn.ampproject.org/c/s/shop.example/_amp/handoff?token=x"),
            "/",
        ),
        (
            "Referer origin only (Firefox, WebKit)",
            ReturnTo::Referer,
            None,
            Some(cache_origin),
            "/",
        ),
        ("nothing", ReturnTo::Referer, None, None, "/"),
        (
            "fixed path overrides the field",
            ReturnTo::Path("/cart".into()),
            Some("/products/3"),
            Some(cache_page),
            "/cart",
        ),
    ];
    for (case, return_to, field, referer, want) in rows {
        for encoding in ["urlencoded", "multipart"] {
            let rec = Recorder::default();
            let layer = builder().return_to(return_to.clone()).build().unwrap();
            let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
            let mut pairs = vec![("product_id", "3")];
            if let Some(f) = field {
                pairs.push((RETURN_PATH_FIELD, f));
            }
            pairs.push(("quantity", "1"));
            let (ct, body) = if encoding == "urlencoded" {
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish();
                (FORM.1.to_owned(), body)
            } else {
                multipart(&pairs)
            };
            let (landed, got) = land(&mut svc, &rec, &ct, &body, *referer).await;
            assert_eq!(landed, *want, "{case} ({encoding})");
            // The app never sees the field.
            assert_eq!(
                got,
                [
                    ("product_id".to_owned(), "3".to_owned()),
                    ("quantity".to_owned(), "1".to_owned())
                ],
                "{case} ({encoding})"
            );
        }
    }
}

#[test]
fn a_fixed_return_path_cannot_be_the_handoff_path() {
    for p in [
        "/_amp/handoff",
        "/_amp/handoff?x=1",
        "/_amp/%68andoff",
        "/_AMP/handoff",
    ] {
        let got = builder().return_to(ReturnTo::Path(p.into())).build();
        assert_eq!(
            got.map(|_| ()).unwrap_err(),
            ConfigError::ReturnPathIsHandoffPath(p.into()),
            "{p}"
        );
    }
    let custom = builder()
        .handoff_path("/go")
        .return_to(ReturnTo::Path("/go".into()))
        .build();
    assert!(custom.is_err());
    assert!(builder()
        .return_to(ReturnTo::Path("/_amp/handoffs".into()))
        .build()
        .is_ok());
}

#[tokio::test]
async fn chained_return_paths_at_completion() {
    // The app answers with a redirect to the handoff path: ignored, the token's return
    // path is used (the change WAS applied: refusing now would tell the shopper it failed).
    let referer = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/1";
    for extra in [
        &[("location", "/_amp/handoff?token=abc")][..],
        &[(
            "amp-redirect-to",
            "https://shop.example/_amp/handoff?token=abc",
        )][..],
        &[("location", "/_amp/%68andoff")][..],
    ] {
        let rec = Recorder::default();
        let extra: &'static [(&'static str, &'static str)] =
            Box::leak(extra.to_vec().into_boxed_slice());
        let mut svc = service(
            &builder().build().unwrap(),
            app(&rec, StatusCode::OK, extra),
        );
        let (landed, _) = land(&mut svc, &rec, FORM.1, "product_id=1", Some(referer)).await;
        assert_eq!(landed, "/products/1", "{extra:?}");
    }

    // A token whose return path is the completing layer's handoff path (minted by an
    // instance with another handoff path, same key): this mint never writes one, so it is
    // refused before anything is applied, with a page that links to `/`.
    let rec = Recorder::default();
    let mut minting = service(
        &builder().handoff_path("/_amp/go").build().unwrap(),
        app(&rec, StatusCode::OK, &[]),
    );
    let body = format!("product_id=1&{RETURN_PATH_FIELD}=%2F_amp%2Fhandoff");
    let a = send(
        &mut minting,
        request("POST", "/cart/add", &[("origin", CACHE), FORM], &body),
    )
    .await;
    let to = path_of(a.header("amp-redirect-to").unwrap());
    assert!(to.starts_with("/_amp/go?token="), "{to}");
    let on_default = to.replacen("/_amp/go", "/_amp/handoff", 1);
    let mut completing = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let done = send(&mut completing, request("GET", &on_default, &NAV, "")).await;
    assert_eq!(done.status, StatusCode::BAD_REQUEST, "{}", done.body);
    assert_eq!(
        done.rejection.map(|r| r.reason()),
        Some("the handoff link has an invalid return path")
    );
    assert!(done.body.contains("href=\"/\""), "{}", done.body);
    assert_eq!(done.header("location"), None);
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn a_token_of_publisher_a_is_refused_on_publisher_b() {
    let rec = Recorder::default();
    let layer = builder()
        .publisher_origin("https://other.example")
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    // Minted on A's cache: the handoff goes to A.
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add",
            &[("origin", CACHE), FORM],
            "product_id=1",
        ),
    )
    .await;
    let to = a.header("amp-redirect-to").unwrap().to_owned();
    assert!(
        to.starts_with("https://shop.example/_amp/handoff?token="),
        "{to}"
    );
    let handoff = path_of(&to);
    // (Host, status, app calls after)
    let rows: &[(Option<&str>, StatusCode, usize)] = &[
        (Some("other.example"), StatusCode::BAD_REQUEST, 0),
        (Some("OTHER.example"), StatusCode::BAD_REQUEST, 0),
        (Some("unknown.example"), StatusCode::BAD_REQUEST, 0),
        (None, StatusCode::BAD_REQUEST, 0),
        (Some("shop.example"), StatusCode::SEE_OTHER, 1),
    ];
    for (host, status, calls) in rows {
        let mut h = NAV.to_vec();
        if let Some(host) = host {
            h.push(("host", host));
        }
        let a = send(&mut svc, request("GET", &handoff, &h, "")).await;
        assert_eq!(a.status, *status, "{host:?}: {}", a.body);
        assert_eq!(rec.count(), *calls, "{host:?}");
    }
    // The absolute-form URI names the publisher too.
    let a = send(
        &mut svc,
        request("GET", &format!("https://other.example{handoff}"), &NAV, ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // The confirmation POST is bound the same way: B's page cannot confirm A's token.
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add",
            &[("origin", CACHE), FORM],
            "product_id=2",
        ),
    )
    .await;
    let token = a
        .header("amp-redirect-to")
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let form = format!("token={token}");
    let b = send(
        &mut svc,
        request(
            "POST",
            "/_amp/handoff",
            &[
                ("origin", "https://other.example"),
                ("host", "other.example"),
                FORM,
            ],
            &form,
        ),
    )
    .await;
    // B's own page, on B: a good confirmation, but of a token made for A.
    assert_eq!(b.status, StatusCode::BAD_REQUEST, "{}", b.body);
    assert!(b.body.contains("made for another site"), "{}", b.body);
    let b = send(
        &mut svc,
        request(
            "POST",
            "/_amp/handoff",
            &[
                ("origin", "https://other.example"),
                ("host", "shop.example"),
                FORM,
            ],
            &form,
        ),
    )
    .await;
    // B's page posting to A: not A's own page.
    assert_eq!(b.status, StatusCode::FORBIDDEN, "{}", b.body);
    assert_eq!(rec.count(), 1);
}

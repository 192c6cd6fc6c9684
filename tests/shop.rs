//! `examples/shop` as a real process over TCP: the handoff flow end to end, as a browser
//! and amp-form would drive it (cookies and headers written out by hand).

mod support;

use hyper::StatusCode;
use serde_json::{json, Value};
use support::http::Call;
use support::ShopProcess;

/// amp-form's two POST encodings.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// `enctype="application/x-www-form-urlencoded"`.
    UrlEncoded,
    /// A `FormData` body: amp-form's default.
    Multipart,
}

/// The add-to-cart form's fields in the given encoding.
fn form(call: Call, encoding: Encoding, product_id: &str, quantity: &str) -> Call {
    match encoding {
        Encoding::UrlEncoded => {
            call.urlencoded(&format!("product_id={product_id}&quantity={quantity}"))
        }
        Encoding::Multipart => {
            call.multipart(&[("product_id", product_id), ("quantity", quantity)])
        }
    }
}

/// `/cart/add?__amp_source_origin=<publisher origin>`, as amp-form calls `action-xhr`.
fn add_path(shop: &ShopProcess) -> String {
    let origin: String = form_urlencoded::byte_serialize(shop.origin_url().as_bytes()).collect();
    format!("/cart/add?__amp_source_origin={origin}")
}

/// amp-form on the cache page posting to the origin; `cookie` is what the browser sends
/// with the cross-site request (`None`: third-party cookies blocked).
async fn add_from_cache(
    shop: &ShopProcess,
    encoding: Encoding,
    product_id: &str,
    quantity: &str,
    cookie: Option<&str>,
) -> support::Reply {
    let call = shop
        .origin()
        .post(&add_path(shop))
        .header("Origin", &shop.cache_url())
        .header("Accept", "application/json")
        .header(
            "Referer",
            &shop.cache_page_url(&format!("/products/{product_id}")),
        )
        .cookie(cookie);
    form(call, encoding, product_id, quantity).send().await
}

/// amp-form on the origin's own page: `AMP-Same-Origin: true`, no `Origin`.
async fn add_same_origin(
    shop: &ShopProcess,
    product_id: &str,
    quantity: &str,
    cookie: &str,
) -> support::Reply {
    let call = shop
        .origin()
        .post(&add_path(shop))
        .header("AMP-Same-Origin", "true")
        .header("Accept", "application/json")
        .cookie(Some(cookie));
    form(call, Encoding::UrlEncoded, product_id, quantity)
        .send()
        .await
}

/// The path and query of an absolute URL on the origin (what the browser then requests).
fn on_origin<'a>(shop: &ShopProcess, url: &'a str) -> &'a str {
    url.strip_prefix(&shop.origin_url())
        .unwrap_or_else(|| panic!("{url} is not on {}", shop.origin_url()))
}

/// The raw body of `GET /cart.json` for this cookie.
async fn cart_json(shop: &ShopProcess, cookie: &str) -> String {
    let reply = shop
        .origin()
        .get("/cart.json")
        .cookie(Some(cookie))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

async fn stats(shop: &ShopProcess) -> Value {
    shop.origin().get("/_stats.json").send().await.json()
}

/// A new session's cookie, as a first visit to the origin gets it.
async fn first_visit(shop: &ShopProcess) -> String {
    let reply = shop.origin().get("/").navigation().send().await;
    assert_eq!(reply.status, StatusCode::OK);
    reply
        .set_cookie("__Host-amp_session")
        .expect("a new session cookie")
}

/// Checks the mint answer and returns the handoff URL's path and query.
fn minted_handoff<'a>(shop: &ShopProcess, mint: &'a support::Reply) -> &'a str {
    assert_eq!(mint.status, StatusCode::OK, "{}", mint.body);
    let to = mint.header("AMP-Redirect-To").expect("AMP-Redirect-To");
    let prefix = format!("{}/_amp/handoff?token=", shop.origin_url());
    assert!(to.starts_with(&prefix), "{to}");
    let expose = mint
        .header("Access-Control-Expose-Headers")
        .unwrap_or_default();
    assert!(
        expose.to_ascii_lowercase().contains("amp-redirect-to"),
        "{expose}"
    );
    assert_eq!(
        mint.header("Access-Control-Allow-Origin"),
        Some(shop.cache_url().as_str())
    );
    assert_eq!(
        mint.header("Access-Control-Allow-Credentials"),
        Some("true")
    );
    on_origin(shop, to)
}

async fn full_flow(encoding: Encoding) {
    let shop = ShopProcess::start(&[]);

    // The cache serves the product page from its own site; the form posts to the origin.
    let page = shop
        .cache()
        .get(&shop.cache_page_path("/products/3"))
        .send()
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let action = format!("action-xhr=\"{}/cart/add\"", shop.origin_url());
    assert!(page.body.contains(&action), "{}", page.body);
    assert_eq!(
        page.set_cookie("__Host-amp_session"),
        None,
        "the cache passes no cookies on"
    );

    // No cookie on the cross-site post: the layer mints a handoff instead of applying it.
    let mint = add_from_cache(&shop, encoding, "3", "2", None).await;
    let handoff = minted_handoff(&shop, &mint);

    // The browser navigates there: the add is applied to a new first-party session.
    let done = shop.origin().get(handoff).navigation().send().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done
        .set_cookie("__Host-amp_session")
        .expect("a session cookie");
    let location = done.header("Location").expect("Location");
    assert_eq!(location, format!("{}/cart", shop.origin_url()));
    assert!(!location.contains("token"), "{location}");
    let cart = r#"{"items":[{"product_id":3,"quantity":2}]}"#;
    assert_eq!(cart_json(&shop, &cookie).await, cart);

    // A reload of the handoff URL lands on the cart again without adding twice.
    let again = shop
        .origin()
        .get(handoff)
        .navigation()
        .cookie(Some(&cookie))
        .send()
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.set_cookie("__Host-amp_session"), None);
    assert_eq!(cart_json(&shop, &cookie).await, cart);
    // The reload is answered 303 too, so it counts as a completion; only one add applied.
    assert_eq!(
        stats(&shop).await,
        json!({"mints": 1, "handoffs_completed": 2, "adds": 1})
    );
}

#[tokio::test]
async fn handoff_flow_urlencoded() {
    full_flow(Encoding::UrlEncoded).await;
}

#[tokio::test]
async fn handoff_flow_multipart() {
    full_flow(Encoding::Multipart).await;
}

#[tokio::test]
async fn second_handoff_lands_in_the_same_session() {
    let shop = ShopProcess::start(&[]);
    let mint = add_from_cache(&shop, Encoding::Multipart, "3", "2", None).await;
    let done = shop
        .origin()
        .get(minted_handoff(&shop, &mint))
        .navigation()
        .send()
        .await;
    let cookie = done
        .set_cookie("__Host-amp_session")
        .expect("a session cookie");

    // Back on the cache the browser withholds the cookie again; on the origin it sends it.
    let mint = add_from_cache(&shop, Encoding::Multipart, "7", "1", None).await;
    let done = shop
        .origin()
        .get(minted_handoff(&shop, &mint))
        .navigation()
        .cookie(Some(&cookie))
        .send()
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.set_cookie("__Host-amp_session"),
        None,
        "no new session"
    );
    assert_eq!(
        cart_json(&shop, &cookie).await,
        r#"{"items":[{"product_id":3,"quantity":2},{"product_id":7,"quantity":1}]}"#
    );
    assert_eq!(
        stats(&shop).await,
        json!({"mints": 2, "handoffs_completed": 2, "adds": 2})
    );
}

#[tokio::test]
async fn adds_with_the_cookie_apply_directly() {
    let shop = ShopProcess::start(&[]);
    let cookie = first_visit(&shop).await;
    let to_cart = format!("{}/cart", shop.origin_url());

    // From the cache, when the browser does send the cookie (third-party cookies allowed).
    let direct = add_from_cache(&shop, Encoding::Multipart, "5", "4", Some(&cookie)).await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.body);
    assert_eq!(
        direct.json(),
        json!({"ok": true, "items": [{"product_id": 5, "quantity": 4}]})
    );
    assert_eq!(direct.header("AMP-Redirect-To"), Some(to_cart.as_str()));
    assert_eq!(
        direct.header("Access-Control-Allow-Origin"),
        Some(shop.cache_url().as_str())
    );

    // From the origin's own page: `AMP-Same-Origin: true` and no `Origin`.
    let same = add_same_origin(&shop, "5", "1", &cookie).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.header("AMP-Redirect-To"), Some(to_cart.as_str()));

    assert_eq!(
        cart_json(&shop, &cookie).await,
        r#"{"items":[{"product_id":5,"quantity":5}]}"#
    );
    assert_eq!(
        stats(&shop).await,
        json!({"mints": 0, "handoffs_completed": 0, "adds": 2})
    );
}

#[tokio::test]
async fn bad_adds_are_refused_and_change_nothing() {
    let shop = ShopProcess::start(&[]);
    let cookie = first_visit(&shop).await;
    let ok = add_same_origin(&shop, "2", "98", &cookie).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let cart = r#"{"items":[{"product_id":2,"quantity":98}]}"#;

    // (product_id, quantity, why)
    let refused = [
        ("13", "1", "unknown product"),
        ("0", "1", "unknown product"),
        ("abc", "1", "non-numeric product"),
        ("1", "0", "quantity below 1"),
        ("1", "100", "quantity above 99"),
        ("1", "abc", "non-numeric quantity"),
        ("1", "-1", "negative quantity"),
        ("1", "", "empty quantity"),
        ("2", "2", "more than 99 in the cart"),
    ];
    for (product_id, quantity, why) in refused {
        let reply = add_same_origin(&shop, product_id, quantity, &cookie).await;
        assert!(
            reply.status.is_client_error(),
            "{why}: {} {}",
            reply.status,
            reply.body
        );
        let error = &reply.json()["error"];
        assert!(
            error.as_str().is_some_and(|e| !e.is_empty()),
            "{why}: {}",
            reply.body
        );
        assert_eq!(reply.header("AMP-Redirect-To"), None, "{why}");
        assert_eq!(cart_json(&shop, &cookie).await, cart, "{why}");
    }

    // Other origins (another site, another publisher's cache page) may not post at all.
    for origin in [
        "http://evil.localhost".to_owned(),
        format!(
            "http://other-localhost.cache.localhost:{}",
            shop.cache_port()
        ),
        "null".to_owned(),
    ] {
        let call = shop
            .origin()
            .post(&add_path(&shop))
            .header("Origin", &origin)
            .cookie(Some(&cookie));
        let reply = form(call, Encoding::UrlEncoded, "1", "1").send().await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(cart_json(&shop, &cookie).await, cart, "{origin}");
    }

    // A bad add that travels through a handoff fails on the origin, visibly.
    let mint = add_from_cache(&shop, Encoding::Multipart, "13", "1", None).await;
    let done = shop
        .origin()
        .get(minted_handoff(&shop, &mint))
        .navigation()
        .cookie(Some(&cookie))
        .send()
        .await;
    assert_eq!(
        done.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        done.body
    );
    assert!(
        done.body.contains("there is no product 13"),
        "{}",
        done.body
    );
    assert_eq!(cart_json(&shop, &cookie).await, cart);

    assert_eq!(
        stats(&shop).await,
        json!({"mints": 1, "handoffs_completed": 0, "adds": 1})
    );
}

#[tokio::test]
async fn stats_follow_what_happened() {
    let shop = ShopProcess::start(&[]);
    let expect = |mints: u64, completed: u64, adds: u64| json!({"mints": mints, "handoffs_completed": completed, "adds": adds});
    assert_eq!(stats(&shop).await, expect(0, 0, 0));

    // A mint that the browser never follows: nothing applied.
    let mint = add_from_cache(&shop, Encoding::UrlEncoded, "1", "1", None).await;
    let unused = minted_handoff(&shop, &mint).to_owned();
    assert_eq!(stats(&shop).await, expect(1, 0, 0));

    // A handoff fired by a `fetch` (not a navigation) is refused and stays usable.
    let fetched = shop
        .origin()
        .get(&unused)
        .header("Sec-Fetch-Mode", "cors")
        .header("Sec-Fetch-Dest", "empty")
        .send()
        .await;
    assert_eq!(fetched.status, StatusCode::FORBIDDEN, "{}", fetched.body);
    assert_eq!(stats(&shop).await, expect(1, 0, 0));

    // Followed as a navigation: one completion, one add.
    let done = shop.origin().get(&unused).navigation().send().await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done
        .set_cookie("__Host-amp_session")
        .expect("a session cookie");
    assert_eq!(stats(&shop).await, expect(1, 1, 1));

    // A direct add with the cookie: an add, no handoff.
    let direct = add_from_cache(&shop, Encoding::Multipart, "2", "1", Some(&cookie)).await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.body);
    assert_eq!(stats(&shop).await, expect(1, 1, 2));

    // Refused adds count nowhere.
    let refused = add_same_origin(&shop, "1", "0", &cookie).await;
    assert!(refused.status.is_client_error());
    assert_eq!(stats(&shop).await, expect(1, 1, 2));
}

#[tokio::test]
async fn pages_and_cache_copies() {
    let shop = ShopProcess::start(&[]);
    let origin = shop.origin_url();

    let home = shop.origin().get("/").send().await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains(&shop.cache_page_url("/products/12")));

    let page = shop.origin().get("/products/1").send().await;
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "<html ⚡".to_owned(),
        format!("<link rel=\"canonical\" href=\"{origin}/products/1\">"),
        "<style amp-boilerplate>".to_owned(),
        format!("action-xhr=\"{origin}/cart/add\" target=\"_top\">"),
        "name=\"product_id\" value=\"1\"".to_owned(),
        "src=\"/offline/amp-form.js\"".to_owned(),
        "<meta name=\"referrer\" content=\"no-referrer-when-downgrade\">".to_owned(),
    ] {
        assert!(page.body.contains(&needle), "{needle}");
    }
    let urlencoded = shop
        .origin()
        .get("/products/1?enctype=urlencoded")
        .send()
        .await;
    assert!(urlencoded
        .body
        .contains("enctype=\"application/x-www-form-urlencoded\""));

    // (server, path, status)
    let p = shop.cache_page_path("");
    let rows = [
        ("origin", "/products/13".to_owned(), StatusCode::NOT_FOUND),
        ("origin", "/products/x".to_owned(), StatusCode::NOT_FOUND),
        ("origin", "/offline/amp-form.js".to_owned(), StatusCode::OK),
        ("cache", format!("{p}/products/12"), StatusCode::OK),
        ("cache", format!("{p}/products/13"), StatusCode::NOT_FOUND),
        // Not an AMP page: a cache sends the user to the origin.
        ("cache", format!("{p}/cart"), StatusCode::SEE_OTHER),
        (
            "cache",
            "/c/s/other.localhost/products/1".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        ("cache", "/offline/amp-form.js".to_owned(), StatusCode::OK),
    ];
    for (server, path, status) in rows {
        let endpoint = if server == "origin" {
            shop.origin()
        } else {
            shop.cache()
        };
        let reply = endpoint.get(&path).send().await;
        assert_eq!(reply.status, status, "{server} {path}");
    }
}

#[tokio::test]
async fn flags_reach_the_layer() {
    let shop = ShopProcess::start(&["--same-site", "lax", "--handoff-ttl", "1"]);

    let mint = add_from_cache(&shop, Encoding::UrlEncoded, "4", "1", None).await;
    let done = shop
        .origin()
        .get(minted_handoff(&shop, &mint))
        .navigation()
        .send()
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let set_cookie = done.header("Set-Cookie").expect("a session cookie");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = done
        .set_cookie("__Host-amp_session")
        .expect("a session cookie");

    // A link followed after its 1 s lifetime is gone, and nothing is applied.
    let mint = add_from_cache(&shop, Encoding::UrlEncoded, "4", "1", None).await;
    let late = minted_handoff(&shop, &mint).to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = shop
        .origin()
        .get(&late)
        .navigation()
        .cookie(Some(&cookie))
        .send()
        .await;
    assert_eq!(expired.status, StatusCode::GONE, "{}", expired.body);
    assert_eq!(
        cart_json(&shop, &cookie).await,
        r#"{"items":[{"product_id":4,"quantity":1}]}"#
    );
}

//! `examples/shop` as a real process over TCP: the handoff flow end to end, as a browser
//! and amp-form would drive it (cookies and headers written out by hand), over http and
//! over the shop's `--tls`, and the pages and runtime files it serves.

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

/// The add-to-cart form's fields in the given encoding, in the page's order, with the
/// return path as amp-form fills it in from `SOURCE_PATH`: the product page's path,
/// percent-encoded (`%2Fproducts%2F3`), then form-encoded like any value.
fn form(call: Call, encoding: Encoding, product_id: &str, quantity: &str) -> Call {
    let back = format!("%2Fproducts%2F{product_id}");
    match encoding {
        Encoding::UrlEncoded => call.urlencoded(&format!(
            "product_id={product_id}&amp_return_path={}&quantity={quantity}",
            back.replace('%', "%25")
        )),
        Encoding::Multipart => call.multipart(&[
            ("product_id", product_id),
            ("amp_return_path", &back),
            ("quantity", quantity),
        ]),
    }
}

/// `/cart/add?__amp_source_origin=<publisher origin>`, as amp-form calls `action-xhr`.
fn add_path(shop: &ShopProcess) -> String {
    let origin: String = form_urlencoded::byte_serialize(shop.origin_url().as_bytes()).collect();
    format!("/cart/add?__amp_source_origin={origin}")
}

/// amp-form on the cache page posting to the origin; `cookie` is what the browser sends
/// with the cross-site request (`None`: third-party cookies blocked). `Referer` is the cache
/// origin alone, as Firefox and WebKit send it: the return path comes from the form.
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
        .header("Referer", &format!("{}/", shop.cache_url()))
        .cookie(cookie);
    form(call, encoding, product_id, quantity).send().await
}

/// The browser following the mint's `AMP-Redirect-To` from the cache page of `product_id`:
/// a top-level navigation whose `Referer` is that page (it sets
/// `no-referrer-when-downgrade`).
async fn follow(
    shop: &ShopProcess,
    handoff: &str,
    product_id: &str,
    cookie: Option<&str>,
) -> support::Reply {
    shop.origin()
        .get(handoff)
        .navigation()
        .header("Sec-Fetch-Site", "cross-site")
        .header(
            "Referer",
            &shop.cache_page_url(&format!("/products/{product_id}")),
        )
        .cookie(cookie)
        .send()
        .await
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

/// A new session's cookie, as a first visit to the cart gets it (the product pages and the
/// index read no session for a new visitor, so they start none: lazy cookies).
async fn first_visit(shop: &ShopProcess) -> String {
    let reply = shop.origin().get("/cart").navigation().send().await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.session_cookie().expect("a new session cookie")
}

/// Checks the mint answer and returns the handoff URL's path and query.
fn minted_handoff<'a>(shop: &ShopProcess, mint: &'a support::Reply) -> &'a str {
    assert_eq!(mint.status, StatusCode::OK, "{}", mint.body);
    let to = mint.header("AMP-Redirect-To").expect("AMP-Redirect-To");
    // What amp-form's template shows on the cache page: the truth, not "added", and the
    // handoff URL for a link when the browser does not navigate by itself.
    assert_eq!(
        mint.json(),
        json!({
            "handoff": true,
            "handoff_url": to,
            "origin": shop.origin_url(),
            "message": "Continuing on shop.localhost…",
        })
    );
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

async fn full_flow(shop: &ShopProcess, encoding: Encoding) {
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
        page.session_cookie(),
        None,
        "the cache passes no cookies on"
    );

    // No cookie on the cross-site post: the layer mints a handoff instead of applying it.
    let mint = add_from_cache(shop, encoding, "3", "2", None).await;
    let handoff = minted_handoff(shop, &mint);
    assert_eq!(
        stats(shop).await,
        json!({"mints": 1, "handoffs_completed": 0, "adds": 0})
    );

    // The browser navigates there: the add is applied to a new first-party session, and the
    // shopper is sent back to the product page (the form's return path), on a clean URL.
    let done = follow(shop, handoff, "3", None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done.session_cookie().expect("a session cookie");
    let location = done.header("Location").expect("Location");
    assert_eq!(location, format!("{}/products/3", shop.origin_url()));
    let cart = r#"{"items":[{"product_id":3,"quantity":2}]}"#;
    assert_eq!(cart_json(shop, &cookie).await, cart);

    // The product page says what was added, once; then only what the cart holds.
    let landed = shop
        .origin()
        .get("/products/3")
        .navigation()
        .cookie(Some(&cookie))
        .send()
        .await;
    assert!(
        landed
            .body
            .contains("Added 2 × Pour-over kettle to your cart."),
        "{}",
        landed.body
    );
    assert!(landed.body.contains("In your cart: 2 × Pour-over kettle."));
    assert_eq!(landed.header("Cache-Control"), Some("private, no-cache"));
    let reloaded = shop
        .origin()
        .get("/products/3")
        .cookie(Some(&cookie))
        .send()
        .await;
    assert!(!reloaded.body.contains("Added 2"), "{}", reloaded.body);
    assert!(reloaded
        .body
        .contains("In your cart: 2 × Pour-over kettle."));

    // A reload of the handoff URL lands on the product page again without adding twice.
    let again = follow(shop, handoff, "3", Some(&cookie)).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.session_cookie(), None);
    assert_eq!(cart_json(shop, &cookie).await, cart);
    // The reload is answered 303 too, so it counts as a completion; only one add applied.
    assert_eq!(
        stats(shop).await,
        json!({"mints": 1, "handoffs_completed": 2, "adds": 1})
    );
}

#[tokio::test]
async fn handoff_flow_urlencoded() {
    full_flow(&ShopProcess::start(&[]), Encoding::UrlEncoded).await;
}

#[tokio::test]
async fn handoff_flow_multipart() {
    full_flow(&ShopProcess::start(&[]), Encoding::Multipart).await;
}

/// `--tls`: both sites over https with the certificate made at start, cache pages under
/// `/c/s/`, the same flow.
#[tokio::test]
async fn handoff_flow_over_tls() {
    let shop = ShopProcess::start(&["--tls"]);
    assert!(shop.origin_url().starts_with("https://shop.localhost:"));
    assert!(shop
        .cache_page_path("/x")
        .starts_with("/c/s/shop.localhost:"));
    let home = shop.origin().get("/").send().await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains(&shop.cache_page_url("/products/1")));
    full_flow(&shop, Encoding::Multipart).await;
    let cookie = first_visit(&shop).await;
    let (name, _) = cookie.split_once('=').expect("name=value");
    let set = shop.origin().get("/cart").send().await;
    let header = set.header("Set-Cookie").unwrap_or_default().to_owned();
    assert!(
        header.starts_with(name) && header.contains("Secure"),
        "{header}"
    );
}

#[tokio::test]
async fn second_handoff_lands_in_the_same_session() {
    let shop = ShopProcess::start(&[]);
    let mint = add_from_cache(&shop, Encoding::Multipart, "3", "2", None).await;
    let done = follow(&shop, minted_handoff(&shop, &mint), "3", None).await;
    let cookie = done.session_cookie().expect("a session cookie");

    // Back on the cache the browser withholds the cookie again; on the origin it sends it.
    let mint = add_from_cache(&shop, Encoding::Multipart, "7", "1", None).await;
    let done = follow(&shop, minted_handoff(&shop, &mint), "7", Some(&cookie)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.header("Location"),
        Some(format!("{}/products/7", shop.origin_url()).as_str())
    );
    assert_eq!(done.session_cookie(), None, "no new session");
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

    // From the cache, when the browser does send the cookie (third-party cookies allowed):
    // the shop answers itself, and the page stays where it is and shows `message`.
    let direct = add_from_cache(&shop, Encoding::Multipart, "5", "4", Some(&cookie)).await;
    assert_eq!(direct.status, StatusCode::OK, "{}", direct.body);
    assert_eq!(
        direct.json(),
        json!({
            "ok": true,
            "message": "Added 4 × Paper filters (100) to your cart.",
            "items": [{"product_id": 5, "quantity": 4}],
        })
    );
    assert_eq!(direct.header("AMP-Redirect-To"), None);
    assert_eq!(
        direct.header("Access-Control-Allow-Origin"),
        Some(shop.cache_url().as_str())
    );

    // From the origin's own page: `AMP-Same-Origin: true` and no `Origin`.
    let same = add_same_origin(&shop, "5", "1", &cookie).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(
        same.json()["message"],
        json!("Added 1 × Paper filters (100) to your cart.")
    );
    assert_eq!(same.header("AMP-Redirect-To"), None);
    // Nothing to announce on the next page: the shopper saw the answer.
    let page = shop
        .origin()
        .get("/cart")
        .cookie(Some(&cookie))
        .send()
        .await;
    assert!(!page.body.contains("Added"), "{}", page.body);

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
    let done = follow(&shop, minted_handoff(&shop, &mint), "13", Some(&cookie)).await;
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
    let done = follow(&shop, &unused, "1", None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let cookie = done.session_cookie().expect("a session cookie");
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
        // The return path, filled in by amp-form (SPEC section 5, "Return path").
        "<input type=\"hidden\" name=\"amp_return_path\" value=\"SOURCE_URL\" data-amp-replace=\"SOURCE_URL\">".to_owned(),
        // The shop's own answer ("Added …"), or for the layer's handoff answer a link on.
        "{{^handoff}}<p class=\"form-message\">{{message}}</p>{{/handoff}}".to_owned(),
        "<a class=\"finish\" href=\"{{handoff_url}}\" target=\"_top\">Finish on shop.localhost</a>".to_owned(),
        // Without --amp-runtime or --offline: the AMP CDN.
        "<script async src=\"https://cdn.ampproject.org/v0.js\"></script>".to_owned(),
        "<meta name=\"referrer\" content=\"no-referrer-when-downgrade\">".to_owned(),
    ] {
        assert!(page.body.contains(&needle), "{needle}");
    }
    assert!(
        !page.body.contains("AMP_CONFIG"),
        "the origin is not a cache"
    );
    let urlencoded = shop
        .origin()
        .get("/products/1?enctype=urlencoded")
        .send()
        .await;
    assert!(urlencoded
        .body
        .contains("enctype=\"application/x-www-form-urlencoded\""));

    // On the cache, the runtime is told that this is a cache.
    let copy = shop
        .cache()
        .get(&shop.cache_page_path("/products/1"))
        .send()
        .await;
    assert!(
        copy.body.contains(r#"<script>self.AMP_CONFIG={"cdnProxyRegex":"^http://([a-zA-Z0-9_-]+\\.)?cache\\.localhost(:[0-9]+)?$"};</script>"#),
        "{}",
        copy.body
    );

    // (server, path, status)
    let p = shop.cache_page_path("");
    let rows = [
        ("origin", "/products/13".to_owned(), StatusCode::NOT_FOUND),
        ("origin", "/products/x".to_owned(), StatusCode::NOT_FOUND),
        ("origin", "/offline/amp-form.js".to_owned(), StatusCode::OK),
        // No local runtime unless --amp-runtime.
        (
            "origin",
            "/amp-runtime/v0.js".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        ("cache", format!("{p}/products/12"), StatusCode::OK),
        ("cache", format!("{p}/products/13"), StatusCode::NOT_FOUND),
        // Not an AMP page: a cache sends the user to the origin.
        ("cache", format!("{p}/cart"), StatusCode::SEE_OTHER),
        // `/c/s/` names an https origin; this one is http: sent to `/c/`.
        (
            "cache",
            format!("/c/s/{}/products/1", shop.origin_host()),
            StatusCode::SEE_OTHER,
        ),
        (
            "cache",
            "/c/other.localhost/products/1".to_owned(),
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

/// A directory laid out like ../shared/amp-runtime, with stand-in contents.
fn fake_runtime(with_mustache: bool) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tower-amp-session-fake-runtime-{}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("v0")).expect("create the runtime dir");
    std::fs::write(dir.join("v0.js"), "/* v0 */").expect("write");
    std::fs::write(dir.join("v0/amp-form-0.1.js"), "/* form */").expect("write");
    std::fs::write(dir.join("LICENSE"), "not served").expect("write");
    if with_mustache {
        std::fs::write(dir.join("v0/amp-mustache-0.2.js"), "/* mustache */").expect("write");
    }
    dir
}

/// `--amp-runtime DIR`: both sites serve the runtime's files, and the pages load them.
#[tokio::test]
async fn amp_runtime_from_a_directory() {
    let dir = fake_runtime(true);
    let shop = ShopProcess::start(&["--amp-runtime", dir.to_str().expect("UTF-8 path")]);
    let origin = shop.origin_url();
    let cache = shop.cache_url();

    let page = shop.origin().get("/products/2").send().await;
    for needle in [
        format!("<meta name=\"runtime-host\" content=\"{origin}/amp-runtime\">"),
        format!("<script async src=\"{origin}/amp-runtime/v0.js\"></script>"),
        format!("custom-element=\"amp-form\" src=\"{origin}/amp-runtime/v0/amp-form-0.1.js\""),
    ] {
        assert!(page.body.contains(&needle), "{needle}\n{}", page.body);
    }
    let copy = shop
        .cache()
        .get(&shop.cache_page_path("/products/2"))
        .send()
        .await;
    for needle in [
        format!(r#""cdnUrl":"{cache}/amp-runtime""#),
        "cdnProxyRegex".to_owned(),
        format!("<script async src=\"{cache}/amp-runtime/v0.js\"></script>"),
        format!("src=\"{cache}/amp-runtime/v0/amp-mustache-0.2.js\""),
    ] {
        assert!(copy.body.contains(&needle), "{needle}\n{}", copy.body);
    }
    assert!(!copy.body.contains(&format!("{origin}/amp-runtime")));

    // (path, status, body)
    let rows = [
        ("/amp-runtime/v0.js", StatusCode::OK, "/* v0 */"),
        (
            "/amp-runtime/v0/amp-form-0.1.js",
            StatusCode::OK,
            "/* form */",
        ),
        ("/amp-runtime/LICENSE", StatusCode::NOT_FOUND, ""),
        ("/amp-runtime/../Cargo.toml", StatusCode::NOT_FOUND, ""),
        (
            "/amp-runtime/v0/amp-auto-lightbox-0.1.js",
            StatusCode::NOT_FOUND,
            "",
        ),
    ];
    for endpoint in [shop.origin(), shop.cache()] {
        for (path, status, body) in rows {
            let reply = endpoint.get(path).send().await;
            assert_eq!(reply.status, status, "{path}");
            if status == StatusCode::OK {
                assert_eq!(reply.body, body);
                assert_eq!(
                    reply.header("Content-Type"),
                    Some("text/javascript; charset=utf-8")
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Flags that do not fit are refused at start with a reason, before anything listens.
#[test]
fn bad_runtime_dirs_and_flags_stop_the_shop() {
    let incomplete = fake_runtime(false);
    let incomplete = incomplete.to_str().expect("UTF-8 path").to_owned();
    // (arguments, part of the message)
    let rows: [(&[&str], &str); 4] = [
        (&["--amp-runtime", "/nonexistent/runtime"], "cannot read"),
        (
            &["--amp-runtime", &incomplete],
            "has no v0/amp-mustache-0.2.js",
        ),
        (
            &["--offline", "--amp-runtime", &incomplete],
            "exclude each other",
        ),
        (&["--cert-out", "/tmp/x.pem"], "--cert-out needs --tls"),
    ];
    for (args, message) in rows {
        let out = std::process::Command::new(support::shop_binary())
            .args(["--origin-port", "1", "--cache-port", "2"])
            .args(args)
            .output()
            .expect("run the shop");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(incomplete);
}

#[tokio::test]
async fn flags_reach_the_layer() {
    let shop = ShopProcess::start(&["--same-site", "lax", "--handoff-ttl", "1"]);

    let mint = add_from_cache(&shop, Encoding::UrlEncoded, "4", "1", None).await;
    let done = follow(&shop, minted_handoff(&shop, &mint), "4", None).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let set_cookie = done.header("Set-Cookie").expect("a session cookie");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = done.session_cookie().expect("a session cookie");

    // A link followed after its 1 s lifetime is gone, and nothing is applied.
    let mint = add_from_cache(&shop, Encoding::UrlEncoded, "4", "1", None).await;
    let late = minted_handoff(&shop, &mint).to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = follow(&shop, &late, "4", Some(&cookie)).await;
    assert_eq!(expired.status, StatusCode::GONE, "{}", expired.body);
    assert_eq!(
        cart_json(&shop, &cookie).await,
        r#"{"items":[{"product_id":4,"quantity":1}]}"#
    );
}

//! Real browsers against the example shop: headless Chromium and Firefox ESR, driven over
//! WebDriver (chromedriver, geckodriver), with the shop's offline stand-in for amp-form.
//!
//! Each test finds its browser and driver first: when one is missing it prints
//! `browser tests skipped: <program> not found` and passes, unless `CI=true`, where it fails.
//! Everything a test starts (shop, driver, browser, profile directories) is stopped on drop,
//! also when an assertion fails. The tests take turns (one browser at a time) and print each
//! scenario's duration and the browser versions to stderr.
//!
//! What the shop does in these scenarios is in README.md ("The flow"): a cookieless add from
//! the cache is answered with `AMP-Redirect-To` a signed handoff URL on the origin; the
//! origin applies it to its first-party session and answers `303 See Other` to `/cart`.

mod browser_support;
mod support;

use std::time::Duration;

use axum::http::Method;
use browser_support::stand_in::{Case, Endpoint, StandInServer, API_HOST, CACHE_HOST, PAGE_HOST};
use browser_support::{
    note, one_at_a_time, run, scenario, Browser, Driver, Engine, Installed, Shopper,
    ThirdPartyCookies,
};
use fantoccini::Locator;
use serde_json::{json, Value};
use support::ShopProcess;

/// Per test; the whole file runs in well under a minute.
const LIMIT: Duration = Duration::from_secs(90);

/// The browsers here cannot reach the AMP CDN: the shop's pages load its local stand-in for
/// amp-form (`ShopProcess` passes the flag too; the scenarios depend on it, so they say so).
const OFFLINE: &[&str] = &["--offline"];

/// `/_stats.json` as the shop reports it.
fn stats(mints: u64, handoffs_completed: u64, adds: u64) -> Value {
    json!({"mints": mints, "handoffs_completed": handoffs_completed, "adds": adds})
}

/// `/cart.json` for `(product_id, quantity)` items, in order of first addition.
fn cart(items: &[(u32, u32)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(id, qty)| json!({"product_id": id, "quantity": qty}))
        .collect();
    json!({ "items": items })
}

/// Finds the engine's programs (or skips), takes the turn, starts the driver, and reports the
/// versions in use.
fn with_driver<F, Fut>(engine: Engine, body: F)
where
    F: FnOnce(Driver) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(installed) = Installed::find(engine) else {
        return;
    };
    let _turn = one_at_a_time();
    note(&format!(
        "browser tests: {engine:?} with {}",
        installed.driver_version()
    ));
    run(LIMIT, async {
        let driver = Driver::start(&installed);
        body(driver).await;
    });
}

async fn open(driver: &Driver, third_party: ThirdPartyCookies) -> Browser {
    let browser = match driver.engine() {
        Engine::Chromium => driver.chromium(third_party).await,
        // Firefox keeps its default: Total Cookie Protection partitions the cache page's
        // third-party cookies, so the origin's cookie is not sent there.
        Engine::Firefox => driver.firefox().await,
    };
    note(&format!(
        "browser tests: {:?} {}",
        driver.engine(),
        browser.version()
    ));
    browser
}

#[test]
fn chromium_with_third_party_cookies_blocked() {
    with_driver(Engine::Chromium, |driver| async move {
        scenario(
            "a+e (Chromium, third-party cookies blocked): add on the cache, land on a clean cart URL",
            add_on_the_cache_through_a_handoff(&driver, "cart-after-handoff-chromium"),
        )
        .await;
        scenario(
            "c (Chromium, third-party cookies blocked): two adds by a new shopper, one session",
            two_adds_end_in_one_session(&driver),
        )
        .await;
    });
}

#[test]
fn chromium_with_third_party_cookies_allowed() {
    with_driver(Engine::Chromium, |driver| async move {
        scenario(
            "b (Chromium, third-party cookies allowed): the add applies without a handoff",
            allowed_cookie_applies_without_a_handoff(&driver),
        )
        .await;
    });
}

#[test]
fn firefox_with_total_cookie_protection() {
    with_driver(Engine::Firefox, |driver| async move {
        scenario(
            "d+e (Firefox ESR, Total Cookie Protection): add on the cache, land on a clean cart URL",
            add_on_the_cache_through_a_handoff(&driver, "cart-after-handoff-firefox"),
        )
        .await;
        scenario(
            "c (Firefox ESR, Total Cookie Protection): two adds by a new shopper, one session",
            two_adds_end_in_one_session(&driver),
        )
        .await;
    });
}

/// (a), (d) and (e): a shopper whose browser withholds the origin's cookie on the cache page
/// adds a product there; the add travels through a handoff and lands on the origin's cart.
async fn add_on_the_cache_through_a_handoff(driver: &Driver, screenshot: &str) {
    let shop = ShopProcess::start(OFFLINE);
    let shopper = Shopper::new(open(driver, ThirdPartyCookies::Blocked).await, &shop);
    let cart_url = format!("{}/cart", shop.origin_url());
    let cache_page = shop.cache_page_url("/products/3");
    let two_kettles = cart(&[(3, 2)]);
    let two_kettles_line = vec!["2 × Pour-over kettle: 79.80".to_owned()];

    shopper.open(&cache_page).await;
    let history_on_cache = shopper.history_length().await;
    let landed = shopper.add_to_cart(2).await;

    // On the origin, on the clean URL the handoff's 303 names: no token left in it.
    assert_eq!(landed.as_str(), cart_url);
    assert!(!landed.as_str().contains("token="), "{landed}");
    // The handoff URL was a redirect step, not a page: it added no history entry of its own
    // (cache page, then the cart), and the cart document was reached through one redirect.
    assert_eq!(shopper.history_length().await, history_on_cache + 1);
    assert_eq!(shopper.redirect_count().await, 1);

    // The cart shows the product, and the server holds it for this browser's session.
    assert_eq!(shopper.cart_page_lines().await, two_kettles_line);
    assert_eq!(shopper.cart_json().await, two_kettles);
    assert_eq!(shopper.stats().await, stats(1, 1, 1));

    // (e) Reload the landing page: the cart is shown again, nothing is applied again.
    shopper.reload().await;
    assert_eq!(shopper.url().await.as_str(), cart_url);
    assert_eq!(shopper.cart_page_lines().await, two_kettles_line);
    assert_eq!(shopper.stats().await, stats(1, 1, 1));

    // (e) Back leads to the cache page, not to the handoff URL; Forward to the cart again.
    assert_eq!(shopper.back().await.as_str(), cache_page);
    assert_eq!(shopper.forward().await.as_str(), cart_url);
    assert_eq!(shopper.cart_json().await, two_kettles);
    assert_eq!(shopper.stats().await, stats(1, 1, 1));
    // No entry anywhere back in this tab's history holds the token.
    let back_chain = shopper.back_to_the_start().await;
    note(&format!(
        "browser tests: {:?} history, Back from the cart: {}",
        driver.engine(),
        back_chain
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(" <- ")
    ));
    for url in back_chain {
        assert!(
            !url.as_str().contains("token=") && !url.path().starts_with("/_amp/"),
            "{url}"
        );
    }

    // A new navigation to the origin's cart (a typed address) still shows it: the session
    // lives in the origin's own cookie.
    shopper.open(&cart_url).await;
    assert_eq!(shopper.cart_page_lines().await, two_kettles_line);
    assert_eq!(shopper.cart_json().await, two_kettles);
    let path = shopper.screenshot(screenshot).await;
    note(&format!("browser tests: screenshot {}", path.display()));

    // One mint, one completed handoff, one add: Back, Forward and the reload applied nothing.
    assert_eq!(shopper.stats().await, stats(1, 1, 1));
    shopper.close().await;
}

/// (c): a new shopper adds two products on the cache; each add goes through its own handoff,
/// and both land in the one session the first handoff created.
async fn two_adds_end_in_one_session(driver: &Driver) {
    let shop = ShopProcess::start(OFFLINE);
    let shopper = Shopper::new(open(driver, ThirdPartyCookies::Blocked).await, &shop);
    let cart_url = format!("{}/cart", shop.origin_url());

    shopper.open(&shop.cache_page_url("/products/3")).await;
    assert_eq!(shopper.add_to_cart(1).await.as_str(), cart_url);
    let session = shopper
        .session_cookie()
        .await
        .expect("the first handoff set the origin's session cookie");
    assert_eq!(shopper.stats().await, stats(1, 1, 1));

    // Back on the cache the browser withholds that cookie again: a second handoff.
    shopper.open(&shop.cache_page_url("/products/7")).await;
    assert_eq!(shopper.add_to_cart(3).await.as_str(), cart_url);
    assert_eq!(shopper.stats().await, stats(2, 2, 2));

    // Same session, both products.
    assert_eq!(shopper.session_cookie().await, Some(session));
    assert_eq!(shopper.cart_json().await, cart(&[(3, 1), (7, 3)]));
    assert_eq!(
        shopper.cart_page_lines().await,
        ["1 × Pour-over kettle: 39.90", "3 × Tamper: 82.50"]
    );
    shopper.close().await;
}

/// (b): Chromium allowing third-party cookies, after a visit to the origin, sends the
/// origin's `SameSite=None` cookie with the cache page's post: the add applies there, no
/// handoff. (e) Reload and Back apply nothing twice here either.
async fn allowed_cookie_applies_without_a_handoff(driver: &Driver) {
    let shop = ShopProcess::start(OFFLINE);
    let shopper = Shopper::new(open(driver, ThirdPartyCookies::Allowed).await, &shop);
    let cart_url = format!("{}/cart", shop.origin_url());
    let cache_page = shop.cache_page_url("/products/5");

    shopper.open_origin("/").await;
    let session = shopper
        .session_cookie()
        .await
        .expect("the origin set its session cookie on the first visit");

    shopper.open(&cache_page).await;
    let landed = shopper.add_to_cart(4).await;
    // The app answered the add itself with `AMP-Redirect-To: /cart`.
    assert_eq!(landed.as_str(), cart_url);
    assert_eq!(shopper.redirect_count().await, 0, "no handoff 303");
    assert_eq!(shopper.stats().await, stats(0, 0, 1));
    assert_eq!(shopper.session_cookie().await, Some(session));
    assert_eq!(shopper.cart_json().await, cart(&[(5, 4)]));
    assert_eq!(
        shopper.cart_page_lines().await,
        ["4 × Paper filters (100): 19.60"]
    );

    shopper.reload().await;
    assert_eq!(shopper.back().await.as_str(), cache_page);
    assert_eq!(shopper.forward().await.as_str(), cart_url);
    assert_eq!(shopper.cart_json().await, cart(&[(5, 4)]));
    assert_eq!(shopper.stats().await, stats(0, 0, 1));
    shopper.close().await;
}

/// What the stand-in should end up doing in a case.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The top window navigates to this URL (`{page}`, `{port}` expanded).
    Navigates(&'static str),
    /// The page stays. `state` is the form's `amp-form-*` class, `shows` the rendered message
    /// (if any), `logged` the type of the stand-in's log entry that says why it stayed, and
    /// `reason` a part of that entry's reason.
    Stays {
        state: &'static str,
        shows: Option<&'static str>,
        logged: &'static str,
        reason: &'static str,
    },
}

/// A page that stays after a 200 answer without a usable redirect.
const fn stays(logged: &'static str, reason: &'static str) -> Outcome {
    Outcome::Stays {
        state: "submit-success",
        shows: Some("ok received"),
        logged,
        reason,
    }
}

/// Item 3 of issue 4: the shop's offline stand-in for amp-form, case by case in Chromium,
/// against the rules AMP-NOTES.md lists for amp-form. For every case: what the request
/// carried (checked by the server) and what the page did (URL, the stand-in's log).
#[test]
fn stand_in_follows_amp_form_rules() {
    let cases: [(Case, Outcome); 14] = [
        // Same origin: AMP-Same-Origin, and the header is readable without being exposed.
        (
            Case {
                redirect_to: Some("{page}/landed?case=same-origin"),
                ..Case::new("same-origin")
            },
            Outcome::Navigates("{page}/landed?case=same-origin"),
        ),
        // Another origin that exposes the header: followed. Urlencoded on request.
        (
            Case {
                endpoint: Endpoint::OtherOrigin,
                enctype: Some("application/x-www-form-urlencoded"),
                redirect_to: Some("{page}/landed?case=exposed"),
                expose: true,
                ..Case::new("other-origin-exposed")
            },
            Outcome::Navigates("{page}/landed?case=exposed"),
        ),
        // Another origin that does not expose it: the page cannot see it, nothing happens.
        (
            Case {
                endpoint: Endpoint::OtherOrigin,
                redirect_to: Some("{page}/landed?case=unexposed"),
                ..Case::new("other-origin-unexposed")
            },
            stays("no-redirect", ""),
        ),
        // A cache copy (another site) posting to the publisher, which exposes the header.
        (
            Case {
                endpoint: Endpoint::Publisher,
                redirect_to: Some("{page}/landed?case=cache-copy"),
                expose: true,
                ..Case::new("cache-copy")
            },
            Outcome::Navigates("{page}/landed?case=cache-copy"),
        ),
        // Not secure: plain http on a name that is not local.
        (
            Case {
                redirect_to: Some("http://evil.example/"),
                ..Case::new("insecure-url")
            },
            stays("redirect-refused", "https"),
        ),
        // 127.0.0.1 counts as secure, like localhost names.
        (
            Case {
                redirect_to: Some("http://127.0.0.1:{port}/landed?case=loopback"),
                ..Case::new("loopback-ip")
            },
            Outcome::Navigates("http://127.0.0.1:{port}/landed?case=loopback"),
        ),
        // Absolute URLs only, and only http(s).
        (
            Case {
                redirect_to: Some("/landed?case=relative"),
                ..Case::new("relative-url")
            },
            stays("redirect-refused", "absolute"),
        ),
        (
            Case {
                redirect_to: Some("javascript:alert(1)"),
                ..Case::new("javascript-url")
            },
            stays("redirect-refused", "absolute"),
        ),
        // target=_blank: amp-form refuses to redirect.
        (
            Case {
                target: "_blank",
                redirect_to: Some("{page}/landed?case=blank"),
                ..Case::new("target-blank")
            },
            stays("redirect-refused", "_blank"),
        ),
        // An error status still redirects...
        (
            Case {
                endpoint: Endpoint::OtherOrigin,
                status: 400,
                redirect_to: Some("{page}/landed?case=error"),
                expose: true,
                ..Case::new("error-with-redirect")
            },
            Outcome::Navigates("{page}/landed?case=error"),
        ),
        // ...and without one shows the error template with the answer's message.
        (
            Case {
                status: 422,
                ..Case::new("error-without-redirect")
            },
            Outcome::Stays {
                state: "submit-error",
                shows: Some("failed: the endpoint said no"),
                logged: "no-redirect",
                reason: "",
            },
        ),
        // In an iframe (as in an AMP viewer), the top window navigates.
        (
            Case {
                in_iframe: true,
                redirect_to: Some("{page}/landed?case=iframe"),
                ..Case::new("in-iframe")
            },
            Outcome::Navigates("{page}/landed?case=iframe"),
        ),
        // GET puts the fields in the query.
        (
            Case {
                method: "get",
                ..Case::new("get")
            },
            stays("no-redirect", ""),
        ),
        // An input named like the runtime's own parameter: amp-form refuses the form.
        (
            Case {
                illegal_input: true,
                redirect_to: Some("{page}/landed?case=illegal"),
                ..Case::new("illegal-input")
            },
            Outcome::Stays {
                state: "",
                shows: None,
                logged: "refused",
                reason: "illegal input",
            },
        ),
    ];
    with_driver(Engine::Chromium, |driver| async move {
        let all: Vec<Case> = cases.iter().map(|(c, _)| c.clone()).collect();
        let server = StandInServer::start(&all).await;
        // Blocked third-party cookies, set explicitly: the cache copy's post carries none.
        let shopper = StandInShopper(open(&driver, ThirdPartyCookies::Blocked).await);
        // A same-site cookie on both the page's host and the other origin's host: requests
        // carry it only with `credentials: 'include'`.
        for host in [PAGE_HOST, API_HOST] {
            shopper
                .open(&format!("{}/probe-cookie", server.url(host)))
                .await;
        }
        for (case, outcome) in &cases {
            scenario(
                &format!("stand-in {}", case.name),
                check_case(&server, &shopper, case, *outcome),
            )
            .await;
        }
        // AMP CORS never needs a preflight, and the stand-in never caused one.
        assert!(server.seen_with_method(&Method::OPTIONS).is_empty());
        shopper.0.close().await;
    });
}

/// A browser on the stand-in's test pages.
struct StandInShopper(Browser);

impl StandInShopper {
    async fn open(&self, url: &str) {
        self.0
            .client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn url(&self) -> String {
        self.0
            .client()
            .current_url()
            .await
            .expect("URL")
            .to_string()
    }

    /// The stand-in's log in the current frame.
    async fn log(&self) -> Vec<Value> {
        match self
            .0
            .client()
            .execute("return window.__ampFormLog || []", vec![])
            .await
        {
            Ok(Value::Array(entries)) => entries,
            _ => Vec::new(),
        }
    }
}

async fn check_case(
    server: &StandInServer,
    shopper: &StandInShopper,
    case: &Case,
    outcome: Outcome,
) {
    let client = shopper.0.client();
    let page = server.case_url(case);
    shopper.open(&page).await;
    if case.in_iframe {
        client.enter_frame(0).await.expect("enter the iframe");
    }
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .expect("the submit button")
        .click()
        .await
        .expect("press submit");

    match outcome {
        Outcome::Navigates(to) => {
            // The log lives in the (maybe framed) page that is going away; watch the top.
            client.enter_parent_frame().await.ok();
            let want = server.expand(to);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while shopper.url().await != want {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}: still on {} instead of {want}; log {:?}",
                    case.name,
                    shopper.url().await,
                    shopper.log().await
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Outcome::Stays {
            state,
            shows,
            logged,
            reason,
        } => {
            let log = wait_for_log_end(shopper, case).await;
            assert_eq!(shopper.url().await, page, "{}: the page stayed", case.name);
            assert!(
                log.iter().all(|e| e["type"] != "redirect"),
                "{}: {log:?}",
                case.name
            );
            let entry = log
                .iter()
                .find(|e| e["type"] == logged)
                .unwrap_or_else(|| panic!("{}: no {logged:?} entry in {log:?}", case.name));
            let why = entry["reason"].as_str().unwrap_or_default();
            assert!(why.contains(reason), "{}: {entry}", case.name);
            let form = client.find(Locator::Css("form")).await.expect("the form");
            let class = form.attr("class").await.expect("class").unwrap_or_default();
            if !state.is_empty() {
                assert!(
                    class.contains(&format!("amp-form-{state}")),
                    "{}: {class}",
                    case.name
                );
            }
            if let Some(text) = shows {
                let rendered = client
                    .find(Locator::Css(&format!("[{state}] [i-amphtml-rendered]")))
                    .await
                    .expect("the rendered template");
                assert_eq!(rendered.text().await.expect("text"), text, "{}", case.name);
            }
        }
    }
    check_request(server, case, outcome);
}

/// Waits until the stand-in logged the end of its work (`done`, or `refused` for a form it
/// will not send), and returns the log.
async fn wait_for_log_end(shopper: &StandInShopper, case: &Case) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = shopper.log().await;
        if log
            .iter()
            .any(|e| e["type"] == "done" || e["type"] == "refused")
        {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: the stand-in did not finish; now on {}, log {log:?}",
            case.name,
            shopper.url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What amp-form sends (AMP-NOTES.md, "amp-form"), as the endpoint saw it.
fn check_request(server: &StandInServer, case: &Case, outcome: Outcome) {
    let name = case.name;
    let seen = server.seen(&format!("/echo/{name}"));
    if matches!(
        outcome,
        Outcome::Stays {
            logged: "refused",
            ..
        }
    ) {
        assert!(
            seen.is_empty(),
            "{name}: a refused form sends nothing: {seen:?}"
        );
        return;
    }
    let [request] = seen.as_slice() else {
        panic!("{name}: expected one request, got {seen:?}");
    };
    let page_origin = server.url(PAGE_HOST);
    assert_eq!(
        request.method.as_str(),
        case.method.to_uppercase(),
        "{name}"
    );
    assert_eq!(request.header("Accept"), Some("application/json"), "{name}");
    // The publisher origin: the page's own, or decoded from a cache copy's `/c/s/` path.
    assert_eq!(
        request.param("__amp_source_origin"),
        Some(page_origin.as_str()),
        "{name}"
    );
    let (same_origin, endpoint_host, origin) = match case.endpoint {
        Endpoint::SameOrigin => (true, PAGE_HOST, page_origin.clone()),
        Endpoint::OtherOrigin => (false, API_HOST, page_origin.clone()),
        Endpoint::Publisher => (false, PAGE_HOST, server.url(CACHE_HOST)),
    };
    assert_eq!(
        request.header("AMP-Same-Origin"),
        same_origin.then_some("true"),
        "{name}"
    );
    if !same_origin {
        assert_eq!(request.header("Origin"), Some(origin.as_str()), "{name}");
    }
    assert_eq!(
        request.host,
        format!("{endpoint_host}:{}", server.port()),
        "{name}"
    );
    // `credentials: 'include'`: the endpoint host's cookie goes along cross-origin on the same
    // site; cross-site, Chromium (third-party cookies blocked) withholds it.
    let cookie = request.header("Cookie").unwrap_or_default();
    let probe = format!("probe={endpoint_host}:");
    if case.endpoint == Endpoint::Publisher {
        assert!(!cookie.contains("probe="), "{name}: {cookie}");
    } else {
        assert!(cookie.contains(&probe), "{name}: {cookie:?}");
    }

    let content_type = request.header("Content-Type").unwrap_or_default();
    match (case.method, case.enctype) {
        ("get", _) => {
            assert_eq!(request.param("product_id"), Some("3"), "{name}");
            assert_eq!(request.param("quantity"), Some("2"), "{name}");
            assert!(request.body.is_empty(), "{name}");
        }
        (_, Some("application/x-www-form-urlencoded")) => {
            assert!(
                content_type.starts_with("application/x-www-form-urlencoded"),
                "{name}: {content_type}"
            );
            assert_eq!(request.body, "product_id=3&quantity=2", "{name}");
        }
        _ => {
            assert!(
                content_type.starts_with("multipart/form-data; boundary="),
                "{name}: {content_type}"
            );
            for (field, value) in [("product_id", "3"), ("quantity", "2")] {
                let part = format!("name=\"{field}\"\r\n\r\n{value}\r\n");
                assert!(request.body.contains(&part), "{name}: {}", request.body);
            }
        }
    }
}

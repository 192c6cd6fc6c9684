//! Real browsers against the example shop with the real AMP runtime (`../shared/amp-runtime`,
//! served by the shop with `--amp-runtime`): headless Chromium (third-party cookies blocked,
//! and allowed), headless Firefox ESR (its default Total Cookie Protection) and WebKitGTK's
//! MiniBrowser with `--enable-itp` (Safari's engine and setting) under Xvfb, over the shop's
//! `--tls` (WebKit keeps no `Secure` cookie over plain http). Driven over WebDriver.
//!
//! Each test finds its browser, driver and the runtime first: when one is missing it prints
//! `browser tests skipped: ...` and passes, unless `CI=true`, where it fails. Everything a
//! test starts (shop, driver, Xvfb, browser, profile directories) is stopped on drop, also
//! when an assertion fails. One browser session per set-up runs all its scenarios (a new
//! shopper is a session whose cookies were deleted); the set-ups take turns. Each scenario's
//! duration and the URL it landed on, the browser versions and the screenshots' paths are
//! printed to stderr.
//!
//! The flow (README.md, "The flow"): a cookieless add from the cache is answered with
//! `AMP-Redirect-To` a handoff URL on the origin and `{"message": "Continuing on …"}`; the
//! origin applies it to its first-party session and answers `303 See Other` to the page the
//! form was on (the form's `amp_return_path`, filled in by amp-form from `SOURCE_PATH`).

mod browser_support;
mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::Method;
use browser_support::stand_in::{Case, Endpoint, StandInServer, API_HOST, CACHE_HOST, PAGE_HOST};
use browser_support::viewer::ViewerServer;
use browser_support::{
    amp_runtime, note, one_at_a_time, print_results, record_result, run, scenario, scenario_saw,
    start_shop, Browser, Driver, Engine, Installed, Scheme, Shopper, ThirdPartyCookies,
};
use fantoccini::Locator;
use serde_json::{json, Value};

/// Per set-up; each runs in a few seconds (WebKit's cold start is 3-8 s of it).
const LIMIT: Duration = Duration::from_secs(150);

/// One browser set-up under test.
#[derive(Debug, Clone, Copy)]
struct SetUp {
    name: &'static str,
    engine: Engine,
    /// Chromium only; the other engines keep their defaults (Firefox partitions third-party
    /// cookies, WebKit with ITP never sends them).
    third_party: ThirdPartyCookies,
    scheme: Scheme,
    screenshot: &'static str,
    /// Whether this set-up makes README.md's screenshots (with `AMP_UPDATE_SCREENSHOTS=1`).
    docs: bool,
}

impl SetUp {
    /// Whether the cache page's post carries the origin's cookie once the shopper has one:
    /// then a second add from the cache is applied directly, without a handoff.
    fn cache_sends_cookie(&self) -> bool {
        self.engine == Engine::Chromium && self.third_party == ThirdPartyCookies::Allowed
    }
}

#[test]
fn chromium_with_third_party_cookies_blocked() {
    shop_in(SetUp {
        name: "Chromium, third-party cookies blocked",
        engine: Engine::Chromium,
        third_party: ThirdPartyCookies::Blocked,
        scheme: Scheme::Http,
        screenshot: "chromium-blocked-landed",
        docs: true,
    });
}

#[test]
fn chromium_with_third_party_cookies_allowed() {
    shop_in(SetUp {
        name: "Chromium, third-party cookies allowed",
        engine: Engine::Chromium,
        third_party: ThirdPartyCookies::Allowed,
        scheme: Scheme::Http,
        screenshot: "chromium-allowed-landed",
        docs: false,
    });
}

#[test]
fn firefox_with_total_cookie_protection() {
    shop_in(SetUp {
        name: "Firefox ESR",
        engine: Engine::Firefox,
        third_party: ThirdPartyCookies::Blocked,
        scheme: Scheme::Http,
        screenshot: "firefox-landed",
        docs: false,
    });
}

#[test]
fn webkit_with_itp_over_tls() {
    shop_in(SetUp {
        name: "WebKitGTK, ITP, https",
        engine: Engine::WebKit,
        third_party: ThirdPartyCookies::Blocked,
        scheme: Scheme::Https,
        screenshot: "webkit-landed",
        docs: false,
    });
}

/// Finds the engine and the runtime (or skips), takes the turn, starts the driver, the shop
/// and one browser session, and runs every scenario in it, in order.
fn shop_in(set_up: SetUp) {
    let Some(installed) = Installed::find(set_up.engine) else {
        return;
    };
    let Some(runtime) = amp_runtime() else {
        return;
    };
    let _turn = one_at_a_time();
    let started = Instant::now();
    note(&format!(
        "browser tests: {} with {}",
        set_up.name,
        installed.driver_version()
    ));
    run(LIMIT, async {
        let driver = Driver::start(&installed);
        let shop = start_shop(&runtime, set_up.scheme, &[]);
        let browser = open(&driver, set_up).await;
        let shopper = Shopper::new(browser, &shop);
        let viewer = ViewerServer::start().await;
        step(
            set_up,
            "add on the cache, land on the product page",
            ok(handoff_lands_on_the_product_page(&shopper, set_up)),
        )
        .await;
        step(
            set_up,
            "reload, Back and Forward add nothing",
            ok(reload_back_and_forward_add_nothing(&shopper)),
        )
        .await;
        step(
            set_up,
            "a second add from the cache joins the session",
            ok(second_add_from_the_cache_joins_the_session(
                &shopper, set_up,
            )),
        )
        .await;
        step(
            set_up,
            "the same-origin add needs no handoff",
            ok(same_origin_add_needs_no_handoff(&shopper)),
        )
        .await;
        step(
            set_up,
            "a urlencoded form (page query kept)",
            ok(urlencoded_form(&shopper)),
        )
        .await;
        step(
            set_up,
            "the page's query survives the handoff",
            ok(the_page_query_survives_the_handoff(&shopper)),
        )
        .await;
        step(
            set_up,
            "viewer iframe, submit without a click",
            blocked_navigation_then_the_link(&shopper, &viewer, Submit::Script),
        )
        .await;
        step(
            set_up,
            "viewer iframe, a real click",
            blocked_navigation_then_the_link(&shopper, &viewer, Submit::Click),
        )
        .await;
        shopper.close().await;
    });
    note(&format!(
        "browser tests: {} done in {:.2} s (driver, shop and browser start included)",
        set_up.name,
        started.elapsed().as_secs_f64()
    ));
    print_results();
}

/// Runs one scenario of a set-up: prints its duration and what it saw, and notes its short
/// result for the scenario × set-up table.
async fn step(set_up: SetUp, scenario: &str, body: impl Future<Output = (String, String)>) {
    let mut cell = String::new();
    scenario_saw(&format!("{}: {scenario}", set_up.name), async {
        let (short, saw) = body.await;
        cell = short;
        saw
    })
    .await;
    record_result(set_up.name, scenario, &cell);
}

/// A scenario whose result is a plain "ok" (it asserts one outcome in every set-up).
async fn ok(body: impl Future<Output = String>) -> (String, String) {
    ("ok".to_owned(), body.await)
}

async fn open(driver: &Driver, set_up: SetUp) -> Browser {
    let started = Instant::now();
    let browser = match set_up.engine {
        Engine::Chromium => driver.chromium(set_up.third_party).await,
        Engine::Firefox => driver.firefox().await,
        Engine::WebKit => driver.webkit().await,
    };
    note(&format!(
        "browser tests: {} is {:?} {}, session open in {:.2} s",
        set_up.name,
        set_up.engine,
        browser.version(),
        started.elapsed().as_secs_f64()
    ));
    browser
}

/// `/_stats.json` counters: (mints, handoffs completed, adds applied).
type Counts = (u64, u64, u64);

async fn counts(shopper: &Shopper<'_>) -> Counts {
    let s = shopper.stats().await;
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    (n("mints"), n("handoffs_completed"), n("adds"))
}

/// What happened since `before`.
async fn since(shopper: &Shopper<'_>, before: Counts) -> Counts {
    let now = counts(shopper).await;
    (now.0 - before.0, now.1 - before.1, now.2 - before.2)
}

/// `/cart.json` for `(product_id, quantity)` items, in order of first addition.
fn cart(items: &[(u32, u32)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(id, qty)| json!({"product_id": id, "quantity": qty}))
        .collect();
    json!({ "items": items })
}

/// A new shopper (no cookies) adds 2 kettles on the cache page: the browser withholds the
/// origin's cookie there (none exists yet), the layer mints a handoff, and the shopper lands
/// on the kettle's page on the origin, on a clean URL, which says what was added.
async fn handoff_lands_on_the_product_page(shopper: &Shopper<'_>, set_up: SetUp) -> String {
    let shop = shopper.shop;
    shopper.forget_cookies().await;
    let before = counts(shopper).await;
    shopper.open(&shop.cache_page_url("/products/3")).await;
    shopper.wait_for_amp_form().await;
    shopper.record_form_messages().await;
    let history_on_cache = shopper.history_length().await;
    if set_up.docs {
        docs_shot(shopper, "1-cache-page").await;
    }

    let landed = shopper.add_to_cart(2).await;
    // The product page, on the origin, with no token (or anything else) in the URL.
    assert_eq!(landed.as_str(), format!("{}/products/3", shop.origin_url()));
    // The handoff URL was a redirect step, not a page: no history entry of its own.
    assert_eq!(shopper.history_length().await, history_on_cache + 1);
    assert_eq!(shopper.redirect_count().await, 1);
    assert_eq!(
        shopper.text(".just-added").await.as_deref(),
        Some("Added 2 × Pour-over kettle to your cart.")
    );
    assert_eq!(
        shopper.text(".in-cart").await.as_deref(),
        Some("In your cart: 2 × Pour-over kettle.")
    );
    assert_eq!(shopper.cart_json().await, cart(&[(3, 2)]));
    assert_eq!(since(shopper, before).await, (1, 1, 1));
    let path = shopper.screenshot(set_up.screenshot).await;
    note(&format!("browser tests: screenshot {}", path.display()));
    if set_up.docs {
        docs_shot(shopper, "2-product-page-added").await;
    }
    format!("landed on {landed}")
}

/// After the first scenario: a reload of the landing page, Back to the cache page and
/// Forward again apply nothing; the cache page had said "Not added yet", not "added".
async fn reload_back_and_forward_add_nothing(shopper: &Shopper<'_>) -> String {
    let shop = shopper.shop;
    let product = format!("{}/products/3", shop.origin_url());
    let cache_page = shop.cache_page_url("/products/3");
    let before = counts(shopper).await;

    shopper.reload().await;
    assert_eq!(shopper.url().await.as_str(), product);
    // Said once: the reload shows the cart, not the add again.
    assert_eq!(shopper.text(".just-added").await, None);
    assert_eq!(
        shopper.text(".in-cart").await.as_deref(),
        Some("In your cart: 2 × Pour-over kettle.")
    );

    // Back leads to the cache page, not to the handoff URL.
    assert_eq!(shopper.back().await.as_str(), cache_page);
    assert_eq!(
        shopper.recorded_form_messages().await,
        ["Not added yet: this finishes on shop.localhost."],
        "what the cache page showed after the mint"
    );
    let forward = shopper.forward().await;
    assert_eq!(forward.as_str(), product);
    assert_eq!(shopper.cart_json().await, cart(&[(3, 2)]));
    // No entry anywhere back in this tab's history holds the token.
    let back_chain = shopper.back_to_the_start().await;
    for url in &back_chain {
        assert!(
            !url.as_str().contains("token=") && !url.path().starts_with("/_amp/"),
            "{url}"
        );
    }
    shopper.forward().await;
    assert_eq!(since(shopper, before).await, (0, 0, 0));
    format!(
        "history {}",
        back_chain
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(" <- ")
    )
}

/// The same shopper adds 3 tampers on the cache: through a second handoff where the browser
/// withholds the cookie on the cache page, directly where it sends it; either way into the
/// one session, and the cart page lists both products.
async fn second_add_from_the_cache_joins_the_session(
    shopper: &Shopper<'_>,
    set_up: SetUp,
) -> String {
    let shop = shopper.shop;
    shopper.open_origin("/cart").await;
    let session = shopper
        .session_cookie()
        .await
        .expect("the first handoff set the origin's session cookie");
    let before = counts(shopper).await;

    let cache_page = shop.cache_page_url("/products/7");
    shopper.open(&cache_page).await;
    shopper.wait_for_amp_form().await;
    let saw = if set_up.cache_sends_cookie() {
        let message = shopper.add_in_place(3).await;
        assert_eq!(message, "Added 3 × Tamper to your cart.");
        assert_eq!(since(shopper, before).await, (0, 0, 1));
        format!("stayed on {cache_page}, which says {message:?}")
    } else {
        let landed = shopper.add_to_cart(3).await;
        assert_eq!(landed.as_str(), format!("{}/products/7", shop.origin_url()));
        assert_eq!(
            shopper.text(".just-added").await.as_deref(),
            Some("Added 3 × Tamper to your cart.")
        );
        assert_eq!(since(shopper, before).await, (1, 1, 1));
        format!("landed on {landed}")
    };

    shopper.open_origin("/cart").await;
    assert_eq!(shopper.session_cookie().await, Some(session));
    assert_eq!(shopper.cart_json().await, cart(&[(3, 2), (7, 3)]));
    assert_eq!(
        shopper.cart_page_lines().await,
        ["2 × Pour-over kettle: €79.80", "3 × Tamper: €82.50"]
    );
    if set_up.docs {
        docs_shot(shopper, "3-cart").await;
    }
    saw
}

/// On the origin's own page the add is same-origin: applied directly, and the page stays,
/// showing the shop's own answer.
async fn same_origin_add_needs_no_handoff(shopper: &Shopper<'_>) -> String {
    let shop = shopper.shop;
    let page = format!("{}/products/8", shop.origin_url());
    shopper.open(&page).await;
    shopper.wait_for_amp_form().await;
    let session = shopper.session_cookie().await;
    let before = counts(shopper).await;

    let message = shopper.add_in_place(1).await;
    assert_eq!(message, "Added 1 × Scale to your cart.");
    assert_eq!(shopper.url().await.as_str(), page);
    assert_eq!(since(shopper, before).await, (0, 0, 1));
    assert_eq!(shopper.session_cookie().await, session);
    assert_eq!(shopper.cart_json().await, cart(&[(3, 2), (7, 3), (8, 1)]));
    format!("stayed on {page}, which says {message:?}")
}

/// A new shopper on a cache page whose form posts `application/x-www-form-urlencoded`: the
/// handoff carries that encoding and lands on the product page, its query included (the
/// form's `SOURCE_URL`).
async fn urlencoded_form(shopper: &Shopper<'_>) -> String {
    let shop = shopper.shop;
    shopper.forget_cookies().await;
    let before = counts(shopper).await;
    shopper
        .open(&shop.cache_page_url("/products/4?enctype=urlencoded"))
        .await;
    shopper.wait_for_amp_form().await;
    let enctype = shopper
        .eval("return document.querySelector('form').getAttribute('enctype')")
        .await;
    assert_eq!(enctype, json!("application/x-www-form-urlencoded"));

    let landed = shopper.add_to_cart(5).await;
    assert_eq!(
        landed.as_str(),
        format!("{}/products/4?enctype=urlencoded", shop.origin_url())
    );
    assert_eq!(
        shopper.text(".just-added").await.as_deref(),
        Some("Added 5 × Hand grinder to your cart.")
    );
    assert_eq!(shopper.cart_json().await, cart(&[(4, 5)]));
    assert_eq!(since(shopper, before).await, (1, 1, 1));
    format!("landed on {landed}")
}

/// A new shopper on a cache page whose URL has a query of its own and one of the AMP
/// runtime's (`usqp`, which Google's cache adds): the handoff lands on the product page with
/// the page's query, without the runtime's.
async fn the_page_query_survives_the_handoff(shopper: &Shopper<'_>) -> String {
    let shop = shopper.shop;
    shopper.forget_cookies().await;
    let before = counts(shopper).await;
    shopper
        .open(&shop.cache_page_url("/products/6?ref=newsletter&usqp=mq331AQ&colour=dark%20brown"))
        .await;
    shopper.wait_for_amp_form().await;
    let landed = shopper.add_to_cart(1).await;
    assert_eq!(
        landed.as_str(),
        format!(
            "{}/products/6?ref=newsletter&colour=dark%20brown",
            shop.origin_url()
        )
    );
    assert_eq!(
        shopper.text(".just-added").await.as_deref(),
        Some("Added 1 × Dripper to your cart.")
    );
    assert_eq!(shopper.cart_json().await, cart(&[(6, 1)]));
    assert_eq!(since(shopper, before).await, (1, 1, 1));
    format!("landed on {landed}")
}

/// How the cache page in the viewer's iframe is submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Submit {
    /// `form.requestSubmit()` from a script: no user activation, so every engine refuses the
    /// top-level navigation out of the sandboxed iframe.
    Script,
    /// The shopper's own click on "Add to cart". Whether the navigation after amp-form's fetch
    /// still counts as the shopper's differs by engine (WebKit refuses it).
    Click,
}

/// A new shopper sees the cache page inside another site's viewer, in an iframe sandboxed
/// with `allow-top-navigation-by-user-activation`, and adds 2 paper filters. When the browser
/// refuses amp-form's navigation, the page says the add is not done and shows the "Finish on
/// shop.localhost" link; nothing is applied until the shopper clicks it, and then the add
/// applies once (from the cache page's `Referer`, without a confirmation) and the shopper
/// lands on the product page. A reload adds nothing. When the browser navigates by itself,
/// the add applies once the same way.
async fn blocked_navigation_then_the_link(
    shopper: &Shopper<'_>,
    viewer: &ViewerServer,
    submit: Submit,
) -> (String, String) {
    let shop = shopper.shop;
    let product = format!("{}/products/5", shop.origin_url());
    shopper.forget_cookies().await;
    let before = counts(shopper).await;
    let in_viewer = viewer.showing(&shop.cache_page_url("/products/5"));
    shopper.open(&in_viewer).await;
    shopper.enter_frame().await;
    shopper.wait_for_amp_form().await;
    match submit {
        Submit::Script => shopper.submit_without_activation(2).await,
        Submit::Click => {
            // Typed in by script (WebKitWebDriver refuses to focus a field in the framed
            // page); the press itself is a real click.
            shopper
                .eval("document.querySelector('input[name=quantity]').value = '2'; return true")
                .await;
            shopper.click("form button[type=submit]").await;
        }
    }
    let navigated = navigated_or_blocked(shopper, &in_viewer).await;
    let how = if navigated {
        assert_eq!(
            submit,
            Submit::Click,
            "a navigation without user activation left the sandboxed iframe"
        );
        shopper.leave_frames().await;
        "navigated by itself"
    } else {
        assert_eq!(
            shopper.text("form .form-message").await.as_deref(),
            Some("Not added yet: this finishes on shop.localhost.")
        );
        // Minted, and nothing applied while the page stays.
        assert_eq!(since(shopper, before).await, (1, 0, 0));
        shopper.click("form a.finish").await;
        shopper.leave_frames().await;
        "blocked, then the link"
    };
    let landed = shopper.wait_until_not_at(&in_viewer).await;
    assert_eq!(landed.as_str(), product, "{how}");
    assert_eq!(
        shopper.text(".just-added").await.as_deref(),
        Some("Added 2 × Paper filters (100) to your cart."),
        "{how}"
    );
    assert_eq!(shopper.cart_json().await, cart(&[(5, 2)]), "{how}");
    assert_eq!(since(shopper, before).await, (1, 1, 1), "{how}");
    shopper.reload().await;
    assert_eq!(shopper.text(".just-added").await, None, "{how}");
    assert_eq!(shopper.cart_json().await, cart(&[(5, 2)]), "{how}");
    assert_eq!(since(shopper, before).await, (1, 1, 1), "{how}: reload");
    (
        format!("{how}; applied once"),
        format!("{how}, landed on {landed}"),
    )
}

/// After a submit in the viewer's iframe: `true` when the top window left the viewer,
/// `false` when the form shows its success template and the top window still shows the
/// viewer a moment later (the browser refused the navigation).
async fn navigated_or_blocked(shopper: &Shopper<'_>, in_viewer: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut shown_since: Option<Instant> = None;
    loop {
        if shopper.url().await.as_str() != in_viewer {
            return true;
        }
        if shown_since.is_none() && shopper.text("form a.finish").await.is_some() {
            shown_since = Some(Instant::now());
        }
        // amp-form navigates right after it rendered the template: give it a moment.
        if shown_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "neither a navigation nor the link after the submit; the form's class is {}",
            shopper
                .eval("const f = document.querySelector('form'); return f ? f.className : null")
                .await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A screenshot for README.md (written to the committed folder only with
/// `AMP_UPDATE_SCREENSHOTS=1`).
async fn docs_shot(shopper: &Shopper<'_>, name: &str) {
    if let Some(path) = shopper.screenshot_for_docs(name).await {
        note(&format!(
            "browser tests: README screenshot {}",
            path.display()
        ));
    }
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
    let Some(installed) = Installed::find(Engine::Chromium) else {
        return;
    };
    let _turn = one_at_a_time();
    run(LIMIT, async {
        let driver = Driver::start(&installed);
        let all: Vec<Case> = cases.iter().map(|(c, _)| c.clone()).collect();
        let server = StandInServer::start(&all).await;
        // Blocked third-party cookies, set explicitly: the cache copy's post carries none.
        let shopper = StandInShopper(driver.chromium(ThirdPartyCookies::Blocked).await);
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

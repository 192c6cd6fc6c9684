//! Attacks on a shopper, in real browsers, against the example shop: Chromium with
//! third-party cookies blocked, and Firefox ESR with its default (Total Cookie Protection).
//!
//! - A, forced action (issue 10): a page on another site (`evil.localhost`) sends the
//!   shopper's browser to a handoff link the attacker minted with a plain HTTP client, by
//!   script, by a clicked link, and by a clicked link without `Referer`. The cart must stay as
//!   it was and the shopper must see the confirmation page (route and fields); its Confirm
//!   button applies the change once. The shopper's own add on the cache page still applies
//!   straight away.
//! - B, cookie tossing (issue 11): a page on a subdomain of the shop (`evil.shop.localhost`)
//!   sets `amp_session=<attacker's choice>; Domain=shop.localhost`. The shopper's session and
//!   cart must be unaffected, no answer may be a 400, and the attacker's chosen ID must never
//!   become a session that sees the shopper's cart.
//!
//! Each engine gets one browser session for all scenarios. A scenario does not stop at the
//! first thing that is wrong: it records every finding, prints its outcome and duration, and
//! the test fails at the end with all findings (so a run against a vulnerable build shows
//! what each attack achieved). A missing browser or driver skips with a notice, unless
//! `CI=true`.

// (Both allow their own unused parts: each test crate uses some of them.)
mod browser_support;
mod support;

#[path = "browser_support/attacks.rs"]
mod attacks;

use std::time::{Duration, Instant};

use attacks::{
    cart_seen_with_cookie, click_the_bait, cookie_header, cookies, fetch_cart, form_state, items,
    mint_link, press_submit_of_form_to, seen, try_add_to_cart, wait_for_origin, wait_until_left,
    with_added, AttackerServer, Navigation, Seen, Until, SIBLING_HOST,
};
use browser_support::{
    note, one_at_a_time, run, Browser, Driver, Engine, Installed, ThirdPartyCookies,
};
use fantoccini::Client;
use support::ShopProcess;

/// The whole run of one engine, every scenario included.
const LIMIT: Duration = Duration::from_secs(240);

/// The IDs the attacker chooses: well-formed session IDs (22 base64url characters whose last
/// one has its low four bits clear), so a layer that accepts any well-formed ID takes them.
const CHOSEN_A: &str = "AttackerChosenSessionA";
const CHOSEN_Q: &str = "AttackerChosenSessionQ";
const CHOSEN_W: &str = "AttackerChosenSessionw";

/// What the sibling's `/toss` page sets (by index):
/// 0. the classic toss, for the whole shop;
/// 1. a second value on a longer path, sent first on `/cart` and `/cart/add`;
/// 2. the prefixed name, which browsers must refuse with a `Domain` attribute.
fn tosses() -> Vec<String> {
    vec![
        format!("amp_session={CHOSEN_A}; Domain=shop.localhost; Path=/"),
        format!("amp_session={CHOSEN_Q}; Domain=shop.localhost; Path=/cart"),
        format!("__Host-amp_session={CHOSEN_W}; Domain=shop.localhost; Path=/; Secure"),
    ]
}

/// The layer's handoff path (the shop keeps the default).
const HANDOFF_PATH: &str = "/_amp/handoff";

/// The session cookie names a shop may use (prefixed since issue 11, plain before).
const SESSION_COOKIES: [&str; 2] = ["__Host-amp_session", "amp_session"];

#[test]
fn chromium_with_third_party_cookies_blocked() {
    attack_with(Engine::Chromium);
}

#[test]
fn firefox_with_total_cookie_protection() {
    attack_with(Engine::Firefox);
}

/// What went wrong in a scenario; empty when it held.
#[derive(Debug, Default)]
struct Findings {
    scenario: String,
    problems: Vec<String>,
}

impl Findings {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }
}

/// The findings of every scenario of one engine.
#[derive(Debug, Default)]
struct Report {
    failed: Vec<Findings>,
}

impl Report {
    /// Runs one scenario, prints its outcome and duration, and keeps its findings.
    async fn scenario<F, Fut>(&mut self, name: String, body: F)
    where
        F: FnOnce(Findings) -> Fut,
        Fut: std::future::Future<Output = Findings>,
    {
        let start = Instant::now();
        let findings = body(Findings {
            scenario: name.clone(),
            problems: Vec::new(),
        })
        .await;
        let took = start.elapsed().as_secs_f64();
        if findings.problems.is_empty() {
            note(&format!("attack scenario {name}: ok in {took:.2} s"));
        } else {
            note(&format!(
                "attack scenario {name}: FAILED in {took:.2} s\n  - {}",
                findings.problems.join("\n  - ")
            ));
            self.failed.push(findings);
        }
    }

    fn assert_held(self) {
        if self.failed.is_empty() {
            return;
        }
        let all: Vec<String> = self
            .failed
            .iter()
            .map(|f| format!("{}:\n  - {}", f.scenario, f.problems.join("\n  - ")))
            .collect();
        panic!("attacks that got through:\n{}", all.join("\n"));
    }
}

/// One engine: the driver, one browser session, the shop and the attacker's server, then
/// every scenario in turn.
fn attack_with(engine: Engine) {
    let Some(installed) = Installed::find(engine) else {
        return;
    };
    let _turn = one_at_a_time();
    note(&format!(
        "browser attacks: {engine:?} with {}",
        installed.driver_version()
    ));
    run(LIMIT, async {
        let driver = Driver::start(&installed);
        let browser = open(&driver).await;
        // The shop's pages load its local stand-in for amp-form (no AMP CDN here).
        let shop = ShopProcess::start(&["--offline"]);
        let attacker = AttackerServer::start(&tosses()).await;
        let tab = Tab {
            engine,
            browser: &browser,
            shop: &shop,
            attacker: &attacker,
        };
        let mut report = Report::default();

        for (how, (product, quantity)) in
            Navigation::ALL.into_iter().zip([(4, 37), (8, 58), (9, 73)])
        {
            report
                .scenario(
                    format!("A forced action {} ({engine:?})", how.describe()),
                    |f| tab.forced_action(f, how, product, quantity),
                )
                .await;
        }
        report
            .scenario(
                format!("A the shopper's own add on the cache page ({engine:?})"),
                |f| tab.own_add_on_the_cache(f),
            )
            .await;
        report
            .scenario(
                format!("B cookie tossing on an existing cart ({engine:?})"),
                |f| tab.toss_on_an_existing_cart(f),
            )
            .await;
        report
            .scenario(
                format!("B cookie tossing before the first visit ({engine:?})"),
                |f| tab.toss_before_the_first_visit(f),
            )
            .await;

        drop(attacker);
        drop(shop);
        browser.close().await;
        report.assert_held();
    });
}

async fn open(driver: &Driver) -> Browser {
    let browser = match driver.engine() {
        Engine::Chromium => driver.chromium(ThirdPartyCookies::Blocked).await,
        Engine::Firefox => driver.firefox().await,
        // WebKit refuses `Secure` cookies over plain http; these attacks run on http names.
        other => panic!("no attack run for {other:?}"),
    };
    note(&format!(
        "browser attacks: {:?} {}",
        driver.engine(),
        browser.version()
    ));
    browser
}

/// The shopper's tab, and the servers around it.
struct Tab<'a> {
    engine: Engine,
    browser: &'a Browser,
    shop: &'a ShopProcess,
    attacker: &'a AttackerServer,
}

impl Tab<'_> {
    fn client(&self) -> &Client {
        self.browser.client()
    }

    async fn open(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn open_origin(&self, path: &str) -> Seen {
        self.open(&format!("{}{path}", self.shop.origin_url()))
            .await;
        seen(self.client()).await
    }

    /// Forgets every cookie the shop's host can see (the tossed `Domain=` ones included),
    /// so that a scenario starts as a new shopper.
    async fn forget_the_shop(&self) {
        // WebDriver deletes what the current page can see: a cookie tossed on `/cart` is
        // not visible on `/`. (Firefox does not delete from its JSON viewer: HTML pages.)
        for path in ["/", "/cart"] {
            self.open_origin(path).await;
            self.client()
                .delete_all_cookies()
                .await
                .expect("delete the cookies");
        }
        let left = cookies(self.client()).await;
        assert!(left.is_empty(), "cookies left after deleting: {left:?}");
    }

    /// The shopper's cart: fetched by the page itself (the browser's own cookies, as it
    /// sends them) on the shop's pages; on the handoff path (whose answers may forbid a
    /// page's own fetches) asked with a plain client and the cookies the browser holds.
    async fn cart_of_the_shopper(&self) -> Vec<(u64, u64)> {
        let url = self.client().current_url().await.expect("the current URL");
        if url.path() == HANDOFF_PATH {
            let cookie = cookie_header(self.client()).await;
            let (_, cart) = cart_seen_with_cookie(self.shop, &cookie).await;
            return items(&cart);
        }
        let (_, cart) = fetch_cart(self.client()).await;
        items(&cart)
    }

    /// The shopper puts something in the cart on the origin's own product page; true when
    /// the cart then holds it.
    async fn add_on_the_origin(&self, f: &mut Findings, product: u64, quantity: u32) -> bool {
        let page = self.open_origin(&format!("/products/{product}")).await;
        check_no_400(f, &page, "the product page");
        let cart_before = self.cart_of_the_shopper().await;
        let settled = try_add_to_cart(self.client(), quantity, Until::Settles).await;
        let now = seen(self.client()).await;
        check_no_400(f, &now, "after the add on the origin");
        let after = self.cart_of_the_shopper().await;
        let expected = with_added(&cart_before, product, u64::from(quantity));
        let ok = settled.is_some() && after == expected;
        f.check(ok, || {
            format!(
                "adding {quantity} of product {product} on the origin: cart {cart_before:?} -> {after:?}, wanted {expected:?}; the tab shows {}",
                now.summary()
            )
        });
        ok
    }

    /// A: the attacker sends the shopper's browser to a handoff link it minted itself.
    async fn forced_action(
        &self,
        mut f: Findings,
        how: Navigation,
        product: u64,
        quantity: u32,
    ) -> Findings {
        // A shopper with a cart (the first scenario puts product 2 in it).
        if how == Navigation::Script {
            self.forget_the_shop().await;
            self.add_on_the_origin(&mut f, 2, 1).await;
        }
        self.open_origin("/cart").await;
        let before = self.cart_of_the_shopper().await;
        f.check(!before.is_empty(), || {
            "the shopper's cart is empty before the attack".into()
        });

        let Some(link) = mint_link(self.shop, product as u32, quantity).await else {
            f.problems
                .push("the attacker's POST minted no handoff link".into());
            return f;
        };
        let handoff_path = url::Url::parse(&link)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let bait = self.attacker.page_url(how, &link);
        self.open(&bait).await;
        if how.is_click() {
            click_the_bait(self.client()).await;
        }
        let Some(_) = wait_for_origin(self.client(), &self.shop.origin_url()).await else {
            let now = seen(self.client()).await;
            f.problems.push(format!(
                "the browser never reached the shop: {}",
                now.summary()
            ));
            return f;
        };
        let shown = seen(self.client()).await;
        let after = self.cart_of_the_shopper().await;
        note(&format!(
            "  {:?} {}: the shopper sees {}; cart {before:?} -> {after:?}",
            self.engine,
            how.describe(),
            shown.summary()
        ));
        f.check(after == before, || {
            format!(
                "the attacker's link changed the cart without a click on Confirm: {before:?} -> {after:?}"
            )
        });
        check_no_400(&mut f, &shown, "the handoff link");
        if !shown.is_confirmation(&handoff_path) {
            f.problems.push(format!(
                "the shopper was not shown the confirmation page: {}",
                shown.summary()
            ));
            return f;
        }
        // The page says what would be sent: method, route, every field and its value.
        for word in [
            "POST".to_owned(),
            "/cart/add".to_owned(),
            "product_id".to_owned(),
            product.to_string(),
            "quantity".to_owned(),
            quantity.to_string(),
        ] {
            f.check(shown.text.contains(&word), || {
                format!(
                    "the confirmation page does not show {word:?}: {:?}",
                    shown.text
                )
            });
        }

        // Confirm: applied, once.
        let expected = with_added(&after, product, u64::from(quantity));
        let confirmed = self.confirm(&mut f, &handoff_path).await;
        if confirmed {
            let now = self.cart_of_the_shopper().await;
            f.check(now == expected, || {
                format!("Confirm did not apply the change once: {after:?} -> {now:?}, wanted {expected:?}")
            });
        }
        // Back to the link's page and Confirm again: nothing more is applied.
        if confirmed && how == Navigation::Script {
            self.client().back().await.expect("back");
            wait_for_origin(self.client(), &self.shop.origin_url()).await;
            let again = seen(self.client()).await;
            note(&format!(
                "  {:?} Back to the link after confirming: {}",
                self.engine,
                again.summary()
            ));
            if again.is_confirmation(&handoff_path) {
                self.confirm(&mut f, &handoff_path).await;
            }
            let now = self.cart_of_the_shopper().await;
            f.check(now == expected, || {
                format!("confirming the used link again changed the cart: {expected:?} -> {now:?}")
            });
        }
        f
    }

    /// Presses Confirm on the confirmation page; true when the tab moved on to a page of the
    /// shop that is not an error.
    async fn confirm(&self, f: &mut Findings, handoff_path: &str) -> bool {
        let page = self.client().current_url().await.expect("the current URL");
        if !press_submit_of_form_to(self.client(), handoff_path).await {
            f.problems.push(
                "the confirmation page has no Confirm button posting to the handoff path".into(),
            );
            return false;
        }
        let landed = wait_until_left(self.client(), &page).await;
        let now = seen(self.client()).await;
        note(&format!(
            "  {:?} after Confirm: {}",
            self.engine,
            now.summary()
        ));
        let on_shop = landed
            .as_ref()
            .is_some_and(|u| u.origin().ascii_serialization() == self.shop.origin_url());
        f.check(on_shop, || {
            format!(
                "Confirm did not lead to a page of the shop: {}",
                now.summary()
            )
        });
        check_no_400(f, &now, "after Confirm");
        on_shop
    }

    /// A: the legitimate flow in the same run: the shopper adds on the cache page, the
    /// browser follows the handoff and the add applies with no extra click.
    async fn own_add_on_the_cache(&self, mut f: Findings) -> Findings {
        self.open_origin("/cart").await;
        let before = self.cart_of_the_shopper().await;
        let stats_before = self.stats().await;
        let (landed, shown) = self.add_on_the_cache(6, 2).await;
        let stats_after = self.stats().await;
        // The browser withheld the cookie on the cache page: the add went through a
        // handoff (one more mint and completion), which applied without asking.
        let one_more =
            |name: &str| stats_after[name].as_u64() == stats_before[name].as_u64().map(|n| n + 1);
        f.check(one_more("mints") && one_more("handoffs_completed"), || {
            format!("the add on the cache did not go through one handoff: /_stats.json {stats_before} -> {stats_after}")
        });
        // On the shop, and not on the confirmation page: no extra click asked for.
        f.check(
            self.on_the_shop(landed.as_ref(), &shown) && !shown.is_confirmation(HANDOFF_PATH),
            || {
                format!(
                    "the add on the cache did not land on the shop: {}",
                    shown.summary()
                )
            },
        );
        check_no_400(&mut f, &shown, "the shopper's own handoff");
        if shown.url.origin().ascii_serialization() == self.shop.origin_url() {
            let after = self.cart_of_the_shopper().await;
            let expected = with_added(&before, 6, 2);
            f.check(after == expected, || {
                format!("the shopper's own add did not apply directly: {before:?} -> {after:?}, wanted {expected:?}")
            });
        }
        f
    }

    /// B: a shopper with a cart; the sibling tosses every cookie; the shopper goes on.
    async fn toss_on_an_existing_cart(&self, mut f: Findings) -> Findings {
        self.forget_the_shop().await;
        self.add_on_the_origin(&mut f, 3, 2).await;
        self.open_origin("/").await;
        let own = self.session_cookies().await;
        f.check(!own.is_empty(), || "the shop set no session cookie".into());
        let before = self.cart_of_the_shopper().await;

        self.toss(&[0, 1, 2]).await;
        // What the browser took: the `/cart` one only shows on `/cart`.
        self.open_origin("/cart").await;
        let on_cart = cookies(self.client()).await;
        self.open_origin("/").await;
        let held = cookies(self.client()).await;
        note(&format!(
            "  {:?} cookies for the shop after the toss: on / {held:?}; on /cart {on_cart:?}",
            self.engine
        ));
        f.check(own.iter().all(|c| held.contains(c)), || {
            format!("the shopper's own session cookie changed: {own:?} -> {held:?}")
        });

        // The shopper goes on: every page and fetch works, the cart is the same...
        for path in ["/", "/cart", "/products/5"] {
            let now = self.open_origin(path).await;
            check_no_400(&mut f, &now, path);
        }
        self.open_origin("/cart").await;
        let (status, cart) = fetch_cart(self.client()).await;
        f.check(status == 200, || {
            format!("the page's own fetch of /cart.json answered {status}: {cart}")
        });
        f.check(items(&cart) == before, || {
            format!("the cart changed after the toss: {before:?} -> {cart}")
        });

        // ...and grows as the shopper adds, on the origin and on the cache.
        let mut expected = before.clone();
        if self.add_on_the_origin(&mut f, 5, 1).await {
            expected = with_added(&expected, 5, 1);
        }
        let (landed, shown) = self.add_on_the_cache(7, 3).await;
        check_no_400(&mut f, &shown, "the add on the cache after the toss");
        if self.add_went_through(landed.as_ref(), &shown).await {
            expected = with_added(&expected, 7, 3);
        } else {
            f.problems.push(format!(
                "the add on the cache after the toss did not go through: {}",
                shown.summary()
            ));
        }
        self.open_origin("/cart").await;
        let (status, cart) = fetch_cart(self.client()).await;
        f.check(status == 200 && items(&cart) == expected, || {
            format!("after the adds, /cart.json answered {status} {cart}, wanted {expected:?}")
        });
        let now = self.session_cookies().await;
        f.check(now == own, || {
            format!("the shopper's session cookie changed while shopping: {own:?} -> {now:?}")
        });
        self.attacker_sees_nothing(&mut f, &expected).await;
        f
    }

    /// B: the sibling tosses its cookie before the shopper's first visit (fixation); the
    /// shopper then shops on the cache and on the origin.
    async fn toss_before_the_first_visit(&self, mut f: Findings) -> Findings {
        self.forget_the_shop().await;
        self.toss(&[0]).await;
        let (landed, shown) = self.add_on_the_cache(1, 4).await;
        check_no_400(&mut f, &shown, "the first add on the cache");
        let mut expected = Vec::new();
        if self.add_went_through(landed.as_ref(), &shown).await {
            expected = with_added(&expected, 1, 4);
        } else {
            f.problems.push(format!(
                "the first add on the cache did not go through: {}",
                shown.summary()
            ));
        }
        if self.add_on_the_origin(&mut f, 2, 1).await {
            expected = with_added(&expected, 2, 1);
        }
        self.open_origin("/cart").await;
        let (status, cart) = fetch_cart(self.client()).await;
        f.check(status == 200 && items(&cart) == expected, || {
            format!("/cart.json answered {status} {cart}, wanted {expected:?}")
        });
        let held = cookies(self.client()).await;
        note(&format!(
            "  {:?} cookies for the shop after shopping (on /cart): {held:?}",
            self.engine
        ));
        let own = self.session_cookies().await;
        f.check(!own.is_empty(), || {
            format!("the shopper has no session cookie of the shop's own: {held:?}")
        });
        self.attacker_sees_nothing(&mut f, &expected).await;
        f
    }

    /// Whether an add on the cache ended on a page of the shop that is not an error.
    fn on_the_shop(&self, landed: Option<&url::Url>, shown: &Seen) -> bool {
        landed.is_some_and(|u| u.origin().ascii_serialization() == self.shop.origin_url())
            && shown.status.is_none_or(|s| s < 400)
    }

    /// Whether an add on the cache went through: it landed on the shop (a handoff), or the
    /// browser sent the origin's cookie with the cache page's POST and the page shows the
    /// success (Firefox does after its first handoff there, see `add_on_the_cache`).
    async fn add_went_through(&self, landed: Option<&url::Url>, shown: &Seen) -> bool {
        let on_cache =
            landed.is_some_and(|u| u.origin().ascii_serialization() == self.shop.cache_url());
        self.on_the_shop(landed, shown)
            || (on_cache
                && form_state(self.client())
                    .await
                    .contains("amp-form-submit-success"))
    }

    /// `/_stats.json` of the shop (mints, completed handoffs, adds), asked directly.
    async fn stats(&self) -> serde_json::Value {
        self.shop.origin().get("/_stats.json").send().await.json()
    }

    /// Adds on the cache page of `product`; notes whether the browser sent the origin's
    /// cookie with the cache page's POST (applied there) or the add went through a handoff.
    async fn add_on_the_cache(&self, product: u64, quantity: u32) -> (Option<url::Url>, Seen) {
        let before = self.stats().await;
        self.open(&self.shop.cache_page_url(&format!("/products/{product}")))
            .await;
        let landed = try_add_to_cart(self.client(), quantity, Until::LeavesPage).await;
        let shown = seen(self.client()).await;
        let after = self.stats().await;
        let how = if after["mints"] == before["mints"] {
            "no handoff: the browser sent the origin's cookie with the cache page's POST"
        } else {
            "through a handoff"
        };
        note(&format!(
            "  {:?} add of product {product} on the cache: {how}; lands on {}",
            self.engine,
            shown.summary()
        ));
        (landed, shown)
    }

    /// Visits the sibling's page, which sets the tosses at `which`.
    async fn toss(&self, which: &[usize]) {
        self.open(&self.attacker.toss_url(which)).await;
        let on_sibling = seen(self.client()).await;
        assert!(
            on_sibling.text.contains(SIBLING_HOST),
            "the sibling's page: {}",
            on_sibling.summary()
        );
    }

    /// The session cookies the shop itself set (not the attacker's chosen values), as
    /// `(name, value, domain+path)`, seen from the current page.
    async fn session_cookies(&self) -> Vec<(String, String, String)> {
        cookies(self.client())
            .await
            .into_iter()
            .filter(|(name, value, _)| {
                SESSION_COOKIES.contains(&name.as_str()) && !value.starts_with("AttackerChosen")
            })
            .collect()
    }

    /// The attacker's curl, with each chosen ID under each session cookie name, does not see
    /// the shopper's cart (and is not refused with a 400 either).
    async fn attacker_sees_nothing(&self, f: &mut Findings, shoppers: &[(u64, u64)]) {
        for chosen in [CHOSEN_A, CHOSEN_Q, CHOSEN_W] {
            for name in SESSION_COOKIES {
                let cookie = format!("{name}={chosen}");
                let (status, cart) = cart_seen_with_cookie(self.shop, &cookie).await;
                let seen_items = items(&cart);
                f.check(shoppers.is_empty() || seen_items != shoppers, || {
                    format!("the attacker's curl with `{cookie}` reads the shopper's cart: {cart}")
                });
                f.check(status != 400, || {
                    format!("the attacker's curl with `{cookie}` got a 400: {cart}")
                });
            }
        }
    }
}

/// A page of the shop is never a 400 (as the conflicting-cookie refusal was).
fn check_no_400(f: &mut Findings, page: &Seen, what: &str) {
    f.check(
        page.status != Some(400) && !page.text.contains("conflicting session cookies"),
        || format!("{what}: the shop answered 400: {}", page.summary()),
    );
}

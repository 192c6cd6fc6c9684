//! The double-click lure (issue 19), in real browsers, against the example shop: Chromium
//! (third-party cookies blocked), Firefox ESR and WebKitGTK (over the shop's `--tls`: WebKit
//! keeps no `Secure` cookie over plain http).
//!
//! The attacker mints a handoff link with a plain HTTP client (no browser, no cookie), opens
//! it once in the shopper's browser to measure where "Apply this change" renders, and serves
//! a page on another site (`evil.localhost`) with a "Double-click here" button at exactly
//! that spot, whose press sends the tab to a fresh link. A real WebDriver double click there
//! (two pointer down/up pairs 50 to 600 ms apart, and two slow clicks 1.5 s apart) must
//! apply nothing: the second press lands beside the button (its offset changes per render),
//! on a button still disarmed, or is refused by the server. Since the offset alone would
//! make most lures miss, each spacing is tried with fresh links (up to 4) until the second
//! press lands at the button's spot, so the disarming is what the row shows. A deliberate
//! shopper (reads the page, moves the pointer, clicks) still applies the change exactly once.
//!
//! Prints the table `engine × clicks → applied / not applied` (markdown) to stderr, and
//! saves a screenshot of the confirmation page in the shop's words ("Add N × Product to your
//! cart?") to `target/screenshots/confirmation-described.png`. A missing browser or driver
//! skips with a notice, unless `CI=true`.

// (Both allow their own unused parts: each test crate uses some of them.)
mod browser_support;
mod support;

#[allow(dead_code, unused_imports)]
#[path = "browser_support/attacks.rs"]
mod attacks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attacks::{
    fetch_cart, items, mint_link, press_submit_of_form_to, seen, wait_for_origin, wait_until_left,
    with_added,
};
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use browser_support::{
    note, one_at_a_time, run, Browser, Driver, Engine, Installed, ThirdPartyCookies,
};
use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::Client;
use serde_json::Value;
use support::ShopProcess;
use tokio::task::JoinHandle;

/// All three engines, every case included.
const LIMIT: Duration = Duration::from_secs(200);

/// The layer's handoff path (the shop keeps the default).
const HANDOFF_PATH: &str = "/_amp/handoff";

/// Another site than the shop (`shop.localhost`).
const EVIL_SITE: &str = "evil.localhost";

/// The pause between the two presses of each lure; the last one is "two slow clicks".
const SPACINGS_MS: [u64; 6] = [50, 100, 250, 400, 600, 1500];

/// What every lure adds, if it got through (product 3, a quantity per case).
const LURED_PRODUCT: u32 = 3;
/// What the deliberate shopper adds.
const WANTED: (u32, u32) = (5, 2);

/// How long after the double click the test waits before reading the cart: a POST the
/// second press sent has been answered by then.
const SETTLE: Duration = Duration::from_millis(1000);

/// How often the attacker tries one spacing with a fresh link while the second press lands
/// beside the button (each render moves it by 0-9 em, so about one try in three hits).
const ATTEMPTS: u32 = 4;

/// Where the second press of a double click went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Press {
    /// Still on the attacker's page: the link had not loaded yet.
    OnTheLure,
    /// At the confirmation button's spot, and nothing happened (the button disabled, or
    /// disarmed by CSS). Where the page is, not proof the press was delivered: a driver may
    /// fail the action when the navigation interrupts it (its error is shown).
    Disarmed,
    /// On the button, which posted; the server refused it and showed the page again.
    Refused,
    /// On the confirmation page, beside the button (its per-render offset moved it).
    Beside,
    /// The tab was not on the confirmation page.
    Elsewhere,
}

impl Press {
    fn describe(self) -> &'static str {
        match self {
            Press::OnTheLure => "on the lure (the link was still loading)",
            Press::Disarmed => "at the button's spot, did nothing (disarmed)",
            Press::Refused => "on the button, refused by the server",
            Press::Beside => "beside the button (moved by the offset)",
            Press::Elsewhere => "not on the confirmation page",
        }
    }
}

#[test]
fn double_click_lure_applies_nothing_in_any_engine() {
    let _turn = one_at_a_time();
    run(LIMIT, async {
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for engine in [Engine::Chromium, Engine::Firefox, Engine::WebKit] {
            // Skips with a notice, or fails with `CI=true`.
            let Some(installed) = Installed::find(engine) else {
                continue;
            };
            lure_in(&installed, &mut rows, &mut problems).await;
        }
        note(&table(&rows));
        assert!(
            problems.is_empty(),
            "the lure or the deliberate shopper went wrong:\n  - {}",
            problems.join("\n  - ")
        );
    });
}

#[test]
fn chromium_screenshot_of_the_described_confirmation_page() {
    let Some(installed) = Installed::find(Engine::Chromium) else {
        return;
    };
    let _turn = one_at_a_time();
    run(Duration::from_secs(60), async {
        let driver = Driver::start(&installed);
        let browser = driver.chromium(ThirdPartyCookies::Blocked).await;
        let shop = ShopProcess::start(&["--offline"]);
        let link = mint_link(&shop, 5, 1).await.expect("a handoff link");
        let client = browser.client();
        client.goto(&link).await.expect("open the link");
        let shown = seen(client).await;
        assert!(
            shown.is_confirmation(HANDOFF_PATH),
            "not the confirmation page: {}",
            shown.summary()
        );
        let headline = client
            .execute("return document.querySelector('h1').innerText", vec![])
            .await
            .expect("the headline");
        let headline = headline.as_str().unwrap_or_default();
        assert!(
            headline.starts_with("Add 1 × ") && headline.ends_with(" to your cart?"),
            "the page is not in the shop's words: {headline:?}"
        );
        let path = screenshot(client, "confirmation-described").await;
        note(&format!(
            "browser lure: screenshot of the described confirmation page ({headline:?}): {}",
            path.display()
        ));
        drop(shop);
        browser.close().await;
    });
}

/// One row of the table.
struct Row {
    engine: Engine,
    clicks: String,
    applied: bool,
    /// Where the second press went, and what the tab showed after.
    saw: String,
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "\n| Engine | Clicks | Outcome | Second press | Tab after |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let (press, after) = row.saw.split_once(" | ").unwrap_or((&row.saw, ""));
        out.push_str(&format!(
            "| {:?} | {} | {} | {press} | {after} |\n",
            row.engine,
            row.clicks,
            if row.applied {
                "applied"
            } else {
                "not applied"
            }
        ));
    }
    out
}

/// One engine: its driver and one browser session, the shop, the attacker's server; the
/// measurement, every lure, then the deliberate shopper.
async fn lure_in(installed: &Installed, rows: &mut Vec<Row>, problems: &mut Vec<String>) {
    let engine = installed.engine;
    let driver = Driver::start(installed);
    let (browser, shop) = match engine {
        Engine::Chromium => (
            driver.chromium(ThirdPartyCookies::Blocked).await,
            ShopProcess::start(&["--offline"]),
        ),
        Engine::Firefox => (driver.firefox().await, ShopProcess::start(&["--offline"])),
        Engine::WebKit => (
            driver.webkit().await,
            ShopProcess::start(&["--offline", "--tls"]),
        ),
    };
    note(&format!(
        "browser lure: {engine:?} {} ({})",
        browser.version(),
        installed.driver_version()
    ));
    let attacker = LureServer::start().await;
    let tab = Tab {
        engine,
        client: browser.client(),
        shop: &shop,
        attacker: &attacker,
    };

    match tab.measure().await {
        Err(problem) => problems.push(format!("{engine:?}: {problem}")),
        Ok(spot) => {
            note(&format!(
                "browser lure: {engine:?} measured the button at ({}, {}) in a {}x{} viewport",
                spot.x, spot.y, spot.viewport.0, spot.viewport.1
            ));
            for (i, spacing) in SPACINGS_MS.into_iter().enumerate() {
                let row = tab.lure(&spot, spacing, 11 + i as u32).await;
                if row.applied {
                    problems.push(format!(
                        "{engine:?}: the lure with {} applied the change ({})",
                        row.clicks, row.saw
                    ));
                }
                rows.push(row);
            }
        }
    }
    let row = tab.deliberate().await;
    if !row.applied {
        problems.push(format!(
            "{engine:?}: the deliberate shopper's click was not applied once ({})",
            row.saw
        ));
    }
    rows.push(row);

    drop(attacker);
    drop(shop);
    close(browser).await;
}

async fn close(browser: Browser) {
    browser.close().await;
}

/// Where the attacker measured the button's centre, in viewport pixels.
struct Spot {
    x: i64,
    y: i64,
    viewport: (i64, i64),
}

struct Tab<'a> {
    engine: Engine,
    client: &'a Client,
    shop: &'a ShopProcess,
    attacker: &'a LureServer,
}

impl Tab<'_> {
    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{:?}: open {url}: {e}", self.engine));
    }

    /// The shopper's cart, fetched by the shop's own page (the browser's cookies).
    async fn cart(&self) -> Vec<(u64, u64)> {
        self.goto(&format!("{}/cart", self.shop.origin_url())).await;
        let (status, cart) = fetch_cart(self.client).await;
        assert_eq!(status, 200, "{:?}: /cart.json answered {cart}", self.engine);
        items(&cart)
    }

    async fn mint(&self, product: u32, quantity: u32) -> String {
        mint_link(self.shop, product, quantity)
            .await
            .expect("the attacker's POST mints a handoff link")
    }

    /// Opens a link once and reads where its button renders.
    async fn measure(&self) -> Result<Spot, String> {
        let link = self.mint(LURED_PRODUCT, 10).await;
        self.goto(&link).await;
        let shown = seen(self.client).await;
        if !shown.is_confirmation(HANDOFF_PATH) {
            return Err(format!(
                "the link did not show the confirmation page: {}",
                shown.summary()
            ));
        }
        let rect = button_rect(self.client)
            .await
            .ok_or("no button on the confirmation page")?;
        let spot = Spot {
            x: (rect.0 + rect.2 / 2.0).round() as i64,
            y: (rect.1 + rect.3 / 2.0).round() as i64,
            viewport: (rect.4 as i64, rect.5 as i64),
        };
        if spot.y >= spot.viewport.1 || spot.x >= spot.viewport.0 {
            return Err(format!(
                "the button renders outside the viewport: ({}, {}) in {:?}",
                spot.x, spot.y, spot.viewport
            ));
        }
        Ok(spot)
    }

    /// The lure at one spacing: the attacker's page, a real double click at the measured
    /// spot `spacing_ms` apart. A second press that lands beside the button (its offset
    /// moved it) proves only the offset; so the attacker tries again with a fresh link, up
    /// to [`ATTEMPTS`] times, until the second press reaches the button. The cart is read
    /// before the first attempt and after the last.
    async fn lure(&self, spot: &Spot, spacing_ms: u64, quantity: u32) -> Row {
        let clicks = if spacing_ms >= 1000 {
            format!("two slow clicks {:.1} s apart", spacing_ms as f64 / 1000.0)
        } else {
            format!("double click {spacing_ms} ms")
        };
        let before = self.cart().await;
        let mut press = Press::Beside;
        let mut tab_after = String::new();
        let mut attempt = 0;
        while attempt < ATTEMPTS && press == Press::Beside {
            attempt += 1;
            (press, tab_after) = self.double_click(spot, spacing_ms, quantity).await;
        }
        let after = self.cart().await;
        let tries = if attempt == 1 {
            String::new()
        } else {
            format!(" (attempt {attempt})")
        };
        let row = Row {
            engine: self.engine,
            clicks,
            applied: after != before,
            saw: format!("{}{tries} | {tab_after}", press.describe()),
        };
        note(&format!(
            "browser lure: {:?} {}: cart {before:?} -> {after:?}; {}",
            self.engine, row.clicks, row.saw
        ));
        row
    }

    /// One attempt: a fresh link behind the lure page, the double click, and where its
    /// second press went (with what the tab shows after).
    async fn double_click(&self, spot: &Spot, spacing_ms: u64, quantity: u32) -> (Press, String) {
        let link = self.mint(LURED_PRODUCT, quantity).await;
        let lure = self.attacker.next_id();
        self.goto(&self.attacker.page_url(lure, &link, spot)).await;
        let double_click = MouseActions::new("lure".into())
            .then(PointerAction::MoveTo {
                duration: None,
                x: spot.x as f64,
                y: spot.y as f64,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Pause {
                duration: Duration::from_millis(spacing_ms),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        let performed = self.client.perform_actions(double_click).await;
        let _ = self.client.release_actions().await;
        tokio::time::sleep(SETTLE).await;
        let (press, mut tab_after) = self.where_the_press_went(spot, lure).await;
        if let Err(e) = performed {
            let e: String = e.to_string().chars().take(90).collect();
            tab_after.push_str(&format!(" (the driver said: {e}…)"));
        }
        (press, tab_after)
    }

    /// After a double click: where its second press went, and what the tab shows.
    async fn where_the_press_went(&self, spot: &Spot, lure: u64) -> (Press, String) {
        let shown = seen(self.client).await;
        let status = shown.status.map_or("?".into(), |s| s.to_string());
        let tab = if shown.is_confirmation(HANDOFF_PATH) {
            format!("{status} confirmation page")
        } else {
            let host = shown.url.host_str().unwrap_or_default().to_owned();
            format!("{status} {host}{}", shown.url.path())
        };
        if self.attacker.presses(lure) >= 2 {
            return (Press::OnTheLure, tab);
        }
        if !shown.is_confirmation(HANDOFF_PATH) {
            return (Press::Elsewhere, tab);
        }
        if shown.text.contains("Please review the change") {
            // A new render (its button is elsewhere): the POST came and was refused.
            return (Press::Refused, format!("{tab} again"));
        }
        let on_button = button_rect(self.client).await.is_some_and(|r| {
            let (x, y) = (spot.x as f64, spot.y as f64);
            x >= r.0 && x <= r.0 + r.2 && y >= r.1 && y <= r.1 + r.3
        });
        let press = if on_button {
            Press::Disarmed
        } else {
            Press::Beside
        };
        (press, tab)
    }

    /// A deliberate shopper: opens the link, reads, moves the pointer, clicks the button.
    async fn deliberate(&self) -> Row {
        let (product, quantity) = WANTED;
        let before = self.cart().await;
        let link = self.mint(product, quantity).await;
        self.goto(&link).await;
        let page = self.client.current_url().await.expect("the current URL");
        let pressed = press_submit_of_form_to(self.client, HANDOFF_PATH).await;
        let landed = match pressed {
            true => wait_until_left(self.client, &page).await,
            false => None,
        };
        let shown = seen(self.client).await;
        let after = self.cart().await;
        let expected = with_added(&before, u64::from(product), u64::from(quantity));
        let row = Row {
            engine: self.engine,
            clicks: "deliberate shopper (reads, moves, clicks)".into(),
            applied: landed.is_some() && after == expected,
            saw: format!(
                "{} | {} {}",
                if pressed {
                    "on the button, armed"
                } else {
                    "no button"
                },
                shown.status.map_or("?".into(), |s| s.to_string()),
                shown.url.path()
            ),
        };
        note(&format!(
            "browser lure: {:?} deliberate shopper: cart {before:?} -> {after:?} (wanted {expected:?}); {}",
            self.engine,
            shown.summary()
        ));
        let _ = wait_for_origin(self.client, &self.shop.origin_url()).await;
        row
    }
}

/// `(left, top, width, height, innerWidth, innerHeight)` of the confirmation button.
async fn button_rect(client: &Client) -> Option<(f64, f64, f64, f64, f64, f64)> {
    let v = client
        .execute(
            "const b = document.getElementById('amp-apply');\n\
             if (!b) return null;\n\
             const r = b.getBoundingClientRect();\n\
             return [r.left, r.top, r.width, r.height, innerWidth, innerHeight];",
            vec![],
        )
        .await
        .ok()?;
    let n: Vec<f64> = v.as_array()?.iter().filter_map(Value::as_f64).collect();
    (n.len() == 6).then(|| (n[0], n[1], n[2], n[3], n[4], n[5]))
}

/// Saves a PNG of the viewport as `<target>/screenshots/<name>.png` (after two animation
/// frames: a page just loaded may not have painted yet).
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let _ = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\n\
             requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
            vec![],
        )
        .await;
    let png = client.screenshot().await.expect("a screenshot");
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps");
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

/// The attacker's lure page on [`EVIL_SITE`]: a "Double-click here" button centred on a
/// spot, whose first press sends the tab to the link. Every press is reported back
/// (`sendBeacon`), so the test knows whether the second one still landed on the lure.
#[derive(Debug)]
struct LureServer {
    port: u16,
    task: JoinHandle<()>,
    presses: Presses,
    next: AtomicU64,
}

/// Presses seen per lure page (its `id`).
type Presses = Arc<Mutex<HashMap<u64, u32>>>;

#[derive(Debug, serde::Deserialize)]
struct Lure {
    id: u64,
    to: String,
    x: i64,
    y: i64,
}

#[derive(Debug, serde::Deserialize)]
struct Pressed {
    id: u64,
}

impl LureServer {
    async fn start() -> LureServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let presses = Presses::default();
        let app = Router::new()
            .route("/lure", get(lure_page))
            .route("/pressed", post(pressed))
            .with_state(presses.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LureServer {
            port,
            task,
            presses,
            next: AtomicU64::new(0),
        }
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn page_url(&self, id: u64, link: &str, spot: &Spot) -> String {
        let to: String = form_urlencoded::byte_serialize(link.as_bytes()).collect();
        format!(
            "http://{EVIL_SITE}:{}/lure?id={id}&x={}&y={}&to={to}",
            self.port, spot.x, spot.y
        )
    }

    /// How many presses the lure page `id` reported.
    fn presses(&self, id: u64) -> u32 {
        let presses = self.presses.lock().unwrap_or_else(|p| p.into_inner());
        presses.get(&id).copied().unwrap_or(0)
    }
}

impl Drop for LureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pressed(State(presses): State<Presses>, Query(q): Query<Pressed>) {
    let mut presses = presses.lock().unwrap_or_else(|p| p.into_inner());
    *presses.entry(q.id).or_default() += 1;
}

/// The button is 240 × 60 px around the spot; the press that navigates is the first
/// `mousedown`, the earliest an attacker can start the navigation.
async fn lure_page(Query(q): Query<Lure>) -> Html<String> {
    // A JSON string is a JS string literal; `</` is split so it cannot end the script.
    let to = serde_json::to_string(&q.to)
        .unwrap_or_default()
        .replace("</", "<\\/");
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>You won</title>\
         <style>html,body{{margin:0}}#bait{{position:absolute;left:{left}px;top:{top}px;\
         width:240px;height:60px}}</style></head><body>\
         <button id=\"bait\">Double-click here for your prize</button>\
         <script>var sent=false;document.getElementById('bait').addEventListener('mousedown',\
         function(){{navigator.sendBeacon('/pressed?id={id}');\
         if(!sent){{sent=true;location.href={to}}}}});</script></body></html>\n",
        id = q.id,
        left = q.x - 120,
        top = q.y - 30,
    ))
}

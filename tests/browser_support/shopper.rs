//! A shopper in a real browser, against a running [`ShopProcess`]: the steps the scenarios in
//! `tests/browser.rs` are made of, and what they read back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::Value;
use url::Url;

use super::drivers::Browser;
use crate::support::{ShopProcess, SESSION_COOKIES};

/// How long a click may take to end up on another page (fetch, handoff, 303).
const NAVIGATION: Duration = Duration::from_secs(10);
/// How long the AMP runtime may take to set up a page's form after the page loaded.
const AMP_READY: Duration = Duration::from_secs(10);

/// Where [`Shopper::record_form_messages`] keeps what the form showed, in the page's own
/// `sessionStorage` (per origin and tab; it outlives the page when the tab navigates away).
const MESSAGES_KEY: &str = "tower-amp-session-test-form-messages";

/// The committed screenshots README.md shows, relative to the crate
/// ([`Shopper::screenshot_for_docs`]).
pub const DOCS_SCREENSHOTS: &str = "docs/screenshots";

/// A browser session shopping at one shop.
#[derive(Debug)]
pub struct Shopper<'a> {
    pub browser: Browser,
    pub shop: &'a ShopProcess,
}

impl<'a> Shopper<'a> {
    pub fn new(browser: Browser, shop: &'a ShopProcess) -> Self {
        Shopper { browser, shop }
    }

    fn client(&self) -> &Client {
        self.browser.client()
    }

    /// Opens a URL as a new navigation (a typed address), waiting for it to load.
    pub async fn open(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Opens `path` on the origin.
    pub async fn open_origin(&self, path: &str) {
        self.open(&format!("{}{path}", self.shop.origin_url()))
            .await;
    }

    /// Forgets the shop's cookies: a new shopper in the same browser. Opens the origin's home
    /// page (WebDriver deletes the cookies of the current document's site) and deletes them,
    /// until the browser no longer reports one (WebKit's cookie store may answer before its
    /// network process has caught up).
    pub async fn forget_cookies(&self) {
        self.open_origin("/").await;
        let deadline = Instant::now() + NAVIGATION;
        loop {
            self.client()
                .delete_all_cookies()
                .await
                .expect("delete the cookies");
            if self.session_cookie().await.is_none() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the session cookie is still there after deleting all cookies"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the AMP runtime has set up the page's form (amp-form marks it with the
    /// `i-amphtml-form` class): a click before that would be the browser's own submit.
    pub async fn wait_for_amp_form(&self) {
        let deadline = Instant::now() + AMP_READY;
        loop {
            let ready = self
                .eval("const f = document.querySelector('form'); return !!f && f.classList.contains('i-amphtml-form')")
                .await;
            if ready == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "amp-form did not set up the form of {} within {AMP_READY:?}: {}",
                self.url().await,
                self.eval("const f = document.querySelector('form'); return f ? f.outerHTML.slice(0, 400) : 'no form'").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// From now on until the page goes away, every text the form shows (its success or error
    /// template, rendered by amp-mustache) is also written to the page origin's
    /// `sessionStorage`, so that [`Shopper::recorded_form_messages`] can read it back after a
    /// navigation, e.g. the "Continuing on …" a cache page showed just before it left.
    pub async fn record_form_messages(&self) {
        self.eval(&format!(
            "const key = {key:?};\n\
             sessionStorage.setItem(key, '[]');\n\
             const seen = () => {{\n\
               const texts = Array.from(document.querySelectorAll('form .form-message'), e => e.textContent);\n\
               const all = JSON.parse(sessionStorage.getItem(key) || '[]');\n\
               for (const t of texts) if (!all.includes(t)) all.push(t);\n\
               sessionStorage.setItem(key, JSON.stringify(all));\n\
             }};\n\
             new MutationObserver(seen).observe(document.querySelector('form'), {{subtree: true, childList: true, characterData: true}});\n\
             return true;",
            key = MESSAGES_KEY
        ))
        .await;
    }

    /// What [`Shopper::record_form_messages`] recorded on the current page's origin.
    pub async fn recorded_form_messages(&self) -> Vec<String> {
        let raw = self
            .eval(&format!(
                "return sessionStorage.getItem({MESSAGES_KEY:?}) || '[]'"
            ))
            .await;
        serde_json::from_str(raw.as_str().unwrap_or("[]")).unwrap_or_default()
    }

    /// On a product page, sets the quantity and presses "Add to cart"; returns the URL the
    /// browser ends up on. The click only starts amp-form's fetch, so this waits until the page
    /// has been replaced and the new one has loaded.
    pub async fn add_to_cart(&self, quantity: u32) -> Url {
        let page = self.url().await;
        self.press_add(quantity).await;
        self.wait_until_not_at(page.as_str()).await
    }

    /// On a product page whose add is answered in place (no navigation): presses "Add to
    /// cart" and returns the message the form then shows. The page must not change.
    pub async fn add_in_place(&self, quantity: u32) -> String {
        let page = self.url().await;
        self.press_add(quantity).await;
        let deadline = Instant::now() + NAVIGATION;
        loop {
            if let Some(text) = self.text("form .form-message").await {
                assert_eq!(self.url().await, page, "the page stayed");
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no message on {page} after {NAVIGATION:?}; now on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let found = self.client().find(Locator::Css(css)).await.ok()?;
        found.text().await.ok().filter(|t| !t.is_empty())
    }

    /// On a product page: sets the quantity and submits the form from a script
    /// (`form.requestSubmit()`), with no user activation: no WebDriver click or key press, so
    /// the browser treats any navigation it starts as not the shopper's.
    pub async fn submit_without_activation(&self, quantity: u32) {
        self.eval(&format!(
            "const f = document.querySelector('form');\n\
             f.querySelector('input[name=quantity]').value = '{quantity}';\n\
             f.requestSubmit();\n\
             return true;"
        ))
        .await;
    }

    /// Enters the page's first iframe: from now on scripts and look-ups run in it.
    pub async fn enter_frame(&self) {
        self.client()
            .enter_frame(0)
            .await
            .expect("enter the iframe");
    }

    /// Back to the top-level document (also after the frame went away with a navigation).
    pub async fn leave_frames(&self) {
        let window = self.client().window().await.expect("the window handle");
        self.client()
            .switch_to_window(window)
            .await
            .expect("switch to the top-level document");
    }

    /// Waits until an element matching `css` is in the current document (or frame).
    pub async fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + NAVIGATION;
        while self.client().find(Locator::Css(css)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "no {css} on {} after {NAVIGATION:?}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element matching `css` (a real click: user activation).
    pub async fn click(&self, css: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Sets the quantity and presses "Add to cart" (real key presses and a real click).
    pub async fn press_add(&self, quantity: u32) {
        let field = self
            .client()
            .find(Locator::Css("input[name=quantity]"))
            .await
            .expect("the quantity field");
        field.clear().await.expect("clear the quantity");
        field
            .send_keys(&quantity.to_string())
            .await
            .expect("type the quantity");
        self.client()
            .find(Locator::Css("form button[type=submit]"))
            .await
            .expect("the Add to cart button")
            .click()
            .await
            .expect("press Add to cart");
    }

    /// Waits until the top-level page is no longer `url` and the new one has loaded.
    pub async fn wait_until_not_at(&self, url: &str) -> Url {
        let deadline = Instant::now() + NAVIGATION;
        loop {
            // Settled: the browser's URL is not `url`, and the document scripts run in is that
            // URL's, loaded. (Mid-redirect, WebKit may report the next URL while the old
            // document still answers scripts.)
            let now = self.url().await;
            if now.as_str() != url && self.loaded_document().await.as_deref() == Some(now.as_str())
            {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "still on {url} after {NAVIGATION:?}; the form says {:?}, its class is {}",
                self.text("form .form-message").await,
                self.eval(
                    "const f = document.querySelector('form'); return f ? f.className : null"
                )
                .await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL of the document scripts run in, once it has loaded (`None` before, or between
    /// two documents).
    async fn loaded_document(&self) -> Option<String> {
        let state = self
            .client()
            .execute(
                "return document.readyState === 'complete' ? location.href : null",
                vec![],
            )
            .await
            .ok()?;
        state.as_str().map(str::to_owned)
    }

    /// The top-level URL.
    pub async fn url(&self) -> Url {
        self.client().current_url().await.expect("the current URL")
    }

    /// Runs a script in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.client()
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("run {script:?}: {e}"))
    }

    /// `history.length` of the tab.
    pub async fn history_length(&self) -> u64 {
        self.eval("return history.length")
            .await
            .as_u64()
            .expect("history.length is a number")
    }

    /// How many redirects led to the current document (Navigation Timing; same-origin
    /// redirects are counted).
    pub async fn redirect_count(&self) -> u64 {
        self.eval("return performance.getEntriesByType('navigation')[0].redirectCount")
            .await
            .as_u64()
            .expect("redirectCount is a number")
    }

    /// Reloads the page, as the reload button does.
    pub async fn reload(&self) {
        self.client().refresh().await.expect("reload");
    }

    /// The Back button; returns the URL it led to.
    pub async fn back(&self) -> Url {
        self.client().back().await.expect("back");
        self.url().await
    }

    /// The Forward button; returns the URL it led to.
    pub async fn forward(&self) -> Url {
        self.client().forward().await.expect("forward");
        self.url().await
    }

    /// Presses Back until the tab's history has no earlier entry (the URL stops changing);
    /// returns every URL it passed.
    pub async fn back_to_the_start(&self) -> Vec<Url> {
        let mut seen = vec![self.url().await];
        for _ in 0..self.history_length().await {
            let url = self.back().await;
            if Some(&url) == seen.last() {
                break;
            }
            seen.push(url);
        }
        seen
    }

    /// `GET /cart.json` fetched by the page itself, with the browser's own cookies; the
    /// current page must be on the origin (so that the request is first-party).
    pub async fn cart_json(&self) -> Value {
        assert_eq!(
            self.url().await.origin().ascii_serialization(),
            self.shop.origin_url(),
            "cart_json needs a page on the origin"
        );
        let answer = self
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 fetch('/cart.json', {credentials: 'same-origin', cache: 'no-store'})\n\
                   .then(r => r.json()).then(done, e => done({fetch_error: String(e)}));",
                vec![],
            )
            .await
            .expect("fetch /cart.json in the page");
        assert!(answer.get("fetch_error").is_none(), "{answer}");
        answer
    }

    /// The cart lines on the current `/cart` page, e.g. `2 × Paper notebook: €7.00`.
    pub async fn cart_page_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for li in self
            .client()
            .find_all(Locator::Css("li"))
            .await
            .expect("list items")
        {
            lines.push(li.text().await.expect("item text"));
        }
        lines
    }

    /// The value of the origin's session cookie in this browser, whichever of
    /// [`SESSION_COOKIES`] it is named (WebDriver sees `HttpOnly` cookies); the current page
    /// must be on the origin.
    pub async fn session_cookie(&self) -> Option<String> {
        let cookies = self.client().get_all_cookies().await.ok()?;
        SESSION_COOKIES.iter().find_map(|name| {
            cookies
                .iter()
                .find(|c| c.name() == *name)
                .map(|c| c.value().to_owned())
        })
    }

    /// Saves a PNG of the viewport under `target/browser-screenshots/` and returns its path.
    /// Waits two animation frames first: right after a load, WebKit may not have painted yet.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let _ = self
            .client()
            .execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await;
        let png = self.client().screenshot().await.expect("a screenshot");
        let dir = target_dir().join("browser-screenshots");
        std::fs::create_dir_all(&dir).expect("create target/browser-screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// [`Shopper::screenshot`], and when `AMP_UPDATE_SCREENSHOTS=1` also a copy in the
    /// committed folder [`DOCS_SCREENSHOTS`] that README.md shows (off by default, so a test
    /// run never changes the tree). Returns the committed copy's path when it wrote one.
    pub async fn screenshot_for_docs(&self, name: &str) -> Option<PathBuf> {
        let shot = self.screenshot(name).await;
        if std::env::var("AMP_UPDATE_SCREENSHOTS").as_deref() != Ok("1") {
            return None;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOCS_SCREENSHOTS);
        std::fs::create_dir_all(&dir).expect("create the screenshots folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::copy(&shot, &path).expect("copy the screenshot");
        Some(path)
    }

    /// `/_stats.json` of the shop, asked directly (not through the browser).
    pub async fn stats(&self) -> Value {
        self.shop.origin().get("/_stats.json").send().await.json()
    }

    pub async fn close(self) {
        self.browser.close().await;
    }
}

/// The Cargo target directory this test binary was built in (`<target>/<profile>/deps/`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

//! A shopper in a real browser, against a running [`ShopProcess`]: the steps the scenarios in
//! `tests/browser.rs` are made of, and what they read back.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::Value;
use url::Url;

use super::drivers::Browser;
use crate::support::ShopProcess;

/// How long a click may take to end up on another page (fetch, handoff, 303).
const NAVIGATION: Duration = Duration::from_secs(10);

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

    /// On a product page, sets the quantity and presses "Add to cart"; returns the URL the
    /// browser ends up on. The click only starts amp-form's fetch, so this waits until the page
    /// has been replaced and the new one has loaded.
    pub async fn add_to_cart(&self, quantity: u32) -> Url {
        let page = self.url().await;
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
        self.wait_until_not_at(page.as_str()).await
    }

    /// Waits until the top-level page is no longer `url` and the new one has loaded.
    pub async fn wait_until_not_at(&self, url: &str) -> Url {
        let deadline = Instant::now() + NAVIGATION;
        loop {
            let now = self.url().await;
            if now.as_str() != url && self.ready_state().await == "complete" {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "still on {url} after {NAVIGATION:?}; the stand-in logged {}",
                self.eval("return JSON.stringify(window.__ampFormLog || null)")
                    .await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ready_state(&self) -> String {
        // Between two documents the script may fail: not ready yet.
        match self
            .client()
            .execute("return document.readyState", vec![])
            .await
        {
            Ok(Value::String(s)) => s,
            _ => String::new(),
        }
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

    /// The value of the origin's session cookie in this browser (WebDriver sees `HttpOnly`
    /// cookies); the current page must be on the origin.
    pub async fn session_cookie(&self) -> Option<String> {
        match self.client().get_named_cookie("__Host-amp_session").await {
            Ok(cookie) => Some(cookie.value().to_owned()),
            Err(_) => None,
        }
    }

    /// Saves a PNG of the viewport under `target/browser-screenshots/` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("a screenshot");
        let dir = target_dir().join("browser-screenshots");
        std::fs::create_dir_all(&dir).expect("create target/browser-screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
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

//! What an attacker brings to `tests/browser_attacks.rs`: pages on sites the attacker controls
//! (served by a tiny axum server inside the test), a handoff link minted without a browser,
//! and what the test reads back from the shopper's browser (page text, document status,
//! cookies).
//!
//! One port, two names (`*.localhost` resolves to loopback in the browsers):
//! - [`EVIL_SITE`]: another site than the shop (`shop.localhost`), whose pages send the
//!   shopper's browser to a handoff link ([`Navigation`]);
//! - [`SIBLING_HOST`]: a subdomain of the shop's own host, whose page tosses cookies with
//!   `Domain=shop.localhost` ([`AttackerServer::toss_url`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fantoccini::{Client, Locator};
use serde_json::Value;
use tokio::task::JoinHandle;
use url::Url;

use crate::support::ShopProcess;

/// Another site: `evil.localhost` and `shop.localhost` share no registrable domain.
pub const EVIL_SITE: &str = "evil.localhost";
/// A sibling of the shop: a subdomain of `shop.localhost`, so `Domain=shop.localhost` is a
/// cookie it may set (the classic toss).
pub const SIBLING_HOST: &str = "evil.shop.localhost";

/// How another site's page sends the shopper's browser to the handoff link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Navigation {
    /// `location = link` from a script, as soon as the page loads (no click).
    Script,
    /// A link the shopper clicks (`Sec-Fetch-User: ?1`, the attacker's `Referer`).
    Link,
    /// The same link with `referrerpolicy="no-referrer"`: no `Referer` at all.
    LinkWithoutReferrer,
}

impl Navigation {
    pub const ALL: [Navigation; 3] = [
        Navigation::Script,
        Navigation::Link,
        Navigation::LinkWithoutReferrer,
    ];

    fn path(self) -> &'static str {
        match self {
            Navigation::Script => "/script",
            Navigation::Link => "/link",
            Navigation::LinkWithoutReferrer => "/link-no-referrer",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Navigation::Script => "by script (location = link)",
            Navigation::Link => "by a clicked link",
            Navigation::LinkWithoutReferrer => "by a clicked link, referrerpolicy=no-referrer",
        }
    }

    /// Whether the shopper has to click the attacker's link.
    pub fn is_click(self) -> bool {
        self != Navigation::Script
    }
}

#[derive(Debug)]
struct Shared {
    /// `Set-Cookie` values the sibling's `/toss` page can answer with.
    tosses: Vec<String>,
}

/// Which of the tosses a visit of `/toss` sets: `?only=0,2`; all of them without `only`.
#[derive(Debug, serde::Deserialize)]
struct Only {
    only: Option<String>,
}

/// The attacker's server on a free loopback port; stops when dropped.
#[derive(Debug)]
pub struct AttackerServer {
    port: u16,
    task: JoinHandle<()>,
}

impl AttackerServer {
    /// Serves the attacker's pages (inside the current tokio runtime). `tosses` are the
    /// `Set-Cookie` values of [`SIBLING_HOST`]'s `/toss` page.
    pub async fn start(tosses: &[String]) -> AttackerServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared {
            tosses: tosses.to_vec(),
        });
        let app = Router::new()
            .route(Navigation::Script.path(), get(script_page))
            .route(Navigation::Link.path(), get(link_page))
            .route(
                Navigation::LinkWithoutReferrer.path(),
                get(link_without_referrer_page),
            )
            .route("/toss", get(toss_page))
            .with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        AttackerServer { port, task }
    }

    /// `http://<host>:PORT`.
    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}", self.port)
    }

    /// The attacker's page on [`EVIL_SITE`] that sends the browser to `link` by `how`.
    pub fn page_url(&self, how: Navigation, link: &str) -> String {
        let to: String = form_urlencoded::byte_serialize(link.as_bytes()).collect();
        format!("{}{}?to={to}", self.url(EVIL_SITE), how.path())
    }

    /// The sibling's page that tosses the cookies given to [`AttackerServer::start`] at
    /// these indices.
    pub fn toss_url(&self, which: &[usize]) -> String {
        let only: Vec<String> = which.iter().map(usize::to_string).collect();
        format!("{}/toss?only={}", self.url(SIBLING_HOST), only.join(","))
    }
}

impl Drop for AttackerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, serde::Deserialize)]
struct To {
    to: String,
}

/// `&`, `<`, `>`, `"` and `'` as entities, for text and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title></head><body>{body}</body></html>\n"
    ))
}

async fn script_page(Query(q): Query<To>) -> Html<String> {
    // A JSON string is a JS string literal; `</` is split so it cannot end the script.
    let literal = serde_json::to_string(&q.to)
        .unwrap_or_default()
        .replace("</", "<\\/");
    page(
        "You won",
        &format!("<p>Loading your prize…</p><script>location = {literal};</script>"),
    )
}

fn link(to: &str, extra: &str) -> Html<String> {
    page(
        "You won",
        &format!(
            "<p><a id=\"go\" href=\"{}\"{extra}>Claim your prize</a></p>",
            escape(to)
        ),
    )
}

async fn link_page(Query(q): Query<To>) -> Html<String> {
    link(&q.to, "")
}

async fn link_without_referrer_page(Query(q): Query<To>) -> Html<String> {
    link(&q.to, " referrerpolicy=\"no-referrer\"")
}

/// The sibling's page: the tossed cookies come with the answer's `Set-Cookie` headers.
async fn toss_page(
    State(shared): State<Arc<Shared>>,
    Query(only): Query<Only>,
    headers: HeaderMap,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut res = page(
        "Tossed",
        &format!("<p id=\"tossed\">cookies tossed from {}</p>", escape(&host)),
    )
    .into_response();
    let chosen: Option<Vec<usize>> = only
        .only
        .map(|list| list.split(',').filter_map(|i| i.parse().ok()).collect());
    for (i, cookie) in shared.tosses.iter().enumerate() {
        if chosen.as_ref().is_some_and(|c| !c.contains(&i)) {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// Mints a handoff link the way issue 10 did: a plain HTTP client posts the add to the
/// origin with the cache's `Origin` and no cookie; the layer answers with `AMP-Redirect-To`.
/// `None` when the layer minted nothing (the answer is printed).
pub async fn mint_link(shop: &ShopProcess, product_id: u32, quantity: u32) -> Option<String> {
    let source: String = form_urlencoded::byte_serialize(shop.origin_url().as_bytes()).collect();
    let reply = shop
        .origin()
        .post(&format!("/cart/add?__amp_source_origin={source}"))
        .header("Origin", &shop.cache_url())
        .header("Accept", "application/json")
        .urlencoded(&format!("product_id={product_id}&quantity={quantity}"))
        .send()
        .await;
    let link = reply.header("amp-redirect-to").map(str::to_owned);
    if link.is_none() {
        crate::browser_support::note(&format!(
            "attacks: the mint answered {} without AMP-Redirect-To: {}",
            reply.status, reply.body
        ));
    }
    link
}

/// `GET /cart.json` as the attacker's curl sends it: with `cookie` and nothing else.
pub async fn cart_seen_with_cookie(shop: &ShopProcess, cookie: &str) -> (u16, Value) {
    let reply = shop
        .origin()
        .get("/cart.json")
        .header("Cookie", cookie)
        .send()
        .await;
    let json = serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body.clone()));
    (reply.status.as_u16(), json)
}

/// What the shopper's tab shows: where it is and what the page says.
#[derive(Debug, Clone)]
pub struct Seen {
    pub url: Url,
    /// The document's HTTP status (Navigation Timing `responseStatus`), when the browser
    /// reports it.
    pub status: Option<u64>,
    /// `document.body.innerText`.
    pub text: String,
}

impl Seen {
    /// Whether this is the handoff path with a form that posts back to it (the
    /// confirmation page).
    pub fn is_confirmation(&self, handoff_path: &str) -> bool {
        self.url.path() == handoff_path && self.text.contains("Apply this change")
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let text: String = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = text.chars().take(160).collect();
        format!(
            "{} {} [{}{}]",
            self.status.map_or("?".into(), |s| s.to_string()),
            self.url,
            short,
            if text.chars().count() > 160 {
                "…"
            } else {
                ""
            }
        )
    }
}

/// Reads what the tab shows now.
pub async fn seen(client: &Client) -> Seen {
    let url = client.current_url().await.expect("the current URL");
    let answer = client
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];\n\
             return {status: nav && nav.responseStatus ? nav.responseStatus : null,\n\
                     text: document.body ? document.body.innerText : ''};",
            vec![],
        )
        .await
        .unwrap_or(Value::Null);
    Seen {
        url,
        status: answer["status"].as_u64(),
        text: answer["text"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Waits until the tab is on `origin` (`http://host:port`) and that page has loaded;
/// `None` after 10 s.
pub async fn wait_for_origin(client: &Client, origin: &str) -> Option<Url> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(url) = client.current_url().await {
            if url.origin().ascii_serialization() == origin {
                let ready = client
                    .execute("return document.readyState", vec![])
                    .await
                    .ok();
                if ready.as_ref().and_then(Value::as_str) == Some("complete") {
                    return Some(url);
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Presses the first submit button of the page's first form whose `action` ends in
/// `path`; returns whether there was one.
pub async fn press_submit_of_form_to(client: &Client, path: &str) -> bool {
    let css = format!(
        "form[action$=\"{path}\"] button[type=submit], form[action$=\"{path}\"] input[type=submit]"
    );
    match client.find(Locator::Css(&css)).await {
        Ok(button) => {
            // A deliberate shopper: reads the page past the confirmation delay (1 s), moves
            // the pointer over the button (two positions: the page arms it only then), and
            // clicks.
            use fantoccini::actions::{InputSource, MouseActions, PointerAction};
            tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
            let moves = MouseActions::new("shopper".into())
                .then(PointerAction::MoveToElement {
                    element: button.clone(),
                    duration: Some(std::time::Duration::from_millis(100)),
                    x: -5.0,
                    y: 0.0,
                })
                .then(PointerAction::MoveToElement {
                    element: button.clone(),
                    duration: Some(std::time::Duration::from_millis(100)),
                    x: 0.0,
                    y: 0.0,
                });
            let _ = client.perform_actions(moves).await;
            // The script arms the button on its next tick (every 100 ms).
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            button.click().await.expect("press the button");
            true
        }
        Err(_) => false,
    }
}

/// Clicks the attacker's link (`#go`).
pub async fn click_the_bait(client: &Client) {
    client
        .find(Locator::Css("a#go"))
        .await
        .expect("the attacker's link")
        .click()
        .await
        .expect("click the attacker's link");
}

/// `GET /cart.json` fetched by the page itself (first-party, the browser's own cookies):
/// `(status, body)`; the tab must be on the origin.
pub async fn fetch_cart(client: &Client) -> (u64, Value) {
    let answer = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\n\
             fetch('/cart.json', {credentials: 'same-origin', cache: 'no-store'})\n\
               .then(r => r.text().then(t => done({status: r.status, body: t})),\n\
                     e => done({status: 0, body: String(e)}));",
            vec![],
        )
        .await
        .expect("fetch /cart.json in the page");
    let status = answer["status"].as_u64().unwrap_or(0);
    let body = answer["body"].as_str().unwrap_or_default();
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (status, json)
}

/// The cookies the browser holds for the current page's URL, as `name=value (domain, path)`,
/// `HttpOnly` ones included (WebDriver sees them).
pub async fn cookies(client: &Client) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = client
        .get_all_cookies()
        .await
        .expect("the cookies")
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.value().to_owned(),
                format!(
                    "{}{}",
                    c.domain().unwrap_or("(host)"),
                    c.path().unwrap_or("/")
                ),
            )
        })
        .collect();
    out.sort();
    out
}

/// The items of a `/cart.json` answer as `(product_id, quantity)`.
pub fn items(cart: &Value) -> Vec<(u64, u64)> {
    cart["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i["product_id"].as_u64().unwrap_or(0),
                        i["quantity"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `items` plus `quantity` of `product_id` (merged into its line when the cart has one).
pub fn with_added(items: &[(u64, u64)], product_id: u64, quantity: u64) -> Vec<(u64, u64)> {
    let mut out = items.to_vec();
    match out.iter_mut().find(|(id, _)| *id == product_id) {
        Some((_, q)) => *q += quantity,
        None => out.push((product_id, quantity)),
    }
    out
}

/// When an add to the cart counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The tab left the page (the cache page follows `AMP-Redirect-To` to the origin), or
    /// the form showed its error.
    LeavesPage,
    /// The tab left the page, or the form showed its success or its error (the origin's own
    /// page may stay and show what was added).
    Settles,
}

/// On a product page: sets the quantity and presses "Add to cart", then waits (up to 10 s)
/// until the add is done as `until` says. Returns the tab's URL then; `None` when the page
/// had no form (an error page) or nothing happened in time.
pub async fn try_add_to_cart(client: &Client, quantity: u32, until: Until) -> Option<Url> {
    let page = client.current_url().await.expect("the current URL");
    // No form (an error page instead of the product): nothing to press.
    let field = client
        .find(Locator::Css("input[name=quantity]"))
        .await
        .ok()?;
    field.clear().await.expect("clear the quantity");
    field
        .send_keys(&quantity.to_string())
        .await
        .expect("type the quantity");
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .expect("the Add to cart button")
        .click()
        .await
        .expect("press Add to cart");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Between two documents the script may fail: not there yet.
        // The shop's offline stand-in for amp-form logs `done` when it has handled the
        // answer, after `redirect` when it is about to navigate.
        let state = client
            .execute(
                "const form = document.querySelector('form');\n\
                 const log = (window.__ampFormLog || []).map(e => e.type);\n\
                 return {ready: document.readyState, form: form ? form.className : '',\n\
                         stays: log.includes('done') && !log.includes('redirect')};",
                vec![],
            )
            .await
            .unwrap_or(Value::Null);
        if let Ok(url) = client.current_url().await {
            let ready = state["ready"] == "complete";
            let class = state["form"].as_str().unwrap_or_default();
            let left = url != page && ready;
            let stays = url == page && state["stays"] == true;
            let failed = url == page && class.contains("amp-form-submit-error");
            let succeeded = url == page && class.contains("amp-form-submit-success");
            if left || stays || failed || (until == Until::Settles && succeeded) {
                return Some(url);
            }
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (up to 10 s) until the tab is no longer at `page` and the new document loaded.
pub async fn wait_until_left(client: &Client, page: &Url) -> Option<Url> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(url) = client.current_url().await {
            let ready = client
                .execute("return document.readyState", vec![])
                .await
                .ok();
            if &url != page && ready.as_ref().and_then(Value::as_str) == Some("complete") {
                return Some(url);
            }
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `Cookie` header with every cookie the browser holds for the current page, as the
/// browser would send it to that page.
pub async fn cookie_header(client: &Client) -> String {
    cookies(client)
        .await
        .iter()
        .map(|(name, value, _)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The class of the page's first form (`amp-form-submit-success`, ...); empty without one.
pub async fn form_state(client: &Client) -> String {
    client
        .execute(
            "const form = document.querySelector('form'); return form ? form.className : '';",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

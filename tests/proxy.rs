//! Behind a real proxy: Debian's nginx terminating TLS with HTTP/2 in front of the shop, run
//! with the configuration of `src/docs/proxy.md` (read from the guide, see
//! `tests/support/nginx.rs`).
//!
//! | test | what it shows |
//! |---|---|
//! | `nginx_passes_what_the_layer_reads_unchanged` | `Origin`, `Referer`, `Sec-Fetch-*`, `Cookie` arrive byte for byte, `Host` with its port, `X-Forwarded-Proto: https`; `Set-Cookie` comes back |
//! | `a_handoff_completes_through_nginx_over_http2` | mint on the cache, complete on the origin, the cart: all over HTTP/2 through nginx |
//! | `chromium_blocked_through_nginx` | the browser suite's cache → origin flow, real AMP runtime, third-party cookies blocked |
//! | `firefox_through_nginx` | the same in Firefox ESR (Total Cookie Protection) |
//!
//! Without nginx (or a browser, or the runtime) a test prints a notice and passes, unless
//! `CI=true`, where it fails. nginx, the shop and the browsers run on free loopback ports and
//! are stopped on drop, also when a test fails.

mod browser_support;
mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use browser_support::{
    amp_runtime, note, one_at_a_time, run, scenario_saw, Driver, Engine, Installed, Shopper,
    ThirdPartyCookies,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use serde_json::{json, Value};
use support::h2::H2;
use support::http::pem_certificate;
use support::nginx::{self, Nginx, Upstreams};
use support::ports::free_ports;
use support::{ShopProcess, CACHE_HOST, ORIGIN_HOST};

const LIMIT: Duration = Duration::from_secs(120);
const ANSWER: Duration = Duration::from_secs(10);

/// nginx in front of one shop instance (listening on two fresh ports), plus `extra_args`.
fn proxied_shop(binary: &std::path::Path, extra_args: &[&str]) -> (Nginx, ShopProcess) {
    let [origin, cache] = free_ports::<2>();
    let upstreams = Upstreams {
        origin: vec![origin],
        cache: vec![cache],
    };
    let nginx = Nginx::start(binary, &upstreams);
    let shop = ShopProcess::start_behind_proxy(
        (nginx.origin_port, nginx.cache_port),
        (origin, cache),
        &nginx.certificate.cert_pem,
        extra_args,
        &[],
    );
    (nginx, shop)
}

async fn h2_to_origin(nginx: &Nginx) -> H2 {
    let cert = pem_certificate(&nginx.certificate.cert_pem).expect("the certificate");
    H2::connect(
        nginx.origin_port,
        &format!("{ORIGIN_HOST}:{}", nginx.origin_port),
        &cert,
    )
    .await
    .expect("an HTTP/2 connection to nginx")
}

// ---------------------------------------------------------------------------------------------
// What nginx passes on

/// An upstream that answers every request with the headers it received, as JSON pairs, and
/// sets two cookies.
async fn echo_upstream(listener: tokio::net::TcpListener) {
    let app = tower::service_fn(|req: Request| async move {
        let headers: Vec<Value> = req
            .headers()
            .iter()
            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
            .collect();
        let res = Response::builder()
            .header("content-type", "application/json")
            .header("set-cookie", "a=1; Path=/; Secure; HttpOnly")
            .header("set-cookie", "b=2; Path=/; Secure")
            .body(axum::body::Body::from(Value::Array(headers).to_string()))
            .expect("an answer");
        Ok::<_, Infallible>(res)
    });
    let _ = axum::serve(listener, tower::make::Shared::new(app)).await;
}

#[test]
fn nginx_passes_what_the_layer_reads_unchanged() {
    let Some(binary) = nginx::find() else { return };
    run(LIMIT, async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(echo_upstream(listener));
        let nginx = Nginx::start(
            &binary,
            &Upstreams {
                origin: vec![port],
                cache: vec![port],
            },
        );
        let h2 = h2_to_origin(&nginx).await;
        let authority = format!("{ORIGIN_HOST}:{}", nginx.origin_port);
        let cache_page = format!(
            "https://{CACHE_HOST}:{}/c/s/{authority}/products/3?color=red",
            nginx.cache_port
        );
        // What a browser sends on the handoff navigation and on a cache page's post, with
        // odd but valid spellings a proxy must not normalise.
        let sent: &[(&str, &str)] = &[
            ("origin", "https://shop-localhost.cache.localhost:8444"),
            ("referer", &cache_page),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
            ("sec-fetch-user", "?1"),
            (
                "cookie",
                "__Host-amp_session=AbC-123_x; other=\"quoted value\"",
            ),
            ("amp-same-origin", "true"),
        ];
        for method in ["GET", "POST"] {
            let mut req = h2.request(method, "/_amp/handoff?t=abc&x=%2F");
            for (name, value) in sent {
                req = req.header(*name, *value);
            }
            let reply = h2
                .send(req.body(Full::new(Bytes::new())).unwrap(), ANSWER)
                .await
                .unwrap_or_else(|e| panic!("{method} through nginx: {e:?}"));
            assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.body);
            let got: Vec<(String, String)> = serde_json::from_str(&reply.body).unwrap();
            let one = |name: &str| -> Vec<&str> {
                got.iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .collect()
            };
            for (name, value) in sent {
                assert_eq!(one(name), [*value], "{method}: {name} as sent");
            }
            assert_eq!(
                one("host"),
                [authority.as_str()],
                "{method}: Host, port included"
            );
            assert_eq!(one("x-forwarded-proto"), ["https"], "{method}");
            assert_eq!(one("x-forwarded-host"), [authority.as_str()], "{method}");
            let cookies: Vec<&str> = reply
                .headers
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(
                cookies,
                ["a=1; Path=/; Secure; HttpOnly", "b=2; Path=/; Secure"],
                "{method}: Set-Cookie comes back"
            );
        }
        let log = nginx.access_log();
        assert!(log.contains("HTTP/2.0 GET /_amp/handoff 200"), "{log}");
        note(&format!(
            "proxy: nginx passed {} request headers unchanged over HTTP/2",
            sent.len()
        ));
    });
}

// ---------------------------------------------------------------------------------------------
// The handoff through nginx, scripted

#[test]
fn a_handoff_completes_through_nginx_over_http2() {
    let Some(binary) = nginx::find() else { return };
    run(LIMIT, async {
        let (nginx, shop) = proxied_shop(&binary, &["--offline"]);
        let h2 = h2_to_origin(&nginx).await;
        let cache_page = shop.cache_page_url("/products/3");
        let started = Instant::now();

        // Mint: the cache page's amp-form post, without the origin's cookie.
        let source = url_escape(&shop.origin_url());
        let mint = h2
            .request("POST", &format!("/cart/add?__amp_source_origin={source}"))
            .header("origin", shop.cache_url())
            .header("referer", format!("{}/", shop.cache_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from_static(
                b"product_id=3&quantity=2&amp_return_path=%252Fproducts%252F3",
            )))
            .unwrap();
        let minted = h2.send(mint, ANSWER).await.expect("the mint's answer");
        assert_eq!(minted.status, StatusCode::OK, "{}", minted.body);
        assert!(minted.session_cookie().is_none(), "no cookie on the cache");
        let to = minted
            .header("amp-redirect-to")
            .expect("AMP-Redirect-To")
            .to_owned();
        let handoff_prefix = format!("{}/_amp/handoff?", shop.origin_url());
        assert!(to.starts_with(&handoff_prefix), "{to}");

        // Complete: the top-level navigation from the cache page.
        let path = &to[shop.origin_url().len()..];
        let complete = h2
            .request("GET", path)
            .header("referer", &cache_page)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let done = h2.send(complete, ANSWER).await.expect("the completion");
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let landing = format!("{}/products/3", shop.origin_url());
        assert_eq!(done.header("location"), Some(landing.as_str()));
        let cookie = done
            .session_cookie()
            .expect("the first-party session cookie");
        let set_cookie = done.header("set-cookie").unwrap_or_default();
        assert!(set_cookie.contains("Secure"), "{set_cookie}");

        let cart = h2
            .request("GET", "/cart.json")
            .header("cookie", &cookie)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let cart = h2.send(cart, ANSWER).await.expect("the cart");
        assert_eq!(
            cart.json(),
            json!({"items": [{"product_id": 3, "quantity": 2}]})
        );
        let log = nginx.access_log();
        for line in [
            "HTTP/2.0 POST /cart/add 200",
            "HTTP/2.0 GET /_amp/handoff 303",
        ] {
            assert!(log.contains(line), "{line} in:\n{log}");
        }
        note(&format!(
            "proxy: mint, completion and cart over HTTP/2 through nginx in {:.0} ms; \
             nginx log:\n{}",
            started.elapsed().as_secs_f64() * 1000.0,
            indent(&log)
        ));
    });
}

fn url_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Browsers through nginx

#[test]
fn chromium_blocked_through_nginx() {
    browser_through_nginx(Engine::Chromium, "Chromium, third-party cookies blocked");
}

#[test]
fn firefox_through_nginx() {
    browser_through_nginx(Engine::Firefox, "Firefox ESR");
}

/// The browser suite's first flow through nginx: a new shopper adds 2 kettles on the cache
/// page (real AMP runtime), the browser withholds the origin's cookie there, the layer mints
/// a handoff, the shopper lands on the product page on the origin, which says what was
/// added; a reload adds nothing. Every request went through nginx over HTTP/2.
fn browser_through_nginx(engine: Engine, name: &str) {
    let Some(binary) = nginx::find() else { return };
    let Some(installed) = Installed::find(engine) else {
        return;
    };
    let Some(runtime) = amp_runtime() else { return };
    let runtime = runtime.to_str().expect("a UTF-8 path").to_owned();
    let _turn = one_at_a_time();
    let started = Instant::now();
    run(LIMIT, async {
        let (nginx, shop) = proxied_shop(&binary, &["--amp-runtime", &runtime]);
        let driver = Driver::start(&installed);
        let browser = match engine {
            Engine::Chromium => driver.chromium(ThirdPartyCookies::Blocked).await,
            _ => driver.firefox().await,
        };
        note(&format!(
            "proxy: {name} {} through nginx ({}, nginx on 127.0.0.1:{})",
            browser.version(),
            shop.origin_url(),
            nginx.origin_port
        ));
        let shopper = Shopper::new(browser, &shop);
        scenario_saw(
            &format!("{name} through nginx: add on the cache, land on the product page"),
            async {
                shopper.forget_cookies().await;
                let before = counts(&shop).await;
                shopper.open(&shop.cache_page_url("/products/3")).await;
                shopper.wait_for_amp_form().await;
                let landed = shopper.add_to_cart(2).await;
                assert_eq!(landed.as_str(), format!("{}/products/3", shop.origin_url()));
                assert_eq!(
                    shopper.text(".just-added").await.as_deref(),
                    Some("Added 2 × Pour-over kettle to your cart.")
                );
                assert_eq!(
                    shopper.cart_json().await,
                    json!({"items": [{"product_id": 3, "quantity": 2}]})
                );
                assert_eq!(since(&shop, before).await, (1, 1, 1));
                shopper.reload().await;
                assert_eq!(shopper.text(".just-added").await, None);
                assert_eq!(
                    since(&shop, before).await,
                    (1, 1, 1),
                    "a reload adds nothing"
                );
                format!("landed on {landed}")
            },
        )
        .await;
        shopper.close().await;
        let log = nginx.access_log();
        let seen: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("/cart/add") || l.contains("/_amp/handoff"))
            .collect();
        assert!(
            seen.iter()
                .any(|l| l.starts_with("HTTP/2.0 POST /cart/add 200")),
            "the cache page's post went through nginx over HTTP/2:\n{log}"
        );
        assert!(
            seen.iter()
                .any(|l| l.starts_with("HTTP/2.0 GET /_amp/handoff 303")),
            "the handoff navigation went through nginx over HTTP/2:\n{log}"
        );
        note(&format!(
            "proxy: {name}: nginx saw\n{}",
            indent(&seen.join("\n"))
        ));
    });
    note(&format!(
        "proxy: {name} through nginx done in {:.2} s (nginx, shop, driver and browser start included)",
        started.elapsed().as_secs_f64()
    ));
}

/// `/_stats.json`: (mints, handoffs completed, adds applied), asked through nginx.
async fn counts(shop: &ShopProcess) -> (u64, u64, u64) {
    let s = shop.origin().get("/_stats.json").send().await.json();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    (n("mints"), n("handoffs_completed"), n("adds"))
}

async fn since(shop: &ShopProcess, before: (u64, u64, u64)) -> (u64, u64, u64) {
    let now = counts(shop).await;
    (now.0 - before.0, now.1 - before.1, now.2 - before.2)
}

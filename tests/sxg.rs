//! Signed exchanges: the layer's answers to the fetches signers send, against what a signed
//! exchange may carry, in lazy and eager mode.
//!
//! The rules checked:
//! - no stateful header (the SXG spec's list, as amppackager `packager/signer/signer.go`
//!   `statefulResponseHeaders` and sxg-rs `sxg_rs/src/headers.rs` `STATEFUL_HEADERS` hold it);
//! - the Google SXG cache's `Cache-Control` rules (google/webpackager
//!   `docs/cache_requirements.md`, applied by sxg-rs `validate_as_sxg_payload` and
//!   `signature_duration`): no `private`, `no-store` or `no-cache`, at least 120 s of
//!   freshness; and the app's `Cache-Control` reaches the signer as the app wrote it.

mod common;

use common::*;
use http::StatusCode;
use tower_amp_session::SessionId;

/// The SXG spec's stateful header fields.
const STATEFUL: [&str; 13] = [
    "authentication-control",
    "authentication-info",
    "clear-site-data",
    "optional-www-authenticate",
    "proxy-authenticate",
    "proxy-authentication-info",
    "public-key-pins",
    "sec-websocket-accept",
    "set-cookie",
    "set-cookie2",
    "setprofile",
    "strict-transport-security",
    "www-authenticate",
];

/// What the app answers: a page fit for signing.
const APP_CACHE_CONTROL: &str = "public, max-age=600";
const PAGE: &[(&str, &str)] = &[
    ("cache-control", APP_CACHE_CONTROL),
    ("content-type", "text/html; charset=utf-8"),
];

const CHROMIUM_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
    image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

/// The request shapes, each as its sender builds it.
fn shapes(cookie: &str) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let s = |v: &str| v.to_owned();
    vec![
        (
            // What reaches the origin when a proxy passes the SXG cache's request on (the
            // issue's shape; sxg-rs `validate_accept_header` `PrefersSxg` accepts it).
            "Google SXG cache / crawler",
            vec![
                (
                    "accept",
                    s("application/signed-exchange;v=b3;q=1,*/*;q=0.8"),
                ),
                ("amp-cache-transform", s("google;v=\"1..100\"")),
                ("user-agent", s("Mozilla/5.0 (compatible; Googlebot/2.1)")),
            ],
        ),
        (
            "SXG Accept only (implied q=1)",
            vec![("accept", s("application/signed-exchange;v=b3,*/*;q=0.8"))],
        ),
        (
            "AMP-Cache-Transform only",
            vec![("amp-cache-transform", s("google;v=\"1..100\""))],
        ),
        (
            // amppackager `packager/signer/signer.go` `fetchURL`: its own User-Agent, `Via`,
            // `Forwarded` and `X-Forwarded-Host`; no `Accept`, no `AMP-Cache-Transform`.
            "amppackager fetch",
            vec![
                (
                    "user-agent",
                    s("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) \
                       AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile \
                       Safari/537.36 (compatible; amppackager/0.0.0; \
                       +https://github.com/ampproject/amppackager)"),
                ),
                ("via", s("1.1 amppkg")),
                ("forwarded", s("host=\"shop.example\"")),
                ("x-forwarded-host", s("shop.example")),
            ],
        ),
        (
            // sxg-rs `sxg_rs/src/headers.rs` `forward_to_origin_server`: the configured
            // headers (by default `user-agent`, `cf-ipcountry`) and `Via: sxgrs`.
            "sxg-rs / Cloudflare fetch",
            vec![
                ("user-agent", s("Mozilla/5.0 (compatible; Googlebot/2.1)")),
                ("cf-ipcountry", s("US")),
                ("via", s("1.1 google, sxgrs")),
            ],
        ),
        (
            // A signer's fetch that carries a shopper's cookie (a proxy passing it on):
            // the cookie must not personalize the signed page.
            "signer with a shopper's cookie",
            vec![
                ("accept", s("application/signed-exchange;v=b3")),
                ("cookie", s(cookie)),
            ],
        ),
        (
            // google/webpackager `server/handler.go`: `http.NewRequest(GET, url, nil)`,
            // no header copied: nothing names a signer.
            "webpkgserver fetch",
            vec![
                ("user-agent", s("Go-http-client/1.1")),
                ("accept-encoding", s("gzip")),
            ],
        ),
        (
            "Chromium navigation, no cookie",
            vec![
                ("accept", s(CHROMIUM_ACCEPT)),
                ("sec-fetch-mode", s("navigate")),
                ("sec-fetch-dest", s("document")),
                ("sec-fetch-site", s("none")),
            ],
        ),
        (
            "Chromium navigation, with its cookie",
            vec![
                ("accept", s(CHROMIUM_ACCEPT)),
                ("sec-fetch-mode", s("navigate")),
                ("sec-fetch-dest", s("document")),
                ("sec-fetch-site", s("none")),
                ("cookie", s(cookie)),
            ],
        ),
    ]
}

/// Why an answer could not be signed and cached by the Google SXG cache; `None`: it can.
fn unsignable(a: &Answer) -> Option<String> {
    for name in STATEFUL {
        if a.header(name).is_some() {
            return Some(format!("stateful {name}"));
        }
    }
    let cc = a.all("cache-control").join(", ");
    if cc != APP_CACHE_CONTROL {
        return Some(format!("cache-control changed to {cc:?}"));
    }
    let lower = cc.to_ascii_lowercase();
    for bad in ["private", "no-store", "no-cache"] {
        if lower.contains(bad) {
            return Some(format!("cache-control {bad}"));
        }
    }
    let fresh = lower.split(',').map(str::trim).find_map(|d| {
        d.strip_prefix("s-maxage=")
            .or_else(|| d.strip_prefix("max-age="))
            .and_then(|n| n.parse::<u64>().ok())
    });
    if fresh.is_none_or(|s| s < 120) {
        return Some("under 120 s fresh".into());
    }
    None
}

#[tokio::test]
async fn signers_get_signable_answers_in_both_modes() {
    let known = SessionId::generate();
    let cookie = format!("{COOKIE}={known}");
    // (shape, handler reads the session, mode) -> signable?
    let expect = |shape: &str, reads: bool, lazy: bool| match shape {
        "webpkgserver fetch" | "Chromium navigation, no cookie" => lazy && !reads,
        _ => true,
    };
    let mut table = vec![format!(
        "| {:<36} | {:<5} | {:<5} | {:<9} | {:<8} | {:<7} | {} |",
        "request", "reads", "mode", "signable", "signer", "session", "why not"
    )];
    for (shape, headers) in shapes(&cookie) {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for reads in [false, true] {
            for lazy in [true, false] {
                let rec = Recorder::default();
                let b = builder();
                let layer = if lazy { b } else { b.eager_cookie() }.build().unwrap();
                let mut svc = service(&layer, app_with(&rec, StatusCode::OK, PAGE, reads));
                let a = send(&mut svc, request("GET", "/products/1", &headers, "")).await;
                assert_eq!(a.status, StatusCode::OK, "{shape}");
                let session = rec.seen()[0].session.clone().expect("a session");
                let why = unsignable(&a);
                let mode = if lazy { "lazy" } else { "eager" };
                table.push(format!(
                    "| {:<36} | {:<5} | {:<5} | {:<9} | {:<8} | {:<7} | {} |",
                    shape,
                    reads,
                    mode,
                    why.is_none(),
                    session.is_signer_fetch(),
                    if session.id() == known {
                        "cookie's"
                    } else {
                        "new"
                    },
                    why.clone().unwrap_or_default()
                ));
                assert_eq!(
                    why.is_none(),
                    expect(shape, reads, lazy),
                    "{shape}, reads {reads}, {mode}: {why:?}"
                );
                let signer = !shape.starts_with("Chromium") && shape != "webpkgserver fetch";
                assert_eq!(session.is_signer_fetch(), signer, "{shape}");
                if signer {
                    // No session started, none taken from a cookie.
                    assert!(session.is_new(), "{shape}");
                    assert_ne!(session.id(), known, "{shape}");
                }
                if shape == "Chromium navigation, with its cookie" {
                    // A browser is not a signer: it keeps its session in both modes.
                    assert_eq!(session.id(), known, "{mode}");
                    assert!(!session.is_new());
                }
            }
        }
    }
    println!("{}", table.join("\n"));
}

#[tokio::test]
async fn a_signers_change_still_hands_off() {
    // Signers only GET: a POST from the cache without the cookie is minted as always, even
    // if it claims to prefer an SXG, so the change is never applied in a one-request session.
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let headers = [
        ("origin", CACHE),
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/signed-exchange;v=b3"),
        ("amp-cache-transform", "google"),
    ];
    let a = send(&mut svc, request("POST", "/cart/add", &headers, "item=1")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("amp-redirect-to").is_some(), "minted");
    assert_eq!(rec.count(), 0, "the app saw nothing");
}

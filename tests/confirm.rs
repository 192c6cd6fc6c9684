//! The confirmation step: every handoff that is not the shopper's own flow from the cache to
//! a declared route shows a page listing the change; only its first-party POST applies it.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use tower_amp_session::{ConfigBuilder, ConfigError, HandoffOutcome, PendingChange};

/// A clock the test moves by hand (milliseconds since a fixed start), so that the
/// confirmation delay passes without sleeping.
#[derive(Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

fn clocked() -> (ConfigBuilder, Clock) {
    let clock = Clock(Arc::new(AtomicU64::new(0)));
    let start = SystemTime::now();
    let c = clock.clone();
    let b = builder().clock(move || start + Duration::from_millis(c.0.load(Ordering::SeqCst)));
    (b, clock)
}

/// The value of the page's hidden input `name`.
fn hidden(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &page[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Opens the link as a page and returns what its button would post (token and render time).
async fn shown_form(svc: &mut Svc, handoff: &str) -> String {
    let page = send(svc, request("GET", handoff, &NAV, "")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    format!(
        "token={}&amp_render={}",
        hidden(&page.body, "token").unwrap(),
        hidden(&page.body, "amp_render").unwrap()
    )
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn mint_with(svc: &mut Svc, target: &str, content_type: &str, body: &str) -> String {
    let a = send(
        svc,
        request(
            "POST",
            target,
            &[("origin", CACHE), ("content-type", content_type)],
            body,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
}

async fn mint_to(svc: &mut Svc, target: &str) -> String {
    mint_with(svc, target, FORM.1, "confirm=1").await
}

fn token_of(handoff: &str) -> String {
    handoff.split("token=").nth(1).unwrap().to_owned()
}

const CONFIRM_HEADERS: [(&str, &str); 4] = [
    ("origin", PUBLISHER),
    FORM,
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];

#[tokio::test]
async fn undeclared_route_asks_first_and_applies_on_the_confirmation_post() {
    let rec = Recorder::default();
    let (b, clock) = clocked();
    let layer = b.build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint_to(&mut svc, "/checkout/pay").await;

    // The link shows a page, even from the cache page; nothing applied, no nonce used up.
    for _ in 0..2 {
        let page = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains("<form method=\"post\" action=\"/_amp/handoff\">"),
            "{}",
            page.body
        );
        assert!(page.body.contains(&token_of(&handoff)));
        assert!(page.body.contains("<code>POST /checkout/pay</code>"));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("form-action 'self'"), "{csp}");
        assert_eq!(page.header("cache-control"), Some("no-store"));
        // Not `no-referrer`: that makes the page's own POST carry `Origin: null`.
        assert_eq!(page.header("referrer-policy"), Some("same-origin"));
        assert_eq!(page.session_cookie(), None);
        assert_eq!(rec.count(), 0);
    }

    let form = shown_form(&mut svc, &handoff).await;
    clock.advance(1000);
    let a = send(
        &mut svc,
        request("POST", "/_amp/handoff", &CONFIRM_HEADERS, &form),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.session_cookie().is_some());
    assert_eq!(rec.count(), 1);
    assert_eq!(rec.seen()[0].uri, "/checkout/pay");
    assert_eq!(rec.seen()[0].origin.as_deref(), Some(PUBLISHER));

    // Submitting the confirmation twice applies once, and says so.
    let again = send(
        &mut svc,
        request("POST", "/_amp/handoff", &CONFIRM_HEADERS, &form),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("This change was already applied"));
    assert_eq!(rec.count(), 1);

    // The used link is not offered again: a notice that goes on to the return path.
    let reopened = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(reopened.status, StatusCode::OK);
    assert!(reopened.body.contains("This change was already applied"));
    assert!(!reopened.body.contains("Apply this change"));
    assert_eq!(
        reopened.header("refresh"),
        Some(&*format!("3; url={PUBLISHER}/"))
    );
    assert_eq!(reopened.header("x-frame-options"), Some("DENY"));
    assert_eq!(rec.count(), 1);
}

/// The confirmation POST against the page's authenticated render time: only one sent at
/// least the delay after a render of this token's page applies.
#[tokio::test]
async fn render_time_table() {
    let rec = Recorder::default();
    let (b, clock) = clocked();
    let mut svc = service(&b.build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let handoff = mint_to(&mut svc, "/account/delete").await;
    let other = mint_to(&mut svc, "/account/delete").await;
    let token = token_of(&handoff);
    let form = shown_form(&mut svc, &handoff).await;
    let render = form.split("amp_render=").nth(1).unwrap().to_owned();
    let (ms, tag) = render.split_once('.').unwrap();
    let forged_time = format!("{}.{tag}", ms.parse::<u64>().unwrap() - 5000);
    let other_form = shown_form(&mut svc, &other).await;
    let other_render = other_form.split("amp_render=").nth(1).unwrap();
    // (case, body, ms to advance before, applied?)
    let rows: Vec<(&str, String, u64, bool)> = vec![
        ("no render field", format!("token={token}"), 0, false),
        ("malformed", format!("token={token}&amp_render=x"), 0, false),
        (
            "forged time",
            format!("token={token}&amp_render={forged_time}"),
            0,
            false,
        ),
        (
            "another token's render",
            format!("token={token}&amp_render={other_render}"),
            0,
            false,
        ),
        ("999 ms after the render", form.clone(), 999, false),
        ("1 s after the render", form.clone(), 1, true),
    ];
    for (case, body, advance, applied) in rows {
        clock.advance(advance);
        let a = send(
            &mut svc,
            request("POST", "/_amp/handoff", &CONFIRM_HEADERS, &body),
        )
        .await;
        if applied {
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{case}: {}", a.body);
            assert_eq!(rec.count(), 1, "{case}");
        } else {
            assert_eq!(a.status, StatusCode::CONFLICT, "{case}: {}", a.body);
            assert!(
                a.body
                    .contains("Please review the change, then press the button."),
                "{case}"
            );
            // The page again, with a fresh render time.
            assert!(hidden(&a.body, "amp_render").is_some(), "{case}");
            assert_eq!(a.header("x-frame-options"), Some("DENY"), "{case}");
            assert_eq!(rec.count(), 0, "{case}");
        }
    }
}

/// The app's describer writes the headline (escaped); query parameters are listed; the
/// site that sent the shopper is named; the button moves from render to render.
#[tokio::test]
async fn described_in_the_shops_words() {
    let rec = Recorder::default();
    let layer = builder()
        .describe("/cart/add", |c: &PendingChange| {
            Some(format!(
                "Add {} × <Paper filters> ({}) to your cart?",
                c.field("quantity")?,
                c.field("product_id")?
            ))
        })
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint_with(&mut svc, "/cart/add?product_id=100", FORM.1, "quantity=1").await;
    let from_evil = [
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
        ("referer", "https://evil.example/lure?x=<b>"),
    ];
    let page = send(&mut svc, request("GET", &handoff, &from_evil, "")).await;
    assert_eq!(page.status, StatusCode::OK);
    for s in [
        "<h1>Add 1 × &lt;Paper filters&gt; (100) to your cart?</h1>",
        "You were sent here by <strong>evil.example</strong>",
        "<code>product_id</code></th><td><code>100</code></td><td>the address</td>",
        "<code>quantity</code></th><td><code>1</code></td><td>the form</td>",
    ] {
        assert!(page.body.contains(s), "{s} in {}", page.body);
    }
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    // A query-only change is never "no fields".
    let query_only = {
        let a = send(
            &mut svc,
            request(
                "POST",
                "/account/email?email=%61%74",
                &[("origin", CACHE)],
                "",
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        path_of(a.header("amp-redirect-to").unwrap())
    };
    let page = send(&mut svc, request("GET", &query_only, &NAV, "")).await;
    assert!(!page.body.contains("no fields"), "{}", page.body);
    assert!(page
        .body
        .contains("<code>email</code></th><td><code>at</code></td><td>the address</td>"));
    // The space above the button is chosen per render.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..8 {
        let p = send(&mut svc, request("GET", &handoff, &from_evil, "")).await;
        let at = p.body.find("padding-top:").unwrap();
        seen.insert(p.body[at..at + 18].to_owned());
    }
    assert!(seen.len() > 1, "{seen:?}");
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn confirmation_delay_is_checked_at_build() {
    for (ms, ok) in [
        (0, false),
        (499, false),
        (500, true),
        (1000, true),
        (60_000, true),
        (60_001, false),
    ] {
        let r = builder()
            .confirmation_delay(Duration::from_millis(ms))
            .build();
        assert_eq!(r.is_ok(), ok, "{ms} ms");
    }
}

#[tokio::test]
async fn the_page_lists_every_field_escaped() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    // (content type and body, what the page must show, what it must never show raw)
    let (mp_ct, mp_body) = multipart(&[("email", "attacker@evil.example"), ("x", "<b>1</b>")]);
    let rows: Vec<(&str, String, String, Vec<&str>, Vec<&str>)> = vec![
        (
            "urlencoded, decoded",
            FORM.1.to_owned(),
            "email=attacker%40evil.example&note=a+%26+b&%3Cscript%3E=%22%3E%3Cimg".to_owned(),
            vec![
                "<code>email</code>",
                "<code>attacker@evil.example</code>",
                "<code>note</code></th><td><code>a &amp; b</code>",
                "<code>&lt;script&gt;</code></th><td><code>&quot;&gt;&lt;img</code>",
            ],
            vec!["<code><script>", "\"><img"],
        ),
        (
            "multipart",
            mp_ct,
            mp_body,
            vec![
                "<code>email</code></th><td><code>attacker@evil.example</code>",
                "<code>x</code></th><td><code>&lt;b&gt;1&lt;/b&gt;</code>",
            ],
            vec!["<b>1</b>"],
        ),
        (
            "no body",
            String::new(),
            String::new(),
            // No body, but a query: listed, never "no fields".
            vec!["<code>confirm</code></th><td><code>1</code></td><td>the address</td>"],
            vec![],
        ),
    ];
    for (name, ct, body, shown, never) in rows {
        let handoff = if ct.is_empty() {
            let a = send(
                &mut svc,
                request("POST", "/account/email?confirm=1", &[("origin", CACHE)], ""),
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
            path_of(a.header("amp-redirect-to").unwrap())
        } else {
            mint_with(&mut svc, "/account/email?confirm=1", &ct, &body).await
        };
        let page = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(page.status, StatusCode::OK, "{name}");
        assert!(
            page.body
                .contains("<code>POST /account/email?confirm=1</code>"),
            "{name}: {}",
            page.body
        );
        for s in shown {
            assert!(page.body.contains(s), "{name}: {s} in {}", page.body);
        }
        for s in never {
            assert!(!page.body.contains(s), "{name}: raw {s} in {}", page.body);
        }
    }
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn confirmation_post_refusals() {
    let rec = Recorder::default();
    let (b, clock) = clocked();
    let layer = b.build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint_to(&mut svc, "/account/delete").await;
    let form = shown_form(&mut svc, &handoff).await;
    let rows: Vec<(&str, Vec<(&str, &str)>, String, StatusCode)> = vec![
        (
            "from the cache's page",
            vec![("origin", CACHE), FORM],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "from a foreign page",
            vec![("origin", "https://evil.example"), FORM],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "Origin: null",
            vec![("origin", "null"), FORM],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "without Origin",
            vec![FORM],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "as fetch()",
            vec![("origin", PUBLISHER), FORM, ("sec-fetch-mode", "cors")],
            form.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "as JSON",
            vec![("origin", PUBLISHER), ("content-type", "application/json")],
            form.clone(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "without a token",
            vec![("origin", PUBLISHER), FORM],
            "x=1".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "with a forged token",
            vec![("origin", PUBLISHER), FORM],
            "token=AAAA".into(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, headers, body, want) in rows {
        let a = send(&mut svc, request("POST", "/_amp/handoff", &headers, &body)).await;
        assert_eq!(a.status, want, "{name}: {}", a.body);
    }
    assert_eq!(rec.count(), 0, "no refused confirmation applies anything");
    // The token is still good for the shopper's own click.
    clock.advance(1000);
    let a = send(
        &mut svc,
        request("POST", "/_amp/handoff", &CONFIRM_HEADERS, &form),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn direct_route_matching() {
    let rec = Recorder::default();
    let layer = builder()
        .direct_route("/wishlist/")
        .direct_route("/newsletter/join")
        .build()
        .unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    // (target, applied on arrival from the cache page?) — everything else asks first.
    let rows = [
        ("/cart/add", true),
        ("/cart/add?qty=2", true),
        ("/cart/add/", false),
        ("/cart/remove", false),
        ("/wishlist/add", true),
        ("/wishlist/", true),
        ("/wishlist", false),
        ("/wishlist/../account/email", false),
        ("/wishlist/./x", false),
        ("/wishlist/%2e%2e/account", false),
        ("/wishlist//x", false),
        ("/wishlist/x;/../y", false),
        ("/newsletter/join", true),
        ("/newsletter/join/x", false),
        ("/Newsletter/join", false),
        ("/account/delete", false),
    ];
    for (target, direct) in rows {
        let handoff = mint_to(&mut svc, target).await;
        let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        let outcome = a.headers.get("x-frame-options").is_none();
        assert_eq!(outcome, direct, "{target}: {}", a.status);
        let want = if direct {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::OK
        };
        assert_eq!(a.status, want, "{target}");
    }
}

#[tokio::test]
async fn outcome_extension_says_confirmation_shown() {
    use tower::ServiceExt;
    let rec = Recorder::default();
    let layer = builder().build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let handoff = mint_to(&mut svc, "/account/delete").await;
    let res = svc
        .ready()
        .await
        .unwrap()
        .oneshot(request("GET", &handoff, &NAV, ""))
        .await
        .unwrap();
    assert_eq!(
        res.extensions().get::<HandoffOutcome>(),
        Some(&HandoffOutcome::ConfirmationShown)
    );
}

#[test]
fn direct_routes_are_checked_at_build() {
    let invalid = |r: &str| Err(ConfigError::InvalidDirectRoute(r.into()));
    // (route, what build says)
    let rows: Vec<(&str, Result<(), ConfigError>)> = vec![
        ("/cart/add", Ok(())),
        ("/cart/", Ok(())),
        ("cart/add", invalid("cart/add")),
        ("", invalid("")),
        ("//cart", invalid("//cart")),
        ("/cart?x=1", invalid("/cart?x=1")),
        ("/cart#top", invalid("/cart#top")),
        ("/cart add", invalid("/cart add")),
        ("/cart\n", invalid("/cart\n")),
    ];
    for (route, want) in rows {
        let got = builder().direct_route(route).build().map(|_| ());
        assert_eq!(got, want, "{route:?}");
    }
    // The handoff path itself, in any spelling, or a prefix that covers it, is refused as such.
    for route in [
        "/",
        "/_amp/",
        "/_amp/handoff",
        "/_amp/%68andoff",
        "/_AMP/handoff",
    ] {
        let got = builder().direct_route(route).build().map(|_| ());
        assert!(
            matches!(got, Err(ConfigError::RouteCoversHandoffPath { .. })),
            "{route:?}: {got:?}"
        );
    }
}

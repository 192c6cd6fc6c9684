//! AMP for Email CORS (v2): allowed senders are answered with `AMP-Email-Allow-Sender`.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http::StatusCode;
use tower_amp_session::RequestSource;

#[tokio::test]
async fn email_sender_table() {
    let layer = builder()
        .email_sender("orders@shop.example")
        .email_sender("@news.shop.example")
        .build()
        .unwrap();
    // (name, method, headers, status, source seen by the app, AMP-Email-Allow-Sender)
    let rows: Vec<(
        &str,
        &str,
        Vec<(&str, &str)>,
        u16,
        Option<RequestSource>,
        Option<&str>,
    )> = vec![
        (
            "allowed sender, GET",
            "GET",
            vec![("amp-email-sender", "orders@shop.example")],
            200,
            Some(RequestSource::AmpEmail),
            Some("orders@shop.example"),
        ),
        (
            "allowed sender, POST (no handoff in email)",
            "POST",
            vec![
                ("amp-email-sender", "orders@shop.example"),
                ("origin", "https://mail.example.net"),
            ],
            200,
            Some(RequestSource::AmpEmail),
            Some("orders@shop.example"),
        ),
        (
            "allowed domain",
            "POST",
            vec![("amp-email-sender", "deals@news.shop.example")],
            200,
            Some(RequestSource::AmpEmail),
            Some("deals@news.shop.example"),
        ),
        (
            "unknown sender, POST",
            "POST",
            vec![
                ("amp-email-sender", "evil@evil.example"),
                ("origin", "https://mail.example.net"),
            ],
            403,
            None,
            None,
        ),
        (
            "unknown sender, GET",
            "GET",
            vec![("amp-email-sender", "evil@evil.example")],
            200,
            Some(RequestSource::Direct),
            None,
        ),
        (
            "v1: sender only in __amp_source_origin",
            "POST",
            vec![("origin", "https://mail.example.net")],
            403,
            None,
            None,
        ),
        (
            "sender header over the cache origin stays a cache request",
            "GET",
            vec![
                ("amp-email-sender", "orders@shop.example"),
                ("origin", CACHE),
            ],
            200,
            Some(RequestSource::AmpCache),
            None,
        ),
    ];
    for (name, method, headers, status, source, allow) in rows {
        let rec = Recorder::default();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
        let uri = if name.starts_with("v1") {
            "/subscribe?__amp_source_origin=orders%40shop.example"
        } else {
            "/subscribe"
        };
        let a = send(&mut svc, request(method, uri, &headers, "")).await;
        assert_eq!(a.status.as_u16(), status, "{name}: {}", a.body);
        assert_eq!(
            rec.seen()
                .first()
                .map(|s| s.session.clone().unwrap().source()),
            source,
            "{name}"
        );
        assert_eq!(a.header("amp-email-allow-sender"), allow, "{name}");
        assert_eq!(a.header("amp-redirect-to"), None, "{name}: never a handoff");
        if source == Some(RequestSource::AmpEmail) {
            assert_eq!(
                a.session_cookie(),
                None,
                "{name}: email clients keep no cookies"
            );
        }
    }
}

#[tokio::test]
async fn email_is_off_by_default() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request(
            "POST",
            "/subscribe",
            &[("amp-email-sender", "orders@shop.example")],
            "",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(rec.count(), 0);
}

#[tokio::test]
async fn source_origin_in_email_must_be_the_sender() {
    let layer = builder()
        .email_sender("orders@shop.example")
        .build()
        .unwrap();
    let rows = [
        ("/s?__amp_source_origin=orders%40shop.example", 200),
        ("/s?__amp_source_origin=https%3A%2F%2Fshop.example", 200),
        ("/s?__amp_source_origin=evil%40evil.example", 403),
    ];
    for (uri, status) in rows {
        let rec = Recorder::default();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
        let a = send(
            &mut svc,
            request(
                "POST",
                uri,
                &[("amp-email-sender", "orders@shop.example")],
                "",
            ),
        )
        .await;
        assert_eq!(a.status.as_u16(), status, "{uri}");
        if status == 200 {
            assert_eq!(rec.seen()[0].uri, "/s", "{uri}: removed");
        }
    }
}

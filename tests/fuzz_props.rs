//! The fuzz targets' properties (fuzz/fuzz_targets/*.rs) as stable-toolchain proptests, so
//! `cargo test` checks them on every run. Cases: token text through the layer 2 048, return
//! paths 2 048, Referers 2 048, requests through the layer 1 024 (handoffs among them minted
//! by the layer). The token target's sealed-payload half needs the private token format and
//! is a unit test (src/token/tests.rs, `sealed_arbitrary_payloads`). The whole file runs in
//! a few seconds in a debug build. Crashes found by the fuzzers become rows of
//! `fuzz_regressions` below.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tower::ServiceExt;
use tower_amp_session::return_path::{return_path_from_referer, validate_return_path};
use tower_amp_session::{AmpSessionLayer, CacheDomain, Keyring, Rejection, RequestBody};
use url::Url;

mod common;

const NOW: u64 = 1_800_000_000;
const KEY: [u8; 32] = [7; 32];
const PUBLISHER: &str = "https://shop.example";

// ---------------------------------------------------------------------------------------
// token_open (through the layer; the sealed-payload half is a unit test in src/token/tests.rs)
// ---------------------------------------------------------------------------------------

/// Completes a handoff carrying `text` as its token through the layer; checks what the
/// `token_open` fuzz target checks and returns the status.
fn complete_with_token(rt: &tokio::runtime::Runtime, text: &str) -> StatusCode {
    let token: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let req = Request::builder()
        .uri(format!("/_amp/handoff?token={token}"))
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body(Full::new(Bytes::new()))
        .unwrap();
    drive(rt, &fuzz_layer(), req)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// No text that the layer did not mint completes, whatever it holds: always a 400,
    /// never the app, never a panic.
    #[test]
    fn token_open_never_accepts_unsealed_text(
        text in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,200}",
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            // Version 2 and key id "k1" in clear, then anything.
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|rest| {
                let mut raw = vec![2, 2, b'k', b'1'];
                raw.extend_from_slice(&rest);
                URL_SAFE_NO_PAD.encode(raw)
            }),
        ],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let status = complete_with_token(&rt, &text);
        prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{:?}", text);
    }
}

// ---------------------------------------------------------------------------------------
// return_path
// ---------------------------------------------------------------------------------------

const ORIGINS: [&str; 2] = ["https://shop.example", "http://shop.localhost:8080"];

fn lands_on_origin(input: &str, accepted: &str, origin: &str) {
    let base = Url::parse(&format!("{origin}/")).unwrap();
    let joined = base.join(accepted).unwrap();
    assert_eq!(joined.origin(), base.origin(), "{input:?} -> {accepted:?}");
    assert!(
        !joined.path().starts_with("//"),
        "{input:?} -> {accepted:?}"
    );
    let written = Url::parse(&format!("{origin}{accepted}")).unwrap();
    assert_eq!(written.origin(), base.origin(), "{input:?} -> {accepted:?}");
    assert!(
        !written.path().starts_with("//"),
        "{input:?} -> {accepted:?}"
    );
    assert_eq!(
        validate_return_path(accepted, &base).as_deref(),
        Ok(accepted)
    );
}

fn on_cache(host: &str) -> bool {
    matches!(
        host,
        "shop-example.cdn.ampproject.org"
            | "shop-localhost.cdn.ampproject.org"
            | "shop-example.cache.localhost:8081"
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn return_path_accepted_lands_on_origin(p in prop_oneof![any::<String>(), "/[ -~]{0,60}"]) {
        for origin in ORIGINS {
            let base = Url::parse(&format!("{origin}/")).unwrap();
            if let Ok(accepted) = validate_return_path(&p, &base) {
                lands_on_origin(&p, &accepted, origin);
            }
        }
    }

    #[test]
    fn referer_accepted_lands_on_origin(
        prefix in prop::sample::select(vec![
            "https://shop-example.cdn.ampproject.org/c/s/shop.example",
            "https://shop-localhost.cdn.ampproject.org/c/shop.localhost:8080",
            "https://shop.example",
            "http://shop.localhost:8080",
            "",
        ]),
        tail in prop_oneof![any::<String>(), "[ -~]{0,60}"],
    ) {
        let referer = format!("{prefix}{tail}");
        for origin in ORIGINS {
            let base = Url::parse(&format!("{origin}/")).unwrap();
            if let Some(accepted) = return_path_from_referer(&referer, &base, on_cache) {
                lands_on_origin(&referer, &accepted, origin);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// classify: arbitrary requests through the layer
// ---------------------------------------------------------------------------------------

const NAMES: &[&str] = &[
    "origin",
    "amp-same-origin",
    "cookie",
    "content-type",
    "content-length",
    "referer",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "accept",
    "amp-email-sender",
    "host",
    "x-any",
];

const VALUES: &[&str] = &[
    PUBLISHER,
    "https://shop-example.cdn.ampproject.org",
    "http://shop-example.cache.localhost:8081",
    "https://evil-example.cdn.ampproject.org",
    "null",
    "true",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "navigate",
    "document",
    "__Host-amp_session=AAAAAAAAAAAAAAAAAAAAAA",
    "__Host-amp_session=AAAAAAAAAAAAAAAAAAAAAA; __Host-amp_session=BBBBBBBBBBBBBBBBBBBBBA",
    "orders@shop.example",
    "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3",
    "4097",
];

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        3 => prop::sample::select(VALUES).prop_map(HeaderValue::from_static),
        1 => prop::collection::vec(prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff], 0..60)
            .prop_map(|b| HeaderValue::from_bytes(&b).unwrap()),
    ]
}

fn header() -> impl Strategy<Value = (HeaderName, HeaderValue)> {
    (
        prop::sample::select(NAMES).prop_map(HeaderName::from_static),
        header_value(),
    )
}

#[derive(Debug, Clone)]
enum Target {
    Raw(String),
    /// A handoff minted by the layer (clock offset by `off` seconds, lifetime `ttl`) for a
    /// form posted to `target`, then extra query text.
    Minted {
        target: String,
        content_type: &'static str,
        body: Vec<u8>,
        off: i16,
        ttl: u16,
        extra: &'static str,
    },
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        prop::sample::select(vec![
            "/cart/add",
            "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example",
            "/cart/add?__amp_source_origin=https%3A%2F%2Fevil.example&x=1",
            "/_amp/handoff",
            "/_amp/handoff?token=",
            "/account/delete",
            "*",
            "https://shop.example/cart/add",
        ])
        .prop_map(|s| Target::Raw(s.into())),
        "/[!-~]{0,40}".prop_map(Target::Raw),
        (
            prop_oneof![Just("/cart/add".to_owned()), "/[!-~]{0,30}"],
            prop::sample::select(vec![
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=b",
                "text/plain",
            ]),
            prop_oneof![
                Just(b"product_id=1&quantity=2".to_vec()),
                prop::collection::vec(any::<u8>(), 0..80),
            ],
            any::<i16>(),
            1u16..=3600,
            prop::sample::select(vec!["", "&_gl=1", "&token=x"]),
        )
            .prop_map(
                |(target, content_type, body, off, ttl, extra)| Target::Minted {
                    target,
                    content_type,
                    body,
                    off,
                    ttl,
                    extra,
                }
            ),
    ]
}

/// The request URI for `t`: a minted handoff goes through a minting layer first (a mint
/// it refuses leaves an empty token).
fn uri_of(rt: &tokio::runtime::Runtime, t: &Target) -> String {
    match t {
        Target::Raw(s) => s.clone(),
        Target::Minted {
            target,
            content_type,
            body,
            off,
            ttl,
            extra,
        } => {
            let at = NOW.saturating_add_signed(i64::from(*off));
            let minting = AmpSessionLayer::builder()
                .publisher_origin(PUBLISHER)
                .keyring(Keyring::builder().signing("k1", KEY))
                .clock(move || UNIX_EPOCH + Duration::from_secs(at))
                .handoff_ttl(Duration::from_secs(u64::from(*ttl)))
                .build()
                .unwrap();
            let app = tower::service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
            let svc = tower::Layer::layer(&minting, app);
            let Ok(req) = Request::builder()
                .method("POST")
                .uri(target.as_str())
                .header("origin", "https://shop-example.cdn.ampproject.org")
                .header("content-type", *content_type)
                .body(Full::new(Bytes::from(body.clone())))
            else {
                return format!("/_amp/handoff?token={extra}");
            };
            let res = rt.block_on(svc.oneshot(req)).unwrap();
            let token = res
                .headers()
                .get("amp-redirect-to")
                .and_then(|v| v.to_str().ok())
                .and_then(|to| to.strip_prefix(PUBLISHER))
                .map(str::to_owned);
            match token {
                Some(path) => format!("{path}{extra}"),
                None => format!("/_amp/handoff?token={extra}"),
            }
        }
    }
}

/// Runs one request through the layer; checks the invariants the `classify` fuzz target
/// checks. Returns the status.
fn drive(
    rt: &tokio::runtime::Runtime,
    layer: &AmpSessionLayer,
    req: Request<Full<Bytes>>,
) -> StatusCode {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = tower::service_fn(move |req: Request<RequestBody<Full<Bytes>>>| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = req.into_body().collect().await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let svc = tower::Layer::layer(layer, app);
    let (status, headers, rejection) = rt.block_on(async move {
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        body.collect().await.unwrap();
        let rejection = parts.extensions.get::<Rejection>().copied();
        (parts.status, parts.headers, rejection)
    });
    let called = calls.load(Ordering::SeqCst);
    assert!(status.as_u16() < 500, "status {status}");
    assert!(called <= 1);
    if let Some(r) = rejection {
        assert_eq!(r.status(), status);
        assert_eq!(called, 0, "a refused request reached the app");
    }
    if let Some(to) = headers.get("amp-redirect-to") {
        let to = to.to_str().unwrap();
        assert!(
            to.starts_with("https://shop.example/_amp/handoff?token="),
            "{to}"
        );
        assert_eq!(called, 0, "minted and applied");
    }
    if let Some(loc) = headers.get("location") {
        let url = Url::parse(loc.to_str().unwrap()).unwrap();
        assert_eq!(url.origin().ascii_serialization(), PUBLISHER);
        assert!(!url.path().starts_with("//"));
    }
    status
}

fn fuzz_layer() -> AmpSessionLayer {
    AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(Keyring::builder().signing("k1", KEY))
        .cache(
            CacheDomain::custom("cache.localhost")
                .allow_http()
                .port(8081),
        )
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .direct_route("/cart/")
        .email_sender("@shop.example")
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn classify_any_request(
        method in prop_oneof![
            prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]),
            "[A-Za-z!#$%&'*+.^_`|~-]{1,12}".prop_map(|s| Box::leak(s.into_boxed_str()) as &str),
        ],
        t in target(),
        headers in prop::collection::vec(header(), 0..8),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            Just(b"product_id=1&quantity=2".to_vec()),
            Just(b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--\r\n".to_vec()),
            prop::collection::vec(Just(b'a'), 4_000..6_000),
        ],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let uri = uri_of(&rt, &t);
        let mut req = Request::builder().method(method).uri(uri.as_str());
        for (n, v) in &headers {
            req = req.header(n, v);
        }
        // Text that is not a URI never reaches a service (hyper refuses it).
        let Ok(req) = req.body(Full::new(Bytes::from(body))) else {
            return Ok(());
        };
        drive(&rt, &fuzz_layer(), req);
    }
}

/// Inputs the fuzzers found worth keeping, replayed on every `cargo test`.
#[test]
fn fuzz_regressions() {
    // (name, method, uri, headers, body)
    let rows: &[(&str, &str, &str, &[(&str, &[u8])], &[u8])] = &[
        (
            "cache POST, multipart without a body",
            "POST",
            "/cart/add",
            &[
                ("origin", b"https://shop-example.cdn.ampproject.org"),
                ("content-type", b"multipart/form-data; boundary=b"),
            ],
            b"",
        ),
        (
            "handoff GET with only a linker parameter",
            "GET",
            "/_amp/handoff?_gl=1",
            &[],
            b"",
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (name, method, uri, headers, body) in rows {
        let mut req = Request::builder().method(*method).uri(*uri);
        for (n, v) in *headers {
            req = req.header(*n, HeaderValue::from_bytes(v).unwrap());
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let status = drive(&rt, &fuzz_layer(), req);
        assert!(
            status.is_client_error() || status.is_success(),
            "{name}: {status}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Multipart at mint: what the app receives after a handoff is exactly what `multer` reads
// ---------------------------------------------------------------------------------------

/// The reference reading of a multipart form: `multer`, with the layer's rules (text fields
/// only, named, UTF-8). `Err` is the status the layer should answer at mint.
async fn multer_fields(body: Vec<u8>, boundary: &str) -> Result<Vec<(String, String)>, u16> {
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(body)) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(|_| 400u16)? {
        if field.file_name().is_some() {
            return Err(415);
        }
        let name = field.name().ok_or(400u16)?.to_owned();
        let value = field.bytes().await.map_err(|_| 400u16)?;
        out.push((name, String::from_utf8(value.to_vec()).map_err(|_| 400u16)?));
    }
    Ok(out)
}

/// Mints `body` from the cache, completes the handoff, and returns the fields the app got.
async fn fields_after_handoff(body: Vec<u8>, boundary: &str) -> Result<Vec<(String, String)>, u16> {
    let rec = common::Recorder::default();
    let mut svc = common::service(
        &common::builder().body_limit(5120).build().unwrap(),
        common::app(&rec, StatusCode::OK, &[]),
    );
    let req = Request::builder()
        .method("POST")
        .uri("/cart/add")
        .header("origin", common::CACHE)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let a = common::send(&mut svc, req).await;
    if a.status != StatusCode::OK {
        return Err(a.status.as_u16());
    }
    let to = common::path_of(a.header("amp-redirect-to").unwrap());
    let done = common::send(&mut svc, common::request("GET", &to, &common::NAV, "")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let seen = rec.seen().pop().unwrap();
    let ct = seen.content_type.unwrap();
    let replayed = ct.split("boundary=").nth(1).unwrap().to_owned();
    // A replayed body the app cannot read as the same text fields shows as 1000 + status.
    multer_fields(seen.body.to_vec(), &replayed)
        .await
        .map_err(|status| 1000 + status)
}

/// Browser-shaped multipart bodies (the fast path's shape) with hostile names and values.
fn browser_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        "[a-z_]{1,8}",
        "[ -~]{1,12}",
        Just("a filename=x".to_owned()),
        Just("x; filename=\"y\"".to_owned()),
        Just("name=z".to_owned()),
        Just("n\tfilename=f".to_owned()),
    ];
    let value = prop_oneof![
        ".{0,20}",
        Just("\r\n--b".to_owned()),
        Just("x\r\n--bx".to_owned())
    ];
    (prop::collection::vec((name, value), 0..4), any::<bool>()).prop_map(|(fields, crlf)| {
        let mut body = Vec::new();
        for (n, v) in fields {
            body.extend_from_slice(b"--b\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(n.as_bytes());
            body.extend_from_slice(b"\"\r\n\r\n");
            body.extend_from_slice(v.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(if crlf { b"--b--\r\n" } else { b"--b--" });
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The layer's multipart reading is at least as strict as `multer`'s, and when it mints,
    /// the app receives exactly the text fields `multer` reads from the original body.
    #[test]
    fn multipart_handoff_matches_multer(body in browser_body()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let want = rt.block_on(multer_fields(body.clone(), "b"));
        let got = rt.block_on(fields_after_handoff(body.clone(), "b"));
        let shown = String::from_utf8_lossy(&body);
        match (&got, &want) {
            (Ok(_), _) => prop_assert_eq!(&got, &want, "body {:?}", shown),
            (Err(status), Err(_)) => prop_assert!(*status < 500, "body {:?}", shown),
            // Stricter than multer (say, a file part multer misses): a 4xx at mint.
            (Err(status), Ok(_)) => {
                prop_assert!((400..500).contains(status), "{} for body {:?}", status, shown)
            }
        }
    }
}

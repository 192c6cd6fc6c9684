//! Per-request overhead of `AmpSessionLayer`, side by side with the anchors of SPEC §7.
//!
//! `cargo bench --bench overhead` prints one table from one run:
//!
//! * part 1: ns and heap allocations per request for every scenario, measured in interleaved
//!   rounds on one current-thread tokio runtime (`ready().call()` on a ready service; the
//!   requests of a batch are built before the clock starts), median over all batches;
//! * the SPEC §7 ratios with their targets and PASS/MISS;
//! * part 2: requests/s over loopback HTTP/1.1 (hyper) with and without the layer, driven by
//!   `wrk` (skipped with a notice when `wrk` is not installed).
//!
//! Environment: `AMP_BENCH_QUICK=1` shortens everything (a smoke run, numbers unreliable);
//! `AMP_BENCH_NO_HTTP=1` skips part 2; `AMP_BENCH_ONLY=<key>` runs one scenario in a loop for
//! a profiler (e.g. `AMP_BENCH_ONLY=c perf record ...`).
//!
//! No assertion here depends on timing: the bench checks only that each stack answers as
//! expected (status, headers) before measuring it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, ORIGIN, REFERER,
    USER_AGENT, VARY,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use sha2::Sha256;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_amp_session::{
    AmpSession, AmpSessionLayer, CacheDomain, CapturedChange, FormEncoding, HandoffToken, Keyring,
    MemoryReplayGuard, SessionId,
};

// ---------------------------------------------------------------------------------------------
// Counting allocator: every alloc, alloc_zeroed and realloc is one allocation.

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to `System`; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// The configuration of tests/common/mod.rs.

const PUBLISHER: &str = "https://shop.example";
const CACHE: &str = "https://shop-example.cdn.ampproject.org";
const CACHE_PAGE: &str = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3";
const KEY: [u8; 32] = [7u8; 32];
/// The crate's MAC purpose string (token.rs / keyring.rs), length-prefixed into the MAC.
const PURPOSE: &[u8] = b"tower-amp-session/handoff/v1";
const BOUNDARY: &str = "----WebKitFormBoundaryAbC123";
const FIELDS: [(&str, &str); 3] = [("product_id", "3"), ("quantity", "2"), ("size", "M")];

fn keyring() -> Keyring {
    Keyring::builder()
        .signing("k1", KEY)
        .build()
        .expect("valid keyring")
}

fn layer() -> AmpSessionLayer {
    AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(keyring())
        .cache(
            CacheDomain::custom("cache.localhost")
                .allow_http()
                .port(8081),
        )
        .build()
        .expect("valid configuration")
}

/// For the handoff: a replay guard large enough for a whole batch (a fresh layer per batch).
fn handoff_layer() -> AmpSessionLayer {
    AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(keyring())
        .cache(
            CacheDomain::custom("cache.localhost")
                .allow_http()
                .port(8081),
        )
        .replay_guard(MemoryReplayGuard::new(1 << 20))
        .build()
        .expect("valid configuration")
}

// ---------------------------------------------------------------------------------------------
// Requests. Header values are `Bytes::from_static`, as cheap to clone as hyper's (which are
// zero-copy slices of its read buffer), so no scenario pays an allocation for request bytes.

type Body = Full<Bytes>;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn hv(s: &'static str) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from_static(s.as_bytes())).expect("valid header value")
}

fn request(
    method: Method,
    uri: Uri,
    headers: &[(HeaderName, &'static str)],
    body: &'static [u8],
) -> Request<Body> {
    let mut req = Request::new(Full::new(Bytes::from_static(body)));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    for (name, value) in headers {
        h.append(name.clone(), hv(value));
    }
    req
}

/// The request shapes, built once; `make` clones the static parts.
#[derive(Clone)]
struct Shapes {
    /// `Cookie` header with the session among two other cookies.
    cookie: &'static str,
    multipart_ct: &'static str,
    multipart_body: &'static [u8],
    multipart_len: &'static str,
}

impl Shapes {
    fn new() -> Self {
        let id = SessionId::generate();
        let cookie = leak(format!(
            "_ga=GA1.2.1234567890.1700000000; amp_session={}; theme=dark",
            id.as_str()
        ));
        let mut body = String::new();
        for (k, v) in FIELDS {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        let len = leak(body.len().to_string());
        Shapes {
            cookie,
            multipart_ct: leak(format!("multipart/form-data; boundary={BOUNDARY}")),
            multipart_body: leak(body).as_bytes(),
            multipart_len: len,
        }
    }

    /// b, a: an amp-form XHR from the publisher's own page, with the session cookie.
    fn same_origin(&self) -> Request<Body> {
        request(
            Method::GET,
            Uri::from_static("/cart.json"),
            &[
                (HOST, "shop.example"),
                (USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) bench"),
                (ACCEPT, "application/json"),
                (ORIGIN, PUBLISHER),
                (COOKIE, self.cookie),
            ],
            b"",
        )
    }

    /// c, d: the same XHR from the page on the AMP cache, with the cookie (browsers that
    /// allow third-party cookies).
    fn cache(&self) -> Request<Body> {
        request(
            Method::GET,
            Uri::from_static("/cart.json"),
            &[
                (HOST, "shop.example"),
                (USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) bench"),
                (ACCEPT, "application/json"),
                (ORIGIN, CACHE),
                (COOKIE, self.cookie),
            ],
            b"",
        )
    }

    /// e, f: a first visit, a top-level navigation without any cookie.
    fn first_visit(&self) -> Request<Body> {
        request(
            Method::GET,
            Uri::from_static("/products/3"),
            &[
                (HOST, "shop.example"),
                (USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) bench"),
                (ACCEPT, "text/html"),
            ],
            b"",
        )
    }

    /// g: amp-form's POST from the cache page without the cookie (multipart, three fields).
    fn mint(&self) -> Request<Body> {
        request(
            Method::POST,
            Uri::from_static("/cart/add"),
            &[
                (HOST, "shop.example"),
                (USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) bench"),
                (ACCEPT, "application/json"),
                (ORIGIN, CACHE),
                (REFERER, CACHE_PAGE),
                (CONTENT_TYPE, self.multipart_ct),
                (CONTENT_LENGTH, self.multipart_len),
            ],
            self.multipart_body,
        )
    }

    /// h: the top-level navigation to the handoff URL on the origin, with the cookie.
    fn complete(&self, token: &str) -> Request<Body> {
        let uri = Uri::from_maybe_shared(Bytes::from(format!("/_amp/handoff?token={token}")))
            .expect("valid handoff URI");
        request(
            Method::GET,
            uri,
            &[
                (HOST, "shop.example"),
                (USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64) bench"),
                (ACCEPT, "text/html"),
                (HeaderName::from_static("sec-fetch-mode"), "navigate"),
                (HeaderName::from_static("sec-fetch-dest"), "document"),
                (COOKIE, self.cookie),
            ],
            b"",
        )
    }
}

/// The change (g) captures and (h) replays: what the layer itself mints for `Shapes::mint`.
fn captured_change() -> CapturedChange {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(FIELDS);
    CapturedChange {
        method: Method::POST,
        target: "/cart/add".into(),
        encoding: FormEncoding::Multipart,
        body: body.finish().into(),
        return_path: "/products/3".into(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fresh_token(keyring: &Keyring, change: &CapturedChange) -> String {
    let now = unix_now();
    let mut nonce = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut nonce);
    HandoffToken::seal(keyring, change, now, now + 120, nonce).expect("token fits")
}

// ---------------------------------------------------------------------------------------------
// The apps.

/// What a small real handler answers: a body and a `Content-Type`.
fn app_response() -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"{\"items\":[]}")));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The bare app: answers at once, reads nothing.
fn bare<B>() -> impl Service<
    Request<B>,
    Response = Response<Body>,
    Error = Infallible,
    Future = Ready<Result<Response<Body>, Infallible>>,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|req: Request<B>| {
        drop(req);
        ready(Ok::<_, Infallible>(app_response()))
    })
}

// ---------------------------------------------------------------------------------------------
// Measurement.

/// Runs `n` requests (or operations) and returns the time they took and the allocations
/// they made.
type Batch = Box<dyn FnMut(&Runtime, usize) -> (Duration, u64)>;

/// A scenario that drives a service. `factory` is called once, or before every batch when
/// `fresh` (stores and replay guards that grow with every request stay bounded).
fn drive<S, R, F, M>(mut factory: F, mut make: M, fresh: bool) -> Batch
where
    F: FnMut() -> S + 'static,
    M: FnMut() -> R + 'static,
    S: Service<R> + 'static,
    S::Error: Debug,
{
    let mut svc = factory();
    Box::new(move |rt: &Runtime, n: usize| {
        if fresh {
            svc = factory();
        }
        let reqs: Vec<R> = (0..n).map(|_| make()).collect();
        rt.block_on(async {
            let a0 = allocs();
            let t0 = Instant::now();
            for req in reqs {
                let res = svc
                    .ready()
                    .await
                    .expect("ready")
                    .call(req)
                    .await
                    .expect("answered");
                drop(black_box(res));
            }
            let t = t0.elapsed();
            (t, allocs() - a0)
        })
    })
}

struct Scenario {
    key: &'static str,
    what: &'static str,
    batch: Batch,
    n: usize,
    batches: usize,
    samples: Vec<f64>,
    allocs: u64,
    ops: u64,
}

impl Scenario {
    fn new(key: &'static str, what: &'static str, batch: Batch) -> Self {
        Scenario {
            key,
            what,
            batch,
            n: 0,
            batches: 0,
            samples: Vec::new(),
            allocs: 0,
            ops: 0,
        }
    }

    fn run(&mut self, rt: &Runtime, n: usize, record: bool) -> f64 {
        let (t, a) = (self.batch)(rt, n);
        let ns = t.as_nanos() as f64 / n as f64;
        if record {
            self.samples.push(ns);
            self.allocs += a;
            self.ops += n as u64;
        }
        ns
    }

    fn median(&self) -> f64 {
        median(&self.samples)
    }

    fn allocs_per_op(&self) -> f64 {
        self.allocs as f64 / self.ops.max(1) as f64
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

// ---------------------------------------------------------------------------------------------
// Checks that every stack does what its row claims, before anything is timed.

fn check_stacks(rt: &Runtime, shapes: &Shapes) {
    rt.block_on(async {
        let ours = layer();
        let res = ours
            .layer(bare())
            .oneshot(shapes.cache())
            .await
            .expect("answered");
        let cors = cors_layer(&ours)
            .layer(bare())
            .oneshot(shapes.cache())
            .await
            .expect("answered");
        for (name, res) in [("ours", res.headers()), ("tower-http", cors.headers())] {
            let get = |h: &HeaderName| {
                res.get_all(h)
                    .iter()
                    .map(|v| v.to_str().expect("ascii").to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            assert_eq!(get(&ACCESS_CONTROL_ALLOW_ORIGIN), CACHE, "{name}");
            assert_eq!(get(&ACCESS_CONTROL_ALLOW_CREDENTIALS), "true", "{name}");
            assert_eq!(
                get(&ACCESS_CONTROL_EXPOSE_HEADERS),
                "amp-redirect-to",
                "{name}"
            );
            assert_eq!(get(&VARY), "origin", "{name}");
            assert!(res.get("set-cookie").is_none(), "{name}");
        }

        let res = ours
            .layer(bare())
            .oneshot(shapes.first_visit())
            .await
            .expect("answered");
        assert!(res.headers().get("set-cookie").is_some(), "ours issues");
        let res = sessions_service()
            .oneshot(shapes.first_visit())
            .await
            .expect("answered");
        assert!(
            res.headers().get("set-cookie").is_some(),
            "tower-sessions issues"
        );

        let res = ours
            .layer(bare())
            .oneshot(shapes.mint())
            .await
            .expect("answered");
        assert_eq!(res.status(), StatusCode::OK, "mint");
        let url = res.headers()["amp-redirect-to"].to_str().expect("ascii");
        let token = url.split_once("token=").expect("token").1;
        let opened = HandoffToken::open(&keyring(), token, unix_now(), 30).expect("valid");
        assert_eq!(
            opened.change,
            captured_change(),
            "(h) replays what (g) mints"
        );

        let token = fresh_token(&keyring(), &captured_change());
        let res = handoff_layer()
            .layer(bare())
            .oneshot(shapes.complete(&token))
            .await
            .expect("answered");
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "complete");
        assert_eq!(res.headers()["location"], "https://shop.example/products/3");
        let raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        let (signed, tag) = raw.split_at(raw.len() - 32);
        assert_eq!(
            hmac_full(signed).as_slice(),
            tag,
            "(i) MACs the bytes (h) verifies"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The anchors.

fn cors_layer(ours: &AmpSessionLayer) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    // Exactly the origins our layer accepts, in the same order.
    let origins: Vec<HeaderValue> = std::iter::once(PUBLISHER)
        .chain(ours.cache_origins())
        .map(|o| HeaderValue::from_str(o).expect("origin"))
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .expose_headers([HeaderName::from_static("amp-redirect-to")])
        .vary([ORIGIN])
}

fn sessions_service(
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send> + Clone
{
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
    let app = tower::service_fn(|req: Request<Body>| async move {
        let session = req
            .extensions()
            .get::<Session>()
            .cloned()
            .expect("session extension");
        // One value so the session is saved and its cookie set.
        session.insert("n", 1u32).await.expect("memory store");
        Ok::<_, Infallible>(app_response())
    });
    SessionManagerLayer::new(MemoryStore::default())
        .with_secure(true)
        .layer(app)
}

/// The size of `AmpSession`, for the extension row.
#[derive(Clone, Copy)]
struct FakeSession(#[allow(dead_code)] [u64; 3]);

type HmacSha256 = Hmac<Sha256>;

/// One complete HMAC-SHA256 (key schedule included) over what a token's MAC covers.
fn hmac_full(signed: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&KEY).expect("any key length");
    mac.update(&[PURPOSE.len() as u8]);
    mac.update(PURPOSE);
    mac.update(signed);
    mac.finalize().into_bytes().into()
}

// ---------------------------------------------------------------------------------------------

fn scenarios(shapes: &Shapes) -> Vec<Scenario> {
    let mut v = Vec::new();
    let s = shapes.clone();
    v.push(Scenario::new(
        "a",
        "bare service_fn (baseline), same-origin XHR",
        drive(bare::<Body>, move || s.same_origin(), false),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "b",
        "layer: same-origin XHR with session cookie",
        drive(|| layer().layer(bare()), move || s.same_origin(), false),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "c",
        "layer: AMP-cache XHR with cookie (classify + CORS)",
        drive(|| layer().layer(bare()), move || s.cache(), false),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "d",
        "tower-http CorsLayer, same headers as (c)",
        drive(
            || cors_layer(&layer()).layer(bare()),
            move || s.cache(),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "e",
        "layer: new session issued (GET, no cookie)",
        drive(
            || {
                layer().layer(tower::service_fn(|req: Request<_>| {
                    black_box(req.extensions().get::<AmpSession>().map(AmpSession::id));
                    ready(Ok::<_, Infallible>(app_response()))
                }))
            },
            move || s.first_visit(),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "f",
        "tower-sessions + MemoryStore: new session issued",
        drive(sessions_service, move || s.first_visit(), true),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "g",
        "layer: mint (cache POST, multipart, 3 fields)",
        drive(|| layer().layer(bare()), move || s.mint(), false),
    ));
    let s = shapes.clone();
    let ring = keyring();
    let change = captured_change();
    v.push(Scenario::new(
        "h",
        "layer: complete (handoff GET, fresh token)",
        drive(
            || handoff_layer().layer(bare()),
            move || s.complete(&fresh_token(&ring, &change)),
            true,
        ),
    ));
    let token = fresh_token(&keyring(), &captured_change());
    let raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
    let signed: Vec<u8> = raw[..raw.len() - 32].to_vec();
    let signed_i = signed.clone();
    v.push(Scenario::new(
        "i",
        "floor: one HMAC-SHA256 over the token bytes of (h)",
        Box::new(move |_rt: &Runtime, n: usize| {
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                black_box(hmac_full(black_box(&signed_i)));
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    // Informational: the same MAC from a keyed state prepared once (what the keyring does).
    let mut keyed = <HmacSha256 as KeyInit>::new_from_slice(&KEY).expect("any key length");
    keyed.update(&[PURPOSE.len() as u8]);
    keyed.update(PURPOSE);
    v.push(Scenario::new(
        "i'",
        "  (info) same MAC from a pre-keyed state",
        Box::new(move |_rt: &Runtime, n: usize| {
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                let mut mac = keyed.clone();
                mac.update(black_box(&signed));
                black_box(mac.finalize());
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "a'",
        "  (info) bare + one 24-byte request extension",
        drive(
            || {
                tower::service_fn(|mut req: Request<Body>| {
                    // What exposing a session in the extensions costs by itself (3 allocations).
                    req.extensions_mut().insert(FakeSession([0; 3]));
                    drop(req);
                    ready(Ok::<_, Infallible>(app_response()))
                })
            },
            move || s.same_origin(),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "b'",
        "  (info) layer: navigation with cookie, no Origin",
        drive(
            || layer().layer(bare()),
            move || {
                let mut r = s.same_origin();
                r.headers_mut().remove(ORIGIN);
                r
            },
            false,
        ),
    ));
    v
}

struct Plan {
    rounds: usize,
    /// Wall time one batch aims at.
    batch_time: Duration,
    /// Timed work per scenario and round.
    round_time: Duration,
}

fn micro(rt: &Runtime, shapes: &Shapes, plan: &Plan) -> Vec<Scenario> {
    let mut all = scenarios(shapes);
    // Warm-up and calibration: a batch size per scenario so a batch lasts about batch_time.
    for s in &mut all {
        s.run(rt, 200, false);
        let mut ns = s.run(rt, 200, false);
        for _ in 0..3 {
            ns = ns.min(s.run(rt, 500, false));
        }
        let per_batch = plan.batch_time.as_nanos() as f64 / ns.max(1.0);
        s.n = (per_batch as usize).clamp(50, 20_000);
        let per_round = plan.round_time.as_nanos() as f64 / (s.n as f64 * ns.max(1.0));
        s.batches = (per_round.ceil() as usize).clamp(2, 50);
    }
    for round in 0..plan.rounds {
        // Rotate the order so no scenario always follows the same neighbour.
        let len = all.len();
        for k in 0..len {
            let s = &mut all[(k + round) % len];
            let (n, batches) = (s.n, s.batches);
            for _ in 0..batches {
                s.run(rt, n, true);
            }
        }
    }
    all
}

fn get<'a>(all: &'a [Scenario], key: &str) -> &'a Scenario {
    all.iter().find(|s| s.key == key).expect("scenario")
}

fn print_micro(all: &[Scenario]) {
    println!();
    println!(
        "{:<4} {:<52} {:>10} {:>9} {:>9}",
        "row", "scenario", "ns/req", "+ns vs a", "allocs/req"
    );
    let a = get(all, "a").median();
    for s in all {
        let m = s.median();
        let delta = if s.key.starts_with('i') || s.key == "a" {
            String::from("")
        } else {
            format!("{:+.0}", m - a)
        };
        println!(
            "{:<4} {:<52} {:>10.0} {:>9} {:>9.1}",
            s.key,
            s.what,
            m,
            delta,
            s.allocs_per_op()
        );
    }
    let m = |k| get(all, k).median();
    let (a, b, c, d, e, f, g, h, i) = (
        m("a"),
        m("b"),
        m("c"),
        m("d"),
        m("e"),
        m("f"),
        m("g"),
        m("h"),
        m("i"),
    );
    println!();
    println!("SPEC §7 targets:");
    let row = |what: &str, value: String, target: &str, pass: bool| {
        println!(
            "  {:<44} {:>12}   target {:<10} {}",
            what,
            value,
            target,
            if pass { "PASS" } else { "MISS" }
        );
    };
    row(
        "b − a  (same-origin with cookie, added)",
        format!("{:.0} ns", b - a),
        "≤ 150 ns",
        b - a <= 150.0,
    );
    let r = (c - a) / (d - a);
    row(
        "(c − a)/(d − a)  (ours vs CorsLayer)",
        format!("{r:.2} ({:.1}x)", 1.0 / r),
        "≤ 0.50",
        (0.0..=0.5).contains(&r),
    );
    let r = (e - a) / (f - a);
    row(
        "(e − a)/(f − a)  (ours vs tower-sessions)",
        format!("{r:.2} ({:.1}x)", 1.0 / r),
        "≤ 0.25",
        (0.0..=0.25).contains(&r),
    );
    row(
        "g / i  (mint vs one HMAC)",
        format!("{:.2}", g / i),
        "≤ 4",
        g / i <= 4.0,
    );
    row(
        "h / i  (complete vs one HMAC)",
        format!("{:.2}", h / i),
        "≤ 4",
        h / i <= 4.0,
    );
}

// ---------------------------------------------------------------------------------------------
// Part 2: loopback HTTP with wrk.

type HyperBody = hyper::body::Incoming;

fn serve<S, RB>(rt: &Runtime, svc: S) -> SocketAddr
where
    S: Service<Request<HyperBody>, Response = Response<RB>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn wrk(addr: SocketAddr, secs: u64, cookie: &str) -> Option<f64> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{secs}s")])
        .args(["-H", &format!("Origin: {PUBLISHER}")])
        .args(["-H", &format!("Cookie: {cookie}")])
        .args(["-H", "Accept: application/json"])
        .arg(format!("http://{addr}/cart.json"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

fn http_part(shapes: &Shapes, quick: bool) {
    println!();
    println!("HTTP/1.1 over loopback (hyper, same-origin GET with cookie; wrk -t1 -c32):");
    if Command::new("wrk").arg("-v").output().is_err() {
        println!("  wrk not found: skipped (apt-get install -y wrk)");
        return;
    }
    // The servers get their own thread and current-thread runtime; wrk gets the other core.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let plain = serve(&rt, bare::<HyperBody>());
        let layered = serve(
            &rt,
            layer().layer(bare::<tower_amp_session::RequestBody<HyperBody>>()),
        );
        tx.send((plain, layered)).expect("main thread waits");
        rt.block_on(std::future::pending::<()>());
    });
    let (plain, layered) = rx.recv().expect("servers started");
    let secs = if quick { 1 } else { 3 };
    let rounds = if quick { 1 } else { 3 };
    let _ = wrk(plain, 1, shapes.cookie);
    let _ = wrk(layered, 1, shapes.cookie);
    let (mut p, mut l) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // ABBA order: neither server always goes first.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for with_layer in order {
            let addr = if with_layer { layered } else { plain };
            match wrk(addr, secs, shapes.cookie) {
                Some(rps) if with_layer => l.push(rps),
                Some(rps) => p.push(rps),
                None => {
                    println!("  wrk gave no result: skipped");
                    return;
                }
            }
        }
    }
    let (p, l) = (median(&p), median(&l));
    println!("  without layer  {p:>10.0} req/s");
    println!("  with layer     {l:>10.0} req/s");
    println!(
        "  ratio with/without {:.3}   target ≥ 0.95  {}",
        l / p,
        if l / p >= 0.95 { "PASS" } else { "MISS" }
    );
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run a smoke pass then.
    let args: Vec<String> = std::env::args().collect();
    let as_test = !args.iter().any(|a| a == "--bench");
    let quick = as_test || std::env::var_os("AMP_BENCH_QUICK").is_some();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shapes = Shapes::new();
    check_stacks(&rt, &shapes);

    if let Ok(key) = std::env::var("AMP_BENCH_ONLY") {
        // For a profiler: one scenario, in a loop, for AMP_BENCH_SECS seconds (default 10).
        let secs: u64 = std::env::var("AMP_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        let mut all = scenarios(&shapes);
        let s = all
            .iter_mut()
            .find(|s| s.key == key)
            .expect("known scenario key");
        let end = Instant::now() + Duration::from_secs(secs);
        let mut last = 0.0;
        while Instant::now() < end {
            last = s.run(&rt, 1000, true);
        }
        println!(
            "{key}: last batch {last:.0} ns/op, {:.1} allocs/op",
            s.allocs_per_op()
        );
        return;
    }

    let plan = if quick {
        Plan {
            rounds: 2,
            batch_time: Duration::from_micros(300),
            round_time: Duration::from_millis(2),
        }
    } else {
        Plan {
            rounds: 10,
            batch_time: Duration::from_millis(2),
            round_time: Duration::from_millis(80),
        }
    };
    println!("tower-amp-session overhead bench");
    println!(
        "CPU: {} ({} logical), load average at start: {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "{} interleaved rounds, current-thread tokio runtime, ready().call(), median of batches",
        plan.rounds
    );
    let t0 = Instant::now();
    let all = micro(&rt, &shapes, &plan);
    print_micro(&all);
    if !as_test && std::env::var_os("AMP_BENCH_NO_HTTP").is_none() {
        http_part(&shapes, quick);
    }
    println!();
    println!(
        "load average at end: {} (run took {:.0} s)",
        loadavg(),
        t0.elapsed().as_secs_f64()
    );
}

//! Per-request overhead of `AmpSessionLayer`, side by side with the anchors of SPEC §7 and
//! with an "ideal" layer: hand-written code in this file that does only the required work.
//!
//! `cargo bench --bench overhead` prints, from one run:
//!
//! * part 1: ns and heap allocations per request for every scenario, measured in interleaved
//!   rounds on one current-thread tokio runtime (`ready().call()` on a ready service; the
//!   requests of a batch are built before the clock starts), median over all batches;
//! * every SPEC §7 ratio with its target and PASS/MISS (the same-origin one against the
//!   ideal layer's added cost);
//! * part 2 (`overhead/http.rs`): requests/s over loopback HTTP/1.1 (hyper), the server
//!   pinned to core 0 and `wrk` to core 1 (`taskset`), at least 10 interleaved rounds of 2 s
//!   per server, the target being the median of the per-round ratios with layer / ideal,
//!   printed with IQR, min–max and load averages: the same-origin GET (with the bare server
//!   too, with/without and ideal/without as info), cache mints (`overhead/mint.lua`) and
//!   mints each completed once (`overhead/handoff.lua`) against the ideal handoff
//!   (`overhead/ideal_handoff.rs`). The scripts count every answer; any other than the
//!   expected 200 / 303 stops the bench. Skipped with a notice when `wrk` is not installed.
//! * printed between parts 1 and 2, how cost grows (issue 23, item 4): part 3
//!   (`overhead/scaling.rs`), mint urlencoded, mint multipart and complete at 1, 10 and 100
//!   fields and at bodies of ~100 B, 1 KB and the body limit (5120 B), with ns per KB and
//!   the marginal slopes; part 4 (`overhead/guard.rs`), `MemoryReplayGuard` at 10 000 and
//!   1 000 000 held nonces (ns per reserve + mark_applied, heap bytes per nonce); part 5,
//!   `RedisReplayGuard` completions/s at 1, 8 and 64 concurrent beside bare `SET NX PX` on
//!   the same client (skipped with a notice when `redis-server` is not installed).
//!
//! Before anything is timed, every stack is checked to answer as its row claims; the ideal
//! layer in particular must send exactly the crate's headers and find the same session on
//! the same requests, so a drift on either side stops the bench.
//!
//! Environment: `AMP_BENCH_QUICK=1` shortens everything (a smoke run, numbers unreliable);
//! `AMP_BENCH_NO_HTTP=1` skips part 2; `AMP_BENCH_NO_SCALING=1` skips parts 3 to 5 (quick
//! and `cargo test --benches` run them at tiny sizes: 10 000 and 20 000 nonces);
//! `AMP_BENCH_ROUNDS=<n>` sets the HTTP rounds of every scenario (at least 10 unless quick;
//! about 2.5 minutes at 10); `AMP_BENCH_ONLY=<key>` runs one scenario in a loop for a
//! profiler (e.g. `AMP_BENCH_ONLY=c perf record ...`; with `AMP_BENCH_ITERS=<n>`, exactly n
//! batches of 1000).
//! `AMP_BENCH_PREMINT=<m>` (profiler only, row h): mint m links up front; two callgrind runs
//! with the same m and ITERS 3 and 9 then differ by completions only.
//!
//! No assertion here depends on timing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, KeyInit, Mac};
use http::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN,
    REFERER, SET_COOKIE, USER_AGENT, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use sha2::Sha256;
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_amp_session::{
    AmpSession, AmpSessionLayer, CacheDomain, Keyring, MemoryReplayGuard, RequestBody, SessionId,
};

#[path = "overhead/guard.rs"]
mod guard;
#[path = "overhead/ideal_handoff.rs"]
mod ideal_handoff;
#[path = "overhead/scaling.rs"]
mod scaling;
#[path = "overhead/xchacha.rs"]
mod xchacha;

/// Part 2, loopback HTTP with wrk (`loopback::http_part`; the server child runs
/// `loopback::serve_main`).
#[path = "overhead/http.rs"]
mod loopback;

// ---------------------------------------------------------------------------------------------
// Counting allocator: every alloc, alloc_zeroed and realloc is one allocation; live bytes too.

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Heap bytes live now (part 4's bytes per nonce): alloc +size, dealloc −size, realloc ±.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards every call unchanged to `System`; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// The configuration of tests/common/mod.rs.

const PUBLISHER: &str = "https://shop.example";
const CACHE: &str = "https://shop-example.cdn.ampproject.org";
const CACHE_PAGE: &str = "https://shop-example.cdn.ampproject.org/c/s/shop.example/products/3";
/// What amp-form appends to every `action-xhr` (the layer checks and removes it).
const SOURCE_ORIGIN_QUERY: &str = "__amp_source_origin=https%3A%2F%2Fshop.example";
const KEY: [u8; 32] = [7u8; 32];
const BOUNDARY: &str = "----WebKitFormBoundaryAbC123";
const FIELDS: [(&str, &str); 3] = [("product_id", "3"), ("quantity", "2"), ("size", "M")];
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) bench";

fn keyring() -> Keyring {
    Keyring::builder()
        .signing("k1", KEY)
        .build()
        .expect("valid keyring")
}

fn builder() -> tower_amp_session::ConfigBuilder {
    AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(keyring())
        .cache(
            CacheDomain::custom("cache.localhost")
                .allow_http()
                .port(8081),
        )
        // The shop's add-to-cart: applied directly when the handoff comes from the cache page.
        .direct_route("/cart/add")
        // The bench's app reads no session; row e measures issuing a cookie (as row f does
        // for tower-sessions), which lazy mode, the default, would skip for such an app.
        .eager_cookie()
}

fn layer() -> AmpSessionLayer {
    builder().build().expect("valid configuration")
}

/// For the handoff: a replay guard large enough for a whole batch (a fresh layer per batch).
fn handoff_layer() -> AmpSessionLayer {
    builder()
        .replay_guard(MemoryReplayGuard::new(1 << 20))
        .build()
        .expect("valid configuration")
}

// ---------------------------------------------------------------------------------------------
// Requests, as browsers send them. Header values are `Bytes::from_static`, as cheap to clone
// as hyper's (zero-copy slices of its read buffer), so no scenario pays an allocation for
// request bytes.

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

fn sec_fetch(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

/// The name of the session cookie the layer issues, read from its own `Set-Cookie` (so the
/// bench follows the configuration's default, `amp_session` or `__Host-amp_session`).
fn cookie_name(rt: &Runtime) -> String {
    let res = rt
        .block_on(layer().layer(bare()).oneshot(request(
            Method::GET,
            Uri::from_static("/"),
            &[(HOST, "shop.example")],
            b"",
        )))
        .expect("answered");
    let set = res
        .headers()
        .get(SET_COOKIE)
        .expect("a first visit gets a cookie")
        .to_str()
        .expect("ascii");
    set.split_once('=').expect("name=value").0.to_owned()
}

/// The request shapes, built once; each scenario clones the static parts.
#[derive(Clone)]
struct Shapes {
    cookie_name: &'static str,
    /// The session among two other cookies, as a `Cookie` header.
    cookie: &'static str,
    session: SessionId,
    multipart_ct: &'static str,
    multipart_body: &'static [u8],
    multipart_len: &'static str,
    urlencoded_body: &'static [u8],
    urlencoded_len: &'static str,
    mint_uri: &'static str,
}

impl Shapes {
    fn new(cookie_name: String) -> Self {
        let session = SessionId::generate();
        let cookie = leak(format!(
            "_ga=GA1.2.1234567890.1700000000; {cookie_name}={}; theme=dark",
            session.as_str()
        ));
        let mut body = String::new();
        for (k, v) in FIELDS {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        let len = leak(body.len().to_string());
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(FIELDS);
        let form = form.finish();
        Shapes {
            cookie_name: leak(cookie_name),
            cookie,
            session,
            multipart_ct: leak(format!("multipart/form-data; boundary={BOUNDARY}")),
            multipart_body: leak(body).as_bytes(),
            multipart_len: len,
            urlencoded_len: leak(form.len().to_string()),
            urlencoded_body: leak(form).as_bytes(),
            mint_uri: leak(format!("/cart/add?{SOURCE_ORIGIN_QUERY}")),
        }
    }

    /// b, a, x: an amp-list / amp-form XHR from the publisher's own page, with the cookie.
    fn same_origin(&self) -> Request<Body> {
        self.xhr(PUBLISHER, "same-origin")
    }

    /// c, d: the same XHR from the page on the AMP cache, with the cookie (browsers that
    /// allow third-party cookies).
    fn cache(&self) -> Request<Body> {
        self.xhr(CACHE, "cross-site")
    }

    fn xhr(&self, origin: &'static str, site: &'static str) -> Request<Body> {
        request(
            Method::GET,
            Uri::from_static("/cart.json"),
            &[
                (HOST, "shop.example"),
                (USER_AGENT, UA),
                (ACCEPT, "application/json"),
                (ORIGIN, origin),
                (sec_fetch("sec-fetch-site"), site),
                (sec_fetch("sec-fetch-mode"), "cors"),
                (sec_fetch("sec-fetch-dest"), "empty"),
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
                (USER_AGENT, UA),
                (ACCEPT, "text/html"),
                (sec_fetch("sec-fetch-site"), "none"),
                (sec_fetch("sec-fetch-mode"), "navigate"),
                (sec_fetch("sec-fetch-dest"), "document"),
            ],
            b"",
        )
    }

    /// g: amp-form's POST from the cache page without the cookie (multipart, three fields).
    fn mint(&self) -> Request<Body> {
        self.mint_with(self.multipart_ct, self.multipart_len, self.multipart_body)
    }

    /// g': the same form with `enctype="application/x-www-form-urlencoded"`.
    fn mint_urlencoded(&self) -> Request<Body> {
        self.mint_with(
            "application/x-www-form-urlencoded",
            self.urlencoded_len,
            self.urlencoded_body,
        )
    }

    fn mint_with(&self, ct: &'static str, len: &'static str, body: &'static [u8]) -> Request<Body> {
        request(
            Method::POST,
            Uri::from_static(self.mint_uri),
            &[
                (HOST, "shop.example"),
                (USER_AGENT, UA),
                (ACCEPT, "application/json"),
                (ORIGIN, CACHE),
                (REFERER, CACHE_PAGE),
                (sec_fetch("sec-fetch-site"), "cross-site"),
                (sec_fetch("sec-fetch-mode"), "cors"),
                (sec_fetch("sec-fetch-dest"), "empty"),
                (CONTENT_TYPE, ct),
                (CONTENT_LENGTH, len),
            ],
            body,
        )
    }

    /// h: the top-level navigation amp-form starts to the handoff URL, from the cache page,
    /// on a browser that has the first-party cookie.
    fn complete(&self, handoff_url: &str) -> Request<Body> {
        let pq = handoff_url
            .strip_prefix(PUBLISHER)
            .expect("handoff on the publisher");
        let uri = Uri::from_maybe_shared(Bytes::from(pq.to_owned())).expect("valid handoff URI");
        request(
            Method::GET,
            uri,
            &[
                (HOST, "shop.example"),
                (USER_AGENT, UA),
                (ACCEPT, "text/html"),
                (REFERER, CACHE_PAGE),
                (sec_fetch("sec-fetch-site"), "cross-site"),
                (sec_fetch("sec-fetch-mode"), "navigate"),
                (sec_fetch("sec-fetch-dest"), "document"),
                (sec_fetch("sec-fetch-user"), "?1"),
                (COOKIE, self.cookie),
            ],
            b"",
        )
    }
}

/// The handoff URL (`AMP-Redirect-To`) the layer answers a mint with.
async fn mint_url<S>(svc: &mut S, req: Request<Body>) -> String
where
    S: Service<Request<Body>, Response = Response<tower_amp_session::ResponseBody<Body>>>,
    S::Error: Debug,
{
    let res = svc
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK, "mint");
    res.headers()["amp-redirect-to"]
        .to_str()
        .expect("ascii")
        .to_owned()
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
// The ideal layer: only the required work, hand-written, no configuration beyond what the
// work needs. It is the floor the same-origin target is measured against (SPEC §7).

/// The session the ideal layer exposes: the ID and where the request came from, the size of
/// the crate's `AmpSession`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdealSession {
    id: SessionId,
    from_cache: bool,
}

#[derive(Clone)]
struct Ideal<S> {
    inner: S,
    /// Allowed origins as `Origin` spells them; the first is the publisher's.
    allow: Arc<[Box<[u8]>]>,
    cookie: Arc<str>,
}

fn ideal<S>(ours: &AmpSessionLayer, cookie: &str, inner: S) -> Ideal<S> {
    let allow: Vec<Box<[u8]>> = std::iter::once(PUBLISHER)
        .chain(ours.cache_origins())
        .map(|o| o.as_bytes().into())
        .collect();
    Ideal {
        inner,
        allow: allow.into(),
        cookie: cookie.into(),
    }
}

/// The first value of cookie `name` that is a valid session ID.
fn find_session(headers: &HeaderMap, name: &str) -> Option<SessionId> {
    headers.get_all(COOKIE).iter().find_map(|v| {
        v.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let value = pair
                .trim_ascii_start()
                .strip_prefix(name.as_bytes())?
                .strip_prefix(b"=")?;
            SessionId::parse(std::str::from_utf8(value.trim_ascii_end()).ok()?)
        })
    })
}

impl<S, B> Service<Request<B>> for Ideal<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = IdealFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let origin = req.headers().get(ORIGIN).and_then(|o| {
            let i = self.allow.iter().position(|a| **a == *o.as_bytes())?;
            Some((o.clone(), i > 0))
        });
        if let Some(id) = find_session(req.headers(), &self.cookie) {
            req.extensions_mut().insert(IdealSession {
                id,
                from_cache: origin.as_ref().is_some_and(|(_, c)| *c),
            });
        }
        IdealFuture {
            future: self.inner.call(req),
            origin: origin.map(|(o, _)| o),
        }
    }
}

pin_project_lite::pin_project! {
    struct IdealFuture<F> {
        #[pin]
        future: F,
        origin: Option<HeaderValue>,
    }
}

impl<F, E> Future for IdealFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.future.poll(cx))?;
        let h = res.headers_mut();
        if let Some(origin) = this.origin.take() {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("AMP-Redirect-To"),
            );
        }
        h.append(VARY, HeaderValue::from_static("Origin"));
        Poll::Ready(Ok(res))
    }
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
    M: FnMut(usize) -> Vec<R> + 'static,
    S: Service<R> + 'static,
    S::Error: Debug,
{
    let mut svc = factory();
    Box::new(move |rt: &Runtime, n: usize| {
        if fresh {
            svc = factory();
        }
        let reqs = make(n);
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

/// The ideal mint over requests from `make` (its async fn called directly: no boxed future).
fn ideal_mint(
    cookie: &'static str,
    mut make: impl FnMut(usize) -> Vec<Request<Body>> + 'static,
) -> Batch {
    let svc = ideal_handoff::ideal_handoff(&layer(), cookie, bare::<Body>());
    Box::new(move |rt: &Runtime, n: usize| {
        let reqs = make(n);
        rt.block_on(async {
            let a0 = allocs();
            let t0 = Instant::now();
            for req in reqs {
                drop(black_box(svc.mint(req).await));
            }
            (t0.elapsed(), allocs() - a0)
        })
    })
}

/// The ideal completion over requests from `make`, a fresh replay map per batch (as (h) gets
/// a fresh guard).
fn ideal_complete(
    cookie: &'static str,
    mut make: impl FnMut(usize) -> Vec<Request<Body>> + 'static,
) -> Batch {
    Box::new(move |rt: &Runtime, n: usize| {
        let mut svc = ideal_handoff::ideal_handoff(&layer(), cookie, bare::<Body>());
        let reqs = make(n);
        rt.block_on(async {
            let a0 = allocs();
            let t0 = Instant::now();
            for req in reqs {
                drop(black_box(svc.complete(req).await));
            }
            (t0.elapsed(), allocs() - a0)
        })
    })
}

/// `n` requests from `one`.
fn each<R>(mut one: impl FnMut() -> R + 'static) -> impl FnMut(usize) -> Vec<R> + 'static {
    move |n| (0..n).map(|_| one()).collect()
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

    /// The statistic every ratio uses: the 10th percentile of batch times. On a machine
    /// shared with other work most batches are preempted or share the core; the fast tenth
    /// is the code's own cost (the median is printed beside it).
    fn ns(&self) -> f64 {
        quantile(&self.samples, 0.1)
    }

    fn median(&self) -> f64 {
        median(&self.samples)
    }

    fn allocs_per_op(&self) -> f64 {
        self.allocs as f64 / self.ops.max(1) as f64
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

/// Linear-interpolated quantile (`q` in 0..=1).
fn quantile(v: &[f64], q: f64) -> f64 {
    let v = sorted(v);
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
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

/// An app that records the session each stack exposes: the crate's `AmpSession` or the
/// ideal layer's `IdealSession`, as (ID, from the cache).
fn recording<B>(
    seen: Arc<Mutex<Vec<(SessionId, bool)>>>,
) -> impl Service<
    Request<B>,
    Response = Response<Body>,
    Error = Infallible,
    Future = Ready<Result<Response<Body>, Infallible>>,
> + Clone {
    tower::service_fn(move |req: Request<B>| {
        let e = req.extensions();
        let got = e
            .get::<AmpSession>()
            .map(|s| {
                (
                    s.id(),
                    s.source() == tower_amp_session::RequestSource::AmpCache,
                )
            })
            .or_else(|| e.get::<IdealSession>().map(|s| (s.id, s.from_cache)));
        if let Some(got) = got {
            seen.lock().expect("not poisoned").push(got);
        }
        ready(Ok::<_, Infallible>(app_response()))
    })
}

fn check_stacks(rt: &Runtime, shapes: &Shapes) {
    rt.block_on(async {
        let ours = layer();

        // The ideal layer against the crate, on the requests it is timed with.
        for (what, make, from_cache) in [
            (
                "same-origin",
                Shapes::same_origin as fn(&Shapes) -> _,
                false,
            ),
            ("cache", Shapes::cache, true),
        ] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let crate_res = ours
                .layer(recording(seen.clone()))
                .oneshot(make(shapes))
                .await
                .expect("answered");
            let ideal_res = ideal(&ours, shapes.cookie_name, recording(seen.clone()))
                .oneshot(make(shapes))
                .await
                .expect("answered");
            assert_eq!(crate_res.status(), ideal_res.status(), "{what}: status");
            assert_eq!(
                crate_res.headers(),
                ideal_res.headers(),
                "{what}: the ideal layer must send exactly the crate's headers"
            );
            assert_eq!(
                *seen.lock().expect("not poisoned"),
                [(shapes.session, from_cache), (shapes.session, from_cache)],
                "{what}: both find the session of the cookie"
            );
        }

        // The crate and tower-http's CorsLayer send the same CORS headers on (c).
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
            assert!(res.get(SET_COOKIE).is_none(), "{name}");
        }

        let res = ours
            .layer(bare())
            .oneshot(shapes.first_visit())
            .await
            .expect("answered");
        assert!(res.headers().get(SET_COOKIE).is_some(), "ours issues");
        let res = sessions_service()
            .oneshot(shapes.first_visit())
            .await
            .expect("answered");
        assert!(
            res.headers().get(SET_COOKIE).is_some(),
            "tower-sessions issues"
        );

        // (g) and (g') mint; (h) completes what (g) mints: the app gets the same fields,
        // the user lands on the cache page's path.
        for make in [Shapes::mint as fn(&Shapes) -> _, Shapes::mint_urlencoded] {
            let url = mint_url(&mut ours.layer(bare()), make(shapes)).await;
            let replayed = Arc::new(Mutex::new(None));
            let app = {
                let replayed = replayed.clone();
                tower::service_fn(move |req: Request<RequestBody<Body>>| {
                    let replayed = replayed.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.expect("replayed body").to_bytes();
                        *replayed.lock().expect("not poisoned") = Some((parts, body));
                        Ok::<_, Infallible>(app_response())
                    }
                })
            };
            let res = handoff_layer()
                .layer(app)
                .oneshot(shapes.complete(&url))
                .await
                .expect("answered");
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "complete");
            assert_eq!(res.headers()[LOCATION], "https://shop.example/products/3");
            let (parts, body) = replayed
                .lock()
                .expect("not poisoned")
                .take()
                .expect("the app was called");
            assert_eq!(parts.method, Method::POST);
            assert_eq!(parts.uri.path(), "/cart/add");
            let fields = fields_of(
                parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                &body,
            )
            .await;
            assert_eq!(fields, FIELDS.map(|(k, v)| (k.to_owned(), v.to_owned())));
            let session = parts.extensions.get::<AmpSession>().expect("session");
            assert_eq!(session.id(), shapes.session, "the cookie's session");
        }
    });
}

/// Rows k / k' time the bench's own copy of the crate's AEAD: it must open a token the
/// layer sealed, with the key the keyring derives, and refuse it with one bit changed.
fn check_aead(shapes: &Shapes) {
    let mut raw = token_bytes(shapes);
    let aad_len = 2 + usize::from(raw[1]);
    let tag_at = raw.len() - 16;
    let tag: [u8; 16] = raw[tag_at..].try_into().expect("16");
    let (head, rest) = raw[..tag_at].split_at_mut(aad_len + 24);
    let nonce: [u8; 24] = head[aad_len..].try_into().expect("24");
    let mut flipped = rest.to_vec();
    flipped[0] ^= 1;
    assert!(!xchacha::open(
        &token_key(),
        &nonce,
        &head[..aad_len],
        &mut flipped,
        &tag
    ));
    assert!(
        xchacha::open(&token_key(), &nonce, &head[..aad_len], rest, &tag),
        "the bench's AEAD opens the crate's token"
    );
}

/// The app of a completion check: records the replayed request and its body.
type Replayed = Arc<Mutex<Option<(http::request::Parts, Bytes)>>>;

fn replay_recorder<B>(
    replayed: Replayed,
) -> impl Service<Request<B>, Response = Response<Body>, Error = Infallible, Future = impl Send> + Clone
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Debug,
{
    tower::service_fn(move |req: Request<B>| {
        let replayed = replayed.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.expect("replayed body").to_bytes();
            *replayed.lock().expect("not poisoned") = Some((parts, body));
            Ok::<_, Infallible>(app_response())
        }
    })
}

/// What an app sees of a replayed change, comparable across the crate and the ideal: method,
/// path, form encoding, fields, session, and the other headers (sorted).
async fn replay_view(
    replayed: &Replayed,
) -> (
    Method,
    String,
    String,
    Vec<(String, String)>,
    SessionId,
    Vec<(String, String)>,
) {
    let (parts, body) = replayed
        .lock()
        .expect("not poisoned")
        .take()
        .expect("the app was called");
    let ct = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let fields = fields_of(Some(&ct), &body).await;
    let session = parts
        .extensions
        .get::<AmpSession>()
        .map(AmpSession::id)
        .or_else(|| parts.extensions.get::<IdealSession>().map(|s| s.id))
        .expect("a session");
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| *n != CONTENT_TYPE)
        .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
        .collect();
    headers.sort();
    // The multipart boundary is derived from the token's nonce: compare its shape.
    let kind = ct.split(';').next().unwrap_or("").to_owned();
    (
        parts.method,
        parts.uri.to_string(),
        kind,
        fields,
        session,
        headers,
    )
}

/// Rows m, m' and n: the ideal handoff answers as the crate does, and each side completes
/// the other's tokens.
fn check_ideal_handoff(rt: &Runtime, shapes: &Shapes) {
    rt.block_on(async {
        let ours = layer();
        for make in [Shapes::mint as fn(&Shapes) -> _, Shapes::mint_urlencoded] {
            // Mint: the same status, headers and JSON, but for the token.
            let theirs = ours
                .layer(bare::<RequestBody<Body>>())
                .oneshot(make(shapes))
                .await
                .expect("answered");
            let ideal = ideal_handoff::ideal_handoff(&ours, shapes.cookie_name, bare::<Body>());
            let mine = ideal.mint(make(shapes)).await;
            assert_eq!(theirs.status(), mine.status(), "ideal mint: status");
            let view = |h: &HeaderMap| {
                let mut v: Vec<(String, String)> = h
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
                    .collect();
                v.sort();
                v
            };
            let url_of = |h: &HeaderMap| h["amp-redirect-to"].to_str().expect("ascii").to_owned();
            let (their_url, my_url) = (url_of(theirs.headers()), url_of(mine.headers()));
            let without = |v: Vec<(String, String)>, url: &str| {
                v.into_iter()
                    .map(|(n, v)| (n, v.replace(url, "URL")))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                without(view(theirs.headers()), &their_url),
                without(view(mine.headers()), &my_url),
                "ideal mint: the crate's headers"
            );
            assert_eq!(
                their_url.len(),
                my_url.len(),
                "ideal mint: a token of the same size"
            );
            let json = |b: Bytes, url: &str| {
                String::from_utf8(b.to_vec())
                    .expect("utf-8")
                    .replace(url, "URL")
            };
            let their_json = theirs.into_body().collect().await.expect("body").to_bytes();
            let my_json = mine.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(
                json(their_json, &their_url),
                json(my_json, &my_url),
                "ideal mint: JSON"
            );

            // Each completes the other's token to the same 303 and the same replayed change.
            let mut views = Vec::new();
            let mut answers = Vec::new();
            for (url, by_crate) in [(&my_url, true), (&their_url, false)] {
                let replayed: Replayed = Arc::default();
                let res = if by_crate {
                    handoff_layer()
                        .layer(replay_recorder::<RequestBody<Body>>(replayed.clone()))
                        .oneshot(shapes.complete(url))
                        .await
                        .expect("answered")
                        .map(|_| ())
                } else {
                    let mut ideal = ideal_handoff::ideal_handoff(
                        &ours,
                        shapes.cookie_name,
                        replay_recorder::<Body>(replayed.clone()),
                    );
                    ideal.complete(shapes.complete(url)).await.map(|_| ())
                };
                assert_eq!(res.status(), StatusCode::SEE_OTHER, "complete");
                answers.push(view(res.headers()));
                views.push(replay_view(&replayed).await);
            }
            assert_eq!(answers[0], answers[1], "ideal complete: the crate's 303");
            assert_eq!(
                views[0], views[1],
                "ideal complete: the crate's replayed change"
            );
            assert_eq!(
                views[0].3,
                FIELDS.map(|(k, v)| (k.to_owned(), v.to_owned()))
            );
            assert_eq!(views[0].4, shapes.session);
        }
    });
}

/// The fields of a replayed form, either encoding.
async fn fields_of(content_type: Option<&str>, body: &Bytes) -> Vec<(String, String)> {
    let ct = content_type.unwrap_or("");
    if let Ok(boundary) = multer::parse_boundary(ct) {
        let stream = futures_util::stream::once(ready(Ok::<_, Infallible>(body.clone())));
        let mut m = multer::Multipart::new(stream, boundary);
        let mut out = Vec::new();
        while let Some(f) = m.next_field().await.expect("multipart") {
            let name = f.name().unwrap_or("").to_owned();
            out.push((name, f.text().await.expect("text")));
        }
        out
    } else {
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
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

/// One complete HMAC-SHA256 (key schedule included) over `bytes`.
fn hmac_full(bytes: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&KEY).expect("any key length");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

// ---------------------------------------------------------------------------------------------

fn scenarios(shapes: &Shapes) -> Vec<Scenario> {
    let mut v = Vec::new();
    let s = shapes.clone();
    v.push(Scenario::new(
        "a",
        "bare service_fn (baseline), same-origin XHR",
        drive(bare::<Body>, each(move || s.same_origin()), false),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "x",
        "ideal layer (hand-written floor), same as (b)",
        drive(
            move || ideal(&layer(), shapes_cookie(&s), bare::<Body>()),
            each({
                let s = shapes.clone();
                move || s.same_origin()
            }),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "b",
        "layer: same-origin XHR with session cookie",
        drive(
            || layer().layer(bare()),
            each(move || s.same_origin()),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "c",
        "layer: AMP-cache XHR with cookie (classify + CORS)",
        drive(|| layer().layer(bare()), each(move || s.cache()), false),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "d",
        "tower-http CorsLayer, same headers as (c)",
        drive(
            || cors_layer(&layer()).layer(bare()),
            each(move || s.cache()),
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
            each(move || s.first_visit()),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "f",
        "tower-sessions + MemoryStore: new session issued",
        drive(sessions_service, each(move || s.first_visit()), true),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "g",
        "layer: mint (cache POST, multipart, 3 fields)",
        drive(|| layer().layer(bare()), each(move || s.mint()), false),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "g'",
        "layer: mint (cache POST, urlencoded, 3 fields)",
        drive(
            || layer().layer(bare()),
            each(move || s.mint_urlencoded()),
            false,
        ),
    ));
    // (h) completes handoffs minted by the layer itself before the clock starts, one fresh
    // link per request (each is single-use), on a runtime of its own.
    let s = shapes.clone();
    let minter = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut mint_svc = layer().layer(bare::<RequestBody<Body>>());
    let premint: Option<usize> = std::env::var("AMP_BENCH_PREMINT")
        .ok()
        .and_then(|m| m.parse().ok());
    let mut pool = Vec::new();
    v.push(Scenario::new(
        "h",
        "layer: complete (handoff GET from the cache page)",
        drive(
            || handoff_layer().layer(bare()),
            move |n| {
                // AMP_BENCH_PREMINT=<m> (profiler only): mint m links in the first batch's
                // request-making step and serve later batches from them, so that two
                // callgrind runs with the same m and different AMP_BENCH_ITERS count the
                // same minting, and their difference is completion alone.
                if pool.is_empty() {
                    let m = premint.unwrap_or(n).max(n);
                    minter.block_on(async {
                        for _ in 0..m {
                            pool.push(s.complete(&mint_url(&mut mint_svc, s.mint()).await));
                        }
                    });
                    pool.reverse();
                }
                let keep = pool.len() - n;
                let mut out = pool.split_off(keep);
                out.reverse();
                out
            },
            true,
        ),
    ));
    // The ideal handoff rows: the same requests, hand-written code doing only the work.
    let s = shapes.clone();
    v.push(Scenario::new(
        "m",
        "ideal mint, multipart (hand-written floor of g)",
        ideal_mint(shapes_cookie(&s), each(move || s.mint())),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "m'",
        "ideal mint, urlencoded (hand-written floor of g')",
        ideal_mint(shapes_cookie(&s), each(move || s.mint_urlencoded())),
    ));
    let s = shapes.clone();
    let mut mint_svc = layer().layer(bare::<RequestBody<Body>>());
    let mut pool = Vec::new();
    v.push(Scenario::new(
        "n",
        "ideal complete (hand-written floor of h)",
        ideal_complete(shapes_cookie(shapes), move |n| {
            // Links the crate minted (as for h), made before the clock starts.
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                while pool.len() < n {
                    pool.push(s.complete(&mint_url(&mut mint_svc, s.mint()).await));
                }
            });
            pool.split_off(pool.len() - n)
        }),
    ));
    let token = token_bytes(shapes);
    let token_i = token.clone();
    v.push(Scenario::new(
        "i",
        "floor: one HMAC-SHA256 over the token of (h)",
        Box::new(move |_rt: &Runtime, n: usize| {
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                black_box(hmac_full(black_box(&token_i)));
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    // Informational: the same MAC from a keyed state prepared once (what a keyring can do).
    let keyed = <HmacSha256 as KeyInit>::new_from_slice(&KEY).expect("any key length");
    v.push(Scenario::new(
        "i'",
        "  (info) same MAC from a pre-keyed state",
        Box::new(move |_rt: &Runtime, n: usize| {
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                let mut mac = keyed.clone();
                mac.update(black_box(&token));
                black_box(mac.finalize());
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    // Informational: the token's AEAD by itself, on a plaintext the size of (h)'s token, with
    // the nonce drawn as the crate draws it: the part of (g) and (h) no other cut can reach.
    // The crate's construction (HChaCha20 + ring), with the crate's derived key.
    let sealed = aead_sample(&token_bytes(shapes));
    let plain_len = sealed.ct.len();
    let key = token_key();
    v.push(Scenario::new(
        "k",
        "XChaCha20-Poly1305 seal alone (HChaCha20 + ring)",
        Box::new(move |_rt: &Runtime, n: usize| {
            let mut buf = vec![0u8; plain_len];
            let aad = sealed.aad.clone();
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                let mut nonce = [0u8; 24];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
                black_box(xchacha::seal(&key, &nonce, black_box(&aad), &mut buf));
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    let sealed = aead_sample(&token_bytes(shapes));
    v.push(Scenario::new(
        "k'",
        "XChaCha20-Poly1305 open alone (HChaCha20 + ring)",
        Box::new(move |_rt: &Runtime, n: usize| {
            let mut buf = sealed.ct.clone();
            let tag: [u8; 16] = sealed.tag.into();
            let nonce: [u8; 24] = sealed.nonce.into();
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                buf.copy_from_slice(&sealed.ct);
                assert!(xchacha::open(
                    &key,
                    &nonce,
                    black_box(&sealed.aad),
                    &mut buf,
                    &tag
                ));
                black_box(&buf);
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    // What the crate used before: RustCrypto's XChaCha20Poly1305, same key and sizes.
    let sealed = aead_sample(&token_bytes(shapes));
    let plain_len = sealed.ct.len();
    v.push(Scenario::new(
        "k0",
        "  (info) RustCrypto XChaCha20Poly1305 seal, same",
        Box::new(move |_rt: &Runtime, n: usize| {
            let cipher = aead_cipher();
            let mut buf = vec![0u8; plain_len];
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                let mut nonce = [0u8; 24];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
                let tag = cipher
                    .encrypt_inout_detached(
                        &XNonce::from(nonce),
                        black_box(&sealed.aad),
                        buf.as_mut_slice().into(),
                    )
                    .expect("seal");
                black_box(tag);
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    let sealed = aead_sample(&token_bytes(shapes));
    v.push(Scenario::new(
        "k0'",
        "  (info) RustCrypto XChaCha20Poly1305 open, same",
        Box::new(move |_rt: &Runtime, n: usize| {
            let cipher = aead_cipher();
            let mut buf = sealed.ct.clone();
            let a0 = allocs();
            let t0 = Instant::now();
            for _ in 0..n {
                buf.copy_from_slice(&sealed.ct);
                cipher
                    .decrypt_inout_detached(
                        &sealed.nonce,
                        black_box(&sealed.aad),
                        buf.as_mut_slice().into(),
                        &sealed.tag,
                    )
                    .expect("open");
                black_box(&buf);
            }
            (t0.elapsed(), allocs() - a0)
        }),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "x'",
        "  (info) ideal layer, same as (c)",
        drive(
            move || ideal(&layer(), shapes_cookie(&s), bare::<Body>()),
            each({
                let s = shapes.clone();
                move || s.cache()
            }),
            false,
        ),
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
            each(move || s.same_origin()),
            false,
        ),
    ));
    let s = shapes.clone();
    v.push(Scenario::new(
        "b'",
        "  (info) layer: navigation with cookie, no Origin",
        drive(
            || layer().layer(bare()),
            each(move || {
                let mut r = s.same_origin();
                r.headers_mut().remove(ORIGIN);
                r
            }),
            false,
        ),
    ));
    v
}

fn shapes_cookie(s: &Shapes) -> &'static str {
    s.cookie_name
}

/// The bytes of one token the layer mints for (g) (base64url-decoded).
fn token_bytes(shapes: &Shapes) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let url = rt.block_on(mint_url(
        &mut layer().layer(bare::<RequestBody<Body>>()),
        shapes.mint(),
    ));
    let token = url.split_once("token=").expect("token").1;
    URL_SAFE_NO_PAD.decode(token).expect("base64url token")
}

/// A message sealed the way the crate seals a token, with the bench's own key: the shape of
/// `token` (associated data, plaintext length), for rows (k) and (k').
struct AeadSample {
    aad: Vec<u8>,
    nonce: XNonce,
    ct: Vec<u8>,
    tag: Tag,
}

/// The token key the keyring derives from the bench's key (HKDF-SHA256, the v2 `info`).
fn token_key() -> [u8; 32] {
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, &KEY)
        .expand(b"tower-amp-session/handoff/v2", &mut okm)
        .expect("32 bytes");
    okm
}

fn aead_cipher() -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&token_key().into())
}

fn aead_sample(token: &[u8]) -> AeadSample {
    // version | key id len | key id, then the 24-byte nonce, the ciphertext, the 16-byte tag.
    let aad_len = 2 + usize::from(token[1]);
    let aad = token[..aad_len].to_vec();
    let mut ct = vec![0x5a; token.len() - aad_len - 24 - 16];
    let nonce = XNonce::from([9u8; 24]);
    let tag = aead_cipher()
        .encrypt_inout_detached(&nonce, &aad, ct.as_mut_slice().into())
        .expect("seal");
    AeadSample {
        aad,
        nonce,
        ct,
        tag,
    }
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
        s.n = (per_batch as usize).clamp(20, 20_000);
        let per_round = plan.round_time.as_nanos() as f64 / (s.n as f64 * ns.max(1.0));
        s.batches = (per_round.ceil() as usize).clamp(4, 400);
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

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn target_row(what: &str, value: String, target: &str, pass: bool) {
    println!(
        "  {:<50} {:>14}   target {:<8} {}",
        what,
        value,
        target,
        verdict(pass)
    );
}

fn print_micro(all: &[Scenario]) {
    println!();
    println!(
        "{:<4} {:<50} {:>8} {:>9} {:>8} {:>7}",
        "row", "scenario", "ns p10", "+ns vs a", "median", "allocs"
    );
    let a = get(all, "a").ns();
    for s in all {
        let m = s.ns();
        let delta = if s.key.starts_with(['i', 'k', 'm', 'n']) || s.key == "a" {
            String::new()
        } else {
            format!("{:+.0}", m - a)
        };
        println!(
            "{:<4} {:<50} {:>8.0} {:>9} {:>8.0} {:>7.1}",
            s.key,
            s.what,
            m,
            delta,
            s.median(),
            s.allocs_per_op()
        );
    }
    println!("(ns p10: 10th percentile of per-batch ns/req; ratios below use it)");
    let m = |k| get(all, k).ns();
    let (x, b, c, d, e, f) = (m("x"), m("b"), m("c"), m("d"), m("e"), m("f"));
    let (g, gu, h, i) = (m("g"), m("g'"), m("h"), m("i"));
    println!();
    println!("SPEC §7 targets (this run):");
    let r = (b - a) / (x - a);
    target_row(
        "(b − a)/(x − a)  same-origin added, vs the ideal",
        format!("{r:.2}x"),
        "≤ 1.15x",
        r <= 1.15,
    );
    let r = (d - a) / (c - a);
    target_row(
        "(d − a)/(c − a)  CorsLayer added, vs ours (c)",
        format!("{r:.2}x"),
        "≥ 2.2x",
        r >= 2.2,
    );
    let r = (f - a) / (e - a);
    target_row(
        "(f − a)/(e − a)  tower-sessions issuing, vs ours",
        format!("{r:.1}x"),
        "≥ 7x",
        r >= 7.0,
    );
    let (im, imu, ic) = (m("m"), m("m'"), m("n"));
    let r = g / im;
    target_row(
        "g / m  mint multipart, vs the ideal mint",
        format!("{r:.2}x"),
        "≤ 1.5x",
        r <= 1.5,
    );
    let r = gu / imu;
    target_row(
        "g' / m'  mint urlencoded, vs the ideal mint",
        format!("{r:.2}x"),
        "≤ 1.3x",
        r <= 1.3,
    );
    let r = h / ic;
    target_row(
        "h / n  complete, vs the ideal completion",
        format!("{r:.2}x"),
        "≤ 1.3x",
        r <= 1.3,
    );
    println!(
        "  (info) in HMACs (i): mint multipart {:.2} (ideal {:.2}), urlencoded {:.2} (ideal {:.2}), complete {:.2} (ideal {:.2})",
        g / i,
        im / i,
        gu / i,
        imu / i,
        h / i,
        ic / i
    );
    println!(
        "  (info) ideal on (c): {:+.0} ns; ours (c) over the ideal: {:.2}x",
        m("x'") - a,
        (c - a) / (m("x'") - a)
    );
    let (k, ko) = (m("k"), m("k'"));
    target_row(
        "k / i  the token's AEAD, seal, in HMACs",
        format!("{:.2}", k / i),
        "≤ 1.5",
        k / i <= 1.5,
    );
    target_row(
        "k' / i  the token's AEAD, open, in HMACs",
        format!("{:.2}", ko / i),
        "≤ 1.5",
        ko / i <= 1.5,
    );
    println!(
        "  (info) RustCrypto XChaCha20Poly1305 (before): seal {:.2} HMACs, open {:.2}; without the AEAD, g' / i {:.2}, h / i {:.2}",
        m("k0") / i,
        m("k0'") / i,
        (gu - k) / i,
        (h - ko) / i
    );
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(cookie) = std::env::var(loopback::SERVE_ENV) {
        loopback::serve_main(&cookie);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run a smoke pass then.
    let args: Vec<String> = std::env::args().collect();
    let as_test = !args.iter().any(|a| a == "--bench");
    let quick = as_test || std::env::var_os("AMP_BENCH_QUICK").is_some();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shapes = Shapes::new(cookie_name(&rt));
    check_stacks(&rt, &shapes);
    check_aead(&shapes);
    check_ideal_handoff(&rt, &shapes);

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
        // AMP_BENCH_ITERS=<n>: exactly n batches of 1000 instead (for instruction counts:
        // `valgrind --tool=callgrind` at two n, the difference per request is exact).
        let iters: Option<usize> = std::env::var("AMP_BENCH_ITERS")
            .ok()
            .and_then(|s| s.parse().ok());
        let end = Instant::now() + Duration::from_secs(secs);
        let mut last = 0.0;
        let mut done = 0;
        while iters.map_or(Instant::now() < end, |n| done < n) {
            last = s.run(&rt, 1000, true);
            done += 1;
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
            // Short batches: most fit in one scheduler time slice on a busy machine.
            batch_time: Duration::from_micros(250),
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
        "session cookie: {}; {} interleaved rounds, current-thread tokio runtime, ready().call(), batches of ~250 µs",
        shapes.cookie_name, plan.rounds
    );
    let t0 = Instant::now();
    let all = micro(&rt, &shapes, &plan);
    print_micro(&all);
    println!("  load average after part 1: {}", loadavg());
    if std::env::var_os("AMP_BENCH_NO_SCALING").is_none() {
        scaling::run(&rt, &shapes, quick);
        guard::memory(quick);
        guard::redis(quick);
    }
    if !as_test && std::env::var_os("AMP_BENCH_NO_HTTP").is_none() {
        loopback::http_part(&shapes, quick);
    }
    println!();
    println!(
        "load average at end: {} (run took {:.0} s)",
        loadavg(),
        t0.elapsed().as_secs_f64()
    );
}

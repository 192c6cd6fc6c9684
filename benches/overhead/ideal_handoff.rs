//! The ideal handoff: hand-written code that does only the work a handoff requires, the floor
//! the mint and complete targets are measured against (SPEC §7), as [`super::Ideal`] is for
//! pass-through.
//!
//! Mint: check the method, the cache `Origin`, that no session cookie came, and the
//! `__amp_source_origin` parameter; read the bounded body; take the fields (a urlencoded body
//! as it is, a multipart body's text fields url-encoded); the return path from the cache
//! page's `Referer`; seal the token (the crate's format and AEAD); encode it into the handoff
//! URL; answer 200 with `AMP-Redirect-To`, its JSON and the CORS headers.
//!
//! Complete: check the navigation headers; take the token from the query; decode and open it;
//! check its time, publisher and target; decide "direct" from the `Referer` and the route;
//! find the session cookie; reserve the nonce in a map; rebuild the POST (a multipart body
//! for a multipart form); call the app; commit the nonce; answer 303 with the cookie's
//! headers.
//!
//! It handles the inputs the bench sends, and says so with a panic on anything else;
//! `check` holds its answers equal to the crate's before anything is timed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, ORIGIN, REFERER, SET_COOKIE, VARY,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Full, Limited};
use rand::RngCore;
use tower::{Service, ServiceExt};
use tower_amp_session::AmpSessionLayer;

use super::{find_session, token_key, xchacha, IdealSession, CACHE, PUBLISHER};

type Body = Full<Bytes>;

const HANDOFF_PATH: &str = "/_amp/handoff";
const DIRECT_ROUTE: &str = "/cart/add";
const BODY_LIMIT: usize = 5120;
const TTL: u64 = 300;
const KEY_ID: &[u8] = b"k1";
const RETURN_FIELD: &[u8] = b"amp_return_path";
const URL_PREFIX: &str = "https://shop.example/_amp/handoff?token=";
/// `__amp_source_origin` as amp-form appends it for this publisher.
const SOURCE_ORIGIN: &str = "__amp_source_origin=https%3A%2F%2Fshop.example";
/// The cache page URL up to the publisher's path (`/c/s/` for https).
const CACHE_PAGE_PREFIX: &str = "https://shop-example.cdn.ampproject.org/c/s/shop.example";
const ANSWER_HEAD: &[u8] = br#"{"handoff":true,"handoff_url":""#;
const ANSWER_TAIL: &[u8] =
    "\",\"message\":\"Continuing on shop.example\u{2026}\",\"origin\":\"https://shop.example\"}"
        .as_bytes();

static AMP_REDIRECT_TO: HeaderName = HeaderName::from_static("amp-redirect-to");
static REFERRER_POLICY: HeaderName = HeaderName::from_static("referrer-policy");

/// The state of a nonce in the ideal's replay map.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nonce {
    Pending,
    Applied,
}

/// The ideal replay map: nonce → (state, expiry).
type Used = HashMap<[u8; 16], (Nonce, u64)>;

/// The ideal handoff around an app `S`; pass-through requests go to [`super::Ideal`]'s logic.
#[derive(Clone)]
pub struct IdealHandoff<S> {
    inner: S,
    key: Arc<[u8; 32]>,
    cookie: &'static str,
    /// Nonce → (state, expiry): what a replay guard holds.
    used: Arc<Mutex<Used>>,
    pass: super::Ideal<S>,
}

/// The ideal handoff over `inner`, with the crate layer's allowlist and the session cookie
/// `cookie`.
pub fn ideal_handoff<S: Clone>(
    ours: &AmpSessionLayer,
    cookie: &'static str,
    inner: S,
) -> IdealHandoff<S> {
    IdealHandoff {
        pass: super::ideal(ours, cookie, inner.clone()),
        inner,
        key: Arc::new(token_key()),
        cookie,
        used: Arc::new(Mutex::new(HashMap::with_capacity(1024))),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<S> IdealHandoff<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    /// A cookieless POST from the cache page: the `AMP-Redirect-To` answer.
    pub async fn mint<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let h = &parts.headers;
        assert_eq!(parts.method, Method::POST, "ideal mint: a POST");
        let origin = h.get(ORIGIN).expect("ideal mint: an Origin").clone();
        assert_eq!(origin.as_bytes(), CACHE.as_bytes(), "ideal mint: the cache");
        assert!(
            find_session(h, self.cookie).is_none(),
            "ideal mint: no cookie"
        );
        // The target without amp-form's `__amp_source_origin` (checked).
        let path = parts.uri.path();
        let target = match parts.uri.query() {
            Some(q) if q == SOURCE_ORIGIN => path,
            other => panic!("ideal mint: query {other:?}"),
        };
        let ct = h.get(CONTENT_TYPE).expect("ideal mint: a form").as_bytes();
        let multipart = if ct == b"application/x-www-form-urlencoded" {
            None
        } else {
            let b = ct
                .strip_prefix(b"multipart/form-data; boundary=")
                .expect("ideal mint: urlencoded or multipart");
            Some(b)
        };
        let declared: usize = h
            .get(CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()?.parse().ok())
            .expect("ideal mint: a length");
        assert!(declared <= BODY_LIMIT, "ideal mint: within the limit");
        let bytes = Limited::new(body, BODY_LIMIT)
            .collect()
            .await
            .expect("ideal mint: a body within the limit")
            .to_bytes();
        let fields: Vec<u8>;
        let fields: &[u8] = match multipart {
            None => &bytes,
            Some(boundary) => {
                fields = multipart_fields(&bytes, boundary);
                &fields
            }
        };
        assert!(
            memchr::memmem::find(fields, RETURN_FIELD).is_none(),
            "ideal mint: no return path field"
        );
        // The return path: the cache page's path on the publisher.
        let referer = h.get(REFERER).expect("ideal mint: a Referer").as_bytes();
        let return_path = std::str::from_utf8(
            referer
                .strip_prefix(CACHE_PAGE_PREFIX.as_bytes())
                .expect("ideal mint: a cache page"),
        )
        .expect("ascii");
        assert!(
            return_path.starts_with('/') && !return_path.contains(['?', '#', '%']),
            "ideal mint: a plain path"
        );

        let url = seal(
            &self.key,
            target,
            u8::from(multipart.is_some()) + 1,
            fields,
            return_path,
        );
        let mut answer = Vec::with_capacity(ANSWER_HEAD.len() + url.len() + ANSWER_TAIL.len());
        answer.extend_from_slice(ANSWER_HEAD);
        answer.extend_from_slice(&url);
        answer.extend_from_slice(ANSWER_TAIL);
        let location = HeaderValue::from_maybe_shared(Bytes::from(url)).expect("base64url");
        let mut res = Response::new(Full::new(Bytes::from(answer)));
        let h = res.headers_mut();
        h.reserve(7);
        h.insert(&AMP_REDIRECT_TO, location);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("AMP-Redirect-To"),
        );
        h.append(VARY, HeaderValue::from_static("Origin"));
        res
    }

    /// The handoff navigation from the cache page: the change applied, a 303.
    pub async fn complete<B>(&mut self, req: Request<B>) -> Response<Body> {
        let (mut parts, _) = req.into_parts();
        let h = &parts.headers;
        assert_eq!(parts.method, Method::GET, "ideal complete: a GET");
        assert!(
            h.get("sec-fetch-mode").is_some_and(|v| v == "navigate")
                && h.get("sec-fetch-dest").is_some_and(|v| v == "document"),
            "ideal complete: a navigation"
        );
        let text = parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("token="))
            .filter(|t| !t.contains('&'))
            .expect("ideal complete: one token");
        let mut raw = vec![0u8; base64::decoded_len_estimate(text.len())];
        let n = URL_SAFE_NO_PAD
            .decode_slice(text, &mut raw)
            .expect("ideal complete: base64url");
        raw.truncate(n);
        let aad_len = 2 + KEY_ID.len();
        assert!(
            raw[0] == 2 && raw[2..aad_len] == *KEY_ID,
            "ideal complete: v2, k1"
        );
        let tag_at = raw.len() - 16;
        let tag: [u8; 16] = raw[tag_at..].try_into().expect("16");
        let (head, rest) = raw[..tag_at].split_at_mut(aad_len + 24);
        let nonce: [u8; 24] = head[aad_len..].try_into().expect("24");
        assert!(
            xchacha::open(&self.key, &nonce, &head[..aad_len], rest, &tag),
            "ideal complete: authentic"
        );
        let plain_at = aad_len + 24;
        let raw = Bytes::from(raw);
        let mut r = Reader {
            buf: &raw,
            at: plain_at,
        };
        let issued_at = r.u64();
        let expires_at = r.u64();
        let now = now();
        assert!(issued_at <= now + 60 && now < expires_at, "ideal: in time");
        let replay: [u8; 16] = r.take(16).try_into().expect("16");
        assert_eq!(r.take16(), PUBLISHER.as_bytes(), "ideal: this publisher");
        let method_len = usize::from(r.u8());
        assert_eq!(r.take(method_len), b"POST", "ideal: a POST");
        let (t0, t1) = r.range16();
        let encoding = r.u8();
        let (b0, b1) = r.range16();
        let return_path = std::str::from_utf8(r.take16()).expect("ideal: UTF-8");
        assert!(return_path.starts_with('/') && !return_path.starts_with("//"));
        let target = &raw[t0..t1];
        assert!(target.starts_with(b"/") && !target.starts_with(b"//"));
        let uri = Uri::from_maybe_shared(raw.slice(t0..t1)).expect("ideal: a target");
        // Direct: from this publisher's cache page, to a declared route.
        let referer = h.get(REFERER).expect("ideal: a Referer").as_bytes();
        assert!(
            referer.starts_with(CACHE.as_bytes())
                && matches!(referer.get(CACHE.len()), None | Some(b'/' | b'?' | b'#'))
                && uri.path() == DIRECT_ROUTE,
            "ideal: direct"
        );
        let session = find_session(h, self.cookie).expect("ideal: the shopper's cookie");

        {
            let mut used = self.used.lock().expect("not poisoned");
            let fresh = used.insert(replay, (Nonce::Pending, expires_at)).is_none();
            assert!(fresh, "ideal: a fresh link");
        }
        let (content_type, body) = if encoding == 2 {
            let mut ct = String::with_capacity(30 + 12 + 32);
            ct.push_str("multipart/form-data; boundary=amp-handoff-");
            for b in replay {
                use std::fmt::Write;
                let _ = write!(ct, "{b:02x}");
            }
            let body = multipart_body(&raw[b0..b1], &ct.as_bytes()[30..]);
            (
                HeaderValue::from_maybe_shared(Bytes::from(ct)).expect("ascii"),
                Bytes::from(body),
            )
        } else {
            (
                HeaderValue::from_static("application/x-www-form-urlencoded"),
                raw.slice(b0..b1),
            )
        };
        let len = body.len();
        let back = {
            let mut s = String::with_capacity(PUBLISHER.len() + return_path.len());
            s.push_str(PUBLISHER);
            s.push_str(return_path);
            s
        };
        // The navigation's headers, less those that describe it, plus the form's.
        let mut headers = std::mem::take(&mut parts.headers);
        for name in [
            "sec-fetch-site",
            "sec-fetch-mode",
            "sec-fetch-dest",
            "sec-fetch-user",
        ] {
            headers.remove(name);
        }
        headers.insert(ORIGIN, HeaderValue::from_static(PUBLISHER));
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        let mut replayed = Request::new(Full::new(body));
        *replayed.method_mut() = Method::POST;
        *replayed.uri_mut() = uri;
        *replayed.headers_mut() = headers;
        replayed.extensions_mut().insert(IdealSession {
            id: session,
            from_cache: false,
        });
        let app = match self.inner.ready().await {
            Ok(app) => app.call(replayed).await,
            Err(e) => Err(e),
        };
        let app = match app {
            Ok(res) => res,
            Err(never) => match never {},
        };
        assert!(app.status().is_success(), "ideal: applied");
        self.used
            .lock()
            .expect("not poisoned")
            .insert(replay, (Nonce::Applied, expires_at));
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::SEE_OTHER;
        let h = res.headers_mut();
        h.insert(
            LOCATION,
            HeaderValue::from_maybe_shared(Bytes::from(back)).expect("a URL"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(&REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        for c in app.headers().get_all(SET_COOKIE) {
            h.append(SET_COOKIE, c.clone());
        }
        res
    }

    /// Which of the three a request is: a completion, a mint, or pass-through.
    fn route<B>(&self, req: &Request<B>) -> Route {
        if req.uri().path() == HANDOFF_PATH {
            return Route::Complete;
        }
        let from_cache = req
            .headers()
            .get(ORIGIN)
            .is_some_and(|o| o.as_bytes() == CACHE.as_bytes());
        if from_cache
            && req.method() == Method::POST
            && find_session(req.headers(), self.cookie).is_none()
        {
            Route::Mint
        } else {
            Route::Pass
        }
    }
}

enum Route {
    Mint,
    Complete,
    Pass,
}

/// The ideal as a `Service`, for the HTTP part (hyper needs one). The future is boxed here;
/// the micro rows call [`IdealHandoff::mint`] and [`IdealHandoff::complete`] unboxed.
impl<S, B> Service<Request<B>> for IdealHandoff<S>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.route(&req) {
            Route::Mint => {
                let this = self.clone();
                Box::pin(async move { Ok(this.mint(req).await) })
            }
            Route::Complete => {
                let mut this = self.clone();
                Box::pin(async move { Ok(this.complete(req).await) })
            }
            Route::Pass => {
                let future = self.pass.call(req.map(|b| {
                    // The bench's pass-through requests carry no body.
                    drop(b);
                    Full::new(Bytes::new())
                }));
                Box::pin(future)
            }
        }
    }
}

/// The token of one change in the crate's format v2, appended to [`URL_PREFIX`].
fn seal(key: &[u8; 32], target: &str, encoding: u8, body: &[u8], return_path: &str) -> Vec<u8> {
    let mut nonce = [0u8; 16];
    let mut aead_nonce = [0u8; 24];
    let mut rng = rand::rng();
    rng.fill_bytes(&mut nonce);
    rng.fill_bytes(&mut aead_nonce);
    let now = now();
    let aad_len = 2 + KEY_ID.len();
    let plain_len = 8
        + 8
        + 16
        + 2
        + PUBLISHER.len()
        + 1
        + 4
        + 2
        + target.len()
        + 1
        + 2
        + body.len()
        + 2
        + return_path.len();
    let len = aad_len + 24 + plain_len + 16;
    let mut raw = Vec::with_capacity(len);
    raw.extend_from_slice(&[2, KEY_ID.len() as u8]);
    raw.extend_from_slice(KEY_ID);
    raw.extend_from_slice(&aead_nonce);
    raw.extend_from_slice(&now.to_be_bytes());
    raw.extend_from_slice(&(now + TTL).to_be_bytes());
    raw.extend_from_slice(&nonce);
    for (i, field) in [
        PUBLISHER.as_bytes(),
        b"POST",
        target.as_bytes(),
        &[encoding],
        body,
        return_path.as_bytes(),
    ]
    .into_iter()
    .enumerate()
    {
        match i {
            1 => raw.push(4),
            3 => {}
            _ => raw.extend_from_slice(&(field.len() as u16).to_be_bytes()),
        }
        raw.extend_from_slice(field);
    }
    let (head, plain) = raw.split_at_mut(aad_len + 24);
    let tag = xchacha::seal(key, &aead_nonce, &head[..aad_len], plain);
    raw.extend_from_slice(&tag);
    debug_assert_eq!(raw.len(), len);
    let text_len = base64::encoded_len(len, false).expect("small");
    let mut url = Vec::with_capacity(URL_PREFIX.len() + text_len);
    url.extend_from_slice(URL_PREFIX.as_bytes());
    url.resize(URL_PREFIX.len() + text_len, 0);
    URL_SAFE_NO_PAD
        .encode_slice(&raw, &mut url[URL_PREFIX.len()..])
        .expect("sized");
    url
}

/// The text fields of a browser's multipart body, url-encoded (`name=value&…`).
fn multipart_fields(body: &[u8], boundary: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 2);
    let mut rest = body;
    loop {
        rest = rest
            .strip_prefix(b"--")
            .and_then(|r| r.strip_prefix(boundary))
            .expect("ideal: a delimiter");
        if rest.starts_with(b"--") {
            return out;
        }
        rest = rest
            .strip_prefix(b"\r\nContent-Disposition: form-data; name=\"")
            .expect("ideal: a text field");
        let q = memchr::memchr(b'"', rest).expect("ideal: a name");
        let name = &rest[..q];
        rest = rest[q..]
            .strip_prefix(b"\"\r\n\r\n")
            .expect("ideal: no part headers");
        let end = memchr::memmem::find(rest, b"\r\n--").expect("ideal: a value");
        if !out.is_empty() {
            out.push(b'&');
        }
        out.extend(form_urlencoded::byte_serialize(name).flat_map(str::bytes));
        out.push(b'=');
        out.extend(form_urlencoded::byte_serialize(&rest[..end]).flat_map(str::bytes));
        rest = &rest[end + 2..];
    }
}

/// The multipart body of plain url-encoded fields (no `%`, `+` or quotes: the bench's).
fn multipart_body(fields: &[u8], boundary: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() * 2 + 128);
    for pair in fields.split(|&b| b == b'&') {
        let eq = memchr::memchr(b'=', pair).unwrap_or(pair.len());
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary);
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(&pair[..eq]);
        out.extend_from_slice(b"\"\r\n\r\n");
        out.extend_from_slice(pair.get(eq + 1..).unwrap_or(b""));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--\r\n");
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> usize {
        let b = self.take(2);
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().expect("8"))
    }
    fn take16(&mut self) -> &'a [u8] {
        let n = self.u16();
        self.take(n)
    }
    fn range16(&mut self) -> (usize, usize) {
        let n = self.u16();
        let at = self.at;
        self.take(n);
        (at, at + n)
    }
}

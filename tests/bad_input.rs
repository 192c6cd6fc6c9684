//! SPEC section 6 as tables: malformed headers, cookies, bodies and tokens never cause a 500
//! or a panic. Every refusal has a fitting 4xx, says why in its body and in the `Rejection`
//! response extension, sets no cookie, mints nothing, and leaves the app uncalled. Rows that
//! the layer accepts say what the app then sees, so a reader finds every family's whole
//! behaviour in one place.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use http::{HeaderValue, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt};
use tower_amp_session::{AmpSession, RequestBody, SessionId};

/// What the layer does with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Answered by the layer with this status and a reason containing this text.
    Refused(u16, &'static str),
    /// Reaches the app once, with a new session.
    AppNew,
    /// Reaches the app once, with the session of the row's valid cookie.
    AppKept,
    /// A cache request without a usable cookie: handed off (200 + `AMP-Redirect-To`), the
    /// app not called.
    Handoff,
}
use Want::*;

/// A request from raw parts: header values are bytes so rows can hold what `&str` cannot.
fn raw(method: &str, uri: &str, headers: &[(&str, Vec<u8>)], body: &[u8]) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, HeaderValue::from_bytes(v).expect("row header"));
    }
    req.body(Full::new(Bytes::copy_from_slice(body))).unwrap()
}

fn h(name: &'static str, value: impl AsRef<[u8]>) -> (&'static str, Vec<u8>) {
    (name, value.as_ref().to_vec())
}

fn html_escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Sends `req` through a fresh layer and recording app and checks the row's promise.
async fn check(name: &str, req: Request<Full<Bytes>>, want: Want, kept: Option<SessionId>) {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(&mut svc, req).await;
    check_answer(name, &a, &rec, want, kept);
}

fn check_answer(name: &str, a: &Answer, rec: &Recorder, want: Want, kept: Option<SessionId>) {
    assert!(a.status.as_u16() < 500, "{name}: {} {}", a.status, a.body);
    match want {
        Refused(status, reason) => {
            assert_eq!(a.status.as_u16(), status, "{name}: {}", a.body);
            let r = a
                .rejection
                .unwrap_or_else(|| panic!("{name}: no Rejection extension"));
            assert_eq!(r.status(), a.status, "{name}");
            assert!(
                r.reason().contains(reason),
                "{name}: reason {:?}",
                r.reason()
            );
            assert!(
                a.body.contains(r.reason()) || a.body.contains(&html_escaped(r.reason())),
                "{name}: body does not say why: {}",
                a.body
            );
            assert_eq!(rec.count(), 0, "{name}: the app was called");
            assert!(
                a.all("set-cookie").is_empty(),
                "{name}: a refusal set a cookie"
            );
            assert_eq!(
                a.header("amp-redirect-to"),
                None,
                "{name}: a refusal minted"
            );
            assert_eq!(a.header("location"), None, "{name}: a refusal redirected");
        }
        AppNew | AppKept => {
            assert!(a.status.is_success(), "{name}: {} {}", a.status, a.body);
            assert!(a.rejection.is_none(), "{name}");
            let seen = rec.seen();
            assert_eq!(seen.len(), 1, "{name}: the app saw {} requests", seen.len());
            let s: AmpSession = seen[0].session.clone().expect("a session");
            if want == AppNew {
                assert!(s.is_new(), "{name}: kept a session");
                assert!(Some(s.id()) != kept, "{name}");
                assert!(
                    a.session_cookie().is_some(),
                    "{name}: no cookie for the new session"
                );
            } else {
                assert_eq!(Some(s.id()), kept, "{name}: not the cookie's session");
                assert!(!s.is_new(), "{name}");
                assert_eq!(a.session_cookie(), None, "{name}");
            }
        }
        Handoff => {
            assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
            assert!(
                a.header("amp-redirect-to").is_some(),
                "{name}: not handed off"
            );
            assert_eq!(rec.count(), 0, "{name}: the app was called at mint");
            assert!(a.all("set-cookie").is_empty(), "{name}: a cookie at mint");
        }
    }
}

const FORM: &str = "application/x-www-form-urlencoded";
const FOREIGN: &str = "cross-origin request from an origin that is not allowed";
const NO_ORIGIN: &str = "without Origin or AMP-Same-Origin";

// ---------------------------------------------------------------------------------------
// Origin
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn origin_table() {
    let long = format!("https://{}.example", "a".repeat(8 * 1024));
    // (name, Origin values in order, want). Every row is a form POST with no cookie.
    let rows: Vec<(&str, Vec<Vec<u8>>, Want)> = vec![
        ("null", vec![b"null".to_vec()], Refused(403, FOREIGN)),
        ("empty", vec![b"".to_vec()], Refused(403, FOREIGN)),
        ("wildcard", vec![b"*".to_vec()], Refused(403, FOREIGN)),
        (
            "trailing slash",
            vec![b"https://shop.example/".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "with a path",
            vec![b"https://shop.example/cart".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "upper case (never serialized so)",
            vec![b"HTTPS://SHOP.EXAMPLE".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "explicit default port",
            vec![b"https://shop.example:443".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "http scheme",
            vec![b"http://shop.example".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "publisher as a subdomain",
            vec![b"https://shop.example.evil.com".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "userinfo",
            vec![b"https://shop.example@evil.com".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "another publisher's cache",
            vec![OTHER_CACHE.as_bytes().to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "cache as a prefix",
            vec![format!("{CACHE}.evil.com").into_bytes()],
            Refused(403, FOREIGN),
        ),
        (
            "leading space",
            vec![b" https://shop.example".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "trailing tab",
            vec![b"https://shop.example\t".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "list in one header",
            vec![format!("{PUBLISHER}, {CACHE}").into_bytes()],
            Refused(403, FOREIGN),
        ),
        (
            "non-UTF-8",
            vec![b"https://shop.\xe9xample".to_vec()],
            Refused(403, FOREIGN),
        ),
        (
            "non-UTF-8 only",
            vec![b"\xff\xfe".to_vec()],
            Refused(403, FOREIGN),
        ),
        ("8 KiB", vec![long.into_bytes()], Refused(403, FOREIGN)),
        (
            "publisher twice",
            vec![PUBLISHER.into(), PUBLISHER.into()],
            Refused(403, FOREIGN),
        ),
        (
            "publisher then cache",
            vec![PUBLISHER.into(), CACHE.into()],
            Refused(403, FOREIGN),
        ),
        (
            "cache then publisher",
            vec![CACHE.into(), PUBLISHER.into()],
            Refused(403, FOREIGN),
        ),
        (
            "publisher then null",
            vec![PUBLISHER.into(), b"null".to_vec()],
            Refused(403, FOREIGN),
        ),
        // Controls: the well-formed values pass.
        ("control: publisher", vec![PUBLISHER.into()], AppNew),
        ("control: cache", vec![CACHE.into()], Handoff),
    ];
    for (name, origins, want) in rows {
        let mut headers = vec![h("content-type", FORM), h("accept", "application/json")];
        headers.extend(origins.into_iter().map(|o| h("origin", o)));
        check(
            name,
            raw("POST", "/cart/add", &headers, b"product_id=1"),
            want,
            None,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// AMP-Same-Origin
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn amp_same_origin_table() {
    // (name, Origin, AMP-Same-Origin values, want). Form POSTs with no cookie.
    let rows: Vec<(&str, Option<&str>, Vec<&[u8]>, Want)> = vec![
        ("false", None, vec![b"false"], Refused(403, NO_ORIGIN)),
        ("1", None, vec![b"1"], Refused(403, NO_ORIGIN)),
        ("yes", None, vec![b"yes"], Refused(403, NO_ORIGIN)),
        ("empty", None, vec![b""], Refused(403, NO_ORIGIN)),
        (
            "trailing space",
            None,
            vec![b"true "],
            Refused(403, NO_ORIGIN),
        ),
        ("quoted", None, vec![b"\"true\""], Refused(403, NO_ORIGIN)),
        (
            "list in one header",
            None,
            vec![b"true, true"],
            Refused(403, NO_ORIGIN),
        ),
        (
            "two headers",
            None,
            vec![b"true", b"true"],
            Refused(403, NO_ORIGIN),
        ),
        (
            "true then false",
            None,
            vec![b"true", b"false"],
            Refused(403, NO_ORIGIN),
        ),
        (
            "NUL-free binary",
            None,
            vec![b"tru\xe9"],
            Refused(403, NO_ORIGIN),
        ),
        ("8 KiB", None, vec![&[b't'; 8192]], Refused(403, NO_ORIGIN)),
        // Only believed without Origin or with a publisher Origin.
        (
            "with a foreign Origin",
            Some("https://evil.example"),
            vec![b"true"],
            Refused(403, FOREIGN),
        ),
        (
            "with Origin null",
            Some("null"),
            vec![b"true"],
            Refused(403, FOREIGN),
        ),
        (
            "with another publisher's cache",
            Some(OTHER_CACHE),
            vec![b"true"],
            Refused(403, FOREIGN),
        ),
        // The cache's Origin decides: a cookieless cache POST is handed off, not applied.
        ("with the cache Origin", Some(CACHE), vec![b"true"], Handoff),
        // Accepted. "TRUE" is believed (ASCII case-insensitive); harmless, a browser only
        // lets a page send a custom header to its own origin.
        ("TRUE", None, vec![b"TRUE"], AppNew),
        ("control: true", None, vec![b"true"], AppNew),
        (
            "control: with the publisher Origin",
            Some(PUBLISHER),
            vec![b"true"],
            AppNew,
        ),
    ];
    for (name, origin, values, want) in rows {
        let mut headers = vec![h("content-type", FORM)];
        if let Some(o) = origin {
            headers.push(h("origin", o));
        }
        headers.extend(values.into_iter().map(|v| h("amp-same-origin", v)));
        check(
            name,
            raw("POST", "/cart/add", &headers, b"product_id=1"),
            want,
            None,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cookie_table() {
    let id = SessionId::generate();
    let other = SessionId::generate();
    let v = id.as_str();
    let w = other.as_str();
    let big = "A".repeat(8 * 1024);
    let many: String = (0..1000).map(|i| format!("c{i}=x; ")).collect();
    // (name, Cookie header values, want from the publisher, want from the cache)
    let rows: Vec<(&str, Vec<Vec<u8>>, Want, Want)> = vec![
        // Several values never refuse the request (that would let a second cookie lock
        // the session out): the first valid one is the session.
        (
            "the session cookie twice, different values: the first wins",
            vec![format!("__Host-amp_session={v}; __Host-amp_session={w}").into()],
            AppKept,
            AppKept,
        ),
        (
            "... in two Cookie headers",
            vec![
                format!("__Host-amp_session={v}").into(),
                format!("__Host-amp_session={w}").into(),
            ],
            AppKept,
            AppKept,
        ),
        (
            "... among other cookies",
            vec![format!("a=1; __Host-amp_session={v}; b=2; __Host-amp_session={w}").into()],
            AppKept,
            AppKept,
        ),
        (
            "a tossed cookie without the prefix beside the session",
            vec![format!("amp_session={w}; __Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
        (
            "only a cookie without the prefix",
            vec![format!("amp_session={v}").into()],
            AppNew,
            Handoff,
        ),
        (
            "duplicate names, same value",
            vec![format!("__Host-amp_session={v}; __Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
        (
            "duplicate other cookie names",
            vec![format!("a=1; a=2; __Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
        (
            "a malformed twin is ignored",
            vec![format!("__Host-amp_session=junk; __Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
        (
            "8 KiB session value",
            vec![format!("__Host-amp_session={big}").into()],
            AppNew,
            Handoff,
        ),
        (
            "8 KiB other cookie",
            vec![format!("big={big}; __Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
        (
            "1000 cookies",
            vec![format!("{many}__Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
        (
            "empty value",
            vec![b"__Host-amp_session=".to_vec()],
            AppNew,
            Handoff,
        ),
        (
            "quoted value",
            vec![format!("__Host-amp_session=\"{v}\"").into()],
            AppNew,
            Handoff,
        ),
        (
            "value with a trailing character",
            vec![format!("__Host-amp_session={v}=").into()],
            AppNew,
            Handoff,
        ),
        (
            "non-canonical base64 (trailing bits)",
            vec![format!("__Host-amp_session={}B", "A".repeat(21)).into()],
            AppNew,
            Handoff,
        ),
        (
            "standard alphabet",
            vec![format!("__Host-amp_session={}+", &v[..21]).into()],
            AppNew,
            Handoff,
        ),
        (
            "name in another case",
            vec![format!("AMP_SESSION={v}").into()],
            AppNew,
            Handoff,
        ),
        (
            "name with a prefix",
            vec![format!("x__Host-amp_session={v}").into()],
            AppNew,
            Handoff,
        ),
        ("no name", vec![format!("={v}").into()], AppNew, Handoff),
        ("only separators", vec![b";;; ;".to_vec()], AppNew, Handoff),
        (
            "space inside the value",
            vec![format!("__Host-amp_session={} {}", &v[..11], &v[11..]).into()],
            AppNew,
            Handoff,
        ),
        (
            "comma inside the value",
            vec![format!("__Host-amp_session={},{}", &v[..11], &v[11..]).into()],
            AppNew,
            Handoff,
        ),
        (
            "backslash in the value",
            vec![format!("__Host-amp_session={}\\", &v[..21]).into()],
            AppNew,
            Handoff,
        ),
        (
            "non-UTF-8 header (skipped)",
            vec![b"__Host-amp_session=\xff\xfe".to_vec()],
            AppNew,
            Handoff,
        ),
        (
            "non-UTF-8 header beside a valid one",
            vec![
                format!("__Host-amp_session={w}\u{e9}").into(),
                format!("__Host-amp_session={v}").into(),
            ],
            AppKept,
            AppKept,
        ),
        ("empty header", vec![b"".to_vec()], AppNew, Handoff),
        (
            "control: valid",
            vec![format!("__Host-amp_session={v}").into()],
            AppKept,
            AppKept,
        ),
    ];
    for (name, cookies, from_publisher, from_cache) in rows {
        for (origin, want) in [(PUBLISHER, from_publisher), (CACHE, from_cache)] {
            let mut headers = vec![h("origin", origin), h("content-type", FORM)];
            headers.extend(cookies.iter().map(|c| h("cookie", c)));
            let req = raw("POST", "/cart/add", &headers, b"product_id=1");
            check(&format!("{name} ({origin})"), req, want, Some(id)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bodies at mint (cookieless form POST from the cache)
// ---------------------------------------------------------------------------------------

fn part(name: &str, value: &[u8]) -> Vec<u8> {
    let mut p =
        format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").into_bytes();
    p.extend_from_slice(value);
    p.extend_from_slice(b"\r\n");
    p
}

fn multipart_of(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = parts.concat();
    body.extend_from_slice(b"--b--\r\n");
    body
}

#[tokio::test]
async fn mint_body_table() {
    const TOO_LARGE: &str = "too large";
    const FORM_ONLY: &str = "only form posts";
    const BROKEN: &str = "multipart form is malformed";
    const MP: &str = "multipart/form-data; boundary=b";
    let over = vec![b'a'; 4097]; // the default body_limit is 4 096 bytes
    let at = {
        let mut b = b"a=".to_vec();
        b.resize(4096, b'x');
        b
    };
    let ok = multipart_of(&[part("product_id", b"1")]);
    // (name, extra headers, body, want)
    let rows: Vec<(&str, Vec<(&str, Vec<u8>)>, Vec<u8>, Want)> = vec![
        ("over the limit, with Content-Length", vec![h("content-type", FORM), h("content-length", "4097")], over.clone(), Refused(413, TOO_LARGE)),
        ("over the limit, no Content-Length", vec![h("content-type", FORM)], over.clone(), Refused(413, TOO_LARGE)),
        ("over the limit, Content-Length lies low", vec![h("content-type", FORM), h("content-length", "10")], over.clone(), Refused(413, TOO_LARGE)),
        ("huge Content-Length, small body", vec![h("content-type", FORM), h("content-length", "18446744073709551615")], b"a=1".to_vec(), Refused(413, TOO_LARGE)),
        ("multipart over the limit", vec![h("content-type", MP)], multipart_of(&[part("a", &over)]), Refused(413, TOO_LARGE)),
        ("application/json", vec![h("content-type", "application/json")], b"{\"a\":1}".to_vec(), Refused(415, FORM_ONLY)),
        ("text/plain (amp-form never sends it)", vec![h("content-type", "text/plain")], b"a=1".to_vec(), Refused(415, FORM_ONLY)),
        ("no Content-Type, a body", vec![], b"a=1".to_vec(), Refused(415, FORM_ONLY)),
        ("two Content-Types", vec![h("content-type", FORM), h("content-type", FORM)], b"a=1".to_vec(), Refused(415, FORM_ONLY)),
        ("empty Content-Type", vec![h("content-type", "")], b"a=1".to_vec(), Refused(415, FORM_ONLY)),
        ("non-UTF-8 Content-Type", vec![h("content-type", b"application/x-www-form-urlencoded; x=\xff")], b"a=1".to_vec(), Refused(415, FORM_ONLY)),
        ("form type as a prefix", vec![h("content-type", "application/x-www-form-urlencodedx")], b"a=1".to_vec(), Refused(415, FORM_ONLY)),
        ("multipart, no boundary", vec![h("content-type", "multipart/form-data")], ok.clone(), Refused(400, BROKEN)),
        ("multipart, empty boundary", vec![h("content-type", "multipart/form-data; boundary=")], ok.clone(), Refused(400, BROKEN)),
        ("multipart, wrong boundary", vec![h("content-type", "multipart/form-data; boundary=zz")], ok.clone(), Refused(400, BROKEN)),
        ("multipart, truncated", vec![h("content-type", MP)], ok[..ok.len() - 9].to_vec(), Refused(400, BROKEN)),
        ("multipart, no closing delimiter", vec![h("content-type", MP)], part("a", b"1"), Refused(400, BROKEN)),
        ("multipart, not multipart at all", vec![h("content-type", MP)], b"a=1".to_vec(), Refused(400, BROKEN)),
        ("multipart, part without a name", vec![h("content-type", MP)], multipart_of(&[b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n".to_vec()]), Refused(400, BROKEN)),
        ("multipart, part without Content-Disposition", vec![h("content-type", MP)], multipart_of(&[b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n".to_vec()]), Refused(400, BROKEN)),
        ("multipart, header without a colon", vec![h("content-type", MP)], multipart_of(&[b"--b\r\ngarbage\r\n\r\nx\r\n".to_vec()]), Refused(400, BROKEN)),
        ("multipart, non-UTF-8 value", vec![h("content-type", MP)], multipart_of(&[part("note", b"caf\xe9")]), Refused(400, BROKEN)),
        ("multipart, UTF-16 value", vec![h("content-type", MP)], multipart_of(&[part("note", &[0xff, 0xfe, b'a', 0])]), Refused(400, BROKEN)),
        ("multipart, file part", vec![h("content-type", MP)], multipart_of(&[b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nx\r\n".to_vec()]), Refused(415, "file uploads")),
        ("multipart, file part with an empty filename", vec![h("content-type", MP)], multipart_of(&[b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n".to_vec()]), Refused(415, "file uploads")),
        // Accepted, and why that is right.
        ("control: urlencoded at the limit", vec![h("content-type", FORM)], at, Handoff),
        ("control: multipart", vec![h("content-type", MP)], ok.clone(), Handoff),
        ("no Content-Type, no body", vec![], vec![], Handoff),
        // urlencoded is carried byte for byte: the app gets exactly what was sent.
        ("urlencoded, non-UTF-8 bytes", vec![h("content-type", FORM)], b"a=caf\xe9&b=%FF".to_vec(), Handoff),
        // multer ignores a charset parameter; the values must still be UTF-8 (rows above).
        ("multipart with charset=utf-16 parameter, UTF-8 values", vec![h("content-type", "multipart/form-data; boundary=b; charset=utf-16")], ok.clone(), Handoff),
        // Unparsable Content-Length is ignored: the body itself is bounded (hyper refuses
        // such a request before any service sees it).
        ("unparsable Content-Length", vec![h("content-type", FORM), h("content-length", "abc")], b"a=1".to_vec(), Handoff),
        // `charset=utf-16` on a urlencoded form: see `charset_other_than_utf8_is_refused_at_mint`.
    ];
    for (name, extra, body, want) in rows {
        let mut headers = vec![h("origin", CACHE), h("accept", "application/json")];
        headers.extend(extra);
        check(name, raw("POST", "/cart/add", &headers, &body), want, None).await;
    }
}

/// `application/x-www-form-urlencoded; charset=utf-16` is minted, and the origin replays it
/// as plain `application/x-www-form-urlencoded` (UTF-8 by definition): the app reads other
/// fields than were sent. SPEC section 5 asks for an equivalent request; a 415 at mint fits.
#[tokio::test]
async fn charset_other_than_utf8_is_refused_at_mint() {
    let utf16: Vec<u8> = "a=1".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let rows: [(&str, &[u8]); 3] = [
        ("application/x-www-form-urlencoded; charset=utf-16", &utf16),
        (
            "application/x-www-form-urlencoded; charset=ISO-8859-1",
            b"a=caf\xe9",
        ),
        (
            "application/x-www-form-urlencoded;charset=\"shift_jis\"",
            b"a=1",
        ),
    ];
    for (ct, body) in rows {
        let req = raw(
            "POST",
            "/cart/add",
            &[h("origin", CACHE), h("content-type", ct)],
            body,
        );
        check(ct, req, Refused(415, "only form posts"), None).await;
    }
    // UTF-8 spelled any way stays accepted.
    for ct in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded; charset=\"utf-8\"",
    ] {
        let req = raw(
            "POST",
            "/cart/add",
            &[h("origin", CACHE), h("content-type", ct)],
            b"a=1",
        );
        check(ct, req, Handoff, None).await;
    }
}

/// `multer` (what an axum app reads multipart with) finds `filename=` inside
/// `name="a filename=x"` and calls the part a file. Any reader at mint must agree, or the
/// form is minted and the origin replays a part the app reads as a *file upload*. A
/// hand-written fast multipart reader tried in the working tree did not agree (found by
/// `fuzz_props::multipart_handoff_matches_multer`); this row keeps it that way.
#[tokio::test]
async fn multipart_name_that_multer_reads_as_a_file_is_refused() {
    for name in [
        "a filename=x",
        "x filename=\"y",
        "n\tfilename=f",
        "a;filename=b",
    ] {
        let body = multipart_of(&[part(name, b"1")]);
        let req = raw(
            "POST",
            "/cart/add",
            &[
                h("origin", CACHE),
                h("content-type", "multipart/form-data; boundary=b"),
            ],
            &body,
        );
        check(name, req, Refused(415, "file uploads"), None).await;
    }
}

/// File parts whose `filename` multer 3.1 does not see: its attribute scan stops at the first
/// `filename` that is not followed by `=` (a `filename` inside the quoted name, or the
/// RFC 5987 `filename*=` form), reports no file name, and the layer then carries the file's
/// content as a text field (the replay drops the `filename`). SPEC/README: file parts are
/// refused with 415.
#[tokio::test]
async fn file_parts_multer_misses_are_refused() {
    let rows: &[(&str, &[u8])] = &[
        (
            "'filename' inside the name",
            b"--b\r\nContent-Disposition: form-data; name=\"a filename x\"; filename=\"f.txt\"\r\n\r\nfile\r\n--b--\r\n",
        ),
        (
            "RFC 5987 filename*",
            b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''f.txt\r\n\r\nfile\r\n--b--\r\n",
        ),
    ];
    for (name, body) in rows {
        let req = raw(
            "POST",
            "/cart/add",
            &[
                h("origin", CACHE),
                h("content-type", "multipart/form-data; boundary=b"),
            ],
            body,
        );
        check(name, req, Refused(415, "file uploads"), None).await;
    }
}

/// A body that fails while it is read: 400, not 500, and nothing minted.
#[tokio::test]
async fn unreadable_body_at_mint_is_400() {
    struct Broken;
    impl http_body::Body for Broken {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(Some(Err(std::io::Error::other("connection reset"))))
        }
    }
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = called.clone();
    let app = tower::service_fn(move |_req: Request<RequestBody<Broken>>| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new()))) }
    });
    let layer = builder().build().unwrap();
    let mut svc = tower::Layer::layer(&layer, app);
    let req = Request::builder()
        .method("POST")
        .uri("/cart/add")
        .header("origin", CACHE)
        .header("content-type", FORM)
        .body(Broken)
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res
        .extensions()
        .get::<tower_amp_session::Rejection>()
        .is_some());
    assert!(res.headers().get("amp-redirect-to").is_none());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("could not be read"));
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------
// Tokens at completion
// ---------------------------------------------------------------------------------------

/// A fresh layer, and the handoff path-and-query of one minted change.
async fn minted() -> (Recorder, Svc, String) {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let a = send(
        &mut svc,
        request(
            "POST",
            "/cart/add",
            &[("origin", CACHE), ("content-type", FORM)],
            "product_id=1&quantity=1",
        ),
    )
    .await;
    let to = path_of(a.header("amp-redirect-to").expect("minted"));
    (rec, svc, to)
}

#[tokio::test]
async fn completion_token_table() {
    const MALFORMED: &str = "malformed";
    let nav = || {
        vec![
            h("sec-fetch-mode", "navigate"),
            h("sec-fetch-dest", "document"),
        ]
    };
    // (name, method, path-and-query with {T} for the valid token, extra headers, want)
    let rows: Vec<(&str, &str, String, Vec<(&str, Vec<u8>)>, Want)> = vec![
        (
            "no query",
            "GET",
            "/_amp/handoff".into(),
            nav(),
            Refused(400, "no token"),
        ),
        (
            "no token parameter",
            "GET",
            "/_amp/handoff?x=1".into(),
            nav(),
            Refused(400, "no token"),
        ),
        (
            "parameter name in another case",
            "GET",
            "/_amp/handoff?TOKEN={T}".into(),
            nav(),
            Refused(400, "no token"),
        ),
        (
            "parameter name with brackets",
            "GET",
            "/_amp/handoff?token[]={T}".into(),
            nav(),
            Refused(400, "no token"),
        ),
        (
            "empty",
            "GET",
            "/_amp/handoff?token=".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "bare name",
            "GET",
            "/_amp/handoff?token".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "huge (16 KiB)",
            "GET",
            format!("/_amp/handoff?token={}", "A".repeat(16 * 1024)),
            nav(),
            Refused(400, "too long"),
        ),
        (
            "NUL",
            "GET",
            "/_amp/handoff?token=%00".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "valid then NUL",
            "GET",
            "/_amp/handoff?token={T}%00".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "bad percent-encoding",
            "GET",
            "/_amp/handoff?token=%zz{T}".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "lone percent",
            "GET",
            "/_amp/handoff?token={T}%".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "encoded non-UTF-8 bytes",
            "GET",
            "/_amp/handoff?token=%FF%FE{T}".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "raw UTF-8 in the query",
            "GET",
            "/_amp/handoff?token={T}\u{e9}".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "'+' decodes to a space",
            "GET",
            "/_amp/handoff?token=+{T}".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "two tokens, same value",
            "GET",
            "/_amp/handoff?token={T}&token={T}".into(),
            nav(),
            Refused(400, "several tokens"),
        ),
        (
            "two tokens, one empty",
            "GET",
            "/_amp/handoff?token={T}&token=".into(),
            nav(),
            Refused(400, "several tokens"),
        ),
        (
            "token as the fragment-looking value",
            "GET",
            "/_amp/handoff?token=%23{T}".into(),
            nav(),
            Refused(400, MALFORMED),
        ),
        (
            "fetched, not navigated",
            "GET",
            "/_amp/handoff?token={T}".into(),
            vec![h("sec-fetch-mode", "cors"), h("sec-fetch-dest", "empty")],
            Refused(403, "opened as a page"),
        ),
        (
            "as an image",
            "GET",
            "/_amp/handoff?token={T}".into(),
            vec![h("sec-fetch-mode", "no-cors"), h("sec-fetch-dest", "image")],
            Refused(403, "opened as a page"),
        ),
        (
            "in an iframe",
            "GET",
            "/_amp/handoff?token={T}".into(),
            vec![
                h("sec-fetch-mode", "navigate"),
                h("sec-fetch-dest", "iframe"),
            ],
            Refused(403, "opened as a page"),
        ),
        (
            "two Sec-Fetch-Mode headers",
            "GET",
            "/_amp/handoff?token={T}".into(),
            vec![h("sec-fetch-mode", "navigate"), h("sec-fetch-mode", "cors")],
            Refused(403, "opened as a page"),
        ),
        (
            "non-UTF-8 Sec-Fetch-Dest",
            "GET",
            "/_amp/handoff?token={T}".into(),
            vec![
                h("sec-fetch-mode", "navigate"),
                h("sec-fetch-dest", b"docum\xe9nt"),
            ],
            Refused(403, "opened as a page"),
        ),
        (
            "PUT",
            "PUT",
            "/_amp/handoff?token={T}".into(),
            nav(),
            Refused(405, "opened with GET"),
        ),
        (
            "DELETE",
            "DELETE",
            "/_amp/handoff?token={T}".into(),
            nav(),
            Refused(405, "opened with GET"),
        ),
        (
            "POST without Origin",
            "POST",
            "/_amp/handoff".into(),
            nav(),
            Refused(403, "publisher"),
        ),
        (
            "POST from the cache",
            "POST",
            "/_amp/handoff".into(),
            {
                let mut v = nav();
                v.push(h("origin", CACHE));
                v
            },
            Refused(403, "publisher"),
        ),
        (
            "POST, JSON",
            "POST",
            "/_amp/handoff".into(),
            {
                let mut v = nav();
                v.push(h("origin", PUBLISHER));
                v.push(h("content-type", "application/json"));
                v
            },
            Refused(400, "confirmation form"),
        ),
    ];
    for (name, method, uri, headers, want) in rows {
        let (rec, mut svc, handoff) = minted().await;
        let token = handoff.split("token=").nth(1).unwrap().to_owned();
        let uri = uri.replace("{T}", &token);
        let a = send(&mut svc, raw(method, &uri, &headers, b"")).await;
        check_answer(name, &a, &rec, want, None);
        assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{name}");
        if method == "PUT" || method == "DELETE" {
            assert_eq!(a.header("allow"), Some("GET, POST"), "{name}");
        }
        // Nothing was consumed: the same link still applies the change, once.
        let ok = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(
            ok.status,
            StatusCode::SEE_OTHER,
            "{name}: token spent by a refusal"
        );
        assert_eq!(rec.count(), 1, "{name}");
    }
}

/// What never reaches the layer: `http::Uri` refuses raw bytes that are not UTF-8 (and
/// raw NUL, space, DEL), so such a token cannot be sent at all. Raw UTF-8 does form a URI:
/// it is a row of `completion_token_table`.
#[test]
fn raw_non_utf8_bytes_cannot_form_a_uri() {
    for bytes in [
        &b"/_amp/handoff?token=\xff"[..],
        b"/_amp/handoff?token=\xc3",
        b"/_amp/handoff?token=\x00",
        b"/_amp/handoff?token= x",
        b"/_amp/handoff?token=\x7f",
    ] {
        assert!(http::Uri::try_from(bytes).is_err(), "{bytes:?}");
    }
    assert!(http::Uri::try_from(&b"/_amp/handoff?token=\xc3\xa9"[..]).is_ok());
}

/// Other parameters on the handoff URL (AMP linkers append some) are ignored.
#[tokio::test]
async fn extra_parameters_are_ignored() {
    let (rec, mut svc, handoff) = minted().await;
    let token = handoff.split("token=").nth(1).unwrap();
    let uri = format!("/_amp/handoff?_gl=1*abc&token={token}&utm_source=x&__amp_source_origin=x");
    let a = send(&mut svc, request("GET", &uri, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(rec.count(), 1);
}

/// Percent-encoding in the query is transport, not a new spelling of the token: the same
/// token decoded from `%41`-style escapes completes (and is still single use).
#[tokio::test]
async fn percent_encoded_query_is_the_same_token() {
    let (rec, mut svc, handoff) = minted().await;
    let token = handoff.split("token=").nth(1).unwrap();
    let escaped: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let a = send(
        &mut svc,
        request("GET", &format!("/_amp/handoff?token={escaped}"), &NAV, ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let again = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(rec.count(), 1, "one nonce, one application");
}

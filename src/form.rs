//! Form bodies: captured at mint (urlencoded as sent, multipart reduced to its text fields)
//! and rebuilt on the origin as an equivalent request.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};

use crate::reject::{reasons, Rejection};
use crate::token::FormEncoding;

/// Most fields a handed-off multipart form may have; amp-form posts a handful.
const MAX_FIELDS: usize = 256;

/// The request's form encoding, from `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormKind {
    Empty,
    UrlEncoded,
    Multipart { boundary: String },
}

pub(crate) fn form_kind(headers: &HeaderMap) -> Result<FormKind, Rejection> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let ct = match (values.next(), values.next()) {
        (None, _) => return Ok(FormKind::Empty),
        // What amp-form sends for `enctype="application/x-www-form-urlencoded"`, spelled
        // as browsers spell it: no parameter to read.
        (Some(v), None) if v.as_bytes() == b"application/x-www-form-urlencoded" => {
            return Ok(FormKind::UrlEncoded)
        }
        (Some(v), None) => v.to_str().map_err(|_| reasons::UNSUPPORTED_FORM)?,
        (Some(_), Some(_)) => return Err(reasons::UNSUPPORTED_FORM),
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        // The replay is labelled UTF-8: another charset would reach the app as other fields.
        if !charset_is_utf8(ct) {
            return Err(reasons::UNSUPPORTED_FORM);
        }
        Ok(FormKind::UrlEncoded)
    } else if essence.eq_ignore_ascii_case("multipart/form-data") {
        let boundary = match browser_boundary(ct) {
            Some(b) => b.to_owned(),
            None => multer::parse_boundary(ct).map_err(|_| reasons::BAD_MULTIPART)?,
        };
        Ok(FormKind::Multipart { boundary })
    } else {
        Err(reasons::UNSUPPORTED_FORM)
    }
}

/// The `Content-Type` browsers send for a multipart form, `multipart/form-data;
/// boundary=<letters, digits and dashes>`: its boundary, read without a MIME parse (which
/// costs more than the rest of the header handling). Anything else is `None` and goes to
/// `multer::parse_boundary`; a differential test holds the two equal where this answers.
fn browser_boundary(content_type: &str) -> Option<&str> {
    let b = content_type.strip_prefix("multipart/form-data; boundary=")?;
    let plain =
        (1..=70).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    plain.then_some(b)
}

/// A captured body: the request's bytes as sent (url-encoded), or the text fields of a
/// multipart body re-encoded. Either way, read as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Captured {
    /// The body as it came (no copy).
    Sent(Bytes),
    /// Fields re-encoded at mint.
    Encoded(Vec<u8>),
}

impl std::ops::Deref for Captured {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Captured::Sent(b) => b,
            Captured::Encoded(v) => v,
        }
    }
}

/// Reduces a body to what the token carries.
pub(crate) async fn capture(
    kind: FormKind,
    body: Bytes,
) -> Result<(FormEncoding, Captured), Rejection> {
    match kind {
        FormKind::Empty if body.is_empty() => Ok((FormEncoding::Empty, Captured::Sent(body))),
        FormKind::Empty => Err(reasons::UNSUPPORTED_FORM),
        FormKind::UrlEncoded => Ok((FormEncoding::UrlEncoded, Captured::Sent(body))),
        FormKind::Multipart { boundary } => match capture_browser(&boundary, &body) {
            Some(fields) => Ok((FormEncoding::Multipart, Captured::Encoded(fields))),
            // Boxed: multer's state is large, and every mint's future would otherwise carry
            // room for it (moved and allocated with it) for the rare body that needs it.
            None => Box::pin(capture_multer(boundary, body)).await,
        },
    }
}

/// Longest boundary the fast path reads (RFC 2046's limit); its delimiter is built on the
/// stack.
const MAX_FAST_BOUNDARY: usize = 70;

/// The text fields of a multipart body as browsers send it, read in place without a MIME
/// parse (multer's streaming machinery costs several times the rest of the mint for a body
/// that is already in memory). `None` for anything else, which goes to [`capture_multer`]
/// (and so does every error).
///
/// It answers only for this shape: `--BOUNDARY`, then parts of exactly
/// `\r\nContent-Disposition: form-data; name="NAME"\r\n\r\nVALUE\r\n--BOUNDARY`, then `--`
/// and any epilogue; at most [`MAX_FIELDS`] parts; a BOUNDARY of 1 to 70 bytes without CR.
/// NAME is UTF-8 of printable bytes without `"`, `\`, `%` (multer's quoting, its escapes,
/// the percent-encoding its docs mention) and without `filename` (which multer's own search
/// would take for a parameter even inside the quotes); VALUE is UTF-8 and ends at the
/// first `\r\n--BOUNDARY`.
///
/// Why that is multer 3's reading: it skips a preamble up to the first `--BOUNDARY` (here
/// there is none), ends the body at a `--` right after a delimiter without reading on (so
/// any epilogue is ignored), otherwise wants optional padding and CRLF (here CRLF exactly),
/// takes the headers up to the first blank line (the one after NAME, which has no CR),
/// takes the first `name` after a space or `;` (the fixed header's), and ends a value at
/// the first `\r\n--BOUNDARY`, as here. The header passes httparse and `HeaderValue` (no
/// control bytes), has no `filename` parameter for [`has_filename_param`] or multer, and
/// the fields are encoded with the same [`put_encoded`]. Held equal to `capture_multer` by
/// `fast_multipart_agrees_with_multer` and the rows of `browser_multipart_table`.
fn capture_browser(boundary: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = boundary.as_bytes();
    // No CR in the boundary (browsers' are letters, digits and dashes): the delimiter's
    // only CR is its first byte, so a value ends at a CR where the delimiter starts, and a
    // body dense in CRs costs one short compare per CR.
    if boundary.is_empty() || boundary.len() > MAX_FAST_BOUNDARY || boundary.contains(&b'\r') {
        return None;
    }
    // What ends a value: CRLF, `--`, the boundary.
    let mut delimiter = [0; MAX_FAST_BOUNDARY + 4];
    delimiter[..4].copy_from_slice(b"\r\n--");
    delimiter[4..4 + boundary.len()].copy_from_slice(boundary);
    let delimiter = &delimiter[..4 + boundary.len()];
    // The first delimiter, as multer's `memmem::find` finds it (a `memmem::Finder` costs
    // more to build than this search for a body of a few fields).
    let value_end = |rest: &[u8]| {
        memchr::memchr_iter(b'\r', rest).find(|&at| rest[at..].starts_with(delimiter))
    };

    let mut rest = body.strip_prefix(b"--")?.strip_prefix(boundary)?;
    // The fields re-encoded are shorter than their multipart framing unless mostly non-ASCII.
    let mut out = Vec::with_capacity(body.len());
    let mut count = 0;
    loop {
        if rest.starts_with(b"--") {
            return Some(out);
        }
        // BEFORE_NAME starts with the CRLF that ends the delimiter line.
        rest = rest.strip_prefix(BEFORE_NAME)?;
        let quote = memchr::memchr(b'"', rest)?;
        let name = &rest[..quote];
        if !plain_name(name) {
            return None;
        }
        rest = rest[quote..].strip_prefix(AFTER_NAME)?;
        let end = value_end(rest)?;
        let value = &rest[..end];
        std::str::from_utf8(value).ok()?;
        count += 1;
        if count > MAX_FIELDS {
            return None;
        }
        if !out.is_empty() {
            out.push(b'&');
        }
        put_encoded(&mut out, name);
        out.push(b'=');
        put_encoded(&mut out, value);
        // Past the delimiter: then `--` (the close) or the next part's CRLF.
        rest = &rest[end + delimiter.len()..];
    }
}

/// A field name the fast path may read as multer does: UTF-8, no control bytes (httparse
/// and `HeaderValue` refuse some), no `"`, `\`, `%` (quoting, escapes, percent-encoding), no
/// `filename` (multer searches the whole header value for it, quotes or not).
fn plain_name(name: &[u8]) -> bool {
    name.iter()
        .all(|&b| matches!(b, b' '..=b'~' | 0x80..=0xff) && !matches!(b, b'"' | b'\\' | b'%'))
        && std::str::from_utf8(name).is_ok()
        && memchr::memmem::find(name, b"filename").is_none()
}

/// Reads the text fields of a multipart body with `multer`; files and non-UTF-8 values are
/// refused. The fields are url-encoded as they come (the `form_urlencoded::Serializer`'s
/// output, byte for byte) into one buffer, and a value is read as the chunk multer
/// already holds rather than copied into a buffer of its own.
async fn capture_multer(
    boundary: String,
    body: Bytes,
) -> Result<(FormEncoding, Captured), Rejection> {
    // The fields re-encoded are shorter than their multipart framing unless mostly non-ASCII.
    let mut out = Vec::with_capacity(body.len());
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(body)));
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut count = 0;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|_| reasons::BAD_MULTIPART)?
    {
        // multer stops at a `filename` without `=` (and at `filename*=`) and then reports no
        // file: look at the header itself too, so a file is never replayed as a text field.
        let names_a_file = field
            .headers()
            .get(http::header::CONTENT_DISPOSITION)
            .is_some_and(|v| has_filename_param(v.as_bytes()));
        if field.file_name().is_some() || names_a_file {
            return Err(reasons::FILE_PART);
        }
        if count >= MAX_FIELDS {
            return Err(reasons::BODY_TOO_LARGE);
        }
        count += 1;
        let name = field.name().ok_or(reasons::BAD_MULTIPART)?;
        // As the serializer does: `&` before every pair but the first (each pair writes `=`).
        if !out.is_empty() {
            out.push(b'&');
        }
        put_encoded(&mut out, name.as_bytes());
        out.push(b'=');
        let first = field.chunk().await.map_err(|_| reasons::BAD_MULTIPART)?;
        let first = first.unwrap_or_default();
        // A body read whole gives each value as one chunk; more are joined.
        let mut joined: Option<Vec<u8>> = None;
        while let Some(more) = field.chunk().await.map_err(|_| reasons::BAD_MULTIPART)? {
            joined
                .get_or_insert_with(|| first.to_vec())
                .extend_from_slice(&more);
        }
        let value = joined.as_deref().unwrap_or(&first);
        // amp-form sends UTF-8; anything else would not survive as a text field.
        if std::str::from_utf8(value).is_err() {
            return Err(reasons::BAD_MULTIPART);
        }
        put_encoded(&mut out, value);
    }
    Ok((FormEncoding::Multipart, Captured::Encoded(out)))
}

/// `application/x-www-form-urlencoded` byte serialization of one name or value.
fn put_encoded(out: &mut Vec<u8>, bytes: &[u8]) {
    for piece in form_urlencoded::byte_serialize(bytes) {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// No `charset` parameter, or UTF-8 spelled any way.
fn charset_is_utf8(content_type: &str) -> bool {
    content_type
        .split(';')
        .skip(1)
        .all(|param| match param.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// Whether a `Content-Disposition` value has a `filename` or `filename*` parameter
/// (RFC 6266), quoted strings skipped; an unterminated quote counts as a file. Jumps from
/// quote to separator instead of stepping a state machine byte by byte (a differential
/// test holds it equal to the byte-by-byte reading).
fn has_filename_param(value: &[u8]) -> bool {
    let (mut start, mut i) = (0, 0);
    loop {
        let found = value[i..].iter().position(|&b| b == b'"' || b == b';');
        match found.map(|k| (i + k, value[i + k])) {
            Some((q, b'"')) => match quoted_end(value, q + 1) {
                Some(after) => i = after,
                None => return true,
            },
            sep => {
                let end = sep.map_or(value.len(), |(at, _)| at);
                if is_filename_key(&value[start..end]) {
                    return true;
                }
                if sep.is_none() {
                    return false;
                }
                (start, i) = (end + 1, end + 1);
            }
        }
    }
}

/// Where the quoted string whose content starts at `from` ends (past its closing quote),
/// or `None` when it is not terminated.
fn quoted_end(value: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let rest = value.get(from..)?;
        let k = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        if rest[k] == b'"' {
            return Some(from + k + 1);
        }
        // A backslash escapes the next byte, whatever it is.
        from += k + 2;
    }
}

/// Whether a parameter (`name=value`, compared up to its first `=`, spaces trimmed) is
/// `filename` or `filename*`, in any case.
fn is_filename_key(param: &[u8]) -> bool {
    let key = param
        .split(|&c| c == b'=')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    key.eq_ignore_ascii_case(b"filename") || key.eq_ignore_ascii_case(b"filename*")
}

/// Rebuilds the body and `Content-Type` of the replayed request.
pub(crate) fn rebuild(
    encoding: FormEncoding,
    body: &Bytes,
    nonce: &[u8; 16],
) -> (Option<HeaderValue>, Bytes) {
    match encoding {
        FormEncoding::Empty => (None, Bytes::new()),
        FormEncoding::UrlEncoded => (
            Some(HeaderValue::from_static(
                "application/x-www-form-urlencoded",
            )),
            body.clone(),
        ),
        FormEncoding::Multipart => {
            const CT_PREFIX: &str = "multipart/form-data; boundary=";
            // The Content-Type is built once, at its exact size; the boundary is its tail.
            let mut ct = String::with_capacity(CT_PREFIX.len() + 12 + 2 * nonce.len());
            ct.push_str(CT_PREFIX);
            ct.push_str("amp-handoff-");
            data_encoding::HEXLOWER.encode_append(nonce, &mut ct);
            let boundary = &ct.as_bytes()[CT_PREFIX.len()..];
            let out = multipart_plain(body, boundary)
                .map(Bytes::from)
                .unwrap_or_else(|| Bytes::from(multipart_general(body, boundary)));
            let ct = HeaderValue::from_maybe_shared(Bytes::from(ct)).ok();
            (ct, out)
        }
    }
}

/// `--`, the boundary, then this, the escaped name, then [`AFTER_NAME`].
const BEFORE_NAME: &[u8] = b"\r\nContent-Disposition: form-data; name=\"";
/// After the name: the blank line, then the value and CRLF.
const AFTER_NAME: &[u8] = b"\"\r\n\r\n";

/// The multipart body of a plain urlencoded body (UTF-8, no `%`, `+`, `"`, CR or LF: every
/// field is its bytes as they are, nothing to decode or escape), written at its exact size
/// in one pass; `None` when not plain. Held equal to [`multipart_general`] by a
/// differential property test.
fn multipart_plain(body: &[u8], boundary: &[u8]) -> Option<Vec<u8>> {
    let plain = body.iter().fold(true, |ok, &b| {
        ok & !matches!(b, b'%' | b'+' | b'"' | b'\r' | b'\n')
    });
    if !plain || std::str::from_utf8(body).is_err() {
        return None;
    }
    // Split as `form_urlencoded::parse` splits: `&`, empty pairs skipped, the first `=`.
    let pairs = || {
        body.split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &p[p.len()..]),
            })
    };
    let frame = 2 + boundary.len() + BEFORE_NAME.len() + AFTER_NAME.len() + 2;
    let len = pairs()
        .map(|(n, v)| frame + n.len() + v.len())
        .sum::<usize>()
        + boundary.len()
        + 6;
    // Exactly `len`, so that `Bytes::from` takes the buffer as it is.
    let mut out = Vec::with_capacity(len);
    for (name, value) in pairs() {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary);
        out.extend_from_slice(BEFORE_NAME);
        out.extend_from_slice(name);
        out.extend_from_slice(AFTER_NAME);
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--\r\n");
    debug_assert_eq!(out.len(), len);
    Some(out)
}

/// The multipart body of any urlencoded body: fields decoded by `form_urlencoded`, names
/// escaped as the HTML spec's multipart encoding does.
fn multipart_general(body: &[u8], boundary: &[u8]) -> Vec<u8> {
    // Framing per field: "--", boundary, the header line, blank line, CRLF.
    let fields = 1 + body.iter().filter(|&&b| b == b'&').count();
    let mut out =
        Vec::with_capacity(body.len() + fields * (boundary.len() + 50) + boundary.len() + 8);
    for (name, value) in form_urlencoded::parse(body) {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary);
        out.extend_from_slice(BEFORE_NAME);
        // The HTML spec's multipart escaping of names.
        for b in name.bytes() {
            match b {
                b'"' => out.extend_from_slice(b"%22"),
                b'\r' => out.extend_from_slice(b"%0D"),
                b'\n' => out.extend_from_slice(b"%0A"),
                b => out.push(b),
            }
        }
        out.extend_from_slice(AFTER_NAME);
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"--\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("in-memory body is ready")
    }

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn content_type_table() {
        let rows: &[(&str, Result<FormKind, Rejection>)] = &[
            (
                "application/x-www-form-urlencoded",
                Ok(FormKind::UrlEncoded),
            ),
            (
                "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                Ok(FormKind::UrlEncoded),
            ),
            (
                "multipart/form-data; boundary=abc",
                Ok(FormKind::Multipart {
                    boundary: "abc".into(),
                }),
            ),
            ("multipart/form-data", Err(reasons::BAD_MULTIPART)),
            ("application/json", Err(reasons::UNSUPPORTED_FORM)),
            ("text/plain", Err(reasons::UNSUPPORTED_FORM)),
            ("", Err(reasons::UNSUPPORTED_FORM)),
        ];
        for (value, want) in rows {
            assert_eq!(&form_kind(&ct(value)), want, "{value}");
        }
        assert_eq!(form_kind(&HeaderMap::new()), Ok(FormKind::Empty));
    }

    #[test]
    fn multipart_round_trips_through_urlencoded_fields() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"product_id\"\r\n\r\n3\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nä & =\r\n--b--\r\n";
        let kind = FormKind::Multipart {
            boundary: "b".into(),
        };
        let (enc, carried) = block(capture(kind, Bytes::from(body))).unwrap();
        assert_eq!(enc, FormEncoding::Multipart);
        assert_eq!(&carried[..], "product_id=3&note=%C3%A4+%26+%3D".as_bytes());
        let (ct, rebuilt) = rebuild(enc, &Bytes::copy_from_slice(&carried), &[0xab; 16]);
        let ct = ct.unwrap();
        let boundary = multer::parse_boundary(ct.to_str().unwrap()).unwrap();
        let again = block(capture(FormKind::Multipart { boundary }, rebuilt)).unwrap();
        assert_eq!(&again.1[..], &carried[..]);
    }

    /// The rebuild as it was written first (one general pass with `String`s): the reference
    /// for the fast path.
    fn multipart_reference(body: &[u8], boundary: &str) -> Vec<u8> {
        let mut out = String::new();
        for (name, value) in form_urlencoded::parse(body) {
            out.push_str("--");
            out.push_str(boundary);
            out.push_str("\r\nContent-Disposition: form-data; name=\"");
            for c in name.chars() {
                match c {
                    '"' => out.push_str("%22"),
                    '\r' => out.push_str("%0D"),
                    '\n' => out.push_str("%0A"),
                    c => out.push(c),
                }
            }
            out.push_str("\"\r\n\r\n");
            out.push_str(&value);
            out.push_str("\r\n");
        }
        out.push_str("--");
        out.push_str(boundary);
        out.push_str("--\r\n");
        out.into_bytes()
    }

    #[test]
    fn multipart_rebuild_table() {
        const B: &str = "amp-handoff-abababababababababababababababab";
        // (urlencoded body, fast path taken?)
        let rows: &[(&str, bool)] = &[
            ("product_id=3&qty=1&note=hi", true),
            ("", true),
            ("&&a=1&", true),
            ("a", true),
            ("a=b=c", true),
            ("=v", true),
            ("n=\u{e4}", true),
            ("n=%C3%A4", false),
            ("n=a+b", false),
            ("na%22me=1", false),
            ("na\"me=1", false),
            ("n=line\r\nnext", false),
            ("n=%FF", false),
        ];
        for (body, fast) in rows {
            assert_eq!(
                multipart_plain(body.as_bytes(), B.as_bytes()).is_some(),
                *fast,
                "{body:?}"
            );
            let (_, got) = rebuild(
                FormEncoding::Multipart,
                &Bytes::copy_from_slice(body.as_bytes()),
                &[0xab; 16],
            );
            assert_eq!(got, multipart_reference(body.as_bytes(), B), "{body:?}");
        }
    }

    fn urlencoded_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "product_id",
            "qty",
            "note",
            "3",
            "1",
            "abc",
            "=",
            "=",
            "&",
            "&",
            "&&",
            "-",
            "_",
            ".",
            "*",
            "~",
            "\u{e4}",
            "%",
            "%2",
            "%41",
            "%C3%A4",
            "%FF",
            "%22",
            "+",
            "\"",
            "\r",
            "\n",
            "%0D%0A",
            " ",
        ]);
        prop_oneof![
            // The common shape: plain fields.
            "([a-z_]{1,8}=[A-Za-z0-9._*~-]{0,12})(&[a-z_]{1,8}=[A-Za-z0-9._*~-]{0,12}){0,5}"
                .prop_map(String::into_bytes),
            prop::collection::vec(piece, 0..16).prop_map(|v| v.concat().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..48),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(50_000))]

        /// The rebuilt multipart body, fast path or not, is what the first rebuild wrote;
        /// and the Content-Type names its boundary.
        #[test]
        fn multipart_rebuild_agrees_with_the_reference(body in urlencoded_like(), nonce in proptest::prelude::any::<[u8; 16]>()) {
            let (ct, got) = rebuild(FormEncoding::Multipart, &Bytes::from(body.clone()), &nonce);
            let boundary = format!("amp-handoff-{}", data_encoding::HEXLOWER.encode(&nonce));
            let ct = ct.unwrap();
            proptest::prop_assert_eq!(ct.to_str().unwrap(), format!("multipart/form-data; boundary={boundary}"));
            proptest::prop_assert_eq!(&got[..], &multipart_reference(&body, &boundary)[..]);
        }
    }

    /// The generator reaches the fast path and its near misses.
    #[test]
    fn urlencoded_generator_reaches_both_sides() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = urlencoded_like();
        let fast = (0..10_000)
            .filter(|_| {
                let body = strategy.new_tree(&mut runner).unwrap().current();
                multipart_plain(&body, b"b").is_some()
            })
            .count();
        assert!(
            (2000..9000).contains(&fast),
            "{fast} of 10 000 take the fast path"
        );
    }

    #[test]
    fn multipart_rejections() {
        let file = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nx\r\n--b--\r\n";
        let broken = "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx";
        let latin1: &[u8] =
            b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n\xe4\r\n--b--\r\n";
        let rows: &[(&[u8], Rejection)] = &[
            (file.as_bytes(), reasons::FILE_PART),
            (broken.as_bytes(), reasons::BAD_MULTIPART),
            (latin1, reasons::BAD_MULTIPART),
        ];
        for (body, want) in rows {
            let kind = FormKind::Multipart {
                boundary: "b".into(),
            };
            assert_eq!(
                block(capture(kind, Bytes::copy_from_slice(body))),
                Err(*want)
            );
        }
        assert_eq!(
            block(capture(FormKind::Empty, Bytes::from_static(b"x"))),
            Err(reasons::UNSUPPORTED_FORM)
        );
    }

    // Differential tests of the mint-side fast paths against the code they replaced.

    /// Cases per differential property here; `AMP_DIFF_CASES` overrides, as elsewhere.
    fn cases(default: u32) -> proptest::prelude::ProptestConfig {
        let cases = std::env::var("AMP_DIFF_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(default);
        proptest::prelude::ProptestConfig::with_cases(cases)
    }

    /// The byte-by-byte reading `has_filename_param` replaced: the reference.
    fn has_filename_param_bytewise(value: &[u8]) -> bool {
        let (mut quoted, mut escaped, mut start) = (false, false, 0);
        for i in 0..=value.len() {
            let b = value.get(i).copied().unwrap_or(b';');
            if quoted {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => quoted = true,
                b';' => {
                    let key = value
                        .get(start..i.min(value.len()))
                        .unwrap_or_default()
                        .split(|&c| c == b'=')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    if key.eq_ignore_ascii_case(b"filename")
                        || key.eq_ignore_ascii_case(b"filename*")
                    {
                        return true;
                    }
                    start = i + 1;
                }
                _ => {}
            }
        }
        quoted
    }

    #[test]
    fn filename_param_table() {
        let rows: &[(&str, bool)] = &[
            (r#"form-data; name="product_id""#, false),
            (r#"form-data; name="f"; filename="a.txt""#, true),
            (r#"form-data; name="f"; FileName*=UTF-8''a.txt"#, true),
            (r#"form-data; name="f"; filename"#, true),
            (r#"form-data; name="a;filename=x""#, false),
            (r#"form-data; name="a\";filename=x""#, false),
            (r#"form-data; name="a\\";filename=x"#, true),
            (r#"form-data; name="unterminated"#, true),
            (r#"form-data; name="x\"#, true),
            ("form-data; filenames=x", false),
            ("form-data;filename =x", true),
            ("", false),
        ];
        for (value, want) in rows {
            assert_eq!(has_filename_param(value.as_bytes()), *want, "{value}");
            assert_eq!(
                has_filename_param_bytewise(value.as_bytes()),
                *want,
                "{value}"
            );
        }
    }

    /// Pieces of `Content-Disposition` values: the usual ones and every edge of the reading.
    const DISPOSITION_PIECES: &[&str] = &[
        "form-data",
        ";",
        "; ",
        " ",
        "\t",
        "name",
        "filename",
        "FILENAME",
        "filename*",
        "file",
        "names",
        "=",
        "\"",
        "\\",
        "\\\"",
        "a",
        "x.txt",
        "product_id",
        "*",
        "é",
    ];

    fn disposition_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            4 => prop::collection::vec(prop::sample::select(DISPOSITION_PIECES), 0..14)
                .prop_map(|v| v.concat().into_bytes()),
            1 => prop::collection::vec(
                prop::sample::select(b"\";\\= afilenameFILENAME*".to_vec()),
                0..40,
            ),
            1 => prop::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest::proptest! {
        #![proptest_config(cases(30_000))]

        /// The jumping reading answers what the byte-by-byte one answers.
        #[test]
        fn fast_filename_param_agrees_with_the_bytewise_reading(v in disposition_like()) {
            proptest::prop_assert_eq!(has_filename_param(&v), has_filename_param_bytewise(&v));
        }
    }

    fn content_type_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let prefix = prop::sample::select(vec![
            "multipart/form-data; boundary=",
            "multipart/form-data;boundary=",
            "Multipart/Form-Data; boundary=",
            "multipart/form-data; Boundary=",
            "multipart/form-data; boundary =",
            "multipart/form-data;  boundary=",
            "multipart/form-data; charset=utf-8; boundary=",
            "multipart/mixed; boundary=",
        ]);
        let boundary = prop_oneof![
            "-{0,30}[A-Za-z0-9]{0,20}",
            "----WebKitFormBoundary[A-Za-z0-9]{16}",
            "-{27}[0-9]{10,30}",
            "[A-Za-z0-9'()+_,./:=? \"-]{0,72}",
            any::<String>(),
        ];
        let suffix = prop::sample::select(vec!["", "", "", ";", "; charset=utf-8", " ", "\""]);
        (prefix, boundary, suffix).prop_map(|(p, b, s)| format!("{p}{b}{s}"))
    }

    proptest::proptest! {
        #![proptest_config(cases(30_000))]

        /// Where the browser-shape reading answers, multer's MIME parse gives that boundary.
        #[test]
        fn fast_boundary_agrees_with_multer(ct in content_type_like()) {
            if let Some(b) = browser_boundary(&ct) {
                let general = multer::parse_boundary(&ct);
                proptest::prop_assert_eq!(general.as_deref(), Ok(b), "{:?}", ct);
            }
        }
    }

    #[test]
    fn browsers_boundaries_take_the_fast_path() {
        for ct in [
            "multipart/form-data; boundary=----WebKitFormBoundaryAbC123xyz",
            "multipart/form-data; boundary=----geckoformboundary3f8a9c0e1b2d",
            "multipart/form-data; boundary=---------------------------1234567890",
        ] {
            assert!(browser_boundary(ct).is_some(), "{ct}");
        }
    }

    /// What `capture_multer` wrote before: every field collected, then one serializer.
    fn capture_by_serializer(boundary: &str, body: &[u8]) -> Result<Vec<u8>, Rejection> {
        block(async {
            let body = Bytes::copy_from_slice(body);
            let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
            let mut multipart = multer::Multipart::new(stream, boundary);
            let mut fields: Vec<(String, String)> = Vec::new();
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|_| reasons::BAD_MULTIPART)?
            {
                let names_a_file = field
                    .headers()
                    .get(http::header::CONTENT_DISPOSITION)
                    .is_some_and(|v| has_filename_param_bytewise(v.as_bytes()));
                if field.file_name().is_some() || names_a_file {
                    return Err(reasons::FILE_PART);
                }
                if fields.len() >= MAX_FIELDS {
                    return Err(reasons::BODY_TOO_LARGE);
                }
                let name = field.name().ok_or(reasons::BAD_MULTIPART)?.to_owned();
                let value = field.bytes().await.map_err(|_| reasons::BAD_MULTIPART)?;
                let value =
                    String::from_utf8(value.to_vec()).map_err(|_| reasons::BAD_MULTIPART)?;
                fields.push((name, value));
            }
            let mut out = form_urlencoded::Serializer::new(String::new());
            out.extend_pairs(&fields);
            Ok(out.finish().into_bytes())
        })
    }

    /// Field names and values: plain, reserved, non-ASCII, non-UTF-8, framing look-alikes.
    const FIELD_PIECES: &[&[u8]] = &[
        b"a",
        b"product_id",
        b"3",
        b" ",
        b"&",
        b"=",
        b"+",
        b"%",
        b"\xc3\xa4",
        b"\xe2\x80\xa6",
        b"\xff",
        b"\r\n",
        b"--b",
        b"\"",
        b"*",
        b"~",
        b"",
    ];

    /// One multipart part: its `Content-Disposition` parameters and its value.
    fn part_like() -> impl proptest::strategy::Strategy<Value = (Vec<u8>, Vec<u8>)> {
        use proptest::prelude::*;
        let bytes = || {
            prop::collection::vec(prop::sample::select(FIELD_PIECES), 0..6).prop_map(|v| v.concat())
        };
        let disposition = prop_oneof![
            8 => bytes().prop_map(|n| [b"form-data; name=\"".as_slice(), &n, b"\""].concat()),
            1 => disposition_like(),
            1 => Just(b"form-data; name=\"f\"; filename=\"a.txt\"".to_vec()),
        ];
        (disposition, bytes())
    }

    proptest::proptest! {
        #![proptest_config(cases(8_000))]

        /// Fields encoded as they come, values read as multer's chunks: the same answer, byte
        /// for byte, as collecting every field and serializing once.
        #[test]
        fn streamed_capture_agrees_with_the_serializer(
            parts in proptest::collection::vec(part_like(), 0..5),
            broken in proptest::prelude::any::<bool>(),
        ) {
            let mut body = Vec::new();
            for (disposition, value) in &parts {
                body.extend_from_slice(b"--b\r\nContent-Disposition: ");
                body.extend_from_slice(disposition);
                body.extend_from_slice(b"\r\n\r\n");
                body.extend_from_slice(value);
                body.extend_from_slice(b"\r\n");
            }
            if !broken {
                body.extend_from_slice(b"--b--\r\n");
            }
            let kind = FormKind::Multipart { boundary: "b".into() };
            let got = block(capture(kind, Bytes::copy_from_slice(&body)))
                .map(|(enc, c)| (enc, c.to_vec()));
            let want = capture_by_serializer("b", &body).map(|v| (FormEncoding::Multipart, v));
            proptest::prop_assert_eq!(got, want);
        }
    }

    // The browser-shape fast path of multipart capture, against `capture_multer`.

    /// `capture_multer`'s answer, bytes read out.
    fn by_multer(boundary: &str, body: &[u8]) -> Result<Vec<u8>, Rejection> {
        block(capture_multer(
            boundary.into(),
            Bytes::copy_from_slice(body),
        ))
        .map(|(enc, c)| {
            assert_eq!(enc, FormEncoding::Multipart);
            c.to_vec()
        })
    }

    /// A body of text parts in the browsers' framing, closed by `--BOUNDARY--\r\n`.
    fn browser_body(boundary: &str, parts: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(b"--");
            body.extend_from_slice(boundary.as_bytes());
            body.extend_from_slice(BEFORE_NAME);
            body.extend_from_slice(name);
            body.extend_from_slice(AFTER_NAME);
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"--\r\n");
        body
    }

    #[test]
    fn browser_multipart_table() {
        const TWO: &str = "product_id=3&note=%C3%A4+%26+%3D";
        let two = browser_body("b", &[(b"product_id", b"3"), (b"note", "ä & =".as_bytes())]);
        let two = String::from_utf8(two).unwrap();
        let one = |value: &str| {
            format!("--b\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n{value}\r\n--b--\r\n")
        };
        let named = |name: &str| {
            format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\nv\r\n--b--\r\n")
        };
        let fields = |n: usize| {
            let parts = vec![(b"a".as_slice(), b"1".as_slice()); n];
            String::from_utf8(browser_body("b", &parts)).unwrap()
        };
        let most = ["a=1"; MAX_FIELDS].join("&");
        // (what, body, fast path answers?, what `capture` answers); where the fast path
        // answers, it answers that.
        #[rustfmt::skip]
        let rows: Vec<(&str, String, bool, Result<&str, Rejection>)> = vec![
            ("two fields", two.clone(), true, Ok(TWO)),
            ("no fields", "--b--\r\n".into(), true, Ok("")),
            ("no CRLF after the close", two.trim_end().into(), true, Ok(TWO)),
            ("epilogue: multer reads nothing past the close", format!("{two}junk\r\n--b\r\n"), true, Ok(TWO)),
            ("empty name and value", one("").replace("\"n\"", "\"\""), true, Ok("=")),
            ("reserved and non-ASCII name", named("a&b=c+d ä"), true, Ok("a%26b%3Dc%2Bd+%C3%A4=v")),
            ("`;` and `name=` in a name", named("x; name=y"), true, Ok("x%3B+name%3Dy=v")),
            ("CRLF, quotes, `%` in a value", one("a\r\nb \"q\" 100%"), true, Ok("n=a%0D%0Ab+%22q%22+100%25")),
            ("boundary text, no CRLF before it", one("--b--b\r\n-b\r\n--"), true, Ok("n=--b--b%0D%0A-b%0D%0A--")),
            ("the most fields", fields(MAX_FIELDS), true, Ok(&most)),
            // Left to multer, which accepts them.
            ("preamble", format!("preamble\r\n{two}"), false, Ok(TWO)),
            ("padding after a boundary", two.replacen("--b\r\n", "--b \t\r\n", 1), false, Ok(TWO)),
            ("another part header", two.replacen("\"\r\n\r\n", "\"\r\nContent-Type: text/plain\r\n\r\n", 1), false, Ok(TWO)),
            ("spaces around `=`", two.replacen("name=", "name = ", 1), false, Ok(TWO)),
            ("unquoted name", one("v").replace("\"n\"", "n"), false, Ok("n=v")),
            ("`\"` escaped as browsers do", named("a%22b"), false, Ok("a%2522b=v")),
            ("quoted-pair in a name", named(r#"a\"b"#), false, Ok("a%22b=v")),
            ("backslash in a name", named(r"a\b"), false, Ok("a%5Cb=v")),
            ("tab in a name", named("a\tb"), false, Ok("a%09b=v")),
            ("`filename` in a name, after a letter", named("afilename=x"), false, Ok("afilename%3Dx=v")),
            // Left to multer, which refuses them.
            ("`filename` in a name, after a space", named("a filename=x"), false, Err(reasons::FILE_PART)),
            ("a file", two.replacen("\"\r\n\r\n", "\"; filename=\"a.txt\"\r\n\r\n", 1), false, Err(reasons::FILE_PART)),
            ("uppercase `Name=`", two.replacen("name=", "Name=", 1), false, Err(reasons::BAD_MULTIPART)),
            ("LF-only lines", two.replace("\r\n", "\n"), false, Err(reasons::BAD_MULTIPART)),
            ("no close", two.replace("--b--\r\n", ""), false, Err(reasons::BAD_MULTIPART)),
            ("half a close", two.replace("--b--\r\n", "--b-"), false, Err(reasons::BAD_MULTIPART)),
            ("delimiter in a value, then junk", one("x\r\n--bjunk"), false, Err(reasons::BAD_MULTIPART)),
            ("one field too many", fields(MAX_FIELDS + 1), false, Err(reasons::BODY_TOO_LARGE)),
        ];
        for (what, body, fast, want) in rows {
            let want = want.map(|w| w.as_bytes().to_vec());
            let got = capture_browser("b", body.as_bytes());
            assert_eq!(got.is_some(), fast, "{what}");
            if let Some(got) = got {
                assert_eq!(Ok(got), want, "{what}");
            }
            assert_eq!(by_multer("b", body.as_bytes()), want, "{what}");
            let kind = FormKind::Multipart {
                boundary: "b".into(),
            };
            let captured = block(capture(kind, Bytes::from(body))).map(|(_, c)| c.to_vec());
            assert_eq!(captured, want, "{what}");
        }
        // Boundaries it does not read: a CR in one, longer than RFC 2046's 70 bytes.
        let long = "b".repeat(MAX_FAST_BOUNDARY + 1);
        for boundary in ["a\rb", &long] {
            let body = browser_body(boundary, &[(b"a", b"1")]);
            assert_eq!(capture_browser(boundary, &body), None, "{boundary:?}");
            assert_eq!(
                by_multer(boundary, &body),
                Ok(b"a=1".to_vec()),
                "{boundary:?}"
            );
        }
        // A value that is not UTF-8, and a name that is not: multer refuses them.
        for body in [
            b"--b\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n\xe4\r\n--b--\r\n"
                .as_slice(),
            b"--b\r\nContent-Disposition: form-data; name=\"\xe4\"\r\n\r\nv\r\n--b--\r\n",
        ] {
            assert_eq!(capture_browser("b", body), None);
            assert_eq!(by_multer("b", body), Err(reasons::BAD_MULTIPART));
        }
    }

    /// Name pieces browsers send (the form's own names: ASCII, reserved, non-ASCII).
    const BROWSER_NAME_PIECES: &[&str] = &[
        "a",
        "product_id",
        "qty",
        "&",
        "=",
        "+",
        " ",
        "ä",
        "…",
        "日本",
        "😀",
        "-",
        "_",
        ".",
        "*",
        "~",
        "[]",
        "name",
        "form-data",
        ";",
        "'",
        "<>",
        "#",
        "/",
        "--b",
    ];
    /// Name pieces the fast path leaves to multer: quoting, escapes, controls, `filename`.
    const ODD_NAME_PIECES: &[&[u8]] = &[
        b"\"",
        b"%22",
        b"%",
        b"\\",
        b"\t",
        b"\x7f",
        b"\x01",
        b"\r",
        b"\n",
        b"\xff",
        b"filename",
        b" filename=x",
        b";filename",
    ];
    /// Value pieces: anything a text input holds (CRLF as browsers normalise line breaks).
    const VALUE_PIECES: &[&str] = &[
        "3",
        "abc",
        " ",
        "&",
        "=",
        "+",
        "%",
        "%22",
        "%0D%0A",
        "ä",
        "…",
        "😀",
        "\"",
        "'",
        "\\",
        "\r\n",
        "\n",
        "\r",
        "\t",
        "--",
        "-",
        "\r\n-",
        "\r\n\r\n",
        "name=\"x\"",
        "Content-Disposition: form-data; name=\"y\"",
    ];

    /// A value piece made from the boundary: look-alikes, and the delimiter itself.
    #[derive(Debug, Clone)]
    enum Piece {
        Text(&'static [u8]),
        /// `--BOUNDARY`, no CRLF before it.
        Dashed,
        /// `\r\n--` and the boundary but its last byte.
        ShortDelimiter,
        /// The boundary alone.
        Bare,
        /// `\r\n--BOUNDARY`: the value ends there.
        Delimiter,
    }

    /// A change that takes a browser body off its shape (or, for `Epilogue`, keeps it).
    #[derive(Debug, Clone)]
    enum Mutation {
        None,
        Epilogue(&'static str),
        Replace(proptest::sample::Index, u8),
        Insert(proptest::sample::Index, &'static str),
        Remove(proptest::sample::Index, usize),
        Truncate(proptest::sample::Index),
        /// The n-th occurrence of the first string becomes the second.
        Edit(proptest::sample::Index, &'static str, &'static str),
        Preamble(&'static str),
        /// The close `--BOUNDARY--\r\n` becomes this (BOUNDARY spelled `B`).
        Close(&'static str),
        /// Read with another boundary than the body's: shorter, longer, other.
        OtherBoundary(u8),
    }

    fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
        use proptest::prelude::*;
        use proptest::sample::select;
        let index = any::<proptest::sample::Index>;
        prop_oneof![
            30 => Just(Mutation::None),
            10 => select(vec!["", "\r\n", "\r\n\r\nepilogue", "garbage", " ", "--B\r\n", "\r\n--B--"])
                .prop_map(Mutation::Epilogue),
            2 => (index(), prop_oneof![select(b"\r\n-\" \\;=Nnbx".to_vec()), any::<u8>()])
                .prop_map(|(i, b)| Mutation::Replace(i, b)),
            2 => (index(), select(vec![
                "\r\n", "\n", "\r", " ", "\t", "-", "--", "\"", "\\", ";", "\r\n\r\n",
                "Content-Type: text/plain\r\n", "; filename=\"a.txt\"", "\u{7f}",
            ])).prop_map(|(i, s)| Mutation::Insert(i, s)),
            1 => (index(), 1..4usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
            1 => index().prop_map(Mutation::Truncate),
            4 => (index(), select(vec![
                ("\"\r\n\r\n", "\"\r\nContent-Type: text/plain\r\n\r\n"),
                ("\"\r\n\r\n", "\"\r\ncontent-disposition: form-data; name=\"z\"\r\n\r\n"),
                ("\"\r\n\r\n", "\"; filename=\"a.txt\"\r\n\r\n"),
                ("\"\r\n\r\n", "\"; filename\r\n\r\n"),
                ("\"\r\n\r\n", "\"; FILENAME*=UTF-8''a\r\n\r\n"),
                ("\"\r\n\r\n", "\" \r\n\r\n"),
                ("\"\r\n\r\n", "\";\r\n\r\n"),
                ("\r\n", "\n"),
                ("\r\n\r\n", "\n\n"),
                ("name=", "Name="),
                ("name=", "NAME="),
                ("name=", "name ="),
                ("name=", "name= "),
                ("name=\"", "name="),
                ("form-data; ", "form-data;"),
                ("form-data; ", "form-data;  "),
                ("Content-Disposition: ", "content-disposition: "),
                ("Content-Disposition: ", "Content-Disposition:"),
                ("Content-Disposition", "Content-Type"),
                ("form-data", "attachment"),
            ])).prop_map(|(i, (from, to))| Mutation::Edit(i, from, to)),
            1 => select(vec!["preamble\r\n", "\r\n", " ", "x", "-"]).prop_map(Mutation::Preamble),
            2 => select(vec!["", "--B--", "--B", "--B-", "--B-\r\n", "--B \r\n", "--B\r\n", "--B--\r\n--B--\r\n", "\r\n--B--\r\n"])
                .prop_map(Mutation::Close),
            1 => (0..3u8).prop_map(Mutation::OtherBoundary),
        ]
    }

    /// A browser body and its mutation; `browser` when the result is browser-shaped (nothing
    /// odd in names, UTF-8 values without the delimiter, no mutation but an epilogue).
    #[derive(Debug, Clone)]
    struct Case {
        /// The boundary it is read with (the body's, but for `OtherBoundary`).
        read_with: String,
        /// `Bytes` for its escaped `Debug`.
        body: Bytes,
        browser: bool,
    }

    fn multipart_case() -> impl proptest::strategy::Strategy<Value = Case> {
        use proptest::prelude::*;
        use proptest::sample::select;
        let boundary = prop_oneof![
            3 => select(vec![
                "b",
                "----WebKitFormBoundaryAbC123xyz0123",
                "----geckoformboundary3f8a9c0e1b2d",
                "---------------------------1234567890",
                "amp-handoff-abababababababababababababababab",
            ]).prop_map(str::to_owned),
            1 => "[A-Za-z0-9'()+_,./:=? -]{1,70}",
        ];
        // (piece, odd?)
        // A part's name pieces (piece, odd?) and value pieces; `odd` mixes in what a browser
        // does not send.
        let part = |odd: bool| {
            let odd = u32::from(odd);
            let name_piece = prop_oneof![
                12 => select(BROWSER_NAME_PIECES).prop_map(|p| (p.as_bytes(), false)),
                odd => select(ODD_NAME_PIECES).prop_map(|p| (p, true)),
            ];
            let value_piece = prop_oneof![
                12 => select(VALUE_PIECES).prop_map(|p| Piece::Text(p.as_bytes())),
                2 => select(vec![Piece::Dashed, Piece::ShortDelimiter, Piece::Bare]),
                odd => select(vec![b"\xff".as_slice(), b"\xc3", b"\xed\xa0\x80"]).prop_map(Piece::Text),
                odd => Just(Piece::Delimiter),
            ];
            (
                prop::collection::vec(name_piece, 0..5),
                prop::collection::vec(value_piece, 0..7),
            )
        };
        let parts = prop_oneof![
            4 => prop::collection::vec(part(false), 0..6),
            1 => prop::collection::vec(part(true), 0..6),
        ];
        (boundary, parts, mutation()).prop_map(|(b, parts, m)| {
            let delimiter = format!("\r\n--{b}");
            let mut browser = true;
            let parts: Vec<(Vec<u8>, Vec<u8>)> = parts
                .into_iter()
                .map(|(name, value)| {
                    browser &= name.iter().all(|(_, odd)| !odd);
                    let name: Vec<u8> = name.iter().flat_map(|(p, _)| p.iter().copied()).collect();
                    let value: Vec<u8> = value
                        .iter()
                        .flat_map(|p| match p {
                            Piece::Text(t) => t.to_vec(),
                            Piece::Dashed => format!("--{b}").into_bytes(),
                            Piece::ShortDelimiter => {
                                delimiter.as_bytes()[..delimiter.len() - 1].to_vec()
                            }
                            Piece::Bare => b.clone().into_bytes(),
                            Piece::Delimiter => delimiter.clone().into_bytes(),
                        })
                        .collect();
                    browser &= std::str::from_utf8(&value).is_ok()
                        && memchr::memmem::find(&value, delimiter.as_bytes()).is_none();
                    (name, value)
                })
                .collect();
            let refs: Vec<(&[u8], &[u8])> = parts
                .iter()
                .map(|(n, v)| (n.as_slice(), v.as_slice()))
                .collect();
            let mut body = browser_body(&b, &refs);
            let mut read_with = b.clone();
            let at = |i: &proptest::sample::Index, len: usize| i.index(len.max(1)).min(len);
            match m {
                Mutation::None => {}
                Mutation::Epilogue(e) => body.extend_from_slice(e.replace('B', &b).as_bytes()),
                Mutation::Replace(i, byte) => {
                    browser = false;
                    let k = at(&i, body.len());
                    if k < body.len() {
                        body[k] = byte;
                    }
                }
                Mutation::Insert(i, s) => {
                    browser = false;
                    let k = at(&i, body.len());
                    body.splice(k..k, s.bytes());
                }
                Mutation::Remove(i, n) => {
                    browser = false;
                    let k = at(&i, body.len());
                    body.drain(k..(k + n).min(body.len()));
                }
                Mutation::Truncate(i) => {
                    browser = false;
                    body.truncate(at(&i, body.len()));
                }
                Mutation::Edit(i, from, to) => {
                    let found: Vec<usize> =
                        memchr::memmem::find_iter(&body, from.as_bytes()).collect();
                    if !found.is_empty() {
                        browser = false;
                        let k = found[i.index(found.len())];
                        body.splice(k..k + from.len(), to.bytes());
                    }
                }
                Mutation::Preamble(p) => {
                    browser = false;
                    body.splice(0..0, p.bytes());
                }
                Mutation::Close(c) => {
                    browser = false;
                    let close = format!("--{b}--\r\n");
                    body.truncate(body.len() - close.len());
                    body.extend_from_slice(c.replace('B', &b).as_bytes());
                }
                Mutation::OtherBoundary(k) => {
                    browser = false;
                    read_with = match k {
                        0 => b[..b.len() - 1].to_owned(),
                        1 => format!("{b}x"),
                        _ => "other".to_owned(),
                    };
                    if read_with.is_empty() {
                        read_with = "-".to_owned();
                    }
                }
            }
            Case {
                read_with,
                body: Bytes::from(body),
                browser,
            }
        })
    }

    /// Where the fast path answers, multer answers the same fields, byte for byte; `capture`
    /// (fast path, then multer) answers what multer alone answers, errors included; and every
    /// browser-shaped body takes the fast path, which most cases are.
    #[test]
    fn fast_multipart_agrees_with_multer() {
        use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
        let mut config = cases(20_000);
        config.failure_persistence = None;
        let total = config.cases;
        let mut runner = proptest::test_runner::TestRunner::new(config);
        // (browser-shaped, fast path answered, multer Ok but left to it, multer Err)
        let counts: [AtomicU32; 4] = Default::default();
        let result = runner.run(&multipart_case(), |case| {
            let fast = capture_browser(&case.read_with, &case.body);
            let multer = by_multer(&case.read_with, &case.body);
            if let Some(fields) = &fast {
                proptest::prop_assert_eq!(&multer, &Ok(fields.clone()), "{:?}", case);
            }
            let kind = FormKind::Multipart {
                boundary: case.read_with.clone(),
            };
            let captured = block(capture(kind, case.body.clone()));
            proptest::prop_assert_eq!(captured.map(|(_, c)| c.to_vec()), multer.clone());
            if case.browser {
                proptest::prop_assert!(
                    fast.is_some(),
                    "browser-shaped, left to multer: {:?}",
                    case
                );
            }
            let tally = [
                case.browser,
                fast.is_some(),
                fast.is_none() && multer.is_ok(),
                multer.is_err(),
            ];
            for (count, hit) in counts.iter().zip(tally) {
                count.fetch_add(u32::from(hit), Relaxed);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let [browser, fast, left_ok, refused] = counts.map(AtomicU32::into_inner);
        eprintln!(
            "{total} cases: {browser} browser-shaped, {fast} answered by the fast path, \
             {left_ok} accepted by multer only, {refused} refused by multer"
        );
        // Not vacuous: the fast path answers most cases, and the near misses reach multer's
        // acceptances and its refusals.
        assert!(
            browser * 5 >= total * 2,
            "{browser} of {total} browser-shaped"
        );
        assert!(
            left_ok * 50 >= total && refused * 10 >= total,
            "{left_ok} / {refused}"
        );
    }
}

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
        FormKind::Multipart { boundary } => capture_multer(boundary, body).await,
    }
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
}

//! Rejections: ordinary responses with a fitting status and a short reason.

use std::fmt;

use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_FRAME_OPTIONS};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;

/// Why the layer answered a request itself instead of calling the app.
///
/// It is attached to the response as an extension, so outer layers and tests can read it.
///
/// ```
/// use tower_amp_session::Rejection;
///
/// # fn inspect<B>(response: &http::Response<B>) {
/// if let Some(rejection) = response.extensions().get::<Rejection>() {
///     eprintln!("{} {}", rejection.status(), rejection.reason());
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    reason: &'static str,
}

impl Rejection {
    pub(crate) const fn new(status: StatusCode, reason: &'static str) -> Self {
        Rejection { status, reason }
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The short reason, as written in the body.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// A JSON body (`{"error": "..."}`), which amp-form can show in its `submit-error` template.
    pub(crate) fn json<B>(self) -> Response<ResponseBody<B>> {
        // Reasons are fixed ASCII without quotes or backslashes (checked in a test).
        let body = format!("{{\"error\":\"{}\"}}", self.reason);
        self.respond(body, "application/json")
    }

    /// A plain-text body, for non-browser clients and top-level requests.
    pub(crate) fn text<B>(self) -> Response<ResponseBody<B>> {
        self.respond(format!("{}\n", self.reason), "text/plain; charset=utf-8")
    }

    /// A small page with a link back, for a browser that navigated here. Unframeable.
    pub(crate) fn page<B>(self, back: &str) -> Response<ResponseBody<B>> {
        let mut res = self.respond(
            page(self.status, self.reason, back),
            "text/html; charset=utf-8",
        );
        deny_framing(res.headers_mut(), PAGE_CSP);
        res
    }

    fn respond<B>(self, body: String, content_type: &'static str) -> Response<ResponseBody<B>> {
        let mut res = Response::new(ResponseBody::full(body));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.extensions_mut().insert(self);
        res
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.reason)
    }
}

/// The policy of every page the layer writes itself: nothing loads, nothing frames it.
pub(crate) const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The anti-framing headers of every page the layer writes or passes on from a handoff
/// (the same as the confirmation page's): `X-Frame-Options: DENY` for older
/// browsers and `frame-ancestors 'none'` in `csp`. For the app's own failure page `csp` is
/// only `frame-ancestors 'none'`, added as one more policy, so the app's own one still holds.
pub(crate) fn deny_framing(h: &mut HeaderMap, csp: &'static str) {
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.append(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
}

/// An HTML page the layer writes: `status`, `html`, not stored, unframeable (`csp`).
pub(crate) fn html<B>(
    status: StatusCode,
    html: String,
    csp: &'static str,
) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::full(html));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    deny_framing(h, csp);
    res
}

/// A minimal HTML page: a title, the reason, a link back. Everything interpolated is escaped.
pub(crate) fn page(status: StatusCode, message: &str, back: &str) -> String {
    let title = status.canonical_reason().unwrap_or("Error");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{title}</title></head><body><h1>{title}</h1>\
         <p>{}</p><p><a href=\"{}\">Go back</a></p></body></html>\n",
        escape(message),
        escape(back)
    )
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) mod reasons {
    //! Every reason the layer gives, in one place.
    use super::Rejection;
    use http::StatusCode;

    pub(crate) const FOREIGN_ORIGIN: Rejection = Rejection::new(
        StatusCode::FORBIDDEN,
        "cross-origin request from an origin that is not allowed",
    );
    pub(crate) const NO_ORIGIN: Rejection = Rejection::new(
        StatusCode::FORBIDDEN,
        "state-changing request without Origin or AMP-Same-Origin",
    );
    pub(crate) const SOURCE_ORIGIN: Rejection = Rejection::new(
        StatusCode::FORBIDDEN,
        "__amp_source_origin is not a publisher origin",
    );
    pub(crate) const BODY_TOO_LARGE: Rejection = Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the form is too large to send from this page",
    );
    pub(crate) const BODY_UNREADABLE: Rejection = Rejection::new(
        StatusCode::BAD_REQUEST,
        "the request body could not be read",
    );
    pub(crate) const UNSUPPORTED_FORM: Rejection = Rejection::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "only form posts (urlencoded or multipart) can be sent from this page",
    );
    pub(crate) const FILE_PART: Rejection = Rejection::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "file uploads cannot be sent from this page",
    );
    pub(crate) const BAD_MULTIPART: Rejection =
        Rejection::new(StatusCode::BAD_REQUEST, "the multipart form is malformed");
    pub(crate) const TARGET_TOO_LONG: Rejection = Rejection::new(
        StatusCode::URI_TOO_LONG,
        "the request URL is too long to hand off",
    );
    pub(crate) const HANDOFF_METHOD: Rejection = Rejection::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "handoff links are opened with GET and confirmed with POST",
    );
    pub(crate) const HANDOFF_NO_TOKEN: Rejection =
        Rejection::new(StatusCode::BAD_REQUEST, "the handoff link has no token");
    pub(crate) const HANDOFF_SEVERAL_TOKENS: Rejection = Rejection::new(
        StatusCode::BAD_REQUEST,
        "the handoff link has several tokens",
    );
    pub(crate) const HANDOFF_NOT_NAVIGATION: Rejection = Rejection::new(
        StatusCode::FORBIDDEN,
        "handoff links must be opened as a page, not fetched or embedded",
    );
    pub(crate) const HANDOFF_RETURN_PATH: Rejection = Rejection::new(
        StatusCode::BAD_REQUEST,
        "the handoff link has an invalid return path",
    );
    pub(crate) const HANDOFF_TARGET: Rejection = Rejection::new(
        StatusCode::BAD_REQUEST,
        "the handoff link has an invalid target",
    );
    pub(crate) const CONFIRM_ORIGIN: Rejection = Rejection::new(
        StatusCode::FORBIDDEN,
        "a confirmation must be sent from the publisher's own page",
    );
    pub(crate) const CONFIRM_BODY: Rejection = Rejection::new(
        StatusCode::BAD_REQUEST,
        "the confirmation form is malformed",
    );
    pub(crate) const MINT_METHOD: Rejection = Rejection::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "only POST forms can be sent from this page",
    );
    pub(crate) const HANDOFF_PUBLISHER: Rejection = Rejection::new(
        StatusCode::BAD_REQUEST,
        "the handoff link was made for another site",
    );
    pub(crate) const REPLAY_UNAVAILABLE: Rejection = Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "this link cannot be checked right now, so nothing was done; please try again in a moment",
    );
    /// The replay guard holds the link's nonce as pending: the change is being applied by
    /// another completion, or that completion never finished.
    pub(crate) const HANDOFF_PENDING: Rejection = Rejection::new(
        StatusCode::CONFLICT,
        "this change is still being applied, or its result is unknown; check before trying again",
    );
    /// The replay guard forgot nonces to make room and cannot tell whether this one was used.
    pub(crate) const REPLAY_FULL: Rejection = Rejection::new(
        StatusCode::GONE,
        "this link has expired; please go back and send the form again",
    );

    #[cfg(test)]
    pub(crate) const ALL: &[Rejection] = &[
        FOREIGN_ORIGIN,
        NO_ORIGIN,
        SOURCE_ORIGIN,
        BODY_TOO_LARGE,
        BODY_UNREADABLE,
        UNSUPPORTED_FORM,
        FILE_PART,
        BAD_MULTIPART,
        TARGET_TOO_LONG,
        HANDOFF_METHOD,
        HANDOFF_NO_TOKEN,
        HANDOFF_SEVERAL_TOKENS,
        HANDOFF_NOT_NAVIGATION,
        HANDOFF_RETURN_PATH,
        HANDOFF_TARGET,
        CONFIRM_ORIGIN,
        CONFIRM_BODY,
        MINT_METHOD,
        HANDOFF_PUBLISHER,
        REPLAY_UNAVAILABLE,
        HANDOFF_PENDING,
        REPLAY_FULL,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_json_safe_and_short() {
        for r in reasons::ALL {
            assert!(r.reason().len() < 100, "{r}");
            assert!(
                r.reason()
                    .bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'),
                "{r}"
            );
            assert!(r.status().is_client_error() || r.status() == StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    /// Every rejection page carries the anti-framing headers (the JSON and text answers
    /// are not pages, and are not framed as documents anyway).
    #[test]
    fn every_rejection_page_is_unframeable() {
        for r in reasons::ALL {
            let res = r.page::<()>("/");
            assert_eq!(res.status(), r.status(), "{r}");
            assert_eq!(res.headers()[X_FRAME_OPTIONS], "DENY", "{r}");
            let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{r}: {csp}");
            assert!(csp.starts_with("default-src 'none'"), "{r}: {csp}");
        }
    }

    #[test]
    fn page_escapes() {
        let p = page(StatusCode::BAD_REQUEST, "<b>", "/\"x'&");
        assert!(p.contains("&lt;b&gt;"));
        assert!(p.contains("/&quot;x&#39;&amp;"));
    }
}

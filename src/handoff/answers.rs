//! The answers a completion sends a person: redirects, the confirmation page, failures.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::body::ResponseBody;
use crate::config::Config;
use crate::reject::{escape, page};
use crate::token::FormEncoding;

use super::complete::Checked;
use super::*;

/// The page that asks the shopper to confirm a change that did not provably come from
/// their own click on the publisher's cache page (or goes to an undeclared route).
///
/// It shows the method, the route and every field (names and values, escaped), and its
/// one button posts the token to the handoff path from the publisher's own page, so the
/// POST carries the first-party cookie and the publisher's `Origin`; only that POST
/// applies the change. Not frameable, not stored, no script.
///
/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer` browsers send
/// `Origin: null` on the page's own form POST (Fetch, "append a request Origin header"),
/// which would make the confirmation impossible. `same-origin` still sends no `Referer`
/// (with the token in it) to any other origin.
pub(super) fn confirmation_page<B>(
    config: &Config,
    checked: &Checked,
    token: &str,
) -> Response<ResponseBody<B>> {
    let publisher = &config.publishers[checked.publisher];
    let change = &checked.token.change;
    let mut rows = String::new();
    match change.encoding {
        FormEncoding::Empty => {}
        // Both are carried url-encoded (multipart reduced to its text fields at mint).
        _ => {
            for (name, value) in form_urlencoded::parse(&change.body) {
                rows.push_str("<tr><th scope=\"row\"><code>");
                rows.push_str(&escape(&name));
                rows.push_str("</code></th><td><code>");
                rows.push_str(&escape(&value));
                rows.push_str("</code></td></tr>");
            }
        }
    }
    let fields = if rows.is_empty() {
        "<p>The request sends no fields.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Value</th></tr>\
             </thead><tbody>{rows}</tbody></table>"
        )
    };
    let host = escape(&publisher.host);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>Confirm your change on {host}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}\
         th,td{{text-align:left;padding:.2em .6em;border-bottom:1px solid #ccc}}\
         code{{word-break:break-all}}</style></head><body>\
         <h1>Confirm your change on {host}</h1>\
         <p>A page asked to make this change on {host} for you. Apply it only if you just \
         asked for it yourself.</p>\
         <p><code>{method} {route}</code></p>{fields}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"{param}\" value=\"{token}\">\
         <button type=\"submit\">Apply this change</button></form>\
         <p><a href=\"{back}\">Cancel</a></p></body></html>\n",
        method = escape(change.method.as_str()),
        route = escape(&change.target),
        action = escape(&config.handoff_path),
        param = TOKEN_PARAM,
        token = escape(token),
        back = escape(&change.return_path),
    );
    let mut res = Response::new(ResponseBody::full(html));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // One click applies the change: never inside another site's frame (clickjacking).
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    res
}

/// The `303` to `location` (an absolute URL), not stored, sending no `Referer` on.
pub(super) fn see_other<B>(
    location: String,
    set_cookie: Option<HeaderValue>,
) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = StatusCode::SEE_OTHER;
    let h = res.headers_mut();
    // The URL's own buffer becomes the header value: checked, not copied.
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(location)) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, NO_REFERRER);
    if let Some(c) = set_cookie {
        h.append(SET_COOKIE, c);
    }
    res
}

/// The app refused the change: the user is told, with the app's own words where it gave some,
/// and (`retry`) that a reload of the link tries again.
pub(super) async fn failure<ResB>(
    res: Response<ResB>,
    back: &str,
    set_cookie: Option<HeaderValue>,
    retry: bool,
) -> Response<ResponseBody<ResB>>
where
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<crate::BoxError>,
{
    let (parts, body) = res.into_parts();
    let cookies: Vec<HeaderValue> = parts.headers.get_all(SET_COOKIE).iter().cloned().collect();
    let is_html = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let mut out = if is_html {
        // The app wrote a page for people: show it as it is.
        Response::from_parts(parts, ResponseBody::inner(body))
    } else {
        let detail = match Limited::new(body, 1024).collect().await {
            Ok(c) => app_message(&c.to_bytes()),
            Err(_) => String::new(),
        };
        let mut message = String::from("Your change could not be applied.");
        if !detail.trim().is_empty() {
            message.push(' ');
            message.push_str(detail.trim());
        }
        message.push_str(if retry {
            " Nothing was changed; reloading this page will try again."
        } else {
            " Nothing was changed; please go back and send the form again."
        });
        let mut out = Response::new(ResponseBody::full(page(parts.status, &message, back)));
        *out.status_mut() = parts.status;
        out.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        for c in cookies {
            out.headers_mut().append(SET_COOKIE, c);
        }
        out
    };
    let h = out.headers_mut();
    h.remove(CONTENT_LENGTH);
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, NO_REFERRER);
    if let Some(c) = set_cookie {
        h.append(SET_COOKIE, c);
    }
    out
}

/// The app's own words from an error body: the `error` or `message` of a JSON object
/// (amp-form endpoints answer JSON), else the text itself.
fn app_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(m)) = map.get(key) {
                return m.clone();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

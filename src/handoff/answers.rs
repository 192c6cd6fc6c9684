//! The answers a completion sends a person: redirects, the confirmation page, failures.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::body::ResponseBody;
use crate::config::Config;
use crate::reject::{escape, page};

use super::complete::Checked;
use super::*;

/// The page that asks the user to confirm a sensitive change. Its form posts the token to
/// the handoff path from the publisher's own page, so the POST carries the first-party
/// cookie and a publisher `Origin`.
pub(super) fn confirmation_page<B>(
    config: &Config,
    checked: &Checked,
) -> Response<ResponseBody<B>> {
    let change = &checked.token.change;
    let target = change.target.split('?').next().unwrap_or("");
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>Confirm</title></head><body>\
         <h1>Confirm your change</h1><p>You asked to send <code>{} {}</code> from a page \
         served by an AMP cache.</p><form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"{}\" value=\"{}\">\
         <button type=\"submit\">Confirm</button></form>\
         <p><a href=\"{}\">Cancel</a></p></body></html>\n",
        escape(change.method.as_str()),
        escape(target),
        escape(&config.handoff_path),
        TOKEN_PARAM,
        escape(&checked.text),
        escape(&change.return_path),
    );
    let mut res = Response::new(ResponseBody::full(html));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, NO_STORE);
    h.insert(&REFERRER_POLICY, NO_REFERRER);
    // One click applies the change: never inside another site's frame (clickjacking).
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'; form-action 'self'"),
    );
    res
}

pub(super) fn see_other<B>(
    location: &str,
    set_cookie: Option<HeaderValue>,
) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::empty());
    *res.status_mut() = StatusCode::SEE_OTHER;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
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

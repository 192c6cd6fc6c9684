//! The answers a completion sends a person: redirects, the confirmation page, notices,
//! failures.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, REFRESH, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use sha2::{Digest, Sha256};

use crate::body::ResponseBody;
use crate::config::Config;
use crate::describe::PendingChange;
use crate::reject::{deny_framing, escape, html, page, PAGE_CSP};
use crate::token::FormEncoding;

use super::checked::Checked;
use super::render::{render_value, RENDER_FIELD};
use super::*;

/// What the confirmation page says besides the change itself.
pub(super) struct PageContext<'a> {
    /// The host of the page that sent the shopper here (its `Referer`), when another one.
    pub(super) came_from: Option<&'a str>,
    /// Shown again after a POST that came too soon or without a valid render time.
    pub(super) again: bool,
}

/// The arming script: the button stays disabled until the page has been visible for the
/// delay (`data-delay`, ms) and the shopper moved the pointer (to a second position: a
/// browser's synthetic move on load repeats the first) or pressed a key on it. Fixed text,
/// so its hash in the CSP is computed once.
const ARM_SCRIPT: &str = "(function(){var b=document.getElementById('amp-apply');\
if(!b)return;var d=+b.getAttribute('data-delay')||1000,shown=0,last=null,moved=false,at=null;\
b.disabled=true;function vis(){return document.visibilityState==='visible'}\
function tick(){var n=performance.now();if(last!==null)shown+=n-last;last=vis()?n:null;\
if(shown>=d&&moved){b.disabled=false;b.className='armed';clearInterval(iv)}}\
var iv=setInterval(tick,100);if(vis())last=performance.now();\
document.addEventListener('visibilitychange',tick);\
document.addEventListener('pointermove',function(e){if(!e.isTrusted)return;\
var p=e.clientX+','+e.clientY;if(at===null){at=p}else if(p!==at){moved=true}tick()});\
document.addEventListener('keydown',function(e){if(e.isTrusted){moved=true;tick()}});})();";

/// `script-src` source of [`ARM_SCRIPT`]: its SHA-256, computed once per process.
static ARM_SCRIPT_HASH: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(ARM_SCRIPT))));

/// The confirmation page's policy: no frames, no loads, only the arming script.
static CONFIRM_CSP: LazyLock<&'static str> = LazyLock::new(|| {
    Box::leak(
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src {}; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
            *ARM_SCRIPT_HASH
        )
        .into_boxed_str(),
    )
});

/// The change as the app's describer sees it: decoded body fields and query parameters.
pub(super) fn pending_change(checked: &Checked) -> PendingChange {
    let change = &checked.token.change;
    let fields = match change.encoding {
        FormEncoding::Empty => Vec::new(),
        // Both are carried url-encoded (multipart reduced to its text fields at mint).
        _ => form_urlencoded::parse(&change.body).into_owned().collect(),
    };
    let query = checked
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    PendingChange::new(
        change.method.clone(),
        checked.uri.path().to_owned(),
        fields,
        query,
    )
}

/// The page that asks the shopper to confirm a change that did not provably come from
/// their own click on the publisher's cache page (or goes to an undeclared route).
///
/// Its headline is the app's sentence for the change ([`ConfigBuilder::describe`]
/// (crate::ConfigBuilder::describe)), else plain words; it names the site that sent the
/// shopper (the `Referer`'s host), and lists the method, the route and every field of the
/// body and of the address (names and values, escaped). Its one button posts the token
/// and the page's authenticated render time to the handoff path from the publisher's own
/// page, so the POST carries the first-party cookie and the publisher's `Origin`; only
/// that POST applies the change, and only once the page was shown for the confirmation
/// delay. The button is disarmed for the delay by CSS and, with script, until the page has
/// been visible that long and the shopper moved the pointer or pressed a key; a random
/// space above it on every render keeps its position from being measured once.
///
/// Not frameable, not stored; the one script is allowed by its hash.
///
/// `Referrer-Policy: same-origin`, not `no-referrer`: under `no-referrer` browsers send
/// `Origin: null` on the page's own form POST (Fetch, "append a request Origin header"),
/// which would make the confirmation impossible. `same-origin` still sends no `Referer`
/// (with the token in it) to any other origin.
pub(super) fn confirmation_page<B>(
    config: &Config,
    checked: &Checked,
    token: &str,
    context: &PageContext<'_>,
) -> Response<ResponseBody<B>> {
    let publisher = &config.publishers[checked.publisher];
    let change = &checked.token.change;
    let pending = pending_change(checked);
    let mut rows = String::new();
    let sources = [
        (pending.fields(), "the form"),
        (pending.query(), "the address"),
    ];
    for (pairs, source) in sources {
        for (name, value) in pairs {
            rows.push_str("<tr><th scope=\"row\"><code>");
            rows.push_str(&escape(name));
            rows.push_str("</code></th><td><code>");
            rows.push_str(&escape(value));
            rows.push_str("</code></td><td>");
            rows.push_str(source);
            rows.push_str("</td></tr>");
        }
    }
    let fields = if rows.is_empty() {
        "<p>The request sends no fields.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Value</th>\
             <th scope=\"col\">Sent in</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let host = escape(&publisher.host);
    let headline = match config.describers.describe(&pending) {
        Some(sentence) => escape(sentence.as_str()),
        None => format!("Make this change on {host}?"),
    };
    let from = match context.came_from {
        Some(site) => format!(
            "<p>You were sent here by <strong>{}</strong>.</p>",
            escape(site)
        ),
        None => String::new(),
    };
    let again = if context.again {
        "<p class=\"again\"><strong>Please review the change, then press the button.</strong></p>"
    } else {
        ""
    };
    let delay = config.confirmation_delay_ms;
    let now = config.now_ms();
    // Random space above the button on each render (0 to 9 em in tenths): a page on another
    // site cannot know where it will be.
    let offset = rand::random_range(0..=90u32);
    let html_text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>Confirm your change on {host}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}\
         th,td{{text-align:left;padding:.2em .6em;border-bottom:1px solid #ccc}}\
         code{{word-break:break-all}}.again{{color:#8a1c00}}\
         button{{font-size:1.1em;padding:.5em 1.2em;animation:amp-arm {delay}ms step-end}}\
         button:disabled{{opacity:.45;cursor:not-allowed}}\
         @keyframes amp-arm{{from,to{{pointer-events:none;opacity:.45}}}}</style></head><body>\
         <h1>{headline}</h1>{again}{from}\
         <p>Apply it only if you just asked for it yourself on {host}; otherwise, cancel.</p>\
         <p>It sends <code>{method} {route}</code> to {host}:</p>{fields}\
         <div style=\"padding-top:{offset_em}em\"></div>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"{param}\" value=\"{token}\">\
         <input type=\"hidden\" name=\"{render_field}\" value=\"{render}\">\
         <button type=\"submit\" id=\"amp-apply\" data-delay=\"{delay}\">Apply this change</button>\
         </form><p><a href=\"{back}\">Cancel</a></p><script>{script}</script></body></html>\n",
        method = escape(change.method.as_str()),
        route = escape(&change.target),
        offset_em = format_args!("{}.{}", offset / 10, offset % 10),
        action = escape(&config.handoff_path),
        param = TOKEN_PARAM,
        token = escape(token),
        render_field = RENDER_FIELD,
        render = render_value(config, &checked.token.nonce, now),
        back = escape(&change.return_path),
        script = ARM_SCRIPT,
    );
    let status = if context.again {
        // Not applied: a program reading statuses sees that the POST did nothing.
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let mut res = html(status, html_text, *CONFIRM_CSP);
    res.headers_mut()
        .insert(&REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

/// A link already applied, opened again (or its confirmation sent again): says so and goes
/// on to the return path (`back`, absolute) after a moment, with a link to go at once.
/// `200`, not a redirect: a redirect could not say why nothing happened.
pub(super) fn already_applied<B>(back: &str) -> Response<ResponseBody<B>> {
    let text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>Already applied</title></head><body>\
         <h1>This change was already applied</h1><p>Nothing was changed again.</p>\
         <p><a href=\"{}\">Continue</a></p></body></html>\n",
        escape(back)
    );
    let mut res = html(StatusCode::OK, text, PAGE_CSP);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("3; url={back}")) {
        h.insert(REFRESH, v);
    }
    h.insert(&REFERRER_POLICY, NO_REFERRER);
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
        // The app wrote a page for people: show it as it is, but never inside a frame.
        let mut out = Response::from_parts(parts, ResponseBody::inner(body));
        deny_framing(out.headers_mut(), "frame-ancestors 'none'");
        out
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
        let mut out = html(parts.status, page(parts.status, &message, back), PAGE_CSP);
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

//! The HTML pages. Links are absolute URLs on the origin, so they also work on the cache copy.

use std::fmt::Write as _;

use crate::cart::{CartView, Item};
use crate::catalogue::{self, format_cents, Product, PRODUCTS};
use crate::runtime::{Runtime, RUNTIME_PATH};
use crate::site::{Site, CACHE_DOMAIN, HOST};

/// The AMP runtime and the extensions the product page uses, from the AMP CDN.
pub const AMP_SCRIPTS: &str = r#"<script async src="https://cdn.ampproject.org/v0.js"></script>
<script async custom-element="amp-form" src="https://cdn.ampproject.org/v0/amp-form-0.1.js"></script>
<script async custom-template="amp-mustache" src="https://cdn.ampproject.org/v0/amp-mustache-0.2.js"></script>"#;

/// Offline: the local stand-in, served by the origin and by the cache at the same path.
pub const OFFLINE_SCRIPT_PATH: &str = "/offline/amp-form.js";

/// The stand-in's script tag.
pub fn offline_scripts() -> String {
    format!("<script async src=\"{OFFLINE_SCRIPT_PATH}\"></script>")
}

/// Which site a page is served by: the runtime is loaded from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Origin,
    Cache,
}

/// The runtime's part of a product page's `<head>`. The cache swaps the origin's for its own,
/// as real caches point the runtime's URLs at their own copy.
///
/// On the cache, `self.AMP_CONFIG` is preset before `v0.js` runs (it keeps a config a page
/// set): `cdnProxyRegex` makes the runtime take `*.cache.localhost` for an AMP cache (by
/// default only `*.cdn.ampproject.org` is one), so it reads the publisher origin from the
/// `/c/s/<host>` path and sends that as `__amp_source_origin`; `cdnUrl` is where it fetches
/// further extensions from.
pub fn runtime_head(site: &Site, runtime: &Runtime, served: Served) -> String {
    let base = match (runtime, served) {
        (Runtime::StandIn, _) => return offline_scripts(),
        (Runtime::Cdn, _) => "https://cdn.ampproject.org".to_owned(),
        (Runtime::Local(_), Served::Origin) => site.origin_url(RUNTIME_PATH),
        (Runtime::Local(_), Served::Cache) => format!("{}{RUNTIME_PATH}", site.cache_origin),
    };
    let scripts = AMP_SCRIPTS.replace("https://cdn.ampproject.org", &base);
    match (runtime, served) {
        (Runtime::Local(_), Served::Origin) => format!(
            "<meta name=\"runtime-host\" content=\"{}\">\n{scripts}",
            esc(&base)
        ),
        (_, Served::Cache) => {
            let mut config = serde_json::json!({
                "cdnProxyRegex": format!(
                    "^{}://([a-zA-Z0-9_-]+\\.)?{}(:[0-9]+)?$",
                    site.scheme,
                    CACHE_DOMAIN.replace('.', "\\.")
                ),
            });
            if matches!(runtime, Runtime::Local(_)) {
                config["cdnUrl"] = base.into();
            }
            // JSON is a JavaScript expression; `<` is escaped so no `</script>` can appear.
            let config = config.to_string().replace('<', "\\u003c");
            format!("<script>self.AMP_CONFIG={config};</script>\n{scripts}")
        }
        (_, Served::Origin) => scripts,
    }
}

/// The required AMP boilerplate (amp.dev "AMP boilerplate code").
const AMP_BOILERPLATE: &str = "<style amp-boilerplate>body{-webkit-animation:-amp-start 8s steps(1,end) 0s 1 normal both;-moz-animation:-amp-start 8s steps(1,end) 0s 1 normal both;-ms-animation:-amp-start 8s steps(1,end) 0s 1 normal both;animation:-amp-start 8s steps(1,end) 0s 1 normal both}@-webkit-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@-moz-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@-ms-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@-o-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}</style><noscript><style amp-boilerplate>body{-webkit-animation:none;-moz-animation:none;-ms-animation:none;animation:none}</style></noscript>";

/// The shop's name, in the header of every page.
pub const SHOP_NAME: &str = "Kettle & Grind";

/// One look for every page, AMP or not. The AMP runtime's own CSS sets `body{margin:0}` on AMP
/// pages, so the page width and margins live on a wrapper (`.page`), never on `body`.
const STYLE: &str = "body{margin:0;font-family:system-ui,sans-serif;color:#222;background:#faf8f5}\
.shop-header{background:#3b2a20;color:#fff}\
.shop-header .bar{max-width:40em;margin:0 auto;padding:.8em 1em;display:flex;justify-content:space-between;align-items:center}\
.shop-header a{color:#fff;text-decoration:none}.shop-name{font-weight:bold;font-size:1.2em}\
.page{max-width:40em;margin:1.5em auto;padding:0 1em}\
.price{font-size:1.2em;font-weight:bold}\
form [submit-success],form [submit-error]{display:none}\
form.amp-form-submit-success [submit-success],form.amp-form-submit-error [submit-error]{display:block}\
[submit-error]{color:#a00}.just-added{background:#e6f4e6;padding:.5em}\
.finish{display:inline-block;margin-top:.3em;padding:.4em .8em;background:#3b2a20;color:#fff;border-radius:4px}";

/// The header every page starts with: the shop's name (home) and the cart.
fn header(site: &Site) -> String {
    format!(
        "<header class=\"shop-header\"><div class=\"bar\">\
         <a class=\"shop-name\" href=\"{home}\">{name}</a>\
         <a href=\"{cart}\">Cart</a></div></header>",
        home = esc(&site.origin_url("/")),
        name = esc(SHOP_NAME),
        cart = esc(&site.origin_url("/cart")),
    )
}

/// Minimal HTML escaping for text and attribute values.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain (non-AMP) page of the origin, in the shop's layout.
fn plain(site: &Site, title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n<title>{title} \u{2013} {shop}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{header}\n<main class=\"page\">\n{body}</main>\n</body>\n</html>\n",
        title = esc(title),
        shop = esc(SHOP_NAME),
        header = header(site),
    )
}

/// `GET /`: every product, with its AMP page on the origin and its copy on the cache.
pub fn index(site: &Site) -> String {
    let mut body = String::from("<h1>Coffee gear</h1>\n<ul>\n");
    for p in &PRODUCTS {
        let path = format!("/products/{}", p.id);
        let _ = writeln!(
            body,
            "<li>{name}, {price} &mdash; <a href=\"{origin}\">AMP page</a> \
             &middot; <a href=\"{cache}\">on the AMP cache</a></li>",
            name = esc(p.name),
            price = p.price(),
            origin = esc(&site.origin_url(&path)),
            cache = esc(&site.cache_page_url(&path)),
        );
    }
    let _ = writeln!(
        body,
        "</ul>\n<p><a href=\"{}\">Your cart</a></p>",
        esc(&site.origin_url("/cart"))
    );
    plain(site, "Coffee gear", &body)
}

/// `GET /products/{id}`: an AMP page whose amp-form adds the product to the cart.
///
/// `urlencoded` sets the form's `enctype` so that amp-form posts
/// `application/x-www-form-urlencoded` instead of its default `multipart/form-data`.
/// `view` is the shopper's cart (on the origin; the cache fetches pages without cookies, so
/// its copy shows none): what was just added through a handoff, and what the cart holds.
///
/// The form carries the page's own URL for the layer (`amp_return_path`, filled in by
/// amp-form from `SOURCE_URL`, the URL of the origin page also on a cache copy, query
/// included), so a handoff lands the shopper back here in every engine.
///
/// The success template shows the shop's own answer (`{{message}}`), or, for the layer's
/// handoff answer, that nothing is added yet and a link to the handoff URL: the browser may
/// refuse to navigate by itself (no user activation, a sandboxed viewer iframe), and a
/// click on the link finishes the add (once) all the same.
pub fn product(
    site: &Site,
    runtime: &Runtime,
    p: &Product,
    urlencoded: bool,
    view: &CartView,
) -> String {
    let enctype = if urlencoded {
        " enctype=\"application/x-www-form-urlencoded\""
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html ⚡ lang="en">
<head>
<meta charset="utf-8">
<title>{name} – {shop}</title>
<link rel="canonical" href="{canonical}">
<meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer-when-downgrade">
{scripts}
<style amp-custom>{STYLE}</style>
{AMP_BOILERPLATE}
</head>
<body>
{header}
<main class="page">
<h1>{name}</h1>
{status}<p class="price">{price}</p>
<form method="post" action-xhr="{action}" target="_top"{enctype}>
<input type="hidden" name="product_id" value="{id}">
<input type="hidden" name="amp_return_path" value="SOURCE_URL" data-amp-replace="SOURCE_URL">
<label>Quantity <input type="number" name="quantity" value="1" min="1" max="99" required></label>
<button type="submit">Add to cart</button>
<div submit-success><template type="amp-mustache">{{{{#handoff}}}}<p class="form-message">Not added yet: this finishes on {host}.</p><p><a class="finish" href="{{{{handoff_url}}}}" target="_top">Finish on {host}</a></p>{{{{/handoff}}}}{{{{^handoff}}}}<p class="form-message">{{{{message}}}}</p>{{{{/handoff}}}}</template></div>
<div submit-error><template type="amp-mustache"><p class="form-message">Could not add to the cart: {{{{error}}}}</p></template></div>
</form>
<p><a href="{cart}">Your cart</a> &middot; <a href="{home}">All products</a></p>
</main>
</body>
</html>
"#,
        name = esc(p.name),
        shop = esc(SHOP_NAME),
        header = header(site),
        host = esc(HOST),
        canonical = esc(&site.origin_url(&format!("/products/{}", p.id))),
        scripts = runtime_head(site, runtime, Served::Origin),
        status = cart_status(view),
        price = p.price(),
        action = esc(&site.origin_url("/cart/add")),
        id = p.id,
        cart = esc(&site.origin_url("/cart")),
        home = esc(&site.origin_url("/")),
    )
}

/// `2 × Pour-over kettle`.
pub fn describe(item: &Item) -> String {
    let name = catalogue::find(item.product_id).map_or("an unknown product", |p| p.name);
    format!("{} \u{d7} {name}", item.quantity)
}

/// What a page says about the cart: the add just applied through a handoff (once), and
/// what the cart holds. Empty when there is neither.
fn cart_status(view: &CartView) -> String {
    let mut out = String::new();
    if let Some(added) = &view.just_added {
        let _ = writeln!(
            out,
            "<p class=\"just-added\" role=\"status\">Added {} to your cart.</p>",
            esc(&describe(added))
        );
    }
    if !view.items.is_empty() {
        let lines: Vec<String> = view.items.iter().map(|i| esc(&describe(i))).collect();
        let _ = writeln!(
            out,
            "<p class=\"in-cart\">In your cart: {}.</p>",
            lines.join(", ")
        );
    }
    out
}

/// `GET /cart`: the current session's cart.
pub fn cart(site: &Site, view: &CartView) -> String {
    let mut body = String::from("<h1>Your cart</h1>\n");
    if let Some(added) = &view.just_added {
        let _ = writeln!(
            body,
            "<p class=\"just-added\" role=\"status\">Added {} to your cart.</p>",
            esc(&describe(added))
        );
    }
    if view.items.is_empty() {
        body.push_str("<p>The cart is empty.</p>\n");
    } else {
        body.push_str("<ul>\n");
        let mut total: u64 = 0;
        for item in &view.items {
            let Some(p) = catalogue::find(item.product_id) else {
                continue;
            };
            let line = u64::from(p.price_cents) * u64::from(item.quantity);
            total += line;
            let _ = writeln!(
                body,
                "<li>{qty} &times; <a href=\"{href}\">{name}</a>: {line}</li>",
                qty = item.quantity,
                href = esc(&site.origin_url(&format!("/products/{}", p.id))),
                name = esc(p.name),
                line = format_cents(line),
            );
        }
        let _ = writeln!(body, "</ul>\n<p>Total: {}</p>", format_cents(total));
    }
    let _ = writeln!(
        body,
        "<p><a href=\"{}\">Continue shopping</a></p>",
        esc(&site.origin_url("/"))
    );
    plain(site, "Your cart", &body)
}

/// A 404 page for people.
pub fn not_found(site: &Site) -> String {
    let body = format!(
        "<h1>Not found</h1>\n<p><a href=\"{}\">All products</a></p>\n",
        esc(&site.origin_url("/"))
    );
    plain(site, "Not found", &body)
}

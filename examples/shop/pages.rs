//! The HTML pages. Links are absolute URLs on the origin, so they also work on the cache copy.

use std::fmt::Write as _;

use crate::cart::Item;
use crate::catalogue::{self, format_cents, Product, PRODUCTS};
use crate::site::Site;

/// The AMP runtime and the extensions the product page uses.
pub const AMP_SCRIPTS: &str = r#"<script async src="https://cdn.ampproject.org/v0.js"></script>
<script async custom-element="amp-form" src="https://cdn.ampproject.org/v0/amp-form-0.1.js"></script>
<script async custom-template="amp-mustache" src="https://cdn.ampproject.org/v0/amp-mustache-0.2.js"></script>"#;

/// Offline: the local stand-in, served by the origin and by the cache at the same path.
pub const OFFLINE_SCRIPT_PATH: &str = "/offline/amp-form.js";

/// The stand-in's script tag, as it replaces `AMP_SCRIPTS`.
pub fn offline_scripts() -> String {
    format!("<script async src=\"{OFFLINE_SCRIPT_PATH}\"></script>")
}

/// The required AMP boilerplate (amp.dev "AMP boilerplate code").
const AMP_BOILERPLATE: &str = "<style amp-boilerplate>body{-webkit-animation:-amp-start 8s steps(1,end) 0s 1 normal both;-moz-animation:-amp-start 8s steps(1,end) 0s 1 normal both;-ms-animation:-amp-start 8s steps(1,end) 0s 1 normal both;animation:-amp-start 8s steps(1,end) 0s 1 normal both}@-webkit-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@-moz-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@-ms-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@-o-keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}@keyframes -amp-start{from{visibility:hidden}to{visibility:visible}}</style><noscript><style amp-boilerplate>body{-webkit-animation:none;-moz-animation:none;-ms-animation:none;animation:none}</style></noscript>";

const STYLE: &str = "body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}\
form [submit-success],form [submit-error]{display:none}\
form.amp-form-submit-success [submit-success],form.amp-form-submit-error [submit-error]{display:block}\
[submit-error]{color:#a00}";

/// Minimal HTML escaping for text and attribute values.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain (non-AMP) page of the origin.
fn plain(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n<title>{title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        title = esc(title)
    )
}

/// `GET /`: every product, with its AMP page on the origin and its copy on the cache.
pub fn index(site: &Site) -> String {
    let mut body = String::from("<h1>Shop</h1>\n<ul>\n");
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
    plain("Shop", &body)
}

/// `GET /products/{id}`: an AMP page whose amp-form adds the product to the cart.
///
/// `urlencoded` sets the form's `enctype` so that amp-form posts
/// `application/x-www-form-urlencoded` instead of its default `multipart/form-data`.
pub fn product(site: &Site, p: &Product, urlencoded: bool) -> String {
    let scripts = if site.offline {
        offline_scripts()
    } else {
        AMP_SCRIPTS.to_owned()
    };
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
<title>{name}</title>
<link rel="canonical" href="{canonical}">
<meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer-when-downgrade">
{scripts}
<style amp-custom>{STYLE}</style>
{AMP_BOILERPLATE}
</head>
<body>
<h1>{name}</h1>
<p>Price: {price}</p>
<form method="post" action-xhr="{action}" target="_top"{enctype}>
<input type="hidden" name="product_id" value="{id}">
<label>Quantity <input type="number" name="quantity" value="1" min="1" max="99" required></label>
<button type="submit">Add to cart</button>
<div submit-success><template type="amp-mustache">Added to your cart.</template></div>
<div submit-error><template type="amp-mustache">Could not add to the cart: {{{{error}}}}</template></div>
</form>
<p><a href="{cart}">Your cart</a> &middot; <a href="{home}">All products</a></p>
</body>
</html>
"#,
        name = esc(p.name),
        canonical = esc(&site.origin_url(&format!("/products/{}", p.id))),
        price = p.price(),
        action = esc(&site.origin_url("/cart/add")),
        id = p.id,
        cart = esc(&site.origin_url("/cart")),
        home = esc(&site.origin_url("/")),
    )
}

/// `GET /cart`: the current session's cart.
pub fn cart(site: &Site, items: &[Item]) -> String {
    let mut body = String::from("<h1>Your cart</h1>\n");
    if items.is_empty() {
        body.push_str("<p>The cart is empty.</p>\n");
    } else {
        body.push_str("<ul>\n");
        let mut total: u64 = 0;
        for item in items {
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
    plain("Your cart", &body)
}

/// A 404 page for people.
pub fn not_found(site: &Site) -> String {
    let body = format!(
        "<h1>Not found</h1>\n<p><a href=\"{}\">All products</a></p>\n",
        esc(&site.origin_url("/"))
    );
    plain("Not found", &body)
}

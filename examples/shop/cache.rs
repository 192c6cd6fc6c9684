//! A simulated AMP cache: serves the origin's AMP pages from its own site, under
//! `/c/s/<publisher host>/<path>` (an https origin) or `/c/<publisher host>/<path>` (http),
//! the way `<sub>.cdn.ampproject.org` does.
//!
//! Like a real cache it gets the page from the origin itself, never with the browser's
//! cookies; here by calling the origin's service in process (the same answer a fetch over
//! loopback would get, also when the origin speaks TLS). The page's forms still post straight
//! to the origin (`action-xhr` is an absolute origin URL). Unlike a real cache it does not
//! store pages: asking each time keeps the example simple.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt as _;

use crate::origin::offline_js;
use crate::pages::{runtime_head, Served, OFFLINE_SCRIPT_PATH};
use crate::runtime::{self, Runtime, RUNTIME_PATH};
use crate::site::Site;

/// Pages bigger than this are not AMP pages we mean to serve.
const PAGE_LIMIT: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The origin's whole service, layer included, as the cache calls it.
pub type Origin = BoxCloneSyncService<Request, Response, Infallible>;

#[derive(Debug, Clone)]
pub struct Cache {
    site: Site,
    runtime: Runtime,
    origin: Origin,
}

pub fn router(site: Site, runtime: Runtime, origin: Origin) -> Router {
    let mut router = Router::new();
    if let Runtime::Local(files) = &runtime {
        router = router.route(
            &format!("{RUNTIME_PATH}/{{*file}}"),
            get(runtime::serve).with_state(files.clone()),
        );
    }
    let cache = Arc::new(Cache {
        site,
        runtime,
        origin,
    });
    router
        .route("/", get(home))
        .route("/c/{*page}", get(page))
        .route(OFFLINE_SCRIPT_PATH, get(offline_js))
        .with_state(cache)
}

async fn home(State(cache): State<Arc<Cache>>) -> Html<String> {
    let example = cache.site.cache_page_url("/products/1");
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Simulated AMP cache</title>\
         <p>A simulated AMP cache. Pages of {origin} are served under \
         <a href=\"{example}\">{example}</a> and the like.</p>",
        origin = cache.site.origin,
    ))
}

/// `GET /c/s/<host>/<path>` (or `/c/<host>/<path>`): the cached copy of `<origin>/<path>`.
async fn page(State(cache): State<Arc<Cache>>, Path(page): Path<String>, uri: Uri) -> Response {
    let (https, page) = match page.strip_prefix("s/") {
        Some(rest) => (true, rest),
        None => (false, page.as_str()),
    };
    let (host, path) = match page.split_once('/') {
        Some((host, path)) => (host, format!("/{path}")),
        None => (page, "/".to_owned()),
    };
    // This cache serves one publisher only.
    if !host.eq_ignore_ascii_case(&cache.site.authority) {
        return (
            StatusCode::NOT_FOUND,
            "this cache serves only the shop's pages\n",
        )
            .into_response();
    }
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    // `/c/s/` names an https origin and `/c/` an http one: the runtime reads the scheme from
    // it, so a link with the other one is sent to the right one.
    if https != cache.site.tls() {
        return Redirect::to(&cache.site.cache_page_url(&target)).into_response();
    }
    match tokio::time::timeout(FETCH_TIMEOUT, cache.fetch(&target)).await {
        Ok(Ok(Fetched::Amp(html))) => {
            // Real caches point the runtime's URLs at their own copy; this one also tells the
            // runtime that it is a cache (see `runtime_head`).
            let html = String::from_utf8_lossy(&html).replace(
                &runtime_head(&cache.site, &cache.runtime, Served::Origin),
                &runtime_head(&cache.site, &cache.runtime, Served::Cache),
            );
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
        }
        // Caches serve AMP documents only; for anything else they send the user to the origin.
        Ok(Ok(Fetched::NotAmp)) => Redirect::to(&cache.site.origin_url(&target)).into_response(),
        Ok(Ok(Fetched::Status(status))) => {
            (status, format!("the origin answered {status}\n")).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %target, "cache: origin fetch failed");
            (StatusCode::BAD_GATEWAY, "the origin could not be reached\n").into_response()
        }
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the origin did not answer in time\n",
        )
            .into_response(),
    }
}

enum Fetched {
    Amp(Bytes),
    NotAmp,
    Status(StatusCode),
}

impl Cache {
    /// Asks the origin for `target` as a cache's crawler would: with the origin's `Host`, and
    /// without any of the browser's headers (no cookies).
    async fn fetch(
        &self,
        target: &str,
    ) -> Result<Fetched, Box<dyn std::error::Error + Send + Sync>> {
        let req = Request::get(target)
            .header(header::HOST, HeaderValue::from_str(&self.site.authority)?)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())?;
        let res = self.origin.clone().oneshot(req).await?;
        if res.status() != StatusCode::OK {
            return Ok(Fetched::Status(res.status()));
        }
        let html = Limited::new(res.into_body(), PAGE_LIMIT)
            .collect()
            .await?
            .to_bytes();
        Ok(if is_amp(&html) {
            Fetched::Amp(html)
        } else {
            Fetched::NotAmp
        })
    }
}

/// Whether a document declares itself AMP (`<html ⚡` or `<html amp`).
fn is_amp(html: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&html[..html.len().min(1024)]).to_ascii_lowercase();
    head.contains("<html ⚡") || head.contains("<html amp")
}

//! A simulated AMP cache: serves the origin's AMP pages from its own site, under
//! `/c/s/<publisher host>/<path>`, the way `<sub>.cdn.ampproject.org` does.
//!
//! Like a real cache it fetches the page from the origin itself, server to server, so the
//! browser's cookies never reach the origin this way; the page's forms still post straight
//! to the origin (`action-xhr` is an absolute origin URL). Unlike a real cache it does not
//! store pages: fetching each time keeps the example simple.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Request, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::origin::offline_js;
use crate::pages::{offline_scripts, AMP_SCRIPTS, OFFLINE_SCRIPT_PATH};
use crate::site::Site;

/// Pages bigger than this are not AMP pages we mean to serve.
const PAGE_LIMIT: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Cache {
    site: Site,
    origin_port: u16,
    client: Client<HttpConnector, Empty<Bytes>>,
}

pub fn router(site: Site, origin_port: u16) -> Router {
    let cache = Arc::new(Cache {
        site,
        origin_port,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    Router::new()
        .route("/", get(home))
        .route("/c/s/{*page}", get(page))
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

/// `GET /c/s/<host>/<path>`: the cached copy of `<origin>/<path>`.
async fn page(State(cache): State<Arc<Cache>>, Path(page): Path<String>, uri: Uri) -> Response {
    let (host, path) = match page.split_once('/') {
        Some((host, path)) => (host, format!("/{path}")),
        None => (page.as_str(), "/".to_owned()),
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
    match tokio::time::timeout(FETCH_TIMEOUT, cache.fetch(&target)).await {
        Ok(Ok(Fetched::Amp(html))) => {
            // Real caches rewrite the runtime's URLs to their own copy. This one swaps in the
            // stand-in even online: the real runtime reads `/c/s/<host>` only on the known
            // cache hosts, so on `cache.localhost` it would name the cache as
            // `__amp_source_origin`, which the layer rightly refuses.
            let html = String::from_utf8_lossy(&html).replace(AMP_SCRIPTS, &offline_scripts());
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
    /// Fetches `target` from the origin over loopback, as a cache's crawler would: with the
    /// origin's `Host`, and without any of the browser's headers (no cookies).
    async fn fetch(
        &self,
        target: &str,
    ) -> Result<Fetched, Box<dyn std::error::Error + Send + Sync>> {
        let uri: Uri = format!("http://127.0.0.1:{}{target}", self.origin_port).parse()?;
        let req = Request::get(uri)
            .header(header::HOST, HeaderValue::from_str(&self.site.authority)?)
            .header(header::ACCEPT, "text/html")
            .body(Empty::new())?;
        let res = self.client.request(req).await?;
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

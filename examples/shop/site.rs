//! The shop's two public addresses: the origin and the simulated AMP cache.

use tower_amp_session::cache_url::cache_subdomain;

/// The publisher's host name (`*.localhost` resolves to loopback in browsers, no set-up).
pub const HOST: &str = "shop.localhost";
/// The simulated cache's domain; the publisher's cache subdomain is prefixed to it.
pub const CACHE_DOMAIN: &str = "cache.localhost";

#[derive(Debug, Clone)]
pub struct Site {
    /// `shop.localhost:8080`: the `Host` of the origin, and the `<host>` in `/c/s/<host>/...`.
    pub authority: String,
    /// `http://shop.localhost:8080`: the publisher origin.
    pub origin: String,
    /// `http://shop-localhost.cache.localhost:8081`: where the cache serves the pages.
    pub cache_origin: String,
    /// Load the local stand-in for amp-form instead of the AMP runtime.
    pub offline: bool,
}

impl Site {
    pub fn new(origin_port: u16, cache_port: u16, offline: bool) -> Result<Site, String> {
        // The same algorithm the layer uses to recognise the cache's `Origin`.
        let sub = cache_subdomain(HOST).map_err(|e| format!("cache subdomain of {HOST}: {e}"))?;
        let authority = format!("{HOST}:{origin_port}");
        Ok(Site {
            origin: format!("http://{authority}"),
            cache_origin: format!("http://{sub}.{CACHE_DOMAIN}:{cache_port}"),
            authority,
            offline,
        })
    }

    /// An absolute URL on the origin.
    pub fn origin_url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The cache copy of an origin page: `http://<sub>.cache.localhost:Q/c/s/shop.localhost:P/<path>`.
    pub fn cache_page_url(&self, path: &str) -> String {
        format!("{}/c/s/{}{path}", self.cache_origin, self.authority)
    }
}

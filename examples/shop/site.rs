//! The shop's two public addresses: the origin and the simulated AMP cache.

use tower_amp_session::cache_url::cache_subdomain;

/// The publisher's host name (`*.localhost` resolves to loopback in browsers, no set-up).
pub const HOST: &str = "shop.localhost";
/// The simulated cache's domain; the publisher's cache subdomain is prefixed to it.
pub const CACHE_DOMAIN: &str = "cache.localhost";

#[derive(Debug, Clone)]
pub struct Site {
    /// `http` or `https` (`--tls`), the same for both sites.
    pub scheme: &'static str,
    /// `shop.localhost:8080`: the `Host` of the origin, and the `<host>` in `/c/<host>/...`.
    pub authority: String,
    /// `http://shop.localhost:8080`: the publisher origin.
    pub origin: String,
    /// `shop-localhost.cache.localhost`: the cache's host name, without the port.
    pub cache_host: String,
    /// `http://shop-localhost.cache.localhost:8081`: where the cache serves the pages.
    pub cache_origin: String,
}

impl Site {
    pub fn new(origin_port: u16, cache_port: u16, tls: bool) -> Result<Site, String> {
        // The same algorithm the layer uses to recognise the cache's `Origin`.
        let sub = cache_subdomain(HOST).map_err(|e| format!("cache subdomain of {HOST}: {e}"))?;
        let scheme = if tls { "https" } else { "http" };
        let authority = format!("{HOST}:{origin_port}");
        let cache_host = format!("{sub}.{CACHE_DOMAIN}");
        Ok(Site {
            scheme,
            origin: format!("{scheme}://{authority}"),
            cache_origin: format!("{scheme}://{cache_host}:{cache_port}"),
            cache_host,
            authority,
        })
    }

    /// Whether both sites are served over https.
    pub fn tls(&self) -> bool {
        self.scheme == "https"
    }

    /// An absolute URL on the origin.
    pub fn origin_url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Where the cache keeps this publisher's pages, in the format of the real caches (and
    /// of the AMP runtime, which reads the publisher origin back from it): `/c/s/<host>` for
    /// an https origin, `/c/<host>` for an http one.
    pub fn cache_prefix(&self) -> String {
        let s = if self.tls() { "s/" } else { "" };
        format!("/c/{s}{}", self.authority)
    }

    /// The cache copy of an origin page, e.g.
    /// `http://shop-localhost.cache.localhost:8081/c/shop.localhost:8080/products/1`.
    pub fn cache_page_url(&self, path: &str) -> String {
        format!("{}{}{path}", self.cache_origin, self.cache_prefix())
    }
}

//! AMP caches whose pages may call the publisher.

/// An AMP cache: requests from the publisher's subdomain on it count as
/// [`RequestSource::AmpCache`](crate::RequestSource::AmpCache).
///
/// The defaults are Google's and Bing's caches. A custom domain serves tests and local
/// development (`cache.localhost` with plain http and a port, as `examples/shop` does).
///
/// ```
/// use tower_amp_session::CacheDomain;
///
/// let google = CacheDomain::google();
/// let local = CacheDomain::custom("cache.localhost").allow_http().port(8081);
/// assert_eq!(google.hosts(), ["cdn.ampproject.org"]);
/// assert_eq!(local.hosts(), ["cache.localhost"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDomain {
    hosts: Vec<String>,
    allow_http: bool,
    port: Option<u16>,
}

impl CacheDomain {
    /// Google's AMP cache, `<subdomain>.cdn.ampproject.org`.
    pub fn google() -> Self {
        Self::custom("cdn.ampproject.org")
    }

    /// Bing's AMP cache, seen both as `<subdomain>.www.bing-amp.com` and `<subdomain>.bing-amp.com`.
    pub fn bing() -> Self {
        CacheDomain {
            hosts: vec!["www.bing-amp.com".into(), "bing-amp.com".into()],
            allow_http: false,
            port: None,
        }
    }

    /// Another cache domain: the publisher's subdomain is computed and prefixed to it.
    pub fn custom(domain: impl Into<String>) -> Self {
        CacheDomain {
            hosts: vec![domain.into().to_ascii_lowercase()],
            allow_http: false,
            port: None,
        }
    }

    /// Also accept `http://` origins on this cache. For local testing only.
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Accept origins with this port (for local testing). Without it, only the default port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The domains under which the publisher's subdomain is looked for.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The serialized origins (`scheme://sub.domain[:port]`) this cache gives a publisher
    /// whose cache subdomain is `subdomain`.
    pub(crate) fn origins(&self, subdomain: &str) -> Vec<String> {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let schemes: &[&str] = if self.allow_http {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut out = Vec::new();
        for host in &self.hosts {
            for scheme in schemes {
                out.push(format!("{scheme}://{subdomain}.{host}{port}"));
            }
        }
        out
    }

    /// Whether `host` (with its port, as in a URL authority) is the page host of
    /// `subdomain` on this cache.
    pub(crate) fn is_cache_host(&self, subdomain: &str, host: &str) -> bool {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        self.hosts.iter().any(|h| {
            host.eq_ignore_ascii_case(&format!("{subdomain}.{h}{port}"))
                || (self.port.is_none() && host.eq_ignore_ascii_case(&format!("{subdomain}.{h}")))
        })
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.hosts.iter().all(|h| {
            !h.is_empty()
                && h.len() <= 253
                && h.contains('.')
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
    }
}

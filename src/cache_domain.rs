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
    /// `subdomain` on this cache: `subdomain.<host>[:port]`, ASCII case-insensitively.
    /// Compared piece by piece (on every mint), never formatted.
    pub(crate) fn is_cache_host(&self, subdomain: &str, host: &str) -> bool {
        let Some(rest) = strip_prefix_ignore_case(host.as_bytes(), subdomain.as_bytes())
            .and_then(|r| r.strip_prefix(b"."))
        else {
            return false;
        };
        self.hosts
            .iter()
            .any(|h| match strip_prefix_ignore_case(rest, h.as_bytes()) {
                Some(b"") => self.port.is_none(),
                Some(port) => self.port.is_some_and(|p| {
                    port.strip_prefix(b":")
                        .is_some_and(|d| d == decimal(p, &mut [0; 5]))
                }),
                None => false,
            })
    }

    /// The `https://` origin of `subdomain` under `host` (one of [`hosts`](Self::hosts)),
    /// with this cache's port: what a browser sends from the publisher's page there.
    pub(crate) fn page_origin(&self, subdomain: &str, host: &str) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("https://{subdomain}.{host}{port}")
    }

    /// When a custom domain is a publisher's page host on a cache rather than a cache domain
    /// (under a built-in cache, or `<publisher subdomain>.<domain>`): the domain and what was
    /// likely meant, as code. `publishers` are (host, cache subdomain) pairs.
    pub(crate) fn page_host_misuse(&self, publishers: &[(&str, &str)]) -> Option<(String, String)> {
        const BUILT_IN: [(&str, &str); 3] = [
            (
                "cdn.ampproject.org",
                "CacheDomain::google() (a default cache)",
            ),
            ("www.bing-amp.com", "CacheDomain::bing() (a default cache)"),
            ("bing-amp.com", "CacheDomain::bing() (a default cache)"),
        ];
        for host in &self.hosts {
            if BUILT_IN.iter().any(|(b, _)| b == host) {
                continue;
            }
            for (built_in, meant) in BUILT_IN {
                if host.ends_with(&format!(".{built_in}")) {
                    return Some((host.clone(), meant.to_owned()));
                }
            }
            for (publisher, subdomain) in publishers {
                let dashed = publisher.replace('.', "-");
                for label in [*subdomain, *publisher, &dashed] {
                    let rest = strip_prefix_ignore_case(host.as_bytes(), label.as_bytes())
                        .and_then(|r| r.strip_prefix(b"."))
                        .and_then(|r| std::str::from_utf8(r).ok());
                    if let Some(rest) = rest.filter(|r| r.contains('.')) {
                        return Some((host.clone(), format!("CacheDomain::custom({rest:?})")));
                    }
                }
            }
        }
        None
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

fn strip_prefix_ignore_case<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = text.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// `n` in decimal, as `format!` writes it, in `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: the host formatted and compared.
    fn formatted(cache: &CacheDomain, subdomain: &str, host: &str) -> bool {
        let port = cache.port.map(|p| format!(":{p}")).unwrap_or_default();
        cache
            .hosts
            .iter()
            .any(|h| host.eq_ignore_ascii_case(&format!("{subdomain}.{h}{port}")))
    }

    #[test]
    fn page_hosts_are_told_from_cache_domains() {
        let publishers = [("shop.example", "shop-example")];
        let google = "CacheDomain::google() (a default cache)".to_owned();
        // (cache, what was meant; None: a cache domain)
        let rows = [
            (CacheDomain::google(), None),
            (CacheDomain::bing(), None),
            (CacheDomain::custom("cache.localhost"), None),
            (CacheDomain::custom("cdn.ampproject.org"), None),
            (
                CacheDomain::custom("shop-example.cdn.ampproject.org"),
                Some(google.clone()),
            ),
            (
                CacheDomain::custom("shop.example.cdn.ampproject.org"),
                Some(google),
            ),
            (
                CacheDomain::custom("shop-example.bing-amp.com"),
                Some("CacheDomain::bing() (a default cache)".to_owned()),
            ),
            (
                CacheDomain::custom("shop-example.cache.test"),
                Some("CacheDomain::custom(\"cache.test\")".to_owned()),
            ),
            (CacheDomain::custom("shop-example.test"), None),
        ];
        for (cache, meant) in rows {
            assert_eq!(
                cache.page_host_misuse(&publishers).map(|(_, m)| m),
                meant,
                "{cache:?}"
            );
        }
    }

    #[test]
    fn decimal_is_display() {
        for n in [0, 7, 10, 99, 100, 8081, 65535] {
            assert_eq!(decimal(n, &mut [0; 5]), n.to_string().as_bytes());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn piecewise_match_is_the_formatted_one(
            sub in "[a-zA-Z0-9-]{0,6}",
            which in 0usize..3,
            port in proptest::option::of(prop_oneof![Just(8081u16), Just(0u16), any::<u16>()]),
            host_shape in 0usize..4,
            noise in "[a-zA-Z0-9.:-]{0,4}",
            host_port in prop_oneof![Just(8081u16), Just(0u16), any::<u16>()],
        ) {
            let mut cache = [CacheDomain::google(), CacheDomain::bing(), CacheDomain::custom("cache.localhost")][which].clone();
            cache.port = port;
            let base = cache.hosts[0].to_ascii_uppercase();
            let host = match host_shape {
                0 => format!("{sub}.{base}"),
                1 => format!("{sub}.{base}:{host_port}"),
                2 => format!("{sub}.{base}{noise}"),
                _ => format!("{noise}{sub}.{base}"),
            };
            for subdomain in [sub.as_str(), "shop-example"] {
                prop_assert_eq!(
                    cache.is_cache_host(subdomain, &host),
                    formatted(&cache, subdomain, &host),
                    "{} / {}", subdomain, host
                );
            }
        }
    }
}

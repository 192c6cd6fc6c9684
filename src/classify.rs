//! Request classification: where a request comes from, decided by an allowlist built from
//! the configuration, never by trust in what the request claims.

use http::header::{COOKIE, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::cookie_name::CookieName;
use crate::email::EmailSenders;
use crate::session_id::{first_id, SessionId};

/// `AMP-Same-Origin`, sent by the AMP runtime when the page and the endpoint share an origin.
pub const AMP_SAME_ORIGIN: HeaderName = HeaderName::from_static("amp-same-origin");

/// Where a request comes from. Every request gets exactly one.
///
/// | source | when |
/// |---|---|
/// | `SameOrigin` | `Origin` is a publisher origin; or no `Origin` and `AMP-Same-Origin: true` |
/// | `AmpCache` | `Origin` is this publisher's subdomain on a configured cache |
/// | `Direct` | no `Origin` and no `AMP-Same-Origin` (navigation, non-browser client) |
/// | `Foreign` | any other `Origin`, including `null` and other publishers' cache subdomains |
/// | `AmpEmail` | `AMP-Email-Sender` names an allowed sender (only when senders are configured) |
///
/// ```
/// use tower_amp_session::RequestSource;
///
/// assert!(RequestSource::AmpCache.is_trusted());
/// assert!(!RequestSource::Foreign.is_trusted());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestSource {
    /// The publisher's own pages.
    SameOrigin,
    /// The publisher's pages served by an AMP cache.
    AmpCache,
    /// No `Origin` and no `AMP-Same-Origin`.
    Direct,
    /// Any other origin.
    Foreign,
    /// An AMP email from an allowed sender (`AMP-Email-Sender`, AMP for Email CORS v2).
    /// Email clients send no cookies: the session is ephemeral and no handoff is made.
    AmpEmail,
}

impl RequestSource {
    /// Whether the source is the publisher's own page, on the origin or on a cache.
    pub fn is_trusted(self) -> bool {
        matches!(self, RequestSource::SameOrigin | RequestSource::AmpCache)
    }

    /// A stable lowercase name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestSource::SameOrigin => "same_origin",
            RequestSource::AmpCache => "amp_cache",
            RequestSource::Direct => "direct",
            RequestSource::Foreign => "foreign",
            RequestSource::AmpEmail => "amp_email",
        }
    }
}

/// The result of classifying one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    pub(crate) source: RequestSource,
    /// Index of the publisher origin the request belongs to (0 when unknown).
    pub(crate) publisher: usize,
    /// The `Origin` to echo in CORS headers, when one was sent and allowed.
    pub(crate) cors_origin: Option<HeaderValue>,
    /// The allowed `AMP-Email-Sender` to echo in `AMP-Email-Allow-Sender`.
    pub(crate) email_sender: Option<HeaderValue>,
}

/// Allowed origins, serialized as browsers send them (`scheme://host[:port]`, lowercase).
#[derive(Debug, Clone)]
pub(crate) struct Allowlist {
    pub(crate) publishers: Vec<Box<str>>,
    /// (origin, publisher index)
    pub(crate) caches: Vec<(Box<str>, usize)>,
    pub(crate) email_senders: EmailSenders,
}

impl Allowlist {
    /// The classification alone, by lookups: the reference [`Allowlist::scan`] is held equal
    /// to (the layer itself only scans).
    #[cfg(test)]
    pub(crate) fn classify(&self, headers: &HeaderMap) -> Classified {
        self.with_email(self.classify_web(headers), headers)
    }

    /// [`Allowlist::classify`], and with it [`crate::is_signer_fetch`] (when `signer`) and
    /// [`crate::session_id::read_cookie`] (when `cookie` names the session cookie), in one pass
    /// over the headers: a request has ten-odd of them, and comparing each name with the six
    /// wanted ones costs less than the three hashed lookups (`Origin`, `AMP-Same-Origin`,
    /// `Cookie`) and the signer's own pass. A property test holds it equal to the three.
    pub(crate) fn scan(
        &self,
        headers: &HeaderMap,
        signer: bool,
        cookie: Option<&CookieName>,
    ) -> Scan {
        let (mut origin, mut origins) = (None, 0usize);
        let (mut same_origin, mut same_origins) = (false, 0usize);
        let (mut is_signer, mut id) = (false, None);
        for (name, value) in headers {
            if name == ORIGIN {
                origins += 1;
                origin.get_or_insert(value);
            } else if name == COOKIE {
                // The first valid ID in header order, then pair order, as `read_cookie`.
                if let (None, Some(cookie)) = (id, cookie) {
                    id = first_id(cookie, value.as_bytes());
                }
            } else if name == AMP_SAME_ORIGIN {
                same_origins += 1;
                same_origin = value.as_bytes().eq_ignore_ascii_case(b"true");
            } else if signer && !is_signer {
                is_signer = crate::sxg::signals_signer(name, value);
            }
        }
        let web = match origin {
            Some(_) if origins > 1 => foreign(),
            Some(origin) => self.classify_origin(origin),
            None => Classified {
                source: if same_origins == 1 && same_origin {
                    RequestSource::SameOrigin
                } else {
                    RequestSource::Direct
                },
                publisher: 0,
                cors_origin: None,
                email_sender: None,
            },
        };
        Scan {
            classified: self.with_email(web, headers),
            signer: is_signer,
            cookie: id,
        }
    }

    fn with_email(&self, classified: Classified, headers: &HeaderMap) -> Classified {
        // Email only when configured, and never over a publisher or cache origin.
        if self.email_senders.is_empty()
            || matches!(
                classified.source,
                RequestSource::SameOrigin | RequestSource::AmpCache
            )
        {
            return classified;
        }
        match self.email_senders.allowed(headers) {
            Some(sender) => Classified {
                source: RequestSource::AmpEmail,
                publisher: 0,
                cors_origin: None,
                email_sender: Some(sender),
            },
            None => classified,
        }
    }

    #[cfg(test)]
    fn classify_web(&self, headers: &HeaderMap) -> Classified {
        let mut origins = headers.get_all(ORIGIN).iter();
        match (origins.next(), origins.next()) {
            // Several Origin headers: no browser sends that.
            (Some(_), Some(_)) => foreign(),
            (Some(origin), None) => self.classify_origin(origin),
            (None, _) => {
                if is_amp_same_origin(headers) {
                    Classified {
                        source: RequestSource::SameOrigin,
                        publisher: 0,
                        cors_origin: None,
                        email_sender: None,
                    }
                } else {
                    Classified {
                        source: RequestSource::Direct,
                        publisher: 0,
                        cors_origin: None,
                        email_sender: None,
                    }
                }
            }
        }
    }

    fn classify_origin(&self, origin: &HeaderValue) -> Classified {
        let bytes = origin.as_bytes();
        if let Some(i) = self.publishers.iter().position(|p| p.as_bytes() == bytes) {
            return Classified {
                source: RequestSource::SameOrigin,
                publisher: i,
                cors_origin: Some(origin.clone()),
                email_sender: None,
            };
        }
        if let Some((_, i)) = self.caches.iter().find(|(c, _)| c.as_bytes() == bytes) {
            return Classified {
                source: RequestSource::AmpCache,
                publisher: *i,
                cors_origin: Some(origin.clone()),
                email_sender: None,
            };
        }
        foreign()
    }
}

/// What [`Allowlist::scan`] read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    pub(crate) classified: Classified,
    /// A signer's fetch; `false` when not asked.
    pub(crate) signer: bool,
    /// The session cookie's ID; `None` when not asked.
    pub(crate) cookie: Option<SessionId>,
}

fn foreign() -> Classified {
    Classified {
        source: RequestSource::Foreign,
        publisher: 0,
        cors_origin: None,
        email_sender: None,
    }
}

#[cfg(test)]
fn is_amp_same_origin(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(&AMP_SAME_ORIGIN).iter();
    // Exactly one header, exactly "true" (the runtime's value); anything else is not believed.
    matches!((values.next(), values.next()), (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"true"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_id::read_cookie;
    use crate::sxg::is_signer_fetch;
    use proptest::prelude::*;

    fn config(email: bool) -> crate::config::Config {
        let mut b = crate::AmpSessionLayer::builder()
            .publisher_origin("https://shop.example")
            .keyring(crate::Keyring::builder().signing("k1", [7u8; 32]))
            .cache(crate::CacheDomain::google());
        if email {
            b = b.email_sender("@shop.example");
        }
        b.into_config().unwrap()
    }

    const NAMES: [&str; 11] = [
        "origin",
        "amp-same-origin",
        "cookie",
        "accept",
        "via",
        "amp-cache-transform",
        "amp-email-sender",
        "sec-fetch-site",
        "user-agent",
        "host",
        "x-amp-same-origin",
    ];

    /// Values that mean something to one of the readers, under any name.
    fn values(cache: &str, n: &str, id: &str, other: &str) -> Vec<String> {
        vec![
            "https://shop.example".into(),
            cache.into(),
            "https://evil.example".into(),
            "null".into(),
            "true".into(),
            "TRUE".into(),
            "false".into(),
            format!("{n}={id}"),
            format!("_ga=1; {n}={other}; theme=dark"),
            format!("{n}=junk"),
            format!("{n}=junk; {n}={id}"),
            "application/signed-exchange;v=b3".into(),
            "text/html,application/signed-exchange;v=b3;q=0.7".into(),
            "application/json".into(),
            "1.1 amppkg".into(),
            "sxgrs".into(),
            "orders@shop.example".into(),
            "someone@else.example".into(),
            String::new(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// One pass finds what `classify`, `is_signer_fetch` and `read_cookie` find.
        #[test]
        fn scan_agrees_with_the_three_readers(
            headers in proptest::collection::vec(
                (0..NAMES.len(), prop_oneof![(0usize..19).prop_map(Ok), "[ -~]{0,24}".prop_map(Err)]),
                0..10,
            ),
            email in any::<bool>(),
            signer in any::<bool>(),
            cookie in any::<bool>(),
        ) {
            let config = config(email);
            let cache = config.allowlist.caches[0].0.to_string();
            let (id, other) = (SessionId::generate(), SessionId::generate());
            let pool = values(&cache, &config.cookie_name, id.as_str(), other.as_str());
            let mut h = HeaderMap::new();
            for (name, value) in &headers {
                let value = match value {
                    Ok(i) => pool[*i].clone(),
                    Err(s) => s.clone(),
                };
                h.append(
                    HeaderName::from_static(NAMES[*name]),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            let name = &config.cookie_name;
            let scan = config.allowlist.scan(&h, signer, cookie.then_some(name));
            let want = Scan {
                classified: config.allowlist.classify(&h),
                signer: signer && is_signer_fetch(&h),
                cookie: if cookie { read_cookie(&h, name) } else { None },
            };
            prop_assert_eq!(scan, want);
        }
    }
}

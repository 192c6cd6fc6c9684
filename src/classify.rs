//! Request classification: where a request comes from, decided by an allowlist built from
//! the configuration, never by trust in what the request claims.

use http::header::ORIGIN;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::email::EmailSenders;

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
#[derive(Debug, Clone)]
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
    pub(crate) fn classify(&self, headers: &HeaderMap) -> Classified {
        let classified = self.classify_web(headers);
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

fn foreign() -> Classified {
    Classified {
        source: RequestSource::Foreign,
        publisher: 0,
        cors_origin: None,
        email_sender: None,
    }
}

fn is_amp_same_origin(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(&AMP_SAME_ORIGIN).iter();
    // Exactly one header, exactly "true" (the runtime's value); anything else is not believed.
    matches!((values.next(), values.next()), (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"true"))
}

//! AMP for Email CORS (version 2): `AMP-Email-Sender` answered with `AMP-Email-Allow-Sender`.
//!
//! A browser page cannot send `AMP-Email-Sender` cross-origin without a preflight, which this
//! layer never approves, so the header is only seen from email clients' proxies and
//! non-browser clients. Version 1 (`__amp_source_origin` holding the sender, any `Origin`)
//! is not supported: a plain cross-site form could claim it, which would open a CSRF hole.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `AMP-Email-Sender`: the address that sent the email whose AMP part makes the request.
pub const AMP_EMAIL_SENDER: HeaderName = HeaderName::from_static("amp-email-sender");
/// `AMP-Email-Allow-Sender`: the server allows that sender.
pub const AMP_EMAIL_ALLOW_SENDER: HeaderName = HeaderName::from_static("amp-email-allow-sender");

/// Allowed senders: full addresses (`orders@shop.example`) or whole domains (`@shop.example`),
/// compared ASCII case-insensitively.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmailSenders(pub(crate) Vec<Box<str>>);

impl EmailSenders {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sender to echo, when the request names exactly one allowed sender.
    pub(crate) fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut values = headers.get_all(&AMP_EMAIL_SENDER).iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return None;
        };
        let sender = v.to_str().ok()?.trim();
        let (local, domain) = sender.rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() || sender.len() > 254 {
            return None;
        }
        let ok = self
            .0
            .iter()
            .any(|allowed| match allowed.strip_prefix('@') {
                Some(d) => d.eq_ignore_ascii_case(domain),
                None => allowed.eq_ignore_ascii_case(sender),
            });
        ok.then(|| v.clone())
    }

    pub(crate) fn is_valid_entry(entry: &str) -> bool {
        let Some((local, domain)) = entry.rsplit_once('@') else {
            return false;
        };
        !domain.is_empty()
            && domain.contains('.')
            && !local.contains('@')
            && entry.bytes().all(|b| b.is_ascii_graphic())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_table() {
        let senders = EmailSenders(vec![
            "orders@shop.example".into(),
            "@news.shop.example".into(),
        ]);
        let rows: &[(&[&str], bool)] = &[
            (&["orders@shop.example"], true),
            (&["Orders@Shop.Example"], true),
            (&["anyone@news.shop.example"], true),
            (&["evil@shop.example"], false),
            (&["orders@shop.example.evil.com"], false),
            (&["@news.shop.example"], false),
            (&["news.shop.example"], false),
            (&["orders@shop.example", "orders@shop.example"], false),
            (&[], false),
        ];
        for (values, want) in rows {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(&AMP_EMAIL_SENDER, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(senders.allowed(&h).is_some(), *want, "{values:?}");
        }
    }
}

//! The session cookie's `Set-Cookie` header, rendered once at build time and filled in per
//! session. Below both the configuration (which makes it) and the session (which fills it).

use http::HeaderValue;

/// What the cookie carries: the session ID's text (ASCII, checked by the caller's type).
pub(crate) trait CookieValue {
    fn cookie_value(&self) -> &[u8];
}

impl CookieValue for str {
    fn cookie_value(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The `Set-Cookie` header for a session, split around the ID so that issuing one costs a
/// single allocation. Attributes are rendered once, by the `cookie` crate, at build time.
#[derive(Debug, Clone)]
pub(crate) struct CookieTemplate {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl CookieTemplate {
    pub(crate) fn new(
        name: &str,
        max_age: std::time::Duration,
        same_site: cookie::SameSite,
        domain: Option<&str>,
    ) -> Self {
        const MARK: &str = "\u{1}ID\u{1}";
        let mut c = cookie::Cookie::new(name.to_owned(), "X".to_owned());
        c.set_http_only(true);
        c.set_secure(true);
        c.set_path("/");
        c.set_same_site(same_site);
        c.set_max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ));
        if let Some(d) = domain {
            c.set_domain(d.to_owned());
        }
        let rendered = c.to_string().replacen("=X", &format!("={MARK}"), 1);
        let (prefix, suffix) = rendered.split_once(MARK).unwrap_or((&rendered, ""));
        CookieTemplate {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    pub(crate) fn render<V: CookieValue + ?Sized>(&self, id: &V) -> HeaderValue {
        // Bytes, not a String: the ID is ASCII already, and HeaderValue checks every byte.
        let id = id.cookie_value();
        let mut s = Vec::with_capacity(self.prefix.len() + id.len() + self.suffix.len());
        s.extend_from_slice(self.prefix.as_bytes());
        s.extend_from_slice(id);
        s.extend_from_slice(self.suffix.as_bytes());
        HeaderValue::from_maybe_shared(bytes::Bytes::from(s))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_template_renders_secure_attributes() {
        let t = CookieTemplate::new(
            "__Host-amp_session",
            std::time::Duration::from_secs(3600),
            cookie::SameSite::None,
            None,
        );
        let id = "IRtZjBYzy78QS1s7Cc790w";
        let v = t.render(id);
        let s = v.to_str().unwrap();
        assert!(s.starts_with(&format!("__Host-amp_session={}", id)), "{s}");
        // What a browser requires of a `__Host-` cookie: Secure, Path=/, no Domain.
        for attr in [
            "HttpOnly",
            "Secure",
            "Path=/",
            "SameSite=None",
            "Max-Age=3600",
        ] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
        assert!(!s.contains("Domain"), "{s}");
    }
}

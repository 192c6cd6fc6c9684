//! The session handlers see, and the cookie a lazy session sets once it is used.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderValue;

use crate::classify::RequestSource;
use crate::config::Config;
use crate::session_id::SessionId;

/// The session of the current request, placed in the request extensions by
/// [`AmpSessionLayer`](crate::AmpSessionLayer).
///
/// Key your store by [`id`](AmpSession::id): the [`SessionId`] itself, or its
/// `to_string()` / [`as_str`](SessionId::as_str) (all the full ID).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use tower_amp_session::{AmpSession, SessionId};
///
/// #[derive(Default)]
/// struct Carts(Mutex<HashMap<SessionId, Vec<u32>>>);
///
/// impl Carts {
///     fn add(&self, req: &http::Request<()>, product: u32) -> Result<usize, &'static str> {
///         let session = req.extensions().get::<AmpSession>().ok_or("no AmpSessionLayer")?;
///         let mut carts = self.0.lock().map_err(|_| "poisoned")?;
///         let cart = carts.entry(session.id()).or_default();
///         cart.push(product);
///         Ok(cart.len())
///     }
/// }
/// # let _ = Carts::default();
/// ```
///
/// With the `axum` feature, `AmpSession` is also an extractor.
#[derive(Clone)]
pub struct AmpSession {
    pub(crate) id: SessionId,
    pub(crate) is_new: bool,
    pub(crate) source: RequestSource,
    pub(crate) via_handoff: bool,
    /// A signer's fetch (see [`crate::is_signer_fetch`]): a one-request session, no cookie.
    pub(crate) signer_fetch: bool,
    /// Lazy mode (the default), a new session whose cookie waits for the handler to read the
    /// ID. `None` otherwise: known sessions, eager mode, and requests that get no cookie.
    pub(crate) lazy: Option<Arc<LazyCookie>>,
}

/// A new session's cookie in lazy mode, shared by the handler's [`AmpSession`] and the
/// response future: one allocation, only for requests that may start a session.
///
/// Why not none: the flag must be reachable both from the handler's copies of the session
/// (moved into the request, cloned by extractors, possibly sent to another task or a
/// blocking thread that calls `id()`) and from the response future that decides on the
/// cookie. In safe Rust that is shared ownership, so one allocation; a thread-local flag
/// would miss an `id()` called on another thread, and the shopper would lose the session
/// the app just stored something under.
pub(crate) struct LazyCookie {
    /// Set by [`AmpSession::id`].
    pub(crate) used: AtomicBool,
    pub(crate) id: SessionId,
    pub(crate) source: RequestSource,
    /// For the cookie template.
    pub(crate) config: Arc<Config>,
}

impl LazyCookie {
    pub(crate) fn new(id: SessionId, source: RequestSource, config: Arc<Config>) -> Arc<Self> {
        Arc::new(LazyCookie {
            used: AtomicBool::new(false),
            id,
            source,
            config,
        })
    }

    /// The cookie, once the handler used the session.
    pub(crate) fn cookie(&self) -> Option<HeaderValue> {
        self.used
            .load(Ordering::Relaxed)
            .then(|| self.config.cookie.render(&self.id))
    }
}

impl AmpSession {
    pub(crate) fn new(
        id: SessionId,
        is_new: bool,
        source: RequestSource,
        via_handoff: bool,
    ) -> Self {
        AmpSession {
            id,
            is_new,
            source,
            via_handoff,
            signer_fetch: false,
            lazy: None,
        }
    }

    /// The session ID: the key of the app's own session store.
    ///
    /// In lazy mode (the default, see
    /// [`ConfigBuilder::lazy_cookie`](crate::ConfigBuilder::lazy_cookie)), calling it is what
    /// counts as using the session: the answer then sets the new session's cookie.
    pub fn id(&self) -> SessionId {
        if let Some(lazy) = &self.lazy {
            lazy.used.store(true, Ordering::Relaxed);
        }
        self.id
    }

    /// Whether the ID was issued by this request. The answer sets the cookie, except to
    /// `HEAD`, `OPTIONS`, foreign origins, AMP emails and signers' fetches (their session
    /// lasts one request), and in lazy mode when the handler never called
    /// [`id`](AmpSession::id).
    pub fn is_new(&self) -> bool {
        self.is_new
    }

    /// Whether this request is a signer's fetch ([`is_signer_fetch`](crate::is_signer_fetch)):
    /// amppackager, sxg-rs or the Google SXG cache fetching the page to sign it, so that
    /// everyone is served the same answer under the publisher's URL.
    ///
    /// Such a request never gets the shopper's session, even when it carries the cookie:
    /// the session is new ([`is_new`](AmpSession::is_new) is `true`), lasts this one request,
    /// and no cookie is set whether or not [`id`](AmpSession::id) is called. Render the page
    /// as for a first-time visitor (no cart count, no name), and do not store anything
    /// under its ID.
    ///
    /// ```
    /// use tower_amp_session::AmpSession;
    ///
    /// fn greeting(session: &AmpSession, name: Option<&str>) -> String {
    ///     match name {
    ///         Some(name) if !session.is_signer_fetch() => format!("Hello, {name}"),
    ///         _ => "Hello".to_owned(),
    ///     }
    /// }
    /// # let _ = greeting;
    /// ```
    pub fn is_signer_fetch(&self) -> bool {
        self.signer_fetch
    }

    /// Where the request came from.
    pub fn source(&self) -> RequestSource {
        self.source
    }

    /// Whether this request is a change replayed on the origin by a completed handoff.
    /// Its [`source`](AmpSession::source) is then [`RequestSource::SameOrigin`].
    pub fn via_handoff(&self) -> bool {
        self.via_handoff
    }
}

/// Redacted, like [`SessionId`]'s `Debug`; does not count as using the session.
impl fmt::Debug for AmpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmpSession")
            .field("id", &self.id)
            .field("is_new", &self.is_new)
            .field("source", &self.source)
            .field("via_handoff", &self.via_handoff)
            .field("signer_fetch", &self.signer_fetch)
            .finish()
    }
}

/// Two values are equal when they describe the same session of the same request kind
/// (lazy-mode bookkeeping aside).
impl PartialEq for AmpSession {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.is_new == other.is_new
            && self.source == other.source
            && self.via_handoff == other.via_handoff
            && self.signer_fetch == other.signer_fetch
    }
}

impl Eq for AmpSession {}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_session_debug_is_redacted() {
        let id = SessionId::generate();
        let session = AmpSession::new(id, true, RequestSource::SameOrigin, false);
        assert!(!format!("{session:?}").contains(id.as_str()));
    }

    #[test]
    fn lazy_sessions_count_a_read_of_the_id() {
        let config = crate::AmpSessionLayer::builder()
            .publisher_origin("https://shop.example")
            .keyring(crate::Keyring::builder().signing("k1", [7u8; 32]))
            .into_config()
            .unwrap();
        let id = SessionId::generate();
        let lazy = LazyCookie::new(id, RequestSource::SameOrigin, Arc::new(config));
        let mut session = AmpSession::new(id, true, RequestSource::SameOrigin, false);
        session.lazy = Some(lazy.clone());
        let copy = session.clone();
        let _ = (session.is_new(), session.source(), format!("{session:?}"));
        assert_eq!(lazy.cookie(), None, "only id() counts");
        assert_eq!(copy.id(), id);
        let cookie = lazy.cookie().expect("used");
        let want = format!("__Host-amp_session={}", id.as_str());
        assert!(cookie.to_str().unwrap().starts_with(&want), "{cookie:?}");
    }
}

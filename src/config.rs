//! The one configuration builder, checked once at build time.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Method;

use crate::cache_domain::CacheDomain;
use crate::cache_url::cache_subdomain;
use crate::classify::Allowlist;
use crate::cookie_name::CookieName;
use crate::cookie_template::CookieTemplate;
use crate::describe::{Describers, PendingChange};
use crate::email::EmailSenders;
use crate::keyring::{KeyError, Keyring, KeyringBuilder};
use crate::near_miss::NearMisses;
use crate::replay::{unix, MemoryReplayGuard, ReplayGuard};
use crate::return_path::{is_plain_origin, validate_return_path};

/// Where the user lands on the origin once a handoff has applied its change.
///
/// ```
/// use tower_amp_session::ReturnTo;
///
/// let to_cart = ReturnTo::Path("/cart".into());
/// assert_ne!(to_cart, ReturnTo::Referer);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReturnTo {
    /// The page the form was on: the form's [`RETURN_PATH_FIELD`](crate::RETURN_PATH_FIELD)
    /// (filled in by amp-form from `SOURCE_PATH`); else the cache page URL in `Referer`
    /// (`/c/s/<publisher host>/<path>` → `/<path>`); else `/`. Each candidate must be a
    /// path on the publisher origin and not the handoff path.
    ///
    /// The field is what works in every engine: Firefox and WebKit send the cache's POST
    /// with `Referer: <cache origin>/` only, whatever the page's referrer policy, so there
    /// the `Referer` gives `/`.
    #[default]
    Referer,
    /// Always this path on the publisher origin (the form field, if sent, is still removed).
    /// [`ConfigBuilder::build`] refuses the handoff path.
    Path(String),
}

/// Why a configuration was refused by [`ConfigBuilder::build`].
///
/// `Debug` carries the message too (then the variant), so that `?` in `main`, which prints
/// `Debug`, says what is wrong and how to fix it:
///
/// ```
/// use tower_amp_session::{AmpSessionLayer, Keyring};
///
/// let e = AmpSessionLayer::builder()
///     .publisher_origin("http://shop.example")
///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     format!("{e:?}"),
///     "publisher origin \"http://shop.example\" must be https://host[:port] (http only for \
///      localhost names) (ConfigError::InvalidPublisherOrigin)"
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No publisher origin was given.
    NoPublisherOrigin,
    /// A publisher origin is not `https://host[:port]` (or `http://` on a localhost name).
    InvalidPublisherOrigin(String),
    /// No keyring was given.
    NoKeyring,
    /// A key or the keyring is invalid.
    Key(KeyError),
    /// `SameSite=Strict` would drop the cookie on the handoff's cross-site navigation.
    SameSiteStrict,
    /// The cookie name is empty or not a cookie token.
    InvalidCookieName(String),
    /// The cookie domain is not a host name.
    InvalidCookieDomain(String),
    /// A `__Host-` cookie name with a cookie domain: browsers refuse to store such a cookie.
    HostPrefixWithDomain(String),
    /// The handoff path is not an absolute path without query (e.g. `/_amp/handoff`).
    InvalidHandoffPath(String),
    /// A cache domain is not a host name.
    InvalidCacheDomain(String),
    /// A duration or size is zero or out of range.
    InvalidLimit(&'static str),
    /// The fixed return path is not a path on the publisher origin.
    InvalidReturnPath(String),
    /// The publisher's cache subdomain could not be computed.
    CacheSubdomain(String),
    /// A direct route is not an absolute path without query or fragment, or is the
    /// handoff path.
    InvalidDirectRoute(String),
    /// The fixed return path is the handoff path: a handoff would land on another handoff.
    ReturnPathIsHandoffPath(String),
    /// An email sender is neither `name@domain` nor `@domain`.
    InvalidEmailSender(String),
    /// A declared route ([`ConfigBuilder::direct_route`], [`ConfigBuilder::pass_through`])
    /// covers the handoff path, which the layer answers itself.
    RouteCoversHandoffPath {
        /// The declared route.
        route: String,
        /// The handoff path it covers.
        handoff_path: String,
    },
    /// A pass-through path is not an absolute path without query or fragment.
    InvalidPassThrough(String),
    /// A pass-through path and a direct route cover one another: the route would never be
    /// handed off, or the pass-through would hand off.
    PassThroughCoversDirectRoute {
        /// The pass-through path.
        pass_through: String,
        /// The direct route.
        route: String,
    },
    /// A custom cache domain is a publisher's page host on a cache, not a cache domain
    /// (`CacheDomain::custom("shop-example.cdn.ampproject.org")`).
    CacheDomainIsPageHost {
        /// The domain given.
        domain: String,
        /// What was likely meant, as code (`CacheDomain::google()`).
        meant: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoPublisherOrigin => f.write_str("no publisher origin configured"),
            ConfigError::InvalidPublisherOrigin(o) => write!(
                f,
                "publisher origin {o:?} must be https://host[:port] (http only for localhost names)"
            ),
            ConfigError::NoKeyring => f.write_str("no signing key configured"),
            ConfigError::Key(e) => write!(f, "{e}"),
            ConfigError::SameSiteStrict => f.write_str(
                "SameSite=Strict breaks the handoff: the cross-site navigation would not carry the cookie",
            ),
            ConfigError::InvalidCookieName(n) => write!(f, "invalid cookie name {n:?}"),
            ConfigError::InvalidCookieDomain(d) => write!(f, "invalid cookie domain {d:?}"),
            ConfigError::HostPrefixWithDomain(n) => write!(
                f,
                "cookie name {n:?} has the __Host- prefix, which browsers refuse with a cookie domain"
            ),
            ConfigError::InvalidHandoffPath(p) => {
                write!(f, "handoff path {p:?} must be an absolute path like /_amp/handoff")
            }
            ConfigError::InvalidCacheDomain(d) => write!(f, "invalid cache domain {d:?}"),
            ConfigError::InvalidLimit(what) => write!(f, "{what} is out of range"),
            ConfigError::InvalidReturnPath(p) => write!(f, "return path {p:?} is not a path on the publisher origin"),
            ConfigError::CacheSubdomain(h) => write!(f, "cannot compute the AMP cache subdomain of {h:?}"),
            ConfigError::InvalidDirectRoute(p) => write!(
                f,
                "direct route {p:?} must be an absolute path like /cart/add (a prefix when it ends in '/'), without query, and not the handoff path"
            ),
            ConfigError::ReturnPathIsHandoffPath(p) => {
                write!(f, "return path {p:?} is the handoff path (no chained handoffs)")
            }
            ConfigError::InvalidEmailSender(s) => {
                write!(f, "email sender {s:?} must be name@domain or @domain")
            }
            ConfigError::RouteCoversHandoffPath { route, handoff_path } => write!(
                f,
                "route {route:?} covers the handoff path {handoff_path:?}, which the layer answers \
                 itself: declare the routes below it one by one, or move the handoff path"
            ),
            ConfigError::InvalidPassThrough(p) => write!(
                f,
                "pass-through path {p:?} must be an absolute path like /api/ (a prefix when it ends in '/'), without query"
            ),
            ConfigError::PassThroughCoversDirectRoute {
                pass_through,
                route,
            } => write!(
                f,
                "pass-through path {pass_through:?} and direct route {route:?} cover one another: \
                 a path is either left alone or handed off, not both"
            ),
            ConfigError::CacheDomainIsPageHost { domain, meant } => write!(
                f,
                "cache domain {domain:?} is a publisher's page host on an AMP cache, not a cache \
                 domain (the layer puts the publisher's subdomain in front itself): use {meant}"
            ),
        }
    }
}

impl ConfigError {
    /// The variant's name, for `Debug`.
    fn variant(&self) -> &'static str {
        match self {
            ConfigError::NoPublisherOrigin => "NoPublisherOrigin",
            ConfigError::InvalidPublisherOrigin(_) => "InvalidPublisherOrigin",
            ConfigError::NoKeyring => "NoKeyring",
            ConfigError::Key(_) => "Key",
            ConfigError::SameSiteStrict => "SameSiteStrict",
            ConfigError::InvalidCookieName(_) => "InvalidCookieName",
            ConfigError::InvalidCookieDomain(_) => "InvalidCookieDomain",
            ConfigError::HostPrefixWithDomain(_) => "HostPrefixWithDomain",
            ConfigError::InvalidHandoffPath(_) => "InvalidHandoffPath",
            ConfigError::InvalidCacheDomain(_) => "InvalidCacheDomain",
            ConfigError::InvalidLimit(_) => "InvalidLimit",
            ConfigError::InvalidReturnPath(_) => "InvalidReturnPath",
            ConfigError::CacheSubdomain(_) => "CacheSubdomain",
            ConfigError::InvalidDirectRoute(_) => "InvalidDirectRoute",
            ConfigError::ReturnPathIsHandoffPath(_) => "ReturnPathIsHandoffPath",
            ConfigError::InvalidEmailSender(_) => "InvalidEmailSender",
            ConfigError::RouteCoversHandoffPath { .. } => "RouteCoversHandoffPath",
            ConfigError::InvalidPassThrough(_) => "InvalidPassThrough",
            ConfigError::PassThroughCoversDirectRoute { .. } => "PassThroughCoversDirectRoute",
            ConfigError::CacheDomainIsPageHost { .. } => "CacheDomainIsPageHost",
        }
    }
}

/// The message, then the variant (as `std::io::Error`-style crates do): `?` in `main`
/// prints this.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Key(e) => write!(f, "{e:?} (ConfigError::Key)"),
            _ => write!(f, "{self} (ConfigError::{})", self.variant()),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Key(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KeyError> for ConfigError {
    fn from(e: KeyError) -> Self {
        ConfigError::Key(e)
    }
}

/// The `SameSite` attribute of the session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=None` (default): browsers that allow third-party cookies keep the session on
    /// the cache too, and only the others go through a handoff.
    #[default]
    None,
    /// `SameSite=Lax`: every change made on the cache goes through a handoff.
    Lax,
    /// `SameSite=Strict`: refused by [`ConfigBuilder::build`], it breaks the handoff.
    Strict,
}

pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;
/// The builder's clock as given (for the confirmation page's render time, in milliseconds,
/// and the default replay guard).
type TimeClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The shortest [`ConfigBuilder::confirmation_delay`] accepted.
pub const MIN_CONFIRMATION_DELAY: Duration = Duration::from_millis(500);

/// Builds an [`AmpSessionLayer`](crate::AmpSessionLayer); every check happens in [`ConfigBuilder::build`].
///
/// ```
/// use tower_amp_session::{AmpSessionLayer, Keyring};
///
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     .keyring(Keyring::builder().signing_base64("k1", &"a".repeat(44)))
///     .build()
///     .expect("valid configuration");
/// # let _ = layer;
/// ```
#[must_use]
pub struct ConfigBuilder {
    publisher_origins: Vec<String>,
    keyring: Option<KeyringBuilder>,
    caches: Vec<CacheDomain>,
    cookie_name: String,
    cookie_max_age: Duration,
    cookie_domain: Option<String>,
    lazy_cookie: bool,
    same_site: SameSite,
    handoff_path: String,
    handoff_ttl: Duration,
    clock_skew: Duration,
    body_limit: usize,
    safe_methods: Vec<Method>,
    allow_direct_changes: bool,
    return_to: ReturnTo,
    replay_guard: Option<Arc<dyn ReplayGuard>>,
    clock: Option<Clock>,
    direct_routes: Vec<String>,
    pass_through: Vec<String>,
    external_session: Option<String>,
    email_senders: Vec<String>,
    clock_time: Option<TimeClock>,
    confirmation_delay: Duration,
    describers: Describers,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("publisher_origins", &self.publisher_origins)
            .field("caches", &self.caches)
            .field("cookie_name", &self.cookie_name)
            .field("handoff_path", &self.handoff_path)
            .finish_non_exhaustive()
    }
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            publisher_origins: Vec::new(),
            keyring: None,
            caches: vec![CacheDomain::google(), CacheDomain::bing()],
            cookie_name: "amp_session".into(),
            cookie_max_age: Duration::from_secs(30 * 24 * 3600),
            cookie_domain: None,
            lazy_cookie: true,
            same_site: SameSite::None,
            handoff_path: "/_amp/handoff".into(),
            handoff_ttl: Duration::from_secs(120),
            clock_skew: Duration::from_secs(30),
            body_limit: 4096,
            safe_methods: vec![Method::GET, Method::HEAD, Method::OPTIONS],
            allow_direct_changes: false,
            return_to: ReturnTo::Referer,
            replay_guard: None,
            clock: None,
            direct_routes: Vec::new(),
            pass_through: Vec::new(),
            external_session: None,
            email_senders: Vec::new(),
            clock_time: None,
            confirmation_delay: Duration::from_secs(1),
            describers: Describers::default(),
        }
    }
}

impl ConfigBuilder {
    /// Adds a publisher origin such as `https://shop.example`. The first one is where
    /// handoffs land when a request does not tell which publisher it belongs to.
    pub fn publisher_origin(mut self, origin: impl Into<String>) -> Self {
        self.publisher_origins.push(origin.into());
        self
    }

    /// Sets the signing keyring (required).
    pub fn keyring(mut self, keyring: impl Into<KeyringBuilder>) -> Self {
        self.keyring = Some(keyring.into());
        self
    }

    /// Replaces the AMP caches (default: [`CacheDomain::google`] and [`CacheDomain::bing`]).
    pub fn caches(mut self, caches: impl IntoIterator<Item = CacheDomain>) -> Self {
        self.caches = caches.into_iter().collect();
        self
    }

    /// Adds one AMP cache to the list.
    pub fn cache(mut self, cache: CacheDomain) -> Self {
        self.caches.push(cache);
        self
    }

    /// The session cookie's name (default `amp_session`). Without a
    /// [`cookie_domain`](ConfigBuilder::cookie_domain) the cookie is sent as
    /// `__Host-<name>` (so `__Host-amp_session` by default; a name that already starts with
    /// `__Host-` is kept as it is). Browsers store a `__Host-` cookie only from a secure page
    /// of the very host, without `Domain`: a sibling subdomain cannot set one, so it cannot
    /// choose (fix) or jam the session. A cookie of the bare name is then not the session.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing_base64("k1", &"a".repeat(44)))
    ///     .cookie_name("shop_session") // sent as __Host-shop_session
    ///     .build();
    /// assert!(layer.is_ok());
    /// ```
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// The session cookie's `Max-Age` (default 30 days).
    pub fn cookie_max_age(mut self, max_age: Duration) -> Self {
        self.cookie_max_age = max_age;
        self
    }

    /// The session cookie's `Domain` (default none: host-only, `__Host-` prefixed).
    ///
    /// Setting it shares the session with every subdomain of `domain`, and gives up the
    /// `__Host-` prefix (browsers refuse it with a `Domain`): the cookie is named exactly
    /// [`cookie_name`](ConfigBuilder::cookie_name). Then any page on a sibling subdomain
    /// (`evil.shop.example`, a user-content or staging host) can set a cookie of that name
    /// for the whole domain ("cookie tossing"), and so **fix the session**: the shopper
    /// goes on in a session the attacker chose and can read. When a request carries several
    /// values, the first valid one is the session, and browsers send the one with the longest
    /// `Path` first, which a tossed cookie can choose. Only configure a domain when you
    /// control every host under it. A `__Host-` name with a domain is refused by
    /// [`build`](ConfigBuilder::build).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie_domain = Some(domain.into());
        self
    }

    /// Lazy cookies (default `true`): a new session's cookie is only set when the handler
    /// used the session, that is called [`AmpSession::id`](crate::AmpSession::id). Pages
    /// that never look at the session (a product page, a 404) then set no cookie, so a
    /// shared cache (a CDN) may keep them as the app said, and crawlers and the AMP cache's
    /// own fetches start no sessions. A completed handoff always sets it (the change was
    /// applied in that session). `false` is [`eager_cookie`](ConfigBuilder::eager_cookie).
    ///
    /// Lazy mode costs one small allocation per request that may start a session (a
    /// browser's request without the cookie); eager mode none. See
    /// [the caching guide](crate::docs::caching) for what each mode does to a CDN and to
    /// signed exchanges.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing_base64("k1", &"a".repeat(44)))
    ///     .lazy_cookie(true) // the default
    ///     .build();
    /// assert!(layer.is_ok());
    /// ```
    pub fn lazy_cookie(mut self, lazy: bool) -> Self {
        self.lazy_cookie = lazy;
        self
    }

    /// Eager cookies: every browser's first answer sets the new session's cookie (and is
    /// made `private`), whether or not the handler used the session. The default until
    /// lazy cookies became it; the same as `lazy_cookie(false)`.
    ///
    /// No page answered to a cookieless browser stays cacheable by a CDN, and a fetch by a
    /// signer that names no signer (webpkgserver's) gets a cookie, so it cannot be signed.
    /// Signers that say who they are never get one, in either mode.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing_base64("k1", &"a".repeat(44)))
    ///     .eager_cookie()
    ///     .build();
    /// assert!(layer.is_ok());
    /// ```
    pub fn eager_cookie(self) -> Self {
        self.lazy_cookie(false)
    }

    /// The session cookie's `SameSite` (default [`SameSite::None`]; `Strict` is refused).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The path on the publisher origin that completes handoffs (default `/_amp/handoff`).
    pub fn handoff_path(mut self, path: impl Into<String>) -> Self {
        self.handoff_path = path.into();
        self
    }

    /// How long a handoff link stays valid (default 120 s, at most 1 hour).
    pub fn handoff_ttl(mut self, ttl: Duration) -> Self {
        self.handoff_ttl = ttl;
        self
    }

    /// How far in the future a token's issue time may be, for clocks that disagree
    /// between instances (default 30 s, at most 5 minutes).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The largest form body a handoff carries, in bytes (default 4096, at most 5120 so
    /// that the handoff URL stays under 8 KiB). Larger posts are answered 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Methods that do not change state (default `GET`, `HEAD`, `OPTIONS`); all others do.
    pub fn safe_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.safe_methods = methods.into_iter().collect();
        self
    }

    /// Let state-changing requests with neither `Origin` nor `AMP-Same-Origin` through
    /// (default: refused, as the AMP CORS spec says). For apps that serve non-browser clients.
    pub fn allow_direct_changes(mut self, allow: bool) -> Self {
        self.allow_direct_changes = allow;
        self
    }

    /// Where users land after a handoff (default [`ReturnTo::Referer`]).
    pub fn return_to(mut self, return_to: ReturnTo) -> Self {
        self.return_to = return_to;
        self
    }

    /// The replay guard (default: [`MemoryReplayGuard::default`], fine for one instance).
    pub fn replay_guard(mut self, guard: impl ReplayGuard) -> Self {
        self.replay_guard = Some(Arc::new(guard));
        self
    }

    /// The clock used for token times (default [`SystemTime::now`]). For tests.
    ///
    /// It also times the confirmation page (its render time and
    /// [`confirmation_delay`](Self::confirmation_delay)) and the default replay guard's
    /// sweeps, so a test can let time pass without sleeping.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        let clock: TimeClock = Arc::new(clock);
        let secs = clock.clone();
        self.clock = Some(Arc::new(move || unix(secs())));
        self.clock_time = Some(clock);
        self
    }

    /// How long the confirmation page must have been shown before its button applies the
    /// change (default 1 s, at least [`MIN_CONFIRMATION_DELAY`], at most 60 s).
    ///
    /// The button is disarmed for that time (by CSS, and by a small script until the page
    /// has been visible that long and the shopper moved the pointer or pressed a key on
    /// it), and the form carries its render time under a MAC: a POST sooner than this after
    /// the page was rendered is answered with the page again. So a "double-click here" lure
    /// on another site, whose first click opens the link and whose second lands where the
    /// button appears, applies nothing. See [`docs::confirmation`](crate::docs::confirmation).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .confirmation_delay(Duration::from_millis(1500))
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn confirmation_delay(mut self, delay: Duration) -> Self {
        self.confirmation_delay = delay;
        self
    }

    /// Describes the changes to the route `path` (exact path, no query) in the shop's own
    /// words, for the confirmation page's headline.
    ///
    /// `describe` gets the [`PendingChange`] (method, path, decoded body fields and query
    /// parameters) and answers one sentence, or `None` for the layer's default headline.
    /// The layer escapes the sentence (write plain text, not HTML), cuts it at 300 bytes,
    /// and still lists the route and every field below it; the token, the headers and
    /// every check stay the layer's.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring, PendingChange};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .describe("/cart/add", |change: &PendingChange| {
    ///         let id = change.field("product_id")?;
    ///         Some(format!("Add product {id} to your cart?"))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn describe(
        mut self,
        path: impl Into<String>,
        describe: impl Fn(&PendingChange) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.describers.add(path.into(), Arc::new(describe));
        self
    }

    /// Declares a route that a handoff may apply without asking the shopper first.
    ///
    /// A handoff is applied on arrival only when its navigation comes from this publisher's
    /// AMP cache page (its `Referer`) **and** its route is declared here. Every other
    /// handoff shows a confirmation page on the publisher origin that lists the route and
    /// every field; only the shopper's click on it (a first-party `POST`) applies the change.
    ///
    /// `path` is an exact path (`/cart/add`), or a prefix when it ends in `/` (`/cart/`
    /// declares `/cart/add` and `/cart/remove`, not `/cart`). Query strings are not
    /// compared. Declare only low-value, additive changes a forged link could do little
    /// harm with (add to cart, add to a wish list); never account, address, payment,
    /// e-mail or admin routes. Default: none, so every handoff asks first.
    ///
    /// [`ConfigBuilder::build`] refuses a path that does not start with a single `/`, has
    /// a query, fragment, space or control character, or is the handoff path.
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .direct_route("/cart/add")
    ///     .direct_route("/wishlist/")
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn direct_route(mut self, path: impl Into<String>) -> Self {
        self.direct_routes.push(path.into());
        self
    }

    /// Leaves a path alone: the layer does nothing at all for it (no classification, no
    /// refusal, no session, no CORS headers) and calls the app as it is. For a non-AMP API
    /// with its own CORS (`CorsLayer`) inside the wrapped router.
    ///
    /// `path` is an exact path (`/api/ping`), or a prefix when it ends in `/` (`/api/`
    /// leaves `/api/ping` and `/api/v1/x` alone, not `/api`). Only a plain path matches: one
    /// with `%`, `\`, `;`, `//` or a dot segment is handled as usual, since a server in
    /// front might resolve it to another route. Handlers there find no
    /// [`AmpSession`](crate::AmpSession). [`ConfigBuilder::build`] refuses a path that covers
    /// the handoff path, and one that covers or is covered by a direct route. The
    /// alternative, with axum: `Router::new().nest("/api", api).fallback_service(layer
    /// .layer(shop))` (see [the stacking guide](crate::docs::stacking)).
    ///
    /// ```
    /// use tower_amp_session::{AmpSessionLayer, ConfigError, Keyring};
    ///
    /// let layer = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .pass_through("/api/")
    ///     .build();
    /// assert!(layer.is_ok());
    ///
    /// let covers_handoff = AmpSessionLayer::builder()
    ///     .publisher_origin("https://shop.example")
    ///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
    ///     .pass_through("/_amp/")
    ///     .build();
    /// assert!(matches!(covers_handoff, Err(ConfigError::RouteCoversHandoffPath { .. })));
    /// ```
    pub fn pass_through(mut self, path: impl Into<String>) -> Self {
        self.pass_through.push(path.into());
        self
    }

    /// Bring your own session: the layer issues no cookie of its own. A request that carries
    /// the app's cookie `cookie_name` counts as having a session; on completion the change
    /// is replayed through the app's own session layer (placed inside this one) and the
    /// `Set-Cookie` headers it produces are carried onto the redirect. Handlers find the
    /// [`RequestSource`](crate::RequestSource) in the request extensions instead of an
    /// [`AmpSession`](crate::AmpSession).
    pub fn external_session(mut self, cookie_name: impl Into<String>) -> Self {
        self.external_session = Some(cookie_name.into());
        self
    }

    /// Allows an AMP for Email sender (`orders@shop.example`) or a whole domain
    /// (`@shop.example`): requests with that `AMP-Email-Sender` are
    /// [`RequestSource::AmpEmail`](crate::RequestSource::AmpEmail) and are answered with
    /// `AMP-Email-Allow-Sender`. Default: none (AMP for Email is off).
    pub fn email_sender(mut self, sender: impl Into<String>) -> Self {
        self.email_senders.push(sender.into());
        self
    }

    pub(crate) fn into_config(self) -> Result<Config, ConfigError> {
        if self.publisher_origins.is_empty() {
            return Err(ConfigError::NoPublisherOrigin);
        }
        let mut publishers = Vec::new();
        for text in &self.publisher_origins {
            publishers.push(parse_publisher(text)?);
        }
        let keyring = self.keyring.ok_or(ConfigError::NoKeyring)?.build()?;
        let same_site = match self.same_site {
            SameSite::None => cookie::SameSite::None,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => return Err(ConfigError::SameSiteStrict),
        };
        if !is_cookie_token(&self.cookie_name) {
            return Err(ConfigError::InvalidCookieName(self.cookie_name));
        }
        if let Some(d) = &self.cookie_domain {
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(ConfigError::InvalidCookieDomain(d.clone()));
            }
        }
        let hp = &self.handoff_path;
        if !hp.starts_with('/')
            || hp.starts_with("//")
            || hp.len() > 256
            || !hp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        {
            return Err(ConfigError::InvalidHandoffPath(self.handoff_path));
        }
        let ttl = self.handoff_ttl.as_secs();
        if ttl == 0 || ttl > 3600 {
            return Err(ConfigError::InvalidLimit("handoff_ttl (1 s to 1 hour)"));
        }
        if self.confirmation_delay < MIN_CONFIRMATION_DELAY
            || self.confirmation_delay > Duration::from_secs(60)
        {
            return Err(ConfigError::InvalidLimit(
                "confirmation_delay (0.5 s to 60 s)",
            ));
        }
        if self.clock_skew.as_secs() > 300 {
            return Err(ConfigError::InvalidLimit("clock_skew (at most 5 minutes)"));
        }
        if self.body_limit == 0 || self.body_limit > MAX_BODY_LIMIT {
            return Err(ConfigError::InvalidLimit("body_limit (1 to 5120 bytes)"));
        }
        if self.cookie_max_age.is_zero() {
            return Err(ConfigError::InvalidLimit("cookie_max_age"));
        }
        if let ReturnTo::Path(p) = &self.return_to {
            let valid = validate_return_path(p, &publishers[0].url)
                .map_err(|_| ConfigError::InvalidReturnPath(p.clone()))?;
            if is_handoff_path(&self.handoff_path, &valid) {
                return Err(ConfigError::ReturnPathIsHandoffPath(p.clone()));
            }
        }
        for c in &self.caches {
            if !c.is_valid() {
                return Err(ConfigError::InvalidCacheDomain(c.hosts().join(",")));
            }
        }
        let mut caches = Vec::new();
        let mut near_misses = NearMisses::default();
        for (i, p) in publishers.iter_mut().enumerate() {
            let sub = cache_subdomain(&p.host)
                .map_err(|_| ConfigError::CacheSubdomain(p.host.clone()))?;
            for c in &self.caches {
                for o in c.origins(&sub) {
                    caches.push((o.into_boxed_str(), i));
                }
                for h in c.hosts() {
                    near_misses.add(&p.host, &sub, h, &c.page_origin(&sub, h));
                }
            }
            p.cache_subdomain = sub;
        }
        let hosts: Vec<(&str, &str)> = publishers
            .iter()
            .map(|p| (&*p.host, &*p.cache_subdomain))
            .collect();
        for c in &self.caches {
            if let Some((domain, meant)) = c.page_host_misuse(&hosts) {
                return Err(ConfigError::CacheDomainIsPageHost { domain, meant });
            }
        }
        for p in &self.direct_routes {
            if !is_route_shaped(p) {
                return Err(ConfigError::InvalidDirectRoute(p.clone()));
            }
            refuse_covering_handoff(p, &self.handoff_path)?;
        }
        for p in &self.pass_through {
            if !is_route_shaped(p) {
                return Err(ConfigError::InvalidPassThrough(p.clone()));
            }
            refuse_covering_handoff(p, &self.handoff_path)?;
            if let Some(r) = self
                .direct_routes
                .iter()
                .find(|r| route_covers(p, r) || route_covers(r, p))
            {
                return Err(ConfigError::PassThroughCoversDirectRoute {
                    pass_through: p.clone(),
                    route: r.clone(),
                });
            }
        }
        for s in &self.email_senders {
            if !EmailSenders::is_valid_entry(s) {
                return Err(ConfigError::InvalidEmailSender(s.clone()));
            }
        }
        let session_mode = match self.external_session {
            None => SessionMode::Own,
            Some(name) if is_cookie_token(&name) => SessionMode::External(name.into()),
            Some(name) => return Err(ConfigError::InvalidCookieName(name)),
        };
        let allowlist = Allowlist {
            publishers: publishers.iter().map(|p| p.origin.clone()).collect(),
            caches,
            email_senders: EmailSenders(
                self.email_senders
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
            ),
        };
        let cookie_name = match &self.cookie_domain {
            None if has_host_prefix(&self.cookie_name) => self.cookie_name,
            None => format!("{HOST_PREFIX}{}", self.cookie_name),
            Some(_) if has_host_prefix(&self.cookie_name) => {
                return Err(ConfigError::HostPrefixWithDomain(self.cookie_name))
            }
            Some(_) => self.cookie_name,
        };
        let cookie = CookieTemplate::new(
            &cookie_name,
            self.cookie_max_age,
            same_site,
            self.cookie_domain.as_deref(),
        );
        Ok(Config {
            plain_caches: allowlist
                .caches
                .iter()
                .filter(|(o, _)| is_plain_origin(o))
                .cloned()
                .collect(),
            allowlist,
            publishers,
            caches: self.caches,
            keyring,
            cookie_name: CookieName::new(&cookie_name),
            cookie,
            lazy_cookie: self.lazy_cookie,
            handoff_path: self.handoff_path.into(),
            handoff_ttl: ttl,
            clock_skew: self.clock_skew.as_secs(),
            body_limit: self.body_limit,
            safe_methods: self.safe_methods,
            allow_direct_changes: self.allow_direct_changes,
            return_to: self.return_to,
            replay_guard: self.replay_guard.unwrap_or_else(|| match &self.clock_time {
                Some(c) => {
                    let c = c.clone();
                    Arc::new(MemoryReplayGuard::with_clock(
                        MemoryReplayGuard::DEFAULT_CAPACITY,
                        move || c(),
                    ))
                }
                None => Arc::new(MemoryReplayGuard::default()),
            }),
            clock: self
                .clock
                .unwrap_or_else(|| Arc::new(|| unix(SystemTime::now()))),
            direct_routes: self
                .direct_routes
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            pass_through: self
                .pass_through
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            session_mode,
            warned_strict: std::sync::atomic::AtomicBool::new(false),
            warned_one_route: std::sync::atomic::AtomicBool::new(false),
            near_misses,
            clock_ms: match self.clock_time {
                Some(c) => Arc::new(move || unix_ms(c())),
                None => Arc::new(|| unix_ms(SystemTime::now())),
            },
            confirmation_delay_ms: self.confirmation_delay.as_millis() as u64,
            describers: self.describers,
        })
    }
}

/// Keeps the handoff URL (origin + path + base64 token) well under 8 KiB.
const MAX_BODY_LIMIT: usize = 5120;
/// The longest direct route accepted.
const MAX_ROUTE_LEN: usize = 1024;

/// Absolute, printable, without query or fragment: a path a route can be declared as.
fn is_route_shaped(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && p.len() <= MAX_ROUTE_LEN
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// Whether the declared `route` (exact, or a prefix ending in `/`) covers `path`, ASCII
/// case-insensitively (as the handoff path is compared).
fn route_covers(route: &str, path: &str) -> bool {
    if route.ends_with('/') {
        path.get(..route.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(route))
    } else {
        path.eq_ignore_ascii_case(route)
    }
}

/// A declared route must not cover the one path the layer answers itself, however spelled.
fn refuse_covering_handoff(route: &str, handoff_path: &str) -> Result<(), ConfigError> {
    if route_covers(route, handoff_path) || is_handoff_path(handoff_path, route) {
        return Err(ConfigError::RouteCoversHandoffPath {
            route: route.to_owned(),
            handoff_path: handoff_path.to_owned(),
        });
    }
    Ok(())
}

/// Only a plain path matches a declared route: no `%`, `\`, `;`, `//` or dot segment, which
/// a server or proxy in front of the app might resolve to another route than the one
/// declared (`/cart/../account/email` is below `/cart/` as text, not as a route).
fn is_plain_path(path: &str) -> bool {
    !path.contains(['%', '\\', ';'])
        && !path.contains("//")
        && path.split('/').all(|seg| seg != "." && seg != "..")
}

/// Whether `path` is `route` exactly, or below it when it is a prefix ending in `/`.
fn matches_route(route: &str, path: &str) -> bool {
    if route.ends_with('/') {
        path.starts_with(route)
    } else {
        path == route
    }
}

/// Whether the path of `path_and_query` is the handoff path, the one path this layer answers
/// itself. Compared after percent-decoding and ASCII-case-insensitively, so no spelling of
/// it can make a handoff land on another handoff.
pub(crate) fn is_handoff_path(handoff_path: &str, path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    if path.eq_ignore_ascii_case(handoff_path) {
        return true;
    }
    if !path.contains('%') {
        return false;
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(path.as_bytes()).collect();
    decoded.eq_ignore_ascii_case(handoff_path.as_bytes())
}

impl From<Keyring> for KeyringBuilder {
    fn from(k: Keyring) -> Self {
        k.into_builder()
    }
}

/// A publisher origin, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    /// Serialized origin, as browsers send it in `Origin`.
    pub(crate) origin: Box<str>,
    /// [`Publisher::origin`] as a header value, shared by every replayed request's `Origin`.
    pub(crate) origin_value: http::HeaderValue,
    /// [`Publisher::origin`] as amp-form writes it in `__amp_source_origin`
    /// (`encodeURIComponent`: `https%3A%2F%2Fshop.example`), for the exact comparison that
    /// answers before any decoding.
    pub(crate) source_origin: Box<str>,
    /// The mint's JSON answer with the token left out, and where the token goes: written at
    /// the first mint (`handoff::mint`), then copied around each token.
    pub(crate) mint_answer: std::sync::OnceLock<(Box<[u8]>, usize)>,
    /// The origin as a URL, for resolving return paths.
    pub(crate) url: url::Url,
    /// Host without port, for the cache subdomain.
    pub(crate) host: String,
    /// Host with port as written in URLs (`shop.localhost:8080`), for `/c/s/<host>` paths.
    pub(crate) authority: String,
    pub(crate) cache_subdomain: String,
}

fn parse_publisher(text: &str) -> Result<Publisher, ConfigError> {
    let bad = || ConfigError::InvalidPublisherOrigin(text.to_owned());
    let url = url::Url::parse(text).map_err(|_| bad())?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        _ => return Err(bad()),
    };
    let localhost = host == "localhost" || host.ends_with(".localhost");
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && localhost);
    if !ok_scheme
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    let origin = url.origin().ascii_serialization();
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let origin_value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(origin.clone()))
        .map_err(|_| bad())?;
    // encodeURIComponent leaves letters, digits and `-_.!~*'()` as they are.
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    let source_origin = percent_encoding::utf8_percent_encode(&origin, COMPONENT).to_string();
    Ok(Publisher {
        origin: origin.into(),
        origin_value,
        source_origin: source_origin.into(),
        mint_answer: std::sync::OnceLock::new(),
        url,
        host,
        authority,
        cache_subdomain: String::new(),
    })
}

/// The cookie prefix that binds a cookie to one host (RFC 6265bis, "Cookie Name Prefixes").
const HOST_PREFIX: &str = "__Host-";

/// Browsers match cookie prefixes without regard to case.
fn has_host_prefix(name: &str) -> bool {
    name.get(..HOST_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(HOST_PREFIX))
}

fn is_cookie_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The checked configuration shared by the layer, its services and the handoff service.
pub(crate) struct Config {
    pub(crate) allowlist: Allowlist,
    /// The cache origins (with their publisher) that URL parsing leaves as they are
    /// ([`is_plain_origin`]): a `Referer` that starts with one is from it, without a parse.
    pub(crate) plain_caches: Vec<(Box<str>, usize)>,
    pub(crate) publishers: Vec<Publisher>,
    pub(crate) caches: Vec<CacheDomain>,
    pub(crate) keyring: Keyring,
    /// The name the cookie is sent and read under (`__Host-` prefixed without a domain).
    pub(crate) cookie_name: CookieName,
    pub(crate) cookie: CookieTemplate,
    /// Issue a new session's cookie only once the handler read its ID (the default).
    pub(crate) lazy_cookie: bool,
    pub(crate) handoff_path: Box<str>,
    pub(crate) handoff_ttl: u64,
    pub(crate) clock_skew: u64,
    pub(crate) body_limit: usize,
    pub(crate) safe_methods: Vec<Method>,
    pub(crate) allow_direct_changes: bool,
    pub(crate) return_to: ReturnTo,
    pub(crate) replay_guard: Arc<dyn ReplayGuard>,
    pub(crate) clock: Clock,
    /// Routes a handoff may apply without the confirmation step ([`ConfigBuilder::direct_route`]).
    pub(crate) direct_routes: Vec<Box<str>>,
    /// Paths the layer leaves alone ([`ConfigBuilder::pass_through`]); usually none.
    pub(crate) pass_through: Box<[Box<str>]>,
    pub(crate) session_mode: SessionMode,
    /// Whether the "app cookie is SameSite=Strict" warning was logged (once is enough).
    pub(crate) warned_strict: std::sync::atomic::AtomicBool,
    /// Whether a mint in a copy of the layer that wraps one axum route was logged.
    pub(crate) warned_one_route: std::sync::atomic::AtomicBool,
    /// Refused origins that are almost this publisher's cache origin.
    pub(crate) near_misses: NearMisses,
    /// The clock in Unix milliseconds (the confirmation page's render time).
    pub(crate) clock_ms: Clock,
    /// [`ConfigBuilder::confirmation_delay`] in milliseconds.
    pub(crate) confirmation_delay_ms: u64,
    /// [`ConfigBuilder::describe`].
    pub(crate) describers: Describers,
}

/// Whose cookie carries the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionMode {
    /// This layer issues and reads its own cookie.
    Own,
    /// The app's session layer does; this is its cookie's name.
    External(Box<str>),
}

impl Config {
    pub(crate) fn is_state_changing(&self, method: &Method) -> bool {
        !self.safe_methods.contains(method)
    }

    pub(crate) fn now(&self) -> u64 {
        (self.clock)()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        (self.clock_ms)()
    }

    /// Whether `target` (path and query) is a declared direct route: exactly, or below a
    /// declared prefix ending in `/`.
    ///
    /// Only a plain path can match ([`is_plain_path`]).
    pub(crate) fn is_direct_route(&self, target: &str) -> bool {
        let path = target.split('?').next().unwrap_or(target);
        is_plain_path(path) && self.direct_routes.iter().any(|p| matches_route(p, path))
    }

    /// Whether the layer leaves `path` alone ([`ConfigBuilder::pass_through`]). Only a
    /// plain path can match ([`is_plain_path`]).
    pub(crate) fn passes_through(&self, path: &str) -> bool {
        self.pass_through.iter().any(|p| matches_route(p, path)) && is_plain_path(path)
    }

    /// Whether `path_and_query` is a path the layer answers itself (the handoff path): never
    /// a return path, never a handoff target.
    pub(crate) fn is_layer_path(&self, path_and_query: &str) -> bool {
        is_handoff_path(&self.handoff_path, path_and_query)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("publishers", &self.allowlist.publishers)
            .field("cache_origins", &self.allowlist.caches)
            .field("keyring", &self.keyring)
            .field("cookie_name", &self.cookie_name)
            .field("handoff_path", &self.handoff_path)
            .field("handoff_ttl", &self.handoff_ttl)
            .field("body_limit", &self.body_limit)
            .field("replay_guard", &self.replay_guard)
            .finish_non_exhaustive()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

//! The Redis replay guard (feature `redis`): single use across several origin instances.

use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::{
    Client, ClientLike, Config, ErrorKind, Expiration, KeysInterface, LuaInterface, Options,
    ReconnectPolicy, Value,
};
use fred::types::config::UnresponsiveConfig;

use crate::replay::{ReplayFuture, ReplayGuard, ReplayGuardError, Reservation};

/// `reserve`: KEYS[1] the nonce key, ARGV[1] this instance's pending value, ARGV[2] the
/// expiry (unix ms). Answers `R` when reserved, else the value held.
const RESERVE: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then \
return 'R' end return redis.call('GET', KEYS[1]) or ''";
/// `release`: deletes KEYS[1] only while its value starts with ARGV[1]: `p:<instance>:` (any
/// pending mark of this instance) or one reservation's own `p:<instance>:<16 hex>`.
const RELEASE: &str = "local v = redis.call('GET', KEYS[1]) \
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then \
return redis.call('DEL', KEYS[1]) end return 0";
/// The value of an applied nonce.
const APPLIED: &str = "a";

/// The key prefix used unless [`RedisReplayGuard::prefix`] sets another.
const DEFAULT_PREFIX: &str = "amp-session:nonce";
/// How long one `SET` may take unless [`RedisReplayGuard::timeout`] sets another.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long opening one connection may take (initial connect and each reconnect).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than fred's timeout the backstop timeout fires.
const BACKSTOP_MARGIN: Duration = Duration::from_millis(50);
/// A nonce is kept at least this long, even when its token is (nearly) expired already.
const MIN_TTL_MS: i64 = 1000;
/// How often, at most, a timed-out `reserve` tries to clear the mark it may still have set.
const CLEANUP_PAUSE: Duration = Duration::from_secs(1);

/// A [`ReplayGuard`] in Redis, shared by every origin instance that points at the same server.
///
/// Each nonce is one key, `<prefix>:<32 hex digits>`, that expires with the token (its
/// expiry plus the configured clock skew, at least one second after now):
///
/// | step | command | round trips |
/// |---|---|---|
/// | `reserve` | a Lua script: `SET key p:<instance>:<random> NX PXAT <expiry>`, else `GET key` | 1 |
/// | `mark_applied` | `SET key a PXAT <expiry>` | 1 |
/// | `release` | a Lua script: `DEL key` only if it still holds one of this instance's `p:<instance>:…` | 1 |
///
/// So of any number of concurrent completions of one token, on any number of instances,
/// exactly one is [`Reservation::Reserved`]; the others see `Pending` (409) or `Applied`
/// (redirected). `mark_applied` sets the key whatever it holds (not `SET XX`): the change
/// was applied, so even a reservation Redis lost is recorded as applied. `release` deletes
/// only a pending mark of its own instance, never an applied one.
///
/// # Failure
///
/// The guard fails closed and never answers `Reserved` when unsure. When Redis is down, slow
/// (no answer within [`timeout`], 500 ms by default), or answers anything unexpected, a call
/// returns [`ReplayGuardError::Unavailable`]: `reserve` then means `503` with `Retry-After`,
/// nothing applied. No call waits longer than the timeout: while the client knows it is
/// disconnected a call fails at once, and one caught between a drop and its detection waits
/// out the timeout and fails then. Such a command may still be written after the reconnect
/// (seen in the tests with fred 10): each `reserve` sets a value of its own
/// (`p:<instance>:<random>`), and one that failed keeps trying, in the background, to delete
/// exactly that value (only it: never another completion's mark, never an applied one) until
/// Redis answers or the token expires. Its link may read as pending for that moment, never as
/// reserved twice, and completes once the stale mark is gone. The client
/// reconnects in the background (exponential back-off, 100 ms to 2 s, forever), and
/// handoffs work again as soon as Redis is back, without rebuilding the layer.
///
/// What the shopper sees when a reply is lost:
///
/// | lost or late reply | shopper sees | a reload |
/// |---|---|---|
/// | `reserve` (the key may be set) | `503`, not applied | applies once Redis is back and the guard cleared its stale mark (`409` until then) |
/// | `mark_applied` (the app applied it) | `303`, applied | `409` until the token expires, never applied again |
/// | `release` (the app refused) | the app's failure | `409` until the token expires |
///
/// # Persistence
///
/// Single use across a Redis restart needs the marks to survive it: run Redis with
/// `appendonly yes` and `appendfsync always` (or a replica that a failover never promotes
/// before it has the writes). A Redis that loses its data forgets pending and applied marks,
/// and a reload of a link completed shortly before could then apply again.
///
/// # Connecting
///
/// - [`connect`] waits for the first connection and fails with a clear error when Redis
///   cannot be reached, so a wrong URL or a missing server shows at start-up, like any other
///   configuration error.
/// - [`connect_lazy`] returns at once and connects in the background; until Redis answers,
///   handoffs are answered `503`. Use it when the application may start before Redis does.
/// - [`from_client`] takes a `fred` client you configured yourself (TLS, sentinel, cluster,
///   pools of settings); the per-command guarantees above still apply.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_amp_session::{AmpSessionLayer, Keyring, RedisReplayGuard};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let guard = RedisReplayGuard::connect("redis://127.0.0.1:6379")
///     .await?
///     .prefix("shop:amp-nonce")
///     .timeout(Duration::from_millis(300));
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     // Every instance needs the same keys: AMP_SESSION_KEYS="k2:<base64>,k1:<base64>".
///     .keyring(Keyring::from_env("AMP_SESSION_KEYS")?)
///     .replay_guard(guard)
///     .build()?;
/// # let _ = layer; Ok(()) }
/// ```
///
/// [`timeout`]: RedisReplayGuard::timeout
/// [`connect`]: RedisReplayGuard::connect
/// [`connect_lazy`]: RedisReplayGuard::connect_lazy
/// [`from_client`]: RedisReplayGuard::from_client
#[derive(Clone)]
pub struct RedisReplayGuard {
    client: Client,
    prefix: Box<str>,
    timeout: Duration,
    /// `p:<16 hex digits>:`, random per guard: the start of every pending mark this instance
    /// sets (each reservation adds 16 hex digits of its own), and of the only ones its
    /// `release` deletes.
    pending: Box<str>,
    // Applied to every command: no queueing while disconnected, no re-send, bounded wait.
    options: Options,
}

impl RedisReplayGuard {
    /// Connects to the Redis server at `url` (`redis://[[user]:password@]host[:port][/db]`)
    /// and waits for the first connection.
    ///
    /// Fails with [`ReplayGuardError::Unavailable`] when the URL is invalid or the server
    /// cannot be reached within 2 seconds; the message names the server (without any
    /// password) and the cause. Once connected, the guard reconnects by itself whenever the
    /// connection drops. Must be called within a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Self, ReplayGuardError> {
        let client = client_for(url, true)?;
        client.init().await.map_err(|e| {
            ReplayGuardError::Unavailable(format!(
                "could not connect to Redis at {}: {e}",
                redacted(url)
            ))
        })?;
        Ok(RedisReplayGuard::from_client(client))
    }

    /// Like [`connect`](RedisReplayGuard::connect), but does not wait: the client connects,
    /// and keeps trying to, in the background. Until it is connected every handoff is
    /// answered `503`.
    ///
    /// Fails only when the URL is invalid. Must be called within a Tokio runtime.
    pub async fn connect_lazy(url: &str) -> Result<Self, ReplayGuardError> {
        let client = client_for(url, false)?;
        // The connection task runs until `quit`; its handle is not needed to keep it running.
        drop(client.connect());
        Ok(RedisReplayGuard::from_client(client))
    }

    /// A guard on a `fred` client you configured and connected (`client.init().await`)
    /// yourself, for TLS, sentinel or cluster set-ups.
    ///
    /// Give the client a [`ReconnectPolicy`] so that it comes back after Redis restarts.
    /// Whatever its settings, each `SET` of the guard fails fast while the client is not
    /// connected, is sent at most once and is bounded by [`timeout`](RedisReplayGuard::timeout).
    pub fn from_client(client: Client) -> Self {
        RedisReplayGuard {
            client,
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
            pending: format!("p:{:016x}:", rand::random::<u64>()).into_boxed_str(),
            options: options(DEFAULT_TIMEOUT),
        }
    }

    /// Sets the key prefix (default `amp-session:nonce`); keys are `<prefix>:<hex nonce>`.
    /// Give applications that share one Redis database different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into_boxed_str();
        self
    }

    /// Sets how long one command may take before it fails (default 500 ms, at least 1 ms). Keep
    /// it short: the user waits that long for the `503` when Redis hangs.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        // Zero would mean "no timeout" to fred.
        let timeout = timeout.max(Duration::from_millis(1));
        self.timeout = timeout;
        self.options = options(timeout);
        self
    }

    /// The underlying `fred` client, e.g. to share its connection or to `quit` it on shutdown.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `<prefix>:<32 hex digits>`.
    fn key(&self, nonce: &[u8; 16]) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 1 + 32);
        key.push_str(&self.prefix);
        key.push(':');
        for b in nonce {
            // Writing to a String cannot fail.
            let _ = write!(key, "{b:02x}");
        }
        key
    }

    /// Runs one command with the per-command options, bounded by the timeout.
    async fn bounded<F>(&self, command: F) -> Result<Value, ReplayGuardError>
    where
        F: std::future::Future<Output = Result<Value, fred::error::Error>>,
    {
        // fred's own timeout (in `options`) must fire first: it flags the command so that it
        // is never written later, after a reconnect. This one is only a backstop in case
        // that future ever hangs elsewhere.
        match tokio::time::timeout(self.timeout + BACKSTOP_MARGIN, command).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if *e.kind() == ErrorKind::Timeout => Err(timed_out(self.timeout)),
            Ok(Err(e)) => Err(ReplayGuardError::Unavailable(format!("Redis: {e}"))),
            Err(_) => Err(timed_out(self.timeout)),
        }
    }

    async fn do_reserve(
        &self,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<Reservation, ReplayGuardError> {
        let client = self.client.with_options(&self.options);
        let mark = format!("{}{:016x}", self.pending, rand::random::<u64>());
        let args = vec![
            Value::from(mark.as_str()),
            Value::from(pxat(expires_at, SystemTime::now())),
        ];
        let reply = match self
            .bounded(client.eval::<Value, _, _, _>(RESERVE, self.key(nonce), args))
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                // The command may still reach Redis later and set `mark`: clear it then.
                self.clear_later(self.key(nonce), mark, expires_at);
                return Err(e);
            }
        };
        match reply.as_str().as_deref() {
            Some("R") => Ok(Reservation::Reserved),
            Some(APPLIED) => Ok(Reservation::Applied),
            // Pending (ours or another instance's), or a value this guard never writes:
            // in doubt, never Reserved.
            Some(_) => Ok(Reservation::Pending),
            None => Err(ReplayGuardError::Unavailable(format!(
                "unexpected Redis reply to reserve: {:?}",
                reply.kind()
            ))),
        }
    }

    /// In the background, deletes `key` while it holds exactly `mark` (a failed reservation's
    /// own), retrying every [`CLEANUP_PAUSE`] until Redis answers or `expires_at` passes.
    fn clear_later(&self, key: String, mark: String, expires_at: SystemTime) {
        let (client, options) = (self.client.clone(), self.options.clone());
        tokio::spawn(async move {
            while SystemTime::now() < expires_at {
                tokio::time::sleep(CLEANUP_PAUSE).await;
                let client = client.with_options(&options);
                let args = vec![Value::from(mark.as_str())];
                let sent = client.eval::<Value, _, _, _>(RELEASE, key.as_str(), args);
                if let Ok(Ok(_)) = tokio::time::timeout(CLEANUP_PAUSE, sent).await {
                    return;
                }
            }
        });
    }

    async fn do_mark_applied(
        &self,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<(), ReplayGuardError> {
        let client = self.client.with_options(&self.options);
        let expiry = Expiration::PXAT(pxat(expires_at, SystemTime::now()));
        let set = client.set::<Value, _, _>(self.key(nonce), APPLIED, Some(expiry), None, false);
        match self.bounded(set).await? {
            v if v.is_ok() => Ok(()),
            v => Err(ReplayGuardError::Unavailable(format!(
                "unexpected Redis reply to SET: {:?}",
                v.kind()
            ))),
        }
    }

    async fn do_release(&self, nonce: &[u8; 16]) -> Result<(), ReplayGuardError> {
        let client = self.client.with_options(&self.options);
        let args = vec![Value::from(&*self.pending)];
        match self
            .bounded(client.eval::<Value, _, _, _>(RELEASE, self.key(nonce), args))
            .await?
        {
            Value::Integer(_) => Ok(()),
            v => Err(ReplayGuardError::Unavailable(format!(
                "unexpected Redis reply to release: {:?}",
                v.kind()
            ))),
        }
    }
}

impl RedisReplayGuard {
    /// `GET key`: the state held, read-only (for [`ReplayGuard::state`]).
    async fn do_state(&self, nonce: &[u8; 16]) -> Result<Option<Reservation>, ReplayGuardError> {
        let client = self.client.with_options(&self.options);
        let reply = self
            .bounded(client.get::<Value, _>(self.key(nonce)))
            .await?;
        if reply.is_null() {
            return Ok(None);
        }
        match reply.as_str().as_deref() {
            Some(APPLIED) => Ok(Some(Reservation::Applied)),
            // Pending (any instance's), or a value this guard never writes: in doubt, pending.
            Some(_) => Ok(Some(Reservation::Pending)),
            None => Err(ReplayGuardError::Unavailable(format!(
                "unexpected Redis reply to GET: {:?}",
                reply.kind()
            ))),
        }
    }
}

impl ReplayGuard for RedisReplayGuard {
    fn reserve<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Reservation> {
        Box::pin(self.do_reserve(nonce, expires_at))
    }

    fn mark_applied<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, ()> {
        Box::pin(self.do_mark_applied(nonce, expires_at))
    }

    fn release<'a>(&'a self, nonce: &'a [u8; 16]) -> ReplayFuture<'a, ()> {
        Box::pin(self.do_release(nonce))
    }

    fn state<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        _expires_at: SystemTime,
    ) -> ReplayFuture<'a, Option<Reservation>> {
        Box::pin(self.do_state(nonce))
    }
}

impl fmt::Debug for RedisReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's config may hold a password: show only its state.
        f.debug_struct("RedisReplayGuard")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("state", &self.client.state())
            .finish_non_exhaustive()
    }
}

/// Per-command options: fail at once while disconnected instead of waiting in fred's queue,
/// never re-send (see the type's docs), and give up after `timeout`.
fn options(timeout: Duration) -> Options {
    Options {
        fail_fast: true,
        max_attempts: Some(1),
        timeout: Some(timeout),
        ..Options::default()
    }
}

/// A client for `url` that reconnects forever and notices a silent (half-open) connection.
/// With `fail_fast`, a failed first connection is an error; without, it is retried like any
/// later one.
fn client_for(url: &str, fail_fast: bool) -> Result<Client, ReplayGuardError> {
    let mut config = Config::from_url(url).map_err(|e| {
        ReplayGuardError::Unavailable(format!("invalid Redis URL {}: {e}", redacted(url)))
    })?;
    config.fail_fast = fail_fast;
    let mut builder = fred::types::Builder::from_config(config);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = CONNECT_TIMEOUT;
            c.internal_command_timeout = CONNECT_TIMEOUT;
            c.max_command_attempts = 1;
            // A connection that stops answering (server paused, network partition without a
            // reset) is dropped and reopened instead of timing out every check forever.
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(Duration::from_secs(2)),
                interval: Duration::from_millis(500),
            };
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2000, 2));
    builder.build().map_err(|e| {
        ReplayGuardError::Unavailable(format!("invalid Redis URL {}: {e}", redacted(url)))
    })
}

fn timed_out(timeout: Duration) -> ReplayGuardError {
    ReplayGuardError::Unavailable(format!(
        "Redis did not answer within {} ms",
        timeout.as_millis()
    ))
}

/// `url` without its password, for error messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable)".to_owned(),
    }
}

/// `expires_at` as unix milliseconds, at least [`MIN_TTL_MS`] after `now`.
fn pxat(expires_at: SystemTime, now: SystemTime) -> i64 {
    let ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    };
    ms(expires_at).max(ms(now).saturating_add(MIN_TTL_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_absolute_and_at_least_one_second_ahead() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let base = 1_700_000_000_000;
        assert_eq!(pxat(now + Duration::from_secs(150), now), base + 150_000);
        assert_eq!(
            pxat(now + Duration::from_millis(10), now),
            base + MIN_TTL_MS
        );
        assert_eq!(pxat(now - Duration::from_secs(5), now), base + MIN_TTL_MS);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redacted("redis://user:secret@db.internal:6380/2"),
            "redis://user:***@db.internal:6380/2"
        );
        assert_eq!(redacted("redis://db:6379"), "redis://db:6379");
        assert_eq!(redacted("not a url"), "(unparsable)");
    }

    #[test]
    fn key_layout() {
        let guard = RedisReplayGuard::from_client(Client::default()).prefix("p");
        let mut nonce = [0u8; 16];
        nonce[0] = 0xab;
        nonce[15] = 0x01;
        assert_eq!(guard.key(&nonce), "p:ab000000000000000000000000000001");
        assert!(guard.pending.starts_with("p:") && guard.pending.ends_with(':'));
        assert_eq!(guard.pending.len(), 19);
    }
}

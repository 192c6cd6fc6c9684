//! The Redis replay guard (feature `redis`): single use across several origin instances.

use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use fred::prelude::{
    Client, ClientLike, Config, ErrorKind, Expiration, KeysInterface, Options, ReconnectPolicy,
    SetOptions, Value,
};
use fred::types::config::UnresponsiveConfig;

use crate::replay::{NonceStatus, ReplayFuture, ReplayGuard, ReplayGuardError};

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

/// A [`ReplayGuard`] in Redis, shared by every origin instance that points at the same server.
///
/// Each handoff nonce is marked with one atomic command,
/// `SET <prefix>:<key id>:<hex nonce> 1 NX PX <ttl>`, so of any number of concurrent
/// completions of one token, on any number of instances, exactly one is
/// [`NonceStatus::Fresh`]. The key expires with the token (its expiry plus the configured clock
/// skew, at least one second), so Redis holds only nonces that could still be replayed.
///
/// # Failure
///
/// The guard fails closed. When Redis is down, slow (no answer within [`timeout`], 500 ms by
/// default), or answers anything unexpected, `check_and_mark` returns
/// [`ReplayGuardError::Unavailable`]; the handoff is then answered `503` and nothing is applied.
/// No check waits longer than the timeout: while the client knows it is disconnected a check
/// fails at once, and one caught in the moment between a drop and its detection waits out
/// the timeout and fails then, never to be sent later. A check is never re-sent after a
/// connection drop either (a re-sent `SET NX` could find its own first write and report the
/// change as already applied). The client reconnects in the background (exponential back-off,
/// 100 ms to 2 s, forever), and handoffs work again as soon as Redis is back, without
/// rebuilding the layer.
///
/// One case cannot be told apart: a `SET` that reached Redis but whose answer was lost or
/// late. It is reported as an error (`503`, nothing applied) although the nonce is marked, so
/// reloading that same handoff URL then counts as a replay; submitting the form again works.
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
    // Applied to every SET: no queueing while disconnected, no re-send, bounded wait.
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
            options: options(DEFAULT_TIMEOUT),
        }
    }

    /// Sets the key prefix (default `amp-session:nonce`); keys are `<prefix>:<key id>:<hex
    /// nonce>`. Give applications that share one Redis database different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into_boxed_str();
        self
    }

    /// Sets how long one check may take before it fails (default 500 ms, at least 1 ms). Keep
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

    /// `<prefix>:<key id>:<32 hex digits>`. Key ids are checked to be `A-Z a-z 0-9 - _ .`.
    fn key(&self, key_id: &str, nonce: &[u8; 16]) -> String {
        let mut key = String::with_capacity(self.prefix.len() + key_id.len() + 2 + 32);
        key.push_str(&self.prefix);
        key.push(':');
        key.push_str(key_id);
        key.push(':');
        for b in nonce {
            // Writing to a String cannot fail.
            let _ = write!(key, "{b:02x}");
        }
        key
    }

    async fn mark(
        &self,
        key_id: &str,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<NonceStatus, ReplayGuardError> {
        let key = self.key(key_id, nonce);
        let ttl = ttl_ms(expires_at, SystemTime::now());
        let client = self.client.with_options(&self.options);
        let set = client.set::<Value, _, _>(
            key,
            1,
            Some(Expiration::PX(ttl)),
            Some(SetOptions::NX),
            false,
        );
        // fred's own timeout (in `options`) must fire first: it flags the command so that it
        // is never written later, after a reconnect, marking a nonce we reported as failed.
        // This one is only a backstop in case that future ever hangs elsewhere.
        match tokio::time::timeout(self.timeout + BACKSTOP_MARGIN, set).await {
            Ok(Ok(Value::Null)) => Ok(NonceStatus::AlreadyUsed),
            Ok(Ok(v)) if v.is_ok() => Ok(NonceStatus::Fresh),
            Ok(Ok(v)) => Err(ReplayGuardError::Unavailable(format!(
                "unexpected Redis reply to SET NX: {:?}",
                v.kind()
            ))),
            Ok(Err(e)) if *e.kind() == ErrorKind::Timeout => Err(timed_out(self.timeout)),
            Ok(Err(e)) => Err(ReplayGuardError::Unavailable(format!("Redis: {e}"))),
            Err(_) => Err(timed_out(self.timeout)),
        }
    }
}

impl ReplayGuard for RedisReplayGuard {
    fn check_and_mark<'a>(
        &'a self,
        key_id: &'a str,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a> {
        Box::pin(self.mark(key_id, nonce, expires_at))
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

/// Milliseconds from `now` until `expires_at`, at least [`MIN_TTL_MS`].
fn ttl_ms(expires_at: SystemTime, now: SystemTime) -> i64 {
    let ms = expires_at
        .duration_since(now)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    i64::try_from(ms).unwrap_or(i64::MAX).max(MIN_TTL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_from_now_and_at_least_one_second() {
        let now = SystemTime::now();
        assert_eq!(ttl_ms(now + Duration::from_secs(150), now), 150_000);
        assert_eq!(ttl_ms(now + Duration::from_millis(10), now), MIN_TTL_MS);
        assert_eq!(ttl_ms(now - Duration::from_secs(5), now), MIN_TTL_MS);
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
        assert_eq!(
            guard.key("k1", &nonce),
            "p:k1:ab000000000000000000000000000001"
        );
    }
}

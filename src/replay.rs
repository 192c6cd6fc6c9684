//! The replay guard: each handoff token applies its change at most once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What [`ReplayGuard::check_and_mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// First use: the nonce is now marked and the change may be applied.
    Fresh,
    /// Already used: do not apply the change again.
    AlreadyUsed,
}

/// Why the guard could not answer. The handoff then fails closed: 503, nothing applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayGuardError {
    /// The guard holds as many live nonces as it may.
    Full,
    /// The backing store did not answer (in time).
    Unavailable(String),
}

impl fmt::Display for ReplayGuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayGuardError::Full => f.write_str("replay guard is full"),
            ReplayGuardError::Unavailable(why) => write!(f, "replay guard unavailable: {why}"),
        }
    }
}

impl std::error::Error for ReplayGuardError {}

/// The future a [`ReplayGuard`] returns.
pub type ReplayFuture<'a> =
    Pin<Box<dyn Future<Output = Result<NonceStatus, ReplayGuardError>> + Send + 'a>>;

/// Remembers used handoff nonces until they expire.
///
/// `check_and_mark` must be atomic: of any number of concurrent calls with one nonce,
/// exactly one sees [`NonceStatus::Fresh`]. A guard that cannot tell must return an error,
/// never `Fresh`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_amp_session::{MemoryReplayGuard, NonceStatus, ReplayGuard};
///
/// # futures_util::future::FutureExt::now_or_never(async {
/// let guard = MemoryReplayGuard::new(1000);
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let nonce = [1u8; 16];
/// assert_eq!(guard.check_and_mark("k1", &nonce, expires).await, Ok(NonceStatus::Fresh));
/// assert_eq!(guard.check_and_mark("k1", &nonce, expires).await, Ok(NonceStatus::AlreadyUsed));
/// # }).unwrap();
/// ```
pub trait ReplayGuard: fmt::Debug + Send + Sync + 'static {
    /// Marks `nonce` (of a token signed by `key_id`) as used until `expires_at`, and says
    /// whether it had been used before.
    fn check_and_mark<'a>(
        &'a self,
        key_id: &'a str,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a>;
}

/// The in-memory replay guard: bounded, for a single origin instance.
///
/// Holds at most `capacity` live nonces. When full it first sweeps expired ones; if it is
/// still full it fails closed ([`ReplayGuardError::Full`]): the handoff is answered 503 and
/// nothing is applied. With several origin instances use a shared guard (Redis).
pub struct MemoryReplayGuard {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    // nonce -> expiry (unix seconds). Nonces are 128 random bits, unique across key ids.
    used: HashMap<[u8; 16], u64>,
    next_sweep: u64,
}

impl MemoryReplayGuard {
    /// A guard that holds at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        MemoryReplayGuard {
            state: Mutex::new(State {
                used: HashMap::new(),
                next_sweep: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    /// How many nonces are held now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.used.len()).unwrap_or(0)
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn mark(
        &self,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<NonceStatus, ReplayGuardError> {
        let now = unix(SystemTime::now());
        let expires = unix(expires_at);
        // A poisoned lock means a panic elsewhere mid-update: fail closed.
        let mut state = self
            .state
            .lock()
            .map_err(|_| ReplayGuardError::Unavailable("lock poisoned".into()))?;
        if let Some(&exp) = state.used.get(nonce) {
            if exp > now {
                return Ok(NonceStatus::AlreadyUsed);
            }
        }
        if state.used.len() >= self.capacity || now >= state.next_sweep {
            state.used.retain(|_, exp| *exp > now);
            // Sweep at most once a minute unless pressed for room.
            state.next_sweep = now + 60;
        }
        if state.used.len() >= self.capacity {
            return Err(ReplayGuardError::Full);
        }
        state.used.insert(*nonce, expires);
        Ok(NonceStatus::Fresh)
    }
}

impl Default for MemoryReplayGuard {
    /// 100 000 live nonces: about 4 MB, far above what one instance mints within a lifetime.
    fn default() -> Self {
        MemoryReplayGuard::new(100_000)
    }
}

impl fmt::Debug for MemoryReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn check_and_mark<'a>(
        &'a self,
        _key_id: &'a str,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a> {
        let result = self.mark(nonce, expires_at);
        Box::pin(std::future::ready(result))
    }
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("memory guard is ready at once")
    }

    #[test]
    fn marks_once() {
        let g = MemoryReplayGuard::new(10);
        let exp = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(
            block(g.check_and_mark("k", &[1; 16], exp)),
            Ok(NonceStatus::Fresh)
        );
        assert_eq!(
            block(g.check_and_mark("k", &[1; 16], exp)),
            Ok(NonceStatus::AlreadyUsed)
        );
        assert_eq!(
            block(g.check_and_mark("k", &[2; 16], exp)),
            Ok(NonceStatus::Fresh)
        );
    }

    #[test]
    fn full_fails_closed_and_expired_make_room() {
        let g = MemoryReplayGuard::new(2);
        let live = SystemTime::now() + Duration::from_secs(60);
        let past = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(
            block(g.check_and_mark("k", &[1; 16], live)),
            Ok(NonceStatus::Fresh)
        );
        assert_eq!(
            block(g.check_and_mark("k", &[2; 16], live)),
            Ok(NonceStatus::Fresh)
        );
        assert_eq!(
            block(g.check_and_mark("k", &[3; 16], live)),
            Err(ReplayGuardError::Full)
        );
        let g = MemoryReplayGuard::new(2);
        assert_eq!(
            block(g.check_and_mark("k", &[1; 16], past)),
            Ok(NonceStatus::Fresh)
        );
        assert_eq!(
            block(g.check_and_mark("k", &[2; 16], live)),
            Ok(NonceStatus::Fresh)
        );
        assert_eq!(
            block(g.check_and_mark("k", &[3; 16], live)),
            Ok(NonceStatus::Fresh)
        );
        assert_eq!(g.len(), 2);
    }
}

//! The replay guard: each handoff token applies its change at most once, and a change the
//! app refused can be retried.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod evicted;

use evicted::Evicted;

/// What [`ReplayGuard::reserve`] found for a nonce.
///
/// ```
/// use tower_amp_session::Reservation;
///
/// fn may_apply(r: Reservation) -> bool {
///     matches!(r, Reservation::Reserved)
/// }
/// assert!(!may_apply(Reservation::Pending));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reservation {
    /// The nonce was unknown and is now held for this caller (pending): apply the change,
    /// then [`mark_applied`](ReplayGuard::mark_applied) or [`release`](ReplayGuard::release).
    Reserved,
    /// The change was applied already (a reload, a double click): do not apply it again.
    Applied,
    /// Another completion holds the nonce: its change is being applied right now, or that
    /// completion never finished and its result is unknown. Do not apply it.
    Pending,
}

/// Why the guard could not answer. The handoff then fails closed: nothing is applied.
///
/// ```
/// use tower_amp_session::ReplayGuardError;
///
/// let e = ReplayGuardError::Unavailable("timed out".into());
/// assert_eq!(e.to_string(), "replay guard unavailable: timed out");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayGuardError {
    /// The guard had to forget nonces to make room and cannot tell whether this one was used
    /// (for [`MemoryReplayGuard`]: its Bloom filter of evicted nonces says it may be one of
    /// them, or it expired). Such a link can never be used again (the layer answers `410`,
    /// "send the form again"); other links are not affected.
    Full,
    /// The backing store did not answer (in time), or answered something unexpected. The
    /// layer answers `503` with `Retry-After`.
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

/// The future a [`ReplayGuard`] method returns.
pub type ReplayFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ReplayGuardError>> + Send + 'a>>;

/// Remembers handoff nonces until their tokens expire, in three states: absent, pending
/// (reserved, the app is applying the change) and applied.
///
/// A completion calls [`reserve`](Self::reserve) before it calls the app. Only
/// [`Reservation::Reserved`] lets it call the app; afterwards it calls
/// [`mark_applied`](Self::mark_applied) when the app succeeded (2xx/3xx) or
/// [`release`](Self::release) when the app refused or failed, so that a reload of the link
/// tries again.
///
/// # Contract
///
/// - `reserve` is atomic: of any number of concurrent calls with one nonce, on any number of
///   instances sharing the guard, at most one answers `Reserved` until that reservation is
///   released.
/// - A guard that cannot tell must return an error (or `Pending`), never `Reserved`.
/// - Nonces are 128 random bits chosen by the layer, unique across keys.
///
/// # When a completion never finishes
///
/// If the completion future is dropped while the app runs (client gone and the server
/// cancels, a timeout layer, a crash), neither `mark_applied` nor `release` is called: the
/// app may or may not have applied the change. The reservation then stays pending until
/// `expires_at` (the token's expiry plus the clock skew); every reload meanwhile answers
/// "still being applied, or its result is unknown" (`409`), and after that the token itself
/// has expired (`410`). The change is never retried into a double apply, and the link never
/// stays blocked past the token's life.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_amp_session::{MemoryReplayGuard, ReplayGuard, Reservation};
///
/// # futures_util::future::FutureExt::now_or_never(async {
/// let guard = MemoryReplayGuard::new(1000);
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let nonce = [1u8; 16];
/// assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Reserved));
/// assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Pending));
/// // The app refused the change: give the nonce back, so a reload retries.
/// guard.release(&nonce).await.unwrap();
/// assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Reserved));
/// // The app applied it: a reload is redirected, never applied again.
/// guard.mark_applied(&nonce, expires).await.unwrap();
/// assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Applied));
/// # }).unwrap();
/// ```
pub trait ReplayGuard: fmt::Debug + Send + Sync + 'static {
    /// Atomically: absent → now pending, answers [`Reservation::Reserved`]; else answers the
    /// state held. The nonce is kept at least until `expires_at`.
    fn reserve<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Reservation>;

    /// Pending → applied, kept until `expires_at`.
    fn mark_applied<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, ()>;

    /// Pending → absent, so the link can be retried. An applied nonce stays applied.
    fn release<'a>(&'a self, nonce: &'a [u8; 16]) -> ReplayFuture<'a, ()>;

    /// How many nonces the guard holds now, if it can tell cheaply and without waiting (the
    /// `amp_session_replay_guard_nonces` gauge of the `metrics` feature). Default: `None`.
    fn occupancy(&self) -> Option<u64> {
        None
    }

    /// Read-only: the state held for `nonce` (`Some(Applied)`, `Some(Pending)`), or `None`
    /// when the guard holds nothing for it. Changes nothing. `expires_at` is the same value
    /// `reserve` gets for this nonce (a guard may group what it remembers by expiry).
    ///
    /// The layer asks before it shows the confirmation page, so that a link already
    /// applied is not offered again. Only [`reserve`](Self::reserve) decides whether a
    /// change may be applied; this answer is advice for what to show.
    ///
    /// The default answers `None` (the guard cannot tell without changing anything): the
    /// confirmation page is then shown and its POST's `reserve` decides, as before this
    /// method existed. An error answers like one from `reserve` (`Full`: the link cannot
    /// be used; `Unavailable`: try later).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_amp_session::{MemoryReplayGuard, ReplayGuard, Reservation};
    ///
    /// # futures_util::future::FutureExt::now_or_never(async {
    /// let guard = MemoryReplayGuard::new(10);
    /// let expires = SystemTime::now() + Duration::from_secs(60);
    /// assert_eq!(guard.state(&[1; 16], expires).await, Ok(None));
    /// guard.mark_applied(&[1; 16], expires).await.unwrap();
    /// assert_eq!(guard.state(&[1; 16], expires).await, Ok(Some(Reservation::Applied)));
    /// # }).unwrap();
    /// ```
    fn state<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Option<Reservation>> {
        let _ = (nonce, expires_at);
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// A shared guard, e.g. one [`MemoryReplayGuard`] behind several layers in one process.
impl<G: ReplayGuard + ?Sized> ReplayGuard for Arc<G> {
    fn reserve<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Reservation> {
        (**self).reserve(nonce, expires_at)
    }
    fn mark_applied<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, ()> {
        (**self).mark_applied(nonce, expires_at)
    }
    fn release<'a>(&'a self, nonce: &'a [u8; 16]) -> ReplayFuture<'a, ()> {
        (**self).release(nonce)
    }
    fn occupancy(&self) -> Option<u64> {
        (**self).occupancy()
    }
    fn state<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Option<Reservation>> {
        (**self).state(nonce, expires_at)
    }
}

/// How many inserts pass between two looks at the clock for the periodic sweep.
const CLOCK_EVERY: u32 = 1024;
/// How often (seconds) expired nonces are swept when the guard is not full.
const SWEEP_EVERY: u32 = 60;

/// The in-memory replay guard, for a single origin instance.
///
/// # Memory and capacity
///
/// Each nonce takes one 20-byte entry (the 16-byte nonce and a `u32` holding the expiry
/// second and the state) in a hash table of 21-byte slots (entry and control byte), at most
/// 7/8 full. Measured with a counting allocator: 24.0 bytes per nonce at the default
/// capacity, 27.5 at 100 000, 44.0 at 1 000 000 (just after the table doubled). The default
/// capacity, [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) = 1 835 008 nonces, exactly fills
/// one table of 2^21 slots: **44 MB** at most, allocated only as nonces arrive.
///
/// Expiries are kept in whole seconds from the guard's creation: a nonce that expired
/// before the guard was created (a layer [`clock`](crate::ConfigBuilder::clock) set in the
/// past) is refused as [`ReplayGuardError::Full`].
///
/// # Flooding
///
/// Anyone can mint tokens and complete them, so a flood can fill any bounded guard: one
/// core of the development machine mints and completes about 92 000 handoffs per
/// CPU-second through the layer (release build), and a shopper on the confirmation page
/// takes seconds to minutes before the link is used. So the guard forgets to make room,
/// and remembers compactly what it forgot:
///
/// - When full, it first drops expired nonces, then **evicts the nonces that expire first**
///   (about 1/16 of the capacity at a time). Each evicted nonce goes into a Bloom filter of
///   the nonces evicted with the same expiry second, at 10 bits per nonce (7 probes).
///   A filter is kept until its second has passed, when its tokens can no longer be opened.
/// - A nonce the guard does not hold is looked up in the filters of its expiry second only
///   (the token carries its expiry under the MAC, so a replay comes with the same one).
///   Found → it may have been used: refused with [`ReplayGuardError::Full`] (the layer
///   answers `410`, "send the form again"), never `Reserved`. A Bloom filter has no false
///   negatives, so **a replay of an evicted nonce is always refused**.
/// - A link that was never used (a shopper still reading the confirmation page, however
///   long) is refused only when its probes all hit by chance: **at most the filter's
///   false-positive rate, about 0.8 %** (measured 0.8 % in `tests/flood.rs`), and only
///   while a flood evicts nonces of its expiry second. The time between mint and
///   confirmation no longer matters.
/// - The filters take about 1.25 bytes per evicted nonce (measured with their bookkeeping
///   in `tests/flood.rs`), so remembering a flood at one core's full rate for the default
///   token life of 150 s (13.8 million nonces) takes about 17 MB. They are bounded at 16
///   bytes per unit of capacity (about 29 MB at the default capacity, a flood of 1.7 cores
///   sustained over a token's life): past that, the filters of the soonest seconds are
///   dropped and every nonce expiring at or before them is refused with `Full` (the old
///   rule: refused, never accepted).
/// - Making room costs one pass over the table (measured: 25 ms of CPU at the default
///   capacity, on a busy machine), at most once per 1/16 of the capacity inserted.
///
/// Put a rate limiter in front of the handoff path as well (the README shows
/// `tower_governor`); with several origin instances use a shared guard
/// (`RedisReplayGuard`).
///
/// # Cost
///
/// One mutex-guarded lookup in a table hashed by the nonce itself (nonces are random; the
/// hash is seeded per guard), no clock read per call (the clock is read once every 1024
/// inserts), and no allocation for the answer. Measured on the development machine while
/// it was busy (load 17 on 2 cores, CPU time, table in cache): `reserve` of a held nonce
/// 64 ns, `reserve` + `release` of a new one 120 ns, against 54–65 ns for `get` and
/// 94–102 ns for `insert` + `remove` on a plain `Mutex<HashMap>` in the same run. No lock
/// is held across an await: every method is ready when first polled.
///
/// ```
/// use tower_amp_session::{AmpSessionLayer, Keyring, MemoryReplayGuard};
///
/// let layer = AmpSessionLayer::builder()
///     .publisher_origin("https://shop.example")
///     .keyring(Keyring::builder().signing("k1", [7u8; 32]))
///     .replay_guard(MemoryReplayGuard::new(100_000))
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
pub struct MemoryReplayGuard {
    state: Mutex<State>,
    capacity: usize,
    clock: Clock,
    /// Unix second before which no expiry is stored (expiries are kept relative to it).
    base: u64,
    seed: u64,
}

/// The guard's clock (the layer's [`clock`](crate::ConfigBuilder::clock) when it made the guard).
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Bytes of Bloom filters allowed per unit of capacity (see "Flooding").
const EVICTED_BYTES_PER_SLOT: usize = 16;

struct State {
    map: HashMap<Key, Entry, Seeded>,
    /// Every nonce that expires at or before this relative second may have been forgotten
    /// without a trace (expired, or its filter dropped over budget): refused.
    floor: u32,
    /// The nonces evicted to make room, until they expire.
    evicted: Evicted,
    /// Relative second of the next periodic sweep.
    next_sweep: u32,
    /// Inserts until the next look at the clock.
    until_clock: u32,
}

/// The nonce as a hash key: hashed as one `u64` (both halves folded), no SipHash.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u8; 16]);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (lo, hi) = self.0.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(hi.try_into().unwrap_or_default());
        state.write_u64(lo ^ hi.rotate_left(29));
    }
}

/// Expiry (relative seconds) shifted left by one, the low bit set once applied.
#[derive(Clone, Copy)]
struct Entry(u32);

impl Entry {
    const APPLIED: u32 = 1;
    fn new(expires: u32, applied: bool) -> Self {
        Entry((expires << 1) | u32::from(applied))
    }
    fn expires(self) -> u32 {
        self.0 >> 1
    }
    fn applied(self) -> bool {
        self.0 & Self::APPLIED != 0
    }
}

#[derive(Clone, Copy)]
struct Seeded(u64);

impl BuildHasher for Seeded {
    type Hasher = Fold;
    fn build_hasher(&self) -> Fold {
        Fold(self.0)
    }
}

/// Mixes the folded nonce with the guard's seed: a multiply and a shift, not SipHash.
///
/// Why no keyed cryptographic hash: flooding a hash table with collisions needs chosen
/// keys, and nobody on the network can choose or even read a nonce. The layer draws it
/// from a CSPRNG and seals it inside the token (XChaCha20-Poly1305): a client can only
/// replay tokens the layer minted, whose nonces are uniformly random and secret, so the
/// table's buckets fill evenly whatever the client does. Only code of the app calling the
/// trait with nonces of its own could choose them; the per-guard random seed (one xor,
/// free) keeps even that from colliding predictably. std's SipHash-1-3 would cost about
/// 10 ns more per call (bench part 4, the `sip` column) for no protection gained.
struct Fold(u64);

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl MemoryReplayGuard {
    /// The default capacity: 7/8 of 2^21 nonces, the most a hash table of 2^21 slots
    /// holds, so the table never grows past 2^21 slots (about 44 MB).
    ///
    /// ```
    /// use tower_amp_session::MemoryReplayGuard;
    /// assert_eq!(MemoryReplayGuard::default().capacity(), MemoryReplayGuard::DEFAULT_CAPACITY);
    /// ```
    pub const DEFAULT_CAPACITY: usize = (1 << 21) / 8 * 7;

    /// A guard that holds at most `capacity` nonces (at least 1).
    ///
    /// ```
    /// let guard = tower_amp_session::MemoryReplayGuard::new(10_000);
    /// assert_eq!(guard.capacity(), 10_000);
    /// assert!(guard.is_empty());
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, SystemTime::now)
    }

    /// A guard that reads the time from `clock` (to sweep expired nonces and drop expired
    /// filters), for tests that simulate time. The layer's default guard uses the layer's
    /// [`clock`](crate::ConfigBuilder::clock).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let start = SystemTime::now() - Duration::from_secs(3600);
    /// let guard = tower_amp_session::MemoryReplayGuard::with_clock(1000, move || start);
    /// assert_eq!(guard.capacity(), 1000);
    /// ```
    pub fn with_clock(
        capacity: usize,
        clock: impl Fn() -> SystemTime + Send + Sync + 'static,
    ) -> Self {
        // One second back, so that every stored expiry is at least 1 (0 is the empty floor).
        let base = unix(clock()).saturating_sub(1);
        let seed = rand::random::<u64>() | 1;
        MemoryReplayGuard {
            state: Mutex::new(State {
                map: HashMap::with_hasher(Seeded(seed)),
                floor: 0,
                evicted: Evicted::new(seed.rotate_left(17) ^ rand::random::<u64>()),
                next_sweep: SWEEP_EVERY,
                until_clock: CLOCK_EVERY,
            }),
            capacity: capacity.max(1),
            clock: Arc::new(clock),
            base,
            seed,
        }
    }

    /// How many nonces it may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many nonces are held now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.map.len()).unwrap_or(0)
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many evicted nonces are remembered in Bloom filters now (see "Flooding"), for
    /// monitoring: non-zero only after the guard was full.
    ///
    /// ```
    /// assert_eq!(tower_amp_session::MemoryReplayGuard::new(10).evicted_len(), 0);
    /// ```
    pub fn evicted_len(&self) -> usize {
        self.state.lock().map(|s| s.evicted.nonces()).unwrap_or(0)
    }

    /// Bytes the Bloom filters of evicted nonces take now, with their bookkeeping.
    ///
    /// ```
    /// assert_eq!(tower_amp_session::MemoryReplayGuard::new(10).evicted_bytes(), 0);
    /// ```
    pub fn evicted_bytes(&self) -> usize {
        self.state.lock().map(|s| s.evicted.bytes()).unwrap_or(0)
    }

    /// An expiry as a relative second: 0 for anything before `base`, saturating far ahead.
    fn rel(&self, t: SystemTime) -> u32 {
        let secs = unix(t).saturating_sub(self.base);
        // 2^31 - 1 seconds is 68 years: a later expiry is kept until then.
        u32::try_from(secs).unwrap_or(u32::MAX).min(u32::MAX >> 1)
    }

    fn now_rel(&self) -> u32 {
        self.rel((self.clock)())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, ReplayGuardError> {
        // A poisoned lock means a panic elsewhere mid-update: fail closed.
        self.state
            .lock()
            .map_err(|_| ReplayGuardError::Unavailable("lock poisoned".into()))
    }

    fn do_reserve(
        &self,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<Reservation, ReplayGuardError> {
        let expires = self.rel(expires_at);
        let mut state = self.lock()?;
        match self.reserve_fast(&mut state, nonce, expires) {
            Some(r) => Ok(r),
            None => self.reserve_general(&mut state, nonce, expires),
        }
    }

    /// The usual case, where `insert` would neither sweep nor make room nor refuse: one
    /// lookup of the nonce (the entry) instead of a `get` and then an `insert`. `None`:
    /// not that case. Held equal to [`reserve_general`](Self::reserve_general) by a
    /// differential property test.
    fn reserve_fast(&self, s: &mut State, nonce: &[u8; 16], expires: u32) -> Option<Reservation> {
        if s.map.len() >= self.capacity
            || s.until_clock <= 1
            || expires <= s.floor
            || s.evicted.has_second(expires)
        {
            return None;
        }
        Some(match s.map.entry(Key(*nonce)) {
            std::collections::hash_map::Entry::Occupied(e) => held(*e.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry::new(expires, false));
                s.until_clock -= 1;
                Reservation::Reserved
            }
        })
    }

    fn reserve_general(
        &self,
        s: &mut State,
        nonce: &[u8; 16],
        expires: u32,
    ) -> Result<Reservation, ReplayGuardError> {
        if let Some(e) = s.map.get(&Key(*nonce)) {
            return Ok(held(*e));
        }
        if s.evicted.may_contain(expires, nonce) {
            // Evicted to make room (or a false positive): it may have been used.
            return Err(ReplayGuardError::Full);
        }
        self.insert(s, *nonce, Entry::new(expires, false))?;
        Ok(Reservation::Reserved)
    }

    fn do_state(
        &self,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<Option<Reservation>, ReplayGuardError> {
        let expires = self.rel(expires_at);
        let state = self.lock()?;
        if let Some(e) = state.map.get(&Key(*nonce)) {
            return Ok(Some(held(*e)));
        }
        if expires <= state.floor || state.evicted.may_contain(expires, nonce) {
            return Err(ReplayGuardError::Full);
        }
        Ok(None)
    }

    fn do_mark_applied(
        &self,
        nonce: &[u8; 16],
        expires_at: SystemTime,
    ) -> Result<(), ReplayGuardError> {
        let expires = self.rel(expires_at);
        let mut state = self.lock()?;
        match state.map.get_mut(&Key(*nonce)) {
            Some(e) => {
                *e = Entry::new(e.expires().max(expires), true);
                Ok(())
            }
            // Forgotten to make room (then `reserve` refuses it anyway), or never reserved:
            // remember it as applied if there is room for it.
            None => match self.insert(&mut state, *nonce, Entry::new(expires, true)) {
                Ok(()) | Err(ReplayGuardError::Full) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    fn do_release(&self, nonce: &[u8; 16]) -> Result<(), ReplayGuardError> {
        let mut state = self.lock()?;
        let key = Key(*nonce);
        if state.map.get(&key).is_some_and(|e| !e.applied()) {
            state.map.remove(&key);
        }
        Ok(())
    }

    /// Inserts an absent nonce, making room first when full. `Full` when the nonce expires
    /// at or before a nonce already forgotten (it may be that one).
    fn insert(&self, s: &mut State, nonce: [u8; 16], entry: Entry) -> Result<(), ReplayGuardError> {
        if entry.expires() <= s.floor {
            return Err(ReplayGuardError::Full);
        }
        s.until_clock -= 1;
        if s.until_clock == 0 {
            s.until_clock = CLOCK_EVERY;
            let now = self.now_rel();
            if now >= s.next_sweep {
                s.next_sweep = now.saturating_add(SWEEP_EVERY);
                forget_up_to(s, now.saturating_sub(1));
            }
        }
        if s.map.len() >= self.capacity {
            // Expired nonces first; then the ones that expire soonest, into the filters.
            forget_up_to(s, self.now_rel().saturating_sub(1));
            if s.map.len() >= self.capacity {
                let up_to = soonest_sixteenth(&s.map);
                tracing::warn!(
                    capacity = self.capacity,
                    "amp_session.replay_guard_full: evicting the nonces that expire first"
                );
                evict_up_to(s, up_to);
                let budget = self.capacity.saturating_mul(EVICTED_BYTES_PER_SLOT);
                while s.evicted.bytes() > budget {
                    // Over budget: the soonest second's filters go, and with them every
                    // nonce expiring at or before it is refused (never accepted).
                    match s.evicted.drop_soonest() {
                        Some(second) => s.floor = s.floor.max(second),
                        None => break,
                    }
                }
            }
            if entry.expires() <= s.floor {
                return Err(ReplayGuardError::Full);
            }
        }
        s.map.insert(Key(nonce), entry);
        Ok(())
    }
}

/// What `reserve` answers for a nonce it holds.
fn held(e: Entry) -> Reservation {
    if e.applied() {
        Reservation::Applied
    } else {
        Reservation::Pending
    }
}

/// How many held expiries are looked at to pick what to forget when full.
const SAMPLE: usize = 1024;

/// An expiry at or below which about 1/16 of the held nonces expire: the 1/16 quantile of
/// a sample (the table iterates in hash order, which is random with respect to expiry).
/// At least the sampled nonces at or below it are forgotten, so there is always room after.
fn soonest_sixteenth(map: &HashMap<Key, Entry, Seeded>) -> u32 {
    let mut sample: Vec<u32> = map.values().take(SAMPLE).map(|e| e.expires()).collect();
    if sample.is_empty() {
        return 0;
    }
    let k = (sample.len() / 16).saturating_sub(1);
    *sample.select_nth_unstable(k).1
}

/// Forgets every nonce that expires at or before `up_to` (expired ones), with the filters of
/// those seconds, and raises the floor to it.
fn forget_up_to(s: &mut State, up_to: u32) {
    if up_to > s.floor {
        s.floor = up_to;
    }
    let floor = s.floor;
    s.map.retain(|_, e| e.expires() > floor);
    s.evicted.drop_up_to(floor);
}

/// Evicts every live nonce that expires at or before `up_to` into the filters of its
/// expiry second (one new filter per second, sized for what it gets).
fn evict_up_to(s: &mut State, up_to: u32) {
    let mut by_second: std::collections::BTreeMap<u32, Vec<[u8; 16]>> = Default::default();
    s.map.retain(|k, e| {
        if e.expires() > up_to {
            return true;
        }
        by_second.entry(e.expires()).or_default().push(k.0);
        false
    });
    for (second, nonces) in by_second {
        s.evicted.add(second, &nonces);
    }
}

impl Default for MemoryReplayGuard {
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) nonces (about 44 MB when full); see the type's docs.
    fn default() -> Self {
        MemoryReplayGuard::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MemoryReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = self.seed;
        f.debug_struct("MemoryReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn reserve<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Reservation> {
        match self.do_reserve(nonce, expires_at) {
            // Zero-sized futures: boxing them does not allocate.
            Ok(Reservation::Reserved) => Box::pin(Answer::<RESERVED>),
            Ok(Reservation::Applied) => Box::pin(Answer::<APPLIED>),
            Ok(Reservation::Pending) => Box::pin(Answer::<PENDING>),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn mark_applied<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, ()> {
        done(self.do_mark_applied(nonce, expires_at))
    }

    fn release<'a>(&'a self, nonce: &'a [u8; 16]) -> ReplayFuture<'a, ()> {
        done(self.do_release(nonce))
    }
    fn occupancy(&self) -> Option<u64> {
        u64::try_from(self.len()).ok()
    }

    fn state<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Option<Reservation>> {
        Box::pin(std::future::ready(self.do_state(nonce, expires_at)))
    }
}

const RESERVED: u8 = 0;
const APPLIED: u8 = 1;
const PENDING: u8 = 2;

/// A ready answer that is a type, not a value, so that `Box::pin` of it does not allocate.
struct Answer<const R: u8>;

impl<const R: u8> Future for Answer<R> {
    type Output = Result<Reservation, ReplayGuardError>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match R {
            RESERVED => Reservation::Reserved,
            APPLIED => Reservation::Applied,
            _ => Reservation::Pending,
        }))
    }
}

struct Done;

impl Future for Done {
    type Output = Result<(), ReplayGuardError>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

fn done<'a>(r: Result<(), ReplayGuardError>) -> ReplayFuture<'a, ()> {
    match r {
        Ok(()) => Box::pin(Done),
        Err(e) => Box::pin(std::future::ready(Err(e))),
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
    use Reservation::*;

    fn block<F: Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("memory guard is ready at once")
    }

    fn n(i: u32) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&i.to_le_bytes());
        b
    }

    /// Each step: (operation, nonce, what it answers).
    #[test]
    fn three_states() {
        let g = MemoryReplayGuard::new(10);
        let exp = SystemTime::now() + Duration::from_secs(60);
        enum Op {
            Reserve(Result<Reservation, ReplayGuardError>),
            MarkApplied,
            Release,
        }
        use Op::*;
        let steps: &[(Op, u32)] = &[
            (Reserve(Ok(Reserved)), 1),
            (Reserve(Ok(Pending)), 1),
            (Reserve(Ok(Reserved)), 2),
            (Release, 1),
            (Reserve(Ok(Reserved)), 1),
            (MarkApplied, 1),
            (Reserve(Ok(Applied)), 1),
            // Release never forgets an applied nonce.
            (Release, 1),
            (Reserve(Ok(Applied)), 1),
            // Releasing an unknown nonce is harmless.
            (Release, 3),
            (Reserve(Ok(Reserved)), 3),
            // mark_applied without a reservation still records it.
            (MarkApplied, 4),
            (Reserve(Ok(Applied)), 4),
        ];
        for (i, (op, nonce)) in steps.iter().enumerate() {
            let nonce = n(*nonce);
            match op {
                Reserve(want) => assert_eq!(&block(g.reserve(&nonce, exp)), want, "step {i}"),
                MarkApplied => block(g.mark_applied(&nonce, exp)).unwrap(),
                Release => block(g.release(&nonce)).unwrap(),
            }
        }
    }

    #[test]
    fn expired_make_room_first() {
        let mut g = MemoryReplayGuard::new(2);
        // As if created a while ago, so that an expired nonce can be held.
        g.base -= 100;
        let live = SystemTime::now() + Duration::from_secs(60);
        let past = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(block(g.reserve(&n(1), past)), Ok(Reserved));
        assert_eq!(block(g.reserve(&n(2), live)), Ok(Reserved));
        assert_eq!(block(g.reserve(&n(3), live)), Ok(Reserved));
        assert_eq!(g.len(), 2);
        // The expired one is forgotten, and can never be reserved again.
        assert_eq!(block(g.reserve(&n(1), past)), Err(ReplayGuardError::Full));
        assert_eq!(block(g.reserve(&n(2), live)), Ok(Pending));
    }

    /// Full of live nonces: the ones that expire first are evicted into the filters; an
    /// evicted nonce is refused, never `Reserved`; an unseen nonce of the same expiry is
    /// reserved (but for the filter's false positives, which these few nonces do not hit).
    #[test]
    fn full_evicts_the_soonest_and_refuses_only_those() {
        let g = MemoryReplayGuard::new(128);
        let now = SystemTime::now();
        let at = |s: u64| now + Duration::from_secs(s);
        for i in 0..128 {
            assert_eq!(
                block(g.reserve(&n(i), at(100 + u64::from(i)))),
                Ok(Reserved)
            );
        }
        block(g.mark_applied(&n(127), at(227))).unwrap();
        block(g.mark_applied(&n(3), at(103))).unwrap();
        // Full: the 8 (1/16 of 128) that expire soonest are evicted to make room.
        assert_eq!(block(g.reserve(&n(1000), at(300))), Ok(Reserved));
        assert_eq!(g.len(), 121);
        assert_eq!(g.evicted_len(), 8);
        let rows: &[(u32, u64, Result<Reservation, ReplayGuardError>)] = &[
            // Evicted (pending or applied): may have been used, so refused.
            (0, 100, Err(ReplayGuardError::Full)),
            (3, 103, Err(ReplayGuardError::Full)),
            (7, 107, Err(ReplayGuardError::Full)),
            // Unknown, expiring in an evicted second or earlier: reserved (never seen).
            (5000, 107, Ok(Reserved)),
            (5001, 50, Ok(Reserved)),
            // Still held: their state.
            (8, 108, Ok(Pending)),
            (127, 227, Ok(Applied)),
            (1000, 300, Ok(Pending)),
        ];
        for (nonce, exp, want) in rows {
            assert_eq!(
                &block(g.reserve(&n(*nonce), at(*exp))),
                want,
                "nonce {nonce}"
            );
        }
        // `state` reads without changing: evicted → Full, held → its state, unseen → None.
        let states: &[(u32, u64, Result<Option<Reservation>, ReplayGuardError>)] = &[
            (3, 103, Err(ReplayGuardError::Full)),
            (127, 227, Ok(Some(Applied))),
            (8, 108, Ok(Some(Pending))),
            (6000, 108, Ok(None)),
            (6000, 108, Ok(None)),
        ];
        for (nonce, exp, want) in states {
            assert_eq!(&block(g.state(&n(*nonce), at(*exp))), want, "nonce {nonce}");
        }
    }

    /// Filling the guard again and again (a flood) never lets an evicted nonce be reserved
    /// again: every applied nonce of every round is refused or answered `Applied`.
    #[test]
    fn replays_of_evicted_nonces_are_refused_under_a_flood() {
        let g = MemoryReplayGuard::new(256);
        let now = SystemTime::now();
        let mut used = Vec::new();
        let mut false_positives = 0;
        for i in 0..20_000u32 {
            // Expiries rise with the mint time, as a flood's do; a few seconds apart.
            let exp = now + Duration::from_secs(100 + u64::from(i / 500));
            match block(g.reserve(&n(i), exp)) {
                Ok(Reserved) => {}
                // Unseen, but its probes hit a filter of its second: the false positives.
                Err(ReplayGuardError::Full) => false_positives += 1,
                r => panic!("nonce {i}: {r:?}"),
            }
            block(g.mark_applied(&n(i), exp)).unwrap();
            used.push((i, exp));
        }
        assert!(false_positives < 400, "{false_positives} of 20 000");
        // Within its budget (16 bytes per slot), the rest refused by the floor.
        assert!(g.evicted_len() > 2_000, "{}", g.evicted_len());
        for (i, exp) in used {
            let r = block(g.reserve(&n(i), exp));
            assert!(
                matches!(r, Ok(Applied) | Err(ReplayGuardError::Full)),
                "nonce {i}: {r:?}"
            );
        }
    }

    /// One step of a random run: (0 reserve | 1 mark_applied | 2 release, nonce, expiry
    /// in seconds from now, possibly past).
    type Step = (u8, u8, i8);

    /// (capacity, inserts until the first look at the clock, steps)
    fn run_like() -> impl proptest::strategy::Strategy<Value = (usize, u32, Vec<Step>)> {
        use proptest::prelude::*;
        let step = (
            prop::sample::select(vec![0u8, 0, 0, 1, 1, 2]),
            0u8..48,
            prop::sample::select(vec![-20i8, -1, 0, 1, 2, 5, 30, 60, 60, 60, 90, 120]),
        );
        (1usize..40, 1u32..40, prop::collection::vec(step, 0..300))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// A guard whose `reserve` takes the fast path when it can answers every step, and
        /// holds as many nonces, as one that always takes the general path: small
        /// capacities, so that runs fill up, forget, refuse and sweep.
        #[test]
        fn fast_reserve_agrees_with_the_general_path((capacity, clock, steps) in run_like()) {
            // One frozen clock for both: with the wall clock, a second that ticks between
            // the two guards' reads made them disagree (a flaky failure, not a bug).
            let now = SystemTime::now();
            let mut a = MemoryReplayGuard::with_clock(capacity, move || now);
            let mut b = MemoryReplayGuard::with_clock(capacity, move || now);
            // As if created a while ago (past expiries can be held); the periodic sweep
            // comes within the run.
            a.base -= 100;
            b.base = a.base;
            for g in [&a, &b] {
                let mut s = g.lock().unwrap();
                s.until_clock = clock;
                // One filter seed, so both see the same false positives.
                s.evicted = Evicted::new(1);
            }
            for (i, (op, nonce, secs)) in steps.into_iter().enumerate() {
                let nonce = n(u32::from(nonce));
                let exp = if secs < 0 {
                    now - Duration::from_secs(u64::from(secs.unsigned_abs()))
                } else {
                    now + Duration::from_secs(secs as u64)
                };
                match op {
                    0 => {
                        let fast = block(a.reserve(&nonce, exp));
                        let general = {
                            let expires = b.rel(exp);
                            let mut s = b.lock().unwrap();
                            b.reserve_general(&mut s, &nonce, expires)
                        };
                        proptest::prop_assert_eq!(fast, general, "step {}", i);
                    }
                    1 => {
                        block(a.mark_applied(&nonce, exp)).unwrap();
                        block(b.mark_applied(&nonce, exp)).unwrap();
                    }
                    _ => {
                        block(a.release(&nonce)).unwrap();
                        block(b.release(&nonce)).unwrap();
                    }
                }
                proptest::prop_assert_eq!(a.len(), b.len(), "step {}", i);
            }
        }
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(std::mem::size_of::<(Key, Entry)>(), 20);
        assert_eq!(MemoryReplayGuard::DEFAULT_CAPACITY, 1_835_008);
    }
}

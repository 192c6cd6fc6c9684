//! Parts 4 and 5 (issue 23, item 4): the replay guards as they fill and under concurrency.
//!
//! Part 4: `MemoryReplayGuard` holding 10 000 and 1 000 000 nonces (random, expiries spread
//! over the token's life as completions pass them): ns per `reserve` + `mark_applied` of a
//! fresh nonce at each size, and heap bytes per held nonce (the counting allocator's live
//! bytes), beside an "ideal floor": a bare `std::collections::HashMap<[u8; 16], u64>` (a
//! multiply-fold hasher like the guard's, no lock) doing an insert and a lookup-and-update per
//! fresh nonce at the same held counts, with the guard/floor ratio at each size, so that the
//! step at 1 000 000 (a table past the L3) reads as the memory hierarchy's or the guard's;
//! `(info)` the same floor with std's SipHash-1-3 (`RandomState`). Part 5: `RedisReplayGuard` on a `redis-server` of the bench's own, completions per
//! second at 1, 8 and 64 concurrent completions beside a bare `SET NX PX` loop on the same
//! client (its floor); skipped with a notice when `redis-server` is not installed.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use fred::prelude::{ClientLike, Expiration, KeysInterface, LuaInterface};
use fred::types::{SetOptions, Value};
use futures_util::FutureExt as _;
use tower_amp_session::{RedisReplayGuard, ReplayGuard, Reservation};

use super::*;

/// What a completion passes as `expires_at`: the token's expiry plus the clock skew (the
/// defaults: 120 s of `handoff_ttl`, 30 s of `clock_skew`).
const TTL: Duration = Duration::from_secs(120);
const SKEW: Duration = Duration::from_secs(30);

/// The expiry of a token minted a random moment within the last `TTL`.
fn held_expiry(now: SystemTime) -> SystemTime {
    now + SKEW + Duration::from_millis(rand::random_range(0..TTL.as_millis() as u64))
}

/// What a completion does with the guard: reserve, then mark applied. Every method of the
/// memory guard is ready when first polled.
fn apply(guard: &MemoryReplayGuard, nonce: &[u8; 16], expires: SystemTime) {
    let r = guard
        .reserve(nonce, expires)
        .now_or_never()
        .expect("ready at first poll")
        .expect("reserve");
    assert_eq!(r, Reservation::Reserved, "a fresh nonce");
    guard
        .mark_applied(nonce, expires)
        .now_or_never()
        .expect("ready at first poll")
        .expect("mark_applied");
}

struct Filled {
    fill: usize,
    guard: MemoryReplayGuard,
    bytes_per_nonce: f64,
    /// Fresh nonces applied since the fill (the held count is `fill` + this).
    timed: usize,
    max_held: usize,
    samples: Vec<f64>,
}

/// A guard of the default capacity holding `n` applied nonces, and its heap bytes per nonce.
fn fill(n: usize) -> (MemoryReplayGuard, f64) {
    let before = live_bytes();
    let guard = MemoryReplayGuard::new(MemoryReplayGuard::DEFAULT_CAPACITY);
    let now = SystemTime::now();
    for _ in 0..n {
        apply(&guard, &rand::random(), held_expiry(now));
    }
    assert_eq!(guard.len(), n, "no nonce evicted or swept");
    let bytes = live_bytes() - before;
    (guard, bytes as f64 / n as f64)
}

/// Hash table slots for `n` entries by hashbrown's rule (at most 7/8 full, a power of two),
/// to tell the table's load from its per-slot cost.
fn slots(n: usize) -> usize {
    (n * 8).div_ceil(7).next_power_of_two()
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The floor's hasher: the nonce folded to one `u64` and multiplied, as the guard hashes it
/// (so the floor measures the table and the memory under it, not a hash function).
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its length (a `usize`, ignored below) and then its 16 bytes.
        let mut w = [0u8; 16];
        let n = bytes.len().min(16);
        w[..n].copy_from_slice(&bytes[..n]);
        let lo = u64::from_le_bytes(w[..8].try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(w[8..].try_into().expect("8 bytes"));
        let h = (self.0 ^ lo ^ hi.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
    fn write_usize(&mut self, _: usize) {}
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The ideal floor of a completion's guard work: a bare map, no lock, no expiry, no states.
struct Floor<S> {
    fill: usize,
    map: HashMap<[u8; 16], u64, S>,
    timed: usize,
    samples: Vec<f64>,
}

impl<S: BuildHasher + Default> Floor<S> {
    fn new(fill: usize) -> Self {
        let mut map = HashMap::with_hasher(S::default());
        for _ in 0..fill {
            map.insert(rand::random(), 2);
        }
        Floor {
            fill,
            map,
            timed: 0,
            samples: Vec::new(),
        }
    }

    /// What the guard does per fresh nonce, and nothing else: insert it pending, then find it
    /// again and mark it applied.
    #[inline(never)]
    fn apply(&mut self, nonce: &[u8; 16], expires: u64) {
        let fresh = self.map.insert(*nonce, expires << 1).is_none();
        assert!(fresh, "a fresh nonce");
        match self.map.get_mut(nonce) {
            Some(v) => *v |= 1,
            None => unreachable!("just inserted"),
        }
    }

    /// One timed batch of fresh nonces (refilled first when they would pass 5 % of the fill).
    fn batch(&mut self, batches: usize, batch: usize) {
        if self.timed + batches * batch > self.fill / 20 {
            *self = Floor::new(self.fill);
        }
        for _ in 0..batches {
            let nonces: Vec<[u8; 16]> = (0..batch).map(|_| rand::random()).collect();
            let expires = black_box(1234u64);
            let t0 = Instant::now();
            for nonce in &nonces {
                self.apply(black_box(nonce), expires);
            }
            let t = t0.elapsed();
            self.samples.push(t.as_nanos() as f64 / batch as f64);
            self.timed += batch;
        }
        assert_eq!(
            self.map.len(),
            self.fill + self.timed,
            "every fresh nonce held"
        );
    }
}

type FoldFloor = Floor<BuildHasherDefault<FoldHasher>>;
type SipFloor = Floor<RandomState>;

pub fn memory(quick: bool) {
    // The targets compare the first and the last; 100 000 (a table that fits the L3 but not
    // the L2) shows where the cost steps up.
    let sizes: &[usize] = if quick {
        &[10_000, 20_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let (rounds, batches, batch) = if quick { (2, 4, 50) } else { (10, 10, 50) };
    println!();
    println!(
        "Part 4: MemoryReplayGuard as it fills (capacity {}; random 16-byte nonces, expiries now + {}–{} s):",
        thousands(MemoryReplayGuard::DEFAULT_CAPACITY),
        SKEW.as_secs(),
        (SKEW + TTL).as_secs()
    );
    let mut guards: Vec<Filled> = sizes
        .iter()
        .map(|&n| {
            let (guard, bytes_per_nonce) = fill(n);
            Filled {
                fill: n,
                guard,
                bytes_per_nonce,
                timed: 0,
                max_held: n,
                samples: Vec::new(),
            }
        })
        .collect();
    let mut floors: Vec<FoldFloor> = sizes.iter().map(|&n| Floor::new(n)).collect();
    let mut sips: Vec<SipFloor> = sizes.iter().map(|&n| Floor::new(n)).collect();
    println!(
        "  timed: reserve + mark_applied of fresh nonces, {rounds} interleaved rounds of {batches} batches of {batch}; a guard is refilled when the fresh ones would pass 5 % of its fill; load average at start: {}",
        loadavg()
    );
    for round in 0..rounds {
        let len = guards.len();
        // Each round: every size's guard, floor and SipHash floor, in a rotating order.
        for k in 0..3 * len {
            let p = (k + round) % (3 * len);
            match p % 3 {
                1 => {
                    floors[p / 3].batch(batches, batch);
                    continue;
                }
                2 => {
                    sips[p / 3].batch(batches, batch);
                    continue;
                }
                _ => {}
            }
            let g = &mut guards[p / 3];
            if g.timed + batches * batch > g.fill / 20 {
                g.guard = fill(g.fill).0;
                g.timed = 0;
            }
            for _ in 0..batches {
                let nonces: Vec<[u8; 16]> = (0..batch).map(|_| rand::random()).collect();
                let expires = SystemTime::now() + TTL + SKEW;
                let t0 = Instant::now();
                for nonce in &nonces {
                    apply(&g.guard, black_box(nonce), expires);
                }
                let t = t0.elapsed();
                g.samples.push(t.as_nanos() as f64 / batch as f64);
                g.timed += batch;
                g.max_held = g.max_held.max(g.fill + g.timed);
            }
            assert_eq!(g.guard.len(), g.fill + g.timed, "every fresh nonce held");
        }
    }
    println!(
        "  {:>14} {:>24} {:>8} {:>8} {:>12} {:>12} {:>9} {:>12} {:>11}",
        "held",
        "held while timed",
        "ns p10",
        "median",
        "bytes/nonce",
        "bytes/slot",
        "floor p10",
        "guard/floor",
        "(info) sip"
    );
    for (i, ((g, f), sip)) in guards.iter().zip(&floors).zip(&sips).enumerate() {
        let info = if i == 0 || i == guards.len() - 1 {
            ""
        } else {
            "(info) "
        };
        let (gp, fp) = (quantile(&g.samples, 0.1), quantile(&f.samples, 0.1));
        println!(
            "  {:>14} {:>24} {:>8.0} {:>8.0} {:>12.1} {:>12.1} {:>9.0} {:>11.2}x {:>11.0}",
            format!("{info}{}", thousands(g.fill)),
            format!("{}–{}", thousands(g.fill), thousands(g.max_held)),
            gp,
            median(&g.samples),
            g.bytes_per_nonce,
            g.bytes_per_nonce * g.fill as f64 / slots(g.fill) as f64,
            fp,
            gp / fp,
            quantile(&sip.samples, 0.1)
        );
    }
    println!(
        "  (floor: a bare HashMap<[u8; 16], u64> with the guard's kind of hash, no lock: insert, then get_mut and mark; sip: the same with std's SipHash-1-3; ns p10 of per-batch ns per nonce)"
    );
    let (lo, hi) = (&guards[0], &guards[guards.len() - 1]);
    let (lo_ns, hi_ns) = (quantile(&lo.samples, 0.1), quantile(&hi.samples, 0.1));
    println!(
        "  (bytes/slot: heap bytes over {} and {} table slots, hashbrown's 7/8 rule: {:.0} % and {:.0} % full)",
        thousands(slots(lo.fill)),
        thousands(slots(hi.fill)),
        100.0 * lo.fill as f64 / slots(lo.fill) as f64,
        100.0 * hi.fill as f64 / slots(hi.fill) as f64
    );
    let cache = |level: u8| {
        std::fs::read_to_string(format!(
            "/sys/devices/system/cpu/cpu0/cache/index{level}/size"
        ))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
    };
    let tables: Vec<String> = guards
        .iter()
        .map(|g| {
            format!(
                "{} at {}",
                mb(g.bytes_per_nonce * g.fill as f64),
                thousands(g.fill)
            )
        })
        .collect();
    println!(
        "  (tables: {}; this CPU's L2 {}, L3 {}: a lookup in a table past the L2 misses it, past the L3 it goes to DRAM with a TLB miss)",
        tables.join(", "),
        cache(2),
        cache(3)
    );
    let (flo, fhi) = (&floors[0], &floors[floors.len() - 1]);
    let floor_step = quantile(&fhi.samples, 0.1) / quantile(&flo.samples, 0.1);
    let guard_step = hi_ns / lo_ns;
    println!(
        "  step from {} to {}: guard {guard_step:.2}x, floor {floor_step:.2}x",
        thousands(lo.fill),
        thousands(hi.fill),
    );
    // What the guard's step would be if its own code cost the same at every size (its extra
    // over the floor at the smallest size) and only the bare map's memory cost grew.
    let (flo_ns, fhi_ns) = (quantile(&flo.samples, 0.1), quantile(&fhi.samples, 0.1));
    let (add_lo, add_hi) = (lo_ns - flo_ns, hi_ns - fhi_ns);
    let physics = (fhi_ns + add_lo) / lo_ns;
    println!(
        "  a guard whose own cost stayed {add_lo:.0} ns over the floor at every size would step {physics:.2}x: that much of the step is the memory hierarchy (a bare map past the L2 and L3, a cache and TLB miss per fresh nonce), the target ≤ 1.5x is out of its reach"
    );
    if add_hi > 1.5 * add_lo.max(1.0) {
        println!(
            "  the rest is the guard's: it adds {add_hi:.0} ns over the floor at {} against {add_lo:.0} ns at {} (not explained by the bare map's own step)",
            thousands(hi.fill),
            thousands(lo.fill)
        );
    }
    println!();
    println!("Issue 23 item 4 targets (this run):");
    let r = guard_step;
    target_row(
        &format!(
            "reserve + mark_applied at {} / at {}",
            thousands(hi.fill),
            thousands(lo.fill)
        ),
        format!("{r:.2}x"),
        "≤ 1.5x",
        r <= 1.5,
    );
    let r = hi.bytes_per_nonce / lo.bytes_per_nonce;
    target_row(
        &format!(
            "bytes per nonce at {} / at {}",
            thousands(hi.fill),
            thousands(lo.fill)
        ),
        format!("{r:.2}x"),
        "≤ 1.25x",
        r <= 1.25,
    );
    println!("  load average after part 4: {}", loadavg());
}

// ---------------------------------------------------------------------------------------------
// Part 5: Redis.

/// A `redis-server` on a free loopback port, without persistence (the bench times the guard
/// and the round trips, not the disk); killed on drop, also when the bench panics.
struct RedisChild {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisChild {
    fn start() -> Result<RedisChild, String> {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map_err(|_| "redis-server not found (apt-get install -y redis-server)".to_owned())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "tower-amp-session-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let server = RedisChild { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server did not listen on {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One completion's guard work per loop: reserve a fresh nonce, then mark it applied.
async fn guard_loop(guard: &RedisReplayGuard, deadline: Instant, done: &Cell<u64>) {
    while Instant::now() < deadline {
        let nonce: [u8; 16] = rand::random();
        let expires = SystemTime::now() + TTL + SKEW;
        let r = guard.reserve(&nonce, expires).await.expect("reserve");
        assert_eq!(r, Reservation::Reserved, "a fresh nonce");
        guard
            .mark_applied(&nonce, expires)
            .await
            .expect("mark_applied");
        done.set(done.get() + 1);
    }
}

/// The floor: one bare `SET key val NX PX 60000` of a fresh key per loop.
async fn bare_loop(client: &fred::prelude::Client, deadline: Instant, done: &Cell<u64>) {
    while Instant::now() < deadline {
        let key = format!("bench:bare:{:032x}", rand::random::<u128>());
        let v: Value = client
            .set(
                key,
                "a",
                Some(Expiration::PX(60_000)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .expect("SET NX");
        assert!(v.is_ok(), "a fresh key is set: {v:?}");
        done.set(done.get() + 1);
    }
}

/// The reserve script of src/replay_redis.rs, copied: the guard's two commands sent on the
/// bare client (no per-command options, no timeout wrapper), to tell Redis' share of the
/// guard's cost from the guard's own.
const RESERVE: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then \
return 'R' end return redis.call('GET', KEYS[1]) or ''";

async fn same_loop(client: &fred::prelude::Client, deadline: Instant, done: &Cell<u64>) {
    while Instant::now() < deadline {
        let key = format!("bench:same:{:032x}", rand::random::<u128>());
        let mark = format!("p:{:016x}:{:016x}", 7u64, rand::random::<u64>());
        let expires = SystemTime::now() + TTL + SKEW;
        let pxat = expires
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
        let args = vec![Value::from(mark.as_str()), Value::from(pxat)];
        let v: Value = client
            .eval(RESERVE, key.as_str(), args)
            .await
            .expect("EVAL");
        assert_eq!(v.as_str().as_deref(), Some("R"), "a fresh key is reserved");
        let v: Value = client
            .set(key, "a", Some(Expiration::PXAT(pxat)), None, false)
            .await
            .expect("SET");
        assert!(v.is_ok(), "SET: {v:?}");
        done.set(done.get() + 1);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// `RedisReplayGuard::reserve` + `mark_applied`.
    Guard,
    /// The same two commands on the bare client.
    Same,
    /// One `SET NX PX`.
    Bare,
}

const KINDS: [Kind; 3] = [Kind::Guard, Kind::Same, Kind::Bare];

/// Loops per second of `conc` concurrent loops for `dur`.
async fn rate(guard: &RedisReplayGuard, kind: Kind, conc: usize, dur: Duration) -> f64 {
    let done = Cell::new(0);
    let t0 = Instant::now();
    let deadline = t0 + dur;
    let client = guard.client();
    futures_util::future::join_all((0..conc).map(|_| {
        let done = &done;
        async move {
            match kind {
                Kind::Guard => guard_loop(guard, deadline, done).await,
                Kind::Same => same_loop(client, deadline, done).await,
                Kind::Bare => bare_loop(client, deadline, done).await,
            }
        }
    }))
    .await;
    done.get() as f64 / t0.elapsed().as_secs_f64()
}

pub fn redis(quick: bool) {
    println!();
    println!("Part 5: RedisReplayGuard (fred, one connection), completions per second:");
    let server = match RedisChild::start() {
        Ok(s) => s,
        Err(why) => {
            println!("  NOTICE: {why}: part 5 skipped");
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (rounds, dur) = if quick {
        (1, Duration::from_millis(50))
    } else {
        (5, Duration::from_millis(300))
    };
    let concs = [1usize, 8, 64];
    rt.block_on(async {
        let url = format!("redis://127.0.0.1:{}", server.port);
        let guard = match RedisReplayGuard::connect(&url).await {
            Ok(g) => g.prefix("bench:nonce"),
            Err(e) => {
                println!("  NOTICE: {e}: part 5 skipped");
                return;
            }
        };
        // Before timing: the guard's three states, and SET NX refusing a key it holds.
        let nonce: [u8; 16] = rand::random();
        let expires = SystemTime::now() + TTL + SKEW;
        assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Reserved));
        assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Pending));
        guard.mark_applied(&nonce, expires).await.expect("mark_applied");
        assert_eq!(guard.reserve(&nonce, expires).await, Ok(Reservation::Applied));
        let client = guard.client();
        for expect_set in [true, false] {
            let v: Value = client
                .set("bench:check", "a", Some(Expiration::PX(60_000)), Some(SetOptions::NX), false)
                .await
                .expect("SET NX");
            assert_eq!(v.is_ok(), expect_set, "SET NX: {v:?}");
        }
        println!(
            "  redis-server on 127.0.0.1:{} (no persistence, not pinned); current-thread tokio runtime; {rounds} interleaved rounds of {} ms per point; load average at start: {}",
            server.port,
            dur.as_millis(),
            loadavg()
        );
        for kind in KINDS {
            rate(&guard, kind, 8, dur / 2).await;
        }
        // [concurrency][kind] per round.
        let mut got = vec![[Vec::new(), Vec::new(), Vec::new()]; concs.len()];
        for round in 0..rounds {
            let points = concs.len() * KINDS.len();
            for k in 0..points {
                let p = (k + round) % points;
                let (c, kind) = (p / KINDS.len(), p % KINDS.len());
                got[c][kind].push(rate(&guard, KINDS[kind], concs[c], dur).await);
            }
        }
        println!(
            "  {:>10} {:>15} {:>14} {:>11} {:>13} {:>18}",
            "concurrent", "guard compl./s", "bare SET NX/s", "guard/bare", "same 2 cmds/s", "(info) guard/same"
        );
        for (c, [g, s, b]) in concs.iter().zip(&got) {
            let per_round = |x: &[f64], y: &[f64]| -> f64 {
                median(&x.iter().zip(y).map(|(x, y)| x / y).collect::<Vec<_>>())
            };
            println!(
                "  {:>10} {:>15.0} {:>14.0} {:>11.3} {:>13.0} {:>18.3}",
                c,
                median(g),
                median(b),
                per_round(g, b),
                median(s),
                per_round(g, s)
            );
        }
        println!(
            "  (medians of rounds; ratios: median of per-round ratios. A completion is 2 commands, an EVAL (SET NX PXAT, else GET) and a SET PXAT, against 1 for the floor; \"same 2 cmds\": those two on the bare client, without the guard)"
        );
        let _ = client.quit().await;
    });
    drop(server);
    println!("  load average after part 5: {}", loadavg());
}

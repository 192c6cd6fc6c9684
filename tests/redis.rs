//! `RedisReplayGuard` against a real `redis-server` that each test starts on its own loopback
//! port. Without `redis-server` on PATH the Redis tests print a notice and pass, unless
//! `CI=true`, where they fail.
//!
//! Faults (section e): Redis killed between reserve and commit, a reply lost with its
//! connection, a reply late past the timeout. In each: the app is never applied twice
//! (counted), the shopper is always told (status and page text), and the guard recovers by
//! itself (a new link completes, no restart of the layer).

mod common;
#[path = "support/ports.rs"]
#[allow(dead_code)]
mod ports;

use std::convert::Infallible;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use fred::prelude::{Client, ClientLike, KeysInterface};
use fred::types::{ClusterHash, CustomCommand};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tower_amp_session::{AmpSessionLayer, KeyError, Keyring, RedisReplayGuard, RequestBody};

// ---------------------------------------------------------------------------------------------
// The server

/// A `redis-server` child on a fixed loopback port; killed on drop, also when a test panics.
struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// With an append-only file fsynced on every write: a killed server keeps its marks.
    persistent: bool,
}

impl RedisServer {
    /// Starts a server on a free port, or `None` (after a notice) when `redis-server` is not
    /// installed. With `CI=true` a missing server is a failure.
    fn start() -> Option<RedisServer> {
        RedisServer::start_with(false)
    }

    /// Like [`start`](Self::start); `persistent` keeps the data across a kill (AOF, fsync
    /// always), as production needs for single use across a restart.
    fn start_with(persistent: bool) -> Option<RedisServer> {
        match Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("redis-server not found on PATH, and CI=true: the Redis tests must run");
                }
                // Straight to stderr: libtest would capture `eprintln!` of a passing test.
                static NOTICE: std::sync::Once = std::sync::Once::new();
                NOTICE.call_once(|| {
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        b"redis tests skipped: redis-server not found\n",
                    );
                });
                return None;
            }
            Err(e) => panic!("cannot run redis-server: {e}"),
        }
        let port = ports::free_port();
        let mut server = RedisServer {
            port,
            child: None,
            persistent,
        };
        server.restart();
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let dir = std::env::temp_dir().join(format!("amp-redis-{}", self.port));
        std::fs::create_dir_all(&dir).expect("redis data dir");
        let aof = if self.persistent {
            ["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            ["--appendonly", "no", "--appendfsync", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(aof)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pauses (`STOP`) or resumes (`CONT`) the server: a server that accepts but does not answer.
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("amp-redis-{}", self.port)));
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const KEYS: &str = "k2:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=,k1:CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

/// An instance: a layer with the shared keyring and its own Redis client, plus that client.
async fn instance(
    url: &str,
    prefix: &str,
    rec: &Recorder,
    configure: impl FnOnce(tower_amp_session::ConfigBuilder) -> tower_amp_session::ConfigBuilder,
) -> (Svc, Client) {
    let guard = RedisReplayGuard::connect(url)
        .await
        .expect("connect")
        .prefix(prefix);
    let client = guard.client().clone();
    let layer: AmpSessionLayer = configure(builder())
        .keyring(Keyring::from_list(KEYS).unwrap())
        .replay_guard(guard)
        .build()
        .unwrap();
    (service(&layer, app(rec, StatusCode::OK, &[])), client)
}

/// Mints a handoff with a cookieless cache POST; returns the handoff path and query.
async fn mint(svc: &mut Svc, body: &str) -> String {
    let headers = [
        ("origin", CACHE),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let uri = "/cart/add?__amp_source_origin=https%3A%2F%2Fshop.example";
    let a = send(svc, request("POST", uri, &headers, body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").expect("AMP-Redirect-To"))
}

/// Completes a handoff as a top-level navigation.
async fn complete(svc: &mut Svc, handoff: &str) -> Answer {
    send(svc, request("GET", handoff, &NAV, "")).await
}

/// The nonce keys under `prefix` (`<prefix>:<32 hex digits>`).
async fn nonce_keys(client: &Client, prefix: &str) -> Vec<String> {
    let keys = CustomCommand::new_static("KEYS", ClusterHash::FirstKey, false);
    let mut found: Vec<String> = client
        .custom(keys, vec![format!("{prefix}:*")])
        .await
        .expect("KEYS");
    found.sort();
    for k in &found {
        let hex = k.strip_prefix(&format!("{prefix}:")).expect("prefix");
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{k}"
        );
    }
    found
}

// ---------------------------------------------------------------------------------------------
// a. Two instances share single use

#[tokio::test]
async fn token_minted_on_a_completes_on_b_exactly_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rec = Recorder::default();
    let (mut a, client) = instance(&redis.url(), "t-a", &rec, |b| b).await;
    let (mut b, _) = instance(&redis.url(), "t-a", &rec, |b| b).await;

    let handoff = mint(&mut a, "product_id=3&quantity=2").await;
    let first = complete(&mut b, &handoff).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert!(first.session_cookie().is_some());
    assert_eq!(rec.count(), 1);

    for (name, svc) in [("A", &mut a), ("B", &mut b)] {
        let again = complete(svc, &handoff).await;
        assert_eq!(
            again.status,
            StatusCode::SEE_OTHER,
            "second completion on {name}"
        );
        assert_eq!(again.header("location"), Some("https://shop.example/"));
        assert_eq!(rec.count(), 1, "not applied again on {name}");
    }

    // The other way round: minted on B, applied on A.
    let other = mint(&mut b, "product_id=4&quantity=1").await;
    assert_eq!(complete(&mut a, &other).await.status, StatusCode::SEE_OTHER);
    assert_eq!(rec.count(), 2);

    // Each mark lives as long as its token could: 120 s TTL + 30 s skew by default.
    let keys = nonce_keys(&client, "t-a").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        let pttl: i64 = client.pttl(&key).await.unwrap();
        assert!((115_000..=150_000).contains(&pttl), "PTTL {pttl}");
        let value: String = client.get(&key).await.unwrap();
        assert_eq!(value, "a", "applied");
    }
}

// ---------------------------------------------------------------------------------------------
// b. Concurrent completions

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_completions_over_two_instances_apply_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rec = Recorder::default();
    let (mut a, _) = instance(&redis.url(), "t-b", &rec, |b| b).await;
    let (b, _) = instance(&redis.url(), "t-b", &rec, |b| b).await;
    let handoff = mint(&mut a, "product_id=1&quantity=1").await;

    let start = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let mut svc = if i % 2 == 0 { a.clone() } else { b.clone() };
            let handoff = handoff.clone();
            tokio::spawn(async move { complete(&mut svc, &handoff).await.status })
        })
        .collect();
    for task in tasks {
        // Applied (303, also for those after it) or still being applied (409).
        let status = task.await.unwrap();
        assert!(
            [StatusCode::SEE_OTHER, StatusCode::CONFLICT].contains(&status),
            "{status}"
        );
    }
    eprintln!("64 concurrent completions in {:?}", start.elapsed());
    assert_eq!(rec.count(), 1, "exactly one applied");
}

// ---------------------------------------------------------------------------------------------
// c. Redis down: fail closed, then recover by itself

#[tokio::test]
async fn redis_down_answers_503_and_recovers_after_restart() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let rec = Recorder::default();
    let (mut a, _) = instance(&redis.url(), "t-c", &rec, |b| b).await;
    let (mut b, _) = instance(&redis.url(), "t-c", &rec, |b| b).await;
    let warm = mint(&mut a, "product_id=1&quantity=1").await;
    assert_eq!(complete(&mut b, &warm).await.status, StatusCode::SEE_OTHER);
    assert_eq!(rec.count(), 1);

    redis.stop();
    let handoff = mint(&mut a, "product_id=2&quantity=1").await;
    for name in ["A", "B", "A"] {
        let svc = if name == "A" { &mut a } else { &mut b };
        let start = Instant::now();
        let res = complete(svc, &handoff).await;
        let took = start.elapsed();
        assert_eq!(
            res.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{name}: {}",
            res.body
        );
        assert!(
            res.body.contains("nothing was done; please try again"),
            "{}",
            res.body
        );
        // Bounded, not a speed check: the default timeout is 500 ms; a busy CI machine may
        // fire timers late, so only "never hangs" is asserted.
        assert!(took < Duration::from_secs(3), "{name} took {took:?}");
        eprintln!("503 on {name} in {took:?}");
    }
    assert_eq!(rec.count(), 1, "nothing applied while Redis is down");

    redis.restart();
    let start = Instant::now();
    for (name, svc) in [("A", &mut a), ("B", &mut b)] {
        // Fresh tokens each round: a mark is only ever tried once per token here.
        loop {
            let h = mint(svc, "product_id=5&quantity=1").await;
            let res = complete(svc, &h).await;
            if res.status == StatusCode::SEE_OTHER {
                break;
            }
            assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{name} did not recover"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("{name} recovered {:?} after the restart", start.elapsed());
    }
    assert_eq!(rec.count(), 3);
    // The token refused while Redis was down: if none of its reserves reached Redis, it
    // applies now, once; a reserve caught between the drop and its detection may have been
    // written after the reconnect (it timed out for the shopper), and then the link is
    // "unknown" (409). Either way, never applied twice.
    let first = complete(&mut b, &handoff).await;
    let again = complete(&mut a, &handoff).await;
    match first.status {
        StatusCode::SEE_OTHER => {
            assert_eq!(again.status, StatusCode::SEE_OTHER);
            assert_eq!(rec.count(), 4);
        }
        StatusCode::CONFLICT => {
            assert!(first.body.contains("result is unknown"), "{}", first.body);
            assert_eq!(again.status, StatusCode::CONFLICT);
            assert_eq!(rec.count(), 3);
        }
        other => panic!("{other}: {}", first.body),
    }
}

/// A server that stops answering: each check gives up after the configured timeout.
#[tokio::test]
async fn slow_redis_times_out_with_503_then_recovers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rec = Recorder::default();
    let guard = RedisReplayGuard::connect(&redis.url())
        .await
        .unwrap()
        .timeout(Duration::from_millis(200));
    let layer = builder().replay_guard(guard).build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));

    redis.signal("-STOP");
    let h = mint(&mut svc, "product_id=1&quantity=1").await;
    let start = Instant::now();
    let res = complete(&mut svc, &h).await;
    let took = start.elapsed();
    redis.signal("-CONT");
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert!(
        // It waited for the 200 ms timeout, and it did not hang (late timers allowed).
        took >= Duration::from_millis(190) && took < Duration::from_secs(3),
        "{took:?}"
    );
    eprintln!("503 from a paused Redis in {took:?}");
    assert_eq!(rec.count(), 0);

    let start = Instant::now();
    loop {
        let h = mint(&mut svc, "product_id=2&quantity=1").await;
        if complete(&mut svc, &h).await.status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rec.count(), 1);
}

/// `connect` reports an unreachable server; `connect_lazy` starts anyway and works once
/// Redis is up.
#[tokio::test]
async fn initially_down_connect_errors_and_connect_lazy_waits() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    redis.stop();

    let start = Instant::now();
    let err = RedisReplayGuard::connect(&redis.url()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "could not connect to Redis at redis://127.0.0.1:{}",
            redis.port
        )),
        "{msg}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let bad = RedisReplayGuard::connect("http://user:hunter2@x")
        .await
        .unwrap_err();
    assert!(!bad.to_string().contains("hunter2"), "{bad}");

    let rec = Recorder::default();
    let guard = RedisReplayGuard::connect_lazy(&redis.url()).await.unwrap();
    assert!(format!("{guard:?}").starts_with("RedisReplayGuard"));
    let layer = builder().replay_guard(guard).build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let h = mint(&mut svc, "product_id=1&quantity=1").await;
    assert_eq!(
        complete(&mut svc, &h).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    redis.restart();
    let start = Instant::now();
    loop {
        let h = mint(&mut svc, "product_id=1&quantity=1").await;
        if complete(&mut svc, &h).await.status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rec.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// d. Nonces expire with their tokens

#[tokio::test]
async fn nonce_keys_expire_with_the_token() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rec = Recorder::default();
    let (mut a, client) = instance(&redis.url(), "t-d", &rec, |b| {
        b.handoff_ttl(Duration::from_secs(1))
            .clock_skew(Duration::ZERO)
    })
    .await;
    // Tokens count whole seconds: start just after a second begins so that a 1 s token is
    // still valid when completed a few milliseconds later.
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1010 - ms))).await;

    let handoff = mint(&mut a, "product_id=1&quantity=1").await;
    assert_eq!(
        complete(&mut a, &handoff).await.status,
        StatusCode::SEE_OTHER
    );
    let key = nonce_keys(&client, "t-d").await.pop().expect("one key");
    let pttl: i64 = client.pttl(&key).await.unwrap();
    assert!(
        pttl > 0 && pttl <= 1000,
        "PTTL {pttl} within handoff_ttl + clock_skew"
    );

    let start = Instant::now();
    while client.exists::<i64, _>(&key).await.unwrap() == 1 {
        assert!(start.elapsed() < Duration::from_secs(3), "key still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("nonce key gone {:?} after completion", start.elapsed());
    // Gone from Redis, but the token itself has expired too: refused, not applied again.
    assert_eq!(complete(&mut a, &handoff).await.status, StatusCode::GONE);
    assert_eq!(rec.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// e. Faults between the guard's steps

/// An app that waits at a gate: each call is announced on `entered` and proceeds when `go`
/// has a permit. Counts the changes it applied.
#[derive(Clone)]
struct Gated {
    applied: Arc<AtomicUsize>,
    entered: Arc<Semaphore>,
    go: Arc<Semaphore>,
}

impl Default for Gated {
    fn default() -> Self {
        Gated {
            applied: Arc::default(),
            entered: Arc::new(Semaphore::new(0)),
            go: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Gated {
    fn open() -> Self {
        let g = Gated::default();
        g.go.add_permits(1000);
        g
    }
    fn applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }
    fn app(&self) -> App {
        let me = self.clone();
        tower::util::BoxCloneService::new(tower::service_fn(
            move |req: Request<RequestBody<Full<Bytes>>>| {
                let me = me.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    me.entered.add_permits(1);
                    me.go.acquire().await.expect("gate").forget();
                    me.applied.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                }
            },
        ))
    }
}

const PASS: u8 = 0;
/// The next reply from Redis is lost with its connection (both sides closed).
const CUT: u8 = 1;
/// Replies from Redis are held for `LATE_MS` before they are passed on.
const LATE: u8 = 2;
const LATE_MS: u64 = 700;

/// A TCP proxy on loopback in front of Redis whose replies can be cut off or delayed.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
}

impl Proxy {
    async fn start(redis_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let m = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let m = m.clone();
                tokio::spawn(async move {
                    let Ok(server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                    else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        match m.load(Ordering::SeqCst) {
                            CUT => break,
                            LATE => tokio::time::sleep(Duration::from_millis(LATE_MS)).await,
                            _ => {}
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Dropping every half closes both connections.
                    up.abort();
                });
            }
        });
        Proxy { port, mode }
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

const PENDING_TEXT: &str = "still being applied, or its result is unknown";
const DOWN_TEXT: &str = "nothing was done; please try again";

/// Asserts a Redis-down answer: 503 with Retry-After, the page says nothing was done.
fn assert_down(res: &Answer, what: &str) {
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        res.body
    );
    assert!(res.body.contains(DOWN_TEXT), "{what}: {}", res.body);
    assert!(res.header("retry-after").is_some(), "{what}");
}

/// Completes new links until one is applied (303): the guard recovered without a restart.
async fn recovers(svc: &mut Svc, what: &str) {
    let start = Instant::now();
    loop {
        let link = mint(svc, "product_id=9&quantity=1").await;
        let res = complete(svc, &link).await;
        if res.status == StatusCode::SEE_OTHER {
            eprintln!("{what}: recovered after {:?}", start.elapsed());
            return;
        }
        assert_down(&res, what);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis is killed while the app applies the change (after `reserve`, before
/// `mark_applied`), and comes back from its append-only file.
#[tokio::test]
async fn redis_killed_between_reserve_and_commit() {
    let Some(mut redis) = RedisServer::start_with(true) else {
        return;
    };
    let app = Gated::default();
    let guard = RedisReplayGuard::connect(&redis.url())
        .await
        .unwrap()
        .prefix("t-e1");
    let layer = builder().replay_guard(guard).build().unwrap();
    let mut svc = service(&layer, app.app());
    let link = mint(&mut svc, "product_id=1&quantity=1").await;

    let (mut s, l) = (svc.clone(), link.clone());
    let first = tokio::spawn(async move { complete(&mut s, &l).await });
    app.entered.acquire().await.unwrap().forget();
    redis.stop();
    app.go.add_permits(1000);
    let first = first.await.unwrap();
    // The change was applied: the shopper is told so, although the commit failed.
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(app.applied(), 1);

    let rows: &[&str] = &["down", "back"];
    for row in rows {
        if *row == "back" {
            redis.restart();
        }
        let start = Instant::now();
        loop {
            let res = complete(&mut svc, &link).await;
            if *row == "down" || res.status == StatusCode::SERVICE_UNAVAILABLE {
                assert_down(&res, row);
                if *row == "down" {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "never reconnected"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            // Back with the reservation still pending: "unknown", never applied again.
            assert_eq!(res.status, StatusCode::CONFLICT, "{row}: {}", res.body);
            assert!(res.body.contains(PENDING_TEXT), "{}", res.body);
            break;
        }
        assert_eq!(app.applied(), 1, "{row}: never applied twice");
    }
    recovers(&mut svc, "after the kill").await;
    assert_eq!(app.applied(), 2);
}

/// The reply to `reserve` is lost with its connection: the `SET NX` ran, the guard cannot
/// know. 503 (nothing applied), then the link is "unknown" (409) until it expires, never
/// applied; new links work as soon as the client has reconnected.
#[tokio::test]
async fn lost_reserve_reply_never_applies_and_recovers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(redis.port).await;
    let app = Gated::open();
    let guard = RedisReplayGuard::connect(&proxy.url())
        .await
        .unwrap()
        .prefix("t-e2");
    let client = guard.client().clone();
    let layer = builder().replay_guard(guard).build().unwrap();
    let mut svc = service(&layer, app.app());
    let link = mint(&mut svc, "product_id=1&quantity=1").await;

    proxy.set(CUT);
    let res = complete(&mut svc, &link).await;
    proxy.set(PASS);
    assert_down(&res, "reply lost");
    assert_eq!(app.applied(), 0);

    recovers(&mut svc, "reply lost").await;
    let res = complete(&mut svc, &link).await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    assert!(res.body.contains(PENDING_TEXT), "{}", res.body);
    assert_eq!(app.applied(), 1, "only the new link was applied");
    // What Redis holds: the lost reservation (pending) and the new link (applied).
    let mut values = Vec::new();
    for key in nonce_keys(&client, "t-e2").await {
        let v: String = client.get(&key).await.unwrap();
        values.push(v.chars().next().unwrap());
    }
    values.sort();
    assert_eq!(values, ['a', 'p']);
}

/// Replies arrive late, after the timeout: for `reserve` the shopper is told 503 and the
/// link becomes "unknown" (409); for `mark_applied` the change was applied (303) and the
/// late commit still lands, so a reload redirects. Never applied twice.
#[tokio::test]
async fn late_replies_never_apply_twice() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(redis.port).await;
    let app = Gated::default();
    let guard = RedisReplayGuard::connect(&proxy.url())
        .await
        .unwrap()
        .prefix("t-e3")
        .timeout(Duration::from_millis(200));
    let layer = builder().replay_guard(guard).build().unwrap();
    let mut svc = service(&layer, app.app());

    // Late reply to reserve.
    let link = mint(&mut svc, "product_id=1&quantity=1").await;
    proxy.set(LATE);
    let res = complete(&mut svc, &link).await;
    proxy.set(PASS);
    assert_down(&res, "reserve late");
    assert_eq!(app.applied(), 0);
    app.go.add_permits(1);
    recovers(&mut svc, "reserve late").await;
    let res = complete(&mut svc, &link).await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    assert!(res.body.contains(PENDING_TEXT));
    assert_eq!(app.applied(), 1);

    // Late reply to mark_applied: the app is held until the replies are slowed down.
    let link = mint(&mut svc, "product_id=2&quantity=1").await;
    let (mut s, l) = (svc.clone(), link.clone());
    let first = tokio::spawn(async move { complete(&mut s, &l).await });
    app.entered.acquire().await.unwrap().forget();
    app.entered.acquire().await.unwrap().forget();
    proxy.set(LATE);
    app.go.add_permits(1);
    let first = first.await.unwrap();
    proxy.set(PASS);
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(app.applied(), 2);
    let start = Instant::now();
    loop {
        let res = complete(&mut svc, &link).await;
        if res.status == StatusCode::SEE_OTHER {
            break;
        }
        assert_down(&res, "commit late");
        assert!(start.elapsed() < Duration::from_secs(15), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.applied(), 2, "the reload was redirected, not applied");
    app.go.add_permits(1000);
    recovers(&mut svc, "commit late").await;
    assert_eq!(app.applied(), 3);
}

// ---------------------------------------------------------------------------------------------
// Keyring::from_env (no server needed)

#[test]
fn keyring_from_env() {
    // Unique names: other tests in this process never read them.
    let set = |name: &str, value: &str| std::env::set_var(name, value);

    set("TAS_KEYS_OK", KEYS);
    let keyring = Keyring::from_env("TAS_KEYS_OK").unwrap();
    assert_eq!(keyring.signing_key_id(), "k2");
    assert!(format!("{keyring:?}").contains("\"k1\""));

    assert_eq!(
        Keyring::from_env("TAS_KEYS_UNSET").unwrap_err(),
        KeyError::EnvNotSet("TAS_KEYS_UNSET".into())
    );
    set("TAS_KEYS_EMPTY", "  ");
    assert_eq!(
        Keyring::from_env("TAS_KEYS_EMPTY").unwrap_err(),
        KeyError::EnvEmpty("TAS_KEYS_EMPTY".into())
    );

    let long = "a".repeat(44);
    let cases: &[(&str, String, KeyError)] = &[
        // A bare key without an id: refused without quoting it.
        (
            "TAS_KEYS_BARE",
            long.clone(),
            KeyError::MissingId { entry: 1 },
        ),
        (
            "TAS_KEYS_TRAILING",
            format!("k1:{long},"),
            KeyError::MissingId { entry: 2 },
        ),
        (
            "TAS_KEYS_B64",
            "k1:not*base64!".into(),
            KeyError::InvalidBase64("k1".into()),
        ),
        (
            "TAS_KEYS_SHORT",
            "k1:c2hvcnQ=".into(),
            KeyError::TooShort {
                id: "k1".into(),
                len: 5,
            },
        ),
        (
            "TAS_KEYS_DUP",
            format!("k1:{long},k1:{long}"),
            KeyError::DuplicateId("k1".into()),
        ),
        (
            "TAS_KEYS_ID",
            format!("k 1:{long}"),
            KeyError::InvalidId("k 1".into()),
        ),
        (
            "TAS_KEYS_NOID",
            format!(":{long}"),
            KeyError::InvalidId(String::new()),
        ),
    ];
    for (name, value, want) in cases {
        set(name, value);
        let got = Keyring::from_env(name).unwrap_err();
        // from_env wraps the list's error with the variable's name (tests/config.rs has
        // the messages).
        let want = KeyError::Env {
            var: (*name).into(),
            error: Box::new(want.clone()),
        };
        assert_eq!(got, want, "{name}");
        assert!(
            !got.to_string().contains(&long),
            "{name}: key material in {got}"
        );
    }
}

//! Two instances, faults, nothing lost: a bounded soak of the deployment `src/docs/proxy.md`
//! and `src/docs/several_instances.md` describe.
//!
//! - nginx (the guide's snippet) terminates TLS and HTTP/2 and balances round robin over two
//!   shop instances, real processes (`target/<profile>/examples/shop`, killed with SIGKILL as
//!   a crash would, restarted on the same ports), sharing keys from `AMP_SESSION_KEYS` and
//!   the Redis replay guard (a persistent `redis-server` of the test's own);
//! - scripted shoppers, each on its own HTTP/2 connection, mint on the cache (a cookieless
//!   `POST /cart/add` with the cache's `Origin`, a unique `order_ref` field) and complete on
//!   the origin (`GET` of the handoff URL with the cache page as `Referer` and a navigation's
//!   `Sec-Fetch-*`), some after a long pause (tokens in flight), some twice or three times at
//!   once, some with a reload afterwards; on `503`/`502` they retry as a browser's reload
//!   would;
//! - meanwhile: Redis is killed and restarted (a probe checks `503` while it is down and
//!   success after), one instance is killed and restarted, and a key rotation rolls through
//!   both instances: `k1` signs → `k1` signs, `k2` verifies → `k2` signs, `k1` verifies →
//!   `k2` alone (a probe token sealed with `k1` is then refused with `400`).
//!
//! The shop's ledger (`--ledger`, one line per applied add with its `order_ref`) counts each
//! order's applications. Every order the shopper saw completed (`303`) is applied exactly
//! once; every other one was told (`400`, `409`, `410`, `502`, `503`) and applied at most
//! once, only where the status says the result is unknown (`409`, `502`); nothing hangs.
//! The counts and the completion latencies are printed.
//!
//! About 60 s; `AMP_SOAK_SECS` sets another duration. Without nginx or redis-server the test
//! prints a notice and passes, unless `CI=true`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use support::h2::{NoAnswer, H2};
use support::http::{pem_certificate, Reply};
use support::nginx::{self, Nginx, Upstreams};
use support::ports::free_ports;
use support::redis_server::RedisServer;
use support::{shop_binary, ShopProcess, CACHE_HOST, ORIGIN_HOST};

/// Concurrent scripted shoppers.
const SHOPPERS: usize = 12;
/// The shops' `--handoff-ttl`: long enough for a paused shopper to outlive a key rotation's
/// steps, short enough that some pauses outlive it.
const TTL_SECS: u64 = 20;
/// A request without an answer after this long counts as hung (none may).
const HUNG: Duration = Duration::from_secs(10);
/// How long a shopper keeps retrying a completion answered `503` or `502`.
const PATIENCE: Duration = Duration::from_secs(12);

/// Writes past libtest's capture, so the counts show in a plain `cargo test` run.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn duration() -> Duration {
    let secs = std::env::var("AMP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
    Duration::from_secs(secs.max(20))
}

fn key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

// ---------------------------------------------------------------------------------------------
// The deployment

/// nginx, Redis and two shop instances on fixed listen ports.
struct Deployment {
    // Dropped in this order: instances first, then Redis and nginx.
    instances: [Option<ShopProcess>; 2],
    listen: [(u16, u16); 2],
    nginx: Nginx,
    redis: RedisServer,
    ledger: PathBuf,
    keys: String,
}

impl Deployment {
    fn start(binary: &std::path::Path, redis: RedisServer, keys: String) -> Deployment {
        let [a_origin, a_cache, b_origin, b_cache] = free_ports::<4>();
        let listen = [(a_origin, a_cache), (b_origin, b_cache)];
        let nginx = Nginx::start(
            binary,
            &Upstreams {
                origin: vec![a_origin, b_origin],
                cache: vec![a_cache, b_cache],
            },
        );
        let ledger = std::env::temp_dir().join(format!(
            "tower-amp-session-soak-ledger-{}-{a_origin}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&ledger);
        let mut d = Deployment {
            instances: [None, None],
            listen,
            nginx,
            redis,
            ledger,
            keys,
        };
        for i in 0..2 {
            d.instances[i] = Some(d.launch(i));
        }
        d
    }

    fn launch(&self, i: usize) -> ShopProcess {
        let ttl = TTL_SECS.to_string();
        let (redis, ledger) = (self.redis.url(), self.ledger.display().to_string());
        ShopProcess::start_behind_proxy(
            (self.nginx.origin_port, self.nginx.cache_port),
            self.listen[i],
            &self.nginx.certificate.cert_pem,
            &[
                "--offline",
                "--redis",
                &redis,
                "--ledger",
                &ledger,
                "--handoff-ttl",
                &ttl,
            ],
            &[("AMP_SESSION_KEYS", &self.keys), ("RUST_LOG", "warn")],
        )
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self, i: usize) {
        self.instances[i] = None;
    }

    fn restart(&mut self, i: usize) {
        self.kill(i);
        self.instances[i] = Some(self.launch(i));
    }

    /// A rolling restart of both instances with `keys`, a short pause between the two.
    fn roll_keys(&mut self, keys: String) {
        self.keys = keys;
        self.restart(0);
        std::thread::sleep(Duration::from_secs(1));
        self.restart(1);
    }

    fn shop(&self) -> &ShopProcess {
        self.instances
            .iter()
            .flatten()
            .next()
            .expect("an instance running")
    }

    /// Applications per `order_ref`.
    fn ledger(&self) -> HashMap<String, u32> {
        let text = std::fs::read_to_string(&self.ledger).unwrap_or_default();
        let mut counts = HashMap::new();
        for line in text.lines() {
            *counts.entry(line.to_owned()).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.instances = [None, None];
        let _ = std::fs::remove_file(&self.ledger);
    }
}

// ---------------------------------------------------------------------------------------------
// A scripted shopper

/// Where a shopper sends its requests.
#[derive(Clone)]
struct Front {
    port: u16,
    authority: String,
    cache_origin: String,
    publisher: String,
    certificate: Vec<u8>,
}

impl Front {
    async fn connect(&self) -> Option<H2> {
        H2::connect(self.port, &self.authority, &self.certificate)
            .await
            .ok()
    }

    fn cache_page(&self, product: u32) -> String {
        format!(
            "{}/c/s/{}/products/{product}",
            self.cache_origin, self.authority
        )
    }
}

/// What became of one order, as its shopper saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// The mint was answered without a handoff (an instance was killed mid-request: 502).
    NotMinted(u16),
    /// A completion was answered `303`.
    Completed,
    /// No completion succeeded; the last answer's status.
    Told(u16),
    /// A request got no answer within [`HUNG`].
    Hung,
}

#[derive(Default)]
struct Tally {
    fates: Mutex<Vec<(String, Fate)>>,
    /// Round trips of completions answered `303`, and of all completion answers (ms).
    done_ms: Mutex<Vec<f64>>,
    all_ms: Mutex<Vec<f64>>,
    /// Every completion answer's status (duplicates, reloads and retries included).
    statuses: Mutex<BTreeMap<u16, u64>>,
    reloads: AtomicU64,
    duplicates: AtomicU64,
    unexpected: Mutex<Vec<String>>,
}

impl Tally {
    fn fate(&self, order: &str, fate: Fate) {
        self.fates.lock().unwrap().push((order.to_owned(), fate));
    }

    fn answer(&self, status: u16, ms: f64) {
        *self.statuses.lock().unwrap().entry(status).or_insert(0) += 1;
        self.all_ms.lock().unwrap().push(ms);
        if status == 303 {
            self.done_ms.lock().unwrap().push(ms);
        }
        if ![303, 400, 409, 410, 502, 503, 504].contains(&status) {
            self.unexpected
                .lock()
                .unwrap()
                .push(format!("a completion answered {status}"));
        }
    }
}

/// A mint: the cache page's cookieless post; `Ok(path and query of the handoff URL)`.
async fn mint(front: &Front, h2: &H2, order: &str, product: u32) -> Result<String, Option<u16>> {
    let source: String = form_urlencoded::byte_serialize(front.publisher.as_bytes()).collect();
    let body = format!(
        "product_id={product}&quantity=1&amp_return_path=%252Fproducts%252F{product}&order_ref={order}"
    );
    let req = h2
        .request("POST", &format!("/cart/add?__amp_source_origin={source}"))
        .header("origin", &front.cache_origin)
        .header("referer", format!("{}/", front.cache_origin))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    match h2.send(req, HUNG).await {
        Ok(r) if r.status == StatusCode::OK => match r.header("amp-redirect-to") {
            Some(to) => Ok(to.strip_prefix(&front.publisher).unwrap_or(to).to_owned()),
            None => Err(Some(200)),
        },
        Ok(r) => Err(Some(r.status.as_u16())),
        Err(NoAnswer::TimedOut) => Err(None),
        // The connection broke: the browser would show an error; the shopper was told.
        Err(NoAnswer::Broken(_)) => Err(Some(502)),
    }
}

/// One completion: the top-level navigation from the cache page.
async fn complete(front: &Front, h2: &H2, handoff: &str, product: u32) -> Result<Reply, NoAnswer> {
    let req = h2
        .request("GET", handoff)
        .header("referer", front.cache_page(product))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .header("sec-fetch-user", "?1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    h2.send(req, HUNG).await
}

/// A pause before completing: most shoppers follow the redirect at once; some leave the tab
/// a while (their tokens are in flight across faults); a few outlive the token.
fn think(left: Duration) -> Duration {
    let roll: f64 = rand::random();
    if roll < 0.02 && left > Duration::from_secs(TTL_SECS + 8) {
        Duration::from_millis(rand::random_range(
            TTL_SECS * 1000 + 1000..TTL_SECS * 1000 + 2500,
        ))
    } else if roll < 0.14 && left > Duration::from_secs(14) {
        Duration::from_millis(rand::random_range(3000..10_000))
    } else {
        Duration::from_millis(rand::random_range(0..150))
    }
}

/// One order, start to end.
async fn order(front: &Front, h2: &mut Option<H2>, tally: &Tally, n: u64, left: Duration) {
    let order = format!("o{n}");
    let product = (n % 12) as u32 + 1;
    if h2.as_ref().is_none_or(H2::is_closed) {
        *h2 = front.connect().await;
    }
    let Some(conn) = h2.clone() else {
        return tally.fate(&order, Fate::NotMinted(502));
    };
    let handoff = match mint(front, &conn, &order, product).await {
        Ok(h) => h,
        Err(Some(status)) => return tally.fate(&order, Fate::NotMinted(status)),
        Err(None) => return tally.fate(&order, Fate::Hung),
    };
    tokio::time::sleep(think(left)).await;

    let started = Instant::now();
    // A double (or triple) click: the same navigation at once, on the same connection.
    let at_once = if rand::random::<f64>() < 0.15 {
        tally.duplicates.fetch_add(1, Ordering::Relaxed);
        rand::random_range(2..=3)
    } else {
        1
    };
    let mut last = 0;
    let mut round = 0;
    loop {
        let tries = if round == 0 { at_once } else { 1 };
        let answers = futures_util::future::join_all((0..tries).map(|_| async {
            let sent = Instant::now();
            let answer = complete(front, &conn, &handoff, product).await;
            (answer, sent.elapsed().as_secs_f64() * 1000.0)
        }))
        .await;
        let mut statuses = Vec::new();
        for (answer, ms) in answers {
            match answer {
                Ok(reply) => {
                    tally.answer(reply.status.as_u16(), ms);
                    statuses.push(reply.status.as_u16());
                }
                Err(NoAnswer::TimedOut) => return tally.fate(&order, Fate::Hung),
                // The connection to nginx broke: as a network error in a browser.
                Err(NoAnswer::Broken(_)) => statuses.push(502),
            }
        }
        if statuses.contains(&303) {
            tally.fate(&order, Fate::Completed);
            if rand::random::<f64>() < 0.2 {
                // A reload of the landing page's redirect step: answered, never applied again.
                tally.reloads.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                match complete(front, &conn, &handoff, product).await {
                    Ok(r) => tally.answer(r.status.as_u16(), sent.elapsed().as_secs_f64() * 1000.0),
                    Err(NoAnswer::TimedOut) => tally
                        .unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{order}: a reload hung")),
                    Err(NoAnswer::Broken(_)) => {}
                }
            }
            return;
        }
        last = statuses.iter().copied().max().unwrap_or(last);
        // 400 (bad or retired key) and 410 (expired) are final; 409 (in progress, or the
        // result unknown), 502 (an instance gone mid-request) and 503 (the guard down) are
        // worth a reload a little later, as the pages say.
        let retry = statuses.iter().any(|s| [409, 502, 503, 504].contains(s));
        if !retry || started.elapsed() > PATIENCE {
            return tally.fate(&order, Fate::Told(last));
        }
        round += 1;
        let pause = if statuses.contains(&503) { 700 } else { 300 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Probes: the faults' own checks, with their own tokens

/// Mints a probe order on a fresh connection; its handoff path.
async fn probe_mint(front: &Front, name: &str) -> String {
    let h2 = front.connect().await.expect("a probe connection");
    mint(front, &h2, name, 1)
        .await
        .unwrap_or_else(|e| panic!("probe {name}: mint answered {e:?}"))
}

async fn probe_complete(front: &Front, handoff: &str) -> Reply {
    let h2 = front.connect().await.expect("a probe connection");
    complete(front, &h2, handoff, 1)
        .await
        .unwrap_or_else(|e| panic!("probe completion: {e:?}"))
}

/// Completes until `303`, retrying `503`, `502` and `409` as a shopper's reloads; how long it
/// took.
async fn probe_until_done(front: &Front, handoff: &str) -> Duration {
    let start = Instant::now();
    loop {
        let r = probe_complete(front, handoff).await;
        if r.status == StatusCode::SEE_OTHER {
            return start.elapsed();
        }
        assert!(
            // 409: the guard has not yet cleared the mark its timed-out reserve left.
            [409, 502, 503].contains(&r.status.as_u16())
                && start.elapsed() < Duration::from_secs(20),
            "the probe did not recover: {} after {:?}: {}",
            r.status,
            start.elapsed(),
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The soak

#[test]
fn two_instances_faults_nothing_lost() {
    let Some(nginx_binary) = nginx::find() else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Built before the clock starts (a no-op when `cargo test` built it already).
    shop_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let soak = duration();
    let (k1, k2) = (key(), key());
    let deployment = Deployment::start(&nginx_binary, redis, format!("k1:{k1}"));
    let shop = deployment.shop();
    let front = Front {
        port: deployment.nginx.origin_port,
        authority: format!("{ORIGIN_HOST}:{}", deployment.nginx.origin_port),
        cache_origin: format!("https://{CACHE_HOST}:{}", deployment.nginx.cache_port),
        publisher: shop.origin_url(),
        certificate: pem_certificate(&deployment.nginx.certificate.cert_pem).unwrap(),
    };
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + soak;
    let deployment = Arc::new(Mutex::new(deployment));
    let log = |what: &str| {
        note(&format!(
            "soak: {:>5.1} s  {what}",
            started.elapsed().as_secs_f64()
        ));
    };

    runtime.block_on(async {
        let mut shoppers = Vec::new();
        for _ in 0..SHOPPERS {
            let (front, tally, next) = (front.clone(), tally.clone(), next.clone());
            shoppers.push(tokio::spawn(async move {
                let mut h2 = None;
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let left = deadline.saturating_duration_since(Instant::now());
                    order(&front, &mut h2, &tally, n, left).await;
                    tokio::time::sleep(Duration::from_millis(rand::random_range(20..200))).await;
                }
            }));
        }

        // The faults, one after another, each checked by its own probe.
        let at = |fraction: f64| started + soak.mul_f64(fraction);
        let until = |t: Instant| tokio::time::sleep_until(t.into());
        let blocking = |d: Arc<Mutex<Deployment>>, f: fn(&mut Deployment)| {
            tokio::task::spawn_blocking(move || f(&mut d.lock().unwrap()))
        };

        until(at(0.15)).await;
        log("Redis killed");
        blocking(deployment.clone(), |d| d.redis.kill())
            .await
            .unwrap();
        let redis_probe = probe_mint(&front, "probe-redis").await;
        let down = probe_complete(&front, &redis_probe).await;
        assert_eq!(
            down.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            down.body
        );
        assert!(down.header("retry-after").is_some(), "503 with Retry-After");
        log("probe: a completion while Redis is down is answered 503 with Retry-After");
        tokio::time::sleep(Duration::from_secs(2)).await;
        blocking(deployment.clone(), |d| d.redis.restart())
            .await
            .unwrap();
        log("Redis restarted (same data: append-only file)");
        let recovered = probe_until_done(&front, &redis_probe).await;
        log(&format!(
            "probe: the same link completes {} ms after the restart",
            recovered.as_millis()
        ));

        until(at(0.35)).await;
        log("instance B killed (SIGKILL)");
        blocking(deployment.clone(), |d| d.kill(1)).await.unwrap();
        let alone = probe_mint(&front, "probe-one-instance").await;
        let r = probe_complete(&front, &alone).await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "with one instance left: {}",
            r.body
        );
        log("probe: with B down, a handoff mints and completes (nginx sends it to A)");
        tokio::time::sleep(Duration::from_secs(2)).await;
        blocking(deployment.clone(), |d| d.restart(1))
            .await
            .unwrap();
        log("instance B restarted");

        until(at(0.5)).await;
        let keys = format!("k1:{k1},k2:{k2}");
        tokio::task::spawn_blocking({
            let d = deployment.clone();
            move || d.lock().unwrap().roll_keys(keys)
        })
        .await
        .unwrap();
        log("keys rolled to k1 (signs), k2 (verifies)");

        until(at(0.6)).await;
        let sealed_with_k1 = probe_mint(&front, "probe-retired").await;
        let keys = format!("k2:{k2},k1:{k1}");
        tokio::task::spawn_blocking({
            let d = deployment.clone();
            move || d.lock().unwrap().roll_keys(keys)
        })
        .await
        .unwrap();
        log("keys rolled to k2 (signs), k1 (verifies)");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let keys = format!("k2:{k2}");
        tokio::task::spawn_blocking({
            let d = deployment.clone();
            move || d.lock().unwrap().roll_keys(keys)
        })
        .await
        .unwrap();
        log("k1 retired: keys are k2 alone");
        let retired = probe_complete(&front, &sealed_with_k1).await;
        assert_eq!(
            retired.status,
            StatusCode::BAD_REQUEST,
            "a token sealed with a retired key: {}",
            retired.body
        );
        log("probe: a link sealed with k1 is now answered 400");
        let fresh = probe_mint(&front, "probe-k2").await;
        assert_eq!(
            probe_complete(&front, &fresh).await.status,
            StatusCode::SEE_OTHER
        );
        log("probe: a link sealed with k2 completes");

        for s in shoppers {
            s.await.expect("a shopper");
        }
        log("shoppers done");
    });

    // The ledger against what the shoppers saw.
    let deployment = deployment.lock().unwrap();
    let ledger = deployment.ledger();
    let fates = tally.fates.lock().unwrap().clone();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut told: BTreeMap<u16, u64> = BTreeMap::new();
    let mut not_minted: BTreeMap<u16, u64> = BTreeMap::new();
    let mut problems = tally.unexpected.lock().unwrap().clone();
    let seen: std::collections::HashSet<&str> = fates.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(seen.len(), fates.len(), "one fate per order");
    for (order, fate) in &fates {
        let applied = ledger.get(order).copied().unwrap_or(0);
        let class = match (fate, applied) {
            (_, 2..) => "twice",
            (Fate::Hung, _) => "hung",
            (Fate::Completed, 1) => "applied exactly once",
            (Fate::Completed, _) => "lost",
            (Fate::Told(s), 0) => {
                *told.entry(*s).or_insert(0) += 1;
                "told, not applied"
            }
            // The shopper was told the result is unknown (409) or saw the instance go (502).
            (Fate::Told(s @ (409 | 502 | 504)), 1) => {
                *told.entry(*s).or_insert(0) += 1;
                "told the result is unknown, applied once"
            }
            (Fate::Told(_), _) => "told not applied, but applied",
            (Fate::NotMinted(s), 0) => {
                *not_minted.entry(*s).or_insert(0) += 1;
                "mint refused, nothing to apply"
            }
            (Fate::NotMinted(_), _) => "mint refused, but applied",
        };
        if !matches!(
            class,
            "applied exactly once"
                | "told, not applied"
                | "told the result is unknown, applied once"
                | "mint refused, nothing to apply"
        ) {
            problems.push(format!(
                "{order}: {fate:?}, applied {applied} times: {class}"
            ));
        }
        *counts.entry(class).or_insert(0) += 1;
    }
    // The probes' own orders, and nothing else, are in the ledger besides the shoppers'.
    for (order, n) in &ledger {
        if *n > 1 {
            problems.push(format!("{order} applied {n} times"));
        }
        if !order.starts_with("probe-") && !seen.contains(order.as_str()) {
            problems.push(format!("{order} applied but no shopper recorded it"));
        }
    }
    let minted = fates
        .iter()
        .filter(|(_, f)| !matches!(f, Fate::NotMinted(_)))
        .count();
    let pct = |v: &mut Vec<f64>, p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let mut done_ms = tally.done_ms.lock().unwrap().clone();
    let mut all_ms = tally.all_ms.lock().unwrap().clone();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    note(&format!(
        "soak: {:.0} s, {SHOPPERS} shoppers over HTTP/2 through nginx, 2 instances, Redis guard\n\
         \x20 orders started    {}\n\
         \x20 minted            {minted}\n\
         \x20 mint refused      {} {:?} (status: orders)\n\
         \x20 applied once      {} (completed: 303, one line in the ledger)\n\
         \x20 told              {} {:?} (last status: orders; {} of them applied, result unknown)\n\
         \x20 lost              {}\n\
         \x20 twice             {}\n\
         \x20 hung              {}\n\
         \x20 duplicates        {} orders completed 2-3 times at once; {} reloads after 303\n\
         \x20 answers           {:?} (status: completion answers, retries included)\n\
         \x20 completion 303    p50 {:.1} ms, p99 {:.1} ms ({} answers)\n\
         \x20 all completions   p50 {:.1} ms, p99 {:.1} ms ({} answers)",
        started.elapsed().as_secs_f64(),
        fates.len(),
        get("mint refused, nothing to apply"),
        not_minted,
        get("applied exactly once"),
        get("told, not applied") + get("told the result is unknown, applied once"),
        told,
        get("told the result is unknown, applied once"),
        get("lost"),
        get("twice"),
        get("hung"),
        tally.duplicates.load(Ordering::Relaxed),
        tally.reloads.load(Ordering::Relaxed),
        tally.statuses.lock().unwrap(),
        pct(&mut done_ms, 0.5),
        pct(&mut done_ms, 0.99),
        done_ms.len(),
        pct(&mut all_ms, 0.5),
        pct(&mut all_ms, 0.99),
        all_ms.len(),
    ));
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(get("applied exactly once") > 0, "no order completed at all");
}

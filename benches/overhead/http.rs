//! Part 2 of the overhead bench: loopback HTTP/1.1 with `wrk`, the servers in a child process
//! on one current-thread runtime pinned to core 0, `wrk -t1 -c32` pinned to core 1.
//!
//! Three scenarios, each in interleaved rounds (the order rotates every round), each
//! reporting the median, IQR and min–max of the per-round ratio with layer / ideal:
//!
//! * plain: the same-origin GET with the session cookie, against a bare server, the crate's
//!   layer and the ideal layer (with/without and ideal/without printed as info);
//! * mint: `mint.lua`, amp-form's urlencoded POST from the cache page without a cookie;
//! * handoff: `handoff.lua`, mints and completes each fresh link (about half of each),
//!   against the crate's layer with a replay guard sized for every round and the ideal
//!   handoff.
//!
//! The Lua scripts count every answer; anything but the expected 200 / 303 stops the bench
//! with a panic (a ratio of error pages measures nothing).

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::ideal_handoff::ideal_handoff;
use super::{
    bare, builder, ideal, layer, leak, loadavg, median, quantile, target_row, Body, Shapes,
    PUBLISHER,
};
use bytes::Bytes;
use http::{Request, Response};
use tokio::runtime::Runtime;
use tower::{Layer, Service};
use tower_amp_session::{MemoryReplayGuard, RequestBody};

type HyperBody = hyper::body::Incoming;

/// Set (to the session cookie's name) in the child process that serves.
pub const SERVE_ENV: &str = "AMP_BENCH_SERVE";

/// Replay guard of the handoff server: it holds every nonce of the run, so no round meets a
/// full guard (evictions, 410s). One core completes well under 100 000 handoffs/s over
/// HTTP; 12 runs of 2 s (warm-up included) stay far below 4 M nonces (~24 B each).
const GUARD_CAPACITY: usize = 1 << 22;

fn serve<S, RB>(rt: &Runtime, svc: S) -> SocketAddr
where
    S: Service<Request<HyperBody>, Response = Response<RB>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// The servers, in the order the child prints their addresses.
const PLAIN: usize = 0;
const LAYERED: usize = 1;
const FLOOR: usize = 2;
const HANDOFF: usize = 3;
const HANDOFF_FLOOR: usize = 4;
const SERVERS: usize = 5;

/// The child process: every server on one current-thread runtime (one core); prints their
/// addresses, serves until its stdin closes (the bench ended or died).
pub fn serve_main(cookie: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cookie = leak(cookie.to_owned());
    let ours = layer();
    let handoff = builder()
        .replay_guard(MemoryReplayGuard::new(GUARD_CAPACITY))
        .build()
        .expect("valid configuration");
    let addrs: [SocketAddr; SERVERS] = [
        serve(&rt, bare::<HyperBody>()),
        serve(&rt, ours.layer(bare::<RequestBody<HyperBody>>())),
        serve(&rt, ideal(&ours, cookie, bare::<HyperBody>())),
        serve(&rt, handoff.layer(bare::<RequestBody<HyperBody>>())),
        serve(&rt, ideal_handoff(&ours, cookie, bare::<Body>())),
    ];
    let line: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    println!("{}", line.join(" "));
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        std::process::exit(0);
    });
    rt.block_on(std::future::pending::<()>());
}

/// `prog args...`, pinned to `core` with taskset when `pin`.
fn pinned(pin: bool, core: &str, prog: &std::ffi::OsStr) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", core]).arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// The same-origin GET with the session cookie (`-H` headers, no script).
    Plain,
    /// `mint.lua`.
    Mint,
    /// `handoff.lua`: mint, then complete each fresh link.
    Handoff,
}

impl Load {
    fn script(self) -> Option<&'static str> {
        match self {
            Load::Plain => None,
            Load::Mint => Some(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/overhead/mint.lua"
            )),
            Load::Handoff => Some(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/overhead/handoff.lua"
            )),
        }
    }
}

/// What the scripts count (from their `amp-bench:` line).
#[derive(Default, Clone, Copy)]
struct Counts {
    mints: u64,
    completes: u64,
}

/// One wrk run: requests/s and the answers counted; `None` when wrk gave no result.
/// Panics on any answer other than the one the scenario expects.
fn wrk(pin: bool, addr: SocketAddr, secs: u64, load: Load, cookie: &str) -> Option<(f64, Counts)> {
    let mut cmd = pinned(pin, "1", "wrk".as_ref());
    cmd.args(["-t1", "-c32", &format!("-d{secs}s")]);
    match load.script() {
        None => {
            cmd.args(["-H", &format!("Origin: {PUBLISHER}")])
                .args(["-H", &format!("Cookie: {cookie}")])
                .args(["-H", "Accept: application/json"])
                .arg(format!("http://{addr}/cart.json"));
        }
        Some(script) => {
            cmd.args(["-s", script])
                .arg(format!("http://{addr}/"))
                .args(["--", cookie]);
        }
    }
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok());
    let Some(rps) = rps else {
        println!(
            "  wrk gave no result: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    };
    // wrk's own count covers the plain run (the scripts count more precisely).
    if let Some(n) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
    {
        panic!(
            "BUG: {} answered {} non-2xx/3xx responses to {:?}:\n{text}",
            addr,
            n.trim(),
            load.script().unwrap_or("the same-origin GET")
        );
    }
    let mut counts = Counts::default();
    if load != Load::Plain {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("amp-bench: "))
            .unwrap_or_else(|| {
                panic!(
                    "the Lua script printed no counts:\n{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let (nums, first_bad) = line.split_once(" first_bad=").unwrap_or((line, ""));
        let field = |name: &str| -> u64 {
            nums.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        let bad = field("bad");
        counts = Counts {
            mints: field("mints"),
            completes: field("completes"),
        };
        assert!(
            bad == 0,
            "BUG: {addr} answered {bad} requests of {:?} with something else than the \
             expected 200 (mint, AMP-Redirect-To) / 303 (complete); the first: {first_bad}",
            load.script().unwrap_or_default()
        );
        assert!(counts.mints > 0, "no mint answered: {line}");
        if load == Load::Handoff {
            assert!(counts.completes > 0, "no completion answered: {line}");
        }
    }
    Some((rps, counts))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin ends it; kill in case it hangs.
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(pin: bool, cookie: &str) -> Option<(Server, [SocketAddr; SERVERS])> {
    let exe = std::env::current_exe().ok()?;
    let mut child = pinned(pin, "0", exe.as_os_str())
        .env(SERVE_ENV, cookie)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).ok()?;
    let addrs: Vec<SocketAddr> = line
        .split_whitespace()
        .filter_map(|a| a.parse().ok())
        .collect();
    Some((server, addrs.try_into().ok()?))
}

fn spread(v: &[f64]) -> String {
    format!(
        "median {:.3}  IQR {:.3}–{:.3}  min–max {:.3}–{:.3}",
        median(v),
        quantile(v, 0.25),
        quantile(v, 0.75),
        quantile(v, 0.0),
        quantile(v, 1.0)
    )
}

/// How one scenario's rounds are run.
struct Rounds<'a> {
    pin: bool,
    rounds: usize,
    secs: u64,
    cookie: &'a str,
}

impl Rounds<'_> {
    /// Warm-up (1 s each, answers checked), then `rounds` rounds of every server in an order
    /// that rotates: requests/s per server per round, and the answers counted per server.
    fn run(&self, load: Load, servers: &[SocketAddr]) -> Option<(Vec<Vec<f64>>, Vec<Counts>)> {
        for &addr in servers {
            wrk(self.pin, addr, 1, load, self.cookie)?;
        }
        let mut rps = vec![Vec::with_capacity(self.rounds); servers.len()];
        let mut counts = vec![Counts::default(); servers.len()];
        for round in 0..self.rounds {
            for k in 0..servers.len() {
                let which = (k + round) % servers.len();
                let (r, c) = wrk(self.pin, servers[which], self.secs, load, self.cookie)?;
                rps[which].push(r);
                counts[which].mints += c.mints;
                counts[which].completes += c.completes;
            }
        }
        Some((rps, counts))
    }
}

fn rps_line(what: &str, v: &[f64]) {
    println!(
        "    {what:<15} {:>9.0} req/s (median; min–max {:.0}–{:.0})",
        median(v),
        quantile(v, 0.0),
        quantile(v, 1.0)
    );
}

fn ratios(num: &[f64], den: &[f64]) -> Vec<f64> {
    num.iter().zip(den).map(|(n, d)| n / d).collect()
}

/// One handoff scenario (mint, or mint + complete): with layer against the ideal handoff.
fn handoff_scenario(
    r: &Rounds,
    load: Load,
    what: &str,
    with: SocketAddr,
    floor: SocketAddr,
) -> Option<Vec<f64>> {
    println!();
    println!("  {what}; load average at start: {}", loadavg());
    let (rps, counts) = r.run(load, &[with, floor])?;
    rps_line("with layer", &rps[0]);
    rps_line("ideal handoff", &rps[1]);
    for (name, c) in [("with layer", counts[0]), ("ideal handoff", counts[1])] {
        println!(
            "    {name:<15} answered {} mints (200) and {} completions (303) in the rounds, nothing else",
            c.mints, c.completes
        );
    }
    let with_ideal = ratios(&rps[0], &rps[1]);
    println!("    per-round ratio with/ideal:    {}", spread(&with_ideal));
    println!("    load average at end: {}", loadavg());
    Some(with_ideal)
}

pub fn http_part(shapes: &Shapes, quick: bool) {
    println!();
    println!("HTTP/1.1 over loopback (hyper; wrk -t1 -c32):");
    if Command::new("wrk").arg("-v").output().is_err() {
        println!("  wrk not found: skipped (apt-get install -y wrk)");
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cores >= 2
        && Command::new("taskset")
            .args(["-c", "1", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if pin {
        println!("  server: one thread pinned to core 0; wrk: pinned to core 1 (taskset)");
    } else {
        println!("  NOTICE: taskset or a second core missing: not pinned, ratios unreliable");
    }
    let Some((_server, addrs)) = start_server(pin, shapes.cookie_name) else {
        println!("  could not start the server process: skipped");
        return;
    };
    let rounds = std::env::var("AMP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 2 } else { 10 })
        .max(if quick { 1 } else { 10 });
    let secs = if quick { 1 } else { 2 };
    let r = Rounds {
        pin,
        rounds,
        secs,
        cookie: shapes.cookie,
    };
    println!(
        "  {rounds} interleaved rounds of {secs} s per server (order rotates) per scenario, after 1 s of warm-up each"
    );

    println!();
    println!(
        "  (1) same-origin GET /cart.json with cookie; load average at start: {}",
        loadavg()
    );
    let Some((rps, _)) = r.run(Load::Plain, &[addrs[PLAIN], addrs[LAYERED], addrs[FLOOR]]) else {
        return;
    };
    let (p, l, x) = (&rps[0], &rps[1], &rps[2]);
    rps_line("without layer", p);
    rps_line("with layer", l);
    rps_line("ideal layer", x);
    let plain = ratios(l, x);
    println!(
        "    (info) per-round ratio with/without:  {}",
        spread(&ratios(l, p))
    );
    println!(
        "    (info) per-round ratio ideal/without: {}",
        spread(&ratios(x, p))
    );
    println!("    per-round ratio with/ideal:    {}", spread(&plain));
    println!("    load average at end: {}", loadavg());

    let Some(mint) = handoff_scenario(
        &r,
        Load::Mint,
        "(2a) mint: cache POST urlencoded, no cookie (mint.lua)",
        addrs[HANDOFF],
        addrs[HANDOFF_FLOOR],
    ) else {
        return;
    };
    let Some(handoff) = handoff_scenario(
        &r,
        Load::Handoff,
        "(2b) handoff: mint, then complete each fresh link with the cookie (handoff.lua)",
        addrs[HANDOFF],
        addrs[HANDOFF_FLOOR],
    ) else {
        return;
    };

    println!();
    println!("SPEC §7 targets (HTTP, median of {rounds} per-round ratios):");
    for (what, v) in [
        ("with/ideal layer, same-origin GET", &plain),
        ("with/ideal handoff, mint", &mint),
        ("with/ideal handoff, mint + complete", &handoff),
    ] {
        let m = median(v);
        target_row(what, format!("{m:.3}"), "≥ 0.98", m >= 0.98);
    }
}

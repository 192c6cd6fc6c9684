//! Free loopback ports for the servers the tests start as processes (the shop, nginx, Redis,
//! the browser drivers), chosen below the kernel's ephemeral range.
//!
//! Why not bind port 0 and release it: that port comes from the ephemeral range, where every
//! outgoing connection also gets its local port. Between the release and the server's own
//! bind, a connection of a test running in parallel (a browser, nginx to its upstream) can
//! take it, and the server dies with "Address already in use" (seen in CI, tests/proxy.rs).
//! No connection is ever given a port below the range; a counter keeps one test process from
//! handing out a port twice, and a bind check skips ports something else already holds.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// How many ports below the ephemeral range the tests use.
const WINDOW: u32 = 10_000;

/// `n` distinct loopback ports that nothing listens on, all checked at once.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = next_free();
        *port = listener.local_addr().expect("a bound port").port();
        held.push(listener);
    }
    // Released together, so the N ports differ from each other.
    drop(held);
    ports
}

/// One loopback port that nothing listens on.
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>();
    port
}

/// A listener on the next port of the window that binds; falls back to port 0 when the
/// kernel's range leaves no room below it.
fn next_free() -> TcpListener {
    let Some((base, start)) = window() else {
        return TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    };
    for _ in 0..WINDOW {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(start) % WINDOW;
        let port = u16::try_from(base + offset).expect("the window is below the ephemeral range");
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener;
        }
    }
    panic!("no free loopback port in {base}..{}", base + WINDOW);
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The window's first port and this process's starting offset in it (spread by process id,
/// so two test processes run at once start far apart).
fn window() -> Option<(u32, u32)> {
    static WINDOW_BASE: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *WINDOW_BASE.get_or_init(|| {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let low: u32 = range.split_whitespace().next()?.parse().ok()?;
        let base = low.checked_sub(WINDOW)?;
        (base >= 1024).then(|| (base, std::process::id().wrapping_mul(7919) % WINDOW))
    })
}

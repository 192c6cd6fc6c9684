//! Real browsers driving the example shop, for `tests/browser.rs`.
//!
//! - [`drivers`]: finds Chromium/Firefox ESR and their WebDriver servers (skip or, with
//!   `CI=true`, fail when missing), starts the drivers on free ports, opens sessions with fresh
//!   profiles, and stops all of it on drop.
//! - [`shopper`]: what a shopper does in the browser (open a cache page, add to the cart,
//!   reload, go back) and what the test reads back (URL, history, the cart).
//! - [`stand_in`]: a small server with one page per amp-form rule, to test the shop's offline
//!   stand-in for amp-form (`examples/shop/offline.js`) on its own.

pub mod drivers;
pub mod shopper;
pub mod stand_in;

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use drivers::{note, Browser, Driver, Engine, Installed, ThirdPartyCookies};
pub use shopper::Shopper;

/// Browser tests take turns: two browsers at once on a shared two-core machine make page
/// loads slow and timings flaky, and each test is quick on its own.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one may still run.
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs an async test body on a fresh runtime, failing (not hanging) after `limit`.
///
/// A plain `#[test]` plus this, instead of `#[tokio::test]`: the turn lock is a std mutex held
/// for the whole test, outside any `.await`.
pub fn run<F: Future<Output = ()>>(limit: Duration, body: F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(limit, body)
            .await
            .unwrap_or_else(|_| panic!("the browser test did not finish within {limit:?}"));
    });
}

/// Runs one scenario and prints how long it took (to the real stderr, see [`note`]).
pub async fn scenario<F: Future<Output = ()>>(name: &str, body: F) {
    let start = Instant::now();
    body.await;
    note(&format!(
        "browser scenario {name}: ok in {:.2} s",
        start.elapsed().as_secs_f64()
    ));
}

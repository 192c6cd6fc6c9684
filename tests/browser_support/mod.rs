//! Real browsers driving the example shop with the real AMP runtime, for `tests/browser.rs`
//! (and `tests/browser_attacks.rs`).
//!
//! - [`drivers`]: finds Chromium, Firefox ESR and WebKitGTK and their WebDriver servers (skip
//!   or, with `CI=true`, fail when missing), starts the drivers on free ports (WebKit under
//!   its own Xvfb), opens sessions with fresh profiles, and stops all of it on drop.
//! - [`shopper`]: what a shopper does in the browser (open a cache page, add to the cart,
//!   reload, go back) and what the test reads back (URL, page text, history, the cart).
//! - [`viewer`]: another site that shows a cache page in a sandboxed iframe, as AMP
//!   viewers do.
//! - [`stand_in`]: a small server with one page per amp-form rule, to test the shop's offline
//!   stand-in for amp-form (`examples/shop/offline.js`) on its own.
//!
//! The usual start of a browser test:
//!
//! ```ignore
//! let Some(installed) = Installed::find(Engine::Chromium) else { return };
//! let Some(runtime) = amp_runtime() else { return };
//! let _turn = one_at_a_time();
//! run(Duration::from_secs(90), async {
//!     let driver = Driver::start(&installed);
//!     let shop = start_shop(&runtime, Scheme::Http, &[]);
//!     let shopper = Shopper::new(driver.chromium(ThirdPartyCookies::Blocked).await, &shop);
//!     shopper.open(&shop.cache_page_url("/products/3")).await;
//!     shopper.wait_for_amp_form().await;
//!     let landed = shopper.add_to_cart(2).await;
//!     assert_eq!(shopper.cart_json().await["items"][0]["quantity"], 2);
//!     shopper.close().await;
//! });
//! ```

// Each test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod drivers;
pub mod shopper;
pub mod stand_in;
pub mod viewer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use drivers::{ci, note, skip_or_fail, Browser, Driver, Engine, Installed, ThirdPartyCookies};
pub use shopper::Shopper;

use crate::support::ShopProcess;

/// Where the tests look for the AMP runtime build when `AMP_RUNTIME_DIR` is not set, relative
/// to the crate: beside the clone (CI copies `shared/` there), or beside a worktree's parent.
const RUNTIME_DIRS: [&str; 2] = ["../shared/amp-runtime", "../../shared/amp-runtime"];

/// The directory of the real AMP runtime (`v0.js`, `v0/amp-form-0.1.js`,
/// `v0/amp-mustache-0.2.js`; see `../shared/amp-runtime/README.md`): `$AMP_RUNTIME_DIR`, else
/// the first of [`RUNTIME_DIRS`] that has a `v0.js`. When there is none: prints
/// `browser tests skipped: ...` and returns `None`, or panics when `CI=true`.
pub fn amp_runtime() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = match std::env::var_os("AMP_RUNTIME_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => RUNTIME_DIRS.iter().map(|d| manifest.join(d)).collect(),
    };
    let found = candidates.iter().find(|d| d.join("v0.js").is_file());
    if found.is_none() {
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        skip_or_fail(&format!(
            "the AMP runtime build not found (looked in {}; set AMP_RUNTIME_DIR)",
            looked.join(", ")
        ));
    }
    found.cloned()
}

/// How the shop serves its two sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain http (`cargo run --example shop`): cache pages under `/c/<host>/`.
    Http,
    /// The shop's `--tls`: https with a certificate made at start, cache pages under
    /// `/c/s/<host>/`. Browsers are opened with `acceptInsecureCerts`.
    Https,
}

/// Starts the shop with the real runtime from `runtime` (`--amp-runtime`), over `scheme`,
/// plus `extra_args`.
pub fn start_shop(runtime: &Path, scheme: Scheme, extra_args: &[&str]) -> ShopProcess {
    let runtime = runtime.to_str().expect("a UTF-8 runtime path");
    let mut args = vec!["--amp-runtime", runtime];
    if scheme == Scheme::Https {
        args.push("--tls");
    }
    args.extend_from_slice(extra_args);
    ShopProcess::start(&args)
}

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

/// Like [`scenario`], for a body that tells what it saw (e.g. the URL it landed on), which
/// is printed after the duration.
pub async fn scenario_saw<F: Future<Output = String>>(name: &str, body: F) {
    let start = Instant::now();
    let saw = body.await;
    note(&format!(
        "browser scenario {name}: ok in {:.2} s; {saw}",
        start.elapsed().as_secs_f64()
    ));
}

/// What each scenario did in each set-up, in the order they ran: (set-up, scenario, cell).
static RESULTS: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());

/// Notes what `scenario` did in `set_up` (a short cell of [`print_results`]' table).
pub fn record_result(set_up: &str, scenario: &str, cell: &str) {
    RESULTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push((set_up.to_owned(), scenario.to_owned(), cell.to_owned()));
}

/// Prints every result so far as a Markdown table, scenario × set-up (to the real stderr,
/// see [`note`]). The set-ups run one after the other in one test process, so the table
/// printed after the last one holds them all; a scenario that did not run (or failed before
/// it was noted) shows `—`.
pub fn print_results() {
    let results = RESULTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let mut set_ups: Vec<&str> = Vec::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for (set_up, scenario, _) in &results {
        if !set_ups.contains(&set_up.as_str()) {
            set_ups.push(set_up);
        }
        if !scenarios.contains(&scenario.as_str()) {
            scenarios.push(scenario);
        }
    }
    let mut table = format!("| scenario | {} |\n|---|", set_ups.join(" | "));
    table.push_str(&"---|".repeat(set_ups.len()));
    for scenario in &scenarios {
        table.push_str(&format!("\n| {scenario} |"));
        for set_up in &set_ups {
            let cell = results
                .iter()
                .find(|(u, s, _)| u == set_up && s == scenario)
                .map_or("—", |(_, _, c)| c.as_str());
            table.push_str(&format!(" {cell} |"));
        }
    }
    note(&format!("browser tests: scenario × set-up so far\n{table}"));
}

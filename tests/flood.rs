//! The replay guard under a flood: a full `MemoryReplayGuard` evicts into Bloom filters, so a
//! shopper who reads the confirmation page for a minute while a flood at one core's full
//! rate churns the guard is still applied, and a replay of an evicted nonce is refused.
//!
//! Time is simulated (the layer's and the guard's clock), so the test never sleeps. The
//! flood is scaled with the capacity: one core's 92 000 completions per second against the
//! default capacity of 1 835 008 turns the table over every 20 s; here a tenth of both
//! (`FLOOD_SCALE=1` runs the full sizes). Each flood completion is what the layer does to
//! the guard for one applied link: `reserve`, then `mark_applied`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use http::StatusCode;
use tower_amp_session::{MemoryReplayGuard, ReplayGuard, ReplayGuardError, Reservation};

/// One core's completions per second through the layer (release build, SPEC §7).
const ONE_CORE: u64 = 92_000;
/// Token life plus clock skew (defaults): how long the guard keeps a nonce.
const KEPT: u64 = 150;

const CONFIRM_HEADERS: [(&str, &str); 4] = [
    ("origin", PUBLISHER),
    ("content-type", "application/x-www-form-urlencoded"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
];

/// Shoppers who confirm after each delay.
const SHOPPERS: usize = 20;

fn hidden(page: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = page.find(&key).unwrap() + key.len();
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_slow_shopper_is_applied_under_a_flood() {
    let scale: u64 = std::env::var("FLOOD_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let capacity = MemoryReplayGuard::DEFAULT_CAPACITY / scale as usize;
    let rate = ONE_CORE / scale;
    let ms = Arc::new(AtomicU64::new(0));
    let start = SystemTime::now();
    let clock = {
        let ms = ms.clone();
        move || start + Duration::from_millis(ms.load(Ordering::SeqCst))
    };
    let guard = Arc::new(MemoryReplayGuard::with_clock(capacity, clock.clone()));
    let layer = builder()
        .clock(clock.clone())
        .replay_guard(guard.clone())
        .build()
        .unwrap();
    let rec = Recorder::default();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));

    // Shoppers: each mints at the start and confirms `delay` seconds later.
    // Several per delay: an unseen link may fail at the filter's false-positive rate (~0.8 %),
    // so one shopper per delay would make the table a coin toss now and then.
    let delays = [2u64, 8, 16, 32, 60, 90];
    let mut links = Vec::new();
    for _ in 0..delays.len() * SHOPPERS {
        let a = send(
            &mut svc,
            request(
                "POST",
                "/account/delete",
                &[
                    ("origin", CACHE),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                "confirm=1",
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let handoff = path_of(a.header("amp-redirect-to").unwrap());
        let page = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let form = format!(
            "token={}&amp_render={}",
            hidden(&page.body, "token"),
            hidden(&page.body, "amp_render")
        );
        links.push(form);
    }

    let mut rows = Vec::new();
    let mut flood = 0u64;
    let mut refused_flood = 0u64;
    let mut evicted_seconds = Vec::new();
    let last = *delays.iter().max().unwrap();
    for second in 1..=last {
        ms.store(second * 1000, Ordering::SeqCst);
        let expires = start + Duration::from_secs(second + KEPT);
        for _ in 0..rate {
            let nonce: [u8; 16] = rand::random();
            match guard.reserve(&nonce, expires).await {
                Ok(Reservation::Reserved) => guard.mark_applied(&nonce, expires).await.unwrap(),
                Err(ReplayGuardError::Full) => refused_flood += 1,
                r => panic!("flood: {r:?}"),
            }
            flood += 1;
        }
        if guard.evicted_len() > 0 && evicted_seconds.len() < 10 {
            evicted_seconds.push(second);
        }
        for (i, delay) in delays.iter().enumerate() {
            if *delay == second {
                let (mut applied, mut told) = (0, 0);
                for form in &links[i * SHOPPERS..(i + 1) * SHOPPERS] {
                    let before = rec.count();
                    let a = send(
                        &mut svc,
                        request("POST", "/_amp/handoff", &CONFIRM_HEADERS, form),
                    )
                    .await;
                    match (a.status, rec.count() - before) {
                        (StatusCode::SEE_OTHER, 1) => applied += 1,
                        // A possible false positive of the filter: refused and said so.
                        (StatusCode::GONE, 0) => told += 1,
                        (status, n) => panic!("{delay} s: {status} applied {n} times"),
                    }
                }
                rows.push((*delay, applied, told));
            }
        }
    }

    // Every shopper's link again, long after the flood evicted the early ones: refused or
    // "already applied", never applied twice.
    let applied = rec.count();
    for form in &links {
        let a = send(
            &mut svc,
            request("POST", "/_amp/handoff", &CONFIRM_HEADERS, form),
        )
        .await;
        assert!(
            matches!(a.status, StatusCode::OK | StatusCode::GONE),
            "replay: {} {}",
            a.status,
            a.body
        );
    }
    assert_eq!(rec.count(), applied, "no replay applied");

    // The filter's false positives: unseen nonces of seconds the flood evicted from.
    let tries = 100_000u64;
    let mut positives = 0;
    for i in 0..tries {
        let second = evicted_seconds[(i % evicted_seconds.len() as u64) as usize];
        let expires = start + Duration::from_secs(second + KEPT);
        let nonce: [u8; 16] = rand::random();
        if guard.state(&nonce, expires).await == Err(ReplayGuardError::Full) {
            positives += 1;
        }
    }
    let fp = positives as f64 / tries as f64;
    let per_nonce = guard.evicted_bytes() as f64 / guard.evicted_len().max(1) as f64;

    println!(
        "flood: {rate} completions per simulated second (one core / {scale}), capacity {capacity}, \
         {flood} flood completions, {refused_flood} of them refused as possibly seen"
    );
    println!("| confirmed after mint | shoppers | applied once (303) | told 410 (possibly seen) |");
    println!("|---|---|---|---|");
    for (delay, applied, told) in &rows {
        println!("| {delay} s | {SHOPPERS} | {applied} | {told} |");
    }
    println!(
        "false-positive rate {:.3} % ({positives} of {tries} unseen nonces); {} evicted nonces \
         remembered in {} bytes: {per_nonce:.2} bytes per evicted nonce",
        fp * 100.0,
        guard.evicted_len(),
        guard.evicted_bytes()
    );

    assert!(guard.evicted_len() > 0, "the flood filled the guard");
    // At a ~0.8 % false-positive rate, three or more of 20 refused happens about once in
    // 1 700 rows; a filter that forgot nothing of its purpose refuses far more.
    for (delay, applied, told) in &rows {
        assert!(
            *applied >= SHOPPERS - 2,
            "{delay} s: {applied} applied, {told} told"
        );
    }
    assert!(fp < 0.02, "false-positive rate {fp}");
    assert!(per_nonce < 2.0, "{per_nonce} bytes per evicted nonce");
}

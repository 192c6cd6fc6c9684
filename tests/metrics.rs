//! Metrics (feature `metrics`): a scripted run of handoffs, then the exact counts recorded.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// Mints a cookieless cache POST to `target`; the handoff's path and query.
async fn mint_to(svc: &mut Svc, target: &str) -> String {
    let headers = [
        ("origin", CACHE),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let a = send(svc, request("POST", target, &headers, "product_id=1")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
}

/// The confirmation page's own POST of `handoff`'s token, with the page's signed render time
/// (`page` is the confirmation page's HTML).
async fn confirm(svc: &mut Svc, handoff: &str, page: &str) -> Answer {
    let token = handoff.split("token=").nth(1).unwrap();
    let render = page
        .split("name=\"amp_render\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the confirmation page's render field");
    let headers = [
        ("origin", PUBLISHER),
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    send(
        svc,
        request(
            "POST",
            "/_amp/handoff",
            &headers,
            &format!("token={token}&amp_render={render}"),
        ),
    )
    .await
}

/// The script: every answer's status, checked as it goes.
async fn script(now: Arc<AtomicU64>) {
    let start = now.load(Ordering::SeqCst);
    let clock = now.clone();
    let layer = builder()
        .clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst)))
        .build()
        .unwrap();
    let rec = Recorder::default();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let at = |s: u64| now.store(start + s, Ordering::SeqCst);

    // Minted at 0, applied on arrival from the cache page at 5 s, then reloaded.
    let direct = mint_to(&mut svc, "/cart/add").await;
    at(5);
    let a = send(&mut svc, request("GET", &direct, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "applied: {}", a.body);
    let a = send(&mut svc, request("GET", &direct, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "reload");

    // Minted at 5 to an undeclared route: the confirmation page, confirmed at 9 s.
    let asked = mint_to(&mut svc, "/checkout/pay").await;
    let a = send(&mut svc, request("GET", &asked, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::OK, "confirmation page");
    let page = a.body;
    at(9);
    let a = confirm(&mut svc, &asked, &page).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "confirmed: {}", a.body);

    // Minted at 9, opened after its 120 s.
    let late = mint_to(&mut svc, "/cart/add").await;
    at(9 + 121);
    let a = send(&mut svc, request("GET", &late, &NAV, "")).await;
    assert_eq!(a.status, StatusCode::GONE, "expired");

    // A token that is not one.
    let a = send(
        &mut svc,
        request("GET", "/_amp/handoff?token=AAAA", &NAV, ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "refused");
    assert_eq!(rec.count(), 2, "two changes applied");
}

#[test]
fn a_scripted_run_is_counted_exactly() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = Arc::new(AtomicU64::new(1_800_000_000));
    // This thread only, so parallel tests do not count here.
    metrics::with_local_recorder(&recorder, || rt.block_on(script(now)));

    let mut counters = BTreeMap::new();
    let mut gauges = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Gauge(v) => {
                gauges.insert(name, v.into_inner());
            }
            DebugValue::Histogram(v) => {
                histograms.insert(
                    name,
                    v.into_iter().map(|x| x.into_inner()).collect::<Vec<_>>(),
                );
            }
        }
    }
    println!("{counters:#?}\n{gauges:#?}\n{histograms:#?}");
    let want: BTreeMap<String, u64> = [
        ("amp_session_handoffs_minted_total{}", 3),
        (
            "amp_session_handoffs_completed_total{outcome=applied_directly}",
            1,
        ),
        (
            "amp_session_handoffs_completed_total{outcome=already_used}",
            1,
        ),
        (
            "amp_session_handoffs_completed_total{outcome=confirmation_shown}",
            1,
        ),
        ("amp_session_handoffs_completed_total{outcome=confirmed}", 1),
        ("amp_session_handoffs_completed_total{outcome=expired}", 1),
        ("amp_session_handoffs_completed_total{outcome=refused}", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counters, want);
    // The two applied links are held (until they expire); the expired one never was.
    assert_eq!(
        gauges,
        BTreeMap::from([("amp_session_replay_guard_nonces{}".to_owned(), 2.0)])
    );
    assert_eq!(
        histograms,
        BTreeMap::from([
            (
                "amp_session_handoff_seconds{outcome=applied_directly}".to_owned(),
                vec![5.0]
            ),
            (
                "amp_session_handoff_seconds{outcome=confirmed}".to_owned(),
                vec![4.0]
            ),
        ])
    );
}

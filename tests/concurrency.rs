//! "A change is applied exactly once" (SPEC sections 5 and 6) under real parallelism: a
//! multi-thread runtime, one service clone per task, every task released at once.

use std::sync::Arc;
use std::time::SystemTime;

use common::*;
use http::StatusCode;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tower_amp_session::{MemoryReplayGuard, ReplayFuture, ReplayGuard};

mod common;

const TASKS: usize = 64;
const ROUNDS: usize = 20;

async fn mint(svc: &mut Svc, product: u32) -> String {
    let a = send(
        svc,
        request(
            "POST",
            "/cart/add",
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &format!("product_id={product}&quantity=1"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
}

/// Completes each of `handoffs` (a path may repeat) from its own task on a clone of the
/// service picked round-robin from `services`, all released together by a barrier.
async fn complete_in_parallel(services: &[Svc], handoffs: Vec<String>) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(handoffs.len()));
    let mut tasks = JoinSet::new();
    for (i, handoff) in handoffs.into_iter().enumerate() {
        let mut svc = services[i % services.len()].clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            send(&mut svc, request("GET", &handoff, &NAV, "")).await
        });
    }
    let mut answers = Vec::new();
    while let Some(a) = tasks.join_next().await {
        answers.push(a.expect("no task panicked"));
    }
    answers
}

/// 64 parallel completions of one token: every one is redirected, exactly one applies the
/// change and issues a session. Twenty rounds, each with a fresh layer and token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_64_parallel_completions_apply_once() {
    for round in 0..ROUNDS {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let handoff = mint(&mut svc, 1).await;
        let answers = complete_in_parallel(&[svc], vec![handoff; TASKS]).await;
        assert_eq!(answers.len(), TASKS);
        for a in &answers {
            // A repeat is a reload or a double click: sent to the return path, not refused.
            assert_eq!(a.status, StatusCode::SEE_OTHER, "round {round}: {}", a.body);
            assert_eq!(a.header("location"), Some("https://shop.example/"));
        }
        assert_eq!(
            rec.count(),
            1,
            "round {round}: applied {} times",
            rec.count()
        );
        let cookies = answers
            .iter()
            .filter(|a| a.session_cookie().is_some())
            .count();
        assert_eq!(cookies, 1, "round {round}: {cookies} sessions issued");
    }
}

/// A guard shared by several origin instances (what Redis is in production).
#[derive(Debug, Clone)]
struct Shared(Arc<MemoryReplayGuard>);

impl ReplayGuard for Shared {
    fn check_and_mark<'a>(
        &'a self,
        key_id: &'a str,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a> {
        self.0.check_and_mark(key_id, nonce, expires_at)
    }
}

/// Four instances with shared keys: with one shared guard the token applies once; with the
/// default per-instance in-memory guard it can apply once per instance (the limit
/// SECURITY.md states: several instances need a shared guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_instances_need_a_shared_guard() {
    for round in 0..ROUNDS {
        let rec = Recorder::default();
        let guard = Shared(Arc::new(MemoryReplayGuard::default()));
        let instances: Vec<Svc> = (0..4)
            .map(|_| {
                let layer = builder().replay_guard(guard.clone()).build().unwrap();
                service(&layer, app(&rec, StatusCode::OK, &[]))
            })
            .collect();
        let handoff = mint(&mut instances[0].clone(), 1).await;
        let answers = complete_in_parallel(&instances, vec![handoff; TASKS]).await;
        assert!(answers.iter().all(|a| a.status == StatusCode::SEE_OTHER));
        assert_eq!(rec.count(), 1, "round {round}: shared guard");
    }

    let rec = Recorder::default();
    let instances: Vec<Svc> = (0..4)
        .map(|_| service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[])))
        .collect();
    let handoff = mint(&mut instances[0].clone(), 1).await;
    let answers = complete_in_parallel(&instances, vec![handoff; TASKS]).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::SEE_OTHER));
    assert_eq!(rec.count(), 4, "one application per instance's own guard");
}

/// A full guard fails closed under load: of 32 distinct tokens racing into a guard with
/// room for 8, exactly 8 apply and the rest are told 503, never 500, nothing applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_guard_fails_closed_under_load() {
    for round in 0..ROUNDS {
        let rec = Recorder::default();
        let layer = builder()
            .replay_guard(MemoryReplayGuard::new(8))
            .build()
            .unwrap();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
        let mut handoffs = Vec::new();
        for product in 0..32 {
            handoffs.push(mint(&mut svc, product).await);
        }
        let answers = complete_in_parallel(&[svc], handoffs).await;
        let applied = answers
            .iter()
            .filter(|a| a.status == StatusCode::SEE_OTHER)
            .count();
        let refused: Vec<_> = answers
            .iter()
            .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
            .collect();
        assert_eq!(applied + refused.len(), 32, "round {round}: other statuses");
        assert_eq!(applied, 8, "round {round}");
        assert_eq!(rec.count(), 8, "round {round}");
        for a in refused {
            assert!(a.body.contains("not applied"), "{}", a.body);
            assert!(a.rejection.is_some());
            assert!(a.all("set-cookie").is_empty());
        }
    }
}

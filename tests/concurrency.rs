//! "A change is applied exactly once" (SPEC sections 5 and 6) under real parallelism: a
//! multi-thread runtime, one service clone per task, every task released at once.

use std::sync::Arc;

use common::mint_add as mint;
use common::*;
use http::StatusCode;
use replay_support::{Scripted, Step};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tower_amp_session::MemoryReplayGuard;

mod common;
mod replay_support;

const TASKS: usize = 64;
const ROUNDS: usize = 20;

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

/// Every parallel completion of one link is told something true: applied (303, for the one
/// that applied it and for those that came after it), or still being applied (409, for those
/// that came while the app ran). Never 5xx, never two applications.
fn assert_told(round: usize, answers: &[Answer]) {
    for a in answers {
        match a.status {
            StatusCode::SEE_OTHER => {
                assert_eq!(a.header("location"), Some("https://shop.example/"))
            }
            StatusCode::CONFLICT => assert!(a.body.contains("still being applied"), "{}", a.body),
            other => panic!("round {round}: {other} {}", a.body),
        }
    }
}

/// 64 parallel completions of one token: exactly one applies the change and issues a
/// session; the others are redirected or told it is being applied. Twenty rounds, each with
/// a fresh layer and token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_64_parallel_completions_apply_once() {
    for round in 0..ROUNDS {
        let rec = Recorder::default();
        let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
        let handoff = mint(&mut svc, 1).await;
        let answers = complete_in_parallel(&[svc], vec![handoff; TASKS]).await;
        assert_eq!(answers.len(), TASKS);
        assert_told(round, &answers);
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

/// The memory guard under 64-way concurrency with a failing app: the app refuses the first
/// call (500) and applies later ones. Of 64 parallel completions of one link, the first
/// caller sees the failure, the link is given back, and the change is applied exactly once
/// (by a racing completion or by the reload after the burst); a final reload redirects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_64_parallel_completions_with_a_failing_app_apply_once() {
    for round in 0..ROUNDS {
        let app = Scripted::new(&[
            Step::Refuse(StatusCode::INTERNAL_SERVER_ERROR, "database error"),
            Step::Apply,
        ]);
        let mut svc = service(&builder().build().unwrap(), app.app());
        let handoff = mint(&mut svc, 1).await;
        let answers = complete_in_parallel(&[svc.clone()], vec![handoff.clone(); TASKS]).await;
        let failed: Vec<_> = answers
            .iter()
            .filter(|a| a.status == StatusCode::INTERNAL_SERVER_ERROR)
            .collect();
        assert_eq!(
            failed.len(),
            1,
            "round {round}: exactly the first call failed"
        );
        assert!(failed[0]
            .body
            .contains("reloading this page will try again"));
        let rest: Vec<Answer> = answers
            .into_iter()
            .filter(|a| a.status != StatusCode::INTERNAL_SERVER_ERROR)
            .collect();
        assert_told(round, &rest);
        assert!(
            app.applied() <= 1,
            "round {round}: applied {}",
            app.applied()
        );
        // The shopper reloads until the page says it is done.
        let last = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(
            last.status,
            StatusCode::SEE_OTHER,
            "round {round}: {}",
            last.body
        );
        assert_eq!(app.applied(), 1, "round {round}: applied {}", app.applied());
        assert!(
            app.calls() <= 2,
            "round {round}: the app was called {}",
            app.calls()
        );
    }
}

/// Four instances with shared keys: with one shared guard the token applies once; with the
/// default per-instance in-memory guard it can apply once per instance (the limit
/// SECURITY.md states: several instances need a shared guard).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_instances_need_a_shared_guard() {
    for round in 0..ROUNDS {
        let rec = Recorder::default();
        let guard = Arc::new(MemoryReplayGuard::default());
        let instances: Vec<Svc> = (0..4)
            .map(|_| {
                let layer = builder().replay_guard(guard.clone()).build().unwrap();
                service(&layer, app(&rec, StatusCode::OK, &[]))
            })
            .collect();
        let handoff = mint(&mut instances[0].clone(), 1).await;
        let answers = complete_in_parallel(&instances, vec![handoff; TASKS]).await;
        assert_told(round, &answers);
        assert_eq!(rec.count(), 1, "round {round}: shared guard");
    }

    let rec = Recorder::default();
    let instances: Vec<Svc> = (0..4)
        .map(|_| service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[])))
        .collect();
    let handoff = mint(&mut instances[0].clone(), 1).await;
    let answers = complete_in_parallel(&instances, vec![handoff; TASKS]).await;
    assert_told(0, &answers);
    assert_eq!(rec.count(), 4, "one application per instance's own guard");
}

/// A full guard under load: 32 distinct tokens race into a guard with room for 8. Each is
/// either applied once (303) or refused with "send the form again" (410), never 500, never
/// a session cookie on a refusal; then every link is reloaded and none applies again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_guard_under_load_never_applies_twice() {
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
        let answers = complete_in_parallel(&[svc.clone()], handoffs.clone()).await;
        let applied = answers
            .iter()
            .filter(|a| a.status == StatusCode::SEE_OTHER)
            .count();
        let refused: Vec<_> = answers
            .iter()
            .filter(|a| a.status == StatusCode::GONE)
            .collect();
        assert_eq!(applied + refused.len(), 32, "round {round}: other statuses");
        assert!(applied >= 1, "round {round}");
        assert_eq!(rec.count(), applied, "round {round}");
        for a in refused {
            assert!(a.body.contains("send the form again"), "{}", a.body);
            assert!(a.rejection.is_some());
            assert!(a.all("set-cookie").is_empty());
        }
        let again = complete_in_parallel(&[svc], handoffs).await;
        for a in &again {
            assert!(
                [StatusCode::SEE_OTHER, StatusCode::GONE].contains(&a.status),
                "round {round}: {} {}",
                a.status,
                a.body
            );
        }
        assert_eq!(
            rec.count(),
            applied,
            "round {round}: a reload applied again"
        );
    }
}

//! Apps and guards that fail on purpose, for the failure and concurrency tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower_amp_session::{
    MemoryReplayGuard, ReplayFuture, ReplayGuard, ReplayGuardError, RequestBody, Reservation,
};

use crate::common::App;

/// What the app does on one call.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Applies the change: 200.
    Apply,
    /// Refuses with this status and `{"error": "<message>"}`; nothing applied.
    Refuse(StatusCode, &'static str),
    /// Never answers (a hung database): the caller's timeout drops the future.
    Hang,
}

/// An app that follows a script, one step per call (the last step repeats), and counts
/// calls and applied changes.
#[derive(Clone)]
pub struct Scripted {
    steps: Arc<Vec<Step>>,
    pub calls: Arc<AtomicUsize>,
    pub applied: Arc<AtomicUsize>,
}

impl Scripted {
    pub fn new(steps: &[Step]) -> Self {
        assert!(!steps.is_empty());
        Scripted {
            steps: Arc::new(steps.to_vec()),
            calls: Arc::default(),
            applied: Arc::default(),
        }
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }
    /// The next step, counted as a call.
    pub fn next(&self) -> Step {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        self.steps[i.min(self.steps.len() - 1)]
    }

    pub fn app(&self) -> App {
        let me = self.clone();
        tower::util::BoxCloneService::new(tower::service_fn(
            move |req: Request<RequestBody<Full<Bytes>>>| {
                let me = me.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    // Let concurrent completions interleave with this one.
                    tokio::task::yield_now().await;
                    Ok::<_, Infallible>(me.answer().await)
                }
            },
        ))
    }

    pub async fn answer(&self) -> Response<Full<Bytes>> {
        match self.next() {
            Step::Apply => {
                self.applied.fetch_add(1, Ordering::SeqCst);
                Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")))
            }
            Step::Refuse(status, message) => {
                let body = format!("{{\"error\":\"{message}\"}}");
                let mut res = Response::new(Full::new(Bytes::from(body)));
                *res.status_mut() = status;
                res.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                res
            }
            Step::Hang => std::future::pending().await,
        }
    }
}

/// A memory guard whose methods can be made to fail (a store that is down).
#[derive(Debug, Clone, Default)]
pub struct Faulty {
    pub inner: Arc<MemoryReplayGuard>,
    pub reserve_down: Arc<AtomicBool>,
    pub commit_down: Arc<AtomicBool>,
    pub release_down: Arc<AtomicBool>,
    pub log: Arc<Mutex<Vec<&'static str>>>,
}

fn down<'a, T: Send + 'a>() -> ReplayFuture<'a, T> {
    Box::pin(std::future::ready(Err(ReplayGuardError::Unavailable(
        "test: store down".into(),
    ))))
}

impl ReplayGuard for Faulty {
    fn reserve<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, Reservation> {
        self.log.lock().unwrap().push("reserve");
        if self.reserve_down.load(Ordering::SeqCst) {
            return down();
        }
        self.inner.reserve(nonce, expires_at)
    }
    fn mark_applied<'a>(
        &'a self,
        nonce: &'a [u8; 16],
        expires_at: SystemTime,
    ) -> ReplayFuture<'a, ()> {
        self.log.lock().unwrap().push("mark_applied");
        if self.commit_down.load(Ordering::SeqCst) {
            return down();
        }
        self.inner.mark_applied(nonce, expires_at)
    }
    fn release<'a>(&'a self, nonce: &'a [u8; 16]) -> ReplayFuture<'a, ()> {
        self.log.lock().unwrap().push("release");
        if self.release_down.load(Ordering::SeqCst) {
            return down();
        }
        self.inner.release(nonce)
    }
}

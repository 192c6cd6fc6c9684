//! Counters behind `GET /_stats.json`, so tests (and the curious) can see whether a change
//! went through a handoff or was applied directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use tower_amp_session::AMP_REDIRECT_TO;

#[derive(Debug)]
pub struct Stats {
    /// The layer's handoff path: what minted and completed handoffs are recognised by.
    handoff_path: String,
    mints: AtomicU64,
    handoffs_completed: AtomicU64,
    adds: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub mints: u64,
    pub handoffs_completed: u64,
    pub adds: u64,
}

impl Stats {
    pub fn new(handoff_path: &str) -> Self {
        Stats {
            handoff_path: handoff_path.to_owned(),
            mints: AtomicU64::new(0),
            handoffs_completed: AtomicU64::new(0),
            adds: AtomicU64::new(0),
        }
    }

    /// An add the cart applied (counted by the handler, so refused adds do not count).
    pub fn count_add(&self) {
        self.adds.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            mints: self.mints.load(Ordering::Relaxed),
            handoffs_completed: self.handoffs_completed.load(Ordering::Relaxed),
            adds: self.adds.load(Ordering::Relaxed),
        }
    }

    /// Whether an `AMP-Redirect-To` value points at the handoff path, i.e. the layer minted
    /// a handoff instead of calling the app (the app's own redirect goes to `/cart`).
    fn is_handoff_url(&self, value: &str) -> bool {
        url::Url::parse(value).is_ok_and(|u| u.path() == self.handoff_path)
    }
}

/// Middleware OUTSIDE the `AmpSessionLayer`: it sees the layer's answers, not the app's.
///
/// - a mint is any response whose `AMP-Redirect-To` leads to the handoff path;
/// - a completion is a `303 See Other` answering a GET of the handoff path. A reload of an
///   already used handoff link is also answered 303 (without applying anything again), so
///   it counts too; `adds` tells how many changes were really applied.
pub async fn count(State(stats): State<Arc<Stats>>, req: Request, next: Next) -> Response {
    let handoff_get = req.method() == Method::GET && req.uri().path() == stats.handoff_path;
    let res = next.run(req).await;
    if handoff_get && res.status() == StatusCode::SEE_OTHER {
        stats.handoffs_completed.fetch_add(1, Ordering::Relaxed);
    }
    let minted = res
        .headers()
        .get(&AMP_REDIRECT_TO)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| stats.is_handoff_url(v));
    if minted {
        stats.mints.fetch_add(1, Ordering::Relaxed);
    }
    res
}

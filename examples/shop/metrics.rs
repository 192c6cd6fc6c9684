//! `/metrics` on the origin: the layer's handoff metrics (feature `metrics`) as Prometheus
//! text, from `metrics-exporter-prometheus`'s recorder.

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::util::BoxCloneSyncService;

use crate::cache::Origin;

/// Buckets of `amp_session_handoff_seconds` (whole seconds from mint to the applied change):
/// most shoppers arrive in a second or two; a confirmation takes longer; the link lives 120 s.
const HANDOFF_SECONDS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

/// Installs the Prometheus recorder and answers `GET /metrics` in front of `origin`, outside
/// the session layer: a scrape starts no session.
pub fn serve(origin: Origin) -> Result<Origin, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("amp_session_handoff_seconds".into()),
            &HANDOFF_SECONDS,
        )?
        .install_recorder()?;
    let router = Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .fallback_service(origin);
    Ok(BoxCloneSyncService::new(router))
}

//! Prometheus metrics: the `metrics` facade is fed by the crates (requests here, pool waits,
//! retries, contacts created and merges in `identity-persistence`), and rendered at
//! `GET /metrics` by `metrics-exporter-prometheus`.

use std::sync::{Arc, OnceLock};

use actix_web::{web, HttpResponse};
use identity_persistence::PoolStats;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Reads the pool's state at scrape time.
pub type PoolProbe = Arc<dyn Fn() -> PoolStats + Send + Sync>;

/// The process-wide recorder, installed on first use (once per process: tests build many
/// servers in one process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let latency = [
            0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &latency)
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                // Fails only if another recorder was installed first; then ours stays empty.
                let _ = metrics::set_global_recorder(recorder);
                handle
            }
            // The bucket list is a non-empty constant: this branch is unreachable.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// The metrics in Prometheus' text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(pool: web::Data<PoolProbe>) -> HttpResponse {
    let stats = (pool.get_ref())();
    metrics::gauge!("identity_db_pool_connections", "state" => "idle").set(stats.idle);
    metrics::gauge!("identity_db_pool_connections", "state" => "in_use")
        .set(stats.open.saturating_sub(stats.idle));
    metrics::gauge!("identity_db_pool_max_connections").set(stats.max);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle().render())
}

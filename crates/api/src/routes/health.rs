//! Probes: `/healthz` (the process answers) and `/readyz` (and its database does too).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use identity_domain::RepositoryError;
use serde_json::json;

use crate::error::ApiError;
use crate::run_blocking;

/// Checks that the database answers.
pub type ReadinessCheck = Arc<dyn Fn() -> Result<(), RepositoryError> + Send + Sync>;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = serde_json::Value, example = json!({"status": "ok"}))))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the process answers and its database does too.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = serde_json::Value, example = json!({"status": "ready"})),
        (status = 503, description = "The database does not answer"),
        (status = 500, description = "Unexpected error"),
    ))]
pub async fn readyz(check: web::Data<ReadinessCheck>) -> Result<HttpResponse, ApiError> {
    let check = Arc::clone(check.get_ref());
    run_blocking(move || check()).await??;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

//! HTTP adapter of the identity service: actix-web (on tokio) in front of the domain's
//! `IdentityService`, wired to the PostgreSQL repository. Owns configuration, start-up,
//! telemetry and the mapping of errors to HTTP (in `error`); holds no product rules.

mod admin;
pub mod auth;
pub mod commands;
mod console;
mod contacts;
pub mod dispatcher;
mod error;
mod health;
mod identify;
pub mod keys;
mod links;
pub mod metrics;
pub mod openapi;
pub mod settings;
mod startup;
pub mod telemetry;
mod unlink;

pub use error::ApiError;
pub use health::ReadinessCheck;
pub use settings::Settings;
pub use startup::{routes, AppState, Application, StartupError};

/// How the API and its change events write an instant: RFC 3339 in UTC, to the microsecond
/// (`2026-11-30T08:00:00.000000Z`).
pub(crate) fn wire_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Runs blocking work (Diesel) on the blocking thread pool, never on an async worker, inside
/// the caller's tracing span.
async fn run_blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    actix_web::web::block(move || span.in_scope(work))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

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

tokio::task_local! {
    /// The request being served: when its waits for the database must end, and the bound
    /// that deadline came from (`database.deadline_ms`).
    static DB_DEADLINE: (std::time::Instant, std::time::Duration);
}

/// Middleware: no request waits for the database longer than `bound` from its arrival.
pub(crate) async fn with_db_deadline(
    bound: std::time::Duration,
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let deadline = std::time::Instant::now() + bound;
    DB_DEADLINE
        .scope((deadline, bound), next.call(request))
        .await
}

/// How long after its deadline blocking work is given up on without its answer: the
/// watchdog cuts a late statement well within this (`identity_persistence::deadline`), so
/// this only guards against a wait the watchdog cannot see.
const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs blocking work (Diesel) on the blocking thread pool, never on an async worker, inside
/// the caller's tracing span and under the request's database deadline.
async fn run_blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let Ok((deadline, bound)) = DB_DEADLINE.try_with(|d| *d) else {
        return actix_web::web::block(move || span.in_scope(work))
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)));
    };
    let blocked = actix_web::web::block(move || {
        span.in_scope(|| identity_persistence::deadline::within(deadline, work))
    });
    match tokio::time::timeout_at((deadline + BLOCKING_GRACE).into(), blocked).await {
        Ok(done) => done.map_err(|e| ApiError::Internal(Box::new(e))),
        Err(_) => Err(ApiError::Unavailable(Box::new(
            identity_persistence::deadline::DeadlineExceeded { bound },
        ))),
    }
}

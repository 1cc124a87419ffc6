//! HTTP adapter of the identity service: actix-web (on tokio) in front of the domain's
//! `IdentityService`, wired to the store (PostgreSQL or SQLite). Holds no product rules.
//! By role: `routes/` (one module per resource) with the wire types they share (`wire`),
//! the access check (`auth`) and the one mapping of errors to HTTP (`error`); `cli/` (the
//! operator's commands); `console/` (the support page); `settings`, `startup`, `telemetry`,
//! `dispatcher` (change events) and `openapi` around them.

pub mod auth;
pub mod cli;
mod console;
pub mod dispatcher;
mod error;
pub mod openapi;
mod routes;
pub mod settings;
mod startup;
pub mod telemetry;
mod wire;

pub use error::ApiError;
pub use routes::health::ReadinessCheck;
pub use settings::Settings;
pub use startup::{routes, AppState, Application, StartupError};

/// How the API and its change events write an instant: RFC 3339 in UTC, to the microsecond
/// (`2026-11-30T08:00:00.000000Z`).
pub(crate) fn wire_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The database deadline of the request being served.
#[derive(Debug, Clone, Copy)]
struct DbDeadline {
    /// When every wait for the database must have ended: a little before `answer_by`, so
    /// that the watchdog's tick and the way back fit in the bound.
    waits_end: std::time::Instant,
    /// The request's arrival plus the bound: the answer is sent by then, whatever happens.
    answer_by: std::time::Instant,
    /// `database.deadline_ms`.
    bound: std::time::Duration,
}

tokio::task_local! {
    static DB_DEADLINE: DbDeadline;
}

/// What a request's bound keeps for answering after its last wait for the database: the
/// watchdog's tick (50 ms) and the way back from the blocking thread.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(150);

/// Middleware: no request waits for the database longer than `bound` from its arrival.
pub(crate) async fn with_db_deadline(
    bound: std::time::Duration,
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let answer_by = std::time::Instant::now() + bound;
    let deadline = DbDeadline {
        waits_end: answer_by - ANSWER_MARGIN.min(bound / 2),
        answer_by,
        bound,
    };
    DB_DEADLINE.scope(deadline, next.call(request)).await
}

/// Runs blocking work (Diesel) on the blocking thread pool, never on an async worker, inside
/// the caller's tracing span and under the request's database deadline.
async fn run_blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let Ok(deadline) = DB_DEADLINE.try_with(|d| *d) else {
        return actix_web::web::block(move || span.in_scope(work))
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)));
    };
    let blocked = actix_web::web::block(move || {
        span.in_scope(|| identity_persistence::deadline::within(deadline.waits_end, work))
    });
    // The watchdog cuts a late statement before this (`identity_persistence::deadline`):
    // this only guards against a wait it cannot see (no socket found for a connection).
    match tokio::time::timeout_at(deadline.answer_by.into(), blocked).await {
        Ok(done) => done.map_err(|e| ApiError::Internal(Box::new(e))),
        Err(_) => Err(ApiError::Unavailable(Box::new(
            identity_persistence::deadline::DeadlineExceeded {
                bound: deadline.bound,
            },
        ))),
    }
}

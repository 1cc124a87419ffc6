//! The r2d2 pool of PostgreSQL connections, and the session settings every connection gets.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError};
use diesel::PgConnection;

use crate::error::PersistenceError;

pub type PgPool = r2d2::Pool<ConnectionManager<PgConnection>>;

/// How to reach PostgreSQL and how patient to be with it.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub url: String,
    /// Connections this process keeps at most.
    pub max_size: u32,
    /// Idle connections kept open in advance.
    pub min_idle: u32,
    /// Time allowed to open one connection (libpq `connect_timeout`, whole seconds).
    pub connect_timeout: Duration,
    /// Time a request waits for a free connection before it is answered 503.
    pub acquire_timeout: Duration,
    /// Longest any one statement may run (PostgreSQL `statement_timeout`).
    pub statement_timeout: Duration,
    /// Longest any one statement may wait for a lock (PostgreSQL `lock_timeout`).
    pub lock_timeout: Duration,
}

/// Builds the pool without connecting: the service starts, and reports itself not ready,
/// while the database is down, and connects as soon as it is back.
///
/// # Errors
/// When the URL is not a PostgreSQL URL or a setting is out of range.
pub fn build_pool(settings: &PoolSettings) -> Result<PgPool, PersistenceError> {
    let url = with_connect_timeout(&settings.url, settings.connect_timeout)?;
    let session = SessionSettings {
        sql: format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; SET application_name = 'identity-api'",
            settings.statement_timeout.as_millis(),
            settings.lock_timeout.as_millis(),
        ),
    };
    Ok(r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(settings.min_idle.min(settings.max_size)))
        .connection_timeout(settings.acquire_timeout)
        .connection_customizer(Box::new(session))
        .error_handler(Box::new(LogErrors))
        .build_unchecked(ConnectionManager::new(url)))
}

/// Adds libpq's `connect_timeout` to the URL unless the URL sets it.
fn with_connect_timeout(url: &str, timeout: Duration) -> Result<String, PersistenceError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(PersistenceError::InvalidUrl(
            "it must start with postgres:// or postgresql://".to_owned(),
        ));
    }
    if url.contains("connect_timeout=") {
        return Ok(url.to_owned());
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let seconds = timeout.as_secs().max(1);
    Ok(format!("{url}{separator}connect_timeout={seconds}"))
}

#[derive(Debug)]
struct SessionSettings {
    sql: String,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&self.sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// r2d2 reports failed connection attempts here; they go to the log as warnings.
#[derive(Debug)]
struct LogErrors;

impl HandleError<diesel::r2d2::Error> for LogErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(%error, "database connection attempt failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_added_once() {
        let t = Duration::from_secs(3);
        assert_eq!(
            with_connect_timeout("postgres://u@h/db", t).ok().as_deref(),
            Some("postgres://u@h/db?connect_timeout=3")
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?sslmode=disable", t)
                .ok()
                .as_deref(),
            Some("postgres://u@h/db?sslmode=disable&connect_timeout=3")
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?connect_timeout=9", t)
                .ok()
                .as_deref(),
            Some("postgres://u@h/db?connect_timeout=9")
        );
        assert!(with_connect_timeout("mysql://u@h/db", t).is_err());
    }
}

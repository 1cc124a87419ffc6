//! r2d2 pools of connections, and the session settings every connection gets.

use std::time::Duration;

use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError, R2D2Connection};

/// How many connections to keep and how patient to be with the database.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections this process keeps at most.
    pub max_size: u32,
    /// Idle connections kept open in advance.
    pub min_idle: u32,
    /// Time allowed to open one connection (PostgreSQL: libpq `connect_timeout`).
    pub connect_timeout: Duration,
    /// Time a request waits for a free connection before it is answered 503.
    pub acquire_timeout: Duration,
    /// Longest any one statement may run (PostgreSQL `statement_timeout`).
    pub statement_timeout: Duration,
    /// Longest any one statement may wait for a lock (PostgreSQL `lock_timeout`, SQLite
    /// `busy_timeout`).
    pub lock_timeout: Duration,
}

pub(crate) type Pool<C> = r2d2::Pool<ConnectionManager<C>>;

/// Builds a pool without connecting: the service starts, and reports itself not ready,
/// while the database is down, and connects as soon as it is back. Every new connection
/// runs `session_sql` first.
pub(crate) fn build_pool<C>(url: String, settings: &PoolSettings, session_sql: String) -> Pool<C>
where
    C: R2D2Connection + Send + 'static,
{
    r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(settings.min_idle.min(settings.max_size)))
        .connection_timeout(settings.acquire_timeout)
        .connection_customizer(Box::new(Session { sql: session_sql }))
        .error_handler(Box::new(LogErrors))
        .build_unchecked(ConnectionManager::new(url))
}

/// Adds libpq's `connect_timeout` to a PostgreSQL URL unless it sets it.
pub(crate) fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let seconds = timeout.as_secs().max(1);
    format!("{url}{separator}connect_timeout={seconds}")
}

#[derive(Debug)]
struct Session {
    sql: String,
}

impl<C: R2D2Connection> CustomizeConnection<C, diesel::r2d2::Error> for Session {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
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
            with_connect_timeout("postgres://u@h/db", t),
            "postgres://u@h/db?connect_timeout=3"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?sslmode=disable", t),
            "postgres://u@h/db?sslmode=disable&connect_timeout=3"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?connect_timeout=9", t),
            "postgres://u@h/db?connect_timeout=9"
        );
    }
}

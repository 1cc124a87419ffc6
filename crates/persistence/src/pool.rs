//! Connections: the r2d2 pool of either backend, a checked-out connection, and [`Db`], the
//! borrowed connection every statement runs on.
//!
//! Diesel's `MultiConnection` derive would give one connection type for both backends, but
//! its backend knows only the SQL types every backend shares (no `timestamptz`, no arrays),
//! which the PostgreSQL statements need. So [`Db`] is a plain enum, and [`on_backend!`]
//! runs one statement, written once, on whichever connection it holds.
//!
//! No round trip on checkout: r2d2 does not test a connection before handing it out.
//! A connection found broken by a statement (see `retry.rs`) is marked so, and r2d2
//! drops it instead of taking it back ([`Manager::has_broken`]).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, HandleError, ManageConnection, R2D2Connection};
use diesel::{PgConnection, SqliteConnection};

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

/// A connection of either backend, borrowed for some statements.
pub(crate) enum Db<'c> {
    Pg(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

/// Runs `$body` with `$conn` bound to the concrete connection `$db` (a `&mut Db`) holds:
/// one statement, written once, for both backends.
macro_rules! on_backend {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::pool::Db::Pg(c) => {
                let $conn: &mut ::diesel::PgConnection = &mut **c;
                $body
            }
            $crate::pool::Db::Sqlite(c) => {
                let $conn: &mut ::diesel::SqliteConnection = &mut **c;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// The pool of the backend the URL named.
pub(crate) enum Pool {
    Pg(r2d2::Pool<Manager<PgConnection>>),
    Sqlite(r2d2::Pool<Manager<SqliteConnection>>),
}

/// A connection checked out of a [`Pool`]; it goes back when dropped.
pub(crate) enum Checkout {
    Pg(r2d2::PooledConnection<Manager<PgConnection>>),
    Sqlite(r2d2::PooledConnection<Manager<SqliteConnection>>),
}

impl Pool {
    /// Builds a pool without connecting: the service starts, and reports itself not ready,
    /// while the database is down, and connects as soon as it is back. Every new connection
    /// runs `session_sql` first.
    pub(crate) fn postgres(url: String, settings: &PoolSettings, session_sql: String) -> Self {
        Self::Pg(build(url, settings, session_sql))
    }

    /// As [`Pool::postgres`], on a SQLite file.
    pub(crate) fn sqlite(path: String, settings: &PoolSettings, session_sql: String) -> Self {
        Self::Sqlite(build(path, settings, session_sql))
    }

    /// A connection, waiting at most the acquire timeout.
    pub(crate) fn get(&self) -> Result<Checkout, r2d2::Error> {
        let started = std::time::Instant::now();
        let conn = match self {
            Self::Pg(pool) => pool.get().map(Checkout::Pg),
            Self::Sqlite(pool) => pool.get().map(Checkout::Sqlite),
        };
        metrics::histogram!("identity_db_pool_acquire_seconds").record(started.elapsed());
        conn
    }

    /// SQLite keeps the pages a transaction changed in its write-ahead log until a
    /// checkpoint copies them into the database file; after an erasure that is at once, so
    /// that the erased values do not linger in the `-wal` file. Best effort: a reader still
    /// on an older snapshot holds part of it back until the next checkpoint. PostgreSQL
    /// needs nothing here (what remains where after an erasure is in the README).
    pub(crate) fn checkpoint(&self) {
        if let Self::Sqlite(pool) = self {
            if let Ok(mut conn) = pool.get() {
                if let Err(error) = conn.conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)") {
                    tracing::warn!(%error, "cannot checkpoint the SQLite write-ahead log");
                }
            }
        }
    }

    /// Connections open and idle now, and at most.
    pub(crate) fn state(&self) -> (r2d2::State, u32) {
        match self {
            Self::Pg(pool) => (pool.state(), pool.max_size()),
            Self::Sqlite(pool) => (pool.state(), pool.max_size()),
        }
    }
}

impl Checkout {
    pub(crate) fn db(&mut self) -> Db<'_> {
        match self {
            Self::Pg(c) => Db::Pg(&mut c.conn),
            Self::Sqlite(c) => Db::Sqlite(&mut c.conn),
        }
    }

    /// Makes r2d2 drop this connection instead of taking it back: it broke.
    pub(crate) fn discard(&mut self) {
        match self {
            Self::Pg(c) => c.broken = true,
            Self::Sqlite(c) => c.broken = true,
        }
    }

    /// One round trip, for readiness probes.
    pub(crate) fn ping(&mut self) -> diesel::QueryResult<()> {
        match self {
            Self::Pg(c) => c.conn.batch_execute("SELECT 1"),
            Self::Sqlite(c) => c.conn.batch_execute("SELECT 1"),
        }
    }
}

fn build<C>(url: String, settings: &PoolSettings, session_sql: String) -> r2d2::Pool<Manager<C>>
where
    C: R2D2Connection + Send + 'static,
{
    r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(settings.min_idle.min(settings.max_size)))
        .connection_timeout(settings.acquire_timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(LogErrors))
        .build_unchecked(Manager {
            inner: ConnectionManager::new(url),
            session_sql,
        })
}

/// Diesel's connection manager, plus the session settings of every new connection and a
/// flag for connections found broken.
pub(crate) struct Manager<C: 'static> {
    inner: ConnectionManager<C>,
    session_sql: String,
}

/// A pooled connection and whether it was found broken.
pub(crate) struct Tracked<C> {
    pub(crate) conn: C,
    broken: bool,
}

impl<C: R2D2Connection + Send + 'static> ManageConnection for Manager<C> {
    type Connection = Tracked<C>;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Tracked<C>, Self::Error> {
        let mut conn = self.inner.connect()?;
        conn.batch_execute(&self.session_sql)
            .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(Tracked {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Tracked<C>) -> Result<(), Self::Error> {
        self.inner.is_valid(&mut conn.conn)
    }

    /// Broken: marked so by a statement that lost it, or left in a transaction that could
    /// not be rolled back (Diesel's own check).
    fn has_broken(&self, conn: &mut Tracked<C>) -> bool {
        conn.broken || self.inner.has_broken(&mut conn.conn)
    }
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

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

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, HandleError, ManageConnection, R2D2Connection};
use diesel::{PgConnection, RunQueryDsl, SqliteConnection};

use crate::deadline::{self, Armer, Watchdog, Watched};

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
    /// Longest any wait for the database may last, whatever the server or the network does
    /// (`deadline.rs`): a statement still unanswered then has its connection cut.
    pub deadline: Duration,
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
    /// Every statement on its connections runs under the deadline (`deadline.rs`).
    pub(crate) fn postgres(url: String, settings: &PoolSettings, session_sql: String) -> Self {
        let watchdog = Watchdog::start(settings.deadline);
        Self::Pg(build(url, settings, session_sql, Some(watchdog)))
    }

    /// As [`Pool::postgres`], on a SQLite file (no network, no watchdog: waits for its lock
    /// are bounded by `busy_timeout`).
    pub(crate) fn sqlite(path: String, settings: &PoolSettings, session_sql: String) -> Self {
        Self::Sqlite(build(path, settings, session_sql, None))
    }

    /// A connection, waiting at most the acquire timeout, and never past the deadline of
    /// [`deadline::within`].
    pub(crate) fn get(&self) -> Result<Checkout, r2d2::Error> {
        let started = std::time::Instant::now();
        let conn = match self {
            Self::Pg(pool) => pool
                .get_timeout(timeout(pool.connection_timeout()))
                .map(Checkout::Pg),
            Self::Sqlite(pool) => pool
                .get_timeout(timeout(pool.connection_timeout()))
                .map(Checkout::Sqlite),
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

    /// Whether the watchdog cut this connection: its statement outlived the deadline.
    pub(crate) fn timed_out(&self) -> Option<deadline::DeadlineExceeded> {
        match self {
            Self::Pg(c) => c.watched.as_ref().filter(|w| w.fired()).map(|w| w.error()),
            Self::Sqlite(_) => None,
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

/// The acquire timeout, shortened to what is left before the deadline.
fn timeout(acquire: Duration) -> Duration {
    deadline::remaining().map_or(acquire, |left| left.min(acquire))
}

fn build<C>(
    url: String,
    settings: &PoolSettings,
    session_sql: String,
    watchdog: Option<Watchdog>,
) -> r2d2::Pool<Manager<C>>
where
    C: R2D2Connection + ClientPort + Send + 'static,
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
            watchdog,
        })
}

/// Diesel's connection manager, plus the session settings of every new connection and a
/// flag for connections found broken.
pub(crate) struct Manager<C: 'static> {
    inner: ConnectionManager<C>,
    session_sql: String,
    watchdog: Option<Watchdog>,
}

/// A pooled connection, whether it was found broken, and its socket under watch.
pub(crate) struct Tracked<C> {
    pub(crate) conn: C,
    broken: bool,
    watched: Option<Arc<Watched>>,
}

/// The watchdog lets go of the socket before the connection closes it.
impl<C> Drop for Tracked<C> {
    fn drop(&mut self) {
        if let Some(watched) = &self.watched {
            watched.close();
        }
    }
}

/// The local port of a connection's socket, as the server saw it.
pub(crate) trait ClientPort {
    fn client_port(&mut self) -> Option<u16>;
}

impl ClientPort for PgConnection {
    fn client_port(&mut self) -> Option<u16> {
        use diesel::sql_types::{Integer, Nullable};
        diesel::select(diesel::dsl::sql::<Nullable<Integer>>("inet_client_port()"))
            .get_result::<Option<i32>>(self)
            .ok()
            .flatten()
            .and_then(|port| u16::try_from(port).ok())
    }
}

impl ClientPort for SqliteConnection {
    fn client_port(&mut self) -> Option<u16> {
        None
    }
}

impl<C: R2D2Connection + ClientPort + Send + 'static> ManageConnection for Manager<C> {
    type Connection = Tracked<C>;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Tracked<C>, Self::Error> {
        let before = self.watchdog.as_ref().map(|_| deadline::sockets());
        let mut conn = self.inner.connect()?;
        let watched = match (&self.watchdog, before) {
            (Some(watchdog), Some(before)) => {
                let socket = deadline::find_socket(&before, || conn.client_port());
                if socket.is_none() {
                    tracing::debug!(
                        "cannot find the connection's socket: no client-side deadline on it"
                    );
                }
                socket.map(|fd| watchdog.watch(fd))
            }
            _ => None,
        };
        if let Some(watched) = &watched {
            conn.set_instrumentation(Armer(Arc::clone(watched)));
        }
        let mut tracked = Tracked {
            conn,
            broken: false,
            watched,
        };
        tracked
            .conn
            .batch_execute(&self.session_sql)
            .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(tracked)
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

/// Adds libpq's timeouts to a PostgreSQL URL, each unless the URL sets it: `connect_timeout`
/// (to open a connection); TCP keepalives, so that an idle connection to a host that went
/// away is noticed within about the deadline; and `tcp_user_timeout`, so that data the peer
/// does not acknowledge for the deadline breaks the connection (a network that drops
/// packets). A server that is frozen while its kernel acknowledges is `deadline.rs`'s job.
pub(crate) fn with_timeouts(url: &str, settings: &PoolSettings) -> String {
    let deadline_s = settings.deadline.as_secs().max(2);
    // Whole seconds, per host of a multi-host URL, at least 2 (libpq's floor). libpq counts
    // them on a clock of whole seconds, so an attempt may last one second more: one second
    // under the deadline keeps a connection attempt within it.
    let connect_s = settings
        .connect_timeout
        .min(settings.deadline.saturating_sub(Duration::from_secs(1)))
        .as_secs()
        .max(2);
    let options = [
        ("connect_timeout", connect_s),
        ("keepalives", 1),
        ("keepalives_idle", (deadline_s / 2).max(1)),
        ("keepalives_interval", (deadline_s / 6).max(1)),
        ("keepalives_count", 3),
        (
            "tcp_user_timeout",
            u64::try_from(settings.deadline.as_millis()).unwrap_or(u64::MAX),
        ),
    ];
    let mut url = url.to_owned();
    for (name, value) in options {
        if url.contains(&format!("{name}=")) {
            continue;
        }
        let separator = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{separator}{name}={value}");
    }
    url
}

impl crate::DatabaseUrl {
    /// This URL with libpq's timeouts (see [`with_timeouts`]) for every connection made to
    /// it, the pool's and the one-off connections that create, migrate or check the
    /// database before the pool exists.
    #[must_use]
    pub(crate) fn with_timeouts(&self, settings: &PoolSettings) -> Self {
        match self {
            Self::Postgres(url) => Self::Postgres(with_timeouts(url, settings)),
            Self::Sqlite(_) => self.clone(),
        }
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
    fn timeouts_are_added_once() {
        let settings = PoolSettings {
            max_size: 1,
            min_idle: 0,
            connect_timeout: Duration::from_secs(3),
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            lock_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(6),
        };
        let all = "connect_timeout=3&keepalives=1&keepalives_idle=3&keepalives_interval=1\
                   &keepalives_count=3&tcp_user_timeout=6000";
        assert_eq!(
            with_timeouts("postgres://u@h/db", &settings),
            format!("postgres://u@h/db?{all}")
        );
        assert_eq!(
            with_timeouts("postgres://u@h1:5432,h2:5433/db?sslmode=disable", &settings),
            format!("postgres://u@h1:5432,h2:5433/db?sslmode=disable&{all}")
        );
        assert_eq!(
            with_timeouts(
                "postgres://u@h/db?connect_timeout=9&tcp_user_timeout=0",
                &settings
            ),
            "postgres://u@h/db?connect_timeout=9&tcp_user_timeout=0&keepalives=1\
             &keepalives_idle=3&keepalives_interval=1&keepalives_count=3"
        );
    }
}

//! Opening the store named by `database.url`: preparing it (directory or database, schema)
//! and building the repository on the right backend.

use std::sync::Arc;

use identity_domain::{ContactMaintenance, ContactRepository, KeyRepository, RepositoryError};

use crate::error::PersistenceError;
use crate::migrate::{
    check_message_language, create_database_if_missing, open_sqlite, pending_migrations,
    run_migrations,
};
use crate::outbox::Outbox;
use crate::pool::{Pool, PoolSettings};
use crate::replica::{self, Replica};
use crate::repository::{PoolStats, SqlStore};
use crate::retry::RetryPolicy;
use crate::url::DatabaseUrl;
use crate::{postgres, sqlite};

/// Everything needed to open the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub url: DatabaseUrl,
    /// Create the PostgreSQL database, or the SQLite file's directory, when missing.
    pub create_if_missing: bool,
    /// Apply pending migrations while opening.
    pub run_migrations: bool,
    pub pool: PoolSettings,
    pub retry: RetryPolicy,
    /// Standbys for the lock-free reads (`database.read_url`, PostgreSQL only).
    pub read_url: Option<DatabaseUrl>,
}

impl StoreSettings {
    /// These settings with libpq's timeouts in their URLs ([`DatabaseUrl::with_timeouts`]),
    /// for every connection made to them: the pool's, the standbys', and the one-off
    /// connections that create, migrate or check the database before the pool exists. Each
    /// entry point below takes them once.
    fn timed(&self) -> Self {
        Self {
            url: self.url.with_timeouts(&self.pool),
            read_url: self
                .read_url
                .as_ref()
                .map(|url| url.with_timeouts(&self.pool)),
            ..self.clone()
        }
    }
}

type Readiness = Arc<dyn Fn() -> Result<(), RepositoryError> + Send + Sync>;
type PoolProbe = Arc<dyn Fn() -> PoolStats + Send + Sync>;

/// An open store: the repository, and a readiness check of the same database.
#[derive(Clone)]
pub struct Store {
    pub repository: Arc<dyn ContactRepository>,
    /// Whole-store operations for operators.
    pub maintenance: Arc<dyn ContactMaintenance>,
    pub readiness: Readiness,
    /// The change events waiting for the webhook.
    pub outbox: Arc<dyn Outbox>,
    /// The API keys.
    pub keys: Arc<dyn KeyRepository>,
    /// The connection pool's state, for metrics.
    pub pool_stats: PoolProbe,
    pub url: DatabaseUrl,
}

/// Prepares the store named by `settings.url` without opening a pool: creates what is
/// missing (when `create_if_missing`) and applies pending migrations (when
/// `run_migrations`, else warns about them). Returns the migrations applied.
///
/// # Errors
/// As [`open`].
pub fn prepare(settings: &StoreSettings) -> Result<Vec<String>, PersistenceError> {
    prepare_timed(&settings.timed())
}

/// [`prepare`] on settings already [`StoreSettings::timed`].
fn prepare_timed(settings: &StoreSettings) -> Result<Vec<String>, PersistenceError> {
    match &settings.url {
        DatabaseUrl::Postgres(url) => {
            if settings.create_if_missing && create_database_if_missing(url)? {
                tracing::info!(url = %settings.url, "created the database");
            }
        }
        DatabaseUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.exists() {
                    if !settings.create_if_missing {
                        return Err(PersistenceError::MissingDirectory {
                            path: dir.to_owned(),
                        });
                    }
                    // Personal data: the directory and the files are the owner's alone.
                    let mut builder = std::fs::DirBuilder::new();
                    builder.recursive(true);
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                    builder
                        .create(dir)
                        .map_err(|source| PersistenceError::CreateDirectory {
                            path: dir.to_owned(),
                            source,
                        })?;
                }
            }
            if !path.exists() {
                if !settings.create_if_missing {
                    return Err(PersistenceError::MissingDatabase {
                        database: path.display().to_string(),
                    });
                }
                create_private_file(path)?;
            }
            // Creates the file when missing, and refuses one that is not a database.
            drop(open_sqlite(path)?);
        }
    }
    migrate(settings)
}

/// Creates an empty file (an empty file is an empty SQLite database) readable and writable by
/// its owner only. SQLite gives its `-wal` and `-shm` files the mode of the database file, so
/// they are private too. (Another process creating it at the same moment is fine.)
fn create_private_file(path: &std::path::Path) -> Result<(), PersistenceError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(PersistenceError::CreateFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Prepares the store named by `settings.url` and opens a pool on it.
///
/// # Errors
/// A directory that cannot be created, a file that is not a SQLite database, a PostgreSQL
/// server that cannot be reached (when it must be: to create the database or migrate), a
/// failed migration.
pub fn open(settings: &StoreSettings) -> Result<Store, PersistenceError> {
    let settings = &settings.timed();
    prepare_timed(settings)?;
    if let DatabaseUrl::Postgres(url) = &settings.url {
        if settings.read_url.is_some() {
            replica::check_primary(url)?;
        }
    }
    Ok(connect(settings, Access::ReadWrite))
}

/// Opens the store for a command that only reads (`check`, `stats`, `events list`, `keys
/// list`): it creates nothing and migrates nothing, whatever the settings say, and its
/// connections refuse to write (PostgreSQL `default_transaction_read_only`, SQLite
/// `query_only`).
///
/// # Errors
/// [`PersistenceError::MissingDatabase`] and [`PersistenceError::SchemaBehind`] (both naming
/// `identity-api migrate`), or a database that cannot be reached.
pub fn open_read_only(settings: &StoreSettings) -> Result<Store, PersistenceError> {
    let settings = &settings.timed();
    let pending = pending_migrations(&settings.url)?;
    if !pending.is_empty() {
        return Err(PersistenceError::SchemaBehind { pending });
    }
    Ok(connect(settings, Access::ReadOnly))
}

/// Whether a store's connections may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// Builds the pool (without connecting yet) and the store around it.
fn connect(settings: &StoreSettings, access: Access) -> Store {
    let read_only = access == Access::ReadOnly;
    let session_sql = |read_only| {
        postgres::session_sql(
            settings.pool.statement_timeout.as_millis(),
            settings.pool.lock_timeout.as_millis(),
            read_only,
        )
    };
    let replica = match (&settings.url, &settings.read_url) {
        (DatabaseUrl::Postgres(_), Some(DatabaseUrl::Postgres(read_url))) => {
            Some(Replica::start(read_url, &settings.pool, session_sql(true)))
        }
        _ => None,
    };
    let pool = match &settings.url {
        DatabaseUrl::Postgres(url) => {
            check_message_language(url);
            let mut sql = session_sql(read_only);
            if replica.is_some() {
                // Answered only once the synchronous standbys can show it (replica.rs).
                sql.push_str("; SET synchronous_commit = remote_apply");
            }
            Pool::postgres(url.clone(), &settings.pool, sql)
        }
        DatabaseUrl::Sqlite(path) => Pool::sqlite(
            path.to_string_lossy().into_owned(),
            &settings.pool,
            sqlite::session_sql(settings.pool.lock_timeout.as_millis(), read_only),
        ),
    };
    let repository = Arc::new(SqlStore {
        pool,
        retry: settings.retry,
        replica,
    });
    let probe = Arc::clone(&repository);
    let stats = Arc::clone(&repository);
    Store {
        outbox: Arc::clone(&repository) as Arc<dyn Outbox>,
        keys: Arc::clone(&repository) as Arc<dyn KeyRepository>,
        pool_stats: Arc::new(move || stats.pool_stats()),
        maintenance: Arc::clone(&repository) as Arc<dyn ContactMaintenance>,
        repository,
        readiness: Arc::new(move || probe.ping()),
        url: settings.url.clone(),
    }
}

fn migrate(settings: &StoreSettings) -> Result<Vec<String>, PersistenceError> {
    if settings.run_migrations {
        let applied = run_migrations(&settings.url)?;
        tracing::info!(url = %settings.url, applied = applied.len(), "migrations applied");
        return Ok(applied);
    }
    match pending_migrations(&settings.url) {
        Ok(pending) if !pending.is_empty() => tracing::warn!(
            ?pending,
            "database.run_migrations is off and migrations are pending: apply them"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot check for pending migrations"),
    }
    Ok(Vec::new())
}

//! The SQL migrations of the top-level `migrations/<backend>`, embedded in the binary.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{
    Connection, ConnectionError, PgConnection, QueryResult, RunQueryDsl, SqliteConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::PersistenceError;
use crate::url::DatabaseUrl;

const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Session-level advisory lock held while migrating PostgreSQL, so that replicas starting
/// together apply each migration once ("identity" in ASCII).
const MIGRATION_LOCK: i64 = 0x6964_656e_7469_7479;

/// Applies every pending migration on a connection of its own. Returns the versions applied.
///
/// # Errors
/// When the database cannot be reached or a migration fails (that migration is rolled back).
pub fn run_migrations(url: &DatabaseUrl) -> Result<Vec<String>, PersistenceError> {
    let versions = |applied: Vec<diesel::migration::MigrationVersion<'_>>| {
        applied.iter().map(ToString::to_string).collect()
    };
    match url {
        DatabaseUrl::Postgres(url) => {
            let mut conn = connect_postgres(url)?;
            conn.batch_execute(&format!(
                "SET statement_timeout = 0; SET lock_timeout = 0; SELECT pg_advisory_lock({MIGRATION_LOCK})"
            ))
            .map_err(PersistenceError::Query)?;
            let applied = conn
                .run_pending_migrations(POSTGRES)
                .map(versions)
                .map_err(PersistenceError::Migrate);
            // Closing the connection releases the lock too; unlocking is just tidier.
            let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            applied
        }
        DatabaseUrl::Sqlite(path) => {
            let mut conn = open_sqlite(path)?;
            // Processes starting together on one file: the busy timeout makes the second
            // wait for the first's migration instead of failing.
            conn.batch_execute("PRAGMA busy_timeout = 10000")
                .map_err(PersistenceError::Query)?;
            conn.run_pending_migrations(SQLITE)
                .map(versions)
                .map_err(PersistenceError::Migrate)
        }
    }
}

/// The names of the migrations this binary holds that the database has not applied (to
/// refuse, or warn about, a schema that is behind). Reads only: it creates nothing, not even
/// Diesel's bookkeeping table (which its own harness would).
///
/// # Errors
/// When the database cannot be reached, or does not exist.
pub fn pending_migrations(url: &DatabaseUrl) -> Result<Vec<String>, PersistenceError> {
    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    fn pending<DB: diesel::backend::Backend>(
        source: &EmbeddedMigrations,
        applied: QueryResult<Vec<Applied>>,
    ) -> Result<Vec<String>, PersistenceError> {
        let applied: BTreeSet<String> = match applied {
            Ok(rows) => rows.into_iter().map(|row| row.version).collect(),
            // No bookkeeping table: nothing was ever applied.
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("does not exist")
                    || info.message().contains("no such table") =>
            {
                BTreeSet::new()
            }
            Err(e) => return Err(PersistenceError::Query(e)),
        };
        let ours = MigrationSource::<DB>::migrations(source).map_err(PersistenceError::Migrate)?;
        Ok(ours
            .iter()
            .filter(|m| !applied.contains(&m.name().version().to_string()))
            .map(|m| m.name().to_string())
            .collect())
    }
    let query = diesel::sql_query("SELECT version FROM __diesel_schema_migrations");
    match url {
        DatabaseUrl::Postgres(url) => {
            let mut conn = connect_postgres(url)?;
            pending::<diesel::pg::Pg>(&POSTGRES, query.load(&mut conn))
        }
        DatabaseUrl::Sqlite(path) => {
            if !path.exists() {
                return Err(PersistenceError::MissingDatabase {
                    database: path.display().to_string(),
                });
            }
            let mut conn = open_sqlite(path)?;
            pending::<diesel::sqlite::Sqlite>(&SQLITE, query.load(&mut conn))
        }
    }
}

/// Connects to PostgreSQL, telling a database that does not exist from other failures.
pub(crate) fn connect_postgres(url: &str) -> Result<PgConnection, PersistenceError> {
    PgConnection::establish(url).map_err(|e| match e {
        ConnectionError::BadConnection(message) if message.contains("does not exist") => {
            PersistenceError::MissingDatabase {
                database: split_database(url)
                    .map_or_else(|| crate::url::redact_url(url), |(name, _)| name),
            }
        }
        e => PersistenceError::Connect(e),
    })
}

/// Opens a SQLite file and checks that it is a database (SQLite only notices on first read).
pub(crate) fn open_sqlite(path: &Path) -> Result<SqliteConnection, PersistenceError> {
    let location = path.to_string_lossy();
    let mut conn = SqliteConnection::establish(&location).map_err(PersistenceError::Connect)?;
    match conn.batch_execute("SELECT count(*) FROM sqlite_master") {
        Ok(()) => Ok(conn),
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("not a database") =>
        {
            Err(PersistenceError::NotADatabase {
                path: path.to_owned(),
            })
        }
        Err(e) => Err(PersistenceError::Query(e)),
    }
}

/// Creates the PostgreSQL database named in `url` when it does not exist, connecting to the
/// server's `postgres` database to do so. Returns whether it created it.
///
/// # Errors
/// When the server cannot be reached or refuses (the role may lack CREATEDB).
pub(crate) fn create_database_if_missing(url: &str) -> Result<bool, PersistenceError> {
    match connect_postgres(url) {
        Ok(_) => return Ok(false),
        Err(PersistenceError::MissingDatabase { .. }) => {}
        Err(e) => return Err(e),
    }
    let (name, maintenance_url) = split_database(url)
        .ok_or_else(|| PersistenceError::InvalidUrl("it names no database".to_owned()))?;
    let mut conn = PgConnection::establish(&maintenance_url).map_err(PersistenceError::Connect)?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match conn.batch_execute(&format!("CREATE DATABASE {quoted}")) {
        Ok(()) => Ok(true),
        // Another replica created it a moment ago.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("already exists") =>
        {
            Ok(false)
        }
        Err(e) => Err(PersistenceError::Query(e)),
    }
}

/// The database name of `url`, and the same URL pointing at the `postgres` database.
fn split_database(url: &str) -> Option<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://")? + 3;
    let slash = authority + base[authority..].find('/')?;
    let name = &base[slash + 1..];
    (!name.is_empty()).then(|| {
        (
            name.to_owned(),
            format!("{}/postgres{query}", &base[..slash]),
        )
    })
}

/// Warns when PostgreSQL reports errors in a language other than English: deadlocks and lock
/// timeouts are recognised by their message (Diesel keeps no SQLSTATE for them), so in
/// another language they would be answered 500 instead of being retried.
pub(crate) fn check_message_language(url: &str) {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let Ok(mut conn) = PgConnection::establish(url) else {
        return;
    };
    let setting = diesel::RunQueryDsl::load::<Setting>(
        diesel::sql_query("SELECT current_setting('lc_messages') AS value"),
        &mut conn,
    );
    if let Some(Setting { value }) = setting.ok().and_then(|mut rows| rows.pop()) {
        let english = value.is_empty()
            || value == "C"
            || value.starts_with("C.")
            || value == "POSIX"
            || value.starts_with("en");
        if !english {
            tracing::warn!(
                lc_messages = %value,
                "PostgreSQL reports errors in another language: lock timeouts and deadlocks \
                 will not be retried. Set lc_messages = 'C' for the service's role \
                 (as a superuser: ALTER ROLE <role> SET lc_messages = 'C')"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_database;

    #[test]
    fn finds_the_database_name() {
        assert_eq!(
            split_database("postgres://u:p@h:5432/identity?sslmode=disable"),
            Some((
                "identity".to_owned(),
                "postgres://u:p@h:5432/postgres?sslmode=disable".to_owned()
            ))
        );
        assert_eq!(split_database("postgres://u@h"), None);
        assert_eq!(split_database("postgres://u@h/"), None);
    }
}

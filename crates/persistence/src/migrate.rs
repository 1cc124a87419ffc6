//! The SQL migrations of the top-level `migrations/postgres`, embedded in the binary.

use diesel::connection::SimpleConnection;
use diesel::{Connection, ConnectionError, PgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::PersistenceError;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Session-level advisory lock held while migrating, so that replicas starting together
/// apply each migration once ("identity" in ASCII).
const MIGRATION_LOCK: i64 = 0x6964_656e_7469_7479;

/// Applies every pending migration on its own connection, one replica at a time. Returns
/// the versions applied.
///
/// # Errors
/// When the database cannot be reached or a migration fails (that migration is rolled back).
pub fn run_migrations(url: &str) -> Result<Vec<String>, PersistenceError> {
    let mut conn = PgConnection::establish(url).map_err(PersistenceError::Connect)?;
    conn.batch_execute(&format!(
        "SET statement_timeout = 0; SET lock_timeout = 0; SELECT pg_advisory_lock({MIGRATION_LOCK})"
    ))
    .map_err(PersistenceError::Query)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(PersistenceError::Migrate);
    // Closing the connection releases the lock too; unlocking explicitly is just tidier.
    let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    applied
}

/// The versions of the migrations not yet applied (to report a schema that is behind when
/// migrations are switched off).
///
/// # Errors
/// When the database cannot be reached.
pub fn pending_migrations(url: &str) -> Result<Vec<String>, PersistenceError> {
    let mut conn = PgConnection::establish(url).map_err(PersistenceError::Connect)?;
    conn.pending_migrations(MIGRATIONS)
        .map(|pending| pending.iter().map(|m| m.name().to_string()).collect())
        .map_err(PersistenceError::Migrate)
}

/// Creates the database named in `url` when it does not exist, connecting to the server's
/// `postgres` database to do so. Returns whether it created it.
///
/// # Errors
/// When the server cannot be reached or refuses (the role may lack CREATEDB).
pub fn create_database_if_missing(url: &str) -> Result<bool, PersistenceError> {
    match PgConnection::establish(url) {
        Ok(_) => return Ok(false),
        Err(ConnectionError::BadConnection(message)) if message.contains("does not exist") => {}
        Err(e) => return Err(PersistenceError::Connect(e)),
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

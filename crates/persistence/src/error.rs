//! Errors of the operations outside the port: opening the store, migrating.

use std::path::PathBuf;

use thiserror::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum PersistenceError {
    #[error("database.url is not usable: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    #[error("cannot create the directory {} for the SQLite database", path.display())]
    CreateDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the SQLite database file {}", path.display())]
    CreateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the directory {} of the SQLite database does not exist (database.create_if_missing is off)", path.display())]
    MissingDirectory { path: PathBuf },
    #[error(
        "the database {database} does not exist: check database.url, or create it with \
         `identity-api migrate` (with database.create_if_missing on, the default)"
    )]
    MissingDatabase { database: String },
    #[error(
        "the database's schema is behind this binary ({} migrations pending: {}): apply \
         them with `identity-api migrate`",
        pending.len(),
        pending.join(", ")
    )]
    SchemaBehind { pending: Vec<String> },
    #[error("{} is not a SQLite database", path.display())]
    NotADatabase { path: PathBuf },
    #[error(
        "database.read_url is set but the primary has no synchronous standby \
         (synchronous_standby_names is empty), so a standby could answer with data older \
         than what clients were already told: name the standbys in synchronous_standby_names \
         on the primary, or unset database.read_url"
    )]
    NoSynchronousStandby,
    #[error("a database query failed")]
    Query(#[source] diesel::result::Error),
    #[error("applying migrations failed")]
    Migrate(#[source] BoxError),
}

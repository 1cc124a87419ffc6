//! Errors of the operations outside the port: connecting, migrating.

use thiserror::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum PersistenceError {
    #[error("database.url is not a usable PostgreSQL URL: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    #[error("cannot build the connection pool")]
    Pool(#[source] r2d2::Error),
    #[error("a database query failed")]
    Query(#[source] diesel::result::Error),
    #[error("applying migrations failed")]
    Migrate(#[source] BoxError),
}

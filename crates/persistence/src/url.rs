//! Which backend a database URL names.

use std::fmt;
use std::path::PathBuf;

use crate::error::PersistenceError;

/// A parsed `database.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, passed to libpq as is.
    Postgres(String),
    /// `sqlite://path/to/file.db` (relative to the working directory) or
    /// `sqlite:///absolute/path.db`.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// # Errors
    /// [`PersistenceError::InvalidUrl`] for a URL that names no supported backend.
    pub fn parse(url: &str) -> Result<Self, PersistenceError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(PersistenceError::InvalidUrl(
                    "a SQLite URL needs a file path, e.g. sqlite://data/identity.db (an in-memory \
                     database would be lost at exit and not shared between connections)"
                        .to_owned(),
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(PersistenceError::InvalidUrl(
            "it must start with postgres://, postgresql:// or sqlite:// \
             (e.g. sqlite://data/identity.db or postgres://user@host:5432/identity)"
                .to_owned(),
        ))
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// Safe to log: a PostgreSQL URL loses its credentials.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let host = host.split('?').next().unwrap_or_default();
                write!(f, "postgres://{host}")
            }
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_backend_from_the_scheme() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h/db").ok(),
            Some(DatabaseUrl::Postgres("postgres://u:p@h/db".to_owned()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/identity.db").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("data/identity.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/identity.db").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("/var/lib/identity.db")))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:identity.db").ok(),
            Some(DatabaseUrl::Sqlite(PathBuf::from("identity.db")))
        );
        for bad in [
            "mysql://root@h/db",
            "identity.db",
            "sqlite::memory:",
            "sqlite://",
            "",
        ] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_hides_credentials() {
        let url = DatabaseUrl::parse("postgres://u:hunter2@db:5432/x?sslmode=disable");
        assert_eq!(
            url.map(|u| u.to_string()).ok().as_deref(),
            Some("postgres://db:5432/x")
        );
    }
}

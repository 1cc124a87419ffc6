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

/// Safe to log: a PostgreSQL URL loses its credentials (see [`redact_url`]).
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(url) => f.write_str(&redact_url(url)),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

/// A URL as it may be logged: without its user information (`user:password@`) and with the
/// value of every query parameter and the fragment replaced by `***` (`?token=***`), so that
/// no credential, wherever a URL carries it, reaches a log. Every URL the service logs (the
/// database's, the webhook's) goes through this one function.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, _)) => (rest, "#***"),
        None => (rest, ""),
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    // The authority ends at the first '/'; its user information at the last '@' before that.
    let authority_end = location.find('/').unwrap_or(location.len());
    let (authority, path) = location.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let mut redacted = scheme.map_or_else(String::new, |s| format!("{s}://"));
    redacted.push_str(host);
    redacted.push_str(path);
    if !query.is_empty() {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None => param.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&params.join("&"));
    }
    redacted.push_str(fragment);
    redacted
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
            Some("postgres://db:5432/x?sslmode=***")
        );
    }

    #[test]
    fn redaction_removes_user_information_and_query_values() {
        for (url, logged) in [
            (
                "https://hook:s3cret@hooks.shop.io/identity?token=abc&x=1#frag",
                "https://hooks.shop.io/identity?token=***&x=***#***",
            ),
            ("http://hooks.shop.io", "http://hooks.shop.io"),
            (
                "postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write&password=pw",
                "postgres://h1:5432,h2:5433/db?target_session_attrs=***&password=***",
            ),
            // An '@' in the path is not user information.
            ("https://h.io/a@b?flag", "https://h.io/a@b?flag"),
            ("h.io/x?k=v", "h.io/x?k=***"),
        ] {
            assert_eq!(redact_url(url), logged, "{url}");
        }
    }
}

//! Who may call what: API keys and their scopes, and the port that keeps them.
//!
//! The rule: every call but the probes and the documentation needs a key that holds the
//! route's [`Scope`]. Keys are random secrets that are stored only as a hash (the adapter
//! hashes them); a revoked key is never accepted again.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::repository::RepositoryError;

/// What a key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `POST /identify`.
    Identify,
    /// Reading customers: `GET /contacts/{id}`, the history.
    Read,
    /// Erasure, and any later operator action.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Identify, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("unknown scope {0:?}: use identify, read or admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| UnknownScope(s.trim().to_owned()))
    }
}

/// The scopes of one key: at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// # Errors
    /// When `scopes` is empty.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Result<Self, KeyError> {
        let set: BTreeSet<Scope> = scopes.into_iter().collect();
        if set.is_empty() {
            return Err(KeyError::NoScope);
        }
        Ok(Self(set))
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Parses the stored form, `identify,read`.
    ///
    /// # Errors
    /// An unknown or missing scope.
    pub fn parse_list(text: &str) -> Result<Self, KeyError> {
        let scopes = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Scope::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map_err(KeyError::UnknownScope)?;
        Self::new(scopes)
    }
}

impl fmt::Display for Scopes {
    /// The stored form: names joined by commas, in a fixed order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// A key as listed: everything but the secret, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key that may be used: its id, the hash of its secret, and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKey {
    pub id: i64,
    /// Who holds it, as the operator named it (recorded as the author of what it changes).
    pub name: String,
    pub hash: String,
    pub scopes: Scopes,
}

/// Why a key operation was refused.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("a key needs at least one scope (identify, read, admin)")]
    NoScope,
    #[error(transparent)]
    UnknownScope(UnknownScope),
    #[error("a key needs a name of 1 to 100 characters")]
    InvalidName,
    #[error("a key named {0:?} exists already")]
    DuplicateName(String),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Where keys are kept (the same database as the contacts, so that every replica sees the
/// same keys).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait KeyRepository: Send + Sync {
    /// Stores a new key by the hash of its secret.
    ///
    /// # Errors
    /// [`KeyError::DuplicateName`] when the name is taken; [`KeyError::Repository`] when the
    /// store cannot be reached.
    fn create(&self, name: &str, hash: &str, scopes: &Scopes) -> Result<ApiKey, KeyError>;

    /// Every key, revoked ones included, oldest first.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn list(&self) -> Result<Vec<ApiKey>, RepositoryError>;

    /// Revokes the key with this name, or with this id when `name_or_id` is a number and no
    /// key has that name. `None` when there is no such key; a key revoked already stays as
    /// it was.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn revoke(&self, name_or_id: &str) -> Result<Option<ApiKey>, RepositoryError>;

    /// The keys that are not revoked.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn active(&self) -> Result<Vec<ActiveKey>, RepositoryError>;

    /// Records that these keys were used at `at` (called now and then, not per request).
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn touch(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), RepositoryError>;
}

/// Checks a key name: 1 to 100 visible characters.
///
/// # Errors
/// [`KeyError::InvalidName`].
pub fn valid_key_name(name: &str) -> Result<&str, KeyError> {
    let name = name.trim();
    let visible = name.chars().all(|c| !c.is_control());
    if name.is_empty() || name.chars().count() > 100 || !visible {
        return Err(KeyError::InvalidName);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_in_one_order() {
        let scopes = Scopes::parse_list("read, identify").expect("valid");
        assert_eq!(scopes.to_string(), "identify,read");
        assert!(scopes.allows(Scope::Read));
        assert!(!scopes.allows(Scope::Admin));
        assert!(matches!(
            Scopes::parse_list("read,root"),
            Err(KeyError::UnknownScope(UnknownScope(s))) if s == "root"
        ));
        assert!(matches!(Scopes::parse_list(""), Err(KeyError::NoScope)));
    }

    #[test]
    fn key_names_are_short_and_visible() {
        assert_eq!(valid_key_name(" storefront ").ok(), Some("storefront"));
        assert!(valid_key_name("").is_err());
        assert!(valid_key_name("a\nb").is_err());
        assert!(valid_key_name(&"x".repeat(101)).is_err());
    }
}

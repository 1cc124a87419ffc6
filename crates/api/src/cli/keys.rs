//! `identity-api keys create|list|revoke`: managing API keys from the command line, on the
//! database every replica reads its keys from.

use identity_domain::{valid_key_name, ApiKey, KeyError, Scopes};
use thiserror::Error;

use crate::auth::generate_key;
use crate::settings::Settings;
use crate::startup::StartupError;

#[derive(Debug, Error)]
pub enum KeysError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the operating system gave no randomness for a new key: {0}")]
    Random(getrandom::Error),
    #[error("there is no key named or numbered {0:?}")]
    NotFound(String),
}

/// The keys of the configured store; `listing` opens it read-only (nothing created or
/// migrated), else as `serve` would.
fn keys(
    settings: &Settings,
    listing: bool,
) -> Result<std::sync::Arc<dyn identity_domain::KeyRepository>, KeysError> {
    let store_settings = settings.store_settings();
    let store = if listing {
        identity_persistence::open_read_only(&store_settings)
    } else {
        identity_persistence::open(&store_settings)
    }
    .map_err(StartupError::from)?;
    Ok(store.keys)
}

/// Creates a key; returns it and its secret (shown once, stored nowhere).
///
/// # Errors
/// A bad name, a name in use, an unreachable store.
pub fn create(
    settings: &Settings,
    name: &str,
    scopes: &Scopes,
) -> Result<(ApiKey, String), KeysError> {
    let name = valid_key_name(name)?;
    let new = generate_key().map_err(KeysError::Random)?;
    let key = keys(settings, false)?.create(name, &new.hash, scopes)?;
    Ok((key, new.secret))
}

/// Every key, revoked ones included.
///
/// # Errors
/// An unreachable store.
pub fn list(settings: &Settings) -> Result<Vec<ApiKey>, KeysError> {
    keys(settings, true)?
        .list()
        .map_err(|e| KeysError::Startup(StartupError::Store(e)))
}

/// Revokes the key with this name (or id).
///
/// # Errors
/// No such key, an unreachable store.
pub fn revoke(settings: &Settings, name_or_id: &str) -> Result<ApiKey, KeysError> {
    keys(settings, false)?
        .revoke(name_or_id)
        .map_err(|e| KeysError::Startup(StartupError::Store(e)))?
        .ok_or_else(|| KeysError::NotFound(name_or_id.to_owned()))
}

/// One line of `keys list`.
pub fn describe(key: &ApiKey) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "never".to_owned(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    };
    format!(
        "{id}\t{name}\t{scopes}\tcreated {created}\tlast used {used}\t{state}",
        id = key.id,
        name = key.name,
        scopes = key.scopes,
        created = key
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        used = at(key.last_used_at),
        state = key.revoked_at.map_or_else(
            || "active".to_owned(),
            |t| format!("revoked {}", at(Some(t)))
        ),
    )
}

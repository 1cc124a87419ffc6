//! Operator commands besides serving: one function per subcommand of `identity-api`.

use identity_domain::{renormalize, Contact, Rewrite};

use crate::settings::Settings;
use crate::startup::StartupError;

/// Rewrites every stored contact to the current identifier rules (normalized values, blocked
/// values dropped) and merges the customers that turn out to be one. Safe to run while the
/// service serves traffic (writers wait while it runs), and to run again.
///
/// # Errors
/// When the store cannot be opened or the rewrite fails (then nothing was written).
pub fn normalize(settings: &Settings) -> Result<Rewrite, StartupError> {
    let policy = settings.identifier_policy()?;
    let store = identity_persistence::open(&settings.store_settings()?)?;
    let rewrite = store
        .maintenance
        .rewrite_all(&|contacts: &[Contact]| renormalize(contacts, &policy))
        .map_err(StartupError::Store)?;
    Ok(rewrite)
}

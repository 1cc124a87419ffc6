//! Typed configuration, layered with the `config` crate: the compiled-in
//! `config/default.toml`, then `config/$APP_ENV.toml`, then `IDENTITY__*` environment
//! variables, then `DATABASE_URL` and `PORT`.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use identity_domain::{BlockList, CustomerLimits, IdentifierPolicy, IdentifierPriority, Region};
use identity_persistence::{
    DatabaseUrl, PersistenceError, PoolSettings, RetryPolicy, StoreSettings,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: invalid setting {key}: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error("configuration: APP_ENV={env} but {} does not exist", path.display())]
    MissingEnvFile { env: String, path: PathBuf },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub identifiers: IdentifierSettings,
    pub merge_guard: MergeGuardSettings,
    pub admin: AdminSettings,
    pub auth: AuthSettings,
    pub events: EventSettings,
    pub log: LogSettings,
    pub compat: CompatSettings,
}

/// Answers for clients written against the original task's text.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatSettings {
    /// Every answer carrying `primaryContactId` also carries `primaryContatctId` (the task
    /// text's spelling) with the same value.
    pub primary_contatct_id: bool,
}

impl CompatSettings {
    /// The value of `primaryContatctId` next to a `primaryContactId` of `primary`: absent
    /// unless the setting is on.
    pub fn primary_contatct_id(&self, primary: i64) -> Option<i64> {
        self.primary_contatct_id.then_some(primary)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub erasure_enabled: bool,
    /// Replaced by `admin`-scoped API keys: only read to say so when it is still set.
    #[serde(default)]
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// How often each replica re-reads the keys: a revoked key stops working within this.
    pub refresh_ms: NonZeroU64,
    /// Failed attempts (no key, unknown key) one client address may make per minute before
    /// it is answered 429.
    pub max_failures_per_minute: NonZeroU32,
    /// A key to store at start-up when no key exists yet (containers). Never printed.
    pub bootstrap_key: SecretString,
    /// The scopes of the bootstrap key.
    pub bootstrap_scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub webhook_url: String,
    /// Never printed.
    pub secret: SecretString,
    pub poll_interval_ms: u64,
    pub batch_size: usize,
    pub request_timeout_ms: u64,
    pub max_backoff_secs: u64,
    /// Failed deliveries of one event before it is given up on (dead).
    pub max_attempts: NonZeroU32,
    /// Hours after which an undelivered event is given up on.
    pub max_age_hours: NonZeroU64,
    /// Hours delivered and dead events are kept before they are deleted.
    pub retention_hours: u64,
}

impl EventSettings {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_hours.get().saturating_mul(3600))
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_hours.saturating_mul(3600))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierSettings {
    pub default_region: String,
    pub blocked_emails: Vec<String>,
    pub blocked_email_patterns: Vec<String>,
    pub blocked_phones: Vec<String>,
    pub block_repeated_digit_phones: bool,
    pub repeated_digit_min_digits: NonZeroUsize,
    /// The request's fields, highest priority first: the merge guard drops the last first.
    pub priority: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeGuardSettings {
    pub max_contacts: usize,
    pub max_emails: usize,
    pub max_phones: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Holds credentials: never printed.
    pub url: SecretString,
    /// Standbys for the lock-free reads; empty: none. Holds credentials: never printed.
    pub read_url: SecretString,
    pub create_if_missing: bool,
    pub run_migrations: bool,
    pub pool_size: u32,
    pub min_idle: u32,
    pub connect_timeout_ms: u64,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
    pub deadline_ms: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The least a bootstrap key must carry by [`estimated_entropy_bits`]: 64 random hex digits
/// carry about 240, 32 random base64 characters about 140; a repeated character none.
const MIN_KEY_ENTROPY_BITS: f64 = 100.0;

/// A simple estimate of how much randomness a secret holds: the Shannon entropy of its
/// characters' frequencies times its length, counting a string made of one part repeated
/// (`abab…`, a word typed five times) as that part alone. It cannot tell a random string
/// from a clever pattern, but it refuses what an operator types by hand.
fn estimated_entropy_bits(secret: &str) -> f64 {
    let chars: Vec<char> = secret.chars().collect();
    let period = (1..=chars.len())
        .find(|&p| (p..chars.len()).all(|i| chars[i] == chars[i - p]))
        .unwrap_or(chars.len());
    let part = &chars[..period];
    let mut counts: HashMap<char, usize> = HashMap::new();
    for &c in part {
        *counts.entry(c).or_default() += 1;
    }
    let length = part.len() as f64;
    let per_character: f64 = counts
        .values()
        .map(|&n| {
            let p = n as f64 / length;
            -p * p.log2()
        })
        .sum();
    per_character * length
}

impl Settings {
    /// Loads the settings of this process: its environment, and the config directory
    /// `$IDENTITY_CONFIG_DIR` (default `./config`).
    ///
    /// # Errors
    /// A bad or unknown setting, or an `APP_ENV` without its file.
    pub fn load() -> Result<Self, SettingsError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let dir = env
            .get("IDENTITY_CONFIG_DIR")
            .map_or_else(|| PathBuf::from("config"), PathBuf::from);
        Self::load_from(&dir, &env)
    }

    /// The compiled-in defaults alone.
    ///
    /// # Errors
    /// Only if the defaults themselves are broken.
    pub fn defaults() -> Result<Self, SettingsError> {
        Self::load_from(Path::new("/nonexistent"), &HashMap::new())
    }

    /// Loads the settings from `dir` and the environment `env` (a map, so that tests need
    /// not touch the process environment).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from(dir: &Path, env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(app_env) = env.get("APP_ENV").filter(|v| !v.is_empty()) {
            let path = dir.join(format!("{app_env}.toml"));
            if !path.exists() {
                return Err(SettingsError::MissingEnvFile {
                    env: app_env.clone(),
                    path,
                });
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        let identity_vars: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("IDENTITY__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder
            .add_source(
                Environment::with_prefix("IDENTITY")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("identifiers.blocked_emails")
                    .with_list_parse_key("identifiers.blocked_email_patterns")
                    .with_list_parse_key("identifiers.blocked_phones")
                    .with_list_parse_key("identifiers.priority")
                    .with_list_parse_key("auth.bootstrap_scopes")
                    .source(Some(identity_vars)),
            )
            .set_override_option("database.url", env.get("DATABASE_URL").cloned())?
            .set_override_option("server.port", env.get("PORT").cloned())?;
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        if let Some(filter) = env.get("RUST_LOG").filter(|f| !f.is_empty()) {
            if tracing_subscriber::EnvFilter::try_new(filter).is_err() {
                return Err(SettingsError::Invalid {
                    key: "RUST_LOG",
                    problem: "must be a level or tracing directives".to_owned(),
                });
            }
        }
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, problem: &str| {
            Err(SettingsError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        let db = &self.database;
        if db.pool_size == 0 {
            return invalid("database.pool_size", "must be at least 1");
        }
        if db.max_attempts == 0 {
            return invalid("database.max_attempts", "must be at least 1");
        }
        for (key, value) in [
            ("database.connect_timeout_ms", db.connect_timeout_ms),
            ("database.acquire_timeout_ms", db.acquire_timeout_ms),
            ("database.statement_timeout_ms", db.statement_timeout_ms),
            ("database.lock_timeout_ms", db.lock_timeout_ms),
            ("database.deadline_ms", db.deadline_ms),
        ] {
            if value == 0 {
                return invalid(key, "must be more than 0");
            }
        }
        if let Err(e) = DatabaseUrl::parse(db.url.expose_secret()) {
            return Err(SettingsError::Invalid {
                key: "database.url",
                problem: e.to_string(),
            });
        }
        let read_url = db.read_url.expose_secret().trim();
        if !read_url.is_empty() {
            match (DatabaseUrl::parse(db.url.expose_secret()), DatabaseUrl::parse(read_url)) {
                (Ok(DatabaseUrl::Sqlite(_)), _) => {
                    return invalid(
                        "database.read_url",
                        "needs PostgreSQL: database.url is a SQLite file, which has no standbys \
                         (unset database.read_url, or move to PostgreSQL with streaming replication)",
                    )
                }
                (_, Ok(DatabaseUrl::Postgres(_))) => {}
                _ => {
                    return invalid(
                        "database.read_url",
                        "must be a postgres:// URL naming one or more standbys \
                         (postgres://user@standby1:5432,standby2:5432/identity)",
                    )
                }
            }
        }
        if db.lock_timeout_ms >= db.statement_timeout_ms {
            return invalid(
                "database.lock_timeout_ms",
                "must be less than database.statement_timeout_ms, so that a lock wait ends as a retryable collision",
            );
        }
        self.identifier_policy()?;
        self.identifier_priority()?;
        if self
            .admin
            .token
            .as_ref()
            .is_some_and(|t| !t.expose_secret().trim().is_empty())
        {
            return invalid(
                "admin.token",
                "was replaced by API keys with the admin scope: create one with \
                 `identity-api keys create --name admin --scope admin` and remove this setting",
            );
        }
        self.bootstrap_scopes()?;
        let bootstrap = self.auth.bootstrap_key.expose_secret().trim();
        if !bootstrap.is_empty()
            && (bootstrap.len() < 32 || estimated_entropy_bits(bootstrap) < MIN_KEY_ENTROPY_BITS)
        {
            return invalid(
                "auth.bootstrap_key",
                "must be a random secret of at least 32 characters (e.g. `openssl rand -hex 32`), \
                 not a word or a pattern; or create keys with `identity-api keys create` instead",
            );
        }
        let events = &self.events;
        if !events.webhook_url.is_empty() {
            if !(events.webhook_url.starts_with("http://")
                || events.webhook_url.starts_with("https://"))
            {
                return invalid("events.webhook_url", "must be an http:// or https:// URL");
            }
            if events.secret.expose_secret().is_empty() {
                return invalid(
                    "events.secret",
                    "must be set when events.webhook_url is (IDENTITY__EVENTS__SECRET)",
                );
            }
            if events.batch_size == 0
                || events.poll_interval_ms == 0
                || events.request_timeout_ms == 0
            {
                return invalid(
                    "events.*",
                    "batch_size, poll_interval_ms and request_timeout_ms must be more than 0",
                );
            }
        }
        let guard = &self.merge_guard;
        for (key, value) in [
            ("merge_guard.max_contacts", guard.max_contacts),
            ("merge_guard.max_emails", guard.max_emails),
            ("merge_guard.max_phones", guard.max_phones),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1");
            }
        }
        if self.server.max_body_bytes < 256 {
            return invalid("server.max_body_bytes", "must be at least 256");
        }
        if self.server.host.trim().is_empty() {
            return invalid("server.host", "must not be empty");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid(
                "log.level",
                "must be a level (error, warn, info, debug, trace) or tracing directives",
            );
        }
        Ok(())
    }

    /// How identifiers are read: the default region and the blocked values.
    ///
    /// # Errors
    /// An unknown region or a list entry that is not an email or phone, naming the setting.
    pub fn identifier_policy(&self) -> Result<IdentifierPolicy, SettingsError> {
        let ids = &self.identifiers;
        let region =
            Region::parse(&ids.default_region).map_err(|problem| SettingsError::Invalid {
                key: "identifiers.default_region",
                problem,
            })?;
        let blocked = BlockList::new(
            &ids.blocked_emails,
            &ids.blocked_email_patterns,
            &ids.blocked_phones,
            ids.block_repeated_digit_phones
                .then_some(ids.repeated_digit_min_digits.get()),
            region,
        )
        .map_err(|problem| SettingsError::Invalid {
            key: "identifiers.blocked_*",
            problem,
        })?;
        Ok(IdentifierPolicy { region, blocked })
    }

    /// Which identifier the merge guard drops first.
    ///
    /// # Errors
    /// A list that does not name `email` and `phoneNumber` once each.
    pub fn identifier_priority(&self) -> Result<IdentifierPriority, SettingsError> {
        IdentifierPriority::parse(&self.identifiers.priority).map_err(|problem| {
            SettingsError::Invalid {
                key: "identifiers.priority",
                problem,
            }
        })
    }

    /// The scopes of the bootstrap key.
    ///
    /// # Errors
    /// An unknown scope, or none.
    pub fn bootstrap_scopes(&self) -> Result<identity_domain::Scopes, SettingsError> {
        let scopes = self
            .auth
            .bootstrap_scopes
            .iter()
            .map(|s| s.parse::<identity_domain::Scope>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SettingsError::Invalid {
                key: "auth.bootstrap_scopes",
                problem: e.to_string(),
            })?;
        identity_domain::Scopes::new(scopes).map_err(|e| SettingsError::Invalid {
            key: "auth.bootstrap_scopes",
            problem: e.to_string(),
        })
    }

    /// Whether `server.host` is a loopback address (only this machine can connect).
    pub fn listens_on_loopback(&self) -> bool {
        let host = self.server.host.trim();
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The merge guard.
    pub fn customer_limits(&self) -> CustomerLimits {
        CustomerLimits {
            max_contacts: self.merge_guard.max_contacts,
            max_emails: self.merge_guard.max_emails,
            max_phones: self.merge_guard.max_phones,
        }
    }

    /// What the persistence crate needs to open the store.
    ///
    /// # Errors
    /// When `database.url` names no supported backend (already refused by loading).
    pub fn store_settings(&self) -> Result<StoreSettings, PersistenceError> {
        let db = &self.database;
        let pool = PoolSettings {
            max_size: db.pool_size,
            min_idle: db.min_idle,
            connect_timeout: Duration::from_millis(db.connect_timeout_ms),
            acquire_timeout: Duration::from_millis(db.acquire_timeout_ms),
            statement_timeout: Duration::from_millis(db.statement_timeout_ms),
            lock_timeout: Duration::from_millis(db.lock_timeout_ms),
            deadline: Duration::from_millis(db.deadline_ms),
        };
        Ok(StoreSettings {
            url: DatabaseUrl::parse(db.url.expose_secret())?.with_timeouts(&pool),
            create_if_missing: db.create_if_missing,
            run_migrations: db.run_migrations,
            read_url: match db.read_url.expose_secret().trim() {
                "" => None,
                url => Some(DatabaseUrl::parse(url)?.with_timeouts(&pool)),
            },
            pool,
            retry: RetryPolicy {
                max_attempts: db.max_attempts,
                ..RetryPolicy::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load_from(Path::new("/nonexistent"), &env(pairs))
    }

    #[test]
    fn defaults_load() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert_eq!(settings.server.port, 8080);
        assert!(settings.database.run_migrations);
        assert!(matches!(
            settings.store_settings().map(|s| s.url),
            Ok(DatabaseUrl::Sqlite(_))
        ));
        assert_eq!(settings.log.format, LogFormat::Text);
    }

    #[test]
    fn environment_overrides_files_and_conventional_names_win() {
        let settings = load(&[
            ("IDENTITY__SERVER__PORT", "9000"),
            ("IDENTITY__DATABASE__POOL_SIZE", "3"),
            ("IDENTITY__LOG__FORMAT", "json"),
        ])
        .expect("valid");
        assert_eq!(settings.server.port, 9000);
        assert_eq!(settings.database.pool_size, 3);
        assert_eq!(settings.log.format, LogFormat::Json);

        let settings = load(&[
            ("IDENTITY__SERVER__PORT", "9000"),
            ("PORT", "7000"),
            ("DATABASE_URL", "postgres://u@db:5432/x"),
        ])
        .expect("valid");
        assert_eq!(settings.server.port, 7000);
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://u@db:5432/x"
        );
    }

    #[test]
    fn a_bad_setting_is_named_in_one_line() {
        let message = |pairs: &[(&str, &str)]| match load(pairs) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        let port = message(&[("IDENTITY__SERVER__PORT", "eighty")]);
        assert!(port.contains("server.port"), "{port}");
        let pool = message(&[("IDENTITY__DATABASE__POOL_SIZE", "0")]);
        assert!(pool.contains("database.pool_size"), "{pool}");
        let url = message(&[("DATABASE_URL", "mysql://x")]);
        let timeouts = message(&[("IDENTITY__DATABASE__LOCK_TIMEOUT_MS", "9000")]);
        assert!(timeouts.contains("database.lock_timeout_ms"), "{timeouts}");
        let region = message(&[("IDENTITY__IDENTIFIERS__DEFAULT_REGION", "Atlantis")]);
        assert!(region.contains("identifiers.default_region"), "{region}");
        let guard = message(&[("IDENTITY__MERGE_GUARD__MAX_EMAILS", "0")]);
        assert!(guard.contains("merge_guard.max_emails"), "{guard}");
        let blocked = message(&[("IDENTITY__IDENTIFIERS__BLOCKED_PHONES", "12ab")]);
        assert!(blocked.contains("identifiers.blocked"), "{blocked}");
        let priority = message(&[("IDENTITY__IDENTIFIERS__PRIORITY", "phoneNumber")]);
        assert!(priority.contains("identifiers.priority"), "{priority}");
        let admin = message(&[("IDENTITY__ADMIN__TOKEN", "s3cret")]);
        assert!(
            admin.contains("admin.token") && admin.contains("keys create"),
            "{admin}"
        );
        let scopes = message(&[("IDENTITY__AUTH__BOOTSTRAP_SCOPES", "identify,root")]);
        assert!(scopes.contains("auth.bootstrap_scopes"), "{scopes}");
        let events = message(&[(
            "IDENTITY__EVENTS__WEBHOOK_URL",
            "http://hooks.example/identity",
        )]);
        assert!(events.contains("events.secret"), "{events}");
        let rust_log = message(&[("RUST_LOG", "info,[=")]);
        assert!(rust_log.contains("RUST_LOG"), "{rust_log}");
        assert!(url.contains("database.url"), "{url}");
        let level = message(&[("IDENTITY__LOG__LEVEL", "loud=[")]);
        assert!(level.contains("log.level"), "{level}");
        let standbys = message(&[("IDENTITY__DATABASE__READ_URL", "postgres://u@standby/x")]);
        assert!(
            standbys.contains("database.read_url") && standbys.contains("SQLite"),
            "{standbys}"
        );
        let standbys = message(&[
            ("DATABASE_URL", "postgres://u@primary/x"),
            ("IDENTITY__DATABASE__READ_URL", "sqlite://x.db"),
        ]);
        assert!(standbys.contains("database.read_url"), "{standbys}");
        assert!(load(&[
            ("DATABASE_URL", "postgres://u@primary/x"),
            (
                "IDENTITY__DATABASE__READ_URL",
                "postgres://u@s1:5432,s2:5432/x"
            ),
        ])
        .is_ok_and(|s| s.store_settings().is_ok_and(|s| s.read_url.is_some())));
        for m in [port, pool, url, level] {
            assert!(!m.contains('\n'), "{m}");
        }
    }

    #[test]
    fn app_env_file_layers_over_defaults() {
        let dir = std::env::temp_dir().join(format!("identity-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("staging.toml"), "[server]\nport = 8181\n").expect("write");
        let settings = Settings::load_from(&dir, &env(&[("APP_ENV", "staging")])).expect("valid");
        assert_eq!(settings.server.port, 8181);
        let missing = Settings::load_from(&dir, &env(&[("APP_ENV", "prod")]));
        assert!(matches!(missing, Err(SettingsError::MissingEnvFile { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn block_lists_come_from_the_environment_as_comma_separated_lists() {
        let settings = load(&[(
            "IDENTITY__IDENTIFIERS__BLOCKED_EMAILS",
            "junk@shop.io,nobody@shop.io",
        )])
        .expect("valid");
        assert_eq!(
            settings.identifiers.blocked_emails,
            ["junk@shop.io", "nobody@shop.io"]
        );
    }

    #[test]
    fn a_bootstrap_key_must_look_random() {
        let refused = |key: &str| {
            matches!(
                load(&[("IDENTITY__AUTH__BOOTSTRAP_KEY", key)]),
                Err(SettingsError::Invalid { key: "auth.bootstrap_key", problem })
                    if problem.contains("keys create")
            )
        };
        for weak in [
            "a".repeat(40),
            "ab".repeat(20),
            "password".repeat(5),
            "0123456789".repeat(4),
            "short".to_owned(),
        ] {
            assert!(refused(&weak), "{weak}");
        }
        for strong in [
            "6f1c0e3b9a2d47c58e4b1f0a7d3c2e9b5a8f7e6d4c3b2a1908f7e6d5c4b3a291",
            "Qx7vN2mK9pL4wR8tY3zB6cD1fG5hJ0sA",
        ] {
            assert!(!refused(strong), "{strong}");
            assert!(load(&[("IDENTITY__AUTH__BOOTSTRAP_KEY", strong)]).is_ok());
        }
    }

    #[test]
    fn the_database_url_never_prints() {
        let settings = load(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]).expect("valid");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}

//! Typed configuration, layered with the `config` crate: the compiled-in
//! `config/default.toml`, then `config/$APP_ENV.toml`, then `IDENTITY__*` environment
//! variables, then `DATABASE_URL`, `PORT` and `RUST_LOG`.
//!
//! Each setting is read once, straight into the type the program uses (a [`DatabaseUrl`], a
//! [`Duration`], a `NonZero*`, the domain's [`IdentifierPolicy`] and [`CustomerLimits`], a
//! [`Webhook`] only when there is one), so nothing downstream validates or parses a setting
//! again. What spans several settings, or a retired one, is checked once loaded
//! (`Settings::validate`).

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use identity_domain::{
    BlockList, CustomerLimits, IdentifierPolicy, IdentifierPriority, Region, Scope, Scopes,
};
use identity_persistence::{DatabaseUrl, PoolSettings, RetryPolicy, StoreSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::{de, Deserialize, Deserializer};
use thiserror::Error;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

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
    /// How large one customer may grow (`[merge_guard]`).
    #[serde(deserialize_with = "customer_limits")]
    pub merge_guard: CustomerLimits,
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
    #[serde(rename = "refresh_ms", deserialize_with = "positive_millis")]
    pub refresh: Duration,
    /// Failed attempts (no key, unknown key) one client address may make per minute before
    /// it is answered 429.
    pub max_failures_per_minute: NonZeroU32,
    /// A key to store at start-up when no key exists yet (containers); `None` when unset.
    /// Never printed.
    #[serde(deserialize_with = "bootstrap_key")]
    pub bootstrap_key: Option<SecretString>,
    /// The scopes of the bootstrap key.
    #[serde(deserialize_with = "scopes")]
    pub bootstrap_scopes: Scopes,
}

/// `[events]`: the outbox's bounds, and the webhook its events go to.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "EventFile")]
pub struct EventSettings {
    /// Where and how change events are delivered; `None` (no `webhook_url`): no dispatcher
    /// runs, and events wait in the outbox.
    pub webhook: Option<Webhook>,
    /// Failed deliveries of one event before it is given up on (dead).
    pub max_attempts: NonZeroU32,
    /// How long an undelivered event is tried before it is given up on.
    pub max_age: Duration,
    /// How long delivered and dead events are kept before they are deleted.
    pub retention: Duration,
}

/// A webhook and how the dispatcher delivers to it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The HMAC key of the signature. Never printed.
    pub secret: SecretString,
    pub poll_interval: Duration,
    pub batch_size: NonZeroUsize,
    pub request_timeout: Duration,
    /// The longest pause between two deliveries of one event (at least 1 s).
    pub max_backoff: Duration,
}

/// `[events]` as written: the dispatcher's settings only count with a `webhook_url`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    webhook_url: String,
    secret: SecretString,
    poll_interval_ms: u64,
    batch_size: usize,
    request_timeout_ms: u64,
    max_backoff_secs: u64,
    max_attempts: NonZeroU32,
    max_age_hours: NonZeroU64,
    retention_hours: u64,
}

impl TryFrom<EventFile> for EventSettings {
    type Error = String;

    fn try_from(file: EventFile) -> Result<Self, String> {
        let hours = |n: u64| Duration::from_secs(n.saturating_mul(3600));
        let webhook = if file.webhook_url.is_empty() {
            None
        } else {
            let url = file.webhook_url;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err("events.webhook_url: must be an http:// or https:// URL".to_owned());
            }
            if file.secret.expose_secret().is_empty() {
                return Err(
                    "events.secret: must be set when events.webhook_url is (IDENTITY__EVENTS__SECRET)"
                        .to_owned(),
                );
            }
            let positive = |n: u64| (n > 0).then_some(n);
            let (Some(poll), Some(batch_size), Some(timeout)) = (
                positive(file.poll_interval_ms),
                NonZeroUsize::new(file.batch_size),
                positive(file.request_timeout_ms),
            ) else {
                return Err(
                    "events.*: batch_size, poll_interval_ms and request_timeout_ms \
                     must be more than 0"
                        .to_owned(),
                );
            };
            Some(Webhook {
                url,
                secret: file.secret,
                poll_interval: Duration::from_millis(poll),
                batch_size,
                request_timeout: Duration::from_millis(timeout),
                max_backoff: Duration::from_secs(file.max_backoff_secs.max(1)),
            })
        };
        Ok(Self {
            webhook,
            max_attempts: file.max_attempts,
            max_age: hours(file.max_age_hours.get()),
            retention: hours(file.retention_hours),
        })
    }
}

/// `[identifiers]`, read into the domain's types.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "IdentifierFile")]
pub struct IdentifierSettings {
    /// How identifiers are read: the default region and the blocked values.
    pub policy: IdentifierPolicy,
    /// Which identifier the merge guard drops first.
    pub priority: IdentifierPriority,
}

/// `[identifiers]` as written: the region and the block lists make one policy together.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierFile {
    default_region: String,
    blocked_emails: Vec<String>,
    blocked_email_patterns: Vec<String>,
    blocked_phones: Vec<String>,
    block_repeated_digit_phones: bool,
    repeated_digit_min_digits: NonZeroUsize,
    /// The request's fields, highest priority first: the merge guard drops the last first.
    priority: Vec<String>,
}

impl TryFrom<IdentifierFile> for IdentifierSettings {
    type Error = String;

    fn try_from(file: IdentifierFile) -> Result<Self, String> {
        let region = Region::parse(&file.default_region)
            .map_err(|problem| format!("identifiers.default_region: {problem}"))?;
        let blocked = BlockList::new(
            &file.blocked_emails,
            &file.blocked_email_patterns,
            &file.blocked_phones,
            file.block_repeated_digit_phones
                .then_some(file.repeated_digit_min_digits.get()),
            region,
        )
        .map_err(|problem| format!("identifiers.blocked_*: {problem}"))?;
        let priority = IdentifierPriority::parse(&file.priority)
            .map_err(|problem| format!("identifiers.priority: {problem}"))?;
        Ok(Self {
            policy: IdentifierPolicy { region, blocked },
            priority,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(deserialize_with = "host")]
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; `None` (0 in the file): one per CPU core.
    #[serde(deserialize_with = "zero_is_none")]
    pub workers: Option<NonZeroUsize>,
    /// Time in-flight requests get to finish after SIGTERM/SIGINT.
    #[serde(rename = "shutdown_timeout_secs", deserialize_with = "secs")]
    pub shutdown_timeout: Duration,
    #[serde(deserialize_with = "body_limit")]
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Holds credentials: prints without them.
    #[serde(deserialize_with = "database_url")]
    pub url: DatabaseUrl,
    /// Standbys for the lock-free reads; `None`: every read goes to `url`. Holds
    /// credentials: prints without them.
    #[serde(deserialize_with = "standby_url")]
    pub read_url: Option<DatabaseUrl>,
    pub create_if_missing: bool,
    pub run_migrations: bool,
    pub pool_size: NonZeroU32,
    pub min_idle: u32,
    #[serde(rename = "connect_timeout_ms", deserialize_with = "positive_millis")]
    pub connect_timeout: Duration,
    #[serde(rename = "acquire_timeout_ms", deserialize_with = "positive_millis")]
    pub acquire_timeout: Duration,
    #[serde(rename = "statement_timeout_ms", deserialize_with = "positive_millis")]
    pub statement_timeout: Duration,
    #[serde(rename = "lock_timeout_ms", deserialize_with = "positive_millis")]
    pub lock_timeout: Duration,
    #[serde(rename = "deadline_ms", deserialize_with = "positive_millis")]
    pub deadline: Duration,
    pub max_attempts: NonZeroU32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `log.level`, or `RUST_LOG` when that is set.
    pub level: LogFilter,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A tracing filter (`info`, `info,identity_persistence=debug`), parsed into its directives.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct LogFilter(Vec<Directive>);

impl LogFilter {
    /// The filter for the subscriber.
    pub fn env_filter(&self) -> EnvFilter {
        self.0
            .iter()
            .cloned()
            .fold(EnvFilter::default(), EnvFilter::add_directive)
    }
}

impl TryFrom<String> for LogFilter {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(Directive::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
            .map_err(|_| {
                "must be a level (error, warn, info, debug, trace) or tracing directives \
                 (log.level, or RUST_LOG, which overrides it)"
                    .to_owned()
            })
    }
}

// Deserializers from what the file says to what the program uses.

/// A positive number of milliseconds.
fn positive_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    NonZeroU64::deserialize(d).map(|n| Duration::from_millis(n.get()))
}

/// A number of seconds, 0 included.
fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// A host name or address, not empty.
fn host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let host = String::deserialize(d)?;
    if host.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(host)
}

/// A number of bytes, at least 256 (a request's JSON must fit).
fn body_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        n if n < 256 => Err(de::Error::custom("must be at least 256")),
        n => Ok(n),
    }
}

/// A count where 0 means "the default".
fn zero_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NonZeroUsize>, D::Error> {
    usize::deserialize(d).map(NonZeroUsize::new)
}

fn database_url<'de, D: Deserializer<'de>>(d: D) -> Result<DatabaseUrl, D::Error> {
    DatabaseUrl::parse(&String::deserialize(d)?).map_err(de::Error::custom)
}

/// Empty: none; else a `postgres://` URL naming one or more standbys.
fn standby_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DatabaseUrl>, D::Error> {
    match String::deserialize(d)?.trim() {
        "" => Ok(None),
        url => match DatabaseUrl::parse(url) {
            Ok(url @ DatabaseUrl::Postgres(_)) => Ok(Some(url)),
            _ => Err(de::Error::custom(
                "must be a postgres:// URL naming one or more standbys \
                 (postgres://user@standby1:5432,standby2:5432/identity)",
            )),
        },
    }
}

fn customer_limits<'de, D: Deserializer<'de>>(d: D) -> Result<CustomerLimits, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Limits {
        max_contacts: NonZeroUsize,
        max_emails: NonZeroUsize,
        max_phones: NonZeroUsize,
    }
    let limits = Limits::deserialize(d)?;
    Ok(CustomerLimits {
        max_contacts: limits.max_contacts.get(),
        max_emails: limits.max_emails.get(),
        max_phones: limits.max_phones.get(),
    })
}

fn scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Scopes, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let scopes = names
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(de::Error::custom)?;
    Scopes::new(scopes).map_err(de::Error::custom)
}

/// The least a bootstrap key must carry by [`estimated_entropy_bits`]: 64 random hex digits
/// carry about 240, 32 random base64 characters about 140; a repeated character none.
const MIN_KEY_ENTROPY_BITS: f64 = 100.0;

/// Empty: none; else a random secret of at least 32 characters.
fn bootstrap_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    let key = SecretString::deserialize(d)?;
    let key = key.expose_secret().trim();
    if key.is_empty() {
        return Ok(None);
    }
    if key.len() < 32 || estimated_entropy_bits(key) < MIN_KEY_ENTROPY_BITS {
        return Err(de::Error::custom(
            "must be a random secret of at least 32 characters (e.g. `openssl rand -hex 32`), \
             not a word or a pattern; or create keys with `identity-api keys create` instead",
        ));
    }
    Ok(Some(SecretString::from(key.to_owned())))
}

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
        let conventional = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
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
            .set_override_option("server.port", env.get("PORT").cloned())?
            .set_override_option("log.level", conventional("RUST_LOG"))?;
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// What spans several settings, or a setting kept only to be refused.
    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, problem: &str| {
            Err(SettingsError::Invalid {
                key,
                problem: problem.to_owned(),
            })
        };
        let db = &self.database;
        if matches!(db.url, DatabaseUrl::Sqlite(_)) && db.read_url.is_some() {
            return invalid(
                "database.read_url",
                "needs PostgreSQL: database.url is a SQLite file, which has no standbys \
                 (unset database.read_url, or move to PostgreSQL with streaming replication)",
            );
        }
        if db.lock_timeout >= db.statement_timeout {
            return invalid(
                "database.lock_timeout_ms",
                "must be less than database.statement_timeout_ms, so that a lock wait ends as a retryable collision",
            );
        }
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
        Ok(())
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

    /// What the persistence crate needs to open the store.
    pub fn store_settings(&self) -> StoreSettings {
        let db = &self.database;
        let pool = PoolSettings {
            max_size: db.pool_size.get(),
            min_idle: db.min_idle,
            connect_timeout: db.connect_timeout,
            acquire_timeout: db.acquire_timeout,
            statement_timeout: db.statement_timeout,
            lock_timeout: db.lock_timeout,
            deadline: db.deadline,
        };
        StoreSettings {
            url: db.url.clone(),
            create_if_missing: db.create_if_missing,
            run_migrations: db.run_migrations,
            read_url: db.read_url.clone(),
            pool,
            retry: RetryPolicy {
                max_attempts: db.max_attempts.get(),
                ..RetryPolicy::default()
            },
        }
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
        assert!(matches!(settings.database.url, DatabaseUrl::Sqlite(_)));
        assert_eq!(settings.log.format, LogFormat::Text);
    }

    #[test]
    fn settings_arrive_as_the_types_the_program_uses() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert_eq!(settings.database.deadline, Duration::from_secs(10));
        assert_eq!(settings.auth.refresh, Duration::from_secs(2));
        assert_eq!(settings.events.max_age, Duration::from_secs(72 * 3600));
        assert!(settings.events.webhook.is_none());
        assert_eq!(settings.server.workers, None, "0: one per core");
        assert!(settings.auth.bootstrap_key.is_none());
        assert_eq!(settings.merge_guard.max_contacts, 500);

        let settings = load(&[
            ("IDENTITY__SERVER__WORKERS", "3"),
            ("IDENTITY__SERVER__SHUTDOWN_TIMEOUT_SECS", "0"),
            ("IDENTITY__EVENTS__RETENTION_HOURS", "0"),
        ])
        .expect("valid");
        assert_eq!(settings.server.workers.map(NonZeroUsize::get), Some(3));
        assert_eq!(settings.server.shutdown_timeout, Duration::ZERO);
        assert_eq!(settings.events.retention, Duration::ZERO);
        for (key, named) in [
            ("IDENTITY__DATABASE__DEADLINE_MS", "database.deadline_ms"),
            ("IDENTITY__EVENTS__MAX_ATTEMPTS", "events"),
            ("IDENTITY__SERVER__MAX_BODY_BYTES", "server.max_body_bytes"),
            ("IDENTITY__MERGE_GUARD__MAX_PHONES", "merge_guard"),
        ] {
            let refused = load(&[(key, "0")])
                .map(|_| ())
                .expect_err("refused")
                .to_string();
            assert!(refused.contains(named), "{key}=0: {refused}");
        }
        // The dispatcher's settings count only with a webhook.
        assert!(load(&[("IDENTITY__EVENTS__BATCH_SIZE", "0")]).is_ok());
        let webhook = [
            (
                "IDENTITY__EVENTS__WEBHOOK_URL",
                "https://hooks.example/identity",
            ),
            ("IDENTITY__EVENTS__SECRET", "s3cret"),
            ("IDENTITY__EVENTS__MAX_BACKOFF_SECS", "0"),
        ];
        let settings = load(&webhook).expect("valid");
        let hook = settings.events.webhook.expect("a webhook");
        assert_eq!(hook.url, "https://hooks.example/identity");
        assert_eq!(hook.max_backoff, Duration::from_secs(1), "0 counts as 1 s");
        let refused = load(&[
            webhook[0],
            webhook[1],
            ("IDENTITY__EVENTS__BATCH_SIZE", "0"),
        ])
        .map(|_| ())
        .expect_err("refused")
        .to_string();
        assert!(refused.contains("batch_size"), "{refused}");
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
        assert_eq!(settings.database.pool_size.get(), 3);
        assert_eq!(settings.log.format, LogFormat::Json);

        let settings = load(&[
            ("IDENTITY__SERVER__PORT", "9000"),
            ("PORT", "7000"),
            ("DATABASE_URL", "postgres://u@db:5432/x"),
        ])
        .expect("valid");
        assert_eq!(settings.server.port, 7000);
        assert_eq!(
            settings.database.url,
            DatabaseUrl::Postgres("postgres://u@db:5432/x".to_owned())
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
        .is_ok_and(|s| s.database.read_url.is_some()));
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
        let blocked = |email: &str| {
            let email = identity_domain::Email::parse(email).ok().flatten();
            email.is_some_and(|e| settings.identifiers.policy.blocked.blocks_email(&e))
        };
        assert!(blocked("junk@shop.io") && blocked("nobody@shop.io"));
        assert!(
            !blocked("test@test.com"),
            "the list replaces the default one"
        );
    }

    #[test]
    fn a_bootstrap_key_must_look_random() {
        let refused = |key: &str| {
            load(&[("IDENTITY__AUTH__BOOTSTRAP_KEY", key)]).is_err_and(|e| {
                let message = e.to_string();
                message.contains("auth.bootstrap_key") && message.contains("keys create")
            })
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

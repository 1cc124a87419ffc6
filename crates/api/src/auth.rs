//! Access control: every route but the probes, the docs, the OpenAPI document and the
//! metrics needs `Authorization: Bearer <key>` with a key that holds the route's scope.
//! Handlers declare it by taking [`Authorized<S>`] as their first argument.
//!
//! Keys are random 256-bit secrets (`idk_` and 64 hex digits), stored only as their SHA-256.
//! Each replica keeps the active keys' hashes in memory and re-reads them every
//! `auth.refresh_ms` (a revoked key stops working within that), so a check costs no round
//! trip; it compares hashes in constant time (`subtle`). Failed attempts are counted per
//! client address: past `auth.max_failures_per_minute` the client is answered 429 with
//! `Retry-After` without its key being looked at, so keys cannot be guessed.
//!
//! With no key at all, the service serves without keys while it listens on a loopback
//! address only (the zero set-up quick start); start-up refuses any other address. Even
//! then it serves only requests addressed to a loopback name (`Host` is `localhost`,
//! `127.0.0.1` or `[::1]`, any port) and, when a browser says where the request comes from,
//! sent by a page of such a name (`Origin`): a web page elsewhere whose name an attacker
//! points at 127.0.0.1 (DNS rebinding) is refused, though the developer's browser reaches
//! the port.

use std::collections::{BTreeSet, HashMap};
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use identity_domain::{ActiveKey, KeyError, KeyRepository, RepositoryError, Scope, Scopes};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The prefix of every key, so that a leaked one is recognisable (secret scanners).
const KEY_PREFIX: &str = "idk_";

/// A new key: the secret (shown once) and the hash that is stored.
pub struct NewKey {
    pub secret: String,
    pub hash: String,
}

/// Draws a new key from the operating system's random source.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn generate_key() -> Result<NewKey, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret = format!("{KEY_PREFIX}{}", hex(&bytes));
    let hash = hash_key(&secret);
    Ok(NewKey { secret, hash })
}

/// The stored form of a key: the hex SHA-256 of the whole secret.
pub fn hash_key(secret: &str) -> String {
    hex(&Sha256::digest(secret.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the gate behaves.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// Serve without keys while no key was ever created (only on a loopback address).
    pub open_without_keys: bool,
    pub refresh: Duration,
    pub max_failures_per_minute: NonZeroU32,
    /// A key (its hash and scopes) to store as `bootstrap` when there is no active key.
    pub bootstrap: Option<(String, Scopes)>,
}

/// The active keys of this replica, and the failed attempts of each client.
pub struct Gate {
    store: Arc<dyn KeyRepository>,
    settings: GateSettings,
    /// Serving without keys: true until a key exists or ever existed, then false for good
    /// (revoking every key does not open the service again).
    open: AtomicBool,
    bootstrap: Mutex<Option<(String, Scopes)>>,
    /// `None` until the keys could be read once (the database may be down at start-up).
    keys: RwLock<Option<Arc<Vec<Known>>>>,
    /// Ids of keys used since the last refresh (recorded as `last_used_at` then).
    used: Mutex<BTreeSet<i64>>,
    /// Held for a whole refresh: two at once (the refresh thread and a readiness probe)
    /// could store their keys in the wrong order, an older empty list over a newer one.
    refreshing: Mutex<()>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Clients refused until the given moment.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

/// An active key as the gate compares it.
struct Known {
    id: i64,
    name: Arc<str>,
    hash: [u8; 32],
    scopes: identity_domain::Scopes,
}

/// Why a request was refused, for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Unknown,
    Scope,
    Throttled,
    NotLoopback,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unknown => "unknown",
            Self::Scope => "scope",
            Self::Throttled => "throttled",
            Self::NotLoopback => "not_loopback",
        }
    }
}

impl Gate {
    /// A gate over the keys of `store`, loaded now if the store can be reached (else at the
    /// next refresh; until then requests are answered 503).
    pub fn new(store: Arc<dyn KeyRepository>, settings: GateSettings) -> Arc<Self> {
        let gate = Arc::new(Self {
            store,
            open: AtomicBool::new(settings.open_without_keys),
            bootstrap: Mutex::new(settings.bootstrap.clone()),
            failures: RateLimiter::keyed(Quota::per_minute(settings.max_failures_per_minute)),
            settings,
            keys: RwLock::new(None),
            used: Mutex::new(BTreeSet::new()),
            refreshing: Mutex::new(()),
            blocked: Mutex::new(HashMap::new()),
        });
        if let Err(error) = gate.refresh() {
            tracing::warn!(%error, "cannot read the API keys yet: requests are answered 503 until they can be");
        }
        gate
    }

    /// Whether the keys could be read, and whether any is active.
    pub fn has_keys(&self) -> Option<bool> {
        self.snapshot().map(|keys| !keys.is_empty())
    }

    fn snapshot(&self) -> Option<Arc<Vec<Known>>> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether requests are served without keys (no key was ever created, on loopback).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Re-reads the active keys (storing the bootstrap key first when there is none), and
    /// records which keys were used since the last time.
    ///
    /// # Errors
    /// When the store cannot be reached (the keys known so far stay in force).
    pub fn refresh(&self) -> Result<(), RepositoryError> {
        let _one_at_a_time = self
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.failures.retain_recent();
        let now = Instant::now();
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.retain(|_, until| *until > now);
        }
        let mut active = self.store.active()?;
        if active.is_empty() {
            let pending = self.bootstrap.lock().ok().and_then(|mut b| b.take());
            if let Some((hash, scopes)) = pending {
                match self.store.create("bootstrap", &hash, &scopes) {
                    Ok(key) => {
                        tracing::info!(id = key.id, scopes = %key.scopes, "stored the bootstrap key");
                    }
                    Err(KeyError::DuplicateName(_)) => tracing::warn!(
                        "auth.bootstrap_key is set, but a key named bootstrap exists (revoked): \
                         not stored again"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "cannot store the bootstrap key yet");
                        if let Ok(mut b) = self.bootstrap.lock() {
                            *b = Some((hash, scopes));
                        }
                    }
                }
                active = self.store.active()?;
            }
        }
        let close = self.is_open() && (!active.is_empty() || !self.store.list()?.is_empty());
        let keys: Vec<Known> = active
            .into_iter()
            .filter_map(|key: ActiveKey| {
                let mut hash = [0_u8; 32];
                decode_hex(&key.hash, &mut hash).then_some(Known {
                    id: key.id,
                    name: key.name.into(),
                    hash,
                    scopes: key.scopes,
                })
            })
            .collect();
        if let Ok(mut current) = self.keys.write() {
            *current = Some(Arc::new(keys));
        }
        // Closed only once the keys that close it are known: else a request with the first
        // key, made in between, would be refused.
        if close {
            self.open.store(false, Ordering::Release);
        }
        // Last use is recorded on a best-effort basis: a store that is busy now gets the
        // ids at the next refresh.
        let used: Vec<i64> = match self.used.lock() {
            Ok(mut used) => std::mem::take(&mut *used).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        if let Err(error) = self.store.touch(&used, chrono::Utc::now()) {
            tracing::debug!(%error, "cannot record the keys' last use yet");
            if let Ok(mut pending) = self.used.lock() {
                pending.extend(used);
            }
        }
        Ok(())
    }

    /// Refreshes the keys every `auth.refresh_ms` on a thread of its own, until `stop`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let gate = Arc::clone(self);
        std::thread::Builder::new()
            .name("api-keys".to_owned())
            .spawn(move || {
                let tick = Duration::from_millis(50).min(gate.settings.refresh);
                let mut due = Instant::now() + gate.settings.refresh;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    if Instant::now() < due {
                        continue;
                    }
                    due = Instant::now() + gate.settings.refresh;
                    if let Err(error) = gate.refresh() {
                        tracing::warn!(%error, "cannot re-read the API keys; the known ones stay in force");
                    }
                }
            })
    }

    /// Lets the request through, saying who made it, or says why not. A valid key is
    /// always let through; a client that keeps failing is answered 429 without its attempts
    /// being looked at.
    fn check(&self, request: &Presented<'_>, scope: Scope) -> Result<Caller, ApiError> {
        let Presented {
            client,
            authorization,
            addressed_to_loopback,
        } = *request;
        // Read before the keys: once it is closed, the keys that closed it are known.
        let open = self.is_open();
        let Some(keys) = self.snapshot() else {
            return Err(ApiError::Unavailable(
                "the API keys cannot be read yet: the database is unreachable".into(),
            ));
        };
        if keys.is_empty() && open {
            return if addressed_to_loopback {
                Ok(Caller::Loopback)
            } else {
                Err(refuse(Refusal::NotLoopback, ApiError::NotLoopback))
            };
        }
        // The scheme is case-insensitive (RFC 9110, 11.1): `Bearer`, `bearer`, `BEARER`.
        let presented = authorization
            .and_then(|value| value.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty());
        if let Some(presented) = presented {
            let mut digest = [0_u8; 32];
            digest.copy_from_slice(&Sha256::digest(presented.as_bytes()));
            // Every key is compared, each in constant time: how long this takes says
            // nothing about how close a guess came.
            let mut found = None;
            for key in keys.iter() {
                if bool::from(key.hash.ct_eq(&digest)) {
                    found = Some(key);
                }
            }
            if let Some(key) = found {
                if let Ok(mut used) = self.used.lock() {
                    used.insert(key.id);
                }
                if !key.scopes.allows(scope) {
                    return Err(refuse(Refusal::Scope, ApiError::MissingScope(scope)));
                }
                return Ok(Caller::Key(Arc::clone(&key.name)));
            }
        }
        if let Some(retry_after) = client.and_then(|ip| self.blocked_for(ip)) {
            return Err(refuse(
                Refusal::Throttled,
                ApiError::TooManyAttempts { retry_after },
            ));
        }
        let refusal = if presented.is_some() {
            Refusal::Unknown
        } else {
            Refusal::Missing
        };
        Err(self.failed(client, refusal, ApiError::Unauthorized))
    }

    /// Counts a failed attempt of `client`; past the limit, blocks it for a while and
    /// answers 429 already.
    fn failed(&self, client: Option<IpAddr>, refusal: Refusal, error: ApiError) -> ApiError {
        if let Some(ip) = client {
            if let Err(not_until) = self.failures.check_key(&ip) {
                let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
                let wait = not_until.wait_time_from(now).max(Duration::from_secs(1));
                if let Ok(mut blocked) = self.blocked.lock() {
                    blocked.insert(ip, Instant::now() + wait);
                }
                return refuse(
                    Refusal::Throttled,
                    ApiError::TooManyAttempts { retry_after: wait },
                );
            }
        }
        refuse(refusal, error)
    }

    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = blocked.get(&ip)?;
        until
            .checked_duration_since(Instant::now())
            .map(|d| d.max(Duration::from_secs(1)))
    }
}

fn refuse(refusal: Refusal, error: ApiError) -> ApiError {
    metrics::counter!("identity_auth_failures_total", "reason" => refusal.label()).increment(1);
    error
}

fn decode_hex(text: &str, out: &mut [u8; 32]) -> bool {
    if text.len() != 64 || !text.is_ascii() {
        return false;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        match u8::from_str_radix(&text[2 * i..2 * i + 2], 16) {
            Ok(value) => *byte = value,
            Err(_) => return false,
        }
    }
    true
}

/// What a request presents to the gate.
#[derive(Debug, Clone, Copy)]
struct Presented<'a> {
    client: Option<IpAddr>,
    authorization: Option<&'a str>,
    /// Whether the request names a loopback host and, if a browser sent it, comes from a
    /// page of a loopback host (see [`addressed_to_loopback`]).
    addressed_to_loopback: bool,
}

/// Whether a request is addressed to this machine by a loopback name: its `Host` (or, in
/// HTTP/2, its URI's authority) is `localhost`, a loopback address or absent (no browser
/// sends a request without one), and its `Origin`, when a browser sends one, is a loopback
/// name too (`null`, the origin of sandboxed and local-file pages, is not).
fn addressed_to_loopback(req: &HttpRequest) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(ToString::to_string));
    let origin = req.headers().get(header::ORIGIN).map(|v| v.to_str().ok());
    let host_is_loopback = host.as_deref().is_none_or(is_loopback_authority);
    let origin_is_loopback = match origin {
        None => true,
        Some(origin) => origin
            .and_then(|o| {
                o.strip_prefix("http://")
                    .or_else(|| o.strip_prefix("https://"))
            })
            .is_some_and(is_loopback_authority),
    };
    host_is_loopback && origin_is_loopback
}

/// `localhost`, `127.0.0.1`, `[::1]` (any loopback address), with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, port)) if port.is_empty() || port.starts_with(':') => host,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The scope a route needs, as a type.
pub trait RequiredScope {
    const SCOPE: Scope;
}

/// `POST /identify`.
pub struct IdentifyScope;
/// Reading customers and their history.
pub struct ReadScope;
/// Erasure and operator actions.
pub struct AdminScope;

impl RequiredScope for IdentifyScope {
    const SCOPE: Scope = Scope::Identify;
}
impl RequiredScope for ReadScope {
    const SCOPE: Scope = Scope::Read;
}
impl RequiredScope for AdminScope {
    const SCOPE: Scope = Scope::Admin;
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The holder of the key of this name.
    Key(Arc<str>),
    /// Anyone on this machine: the service runs without keys on loopback.
    Loopback,
}

impl Caller {
    /// How records name the caller as their author: the key's name, or `loopback`.
    pub fn name(&self) -> &str {
        match self {
            Self::Key(name) => name,
            Self::Loopback => "loopback",
        }
    }
}

/// Proof that the request carries a key with scope `S` (or that the service runs open on
/// loopback without keys), and whose. Take it as a handler's first argument.
pub struct Authorized<S> {
    pub caller: Caller,
    scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(gate) = req.app_data::<web::Data<Gate>>() else {
            return ready(Err(ApiError::Internal(
                "the access gate is not configured".into(),
            )));
        };
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let presented = Presented {
            client: req.peer_addr().map(|addr| addr.ip()),
            authorization,
            addressed_to_loopback: addressed_to_loopback(req),
        };
        ready(gate.check(&presented, S::SCOPE).map(|caller| Self {
            caller,
            scope: PhantomData,
        }))
    }
}

#[cfg(test)]
mod tests {
    use identity_domain::{MockKeyRepository, Scopes};

    use super::*;

    /// A gate over a mock store whose active keys are `keys` (shared: a test may revoke).
    fn gate_over(keys: Arc<Mutex<Vec<ActiveKey>>>, open: bool, max_failures: u32) -> Arc<Gate> {
        let mut store = MockKeyRepository::new();
        store.expect_touch().returning(|_, _| Ok(()));
        let active = Arc::clone(&keys);
        store
            .expect_active()
            .returning(move || Ok(active.lock().expect("not poisoned").clone()));
        store.expect_list().returning(|| Ok(Vec::new()));
        Gate::new(
            Arc::new(store),
            GateSettings {
                open_without_keys: open,
                refresh: Duration::from_secs(1),
                max_failures_per_minute: NonZeroU32::new(max_failures).expect("positive"),
                bootstrap: None,
            },
        )
    }

    fn gate(keys: Vec<ActiveKey>, open: bool, max_failures: u32) -> Arc<Gate> {
        gate_over(Arc::new(Mutex::new(keys)), open, max_failures)
    }

    fn key(id: i64, secret: &str, scopes: &str) -> ActiveKey {
        ActiveKey {
            id,
            name: format!("key{id}"),
            hash: hash_key(secret),
            scopes: Scopes::parse_list(scopes).expect("valid scopes"),
        }
    }

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)));

    impl Gate {
        /// A request from `CLIENT`, addressed to a loopback name.
        fn ask(&self, authorization: Option<&str>, scope: Scope) -> Result<Caller, ApiError> {
            self.check(
                &Presented {
                    client: CLIENT,
                    authorization,
                    addressed_to_loopback: true,
                },
                scope,
            )
        }
    }

    #[test]
    fn a_key_opens_exactly_its_scopes() {
        let gate = gate(vec![key(1, "idk_store", "identify,read")], false, 10);
        assert_eq!(
            gate.ask(Some("Bearer idk_store"), Scope::Identify)
                .map(|caller| caller.name().to_owned())
                .ok(),
            Some("key1".to_owned()),
            "the caller is named by its key"
        );
        assert!(gate.ask(Some("Bearer idk_store"), Scope::Read).is_ok());
        assert!(matches!(
            gate.ask(Some("Bearer idk_store"), Scope::Admin),
            Err(ApiError::MissingScope(Scope::Admin))
        ));
        // The scheme is case-insensitive.
        for header in ["BEARER idk_store", "bearer idk_store", "BeArEr  idk_store"] {
            assert!(gate.ask(Some(header), Scope::Identify).is_ok(), "{header}");
        }
        for header in [
            None,
            Some("Bearer "),
            Some("Basic abc"),
            Some("Bearer idk_other"),
            Some("Bearerx idk_store"),
        ] {
            assert!(matches!(
                gate.ask(header, Scope::Identify),
                Err(ApiError::Unauthorized)
            ));
        }
    }

    #[test]
    fn without_keys_only_a_loopback_service_is_open() {
        assert!(gate(vec![], true, 10).ask(None, Scope::Admin).is_ok());
        assert!(matches!(
            gate(vec![], false, 10).ask(None, Scope::Admin),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn without_keys_only_requests_addressed_to_a_loopback_name_are_served() {
        for authority in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.9.9.9:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_authority(authority), "{authority}");
        }
        for authority in [
            "rebind.attacker.test:8080",
            "attacker.test",
            "localhost.attacker.test",
            "10.0.0.7:8080",
            "[::2]:8080",
            "[::1]x",
            "localhost:80x",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!is_loopback_authority(authority), "{authority}");
        }
        let foreign = Presented {
            client: CLIENT,
            authorization: None,
            addressed_to_loopback: false,
        };
        assert!(matches!(
            gate(vec![], true, 10).check(&foreign, Scope::Read),
            Err(ApiError::NotLoopback)
        ));
    }

    #[test]
    fn a_client_that_keeps_failing_is_answered_429_but_a_good_key_still_works() {
        let gate = gate(vec![key(1, "idk_store", "identify")], false, 3);
        for _ in 0..3 {
            assert!(matches!(
                gate.ask(Some("Bearer idk_guess"), Scope::Identify),
                Err(ApiError::Unauthorized)
            ));
        }
        for header in [Some("Bearer idk_guess"), None] {
            assert!(matches!(
                gate.ask(header, Scope::Identify),
                Err(ApiError::TooManyAttempts { .. })
            ));
        }
        // Someone else behind the same address (a proxy, a NAT) is not locked out.
        assert!(gate.ask(Some("Bearer idk_store"), Scope::Identify).is_ok());
    }

    #[test]
    fn revoking_every_key_does_not_open_the_service_again() {
        let keys = Arc::new(Mutex::new(vec![key(1, "idk_store", "identify")]));
        let gate = gate_over(Arc::clone(&keys), true, 10);
        assert!(!gate.is_open(), "a key exists");
        keys.lock().expect("not poisoned").clear();
        gate.refresh().expect("refreshed");
        assert!(matches!(
            gate.ask(None, Scope::Identify),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn new_keys_are_long_random_and_hashed() {
        let first = generate_key().expect("randomness");
        let second = generate_key().expect("randomness");
        assert_ne!(first.secret, second.secret);
        assert_eq!(first.secret.len(), KEY_PREFIX.len() + 64);
        assert_eq!(first.hash, hash_key(&first.secret));
        assert!(!first.hash.contains(&first.secret[KEY_PREFIX.len()..]));
    }
}

//! Reads from standbys (`database.read_url`): the lock-free read of a request and the
//! read-only routes go to a standby while it is up; everything else, and every read made
//! under a write's locks, stays on the primary.
//!
//! **Never older than an answer given.** While a read URL is set, every write transaction
//! on the primary commits with `synchronous_commit = remote_apply`: COMMIT returns, and the
//! client is answered, only once the synchronous standbys have *applied* the commit, so a
//! read on one of them afterwards sees it, whichever process serves it. That needs the
//! primary to have synchronous standbys (`synchronous_standby_names`), which [`check_primary`]
//! verifies when the store opens, and the standbys of the read URL to be among those it
//! waits for (see docs/SCALING.md).
//!
//! **A standby that is down, promoted or unreachable is skipped.** libpq connects only to a
//! server in recovery (`target_session_attrs=standby`, added unless the URL says
//! otherwise); a thread checks the standby every second (`pg_is_in_recovery()`); a read
//! that fails there is marked so and runs on the primary. Reads return to the standby
//! once a check finds it answering and in recovery again.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use diesel::RunQueryDsl;
use identity_domain::RepositoryError;

use crate::error::PersistenceError;
use crate::migrate::connect_postgres;
use crate::pool::{on_backend, Pool, PoolSettings};
use crate::retry::{RetryPolicy, UnitError};

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// How often the standby is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The standbys' pool, and whether reads go there now.
pub(crate) struct Replica {
    pool: Pool,
    /// [`UNKNOWN`], [`UP`] or [`DOWN`].
    state: AtomicU8,
    retry: RetryPolicy,
}

impl Replica {
    /// Builds the pool (connecting later) and starts the thread that checks the standby.
    /// Reads go to the primary until the first check finds the standby up.
    pub(crate) fn start(url: &str, settings: &PoolSettings, session_sql: String) -> Arc<Self> {
        let url = if url.contains("target_session_attrs=") {
            url.to_owned()
        } else {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}target_session_attrs=standby")
        };
        // A standby that is slow to hand out a connection, or frozen, must leave time to
        // read on the primary within the request's deadline.
        let standby = PoolSettings {
            acquire_timeout: settings.acquire_timeout.min(Duration::from_millis(500)),
            deadline: settings.deadline / 2,
            ..settings.clone()
        };
        // Runs again at once on another connection while it finds them broken (a standby
        // restart leaves every pooled connection dead), but never waits for a connection
        // twice: a standby that cannot hand one out is set aside.
        let retry = RetryPolicy {
            max_attempts: settings.max_size + 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        };
        let replica = Arc::new(Self {
            pool: Pool::postgres(url, &standby, session_sql),
            state: AtomicU8::new(UNKNOWN),
            retry,
        });
        let weak = Arc::downgrade(&replica);
        let spawned = std::thread::Builder::new()
            .name("standby-check".to_owned())
            .spawn(move || watch(&weak));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the standby check: reading from the primary");
        }
        replica
    }

    /// Runs a read on the standby when it is up. `None`: read on the primary instead (the
    /// standby is down, or the read failed there and the standby is now marked down).
    pub(crate) fn read<T>(
        &self,
        work: impl FnMut(&mut crate::pool::Db<'_>) -> Result<T, UnitError>,
    ) -> Option<T> {
        if self.state.load(Ordering::Acquire) != UP {
            return None;
        }
        match self.retry.once(&self.pool, work) {
            Ok(done) => Some(done),
            Err(error) => {
                // The primary's answer is the one that counts; only a standby that cannot
                // be reached is set aside (a read it cancelled, e.g. for a recovery
                // conflict, just runs on the primary).
                if matches!(error, RepositoryError::Unavailable(_)) {
                    self.set_up(false, &error.to_string());
                }
                None
            }
        }
    }

    fn set_up(&self, up: bool, why: &str) {
        let state = if up { UP } else { DOWN };
        if self.state.swap(state, Ordering::AcqRel) != state {
            if up {
                tracing::info!("the standby answers: reads go to it again");
            } else {
                tracing::warn!(
                    reason = why,
                    "the standby cannot serve reads: reading from the primary"
                );
            }
        }
        // Every time, not only on a change: the first checks may run before the process
        // installed its metrics recorder.
        metrics::gauge!("identity_db_standby_up").set(if up { 1.0 } else { 0.0 });
    }

    /// Whether the standby answers and is in recovery (a promoted one is a primary of
    /// another timeline, and no longer follows the one the service writes to).
    fn check(&self) {
        let verdict = self.retry.once(&self.pool, |db| {
            Ok(
                on_backend!(db, conn => diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "pg_is_in_recovery()"
            ))
            .get_result::<bool>(conn)?),
            )
        });
        match verdict {
            Ok(true) => self.set_up(true, ""),
            Ok(false) => self.set_up(false, "not in recovery (promoted?)"),
            Err(error) => self.set_up(false, &error.to_string()),
        }
    }
}

fn watch(replica: &Weak<Replica>) {
    while let Some(replica) = replica.upgrade() {
        replica.check();
        drop(replica);
        std::thread::sleep(CHECK_EVERY);
    }
}

/// Checks, when the store opens with a read URL, that the primary waits for a synchronous
/// standby before it answers a commit: without `synchronous_standby_names` a standby may
/// be behind what clients were already told, so the store refuses to open; with it but no
/// synchronous standby streaming right now, it warns (commits wait until one is back).
///
/// # Errors
/// [`PersistenceError::NoSynchronousStandby`] when the primary has no synchronous standby
/// configured. A primary that cannot be reached is only warned about.
pub(crate) fn check_primary(url: &str) -> Result<(), PersistenceError> {
    use diesel::sql_types::{BigInt, Text};
    let mut conn = match connect_postgres(url) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(%error, "cannot check that the primary has a synchronous standby");
            return Ok(());
        }
    };
    let names: String = diesel::select(diesel::dsl::sql::<Text>(
        "current_setting('synchronous_standby_names')",
    ))
    .get_result(&mut conn)
    .map_err(PersistenceError::Query)?;
    if names.trim().is_empty() {
        return Err(PersistenceError::NoSynchronousStandby);
    }
    let streaming: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
        "(SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))",
    ))
    .get_result(&mut conn)
    .map_err(PersistenceError::Query)?;
    if streaming == 0 {
        tracing::warn!(
            synchronous_standby_names = names,
            "no synchronous standby is streaming from the primary now: commits wait until one is"
        );
    }
    Ok(())
}

//! What a failed statement means, and running work again when it is worth it: a unit of
//! work that collided with a concurrent one, or whose connection broke, runs again on a
//! fresh connection after a jittered pause, a bounded number of times.

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use identity_domain::{InconsistentGraph, RepositoryError};

use crate::deadline;
use crate::models::MalformedRow;
use crate::pool::{Db, Pool};

/// How often, and how patiently, a unit of work that collided is run again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Runs in all, the first included.
    pub max_attempts: u32,
    /// Pause before the second run; it doubles on each further run, with jitter.
    pub base_delay: Duration,
    /// Longest pause between two runs.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// "Equal jitter" back-off: a random pause between half and all of the exponential bound.
    fn pause_before(&self, attempt: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(2).min(16));
        let bound = exponential.min(self.max_delay);
        bound.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Runs `work` on a pooled connection; runs it again (on a fresh connection, after a
    /// jittered pause) when it collided or lost its connection, up to `max_attempts` runs.
    /// A connection that broke is dropped from the pool.
    pub(crate) fn run<T>(
        &self,
        pool: &Pool,
        mut work: impl FnMut(&mut Db<'_>) -> Result<T, UnitError>,
    ) -> Result<T, RepositoryError> {
        let mut attempt = 1;
        loop {
            let mut conn = pool
                .get()
                .map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
            let outcome = work(&mut conn.db());
            if let Some(timed_out) = conn.timed_out() {
                // The watchdog cut the connection: the database did not answer in time.
                conn.discard();
                return Err(RepositoryError::Unavailable(Box::new(timed_out)));
            }
            let failure = match outcome {
                Ok(done) => return Ok(done),
                Err(UnitError::Db(error)) => classify(error),
                Err(UnitError::Moved) => Failure::Collided,
                Err(UnitError::Inconsistent(e)) => return Err(RepositoryError::Inconsistent(e)),
                Err(UnitError::Malformed(e)) => return Err(RepositoryError::Internal(Box::new(e))),
                Err(UnitError::Final(e)) => return Err(e),
            };
            if matches!(failure, Failure::Disconnected(_)) {
                conn.discard();
            }
            drop(conn);
            let pause = self.pause_before(attempt + 1);
            if attempt >= self.max_attempts
                || matches!(failure, Failure::Final(_))
                || deadline::remaining().is_some_and(|left| left <= pause)
            {
                return Err(failure.into_error(attempt));
            }
            let reason = match failure {
                Failure::Disconnected(ref error) => {
                    tracing::debug!(attempt, %error, "connection lost during a unit of work; running it again");
                    "disconnected"
                }
                _ => {
                    tracing::debug!(attempt, "unit of work collided; running it again");
                    "collided"
                }
            };
            metrics::counter!("identity_unit_retries_total", "reason" => reason).increment(1);
            std::thread::sleep(pause);
            attempt += 1;
        }
    }

    /// Runs `work` (a read, or a write that is not retried when it collides) once, or again
    /// on another connection when a statement found its connection broken: no probe on
    /// checkout notices that beforehand.
    pub(crate) fn once<T>(
        &self,
        pool: &Pool,
        mut work: impl FnMut(&mut Db<'_>) -> Result<T, UnitError>,
    ) -> Result<T, RepositoryError> {
        self.run(pool, |db| match work(db) {
            Err(UnitError::Db(error)) => match classify(error) {
                Failure::Disconnected(error) => Err(UnitError::Db(error)),
                Failure::Collided => {
                    Err(UnitError::Final(RepositoryError::Contended { attempts: 1 }))
                }
                Failure::Final(error) => Err(UnitError::Final(error)),
            },
            other => other,
        })
    }
}

/// Why one run of a unit of work ended without committing.
#[derive(Debug)]
pub(crate) enum UnitError {
    Db(DieselError),
    /// A customer changed between the guard and the read.
    Moved,
    Inconsistent(InconsistentGraph),
    Malformed(MalformedRow),
    /// Already classified: give up with this.
    Final(RepositoryError),
}

impl From<DieselError> for UnitError {
    fn from(error: DieselError) -> Self {
        Self::Db(error)
    }
}

/// What a failed statement means for the unit of work.
#[derive(Debug)]
enum Failure {
    /// Lost to a concurrent transaction (serialization failure, deadlock, lock timeout, a
    /// busy SQLite file, a customer that moved): run it again.
    Collided,
    /// The connection broke or the server went away: run it again on another connection.
    Disconnected(DieselError),
    /// Anything else: give up now.
    Final(RepositoryError),
}

impl Failure {
    fn into_error(self, attempts: u32) -> RepositoryError {
        match self {
            Self::Collided => RepositoryError::Contended { attempts },
            Self::Disconnected(e) => RepositoryError::Unavailable(Box::new(e)),
            Self::Final(e) => e,
        }
    }
}

/// Messages of errors that mean "collided with a concurrent transaction, run again".
/// Diesel keeps no SQLSTATE for these, so they are recognised by PostgreSQL's English
/// messages (`migrate::check_message_language` warns otherwise) and SQLite's.
const COLLISIONS: &[&str] = &[
    // PostgreSQL
    "deadlock detected",
    "canceling statement due to lock timeout",
    // SQLite (SQLITE_BUSY: the write lock was not free within busy_timeout)
    "database is locked",
    "database table is locked",
];

/// Messages of errors that mean the connection is gone, when the connection's status did
/// not say so yet (a server that terminated the session answers before closing).
const DISCONNECTIONS: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "the database system is shutting down",
    "the database system is starting up",
];

/// Sorts a Diesel error into [`Failure`].
fn classify(error: DieselError) -> Failure {
    let message = |info: &dyn diesel::result::DatabaseErrorInformation| info.message().to_owned();
    match &error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Failure::Collided,
        // A read-only transaction: the connection landed on a standby (after a failover).
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        )
        | DieselError::BrokenTransactionManager => Failure::Disconnected(error),
        DieselError::DatabaseError(_, info) => {
            let text = message(info.as_ref());
            if COLLISIONS.iter().any(|m| text.starts_with(m)) {
                Failure::Collided
            } else if DISCONNECTIONS.iter().any(|m| text.contains(m)) {
                Failure::Disconnected(error)
            } else if text.starts_with("canceling statement due to statement timeout")
                || text.starts_with("canceling statement due to user request")
            {
                Failure::Final(RepositoryError::Unavailable(Box::new(error)))
            } else {
                Failure::Final(RepositoryError::Internal(Box::new(error)))
            }
        }
        _ => Failure::Final(RepositoryError::Internal(Box::new(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_and_stays_bounded() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        };
        for _ in 0..100 {
            let second = policy.pause_before(2);
            assert!(second >= Duration::from_millis(5) && second <= Duration::from_millis(10));
            let fourth = policy.pause_before(4);
            assert!(fourth >= Duration::from_millis(20) && fourth <= Duration::from_millis(40));
            let late = policy.pause_before(30);
            assert!(late >= Duration::from_millis(50) && late <= Duration::from_millis(100));
        }
    }
}

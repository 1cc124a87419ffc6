//! `ContactRepository` on any [`Backend`], written once.
//!
//! Reads: one statement, so the answer comes from one snapshot.
//! Writes: one transaction per unit of work that first guards what it is about to change
//! (the backend's [`Backend::guard`]), then reads, decides, writes and reads back; it is run
//! again when it collides with a concurrent one. The argument for why this keeps the graph
//! right is in `docs/CONCURRENCY.md`.

use std::marker::PhantomData;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use identity_domain::{
    BatchOutcome, Contact, ContactId, ContactMaintenance, ContactRepository, CustomerSize, Decide,
    DecideEach, HistoryEntry, Identifiers, InconsistentGraph, Link, LinkTo, Plan, RepositoryError,
    Rewrite, Rewriter, StoreStats, Violation,
};

use crate::backend::{rows, Backend, Guard, Statements};
use crate::models::{
    into_contacts, BucketRow, ContactRow, CountRow, HistoryRow, ItemRow, MalformedRow, OutboxRow,
    SizeRow, PRIMARY,
};
use crate::pool::Pool;

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
}

/// The pool's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// The port on backend `B`.
pub(crate) struct SqlContactRepository<B: Backend> {
    pool: Pool<B::Connection>,
    retry: RetryPolicy,
    backend: PhantomData<B>,
}

type Conn<B> = PooledConnection<ConnectionManager<<B as Backend>::Connection>>;

impl<B: Backend> SqlContactRepository<B> {
    pub(crate) fn new(pool: Pool<B::Connection>, retry: RetryPolicy) -> Self {
        Self {
            pool,
            retry,
            backend: PhantomData,
        }
    }

    /// Whether the database answers (for readiness probes).
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when it does not.
    pub fn ping(&self) -> Result<(), RepositoryError> {
        let mut conn = self.connection()?;
        conn.batch_execute("SELECT 1")
            .map_err(|e| RepositoryError::Unavailable(Box::new(e)))
    }

    fn connection(&self) -> Result<Conn<B>, RepositoryError> {
        let started = std::time::Instant::now();
        let conn = self.pool.get();
        metrics::histogram!("identity_db_pool_acquire_seconds").record(started.elapsed());
        conn.map_err(|e| RepositoryError::Unavailable(Box::new(e)))
    }

    /// Connections open, idle, and at most.
    pub(crate) fn pool_stats(&self) -> PoolStats {
        let state = self.pool.state();
        PoolStats {
            open: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }
}

impl<B: Backend> ContactRepository for SqlContactRepository<B> {
    fn find_customers(&self, identifiers: &Identifiers) -> Result<Vec<Contact>, RepositoryError> {
        // A read is retried once, on another connection, when its connection was lost.
        let mut attempt = 1;
        loop {
            let mut conn = self.connection()?;
            match B::load_customers(&mut conn, identifiers) {
                Ok(rows) => {
                    return into_contacts(rows).map_err(|e| RepositoryError::Internal(Box::new(e)))
                }
                Err(error) => match classify::<B>(error, &mut conn) {
                    Failure::Disconnected(_) if attempt == 1 => attempt += 1,
                    failure => return Err(failure.into_error(attempt)),
                },
            }
        }
    }

    fn find_history(&self, id: ContactId) -> Result<Option<Vec<HistoryEntry>>, RepositoryError> {
        let customer = self.find_customer_of(id)?;
        if customer.is_empty() {
            return Ok(None);
        }
        let ids: Vec<String> = customer.iter().map(|c| c.id.get().to_string()).collect();
        let sql = B::HISTORY_SQL.replace("{ids}", &ids.join(","));
        let mut conn = self.connection()?;
        let rows: Vec<HistoryRow> =
            rows::<B, _>(&mut conn, &sql).map_err(|e| classify::<B>(e, &mut conn).into_error(1))?;
        Ok(Some(
            rows.into_iter()
                .map(|r| HistoryEntry {
                    id: r.id,
                    customer_id: r.customer_id,
                    contact_id: r.contact_id,
                    kind: r.kind,
                    cause: r.cause,
                    before: r.before,
                    after: r.after,
                    occurred_at: chrono::DateTime::from_timestamp_micros(r.occurred_at_us)
                        .unwrap_or_default(),
                })
                .collect(),
        ))
    }

    fn rewrite_customer_of(
        &self,
        id: ContactId,
        rewriter: &dyn Rewriter,
        cause: &str,
    ) -> Result<Option<Rewrite>, RepositoryError> {
        self.with_retries(|conn| {
            B::write_transaction(conn, |conn| {
                let guard = B::guard_customer_of(conn, id.get())?;
                let rows = B::load_customer_of(conn, id.get())?;
                ensure_guarded(&guard, &rows)?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let contacts = into_contacts(rows).map_err(UnitError::Malformed)?;
                let rewrite = rewriter.rewrite(&contacts);
                apply_rewrite::<B>(conn, &rewrite, &contacts, cause)?;
                Ok(Some(rewrite))
            })
        })
    }

    fn find_customer_of(&self, id: ContactId) -> Result<Vec<Contact>, RepositoryError> {
        let mut conn = self.connection()?;
        let rows = B::load_customer_of(&mut conn, id.get())
            .map_err(|e| classify::<B>(e, &mut conn).into_error(1))?;
        into_contacts(rows).map_err(|e| RepositoryError::Internal(Box::new(e)))
    }

    fn apply_atomically(
        &self,
        identifiers: &Identifiers,
        decide: &dyn Decide,
        cause: &str,
    ) -> Result<Vec<Contact>, RepositoryError> {
        let (contacts, plan) =
            self.with_retries(|conn| run_unit::<B>(conn, identifiers, decide, cause))?;
        record_committed(&plan);
        Ok(contacts)
    }
}

impl<B: Backend> SqlContactRepository<B> {
    /// Runs a unit of work, and runs it again (on a fresh connection, after a jittered pause)
    /// when it collided or lost its connection, up to `retry.max_attempts` runs in all.
    fn with_retries<T>(
        &self,
        mut run: impl FnMut(&mut B::Connection) -> Result<T, UnitError>,
    ) -> Result<T, RepositoryError> {
        let mut attempt = 1;
        loop {
            let mut conn = self.connection()?;
            let failure = match run(&mut conn) {
                Ok(done) => return Ok(done),
                Err(UnitError::Db(error)) => classify::<B>(error, &mut conn),
                Err(UnitError::Moved) => Failure::Collided,
                Err(UnitError::Inconsistent(e)) => return Err(RepositoryError::Inconsistent(e)),
                Err(UnitError::Malformed(e)) => return Err(RepositoryError::Internal(Box::new(e))),
            };
            drop(conn);
            if attempt >= self.retry.max_attempts || matches!(failure, Failure::Final(_)) {
                return Err(failure.into_error(attempt));
            }
            match failure {
                Failure::Disconnected(ref error) => {
                    metrics::counter!("identity_unit_retries_total", "reason" => "disconnected")
                        .increment(1);
                    tracing::debug!(attempt, %error, "connection lost during a unit of work; retrying")
                }
                _ => {
                    metrics::counter!("identity_unit_retries_total", "reason" => "collided")
                        .increment(1);
                    tracing::debug!(attempt, "unit of work collided; retrying")
                }
            }
            std::thread::sleep(self.retry.pause_before(attempt + 1));
            attempt += 1;
        }
    }
}

impl<B: Backend> ContactMaintenance for SqlContactRepository<B> {
    fn rewrite_all(
        &self,
        rewriter: &dyn Rewriter,
        cause: &str,
    ) -> Result<Rewrite, RepositoryError> {
        let mut conn = self.connection()?;
        let outcome = B::write_transaction(&mut conn, |conn| {
            B::lock_all(conn)?;
            let contacts = into_contacts(B::load_all(conn)?).map_err(UnitError::Malformed)?;
            let rewrite = rewriter.rewrite(&contacts);
            apply_rewrite::<B>(conn, &rewrite, &contacts, cause)?;
            Ok(rewrite)
        });
        match outcome {
            Ok(rewrite) => Ok(rewrite),
            Err(UnitError::Db(error)) => Err(classify::<B>(error, &mut conn).into_error(1)),
            Err(UnitError::Malformed(e)) => Err(RepositoryError::Internal(Box::new(e))),
            Err(UnitError::Inconsistent(e)) => Err(RepositoryError::Inconsistent(e)),
            Err(UnitError::Moved) => Err(RepositoryError::Contended { attempts: 1 }),
        }
    }

    fn apply_batch(
        &self,
        requests: &[Identifiers],
        decide: &dyn DecideEach,
        cause: &str,
    ) -> Result<BatchOutcome, RepositoryError> {
        self.with_retries(|conn| {
            B::write_transaction(conn, |conn| {
                let mut outcome = BatchOutcome::default();
                let mut plans = Vec::with_capacity(requests.len());
                for (index, identifiers) in requests.iter().enumerate() {
                    let current = guarded_read::<B>(conn, identifiers)?;
                    let plan = decide
                        .decide(index, &current)
                        .map_err(UnitError::Inconsistent)?;
                    if plan.refused.is_some() {
                        outcome.refused += 1;
                    } else if plan.is_empty() {
                        outcome.unchanged += 1;
                    }
                    outcome.created += usize::from(plan.insert.is_some());
                    outcome.merged += usize::from(plan.relink.is_some() && plan.insert.is_none());
                    write_plan::<B>(conn, &plan, &current, cause)?;
                    plans.push(plan);
                }
                Ok((outcome, plans))
            })
        })
        .map(|(outcome, plans)| {
            plans.iter().for_each(record_committed);
            outcome
        })
    }

    fn check(&self) -> Result<Vec<Violation>, RepositoryError> {
        let mut conn = self.connection()?;
        let mut violations = Vec::new();
        for check in crate::invariants::INVARIANT_CHECKS {
            let items: Vec<ItemRow> = rows::<B, _>(&mut conn, check.sql)
                .map_err(|e| classify::<B>(e, &mut conn).into_error(1))?;
            if !items.is_empty() {
                let shown: Vec<String> = items.iter().take(20).map(|i| i.item.clone()).collect();
                let more = items.len().saturating_sub(shown.len());
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                violations.push(Violation {
                    invariant: check.invariant.to_owned(),
                    detail: format!("{} {}{tail}", check.items, shown.join(", ")),
                });
            }
        }
        Ok(violations)
    }

    fn stats(&self, top: usize) -> Result<StoreStats, RepositoryError> {
        let mut conn = self.connection()?;
        read_stats::<B>(&mut conn, top).map_err(|e| classify::<B>(e, &mut conn).into_error(1))
    }
}

fn read_stats<B: Backend>(conn: &mut B::Connection, top: usize) -> Result<StoreStats, DieselError> {
    use crate::invariants::stats;
    let to_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut count = |sql: &str| -> Result<u64, DieselError> {
        let rows: Vec<CountRow> = rows::<B, _>(conn, sql)?;
        Ok(rows.first().map_or(0, |r| to_u64(r.n)))
    };
    let customers = count(stats::CUSTOMERS)?;
    let contacts = count(stats::CONTACTS)?;
    let deleted_contacts = count(stats::DELETED)?;
    let largest: Vec<SizeRow> =
        rows::<B, _>(conn, &stats::LARGEST.replace("{top}", &top.to_string()))?;
    let buckets: Vec<BucketRow> = rows::<B, _>(conn, stats::DISTRIBUTION)?;
    Ok(StoreStats {
        customers,
        contacts,
        deleted_contacts,
        largest: largest
            .into_iter()
            .filter_map(|r| {
                ContactId::new(r.primary_id).map(|primary| CustomerSize {
                    primary,
                    contacts: to_u64(r.contacts),
                    emails: to_u64(r.emails),
                    phones: to_u64(r.phones),
                })
            })
            .collect(),
        contacts_per_customer: buckets
            .into_iter()
            .map(|b| (b.bucket, to_u64(b.n)))
            .collect(),
    })
}

/// Why one run of a unit of work ended without committing.
#[derive(Debug)]
pub(crate) enum UnitError {
    Db(DieselError),
    /// A customer changed between the guard and the read.
    Moved,
    Inconsistent(InconsistentGraph),
    Malformed(MalformedRow),
}

impl From<DieselError> for UnitError {
    fn from(error: DieselError) -> Self {
        Self::Db(error)
    }
}

/// Counts what a committed unit of work wrote.
fn record_committed(plan: &Plan) {
    if let Some(contact) = &plan.insert {
        let precedence = match contact.link {
            Link::Primary => "primary",
            Link::Secondary(_) => "secondary",
        };
        metrics::counter!("identity_contacts_created_total", "precedence" => precedence)
            .increment(1);
    }
    if plan.relink.is_some() {
        metrics::counter!("identity_merges_total").increment(1);
    }
}

/// One run of a unit of work, in one write transaction. Returns the customers after the
/// write and the plan that was applied.
fn run_unit<B: Backend>(
    conn: &mut B::Connection,
    identifiers: &Identifiers,
    decide: &dyn Decide,
    cause: &str,
) -> Result<(Vec<Contact>, Plan), UnitError> {
    B::write_transaction(conn, |conn| {
        let current = guarded_read::<B>(conn, identifiers)?;
        let plan = decide.decide(&current).map_err(UnitError::Inconsistent)?;
        if plan.is_empty() {
            return Ok((current, plan));
        }
        write_plan::<B>(conn, &plan, &current, cause)?;
        let after = B::load_customers(conn, identifiers)?;
        let after = into_contacts(after).map_err(UnitError::Malformed)?;
        Ok((after, plan))
    })
}

/// Inside a write transaction: guards what `identifiers` match and reads it.
fn guarded_read<B: Backend>(
    conn: &mut B::Connection,
    identifiers: &Identifiers,
) -> Result<Vec<Contact>, UnitError> {
    let guard = B::guard(conn, identifiers)?;
    let rows = B::load_customers(conn, identifiers)?;
    ensure_guarded(&guard, &rows)?;
    into_contacts(rows).map_err(UnitError::Malformed)
}

/// Whether the guard covers what was read: every primary among `rows` must be one the guard
/// locked (a concurrent merge may have moved the customer meanwhile: then run again).
fn ensure_guarded(guard: &Guard, rows: &[ContactRow]) -> Result<(), UnitError> {
    match guard {
        Guard::Store => Ok(()),
        Guard::Primaries(locked) => rows
            .iter()
            .filter(|row| row.link_precedence == PRIMARY)
            .all(|row| locked.binary_search(&row.id).is_ok())
            .then_some(())
            .ok_or(UnitError::Moved),
    }
}

/// Inside a write transaction: applies a rewrite of contacts read as `before`, with its
/// history and change events.
fn apply_rewrite<B: Backend>(
    conn: &mut B::Connection,
    rewrite: &Rewrite,
    before: &[Contact],
    cause: &str,
) -> Result<(), UnitError> {
    for change in &rewrite.changes {
        B::apply_change(conn, change)?;
    }
    crate::events::record_changes::<B>(conn, &rewrite.changes, before, cause)?;
    Ok(())
}

/// Inside a write transaction: applies a plan decided on guarded data (`current`), with its
/// history and change events.
fn write_plan<B: Backend>(
    conn: &mut B::Connection,
    plan: &Plan,
    current: &[Contact],
    cause: &str,
) -> Result<(), UnitError> {
    let inserted = match &plan.insert {
        Some(contact) => Some(B::insert(conn, contact)?),
        None => None,
    };
    if let Some(relink) = &plan.relink {
        let primary = match (relink.to, inserted) {
            (LinkTo::Existing(id), _) => id.get(),
            (LinkTo::Inserted, Some(id)) => id,
            (LinkTo::Inserted, None) => return Err(UnitError::Moved),
        };
        if B::relink(conn, primary, &relink.contacts)? != relink.contacts.len() {
            return Err(UnitError::Moved);
        }
    }
    crate::events::record_plan::<B>(conn, plan, inserted, current, cause)?;
    Ok(())
}

/// What a failed statement means for the unit of work.
#[derive(Debug)]
enum Failure {
    /// Lost to a concurrent transaction (serialization failure, deadlock, lock timeout, a
    /// customer that moved): run it again.
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

/// Sorts a Diesel error into [`Failure`]. Some conditions are reported only by message
/// (Diesel keeps no SQLSTATE for them); when in doubt, the connection is probed: an error on
/// a dead connection is a lost connection, not a bug.
fn classify<B: Backend>(error: DieselError, conn: &mut B::Connection) -> Failure {
    match &error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
            return Failure::Collided
        }
        // A read-only transaction: the connection landed on a standby (after a failover).
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        ) => return Failure::Disconnected(error),
        DieselError::DatabaseError(_, info)
            if B::COLLISIONS.iter().any(|m| info.message().starts_with(m)) =>
        {
            return Failure::Collided
        }
        DieselError::DatabaseError(_, info)
            if info
                .message()
                .starts_with("canceling statement due to statement timeout")
                || info
                    .message()
                    .starts_with("canceling statement due to user request") =>
        {
            return Failure::Final(RepositoryError::Unavailable(Box::new(error)))
        }
        _ => {}
    }
    if conn.batch_execute("SELECT 1").is_err() {
        Failure::Disconnected(error)
    } else {
        Failure::Final(RepositoryError::Internal(Box::new(error)))
    }
}

/// The outbox of change events, for the dispatcher that delivers them.
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` events that are due, none of which has an earlier undelivered
    /// event of the same customer, for `lease`: until then no other dispatcher (in this
    /// process or another) claims them.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxRow>, RepositoryError>;

    /// Marks a claimed event delivered.
    ///
    /// # Errors
    /// When the store cannot be reached (the event will then be delivered again).
    fn delivered(&self, id: i64) -> Result<(), RepositoryError>;

    /// Marks a claimed event failed; it is due again after `retry_in`.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn failed(&self, id: i64, error: &str, retry_in: Duration) -> Result<(), RepositoryError>;
}

impl<B: Backend> Outbox for SqlContactRepository<B> {
    fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxRow>, RepositoryError> {
        let mut conn = self.connection()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        conn.claim_rows(B::CLAIM_SQL, limit, lease)
            .map_err(|e| classify::<B>(e, &mut conn).into_error(1))
    }

    fn delivered(&self, id: i64) -> Result<(), RepositoryError> {
        let mut conn = self.connection()?;
        conn.mark(B::DELIVERED_SQL, id)
            .map(drop)
            .map_err(|e| classify::<B>(e, &mut conn).into_error(1))
    }

    fn failed(&self, id: i64, error: &str, retry_in: Duration) -> Result<(), RepositoryError> {
        let mut conn = self.connection()?;
        let delay = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
        conn.settle_row(B::FAILED_SQL, id, Some(error), delay)
            .map(drop)
            .map_err(|e| classify::<B>(e, &mut conn).into_error(1))
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

//! The outbox of change events, for the dispatcher that delivers them. Events are written by
//! `history::record` in the transaction of the change; here they are claimed, marked
//! delivered, failed or dead (given up on), listed and queued again, and pruned.
//! Scheduling runs on the dispatcher's clock.

use std::time::Duration;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::sqlite::Sqlite;
use identity_domain::RepositoryError;

use crate::models::OutboxRow;
use crate::pool::on_backend;
use crate::queries::fixed_query;
use crate::repository::SqlStore;
use crate::retry::UnitError;
use crate::schema::outbox;
use crate::sql_types::{Instant, Timestamptz};

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

    /// Marks a claimed event failed: due again after `retry_in`, or, when `retry_in` is
    /// `None`, dead (given up on: it no longer holds back the customer's later events).
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<(), RepositoryError>;

    /// Gives up on undelivered events created more than `max_age` ago, and deletes delivered
    /// and dead events created more than `retention` ago. Returns (given up, deleted).
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn expire(
        &self,
        max_age: Duration,
        retention: Duration,
    ) -> Result<(usize, usize), RepositoryError>;

    /// The dead events, oldest first.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn dead(&self) -> Result<Vec<DeadEvent>, RepositoryError>;

    /// Queues dead events again (`id`, or all when `None`): due now, attempts from zero.
    /// Returns how many.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn retry_dead(&self, id: Option<i64>) -> Result<usize, RepositoryError>;
}

/// An event given up on.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct DeadEvent {
    pub id: i64,
    pub customer_id: i64,
    pub kind: String,
    pub attempts: i32,
    #[diesel(deserialize_as = Instant)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_error: Option<String>,
}

/// Claims up to `limit` due events, oldest first, that no earlier undelivered event of the
/// same customer holds back, until `until`. On PostgreSQL, rows another dispatcher is
/// claiming at this moment are skipped, not waited for.
#[derive(Debug, Clone, Copy)]
struct ClaimEvents {
    limit: i64,
    now: Instant,
    until: Instant,
}

impl ClaimEvents {
    fn walk<'b, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>, row_locks: &str) -> QueryResult<()>
    where
        DB: diesel::backend::Backend
            + diesel::sql_types::HasSqlType<Timestamptz>
            + diesel::sql_types::HasSqlType<BigInt>,
        Instant: diesel::serialize::ToSql<Timestamptz, DB>,
        i64: diesel::serialize::ToSql<BigInt, DB>,
    {
        out.push_sql("UPDATE outbox SET claimed_until = ");
        out.push_bind_param::<Timestamptz, _>(&self.until)?;
        out.push_sql(
            " WHERE id IN ( \
               SELECT o.id FROM outbox o \
                WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= ",
        );
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" AND (o.claimed_until IS NULL OR o.claimed_until < ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(
            ") AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.customer_id = o.customer_id \
                                 AND e.id < o.id AND e.delivered_at IS NULL \
                                 AND e.dead_at IS NULL) \
                ORDER BY o.id LIMIT ",
        );
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        out.push_sql(row_locks);
        out.push_sql(") RETURNING id, customer_id, kind, payload, attempts, created_at");
        Ok(())
    }
}

impl QueryFragment<Pg> for ClaimEvents {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.walk(&mut out, " FOR UPDATE SKIP LOCKED")
    }
}

impl QueryFragment<Sqlite> for ClaimEvents {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // One writer at a time holds the file: nothing to skip.
        self.walk(&mut out, "")
    }
}

fixed_query!(
    ClaimEvents,
    ClaimEventsId,
    (BigInt, BigInt, Text, Text, Integer, Timestamptz)
);

impl Outbox for SqlStore {
    fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<OutboxRow>, RepositoryError> {
        let now = Instant::now();
        let query = ClaimEvents {
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            now,
            until: Instant::after(lease),
        };
        self.retry.once(&self.pool, |db| {
            on_backend!(db, conn => query.load(conn)).map_err(UnitError::Db)
        })
    }

    fn delivered(&self, id: i64) -> Result<(), RepositoryError> {
        let now = Instant::now();
        self.retry.once(&self.pool, |db| {
            on_backend!(db, conn => diesel::update(outbox::table.find(id))
                .set((
                    outbox::delivered_at.eq(now),
                    outbox::claimed_until.eq(None::<Instant>),
                    outbox::attempts.eq(outbox::attempts + 1),
                ))
                .execute(conn))
            .map(drop)
            .map_err(UnitError::Db)
        })
    }

    fn failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<(), RepositoryError> {
        let now = Instant::now();
        let due = retry_in.map_or(now, Instant::after);
        let dead = retry_in.is_none().then_some(now);
        self.retry.once(&self.pool, |db| {
            on_backend!(db, conn => diesel::update(outbox::table.find(id))
                .set((
                    outbox::attempts.eq(outbox::attempts + 1),
                    outbox::claimed_until.eq(None::<Instant>),
                    outbox::last_error.eq(error),
                    outbox::next_attempt_at.eq(due),
                    outbox::dead_at.eq(dead),
                ))
                .execute(conn))
            .map(drop)
            .map_err(UnitError::Db)
        })
    }

    fn expire(
        &self,
        max_age: Duration,
        retention: Duration,
    ) -> Result<(usize, usize), RepositoryError> {
        let now = Instant::now();
        let too_old = Instant::before(max_age);
        let expired = Instant::before(retention);
        self.retry.once(&self.pool, |db| {
            let given_up = on_backend!(db, conn => diesel::update(
                outbox::table
                    .filter(outbox::delivered_at.is_null())
                    .filter(outbox::dead_at.is_null())
                    .filter(outbox::created_at.lt(too_old)),
            )
            .set((
                outbox::dead_at.eq(now),
                outbox::last_error.eq("not delivered within events.max_age_hours"),
            ))
            .execute(conn))?;
            let deleted = on_backend!(db, conn => diesel::delete(
                outbox::table
                    .filter(outbox::delivered_at.is_not_null().or(outbox::dead_at.is_not_null()))
                    .filter(outbox::created_at.lt(expired)),
            )
            .execute(conn))?;
            Ok((given_up, deleted))
        })
    }

    fn dead(&self) -> Result<Vec<DeadEvent>, RepositoryError> {
        self.retry.once(&self.pool, |db| {
            Ok(on_backend!(db, conn => outbox::table
                .filter(outbox::dead_at.is_not_null())
                .order(outbox::id)
                .select(DeadEvent::as_select())
                .load(conn))?)
        })
    }

    fn retry_dead(&self, id: Option<i64>) -> Result<usize, RepositoryError> {
        let now = Instant::now();
        self.retry.once(&self.pool, |db| {
            let changes = (
                outbox::dead_at.eq(None::<Instant>),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
            );
            let dead = outbox::table.filter(outbox::dead_at.is_not_null());
            Ok(match id {
                Some(id) => on_backend!(db, conn => diesel::update(dead.filter(outbox::id.eq(id)))
                    .set(changes)
                    .execute(conn))?,
                None => on_backend!(db, conn => diesel::update(dead).set(changes).execute(conn))?,
            })
        })
    }
}

//! The outbox of change events, for the dispatcher that delivers them. Events are written by
//! `history::record` in the transaction of the change; here they are claimed, and marked
//! delivered or failed. Scheduling runs on the dispatcher's clock.

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
use crate::repository::SqlContactRepository;
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

    /// Marks a claimed event failed; it is due again after `retry_in`.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn failed(&self, id: i64, error: &str, retry_in: Duration) -> Result<(), RepositoryError>;
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
                WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ",
        );
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(" AND (o.claimed_until IS NULL OR o.claimed_until < ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(
            ") AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.customer_id = o.customer_id \
                                 AND e.id < o.id AND e.delivered_at IS NULL) \
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

impl Outbox for SqlContactRepository {
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

    fn failed(&self, id: i64, error: &str, retry_in: Duration) -> Result<(), RepositoryError> {
        let due = Instant::after(retry_in);
        self.retry.once(&self.pool, |db| {
            on_backend!(db, conn => diesel::update(outbox::table.find(id))
                .set((
                    outbox::attempts.eq(outbox::attempts + 1),
                    outbox::claimed_until.eq(None::<Instant>),
                    outbox::last_error.eq(error),
                    outbox::next_attempt_at.eq(due),
                ))
                .execute(conn))
            .map(drop)
            .map_err(UnitError::Db)
        })
    }
}

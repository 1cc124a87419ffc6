//! PostgreSQL: READ COMMITTED transactions that take advisory locks on the request's
//! identifiers and row locks on the primaries they match (docs/CONCURRENCY.md).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text};
use diesel::PgConnection;
use identity_domain::{ContactChange, ContactId, Identifiers, NewContact};

use super::{Backend, Guard, Statements};
use crate::models::{ContactRow, IdRow};
use crate::repository::UnitError;

pub(crate) struct Postgres;

/// Every live contact of every customer with a live contact whose email is `$1` or whose
/// phone is `$2`. Each branch is an index scan (`contact_email_idx`, `contact_phone_number_idx`,
/// the primary key, `contact_linked_id_idx`); a single `id IN (…) OR linked_id IN (…)` would
/// not be.
pub(crate) const CUSTOMERS_SQL: &str = "
WITH matched AS (
    SELECT COALESCE(linked_id, id) AS primary_id FROM contact
     WHERE email = $1 AND deleted_at IS NULL
    UNION
    SELECT COALESCE(linked_id, id) FROM contact
     WHERE phone_number = $2 AND deleted_at IS NULL
), customer AS (
    SELECT * FROM contact
     WHERE id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM contact
     WHERE linked_id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL
)
SELECT id, phone_number, email, linked_id, link_precedence,
       (extract(epoch FROM created_at) * 1000000)::bigint AS created_at_us
  FROM customer";

/// Row-locks the primaries of the customers matched by `$1`/`$2`, in id order. A row that
/// stopped being a primary while this waited for its lock is re-checked against
/// `link_precedence = 'primary'` (PostgreSQL re-evaluates the row's conditions on the new
/// version) and skipped, so only rows that are primaries are ever held: the re-read then
/// sees the customer's new primary unlocked and the unit starts over.
pub(crate) const LOCK_PRIMARIES_SQL: &str = "
SELECT id FROM contact
 WHERE id IN (
    SELECT COALESCE(linked_id, id) FROM contact WHERE email = $1 AND deleted_at IS NULL
    UNION
    SELECT COALESCE(linked_id, id) FROM contact WHERE phone_number = $2 AND deleted_at IS NULL
 ) AND link_precedence = 'primary' AND deleted_at IS NULL
 ORDER BY id
 FOR UPDATE";

/// Takes a transaction-scoped advisory lock per identifier, in hash order so that two
/// transactions never wait on each other's second lock. (PostgreSQL evaluates a volatile
/// function in the select list after ORDER BY.)
const LOCK_IDENTIFIERS_SQL: &str = "
SELECT pg_advisory_xact_lock(key)
  FROM (SELECT DISTINCT hashtextextended(value, 0) AS key FROM unnest($1::text[]) AS t(value)) AS keys
 ORDER BY key";

/// `created_at` is the contact's own date (`$5`, µs since the epoch) when it has one, else
/// `clock_timestamp()`.
const INSERT_SQL: &str = "
INSERT INTO contact (email, phone_number, linked_id, link_precedence, created_at)
VALUES ($1, $2, $3, $4, COALESCE('epoch'::timestamptz + $5 * interval '1 microsecond', clock_timestamp()))
RETURNING id";

const RELINK_SQL_PREFIX: &str = "
UPDATE contact SET linked_id = $1, link_precedence = 'secondary', updated_at = clock_timestamp()
 WHERE deleted_at IS NULL AND id IN (";

/// Every live contact of the customer of live contact `$1`.
const CUSTOMER_OF_SQL: &str = "
WITH owner AS (
    SELECT COALESCE(linked_id, id) AS primary_id FROM contact
     WHERE id = $1 AND deleted_at IS NULL
), customer AS (
    SELECT * FROM contact WHERE id IN (SELECT primary_id FROM owner) AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM contact WHERE linked_id IN (SELECT primary_id FROM owner) AND deleted_at IS NULL
)
SELECT id, phone_number, email, linked_id, link_precedence,
       (extract(epoch FROM created_at) * 1000000)::bigint AS created_at_us
  FROM customer";

const ALL_SQL: &str = "
SELECT id, phone_number, email, linked_id, link_precedence,
       (extract(epoch FROM created_at) * 1000000)::bigint AS created_at_us
  FROM contact WHERE deleted_at IS NULL";

const CHANGE_SQL: &str = "
UPDATE contact SET email = $2, phone_number = $3, link_precedence = $4, linked_id = $5,
                   deleted_at = CASE WHEN $6 THEN clock_timestamp() ELSE deleted_at END,
                   updated_at = clock_timestamp()
 WHERE id = $1";

impl Backend for Postgres {
    type Connection = PgConnection;

    const COLLISIONS: &'static [&'static str] = &[
        "deadlock detected",
        "canceling statement due to lock timeout",
    ];

    const EVENT_SQL: &'static str = "INSERT INTO contact_event
        (customer_id, contact_id, kind, cause, before, after) VALUES ($1, $2, $3, $4, $5, $6)";
    const OUTBOX_SQL: &'static str =
        "INSERT INTO outbox (customer_id, kind, payload) VALUES ($1, $2, $3)";
    const HISTORY_SQL: &'static str =
        "SELECT id, customer_id, contact_id, kind, cause, before, after,
               (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_at_us
          FROM contact_event WHERE contact_id IN ({ids}) OR customer_id IN ({ids}) ORDER BY id";
    const CLAIM_SQL: &'static str = "UPDATE outbox
           SET claimed_until = clock_timestamp() + $2 * interval '1 millisecond'
         WHERE id IN (
            SELECT o.id FROM outbox o
             WHERE o.delivered_at IS NULL AND o.next_attempt_at <= clock_timestamp()
               AND (o.claimed_until IS NULL OR o.claimed_until < clock_timestamp())
               AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.customer_id = o.customer_id
                                  AND e.id < o.id AND e.delivered_at IS NULL)
             ORDER BY o.id LIMIT $1
             FOR UPDATE SKIP LOCKED)
        RETURNING id, customer_id, kind, payload, attempts,
                  (extract(epoch FROM created_at) * 1000000)::bigint AS created_at_us";
    const DELIVERED_SQL: &'static str = "UPDATE outbox
           SET delivered_at = clock_timestamp(), claimed_until = NULL, attempts = attempts + 1
         WHERE id = $1";
    const FAILED_SQL: &'static str = "UPDATE outbox
           SET attempts = attempts + 1, claimed_until = NULL, last_error = $2,
               next_attempt_at = clock_timestamp() + $3 * interval '1 millisecond'
         WHERE id = $1";

    fn guard_customer_of(conn: &mut PgConnection, id: i64) -> QueryResult<Guard> {
        let locked = diesel::sql_query(
            "SELECT id FROM contact
              WHERE id = (SELECT COALESCE(linked_id, id) FROM contact
                           WHERE id = $1 AND deleted_at IS NULL)
                AND link_precedence = 'primary' AND deleted_at IS NULL
              FOR UPDATE",
        )
        .bind::<diesel::sql_types::BigInt, _>(id)
        .load::<IdRow>(conn)?
        .into_iter()
        .map(|row| row.id)
        .collect();
        Ok(Guard::Primaries(locked))
    }

    fn load_customers(
        conn: &mut PgConnection,
        identifiers: &Identifiers,
    ) -> QueryResult<Vec<ContactRow>> {
        conn.customers(CUSTOMERS_SQL, identifiers)
    }

    fn load_customer_of(conn: &mut PgConnection, id: i64) -> QueryResult<Vec<ContactRow>> {
        conn.customer_of(CUSTOMER_OF_SQL, id)
    }

    fn write_transaction<T>(
        conn: &mut PgConnection,
        work: impl FnOnce(&mut PgConnection) -> Result<T, UnitError>,
    ) -> Result<T, UnitError> {
        conn.transaction(work)
    }

    fn guard(conn: &mut PgConnection, identifiers: &Identifiers) -> QueryResult<Guard> {
        let mut keys = Vec::with_capacity(2);
        if let Some(email) = identifiers.email() {
            keys.push(format!("email:{}", email.as_str()));
        }
        if let Some(phone) = identifiers.phone() {
            keys.push(format!("phone:{}", phone.as_str()));
        }
        diesel::sql_query(LOCK_IDENTIFIERS_SQL)
            .bind::<Array<Text>, _>(&keys)
            .execute(conn)?;
        let locked = diesel::sql_query(LOCK_PRIMARIES_SQL)
            .bind::<Nullable<Text>, _>(identifiers.email().map(|e| e.as_str()))
            .bind::<Nullable<Text>, _>(identifiers.phone().map(|p| p.as_str()))
            .load::<IdRow>(conn)?
            .into_iter()
            .map(|row| row.id)
            .collect();
        Ok(Guard::Primaries(locked))
    }

    fn insert(conn: &mut PgConnection, contact: &NewContact) -> QueryResult<i64> {
        conn.insert_contact(INSERT_SQL, contact)
    }

    fn relink(conn: &mut PgConnection, primary: i64, contacts: &[ContactId]) -> QueryResult<usize> {
        conn.relink_contacts(RELINK_SQL_PREFIX, primary, contacts)
    }

    fn lock_all(conn: &mut PgConnection) -> QueryResult<()> {
        // EXCLUSIVE: readers go on, writers wait (for at most 30 s, then the operation
        // gives up rather than stall the service).
        conn.batch_execute(
            "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '30s';
             LOCK TABLE contact IN EXCLUSIVE MODE",
        )
    }

    fn load_all(conn: &mut PgConnection) -> QueryResult<Vec<ContactRow>> {
        conn.all_contacts(ALL_SQL)
    }

    fn apply_change(conn: &mut PgConnection, change: &ContactChange) -> QueryResult<usize> {
        conn.change_contact(CHANGE_SQL, change)
    }
}

/// Session settings for every pooled connection.
pub(crate) fn session_sql(statement_timeout_ms: u128, lock_timeout_ms: u128) -> String {
    format!(
        "SET statement_timeout = {statement_timeout_ms}; SET lock_timeout = {lock_timeout_ms}; \
         SET application_name = 'identity-api'"
    )
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use identity_test_support::TestDb;

    use super::*;

    /// The lookups stay index scans at a large scale (the planner's choice depends on
    /// statistics, so the table is filled and analysed first).
    #[test]
    fn lookups_are_index_scans_on_a_large_table() {
        #[derive(QueryableByName)]
        struct PlanLine {
            #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
            line: String,
        }
        let db = TestDb::new();
        let mut conn = db.connect();
        conn.batch_execute(
            "INSERT INTO contact (email, phone_number, link_precedence)
                  SELECT 'user' || n || '@x.io', (1000000 + n)::text, 'primary'
                    FROM generate_series(1, 200000) AS n;
             INSERT INTO contact (email, phone_number, linked_id, link_precedence)
                  SELECT 'alt' || n || '@x.io', (1000000 + n)::text, n, 'secondary'
                    FROM generate_series(1, 200000, 4) AS n;
             ANALYZE contact;",
        )
        .expect("bulk insert");

        let mut explain = |sql: &str| -> String {
            diesel::sql_query(format!("EXPLAIN {sql}"))
                .bind::<Nullable<Text>, _>(Some("user4242@x.io"))
                .bind::<Nullable<Text>, _>(Some("1004242"))
                .load::<PlanLine>(&mut conn)
                .expect("explain")
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
                .join("\n")
        };
        for sql in [CUSTOMERS_SQL, LOCK_PRIMARIES_SQL] {
            let plan = explain(sql);
            assert!(!plan.contains("Seq Scan"), "{plan}");
            assert!(plan.contains("contact_email_idx"), "{plan}");
            assert!(plan.contains("contact_phone_number_idx"), "{plan}");
        }
        assert!(explain(CUSTOMERS_SQL).contains("contact_linked_id_idx"));
    }
}

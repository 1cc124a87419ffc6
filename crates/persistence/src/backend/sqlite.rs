//! SQLite, the embedded default: one file, WAL journal, and write transactions that take
//! the database's write lock when they begin (`BEGIN IMMEDIATE`), so a unit of work's read
//! and its write can never interleave with another's, in this process or another one on the
//! same file.

use diesel::prelude::*;
use diesel::SqliteConnection;
use identity_domain::{ContactChange, ContactId, Identifiers, NewContact};

use super::{Backend, Guard, Statements};
use crate::models::ContactRow;
use crate::repository::UnitError;

pub(crate) struct Sqlite;

/// The same statement as PostgreSQL's, in SQLite's dialect; each branch uses an index.
pub(crate) const CUSTOMERS_SQL: &str = "
WITH matched AS (
    SELECT COALESCE(linked_id, id) AS primary_id FROM contact
     WHERE email = ?1 AND deleted_at IS NULL
    UNION
    SELECT COALESCE(linked_id, id) FROM contact
     WHERE phone_number = ?2 AND deleted_at IS NULL
), customer AS (
    SELECT * FROM contact
     WHERE id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM contact
     WHERE linked_id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL
)
SELECT id, phone_number, email, linked_id, link_precedence,
       CAST(round(unixepoch(created_at, 'subsec') * 1000) AS INTEGER) * 1000 AS created_at_us
  FROM customer";

/// `created_at` is the contact's own date (`?5`, µs since the epoch) when it has one, else
/// now (UTC, millisecond precision; ties are broken by id).
const INSERT_SQL: &str = "
INSERT INTO contact (email, phone_number, linked_id, link_precedence, created_at)
VALUES (?1, ?2, ?3, ?4, COALESCE(strftime('%Y-%m-%dT%H:%M:%fZ', ?5 / 1000000.0, 'unixepoch'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))
RETURNING id";

const RELINK_SQL_PREFIX: &str = "
UPDATE contact SET linked_id = ?1, link_precedence = 'secondary',
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
 WHERE deleted_at IS NULL AND id IN (";

/// Every live contact of the customer of live contact `?1`.
const CUSTOMER_OF_SQL: &str = "
WITH owner AS (
    SELECT COALESCE(linked_id, id) AS primary_id FROM contact
     WHERE id = ?1 AND deleted_at IS NULL
), customer AS (
    SELECT * FROM contact WHERE id IN (SELECT primary_id FROM owner) AND deleted_at IS NULL
    UNION ALL
    SELECT * FROM contact WHERE linked_id IN (SELECT primary_id FROM owner) AND deleted_at IS NULL
)
SELECT id, phone_number, email, linked_id, link_precedence,
       CAST(round(unixepoch(created_at, 'subsec') * 1000) AS INTEGER) * 1000 AS created_at_us
  FROM customer";

const ALL_SQL: &str = "
SELECT id, phone_number, email, linked_id, link_precedence,
       CAST(round(unixepoch(created_at, 'subsec') * 1000) AS INTEGER) * 1000 AS created_at_us
  FROM contact WHERE deleted_at IS NULL";

const CHANGE_SQL: &str = "
UPDATE contact SET email = ?2, phone_number = ?3, link_precedence = ?4, linked_id = ?5,
                   deleted_at = CASE WHEN ?6 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE deleted_at END,
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
 WHERE id = ?1";

impl Backend for Sqlite {
    type Connection = SqliteConnection;

    /// SQLITE_BUSY: the write lock was not free within `busy_timeout`.
    const COLLISIONS: &'static [&'static str] = &["database is locked", "database table is locked"];

    const EVENT_SQL: &'static str = "INSERT INTO contact_event
        (customer_id, contact_id, kind, cause, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    const OUTBOX_SQL: &'static str =
        "INSERT INTO outbox (customer_id, kind, payload) VALUES (?1, ?2, ?3)";
    const HISTORY_SQL: &'static str = "SELECT id, customer_id, contact_id, kind, cause, before, after,
               CAST(round(unixepoch(occurred_at, 'subsec') * 1000) AS INTEGER) * 1000 AS occurred_at_us
          FROM contact_event WHERE contact_id IN ({ids}) OR customer_id IN ({ids}) ORDER BY id";
    const CLAIM_SQL: &'static str = "UPDATE outbox
           SET claimed_until = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('+%.3f seconds', ?2 / 1000.0))
         WHERE id IN (
            SELECT o.id FROM outbox o
             WHERE o.delivered_at IS NULL
               AND o.next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
               AND (o.claimed_until IS NULL OR o.claimed_until < strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
               AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.customer_id = o.customer_id
                                  AND e.id < o.id AND e.delivered_at IS NULL)
             ORDER BY o.id LIMIT ?1)
        RETURNING id, customer_id, kind, payload, attempts,
                  CAST(round(unixepoch(created_at, 'subsec') * 1000) AS INTEGER) * 1000 AS created_at_us";
    const DELIVERED_SQL: &'static str = "UPDATE outbox
           SET delivered_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), claimed_until = NULL,
               attempts = attempts + 1
         WHERE id = ?1";
    const FAILED_SQL: &'static str = "UPDATE outbox
           SET attempts = attempts + 1, claimed_until = NULL, last_error = ?2,
               next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('+%.3f seconds', ?3 / 1000.0))
         WHERE id = ?1";

    fn guard_customer_of(_conn: &mut SqliteConnection, _id: i64) -> QueryResult<Guard> {
        // BEGIN IMMEDIATE already holds the write lock of the whole file.
        Ok(Guard::Store)
    }

    fn load_customers(
        conn: &mut SqliteConnection,
        identifiers: &Identifiers,
    ) -> QueryResult<Vec<ContactRow>> {
        conn.customers(CUSTOMERS_SQL, identifiers)
    }

    fn load_customer_of(conn: &mut SqliteConnection, id: i64) -> QueryResult<Vec<ContactRow>> {
        conn.customer_of(CUSTOMER_OF_SQL, id)
    }

    fn write_transaction<T>(
        conn: &mut SqliteConnection,
        work: impl FnOnce(&mut SqliteConnection) -> Result<T, UnitError>,
    ) -> Result<T, UnitError> {
        conn.immediate_transaction(work)
    }

    fn guard(_conn: &mut SqliteConnection, _identifiers: &Identifiers) -> QueryResult<Guard> {
        // BEGIN IMMEDIATE already holds the write lock of the whole file.
        Ok(Guard::Store)
    }

    fn insert(conn: &mut SqliteConnection, contact: &NewContact) -> QueryResult<i64> {
        conn.insert_contact(INSERT_SQL, contact)
    }

    fn relink(
        conn: &mut SqliteConnection,
        primary: i64,
        contacts: &[ContactId],
    ) -> QueryResult<usize> {
        conn.relink_contacts(RELINK_SQL_PREFIX, primary, contacts)
    }

    fn lock_all(_conn: &mut SqliteConnection) -> QueryResult<()> {
        // BEGIN IMMEDIATE already keeps every other writer out.
        Ok(())
    }

    fn load_all(conn: &mut SqliteConnection) -> QueryResult<Vec<ContactRow>> {
        conn.all_contacts(ALL_SQL)
    }

    fn apply_change(conn: &mut SqliteConnection, change: &ContactChange) -> QueryResult<usize> {
        conn.change_contact(CHANGE_SQL, change)
    }
}

/// Settings for every pooled connection: WAL so readers never block the writer, a busy
/// timeout so a writer waits for the lock instead of failing, foreign keys enforced.
pub(crate) fn session_sql(busy_timeout_ms: u128) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    )
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{Nullable, Text};
    use identity_test_support::TestSqlite;

    use super::*;

    /// Every branch of the lookup searches an index; none scans the table.
    #[test]
    fn lookups_use_indexes() {
        #[derive(QueryableByName)]
        struct PlanLine {
            #[diesel(sql_type = Text)]
            detail: String,
        }
        let db = TestSqlite::new();
        let mut conn = SqliteConnection::establish(&db.path().to_string_lossy()).expect("opens");
        let plan: Vec<String> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {CUSTOMERS_SQL}"))
            .bind::<Nullable<Text>, _>(Some("a@x.io"))
            .bind::<Nullable<Text>, _>(Some("1"))
            .load::<PlanLine>(&mut conn)
            .expect("explain")
            .into_iter()
            .map(|l| l.detail)
            .collect();
        let plan = plan.join("\n");
        for index in [
            "contact_email_idx",
            "contact_phone_number_idx",
            "contact_linked_id_idx",
        ] {
            assert!(plan.contains(index), "{plan}");
        }
        assert!(
            !plan.lines().any(|l| l.starts_with("SCAN contact")),
            "{plan}"
        );
    }
}

//! What only PostgreSQL does: READ COMMITTED write transactions that lock what they are
//! about to change (advisory locks on the request's identifiers, row locks on the
//! primaries they match; docs/CONCURRENCY.md), the history and outbox rows of a write in
//! one statement, and the session settings of a connection.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

use crate::models::{NewEventRow, NewOutboxRow};
use crate::queries::fixed_query;

/// Session settings for every pooled connection.
pub(crate) fn session_sql(
    statement_timeout_ms: u128,
    lock_timeout_ms: u128,
    read_only: bool,
) -> String {
    format!(
        "SET statement_timeout = {statement_timeout_ms}; SET lock_timeout = {lock_timeout_ms}; \
         SET application_name = 'identity-api'; SET default_transaction_read_only = {}",
        if read_only { "on" } else { "off" }
    )
}

/// In one statement: a transaction-scoped advisory lock per identifier key (in hash order,
/// so that two transactions never wait on each other's second lock), then row locks on the
/// primaries of the customers the email or phone match, in id order.
///
/// The advisory locks are a one-time filter of the row-locking scan, so they are taken
/// before it starts. A row that stopped being a primary while this waited for its lock is
/// re-checked against `link_precedence = 'primary'` (PostgreSQL re-evaluates the row's
/// conditions on its new version) and skipped, so only rows that are primaries are ever
/// held. What the statement's snapshot could not see (a contact committed while it waited
/// for an advisory lock) the next statement's read sees, unlocked: the unit then starts
/// over (`ensure_guarded`).
#[derive(Debug)]
pub(crate) struct LockMatching<'a> {
    /// `email:…` and `phone:…` keys of the request's identifiers.
    pub keys: &'a [String],
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

impl QueryFragment<Pg> for LockMatching<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "WITH identifier_locks AS MATERIALIZED ( \
               SELECT pg_advisory_xact_lock(key) FROM ( \
                 SELECT DISTINCT hashtextextended(value, 0) AS key FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(self.keys)?;
        out.push_sql(
            ") AS t(value)) AS keys ORDER BY key) \
             SELECT id FROM contact \
              WHERE (SELECT count(*) FROM identifier_locks) >= 0 \
                AND id IN ( \
                  SELECT COALESCE(linked_id, id) FROM contact WHERE email = ",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.email)?;
        out.push_sql(
            " AND deleted_at IS NULL \
                  UNION \
                  SELECT COALESCE(linked_id, id) FROM contact WHERE phone_number = ",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.phone)?;
        out.push_sql(
            " AND deleted_at IS NULL) \
                AND link_precedence = 'primary' AND deleted_at IS NULL \
              ORDER BY id FOR UPDATE",
        );
        Ok(())
    }
}

/// Row-locks the primary of the customer of live contact `id`, if it is one.
#[derive(Debug)]
pub(crate) struct LockCustomerOf {
    pub id: i64,
}

impl QueryFragment<Pg> for LockCustomerOf {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT id FROM contact \
              WHERE id = (SELECT COALESCE(linked_id, id) FROM contact \
                           WHERE id = ",
        );
        out.push_bind_param::<BigInt, _>(&self.id)?;
        out.push_sql(
            " AND deleted_at IS NULL) \
                AND link_precedence = 'primary' AND deleted_at IS NULL \
              FOR UPDATE",
        );
        Ok(())
    }
}

fixed_query!(LockMatching<'_>, LockMatchingId, BigInt);
fixed_query!(LockCustomerOf, LockCustomerOfId, BigInt);

/// Inside a write transaction: keeps every other writer out until commit (EXCLUSIVE:
/// readers go on, writers wait), and lifts the statement time limit (a whole-table
/// operation takes long) while bounding the wait for the lock (30 s, then the operation
/// gives up rather than stall the service).
pub(crate) fn lock_all(conn: &mut PgConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(
        "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '30s';
         LOCK TABLE contact IN EXCLUSIVE MODE",
    )
}

/// The history and outbox rows of one write, in one statement (one round trip): each
/// column is bound as an array and unnested.
#[derive(Debug, Default)]
pub(crate) struct RecordWrites<'a> {
    event_customers: Vec<i64>,
    event_contacts: Vec<i64>,
    event_kinds: Vec<&'static str>,
    event_causes: Vec<&'a str>,
    event_befores: Vec<Option<String>>,
    event_afters: Vec<Option<String>>,
    outbox_customers: Vec<i64>,
    outbox_kinds: Vec<&'static str>,
    outbox_payloads: Vec<String>,
}

impl<'a> RecordWrites<'a> {
    pub(crate) fn new(events: Vec<NewEventRow<'a>>, outbox: Vec<NewOutboxRow>) -> Self {
        let mut writes = Self::default();
        for event in events {
            writes.event_customers.push(event.customer_id);
            writes.event_contacts.push(event.contact_id);
            writes.event_kinds.push(event.kind);
            writes.event_causes.push(event.cause);
            writes.event_befores.push(event.before);
            writes.event_afters.push(event.after);
        }
        for row in outbox {
            writes.outbox_customers.push(row.customer_id);
            writes.outbox_kinds.push(row.kind);
            writes.outbox_payloads.push(row.payload);
        }
        writes
    }
}

impl QueryFragment<Pg> for RecordWrites<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "WITH history AS ( \
               INSERT INTO contact_event (customer_id, contact_id, kind, cause, before, after) \
               SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.event_customers)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.event_contacts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.event_kinds)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.event_causes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.event_befores)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.event_afters)?;
        out.push_sql(
            ")) INSERT INTO outbox (customer_id, kind, payload) \
               SELECT * FROM unnest(",
        );
        out.push_bind_param::<Array<BigInt>, _>(&self.outbox_customers)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.outbox_kinds)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.outbox_payloads)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryId for RecordWrites<'_> {
    type QueryId = RecordWritesId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// The cache key of [`RecordWrites`].
#[derive(Debug)]
pub(crate) struct RecordWritesId;

impl<Conn> RunQueryDsl<Conn> for RecordWrites<'_> {}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::QueryableByName;
    use identity_test_support::TestDb;

    use super::*;
    use crate::queries::CustomersMatching;

    #[derive(QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }

    /// The plan a connection's cached prepared statement runs with: the statement Diesel
    /// prepared for `query` (found by its text in `pg_prepared_statements`), explained
    /// with the given arguments.
    fn cached_plan(conn: &mut PgConnection, name_of: &str, args: &str) -> String {
        #[derive(QueryableByName)]
        struct Prepared {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let prepared: Vec<Prepared> = diesel::sql_query(format!(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%{name_of}%'"
        ))
        .load(conn)
        .expect("prepared statements");
        let name = &prepared.first().expect("the statement was prepared").name;
        diesel::sql_query(format!("EXPLAIN EXECUTE {name}({args})"))
            .load::<PlanLine>(conn)
            .expect("explain")
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn fill(conn: &mut PgConnection, contacts: i64) {
        conn.batch_execute(&format!(
            "INSERT INTO contact (email, phone_number, link_precedence)
                  SELECT 'user' || n || '@x.io', (1000000 + n)::text, 'primary'
                    FROM generate_series(1, {contacts}) AS n;
             INSERT INTO contact (email, phone_number, linked_id, link_precedence)
                  SELECT 'alt' || n || '@x.io', (1000000 + n)::text, n, 'secondary'
                    FROM generate_series(1, {contacts}, 4) AS n;
             ANALYZE contact;",
        ))
        .expect("bulk insert");
    }

    /// The lookups stay index scans at a large scale (the planner's choice depends on
    /// statistics, so the table is filled and analysed first).
    #[test]
    fn lookups_are_index_scans_on_a_large_table() {
        let db = TestDb::new();
        let mut conn = db.connect();
        fill(&mut conn, 200_000);
        let keys = ["email:user4242@x.io".to_owned()];
        let lookup = CustomersMatching {
            email: Some("user4242@x.io"),
            phone: Some("1004242"),
        };
        let lock = LockMatching {
            keys: &keys,
            email: Some("user4242@x.io"),
            phone: Some("1004242"),
        };
        diesel::connection::Connection::transaction(&mut conn, |conn| {
            lookup.load::<crate::models::ContactRow>(conn)?;
            lock.load::<i64>(conn).map(drop)
        })
        .expect("both statements run");
        let args = "'user4242@x.io', '1004242'";
        let read = cached_plan(&mut conn, "UNION ALL", args);
        let locks = cached_plan(
            &mut conn,
            "pg_advisory_xact_lock",
            "ARRAY['email:user4242@x.io'], 'user4242@x.io', '1004242'",
        );
        for plan in [&read, &locks] {
            assert!(!plan.contains("Seq Scan"), "{plan}");
            assert!(plan.contains("contact_email_idx"), "{plan}");
            assert!(plan.contains("contact_phone_number_idx"), "{plan}");
        }
        assert!(read.contains("contact_linked_id_idx"), "{read}");
        // The advisory locks gate the row-locking scan: a one-time filter above it.
        assert!(locks.contains("One-Time Filter"), "{locks}");
    }

    /// Every statement of the hot paths is prepared once and then reused by the connection:
    /// the look-up, the locks, the insert, the history and outbox rows.
    #[test]
    fn the_hot_statements_are_prepared_once_per_connection() {
        use identity_domain::{Email, Identifiers, Link, NewContact, PhoneNumber, Plan};

        use crate::pool::Db;
        use crate::writes::{guarded_read, write_plan};

        let db = TestDb::new();
        let mut conn = db.connect();
        for n in 0..3 {
            let identifiers = Identifiers::new(
                Some(Email::from_stored(format!("new{n}@x.io"))),
                Some(PhoneNumber::from_stored(format!("555010{n}"))),
            )
            .expect("identifiers");
            diesel::connection::Connection::transaction(&mut conn, |conn| {
                let mut db = Db::Pg(conn);
                let current = guarded_read(&mut db, &identifiers)?;
                let plan = Plan {
                    insert: Some(NewContact {
                        email: identifiers.email().cloned(),
                        phone: identifiers.phone().cloned(),
                        link: Link::Primary,
                        created_at: None,
                    }),
                    ..Plan::default()
                };
                write_plan(&mut db, &plan, &identifiers, current, "test").map(drop)
            })
            .expect("a new customer");
        }
        #[derive(QueryableByName)]
        struct Prepared {
            #[diesel(sql_type = Text)]
            statement: String,
        }
        let prepared: Vec<String> =
            diesel::sql_query("SELECT statement FROM pg_prepared_statements")
                .load::<Prepared>(&mut conn)
                .expect("prepared statements")
                .into_iter()
                .map(|p| p.statement)
                .collect();
        for needle in [
            "pg_advisory_xact_lock",
            "UNION ALL",
            "INSERT INTO contact (",
            "INSERT INTO contact_event",
        ] {
            let count = prepared.iter().filter(|s| s.contains(needle)).count();
            assert_eq!(count, 1, "{needle} prepared once: {prepared:#?}");
        }
    }

    /// The known trap of cached plans: a connection that prepared the lookup while the
    /// table was empty, and ran it often enough for PostgreSQL to settle on a generic
    /// plan, must not keep a sequential scan once the table is large and its statistics
    /// were refreshed (what `identity-api import` does as it grows the table).
    #[test]
    fn a_plan_cached_on_an_empty_table_is_replaced_once_statistics_change() {
        let db = TestDb::new();
        let mut conn = db.connect();
        let lookup = CustomersMatching {
            email: Some("user4242@x.io"),
            phone: Some("1004242"),
        };
        for _ in 0..10 {
            lookup
                .load::<crate::models::ContactRow>(&mut conn)
                .expect("lookup");
        }
        fill(&mut conn, 200_000);
        lookup
            .load::<crate::models::ContactRow>(&mut conn)
            .expect("lookup");
        let plan = cached_plan(&mut conn, "UNION ALL", "'user4242@x.io', '1004242'");
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
}

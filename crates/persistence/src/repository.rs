//! `ContactRepository` on PostgreSQL.
//!
//! Reads: one statement, so the answer comes from one snapshot.
//! Writes: one transaction per unit of work that first takes transaction-scoped advisory
//! locks on the request's identifiers, then row locks on the primaries of the customers they
//! match, re-reads, decides, writes. The argument for why this is enough is in
//! `docs/CONCURRENCY.md`.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, Nullable, Text};
use identity_domain::{
    Contact, ContactRepository, Decide, Identifiers, InconsistentGraph, Plan, RepositoryError,
};

use crate::models::{ContactRow, MalformedRow, NewContactRow, PRIMARY, SECONDARY};
use crate::pool::PgPool;
use crate::schema::contact;

type Conn = PooledConnection<ConnectionManager<PgConnection>>;

/// Every live contact of every customer with a live contact whose email is `$1` or whose
/// phone is `$2`. Each branch is an index scan (`contact_email_idx`, `contact_phone_number_idx`,
/// the primary key, `contact_linked_id_idx`); a single `id IN (…) OR linked_id IN (…)` would
/// not be.
const CUSTOMERS_SQL: &str = "
WITH matched AS (
    SELECT COALESCE(linked_id, id) AS primary_id FROM contact
     WHERE email = $1 AND deleted_at IS NULL
    UNION
    SELECT COALESCE(linked_id, id) FROM contact
     WHERE phone_number = $2 AND deleted_at IS NULL
)
SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM contact
 WHERE id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL
UNION ALL
SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM contact
 WHERE linked_id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL";

/// Row-locks the primaries of the customers matched by `$1`/`$2`, in id order.
const LOCK_PRIMARIES_SQL: &str = "
SELECT id FROM contact
 WHERE id IN (
    SELECT COALESCE(linked_id, id) FROM contact WHERE email = $1 AND deleted_at IS NULL
    UNION
    SELECT COALESCE(linked_id, id) FROM contact WHERE phone_number = $2 AND deleted_at IS NULL
 ) AND deleted_at IS NULL
 ORDER BY id
 FOR UPDATE";

/// Takes a transaction-scoped advisory lock per identifier, in hash order so that two
/// transactions never wait on each other's second lock. (PostgreSQL evaluates a volatile
/// function in the select list after ORDER BY.)
const LOCK_IDENTIFIERS_SQL: &str = "
SELECT pg_advisory_xact_lock(key)
  FROM (SELECT DISTINCT hashtextextended(value, 0) AS key FROM unnest($1::text[]) AS t(value)) AS keys
 ORDER BY key";

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
    /// "Full jitter" back-off: a random pause between half and all of the exponential bound.
    fn pause_before(&self, attempt: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(2).min(16));
        let bound = exponential.min(self.max_delay);
        bound.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// The PostgreSQL implementation of the port.
#[derive(Clone)]
pub struct PgContactRepository {
    pool: PgPool,
    retry: RetryPolicy,
}

impl PgContactRepository {
    pub fn new(pool: PgPool, retry: RetryPolicy) -> Self {
        Self { pool, retry }
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

    /// Connections open and idle in this process's pool.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    fn connection(&self) -> Result<Conn, RepositoryError> {
        self.pool
            .get()
            .map_err(|e| RepositoryError::Unavailable(Box::new(e)))
    }
}

impl ContactRepository for PgContactRepository {
    fn find_customers(&self, identifiers: &Identifiers) -> Result<Vec<Contact>, RepositoryError> {
        let mut conn = self.connection()?;
        let rows = load_customers(&mut conn, identifiers)
            .map_err(|e| classify(e, &mut conn).into_final())?;
        into_contacts(rows).map_err(|e| RepositoryError::Internal(Box::new(e)))
    }

    fn apply_atomically(
        &self,
        identifiers: &Identifiers,
        decide: &dyn Decide,
    ) -> Result<Vec<Contact>, RepositoryError> {
        let mut attempt = 1;
        loop {
            let mut conn = self.connection()?;
            let failure = match run_unit(&mut conn, identifiers, decide) {
                Ok(contacts) => return Ok(contacts),
                Err(UnitError::Db(error)) => classify(error, &mut conn),
                Err(UnitError::Moved) => Failure::Collided,
                Err(UnitError::Inconsistent(e)) => return Err(RepositoryError::Inconsistent(e)),
                Err(UnitError::Malformed(e)) => return Err(RepositoryError::Internal(Box::new(e))),
            };
            drop(conn);
            if attempt >= self.retry.max_attempts || matches!(failure, Failure::Final(_)) {
                return Err(failure.into_error(attempt));
            }
            tracing::debug!(
                attempt,
                reason = failure.reason(),
                "unit of work collided; retrying"
            );
            std::thread::sleep(self.retry.pause_before(attempt + 1));
            attempt += 1;
        }
    }
}

fn load_customers(
    conn: &mut PgConnection,
    identifiers: &Identifiers,
) -> QueryResult<Vec<ContactRow>> {
    diesel::sql_query(CUSTOMERS_SQL)
        .bind::<Nullable<Text>, _>(identifiers.email().map(|e| e.as_str()))
        .bind::<Nullable<Text>, _>(identifiers.phone().map(|p| p.as_str()))
        .load(conn)
}

fn into_contacts(rows: Vec<ContactRow>) -> Result<Vec<Contact>, MalformedRow> {
    rows.into_iter().map(Contact::try_from).collect()
}

/// Why one run of a unit of work ended without committing.
#[derive(Debug)]
enum UnitError {
    Db(DieselError),
    /// A customer changed between the lock-taking read and the re-read.
    Moved,
    Inconsistent(InconsistentGraph),
    Malformed(MalformedRow),
}

impl From<DieselError> for UnitError {
    fn from(error: DieselError) -> Self {
        Self::Db(error)
    }
}

/// One run of a unit of work, in one transaction.
fn run_unit(
    conn: &mut PgConnection,
    identifiers: &Identifiers,
    decide: &dyn Decide,
) -> Result<Vec<Contact>, UnitError> {
    conn.transaction(|conn| {
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

        let locked: Vec<i64> = diesel::sql_query(LOCK_PRIMARIES_SQL)
            .bind::<Nullable<Text>, _>(identifiers.email().map(|e| e.as_str()))
            .bind::<Nullable<Text>, _>(identifiers.phone().map(|p| p.as_str()))
            .load::<LockedId>(conn)?
            .into_iter()
            .map(|row| row.id)
            .collect();
        // With no customer matched there is nothing to re-read: nobody else can add a contact
        // with these identifiers while we hold their locks.
        let rows = if locked.is_empty() {
            Vec::new()
        } else {
            load_customers(conn, identifiers)?
        };
        let every_primary_locked = rows
            .iter()
            .filter(|row| row.link_precedence == PRIMARY)
            .all(|row| locked.binary_search(&row.id).is_ok());
        if !every_primary_locked {
            return Err(UnitError::Moved);
        }
        let current = into_contacts(rows).map_err(UnitError::Malformed)?;

        let plan = decide.decide(&current).map_err(UnitError::Inconsistent)?;
        if plan.is_empty() {
            return Ok(current);
        }
        write(conn, &plan)?;
        let after = load_customers(conn, identifiers)?;
        into_contacts(after).map_err(UnitError::Malformed)
    })
}

#[derive(QueryableByName)]
struct LockedId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

fn write(conn: &mut PgConnection, plan: &Plan) -> Result<(), UnitError> {
    if let Some(relink) = &plan.relink {
        let ids: Vec<i64> = relink.contacts.iter().map(|id| id.get()).collect();
        let updated = diesel::update(
            contact::table
                .filter(contact::id.eq_any(&ids))
                .filter(contact::deleted_at.is_null()),
        )
        .set((
            contact::linked_id.eq(relink.primary.get()),
            contact::link_precedence.eq(SECONDARY),
            contact::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
        if updated != ids.len() {
            return Err(UnitError::Moved);
        }
    }
    if let Some(new) = &plan.insert {
        let (precedence, linked_id) = match new.link {
            identity_domain::Link::Primary => (PRIMARY, None),
            identity_domain::Link::Secondary(primary) => (SECONDARY, Some(primary.get())),
        };
        diesel::insert_into(contact::table)
            .values(NewContactRow {
                email: new.email.as_ref().map(|e| e.as_str()),
                phone_number: new.phone.as_ref().map(|p| p.as_str()),
                linked_id,
                link_precedence: precedence,
            })
            .execute(conn)?;
    }
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
    fn reason(&self) -> &'static str {
        match self {
            Self::Collided => "collided",
            Self::Disconnected(_) => "disconnected",
            Self::Final(_) => "final",
        }
    }

    fn into_error(self, attempts: u32) -> RepositoryError {
        match self {
            Self::Collided => RepositoryError::Contended { attempts },
            Self::Disconnected(e) => RepositoryError::Unavailable(Box::new(e)),
            Self::Final(e) => e,
        }
    }

    /// For calls that are not retried.
    fn into_final(self) -> RepositoryError {
        self.into_error(1)
    }
}

/// Sorts a Diesel error into [`Failure`]. PostgreSQL reports some conditions only by message
/// (Diesel keeps no SQLSTATE for them); when in doubt, the connection is probed: an error on a
/// dead connection is a lost connection, not a bug.
fn classify(error: DieselError, conn: &mut PgConnection) -> Failure {
    const COLLISIONS: [&str; 2] = [
        "deadlock detected",
        "canceling statement due to lock timeout",
    ];
    match &error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
            return Failure::Collided
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => return Failure::Disconnected(error),
        DieselError::DatabaseError(_, info)
            if COLLISIONS.iter().any(|m| info.message().starts_with(m)) =>
        {
            return Failure::Collided
        }
        DieselError::DatabaseError(_, info)
            if info
                .message()
                .starts_with("canceling statement due to statement timeout") =>
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

/// Against a real PostgreSQL (a fresh database per test).
#[cfg(test)]
mod db_tests {
    use diesel::sql_types::BigInt;
    use identity_domain::{ContactId, Email, Link, NewContact, PhoneNumber, Relink};
    use identity_test_support::TestDb;

    use super::*;
    use crate::pool::{build_pool, PoolSettings};

    fn repository(db: &TestDb) -> PgContactRepository {
        let pool = build_pool(&PoolSettings {
            url: db.url().to_owned(),
            max_size: 2,
            min_idle: 0,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
        })
        .expect("pool");
        PgContactRepository::new(pool, RetryPolicy::default())
    }

    fn identifiers(email: Option<&str>, phone: Option<&str>) -> Identifiers {
        Identifiers::new(
            email.and_then(|e| Email::parse(e).expect("valid")),
            phone.and_then(|p| PhoneNumber::parse(p).expect("valid")),
        )
        .expect("one identifier")
    }

    fn count(db: &TestDb) -> i64 {
        diesel::select(diesel::dsl::sql::<BigInt>("(SELECT count(*) FROM contact)"))
            .get_result(&mut db.connect())
            .expect("count")
    }

    fn create(repo: &PgContactRepository, request: &Identifiers) -> Vec<Contact> {
        repo.apply_atomically(request, &|current: &[Contact]| {
            identity_domain::reconcile(request, current)
        })
        .expect("written")
    }

    #[test]
    fn reads_the_whole_customer_from_either_identifier() {
        let db = TestDb::new();
        let repo = repository(&db);
        let first = identifiers(Some("a@x.io"), Some("1"));
        create(&repo, &first);
        create(&repo, &identifiers(Some("b@x.io"), Some("1")));
        create(&repo, &identifiers(Some("unrelated@x.io"), Some("9")));

        for request in [
            identifiers(Some("a@x.io"), None),
            identifiers(Some("b@x.io"), None),
            identifiers(None, Some("1")),
        ] {
            let customer = repo.find_customers(&request).expect("read");
            assert_eq!(customer.len(), 2, "{request:?}");
        }
        assert!(repo
            .find_customers(&identifiers(Some("nobody@x.io"), None))
            .expect("read")
            .is_empty());
        // Later contacts are never older than earlier ones.
        let customer = repo.find_customers(&first).expect("read");
        assert!(customer[0].created_at < customer[1].created_at);
    }

    #[test]
    fn a_refused_decision_writes_nothing() {
        let db = TestDb::new();
        let repo = repository(&db);
        let outcome = repo
            .apply_atomically(&identifiers(Some("a@x.io"), None), &|_: &[Contact]| {
                Err(InconsistentGraph::NoPrimary)
            });
        assert!(matches!(outcome, Err(RepositoryError::Inconsistent(_))));
        assert_eq!(count(&db), 0);
    }

    #[test]
    fn a_failure_midway_rolls_the_whole_unit_back() {
        let db = TestDb::new();
        let repo = repository(&db);
        let a = create(&repo, &identifiers(Some("a@x.io"), None))[0].id;
        let b = create(&repo, &identifiers(Some("b@x.io"), None))[0].id;
        let missing = ContactId::new(999_999).expect("positive");

        // The relink succeeds, then the insert breaks the foreign key.
        let outcome =
            repo.apply_atomically(&identifiers(Some("a@x.io"), None), &|_: &[Contact]| {
                Ok(Plan {
                    relink: Some(Relink {
                        primary: a,
                        contacts: vec![b],
                    }),
                    insert: Some(NewContact {
                        email: Email::parse("c@x.io").expect("valid"),
                        phone: None,
                        link: Link::Secondary(missing),
                    }),
                })
            });
        assert!(
            matches!(outcome, Err(RepositoryError::Internal(_))),
            "{outcome:?}"
        );
        assert_eq!(count(&db), 2);
        let b_now = repo
            .find_customers(&identifiers(Some("b@x.io"), None))
            .expect("read");
        assert_eq!(b_now.len(), 1);
        assert!(b_now[0].is_primary(), "the relink was rolled back");
    }

    #[test]
    fn the_schema_refuses_rows_that_break_the_link_rules() {
        let db = TestDb::new();
        let mut conn = db.connect();
        for sql in [
            "INSERT INTO contact (email, link_precedence) VALUES ('a@x.io', 'tertiary')",
            "INSERT INTO contact (email, link_precedence, linked_id) VALUES ('a@x.io', 'primary', 1)",
            "INSERT INTO contact (email, link_precedence) VALUES ('a@x.io', 'secondary')",
            "INSERT INTO contact (link_precedence) VALUES ('primary')",
        ] {
            assert!(conn.batch_execute(sql).is_err(), "{sql}");
        }
    }

    /// The lookups stay index scans at a million-row scale (the planner's choice depends on
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

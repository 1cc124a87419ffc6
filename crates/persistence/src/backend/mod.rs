//! What differs between the backends, kept small and visible: the SQL dialect, how a write
//! transaction starts, how it guards the customers it is about to change, and the session
//! settings of a connection. Everything else (the unit of work, retries, error
//! classification, row mapping) is written once in `repository.rs`.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use diesel::pg::Pg;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::Sqlite as SqliteBackend;
use diesel::QueryResult;
use diesel::QueryableByName;
use identity_domain::{ContactChange, ContactId, Identifiers, NewContact};

use crate::models::ContactRow;
use crate::repository::UnitError;

pub(crate) use postgres::Postgres;
pub(crate) use sqlite::Sqlite;

/// What a write transaction holds once [`Backend::guard`] returns.
#[derive(Debug)]
pub(crate) enum Guard {
    /// The whole store: no other write can run until commit (SQLite's write lock).
    Store,
    /// The row locks of these primaries (ascending), plus the request's identifiers.
    Primaries(Vec<i64>),
}

/// One database backend.
pub(crate) trait Backend: Send + Sync + 'static {
    type Connection: R2D2Connection + Statements + Send + 'static;

    /// Messages of errors that mean "collided with a concurrent transaction, run again".
    const COLLISIONS: &'static [&'static str];

    /// One statement: every live contact of every customer with a live contact whose email
    /// or phone is the request's.
    fn load_customers(
        conn: &mut Self::Connection,
        identifiers: &Identifiers,
    ) -> QueryResult<Vec<ContactRow>>;

    /// One statement: every live contact of the customer of live contact `id`.
    fn load_customer_of(conn: &mut Self::Connection, id: i64) -> QueryResult<Vec<ContactRow>>;

    /// Runs `work` in one write transaction.
    fn write_transaction<T>(
        conn: &mut Self::Connection,
        work: impl FnOnce(&mut Self::Connection) -> Result<T, UnitError>,
    ) -> Result<T, UnitError>;

    /// First thing in a write transaction: makes sure that, until commit, nobody else can
    /// change the customers the request matches or create a contact with its identifiers.
    fn guard(conn: &mut Self::Connection, identifiers: &Identifiers) -> QueryResult<Guard>;

    /// Inserts the contact (with its own `created_at` when it has one); returns its id.
    fn insert(conn: &mut Self::Connection, contact: &NewContact) -> QueryResult<i64>;

    /// Makes `contacts` secondaries of `primary`; returns the rows changed.
    fn relink(
        conn: &mut Self::Connection,
        primary: i64,
        contacts: &[ContactId],
    ) -> QueryResult<usize>;

    /// Inside a write transaction: keeps every other writer out until commit, and lifts the
    /// per-statement time limits (a whole-table operation takes long).
    fn lock_all(conn: &mut Self::Connection) -> QueryResult<()>;

    /// Every live contact.
    fn load_all(conn: &mut Self::Connection) -> QueryResult<Vec<ContactRow>>;

    /// Brings one contact to the state `change` describes.
    fn apply_change(conn: &mut Self::Connection, change: &ContactChange) -> QueryResult<usize>;

    /// Inside a write transaction: guards the customer of live contact `id` (like
    /// [`Backend::guard`] does for identifiers).
    fn guard_customer_of(conn: &mut Self::Connection, id: i64) -> QueryResult<Guard>;

    /// The SQL dialect's statements for history and the outbox.
    const EVENT_SQL: &'static str;
    const OUTBOX_SQL: &'static str;
    /// `{ids}` is replaced by a list of integers.
    const HISTORY_SQL: &'static str;
    /// Claims up to `?1`/`$1` deliverable events for `?2`/`$2` milliseconds.
    const CLAIM_SQL: &'static str;
    /// Marks event `1` delivered (binds only the id).
    const DELIVERED_SQL: &'static str;
    /// Marks event `1` failed with error `2`, to be tried again in `3` milliseconds.
    const FAILED_SQL: &'static str;
}

/// Statements whose SQL differs by dialect but whose Rust does not: implemented once, for
/// each connection type, by the macro below.
pub(crate) trait Statements {
    fn customers(&mut self, sql: &str, identifiers: &Identifiers) -> QueryResult<Vec<ContactRow>>;
    /// Binds email, phone, linked id, precedence, created_at (µs since the epoch, or null);
    /// the statement returns the new id.
    fn insert_contact(&mut self, sql: &str, contact: &NewContact) -> QueryResult<i64>;
    /// `sql_prefix` ends with `id IN (`; the ids are appended (integers: no injection),
    /// in chunks.
    fn relink_contacts(
        &mut self,
        sql_prefix: &str,
        primary: i64,
        contacts: &[ContactId],
    ) -> QueryResult<usize>;
    /// Binds customer, contact, kind, cause, before, after.
    fn record_event(&mut self, sql: &str, event: &crate::events::Event<'_>) -> QueryResult<usize>;
    /// Binds customer, kind, payload.
    fn enqueue(
        &mut self,
        sql: &str,
        customer: i64,
        kind: &str,
        payload: &str,
    ) -> QueryResult<usize>;
    /// Binds two integers; returns the rows the statement returns.
    fn claim_rows(
        &mut self,
        sql: &str,
        a: i64,
        b: i64,
    ) -> QueryResult<Vec<crate::models::OutboxRow>>;
    /// Binds one id.
    fn mark(&mut self, sql: &str, id: i64) -> QueryResult<usize>;
    /// Binds an id, an optional text and an integer.
    fn settle_row(
        &mut self,
        sql: &str,
        id: i64,
        error: Option<&str>,
        delay_ms: i64,
    ) -> QueryResult<usize>;
    /// A query without parameters.
    fn rows<T>(&mut self, sql: &str) -> QueryResult<Vec<T>>
    where
        T: QueryableByName<Pg> + QueryableByName<SqliteBackend> + 'static;
    fn all_contacts(&mut self, sql: &str) -> QueryResult<Vec<ContactRow>>;
    fn customer_of(&mut self, sql: &str, id: i64) -> QueryResult<Vec<ContactRow>>;
    /// Binds id, email, phone, precedence, linked id, erased, in that order.
    fn change_contact(&mut self, sql: &str, change: &ContactChange) -> QueryResult<usize>;
}

macro_rules! statements_for {
    ($connection:ty) => {
        impl Statements for $connection {
            fn customers(
                &mut self,
                sql: &str,
                identifiers: &Identifiers,
            ) -> QueryResult<Vec<ContactRow>> {
                use diesel::sql_types::{Nullable, Text};
                use diesel::RunQueryDsl;
                diesel::sql_query(sql)
                    .bind::<Nullable<Text>, _>(identifiers.email().map(|e| e.as_str()))
                    .bind::<Nullable<Text>, _>(identifiers.phone().map(|p| p.as_str()))
                    .load(self)
            }

            fn insert_contact(&mut self, sql: &str, contact: &NewContact) -> QueryResult<i64> {
                use diesel::sql_types::{BigInt, Nullable, Text};
                use diesel::RunQueryDsl;
                let (precedence, linked_id) = crate::backend::link_columns(contact.link);
                let created_at_us = contact.created_at.map(|at| at.timestamp_micros());
                diesel::sql_query(sql)
                    .bind::<Nullable<Text>, _>(contact.email.as_ref().map(|e| e.as_str()))
                    .bind::<Nullable<Text>, _>(contact.phone.as_ref().map(|p| p.as_str()))
                    .bind::<Nullable<BigInt>, _>(linked_id)
                    .bind::<Text, _>(precedence)
                    .bind::<Nullable<BigInt>, _>(created_at_us)
                    .get_result::<crate::models::IdRow>(self)
                    .map(|row| row.id)
            }

            fn relink_contacts(
                &mut self,
                sql_prefix: &str,
                primary: i64,
                contacts: &[ContactId],
            ) -> QueryResult<usize> {
                use diesel::sql_types::BigInt;
                use diesel::RunQueryDsl;
                let mut changed = 0;
                for chunk in contacts.chunks(500) {
                    let ids: Vec<String> = chunk.iter().map(|id| id.get().to_string()).collect();
                    let sql = format!("{sql_prefix}{})", ids.join(","));
                    changed += diesel::sql_query(sql)
                        .bind::<BigInt, _>(primary)
                        .execute(self)?;
                }
                Ok(changed)
            }

            fn record_event(
                &mut self,
                sql: &str,
                event: &crate::events::Event<'_>,
            ) -> QueryResult<usize> {
                use diesel::sql_types::{BigInt, Nullable, Text};
                use diesel::RunQueryDsl;
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(event.customer)
                    .bind::<BigInt, _>(event.contact)
                    .bind::<Text, _>(event.kind)
                    .bind::<Text, _>(event.cause)
                    .bind::<Nullable<Text>, _>(event.before.as_deref())
                    .bind::<Nullable<Text>, _>(event.after.as_deref())
                    .execute(self)
            }

            fn enqueue(
                &mut self,
                sql: &str,
                customer: i64,
                kind: &str,
                payload: &str,
            ) -> QueryResult<usize> {
                use diesel::sql_types::{BigInt, Text};
                use diesel::RunQueryDsl;
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(customer)
                    .bind::<Text, _>(kind)
                    .bind::<Text, _>(payload)
                    .execute(self)
            }

            fn claim_rows(
                &mut self,
                sql: &str,
                a: i64,
                b: i64,
            ) -> QueryResult<Vec<crate::models::OutboxRow>> {
                use diesel::sql_types::BigInt;
                use diesel::RunQueryDsl;
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(a)
                    .bind::<BigInt, _>(b)
                    .load(self)
            }

            fn mark(&mut self, sql: &str, id: i64) -> QueryResult<usize> {
                use diesel::sql_types::BigInt;
                use diesel::RunQueryDsl;
                diesel::sql_query(sql).bind::<BigInt, _>(id).execute(self)
            }

            fn settle_row(
                &mut self,
                sql: &str,
                id: i64,
                error: Option<&str>,
                delay_ms: i64,
            ) -> QueryResult<usize> {
                use diesel::sql_types::{BigInt, Nullable, Text};
                use diesel::RunQueryDsl;
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(id)
                    .bind::<Nullable<Text>, _>(error)
                    .bind::<BigInt, _>(delay_ms)
                    .execute(self)
            }

            fn rows<T>(&mut self, sql: &str) -> QueryResult<Vec<T>>
            where
                T: QueryableByName<Pg> + QueryableByName<SqliteBackend> + 'static,
            {
                use diesel::RunQueryDsl;
                diesel::sql_query(sql).load(self)
            }

            fn all_contacts(&mut self, sql: &str) -> QueryResult<Vec<ContactRow>> {
                use diesel::RunQueryDsl;
                diesel::sql_query(sql).load(self)
            }

            fn customer_of(&mut self, sql: &str, id: i64) -> QueryResult<Vec<ContactRow>> {
                use diesel::sql_types::BigInt;
                use diesel::RunQueryDsl;
                diesel::sql_query(sql).bind::<BigInt, _>(id).load(self)
            }

            fn change_contact(&mut self, sql: &str, change: &ContactChange) -> QueryResult<usize> {
                use diesel::sql_types::{BigInt, Bool, Nullable, Text};
                use diesel::RunQueryDsl;
                let (precedence, linked_id) = crate::backend::link_columns(change.link);
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(change.id.get())
                    .bind::<Nullable<Text>, _>(change.email.as_ref().map(|e| e.as_str()))
                    .bind::<Nullable<Text>, _>(change.phone.as_ref().map(|p| p.as_str()))
                    .bind::<Text, _>(precedence)
                    .bind::<Nullable<BigInt>, _>(linked_id)
                    .bind::<Bool, _>(change.erased)
                    .execute(self)
            }
        }
    };
}

statements_for!(diesel::PgConnection);
statements_for!(diesel::SqliteConnection);

/// Runs a query without parameters on any backend's connection.
pub(crate) fn rows<B: Backend, T>(conn: &mut B::Connection, sql: &str) -> QueryResult<Vec<T>>
where
    T: QueryableByName<Pg> + QueryableByName<SqliteBackend> + 'static,
{
    conn.rows(sql)
}

/// The `link_precedence` and `linked_id` columns of a link.
pub(crate) fn link_columns(link: identity_domain::Link) -> (&'static str, Option<i64>) {
    match link {
        identity_domain::Link::Primary => (crate::models::PRIMARY, None),
        identity_domain::Link::Secondary(primary) => {
            (crate::models::SECONDARY, Some(primary.get()))
        }
    }
}

//! The statements Diesel's query builder cannot say (a common table expression with a
//! `UNION`), or cannot say in a form it caches, as query types whose SQL is fixed. Each has a static [`QueryId`] and never
//! marks itself unsafe to cache, so Diesel prepares it once per connection and reuses the
//! prepared statement: PostgreSQL parses and plans it once, not once per request. The
//! same SQL serves both backends; Diesel writes each backend's placeholders.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};
use diesel::QueryResult;

use diesel::pg::Pg;
use diesel::sqlite::Sqlite;

use crate::sql_types::{Instant, Timestamptz};

/// The columns of [`crate::models::ContactRow`], in order.
pub(crate) type ContactColumns = (
    BigInt,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<BigInt>,
    Text,
    Timestamptz,
);

const CONTACT_COLUMNS: &str =
    "SELECT id, phone_number, email, linked_id, link_precedence, created_at FROM customer";

/// Every live contact of every customer with a live contact whose email or phone is the
/// given one. Each branch is an index scan (`contact_email_idx`, `contact_phone_number_idx`,
/// the primary key, `contact_linked_id_idx`); a single `id IN (…) OR linked_id IN (…)`
/// would not be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CustomersMatching<'a> {
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

impl<DB> QueryFragment<DB> for CustomersMatching<'_>
where
    DB: Backend + HasSqlType<Nullable<Text>>,
    for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "WITH matched AS ( \
               SELECT COALESCE(linked_id, id) AS primary_id FROM contact \
                WHERE email = ",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.email)?;
        out.push_sql(
            " AND deleted_at IS NULL \
               UNION \
               SELECT COALESCE(linked_id, id) FROM contact \
                WHERE phone_number = ",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.phone)?;
        out.push_sql(" AND deleted_at IS NULL), ");
        push_customer_of_matched(&mut out);
        Ok(())
    }
}

/// Every live contact of the customer of live contact `id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CustomerOf {
    pub id: i64,
}

impl<DB> QueryFragment<DB> for CustomerOf
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "WITH matched AS ( \
               SELECT COALESCE(linked_id, id) AS primary_id FROM contact WHERE id = ",
        );
        out.push_bind_param::<BigInt, _>(&self.id)?;
        out.push_sql(" AND deleted_at IS NULL), ");
        push_customer_of_matched(&mut out);
        Ok(())
    }
}

/// The second half of both lookups: every live contact whose primary is in `matched`.
fn push_customer_of_matched<DB: Backend>(out: &mut AstPass<'_, '_, DB>) {
    out.push_sql(
        "customer AS ( \
           SELECT * FROM contact \
            WHERE id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL \
           UNION ALL \
           SELECT * FROM contact \
            WHERE linked_id IN (SELECT primary_id FROM matched) AND deleted_at IS NULL) ",
    );
    out.push_sql(CONTACT_COLUMNS);
}

/// The `limit` largest customers: primary id, contacts, distinct emails, distinct phones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LargestCustomers {
    pub limit: i64,
}

impl<DB> QueryFragment<DB> for LargestCustomers
where
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "SELECT COALESCE(linked_id, id), count(*), count(DISTINCT email), \
                    count(DISTINCT phone_number) \
               FROM contact WHERE deleted_at IS NULL \
              GROUP BY COALESCE(linked_id, id) \
              ORDER BY count(*) DESC, COALESCE(linked_id, id) LIMIT ",
        );
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        Ok(())
    }
}

/// Inserts a contact; returns its id and creation time. `created_at` is the contact's own
/// date when it has one, else the database's clock at the insert. Fixed SQL because Diesel
/// never caches an insert whose column is a value or `DEFAULT` (the SQL differs between
/// the two), and this runs for every new contact.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InsertContact<'a> {
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub linked_id: Option<i64>,
    pub link_precedence: &'static str,
    pub created_at: Option<Instant>,
}

impl InsertContact<'_> {
    fn walk<'b, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>, clock: &str) -> QueryResult<()>
    where
        DB: Backend
            + HasSqlType<Nullable<Text>>
            + HasSqlType<Nullable<BigInt>>
            + HasSqlType<Text>
            + HasSqlType<Nullable<Timestamptz>>,
        for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
        Option<i64>: ToSql<Nullable<BigInt>, DB>,
        str: ToSql<Text, DB>,
        Option<Instant>: ToSql<Nullable<Timestamptz>, DB>,
    {
        out.push_sql(
            "INSERT INTO contact (email, phone_number, linked_id, link_precedence, created_at) \
             VALUES (",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.email)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.phone)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.linked_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.link_precedence)?;
        out.push_sql(", COALESCE(");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_sql(clock);
        out.push_sql(")) RETURNING id, created_at");
        Ok(())
    }
}

impl QueryFragment<Pg> for InsertContact<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // One clock for every replica: the database's, at the insert (after the locks).
        self.walk(&mut out, "clock_timestamp()")
    }
}

impl QueryFragment<Sqlite> for InsertContact<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        // The writer stamps every contact itself (microseconds; SQLite's clock has only
        // milliseconds): this default is never used.
        self.walk(&mut out, "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
    }
}

/// Each query type's [`QueryId`] (itself: the SQL is fixed), its result columns, and
/// `RunQueryDsl`.
macro_rules! fixed_query {
    ($query:ident $(<$lt:lifetime>)?, $id:ident, $columns:ty) => {
        /// The cache key of the query type of the same name.
        #[derive(Debug)]
        pub(crate) struct $id;

        impl ::diesel::query_builder::QueryId for $query $(<$lt>)? {
            type QueryId = $id;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl ::diesel::query_builder::Query for $query $(<$lt>)? {
            type SqlType = $columns;
        }

        impl<Conn> ::diesel::RunQueryDsl<Conn> for $query $(<$lt>)? {}
    };
}

fixed_query!(CustomersMatching<'_>, CustomersMatchingId, ContactColumns);
fixed_query!(CustomerOf, CustomerOfId, ContactColumns);
fixed_query!(InsertContact<'_>, InsertContactId, (BigInt, Timestamptz));
fixed_query!(
    LargestCustomers,
    LargestCustomersId,
    (BigInt, BigInt, BigInt, BigInt)
);
pub(crate) use fixed_query;

//! Row types: how contacts look in the table. They never leave this crate; conversion into
//! the domain's `Contact` happens here. Column types are chosen to read the same on every
//! backend (timestamps travel as microseconds since the Unix epoch).

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;
use identity_domain::{Contact, ContactId, Email, Link, PhoneNumber};

pub(crate) const PRIMARY: &str = "primary";
pub(crate) const SECONDARY: &str = "secondary";

/// A live contact as read back (the columns the domain needs).
#[derive(Debug, QueryableByName)]
pub(crate) struct ContactRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone_number: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub email: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub linked_id: Option<i64>,
    #[diesel(sql_type = Text)]
    pub link_precedence: String,
    /// Microseconds since the Unix epoch.
    #[diesel(sql_type = BigInt)]
    pub created_at_us: i64,
}

/// The id of a row, for statements that return ids.
#[derive(Debug, QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
}

/// A row that does not map onto a domain contact.
#[derive(Debug, thiserror::Error)]
#[error("contact row {id} is malformed: {problem}")]
pub(crate) struct MalformedRow {
    id: i64,
    problem: &'static str,
}

impl TryFrom<ContactRow> for Contact {
    type Error = MalformedRow;

    fn try_from(row: ContactRow) -> Result<Self, Self::Error> {
        let malformed = |problem| MalformedRow {
            id: row.id,
            problem,
        };
        let id = ContactId::new(row.id).ok_or_else(|| malformed("id is not positive"))?;
        let link = match (row.link_precedence.as_str(), row.linked_id) {
            (PRIMARY, None) => Link::Primary,
            (SECONDARY, Some(primary)) => Link::Secondary(
                ContactId::new(primary).ok_or_else(|| malformed("linked_id is not positive"))?,
            ),
            _ => return Err(malformed("link_precedence and linked_id disagree")),
        };
        let created_at = DateTime::<Utc>::from_timestamp_micros(row.created_at_us)
            .ok_or_else(|| malformed("created_at is out of range"))?;
        Ok(Contact {
            id,
            email: row.email.map(Email::from_stored),
            phone: row.phone_number.map(PhoneNumber::from_stored),
            link,
            created_at,
        })
    }
}

pub(crate) fn into_contacts(rows: Vec<ContactRow>) -> Result<Vec<Contact>, MalformedRow> {
    rows.into_iter().map(Contact::try_from).collect()
}

/// One item of a query that returns text.
#[derive(Debug, QueryableByName)]
pub(crate) struct ItemRow {
    #[diesel(sql_type = Text)]
    pub item: String,
}

/// One count.
#[derive(Debug, QueryableByName)]
pub(crate) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// One customer's size.
#[derive(Debug, QueryableByName)]
pub(crate) struct SizeRow {
    #[diesel(sql_type = BigInt)]
    pub primary_id: i64,
    #[diesel(sql_type = BigInt)]
    pub contacts: i64,
    #[diesel(sql_type = BigInt)]
    pub emails: i64,
    #[diesel(sql_type = BigInt)]
    pub phones: i64,
}

/// One bucket of a distribution.
#[derive(Debug, QueryableByName)]
pub(crate) struct BucketRow {
    #[diesel(sql_type = Text)]
    pub bucket: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// One history event as stored.
#[derive(Debug, QueryableByName)]
pub(crate) struct HistoryRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub customer_id: i64,
    #[diesel(sql_type = BigInt)]
    pub contact_id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub cause: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub before: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub after: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub occurred_at_us: i64,
}

/// One outbox event as claimed.
#[derive(Debug, Clone, QueryableByName)]
pub struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub customer_id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    /// Microseconds since the epoch.
    #[diesel(sql_type = BigInt)]
    pub created_at_us: i64,
}

//! Row types: how contacts, history events and change events look in the tables. They never
//! leave this crate (but for [`OutboxRow`], which the dispatcher delivers); conversion into
//! the domain's types happens here.

use diesel::prelude::*;
use identity_domain::{Contact, ContactId, Email, Link, ManualLink, PhoneNumber, StoredLink};

use crate::schema::{contact, contact_event, link_evidence, manual_link, outbox};
use crate::sql_types::Instant;

pub(crate) const PRIMARY: &str = "primary";
pub(crate) const SECONDARY: &str = "secondary";

/// A live contact as read (the columns the domain needs), in the column order of
/// [`crate::queries::ContactColumns`].
#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = contact)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ContactRow {
    pub id: i64,
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub linked_id: Option<i64>,
    pub link_precedence: String,
    pub created_at: Instant,
}

/// A request that joined customers without creating a contact.
#[derive(Debug, Insertable)]
#[diesel(table_name = link_evidence)]
pub(crate) struct NewEvidenceRow<'a> {
    pub email: &'a str,
    pub phone_number: &'a str,
    pub created_at: Instant,
}

/// One history event to record.
#[derive(Debug, Insertable)]
#[diesel(table_name = contact_event)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct NewEventRow<'a> {
    pub customer_id: i64,
    pub contact_id: i64,
    pub kind: &'static str,
    pub cause: &'a str,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One change event to enqueue.
#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
pub(crate) struct NewOutboxRow {
    pub customer_id: i64,
    pub kind: &'static str,
    pub payload: String,
}

/// One history event as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = contact_event)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct HistoryRow {
    pub id: i64,
    pub customer_id: i64,
    pub contact_id: i64,
    pub kind: String,
    pub cause: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub occurred_at: Instant,
}

/// One outbox event as claimed by a dispatcher.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct OutboxRow {
    pub id: i64,
    pub customer_id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i32,
    #[diesel(deserialize_as = Instant)]
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Instant> for chrono::DateTime<chrono::Utc> {
    fn from(instant: Instant) -> Self {
        instant.0
    }
}

/// A row that does not map onto a domain contact.
#[derive(Debug, thiserror::Error)]
#[error("contact row {id} is malformed: {problem}")]
pub(crate) struct MalformedRow {
    id: i64,
    problem: &'static str,
}

impl MalformedRow {
    pub(crate) fn new(id: i64, problem: &'static str) -> Self {
        Self { id, problem }
    }
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
        Ok(Contact {
            id,
            email: row.email.map(Email::from_stored),
            phone: row.phone_number.map(PhoneNumber::from_stored),
            link,
            created_at: row.created_at.0,
        })
    }
}

pub(crate) fn into_contacts(rows: Vec<ContactRow>) -> Result<Vec<Contact>, MalformedRow> {
    rows.into_iter().map(Contact::try_from).collect()
}

/// The `link_precedence` and `linked_id` columns of a link.
pub(crate) fn link_columns(link: Link) -> (&'static str, Option<i64>) {
    match link {
        Link::Primary => (PRIMARY, None),
        Link::Secondary(primary) => (SECONDARY, Some(primary.get())),
    }
}

/// A link as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = manual_link)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct LinkRow {
    pub(crate) id: i64,
    pub(crate) contact_a: i64,
    pub(crate) contact_b: i64,
    pub(crate) reason: String,
    pub(crate) created_by: String,
    pub(crate) created_at: Instant,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = manual_link)]
pub(crate) struct NewLinkRow<'a> {
    pub(crate) contact_a: i64,
    pub(crate) contact_b: i64,
    pub(crate) reason: &'a str,
    pub(crate) created_by: &'a str,
    pub(crate) created_at: Instant,
}

/// The links of `rows`, in order.
pub(crate) fn into_links(rows: Vec<LinkRow>) -> Result<Vec<StoredLink>, MalformedRow> {
    rows.into_iter().map(StoredLink::try_from).collect()
}

impl TryFrom<LinkRow> for StoredLink {
    type Error = MalformedRow;

    fn try_from(row: LinkRow) -> Result<Self, Self::Error> {
        let id = |raw: i64| {
            ContactId::new(raw).ok_or(MalformedRow {
                id: row.id,
                problem: "a link names a contact id that is not positive",
            })
        };
        Ok(Self {
            id: row.id,
            link: ManualLink {
                contacts: [id(row.contact_a)?, id(row.contact_b)?],
                reason: row.reason,
                created_by: row.created_by,
            },
            created_at: row.created_at.0,
        })
    }
}

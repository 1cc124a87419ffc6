//! Row types: how contacts look in the table. They never leave this crate; conversion into
//! the domain's `Contact` happens here.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use identity_domain::{Contact, ContactId, Email, Link, PhoneNumber};

use crate::schema::contact;

pub(crate) const PRIMARY: &str = "primary";
pub(crate) const SECONDARY: &str = "secondary";

/// A live contact as read back (the columns the domain needs).
#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = contact)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub(crate) struct ContactRow {
    pub id: i64,
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub linked_id: Option<i64>,
    pub link_precedence: String,
    pub created_at: DateTime<Utc>,
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
        Ok(Contact {
            id,
            email: row.email.map(Email::from_stored),
            phone: row.phone_number.map(PhoneNumber::from_stored),
            link,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = contact)]
pub(crate) struct NewContactRow<'a> {
    pub phone_number: Option<&'a str>,
    pub email: Option<&'a str>,
    pub linked_id: Option<i64>,
    pub link_precedence: &'a str,
}

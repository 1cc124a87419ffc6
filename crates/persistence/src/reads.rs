//! The reads: what the lock-free reads answer, and what a unit of work reads again once it
//! holds its guard (`writes.rs`). One statement each, but for `read_evidence` (the joining
//! requests, then the manual links).

use diesel::prelude::*;
use identity_domain::{Contact, Email, Evidence, Identifiers, Joins, PhoneNumber, StoredLink};

use crate::models::{into_contacts, into_links, ContactRow, LinkRow};
use crate::pool::{on_backend, Db};
use crate::queries::{CustomerOf, CustomersMatching};
use crate::retry::UnitError;
use crate::schema::{contact, link_evidence, manual_link};
use crate::sql_types::Instant;

/// Every live contact of the customers `identifiers` match (one statement, so one snapshot).
pub(crate) fn read_customers(
    db: &mut Db<'_>,
    identifiers: &Identifiers,
) -> QueryResult<Vec<ContactRow>> {
    let query = CustomersMatching {
        email: identifiers.email().map(|e| e.as_str()),
        phone: identifiers.phone().map(|p| p.as_str()),
    };
    on_backend!(db, conn => query.load(conn))
}

/// Every live contact of the customer of live contact `id`.
pub(crate) fn read_customer_of(db: &mut Db<'_>, id: i64) -> QueryResult<Vec<ContactRow>> {
    let query = CustomerOf { id };
    on_backend!(db, conn => query.load(conn))
}

/// The evidence stored for any of the identifiers of `contacts`.
pub(crate) fn read_evidence(
    db: &mut Db<'_>,
    contacts: &[Contact],
) -> Result<Vec<Evidence>, UnitError> {
    let emails: Vec<&str> = contacts
        .iter()
        .filter_map(|c| c.email.as_ref())
        .map(|e| e.as_str())
        .collect();
    let phones: Vec<&str> = contacts
        .iter()
        .filter_map(|c| c.phone.as_ref())
        .map(|p| p.as_str())
        .collect();
    let rows: Vec<(i64, String, String, Instant)> = on_backend!(db, conn => link_evidence::table
        .filter(
            link_evidence::email
                .eq_any(&emails)
                .or(link_evidence::phone_number.eq_any(&phones)),
        )
        .select((
            link_evidence::id,
            link_evidence::email,
            link_evidence::phone_number,
            link_evidence::created_at,
        ))
        .load(conn))?;
    let requests = rows
        .into_iter()
        .map(|(id, email, phone, created_at)| Evidence {
            id,
            joins: Joins::Request {
                email: Email::from_stored(email),
                phone: PhoneNumber::from_stored(phone),
            },
            created_at: created_at.0,
        });
    let ids: Vec<i64> = contacts.iter().map(|c| c.id.get()).collect();
    let links = read_links_of(db, &ids)?;
    Ok(requests
        .chain(links.iter().map(StoredLink::as_evidence))
        .collect())
}

/// Every live contact.
pub(crate) fn read_all(db: &mut Db<'_>) -> Result<Vec<Contact>, UnitError> {
    let rows = on_backend!(db, conn => contact::table
        .filter(contact::deleted_at.is_null())
        .select(ContactRow::as_select())
        .load(conn))?;
    into_contacts(rows).map_err(UnitError::Malformed)
}

/// The links that name any of the contacts `ids`.
pub(crate) fn read_links_of(db: &mut Db<'_>, ids: &[i64]) -> Result<Vec<StoredLink>, UnitError> {
    let rows = on_backend!(db, conn => manual_link::table
        .filter(
            manual_link::contact_a
                .eq_any(ids)
                .or(manual_link::contact_b.eq_any(ids)),
        )
        .order(manual_link::id)
        .select(LinkRow::as_select())
        .load(conn))?;
    into_links(rows).map_err(UnitError::Malformed)
}

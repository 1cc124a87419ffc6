//! The consolidated customer that `/identify` answers with, and how it is assembled.

use std::collections::HashSet;
use std::hash::Hash;

use thiserror::Error;

use crate::contact::{Contact, ContactId, Email, Identifiers, Link, PhoneNumber};

/// Contacts that cannot be one customer as the graph's rules define it. Stored data never
/// looks like this while the invariants hold; seeing it means something outside the service
/// changed the table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InconsistentGraph {
    #[error("the customer's contacts hold no primary")]
    NoPrimary,
    #[error("expected the contacts of one customer, found {0} primaries")]
    SeveralPrimaries(usize),
    #[error("no contact holds the request's email or phone")]
    NotFound,
    #[error("contact {contact} links to {primary}, which is not a primary among these contacts")]
    DanglingLink {
        contact: ContactId,
        primary: ContactId,
    },
}

/// One customer: its primary, every email and phone it is known by, and its secondaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub primary_id: ContactId,
    /// The primary's email first, then the others in the order they were first seen.
    pub emails: Vec<Email>,
    /// The primary's phone first, then the others in the order they were first seen.
    pub phone_numbers: Vec<PhoneNumber>,
    /// Ascending.
    pub secondary_ids: Vec<ContactId>,
}

impl Customer {
    /// Assembles every customer of `contacts` (all the contacts of each, in any order), by
    /// primary id.
    ///
    /// # Errors
    /// As [`Self::from_contacts`], for any of them.
    pub fn all_in(mut contacts: Vec<Contact>) -> Result<Vec<Self>, InconsistentGraph> {
        contacts.sort_by_key(Contact::primary_id);
        contacts
            .chunk_by(|a, b| a.primary_id() == b.primary_id())
            .map(Self::from_contacts)
            .collect()
    }

    /// Assembles the customer from all of its contacts (in any order).
    ///
    /// # Errors
    /// When the contacts are not exactly one primary and secondaries linked to it.
    pub fn from_contacts(contacts: &[Contact]) -> Result<Self, InconsistentGraph> {
        let mut primaries = contacts.iter().filter(|c| c.is_primary());
        let primary = primaries.next().ok_or(InconsistentGraph::NoPrimary)?;
        let extra = primaries.count();
        if extra > 0 {
            return Err(InconsistentGraph::SeveralPrimaries(extra + 1));
        }
        check_links(contacts)?;

        let mut secondaries: Vec<&Contact> = contacts.iter().filter(|c| !c.is_primary()).collect();
        secondaries.sort_by_key(|c| c.age_key());
        let in_order = || std::iter::once(primary).chain(secondaries.iter().copied());

        let emails = first_occurrences(in_order().filter_map(|c| c.email.as_ref()));
        let phone_numbers = first_occurrences(in_order().filter_map(|c| c.phone.as_ref()));
        let mut secondary_ids: Vec<ContactId> = secondaries.iter().map(|c| c.id).collect();
        secondary_ids.sort_unstable();

        Ok(Self {
            primary_id: primary.id,
            emails,
            phone_numbers,
            secondary_ids,
        })
    }
}

/// Each value once, where it first occurs; the set keeps this linear in the customer's size.
fn first_occurrences<'a, T: Eq + Hash + Clone + 'a>(values: impl Iterator<Item = &'a T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(*v)).cloned().collect()
}

impl Customer {
    /// The customer that `request` belongs to among `contacts` (which may hold several
    /// customers when the merge guard kept them apart): the one its email matches, else the
    /// one its phone matches.
    ///
    /// # Errors
    /// When no contact matches, or that customer's contacts are inconsistent.
    pub fn for_request(
        contacts: &[Contact],
        request: &Identifiers,
    ) -> Result<Self, InconsistentGraph> {
        let by_email = request
            .email()
            .and_then(|e| contacts.iter().find(|c| c.email.as_ref() == Some(e)));
        let by_phone = || {
            request
                .phone()
                .and_then(|p| contacts.iter().find(|c| c.phone.as_ref() == Some(p)))
        };
        let primary = by_email
            .or_else(by_phone)
            .map(Contact::primary_id)
            .ok_or(InconsistentGraph::NotFound)?;
        let own: Vec<Contact> = contacts
            .iter()
            .filter(|c| c.primary_id() == primary)
            .cloned()
            .collect();
        Self::from_contacts(&own)
    }
}

/// Every secondary must link straight to a primary among `contacts`.
pub(crate) fn check_links(contacts: &[Contact]) -> Result<(), InconsistentGraph> {
    let primaries: HashSet<ContactId> = contacts
        .iter()
        .filter(|c| c.is_primary())
        .map(|c| c.id)
        .collect();
    for contact in contacts {
        if let Link::Secondary(primary) = contact.link {
            if !primaries.contains(&primary) {
                return Err(InconsistentGraph::DanglingLink {
                    contact: contact.id,
                    primary,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    /// A stored contact created `minute` minutes into the test's day.
    pub(crate) fn contact(
        id: i64,
        email: Option<&str>,
        phone: Option<&str>,
        link: Option<i64>,
        minute: u32,
    ) -> Contact {
        let id_of = |n: i64| ContactId::new(n).expect("test ids are positive");
        Contact {
            id: id_of(id),
            email: email.map(|e| Email::from_stored(e.to_owned())),
            phone: phone.map(|p| PhoneNumber::from_stored(p.to_owned())),
            link: link.map_or(Link::Primary, |p| Link::Secondary(id_of(p))),
            created_at: Utc
                .with_ymd_and_hms(2023, 4, 1, 0, minute, 0)
                .single()
                .expect("valid test time"),
        }
    }

    /// A contact id of a test.
    pub(crate) fn id(n: i64) -> ContactId {
        ContactId::new(n).expect("test ids are positive")
    }

    /// George's customer after the george/biffsucks merge: george (1, the primary),
    /// biffsucks (2) and biff (3), who shares biffsucks' phone.
    pub(crate) fn george_merged_with_biffsucks() -> Vec<Contact> {
        vec![
            contact(1, Some("george@hillvalley.edu"), Some("919191"), None, 0),
            contact(
                2,
                Some("biffsucks@hillvalley.edu"),
                Some("717171"),
                Some(1),
                1,
            ),
            contact(3, Some("biff@hillvalley.edu"), Some("717171"), Some(1), 2),
        ]
    }

    /// The request that merged them: george's email with biffsucks' phone.
    pub(crate) fn george_with_biffsucks_phone(id: i64) -> crate::cluster::Evidence {
        crate::cluster::Evidence {
            id,
            joins: crate::cluster::Joins::Request {
                email: Email::from_stored("george@hillvalley.edu".to_owned()),
                phone: PhoneNumber::from_stored("717171".to_owned()),
            },
            created_at: contact(id, None, None, None, 3).created_at,
        }
    }

    fn strs<T>(values: &[T], f: impl Fn(&T) -> &str) -> Vec<&str> {
        values.iter().map(f).collect()
    }

    #[test]
    fn primary_values_first_then_creation_order_without_duplicates() {
        // Listed out of order on purpose: the view must not depend on the input order.
        let contacts = [
            contact(9, Some("c@x.io"), Some("3"), Some(5), 3),
            contact(23, Some("b@x.io"), Some("1"), Some(5), 1),
            contact(5, Some("a@x.io"), Some("2"), None, 0),
            contact(11, Some("b@x.io"), None, Some(5), 2),
        ];
        let customer = Customer::from_contacts(&contacts).expect("one customer");
        assert_eq!(customer.primary_id.get(), 5);
        assert_eq!(
            strs(&customer.emails, Email::as_str),
            ["a@x.io", "b@x.io", "c@x.io"]
        );
        assert_eq!(
            strs(&customer.phone_numbers, PhoneNumber::as_str),
            ["2", "1", "3"]
        );
        let ids: Vec<i64> = customer.secondary_ids.iter().map(|id| id.get()).collect();
        assert_eq!(ids, [9, 11, 23]);
    }

    #[test]
    fn a_primary_without_email_does_not_leave_a_hole() {
        let contacts = [
            contact(1, None, Some("1"), None, 0),
            contact(2, Some("b@x.io"), Some("1"), Some(1), 1),
        ];
        let customer = Customer::from_contacts(&contacts).expect("one customer");
        assert_eq!(strs(&customer.emails, Email::as_str), ["b@x.io"]);
    }

    #[test]
    fn refuses_contacts_that_are_not_one_customer() {
        let two = [
            contact(1, Some("a@x.io"), None, None, 0),
            contact(2, Some("b@x.io"), None, None, 1),
        ];
        assert_eq!(
            Customer::from_contacts(&two),
            Err(InconsistentGraph::SeveralPrimaries(2))
        );
        let none = [contact(2, Some("b@x.io"), None, Some(1), 1)];
        assert_eq!(
            Customer::from_contacts(&none),
            Err(InconsistentGraph::NoPrimary)
        );
        let dangling = [
            contact(1, Some("a@x.io"), None, None, 0),
            contact(3, Some("b@x.io"), None, Some(2), 1),
        ];
        assert!(matches!(
            Customer::from_contacts(&dangling),
            Err(InconsistentGraph::DanglingLink { .. })
        ));
    }
}

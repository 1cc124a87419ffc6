//! Manual links: support staff join two customers they know are one person (she wrote in
//! from her work address; the phone on the second order is her partner's, but the order is
//! hers). A link names two contacts, not values: it is kept in the store as evidence of its
//! own kind beside the requests that joined customers ([`crate::renormalize::Evidence`]), so
//! every re-clustering (erasure, unlink rules, deleting a link) keeps the two customers one
//! while it stands. Making one joins the customers as a request that brought both would
//! (the older primary leads), within the merge guard; deleting one re-clusters as if it had
//! never been made.
//!
//! A link and an unlink rule never contradict each other in effect: a rule says a value
//! identifies no one, a link says two contacts are one person. A rule taken on a value that
//! a link's contacts share takes the value off and the link still holds them together; a
//! link between contacts that only a now-unlinked value joined joins them again. The link,
//! the narrower and more deliberate decision, wins.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::cluster::{recluster, Duplicates, Evidence, Joins, ManualLink, Rewrite, Together};
use crate::contact::{Contact, ContactId};
use crate::reconcile::CustomerLimits;

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink {
    pub id: i64,
    pub link: ManualLink,
    pub created_at: DateTime<Utc>,
}

impl StoredLink {
    /// The link as evidence for re-clustering and why-chains.
    pub fn as_evidence(&self) -> Evidence {
        Evidence {
            id: self.id,
            joins: Joins::Manual(self.link.clone()),
            created_at: self.created_at,
        }
    }
}

/// The history's cause for what making or deleting link `id` rewrote.
pub fn link_cause(link_id: i64) -> String {
    format!("link:{link_id}")
}

/// Why a link cannot be made. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefused {
    #[error("a link joins two different contacts: the same contact was given twice")]
    SameContact,
    #[error("there is no live contact with id {0}")]
    UnknownContact(ContactId),
    #[error("contacts {0} and {1} are one customer already")]
    OneCustomer(ContactId, ContactId),
    #[error(
        "joining the two customers would give one customer {size} {what}, more than \
         merge_guard.{setting} ({limit})"
    )]
    OverLimit {
        what: &'static str,
        setting: &'static str,
        size: usize,
        limit: usize,
    },
}

/// Checks that `link` can join the customers of its two contacts, given `contacts` (every
/// live contact of both customers) and the merge guard's `limits`.
///
/// # Errors
/// See [`LinkRefused`].
pub fn check_link(
    contacts: &[Contact],
    link: &ManualLink,
    limits: &CustomerLimits,
) -> Result<(), LinkRefused> {
    let [a, b] = link.contacts;
    if a == b {
        return Err(LinkRefused::SameContact);
    }
    let find = |id: ContactId| {
        contacts
            .iter()
            .find(|c| c.id == id)
            .ok_or(LinkRefused::UnknownContact(id))
    };
    let (first, second) = (find(a)?, find(b)?);
    if first.primary_id() == second.primary_id() {
        return Err(LinkRefused::OneCustomer(a, b));
    }
    let emails: BTreeSet<&str> = contacts
        .iter()
        .filter_map(|c| c.email.as_ref().map(|e| e.as_str()))
        .collect();
    let phones: BTreeSet<&str> = contacts
        .iter()
        .filter_map(|c| c.phone.as_ref().map(|p| p.as_str()))
        .collect();
    for (what, setting, size, limit) in [
        (
            "contacts",
            "max_contacts",
            contacts.len(),
            limits.max_contacts,
        ),
        ("emails", "max_emails", emails.len(), limits.max_emails),
        (
            "phone numbers",
            "max_phones",
            phones.len(),
            limits.max_phones,
        ),
    ] {
        if size > limit {
            return Err(LinkRefused::OverLimit {
                what,
                setting,
                size,
                limit,
            });
        }
    }
    Ok(())
}

/// Re-clusters `contacts` (every live contact of some customers) from `evidence` (every
/// request and link stored for them), values unchanged: what making a link (it is among
/// the evidence) or deleting one (it is not any more) does. The oldest contact of each
/// resulting customer is its primary.
pub fn plan_relink(contacts: &[Contact], evidence: &[Evidence]) -> Rewrite {
    recluster(
        contacts,
        evidence,
        Duplicates::Keep,
        Together::ByEvidence,
        |contact| (contact.email.clone(), contact.phone.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Link;
    use crate::customer::tests::{contact, id};

    fn link(a: i64, b: i64) -> ManualLink {
        ManualLink {
            contacts: [id(a), id(b)],
            reason: "she wrote in from her work address".to_owned(),
            created_by: "support".to_owned(),
        }
    }

    fn two_customers() -> Vec<Contact> {
        vec![
            contact(1, Some("jen@home.io"), Some("5550001"), None, 0),
            contact(2, Some("jen@home.io"), Some("5550002"), Some(1), 1),
            contact(3, Some("jennifer@work.io"), None, None, 2),
        ]
    }

    #[test]
    fn a_link_joins_the_customers_under_the_older_primary() {
        let contacts = two_customers();
        assert_eq!(
            check_link(&contacts, &link(3, 2), &CustomerLimits::UNLIMITED),
            Ok(())
        );
        let stored = StoredLink {
            id: 7,
            link: link(2, 3),
            created_at: contacts[2].created_at,
        };
        let rewrite = plan_relink(&contacts, &[stored.as_evidence()]);
        assert_eq!(rewrite.changes.len(), 1, "{rewrite:?}");
        assert_eq!(rewrite.changes[0].id, id(3));
        assert_eq!(rewrite.changes[0].link, Link::Secondary(id(1)));
        // Without the link (deleted), the two customers come apart again.
        let joined: Vec<Contact> = contacts
            .iter()
            .cloned()
            .map(|mut c| {
                if c.id == id(3) {
                    c.link = Link::Secondary(id(1));
                }
                c
            })
            .collect();
        let apart = plan_relink(&joined, &[]);
        assert_eq!(apart.changes.len(), 1);
        assert_eq!(apart.changes[0].link, Link::Primary);
    }

    #[test]
    fn a_link_is_refused_within_a_customer_for_unknown_contacts_and_over_the_guard() {
        let contacts = two_customers();
        let unlimited = CustomerLimits::UNLIMITED;
        assert_eq!(
            check_link(&contacts, &link(1, 1), &unlimited),
            Err(LinkRefused::SameContact)
        );
        assert_eq!(
            check_link(&contacts, &link(1, 2), &unlimited),
            Err(LinkRefused::OneCustomer(id(1), id(2)))
        );
        assert_eq!(
            check_link(&contacts, &link(1, 9), &unlimited),
            Err(LinkRefused::UnknownContact(id(9)))
        );
        let small = CustomerLimits {
            max_emails: 1,
            ..unlimited
        };
        assert!(matches!(
            check_link(&contacts, &link(1, 3), &small),
            Err(LinkRefused::OverLimit {
                setting: "max_emails",
                size: 2,
                limit: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_link_to_an_erased_contact_holds_nothing() {
        let contacts = vec![
            contact(1, Some("jen@home.io"), None, None, 0),
            contact(2, Some("jen@home.io"), Some("5550002"), Some(1), 1),
            contact(3, Some("jennifer@work.io"), None, Some(1), 2),
        ];
        let stored = StoredLink {
            id: 7,
            link: link(2, 3),
            created_at: contacts[2].created_at,
        };
        // Contact 2 erased: the link named it, so 3 falls apart from 1.
        let rewrite = crate::plan_erasure(&contacts, &[stored.as_evidence()], |c| c.id == id(2));
        let three = rewrite.changes.iter().find(|c| c.id == id(3));
        assert_eq!(three.map(|c| c.link), Some(Link::Primary), "{rewrite:?}");
    }
}

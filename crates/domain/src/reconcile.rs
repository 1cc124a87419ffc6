//! The linking rules, in one place: given what a request brings and every contact of every
//! customer it matches, decide what to write.
//!
//! 1. Nothing matches: the request becomes a new primary.
//! 2. It matches, and brings an email or a phone the customer does not have yet: a new
//!    secondary, linked to the customer's primary, holding the request's email and phone.
//! 3. It matches and brings nothing new: no write.
//! 4. It matches several customers (the email one, the phone another): the oldest primary
//!    (earliest `created_at`, then lowest id) stays primary; every other primary, and every
//!    secondary linked to one, is re-linked straight to it. No new row.

use crate::contact::{Contact, ContactId, Email, Identifiers, Link, PhoneNumber};
use crate::customer::{check_links, InconsistentGraph};

/// What to write for one request. Empty when the request brings nothing new.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Rule 4: customers to fold into the oldest one.
    pub relink: Option<Relink>,
    /// Rules 1 and 2: the contact to create.
    pub insert: Option<NewContact>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.relink.is_none() && self.insert.is_none()
    }
}

/// Make `contacts` secondaries of `primary` (rule 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relink {
    pub primary: ContactId,
    /// The demoted primaries and all of their secondaries, ascending.
    pub contacts: Vec<ContactId>,
}

/// A contact to create (rules 1 and 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub link: Link,
}

/// Decides what to write for `request`, given `known`: every live contact of every customer
/// that shares the request's email or phone (empty when none does).
///
/// # Errors
/// When `known` holds a secondary whose primary is not among `known`.
pub fn reconcile(request: &Identifiers, known: &[Contact]) -> Result<Plan, InconsistentGraph> {
    let new_contact = |link| NewContact {
        email: request.email().cloned(),
        phone: request.phone().cloned(),
        link,
    };

    // Rule 1.
    let Some(oldest) = known
        .iter()
        .filter(|c| c.is_primary())
        .min_by_key(|c| c.age_key())
    else {
        return match known.first() {
            None => Ok(Plan {
                relink: None,
                insert: Some(new_contact(Link::Primary)),
            }),
            Some(_) => Err(InconsistentGraph::NoPrimary),
        };
    };
    check_links(known)?;

    // Rule 4.
    let mut demoted: Vec<ContactId> = known
        .iter()
        .filter(|c| c.primary_id() != oldest.id)
        .map(|c| c.id)
        .collect();
    demoted.sort_unstable();
    let relink = (!demoted.is_empty()).then_some(Relink {
        primary: oldest.id,
        contacts: demoted,
    });

    // Rules 2 and 3.
    let email_is_new = request
        .email()
        .is_some_and(|e| !known.iter().any(|c| c.email.as_ref() == Some(e)));
    let phone_is_new = request
        .phone()
        .is_some_and(|p| !known.iter().any(|c| c.phone.as_ref() == Some(p)));
    let insert = (email_is_new || phone_is_new).then(|| new_contact(Link::Secondary(oldest.id)));

    Ok(Plan { relink, insert })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::tests::contact;

    fn request(email: Option<&str>, phone: Option<&str>) -> Identifiers {
        let email = email.and_then(|e| Email::parse(e).expect("valid test email"));
        let phone = phone.and_then(|p| PhoneNumber::parse(p).expect("valid test phone"));
        Identifiers::new(email, phone).expect("test requests carry an identifier")
    }

    fn id(n: i64) -> ContactId {
        ContactId::new(n).expect("positive")
    }

    #[test]
    fn rule_1_no_match_creates_a_primary() {
        let req = request(Some("lorraine@hillvalley.edu"), Some("123456"));
        let plan = reconcile(&req, &[]).expect("plan");
        assert_eq!(plan.relink, None);
        let insert = plan.insert.expect("a new contact");
        assert_eq!(insert.link, Link::Primary);
        assert_eq!(insert.email, req.email().cloned());
        assert_eq!(insert.phone, req.phone().cloned());
    }

    #[test]
    fn rule_2_new_email_for_a_known_phone_creates_a_secondary_of_the_primary() {
        let known = [
            contact(1, Some("lorraine@hillvalley.edu"), Some("123456"), None, 0),
            contact(2, Some("other@hillvalley.edu"), Some("123456"), Some(1), 1),
        ];
        let req = request(Some("mcfly@hillvalley.edu"), Some("123456"));
        let plan = reconcile(&req, &known).expect("plan");
        assert_eq!(plan.relink, None);
        assert_eq!(
            plan.insert,
            Some(NewContact {
                email: req.email().cloned(),
                phone: req.phone().cloned(),
                link: Link::Secondary(id(1)),
            })
        );
    }

    #[test]
    fn rule_2_new_phone_alone_is_new_information() {
        let known = [contact(1, Some("a@x.io"), None, None, 0)];
        let plan = reconcile(&request(Some("a@x.io"), Some("42")), &known).expect("plan");
        assert_eq!(plan.insert.map(|c| c.link), Some(Link::Secondary(id(1))));
    }

    #[test]
    fn rule_3_nothing_new_writes_nothing() {
        let known = [
            contact(1, Some("lorraine@hillvalley.edu"), Some("123456"), None, 0),
            contact(2, Some("mcfly@hillvalley.edu"), Some("123456"), Some(1), 1),
        ];
        for req in [
            request(None, Some("123456")),
            request(Some("lorraine@hillvalley.edu"), None),
            request(Some("mcfly@hillvalley.edu"), None),
            // An email and a phone that exist in different rows of the same customer.
            request(Some("mcfly@hillvalley.edu"), Some("123456")),
            request(Some("lorraine@hillvalley.edu"), Some("123456")),
        ] {
            assert!(reconcile(&req, &known).expect("plan").is_empty(), "{req:?}");
        }
    }

    #[test]
    fn rule_4_joining_two_customers_keeps_the_oldest_primary() {
        let known = [
            contact(11, Some("george@hillvalley.edu"), Some("919191"), None, 0),
            contact(
                27,
                Some("biffsucks@hillvalley.edu"),
                Some("717171"),
                None,
                5,
            ),
        ];
        let req = request(Some("george@hillvalley.edu"), Some("717171"));
        let plan = reconcile(&req, &known).expect("plan");
        assert_eq!(
            plan,
            Plan {
                relink: Some(Relink {
                    primary: id(11),
                    contacts: vec![id(27)]
                }),
                insert: None,
            }
        );
    }

    #[test]
    fn rule_4_age_not_id_decides_and_ties_go_to_the_lowest_id() {
        // Contact 40 is older than contact 3 although its id is higher (an import, say).
        let known = [
            contact(3, Some("a@x.io"), None, None, 9),
            contact(40, None, Some("1"), None, 2),
        ];
        let plan = reconcile(&request(Some("a@x.io"), Some("1")), &known).expect("plan");
        assert_eq!(plan.relink.map(|r| r.primary), Some(id(40)));

        let tie = [
            contact(8, Some("a@x.io"), None, None, 2),
            contact(4, None, Some("1"), None, 2),
        ];
        let plan = reconcile(&request(Some("a@x.io"), Some("1")), &tie).expect("plan");
        assert_eq!(plan.relink.map(|r| r.primary), Some(id(4)));
    }

    #[test]
    fn rule_4_a_demoted_primary_brings_all_its_secondaries_along() {
        let known = [
            contact(1, Some("a@x.io"), None, None, 0),
            contact(2, Some("b@x.io"), Some("1"), None, 1),
            contact(5, Some("c@x.io"), Some("1"), Some(2), 2),
            contact(7, Some("d@x.io"), Some("1"), Some(2), 3),
            contact(3, Some("a@x.io"), Some("9"), Some(1), 4),
        ];
        let plan = reconcile(&request(Some("a@x.io"), Some("1")), &known).expect("plan");
        assert_eq!(
            plan.relink,
            Some(Relink {
                primary: id(1),
                contacts: vec![id(2), id(5), id(7)]
            })
        );
        assert_eq!(plan.insert, None);
    }

    #[test]
    fn three_customers_fold_into_the_oldest() {
        // The request's email matches one customer and its phone another; a third customer
        // can only be among `known` if it shares one of them, so this is the widest merge.
        let known = [
            contact(6, Some("a@x.io"), None, None, 1),
            contact(2, None, Some("1"), None, 0),
            contact(9, Some("a@x.io"), Some("5"), Some(6), 2),
        ];
        let plan = reconcile(&request(Some("a@x.io"), Some("1")), &known).expect("plan");
        assert_eq!(
            plan.relink,
            Some(Relink {
                primary: id(2),
                contacts: vec![id(6), id(9)]
            })
        );
    }

    #[test]
    fn secondaries_without_their_primary_are_reported() {
        let known = [contact(2, Some("a@x.io"), None, Some(1), 0)];
        assert_eq!(
            reconcile(&request(Some("a@x.io"), None), &known),
            Err(InconsistentGraph::NoPrimary)
        );
    }
}

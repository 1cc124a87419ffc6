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
//! 5. A contact from history (an import, with its own date) that brings something new and is
//!    older than the primary of the customers it matches becomes their primary: the primary
//!    is always the oldest contact. Everyone else is re-linked straight to it.
//! 6. The merge guard: a write that would grow one customer past [`CustomerLimits`] (in
//!    contacts, distinct emails or distinct phones) is not made at all: no merge, no new
//!    contact. Two customers stay apart rather than becoming one runaway "customer" held
//!    together by a shared checkout terminal or a typo; they still share no identifier, since
//!    nothing new was stored.

use chrono::{DateTime, Utc};

use crate::contact::{Contact, ContactId, Email, Identifier, Identifiers, Link, PhoneNumber};
use crate::customer::{check_links, InconsistentGraph};
use crate::identifiers::IdentifierPriority;

/// What to write for one request. Empty when the request brings nothing new, or when the
/// merge guard refused the write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Rule 4: customers to fold into the oldest one.
    pub relink: Option<Relink>,
    /// Rules 1 and 2: the contact to create.
    pub insert: Option<NewContact>,
    /// Rule 6: the write that was refused, when it was.
    pub refused: Option<Refusal>,
}

/// What a plan comes to, said once for every adapter (the answer, the metrics, the import's
/// summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to write: the request brought nothing new.
    Unchanged,
    /// Rule 6: the merge guard refused the write; nothing is written.
    Refused(Refusal),
    /// Something to write: a contact to create, customers to merge, or both.
    Written { created: bool, merged: bool },
}

impl Plan {
    /// What this plan comes to.
    pub fn outcome(&self) -> Outcome {
        match (self.refused, self.is_empty()) {
            (Some(refusal), _) => Outcome::Refused(refusal),
            (None, true) => Outcome::Unchanged,
            (None, false) => Outcome::Written {
                created: self.insert.is_some(),
                merged: self.relink.is_some(),
            },
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.relink.is_none() && self.insert.is_none()
    }

    /// The contacts after this plan is written over `current` (the contacts it was decided
    /// on): relinked contacts point at their new primary, and the inserted contact (its id
    /// and creation time as stored) is added. What a store would read back after the write,
    /// without reading it.
    pub fn applied_to(
        &self,
        mut current: Vec<Contact>,
        inserted: Option<(ContactId, DateTime<Utc>)>,
    ) -> Vec<Contact> {
        if let Some(relink) = &self.relink {
            let primary = match relink.to {
                LinkTo::Existing(id) => Some(id),
                LinkTo::Inserted => inserted.map(|(id, _)| id),
            };
            if let Some(primary) = primary {
                for contact in &mut current {
                    if relink.contacts.binary_search(&contact.id).is_ok() {
                        contact.link = Link::Secondary(primary);
                    }
                }
            }
        }
        if let (Some(new), Some((id, created_at))) = (&self.insert, inserted) {
            current.push(Contact {
                id,
                email: new.email.clone(),
                phone: new.phone.clone(),
                link: new.link,
                created_at,
            });
        }
        current
    }
}

/// How large one customer may grow (rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerLimits {
    pub max_contacts: usize,
    pub max_emails: usize,
    pub max_phones: usize,
}

impl CustomerLimits {
    pub const UNLIMITED: Self = Self {
        max_contacts: usize::MAX,
        max_emails: usize::MAX,
        max_phones: usize::MAX,
    };
}

/// The size a refused write would have given the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub contacts: usize,
    pub emails: usize,
    pub phones: usize,
}

/// Make `contacts` secondaries of one primary (rules 4 and 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relink {
    pub to: LinkTo,
    /// The demoted primaries and all of their secondaries, ascending.
    pub contacts: Vec<ContactId>,
}

/// The primary a [`Relink`] links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTo {
    Existing(ContactId),
    /// The contact this same plan inserts (rule 5).
    Inserted,
}

/// A contact to create (rules 1, 2 and 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub link: Link,
    /// When the contact was first seen, for contacts from history (an import); `None` is
    /// the moment it is stored.
    pub created_at: Option<DateTime<Utc>>,
}

/// Decides what to write for `request`, given `known`: every live contact of every customer
/// that shares the request's email or phone (empty when none does).
///
/// # Errors
/// When `known` holds a secondary whose primary is not among `known`.
pub fn reconcile(
    request: &Identifiers,
    known: &[Contact],
    limits: &CustomerLimits,
) -> Result<Plan, InconsistentGraph> {
    reconcile_record(request, None, known, limits)
}

/// [`reconcile_record`] with rule 6's priority, for a record decided against `known` in
/// memory (the import): when storing the whole record would grow a customer past a limit,
/// its lowest-priority identifier is dropped and the rest is decided again against the
/// customers it still touches, so the record still lands on a customer. Returns the plan
/// and the identifier dropped, if one was. (`/identify` applies the same rule through the
/// store: [`crate::IdentityService::identify`].)
///
/// # Errors
/// As [`reconcile`].
pub fn reconcile_with_priority(
    request: &Identifiers,
    seen_at: Option<DateTime<Utc>>,
    known: &[Contact],
    limits: &CustomerLimits,
    priority: IdentifierPriority,
) -> Result<(Plan, Option<Identifier>), InconsistentGraph> {
    let plan = reconcile_record(request, seen_at, known, limits)?;
    let Some((rest, dropped)) = plan.refused.and_then(|_| priority.split_lowest(request)) else {
        return Ok((plan, None));
    };
    let touched = customers_touched(known, &rest);
    let plan = reconcile_record(&rest, seen_at, &touched, limits)?;
    Ok((plan, Some(dropped)))
}

/// The contacts of `known` whose customers hold a value of `request`: what a store reads
/// for the request.
pub(crate) fn customers_touched(known: &[Contact], request: &Identifiers) -> Vec<Contact> {
    let holds = |c: &Contact| {
        (request.email().is_some() && c.email.as_ref() == request.email())
            || (request.phone().is_some() && c.phone.as_ref() == request.phone())
    };
    let primaries: std::collections::HashSet<ContactId> = known
        .iter()
        .filter(|c| holds(c))
        .map(Contact::primary_id)
        .collect();
    known
        .iter()
        .filter(|c| primaries.contains(&c.primary_id()))
        .cloned()
        .collect()
}

/// [`reconcile`] for a contact first seen at `seen_at` (an imported record). `None` is now.
///
/// # Errors
/// As [`reconcile`].
pub fn reconcile_record(
    request: &Identifiers,
    seen_at: Option<DateTime<Utc>>,
    known: &[Contact],
    limits: &CustomerLimits,
) -> Result<Plan, InconsistentGraph> {
    let new_contact = |link| NewContact {
        email: request.email().cloned(),
        phone: request.phone().cloned(),
        link,
        created_at: seen_at,
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
                refused: None,
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
    let mut relink = (!demoted.is_empty()).then_some(Relink {
        to: LinkTo::Existing(oldest.id),
        contacts: demoted,
    });

    // Rules 2 and 3.
    let email_is_new = request
        .email()
        .is_some_and(|e| !known.iter().any(|c| c.email.as_ref() == Some(e)));
    let phone_is_new = request
        .phone()
        .is_some_and(|p| !known.iter().any(|c| c.phone.as_ref() == Some(p)));
    let mut insert =
        (email_is_new || phone_is_new).then(|| new_contact(Link::Secondary(oldest.id)));

    // Rule 5.
    if insert.is_some() && seen_at.is_some_and(|at| at < oldest.created_at) {
        insert = Some(new_contact(Link::Primary));
        let mut everyone: Vec<ContactId> = known.iter().map(|c| c.id).collect();
        everyone.sort_unstable();
        relink = Some(Relink {
            to: LinkTo::Inserted,
            contacts: everyone,
        });
    }

    // Rule 6, for a write that grows a customer.
    if relink.is_some() || insert.is_some() {
        let size = Refusal {
            contacts: known.len() + usize::from(insert.is_some()),
            emails: distinct(known.iter().map(|c| c.email.as_ref()), request.email()),
            phones: distinct(known.iter().map(|c| c.phone.as_ref()), request.phone()),
        };
        if size.contacts > limits.max_contacts
            || size.emails > limits.max_emails
            || size.phones > limits.max_phones
        {
            return Ok(Plan {
                relink: None,
                insert: None,
                refused: Some(size),
            });
        }
    }
    Ok(Plan {
        relink,
        insert,
        refused: None,
    })
}

/// How many distinct values `stored` and `extra` hold together.
fn distinct<'a, T: Ord + 'a>(
    stored: impl Iterator<Item = Option<&'a T>>,
    extra: Option<&'a T>,
) -> usize {
    stored
        .chain(std::iter::once(extra))
        .flatten()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::contact::tests::us;
    use crate::customer::tests::{contact, id};

    pub(crate) fn request(email: Option<&str>, phone: Option<&str>) -> Identifiers {
        let email = email.and_then(|e| Email::parse(e).expect("valid test email"));
        let phone = phone.and_then(|p| PhoneNumber::parse(p, us()).expect("valid test phone"));
        Identifiers::new(email, phone).expect("test requests carry an identifier")
    }

    fn reconcile(request: &Identifiers, known: &[Contact]) -> Result<Plan, InconsistentGraph> {
        super::reconcile(request, known, &CustomerLimits::UNLIMITED)
    }

    /// A household of two contacts sharing a phone, and a lone customer: what an import
    /// decides in memory.
    fn household_and_lone() -> Vec<Contact> {
        vec![
            contact(1, Some("mom@family.io"), Some("5550100"), None, 0),
            contact(2, Some("dad@family.io"), Some("5550100"), Some(1), 1),
            contact(3, Some("lone@x.io"), Some("5550999"), None, 2),
        ]
    }

    #[test]
    fn a_record_in_the_guard_s_way_drops_its_lowest_identifier_and_still_lands() {
        let full = CustomerLimits {
            max_contacts: 2,
            ..CustomerLimits::UNLIMITED
        };
        // A new email with the full household's phone: a customer of its own, phone dropped.
        let (plan, dropped) = reconcile_with_priority(
            &request(Some("lodger@family.io"), Some("5550100")),
            None,
            &household_and_lone(),
            &full,
            IdentifierPriority::EmailFirst,
        )
        .expect("decided");
        assert_eq!(
            dropped,
            Some(Identifier::Phone(PhoneNumber::from_stored(
                "5550100".to_owned()
            )))
        );
        let created = plan.insert.expect("a contact");
        assert_eq!(created.link, Link::Primary);
        assert_eq!(created.phone, None);
        assert!(plan.refused.is_none() && plan.relink.is_none());

        // The lone customer's email with the household's phone: the merge is refused, the
        // phone dropped, and the email alone brings nothing new.
        let (plan, dropped) = reconcile_with_priority(
            &request(Some("lone@x.io"), Some("5550100")),
            None,
            &household_and_lone(),
            &full,
            IdentifierPriority::EmailFirst,
        )
        .expect("decided");
        assert!(dropped.is_some());
        assert_eq!(plan.outcome(), Outcome::Unchanged);
    }

    #[test]
    fn without_a_limit_in_the_way_the_priority_changes_nothing() {
        let record = request(Some("lodger@family.io"), Some("5550100"));
        let (plan, dropped) = reconcile_with_priority(
            &record,
            None,
            &household_and_lone(),
            &CustomerLimits::UNLIMITED,
            IdentifierPriority::EmailFirst,
        )
        .expect("decided");
        assert_eq!(dropped, None);
        assert_eq!(
            plan,
            super::reconcile(&record, &household_and_lone(), &CustomerLimits::UNLIMITED)
                .expect("decided")
        );
    }

    #[test]
    fn a_plan_applied_to_its_contacts_is_what_a_store_reads_back() {
        let george = contact(1, Some("george@hillvalley.edu"), Some("919191"), None, 0);
        let biff = contact(2, Some("biffsucks@hillvalley.edu"), Some("717171"), None, 1);
        let biff_too = contact(3, Some("biff@hillvalley.edu"), Some("717171"), Some(2), 2);
        let known = vec![george.clone(), biff.clone(), biff_too.clone()];

        // Rule 4: the newer customer is relinked, nothing is inserted.
        let merge = reconcile(
            &request(Some("george@hillvalley.edu"), Some("717171")),
            &known,
        )
        .expect("plan");
        let after = merge.applied_to(known.clone(), None);
        assert_eq!(after.len(), 3);
        assert!(after[0].is_primary());
        assert_eq!(after[1].link, Link::Secondary(id(1)));
        assert_eq!(after[2].link, Link::Secondary(id(1)));

        // Rule 2: the new secondary is added as stored.
        let at = george.created_at + chrono::TimeDelta::seconds(60);
        let new = reconcile(
            &request(Some("george@x.io"), Some("919191")),
            std::slice::from_ref(&george),
        )
        .expect("plan");
        let after = new.applied_to(vec![george.clone()], Some((id(9), at)));
        assert_eq!(after.len(), 2);
        assert_eq!(after[1].id, id(9));
        assert_eq!(after[1].created_at, at);
        assert_eq!(after[1].link, Link::Secondary(id(1)));
        assert_eq!(
            after[1].email.as_ref().map(Email::as_str),
            Some("george@x.io")
        );

        // Nothing to write: the contacts are unchanged.
        let alone = vec![george];
        let none = reconcile(&request(Some("george@hillvalley.edu"), None), &alone).expect("plan");
        assert!(none.is_empty());
        assert_eq!(none.applied_to(alone.clone(), None), alone);
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
                created_at: None,
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
                    to: LinkTo::Existing(id(11)),
                    contacts: vec![id(27)]
                }),
                insert: None,
                refused: None,
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
        assert_eq!(plan.relink.map(|r| r.to), Some(LinkTo::Existing(id(40))));

        let tie = [
            contact(8, Some("a@x.io"), None, None, 2),
            contact(4, None, Some("1"), None, 2),
        ];
        let plan = reconcile(&request(Some("a@x.io"), Some("1")), &tie).expect("plan");
        assert_eq!(plan.relink.map(|r| r.to), Some(LinkTo::Existing(id(4))));
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
                to: LinkTo::Existing(id(1)),
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
                to: LinkTo::Existing(id(2)),
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

    fn limits(contacts: usize, emails: usize, phones: usize) -> CustomerLimits {
        CustomerLimits {
            max_contacts: contacts,
            max_emails: emails,
            max_phones: phones,
        }
    }

    /// Two customers of two contacts each (two emails, two phones each).
    fn two_customers() -> Vec<Contact> {
        vec![
            contact(1, Some("a1@x.io"), Some("11"), None, 0),
            contact(2, Some("a2@x.io"), Some("12"), Some(1), 1),
            contact(3, Some("b1@x.io"), Some("21"), None, 2),
            contact(4, Some("b2@x.io"), Some("22"), Some(3), 3),
        ]
    }

    #[test]
    fn rule_6_a_merge_exactly_at_the_limits_goes_through() {
        let req = request(Some("a1@x.io"), Some("21"));
        let plan = super::reconcile(&req, &two_customers(), &limits(4, 4, 4)).expect("plan");
        assert!(plan.relink.is_some());
        assert_eq!(plan.refused, None);
    }

    #[test]
    fn rule_6_a_merge_one_past_any_limit_writes_nothing() {
        let req = request(Some("a1@x.io"), Some("21"));
        for (limit, name) in [
            (limits(3, 4, 4), "contacts"),
            (limits(4, 3, 4), "emails"),
            (limits(4, 4, 3), "phones"),
        ] {
            let plan = super::reconcile(&req, &two_customers(), &limit).expect("plan");
            assert!(plan.is_empty(), "{name}: {plan:?}");
            assert_eq!(
                plan.refused,
                Some(Refusal {
                    contacts: 4,
                    emails: 4,
                    phones: 4
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn rule_6_a_customer_at_the_limit_takes_no_new_contact() {
        let known = &two_customers()[..2];
        let req = request(Some("a1@x.io"), Some("99"));
        let at = super::reconcile(&req, known, &limits(3, 2, 3)).expect("plan");
        assert!(at.insert.is_some(), "three contacts, three phones: allowed");
        let past = super::reconcile(&req, known, &limits(2, 2, 3)).expect("plan");
        assert!(past.is_empty() && past.refused.is_some());
        // Nothing new: nothing to refuse, even past the limits.
        let same = super::reconcile(&request(Some("a1@x.io"), None), known, &limits(1, 1, 1))
            .expect("plan");
        assert_eq!(same, Plan::default());
    }

    fn at(minute: u32) -> Option<DateTime<Utc>> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2023, 4, 1, 0, minute, 0).single()
    }

    #[test]
    fn rule_5_an_older_record_with_something_new_becomes_the_primary() {
        let known = [
            contact(5, Some("a@x.io"), Some("1"), None, 10),
            contact(6, Some("b@x.io"), Some("1"), Some(5), 11),
        ];
        let req = request(Some("old@x.io"), Some("1"));
        let plan = reconcile_record(&req, at(3), &known, &CustomerLimits::UNLIMITED).expect("plan");
        assert_eq!(plan.insert.as_ref().map(|c| c.link), Some(Link::Primary));
        assert_eq!(plan.insert.as_ref().and_then(|c| c.created_at), at(3));
        assert_eq!(
            plan.relink,
            Some(Relink {
                to: LinkTo::Inserted,
                contacts: vec![id(5), id(6)]
            })
        );
    }

    #[test]
    fn rule_5_a_newer_record_or_one_with_nothing_new_changes_no_primary() {
        let known = [contact(5, Some("a@x.io"), Some("1"), None, 10)];
        let limits = CustomerLimits::UNLIMITED;
        let newer = reconcile_record(&request(Some("n@x.io"), Some("1")), at(20), &known, &limits)
            .expect("plan");
        assert_eq!(newer.insert.map(|c| c.link), Some(Link::Secondary(id(5))));
        assert_eq!(newer.relink, None);
        let nothing_new =
            reconcile_record(&request(Some("a@x.io"), None), at(1), &known, &limits).expect("plan");
        assert_eq!(nothing_new, Plan::default());
    }
}

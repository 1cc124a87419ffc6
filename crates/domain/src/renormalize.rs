//! Bringing stored contacts up to the current identifier rules: rows written before
//! normalization (or before a value was blocked) are rewritten, and customers that turn out
//! to share an identifier once normalized are merged by the same rule as `/identify`'s
//! (the oldest contact is the primary, everyone else links straight to it). Customers are
//! never split. Two contacts left holding the same email and phone (they differed only by a
//! value now dropped or normalized) are one: the newer is removed, as `/identify` would
//! never have stored it.

use std::collections::HashMap;

use crate::cluster::{recluster, Duplicates, Rewrite, Together};
use crate::contact::{Contact, ContactId, Email, Link, PhoneNumber};
use crate::identifiers::IdentifierPolicy;

/// Computes the rewrite of `contacts` (every live contact) under `policy`: every value under
/// the current rules (a value that is not valid under them is kept as it is, and counted),
/// blocked values dropped, then one re-clustering that keeps today's customers together
/// ([`Together::Today`]) and merges those the values now join.
pub fn renormalize(contacts: &[Contact], policy: &IdentifierPolicy) -> Rewrite {
    let mut values_kept = 0;
    let mut values: HashMap<ContactId, (Option<Email>, Option<PhoneNumber>)> = HashMap::new();
    for contact in contacts {
        let email = contact
            .email
            .as_ref()
            .and_then(|stored| match Email::parse(stored.as_str()) {
                Ok(Some(email)) if policy.blocked.blocks_email(&email) => None,
                Ok(Some(email)) => Some(email),
                _ => {
                    values_kept += 1;
                    Some(stored.clone())
                }
            });
        let phone = contact.phone.as_ref().and_then(|stored| {
            match PhoneNumber::parse(stored.as_str(), policy.region) {
                Ok(Some(phone)) if policy.blocked.blocks_phone(&phone) => None,
                Ok(Some(phone)) => Some(phone),
                _ => {
                    values_kept += 1;
                    Some(stored.clone())
                }
            }
        });
        values.insert(contact.id, (email, phone));
    }
    let mut rewrite = recluster(
        contacts,
        &[],
        Duplicates::Erase,
        Together::Today,
        |contact| values.get(&contact.id).cloned().unwrap_or((None, None)),
    );
    let before: HashMap<ContactId, &Contact> = contacts.iter().map(|c| (c.id, c)).collect();
    let kept = rewrite.changes.iter().filter(|change| !change.erased);
    for change in kept {
        let Some(old) = before.get(&change.id) else {
            continue;
        };
        if old.email != change.email || old.phone != change.phone {
            rewrite.values_normalized += 1;
        }
        if old.is_primary() && change.link != Link::Primary {
            rewrite.customers_merged += 1;
        }
    }
    rewrite.values_kept = values_kept;
    rewrite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan_erasure;
    use crate::contact::tests::us;
    use crate::customer::tests::{
        contact, george_merged_with_biffsucks, george_with_biffsucks_phone, id,
    };
    use crate::identifiers::BlockList;

    fn policy() -> IdentifierPolicy {
        IdentifierPolicy {
            region: us(),
            blocked: BlockList::new(&[], &[], &[], Some(6), us()).expect("a list"),
        }
    }

    #[test]
    fn already_normal_data_needs_nothing() {
        let contacts = [
            contact(1, Some("a@x.io"), Some("+14155550100"), None, 0),
            contact(2, Some("b@x.io"), Some("+14155550100"), Some(1), 1),
        ];
        assert_eq!(renormalize(&contacts, &policy()), Rewrite::default());
    }

    #[test]
    fn values_are_normalized_and_customers_they_reveal_as_one_are_merged() {
        let contacts = [
            contact(
                1,
                Some(" Doc@HillValley.edu "),
                Some("415-555-0100"),
                None,
                0,
            ),
            contact(
                2,
                Some("marty@hillvalley.edu"),
                Some("+1 (415) 555-0100"),
                None,
                1,
            ),
            contact(3, Some("doc@hillvalley.edu"), None, None, 2),
            contact(4, Some("jennifer@hillvalley.edu"), Some("778"), Some(2), 3),
        ];
        let rewrite = renormalize(&contacts, &policy());
        assert_eq!(rewrite.customers_merged, 2);
        assert_eq!(rewrite.values_normalized, 2);
        let change = |n: i64| rewrite.changes.iter().find(|c| c.id == id(n));
        let first = change(1).expect("contact 1 changes");
        assert_eq!(
            first.email.as_ref().map(Email::as_str),
            Some("doc@hillvalley.edu")
        );
        assert_eq!(
            first.phone.as_ref().map(PhoneNumber::as_str),
            Some("+14155550100")
        );
        assert_eq!(first.link, Link::Primary);
        for n in [2, 3, 4] {
            assert_eq!(
                change(n).map(|c| c.link),
                Some(Link::Secondary(id(1))),
                "{n}"
            );
        }
    }

    #[test]
    fn erasing_the_bridge_splits_a_customer_in_two_each_led_by_its_oldest() {
        // doc -(phone 1)- marty -(email m)- bridge -(phone 2)- jennifer, biff
        let customer = [
            contact(1, Some("doc@x.io"), Some("1"), None, 0),
            contact(2, Some("marty@x.io"), Some("1"), Some(1), 1),
            contact(3, Some("marty@x.io"), Some("2"), Some(1), 2),
            contact(4, Some("jennifer@x.io"), Some("2"), Some(1), 3),
            contact(5, Some("biff@x.io"), Some("2"), Some(1), 4),
        ];
        let rewrite = plan_erasure(&customer, &[], |c| c.id == id(3));
        let change = |n: i64| rewrite.changes.iter().find(|c| c.id == id(n)).cloned();
        let erased = change(3).expect("erased");
        assert!(erased.erased && erased.email.is_none() && erased.phone.is_none());
        assert_eq!(change(1), None, "doc stays primary");
        assert_eq!(change(2), None, "marty stays with doc");
        assert_eq!(
            change(4).map(|c| c.link),
            Some(Link::Primary),
            "oldest of the other part"
        );
        assert_eq!(change(5).map(|c| c.link), Some(Link::Secondary(id(4))));
    }

    #[test]
    fn erasing_a_primary_hands_the_customer_to_the_next_oldest() {
        let customer = [
            contact(1, Some("doc@x.io"), Some("1"), None, 0),
            contact(2, Some("marty@x.io"), Some("1"), Some(1), 1),
            contact(3, Some("emmett@x.io"), Some("1"), Some(1), 2),
        ];
        let rewrite = plan_erasure(&customer, &[], |c| c.id == id(1));
        let links: Vec<(i64, Link)> = rewrite
            .changes
            .iter()
            .filter(|c| !c.erased)
            .map(|c| (c.id.get(), c.link))
            .collect();
        assert_eq!(links, [(2, Link::Primary), (3, Link::Secondary(id(2)))]);
        let all = plan_erasure(&customer, &[], |_| true);
        assert_eq!(all.contacts_erased, 3);
        assert!(all.changes.iter().all(|c| c.erased));
    }

    /// George and biffsucks were joined by a request (george@ with biffsucks' phone) that
    /// created no contact; erasing biff, who shared biffsucks' phone, keeps them one
    /// customer. Erasing biffsucks too leaves the request's phone held by nobody: the
    /// evidence goes with it.
    #[test]
    fn an_erasure_keeps_what_a_stored_request_joined() {
        let customer = george_merged_with_biffsucks();
        let joined = [george_with_biffsucks_phone(7)];
        let biff = plan_erasure(&customer, &joined, |c| c.id == id(3));
        assert_eq!(biff.contacts_erased, 1);
        assert!(
            biff.changes.iter().all(|c| c.id == id(3)),
            "nobody else moves: {:?}",
            biff.changes
        );
        assert!(biff.evidence_erased.is_empty());
        let without = plan_erasure(&customer, &[], |c| c.id == id(3));
        assert!(
            without
                .changes
                .iter()
                .any(|c| c.id == id(2) && c.link == Link::Primary),
            "without the evidence biffsucks would split off"
        );
        let both = plan_erasure(&customer, &joined, |c| c.id != id(1));
        assert_eq!(both.evidence_erased, vec![7]);
    }

    #[test]
    fn two_contacts_left_with_the_same_values_are_one() {
        // Stored when 0000000000 and 1111111111 were not blocked: a@x.io with each.
        let contacts = [
            contact(1, Some("a@x.io"), Some("0000000000"), None, 0),
            contact(2, Some("A@x.io"), Some("1111111111"), Some(1), 1),
            contact(3, Some("b@x.io"), Some("5550100"), Some(1), 2),
            contact(4, Some("a@x.io"), Some("5550100"), Some(1), 3),
        ];
        let rewrite = renormalize(&contacts, &policy());
        assert_eq!(rewrite.duplicates_removed, 1);
        assert_eq!(rewrite.contacts_erased, 1);
        let removed = rewrite
            .changes
            .iter()
            .find(|c| c.id == id(2))
            .expect("the newer duplicate");
        assert!(removed.erased && removed.email.is_none() && removed.phone.is_none());
        let kept = rewrite
            .changes
            .iter()
            .find(|c| c.id == id(1))
            .expect("the older one loses its blocked phone");
        assert_eq!(
            (
                kept.email.as_ref().map(Email::as_str),
                kept.phone.clone(),
                kept.link,
                kept.erased
            ),
            (Some("a@x.io"), None, Link::Primary, false)
        );
        assert!(rewrite
            .changes
            .iter()
            .all(|c| c.id != id(3) && c.id != id(4)));
        // Running it again on the result changes nothing.
        let after: Vec<Contact> = contacts
            .iter()
            .filter(|c| c.id != id(2))
            .map(|c| {
                let mut c = c.clone();
                if let Some(change) = rewrite.changes.iter().find(|ch| ch.id == c.id) {
                    c.email = change.email.clone();
                    c.phone = change.phone.clone();
                    c.link = change.link;
                }
                c
            })
            .collect();
        assert_eq!(renormalize(&after, &policy()), Rewrite::default());
    }

    #[test]
    fn blocked_values_are_dropped_and_contacts_left_empty_are_erased() {
        let contacts = [
            contact(1, None, Some("0000000000"), None, 0),
            contact(2, Some("a@x.io"), Some("0000000000"), None, 1),
            contact(3, Some("b@x.io"), Some("0000000000"), None, 2),
        ];
        let rewrite = renormalize(&contacts, &policy());
        assert_eq!(rewrite.contacts_erased, 1);
        assert_eq!(rewrite.customers_merged, 0, "a blocked value links nobody");
        let erased = rewrite
            .changes
            .iter()
            .find(|c| c.id == id(1))
            .expect("erased");
        assert!(erased.erased && erased.phone.is_none());
        let kept = rewrite
            .changes
            .iter()
            .find(|c| c.id == id(2))
            .expect("changed");
        assert_eq!((kept.phone.clone(), kept.link), (None, Link::Primary));
    }
}

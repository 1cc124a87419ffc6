//! Unlink rules: an email or a phone number that an operator marked as "does not identify
//! anyone" (a family's shared phone, a store's own number typed at checkout). A rule is kept
//! in the store, so every replica obeys it from the next request. While it stands the value
//! is treated exactly as a blocked placeholder ([`crate::identifiers`]): `/identify` sets it
//! aside under `ignored`, and no contact holds it. Making a rule re-clusters the customers
//! the value held together ([`plan_unlink`]); deleting one lets the value link again from
//! then on, and restores nothing.

use chrono::{DateTime, Utc};

use crate::cluster::{recluster, Duplicates, Evidence, Rewrite, Together, ValueChange};
use crate::contact::{Contact, ContactId, Identifier};
use crate::customer::{Customer, InconsistentGraph};

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlinkRule {
    pub id: i64,
    pub identifier: Identifier,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who: the name of the API key that made it (or of the command line's operator).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A rule to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUnlinkRule {
    pub identifier: Identifier,
    pub reason: String,
    pub created_by: String,
}

/// The history's cause for what applying rule `id` rewrote.
pub fn unlink_cause(rule_id: i64) -> String {
    format!("unlink:{rule_id}")
}

/// What applying a rule does to `contacts` (every live contact of the customers that hold
/// the value) and to the `evidence` stored for their values: the value is taken off every
/// contact that holds it (a contact left with nothing is erased, one left with exactly the
/// values of an older one is a duplicate and erased too), evidence that names it is
/// deleted, and what remains is re-clustered from the evidence that is left, as after an
/// erasure ([`crate::plan_erasure`]): the customers the value alone held together fall
/// apart, the oldest contact of each part its primary.
pub fn plan_unlink(contacts: &[Contact], evidence: &[Evidence], value: &Identifier) -> Rewrite {
    let mut rewrite = recluster(
        contacts,
        evidence,
        Duplicates::Erase,
        Together::ByEvidence,
        |contact| {
            let email = contact
                .email
                .clone()
                .filter(|email| !matches!(value, Identifier::Email(v) if v == email));
            let phone = contact
                .phone
                .clone()
                .filter(|phone| !matches!(value, Identifier::Phone(v) if v == phone));
            (email, phone)
        },
    );
    rewrite.value_change = ValueChange::Unlinked;
    rewrite
}

/// The customers `before` (every live contact of some customers) form once `rewrite` is
/// applied, by primary id, and the contacts it erased.
///
/// # Errors
/// When a part is not one primary with its secondaries (a rewrite never makes one).
pub fn customers_after(
    before: &[Contact],
    rewrite: &Rewrite,
) -> Result<(Vec<Customer>, Vec<ContactId>), InconsistentGraph> {
    let mut erased = Vec::new();
    let mut after: Vec<Contact> = Vec::with_capacity(before.len());
    for contact in before {
        match rewrite
            .changes
            .iter()
            .find(|change| change.id == contact.id)
        {
            Some(change) if change.erased => erased.push(contact.id),
            Some(change) => after.push(Contact {
                email: change.email.clone(),
                phone: change.phone.clone(),
                link: change.link,
                ..contact.clone()
            }),
            None => after.push(contact.clone()),
        }
    }
    erased.sort_unstable();
    Ok((Customer::all_in(after)?, erased))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::{Email, PhoneNumber};
    use crate::customer::tests::{
        contact, george_merged_with_biffsucks, george_with_biffsucks_phone, id,
    };

    fn phone(value: &str) -> Identifier {
        Identifier::Phone(PhoneNumber::from_stored(value.to_owned()))
    }

    fn email(value: &str) -> Identifier {
        Identifier::Email(Email::from_stored(value.to_owned()))
    }

    /// A family's shared phone joined three strangers, one of whom also ordered with the
    /// phone alone.
    fn family() -> Vec<Contact> {
        vec![
            contact(1, Some("doc@hillvalley.edu"), Some("555000"), None, 0),
            contact(2, Some("marty@hillvalley.edu"), Some("555000"), Some(1), 1),
            contact(3, Some("marty@hillvalley.edu"), Some("717171"), Some(1), 2),
            contact(4, None, Some("555000"), Some(1), 3),
            contact(
                5,
                Some("jennifer@hillvalley.edu"),
                Some("555000"),
                Some(1),
                4,
            ),
        ]
    }

    /// What unlinking `value` does to [`family`]: the rewrite, the customers after it and
    /// the contacts it erases.
    fn unlink_in_family(value: &Identifier) -> (Rewrite, Vec<Customer>, Vec<ContactId>) {
        let before = family();
        let rewrite = plan_unlink(&before, &[], value);
        let (customers, erased) = customers_after(&before, &rewrite).expect("customers");
        (rewrite, customers, erased)
    }

    #[test]
    fn unlinking_a_shared_phone_splits_the_strangers_it_joined() {
        let (rewrite, customers, erased) = unlink_in_family(&phone("555000"));
        // Contact 4 held only the phone; 2 keeps marty's email, which 3 shares.
        assert_eq!(erased, vec![id(4)]);
        let parts: Vec<(ContactId, Vec<ContactId>)> = customers
            .iter()
            .map(|c| (c.primary_id, c.secondary_ids.clone()))
            .collect();
        assert_eq!(
            parts,
            vec![(id(1), vec![]), (id(2), vec![id(3)]), (id(5), vec![])]
        );
        assert!(customers
            .iter()
            .all(|c| c.phone_numbers.iter().all(|p| p.as_str() != "555000")));
        let value_of = |n: i64| rewrite.changes.iter().find(|c| c.id == id(n));
        assert_eq!(value_of(1).and_then(|c| c.phone.clone()), None);
        assert_eq!(
            value_of(1)
                .and_then(|c| c.email.clone())
                .map(|e| e.as_str().to_owned()),
            Some("doc@hillvalley.edu".to_owned())
        );
    }

    #[test]
    fn a_value_no_one_else_shares_changes_only_its_holder() {
        let (rewrite, customers, erased) = unlink_in_family(&email("jennifer@hillvalley.edu"));
        // Jennifer's contact is left with the phone alone, which contact 4 (older) holds.
        assert_eq!(erased, vec![id(5)]);
        assert_eq!(customers.len(), 1, "the phone still joins all of them");
        assert_eq!(rewrite.changes.len(), 1);
    }

    #[test]
    fn contacts_left_with_an_older_contact_s_values_are_duplicates() {
        let before = vec![
            contact(1, Some("doc@hillvalley.edu"), None, None, 0),
            contact(2, Some("doc@hillvalley.edu"), Some("555000"), Some(1), 1),
        ];
        let rewrite = plan_unlink(&before, &[], &phone("555000"));
        let (customers, erased) = customers_after(&before, &rewrite).expect("customers");
        assert_eq!(erased, vec![id(2)]);
        assert_eq!(rewrite.duplicates_removed, 1);
        assert_eq!(customers.len(), 1);
    }

    /// The george/biffsucks merge was made by a request that brought george's email and
    /// biffsucks' phone: unlinking that phone splits them again, and the evidence goes.
    #[test]
    fn unlinking_the_value_a_joining_request_brought_undoes_the_join() {
        let before = george_merged_with_biffsucks();
        let evidence = [george_with_biffsucks_phone(7)];
        let rewrite = plan_unlink(&before, &evidence, &phone("717171"));
        assert_eq!(rewrite.evidence_erased, vec![7]);
        let (customers, erased) = customers_after(&before, &rewrite).expect("customers");
        assert!(erased.is_empty(), "each keeps its email");
        let primaries: Vec<ContactId> = customers.iter().map(|c| c.primary_id).collect();
        assert_eq!(primaries, vec![id(1), id(2), id(3)]);

        let kept = plan_unlink(&before, &evidence, &email("nobody@hillvalley.edu"));
        assert!(
            kept.changes.is_empty() && kept.evidence_erased.is_empty(),
            "a value no one holds changes nothing"
        );
    }
}

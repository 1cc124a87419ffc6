//! Bringing stored contacts up to the current identifier rules: rows written before
//! normalization (or before a value was blocked) are rewritten, and customers that turn out
//! to share an identifier once normalized are merged by the same rule as `/identify`'s
//! (the oldest contact is the primary, everyone else links straight to it). Customers are
//! never split. Two contacts left holding the same email and phone (they differed only by a
//! value now dropped or normalized) are one: the newer is removed, as `/identify` would
//! never have stored it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::contact::{Contact, ContactId, Email, Link, PhoneNumber};
use crate::identifiers::IdentifierPolicy;
use crate::links::ManualLink;

/// The state one contact must be brought to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange {
    pub id: ContactId,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub link: Link,
    /// The contact held nothing but blocked values, or only what an older contact holds: it
    /// is deleted (soft), its values blanked.
    pub erased: bool,
}

/// What joined parts of a customer besides the values its contacts share: kept in the
/// store, so that a re-clustering (after an erasure, an unlink rule, or deleting a link)
/// keeps together what belongs together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The id of the stored request, or of the link.
    pub id: i64,
    pub joins: Joins,
    /// When the request came, or the link was made.
    pub created_at: DateTime<Utc>,
}

/// What a piece of [`Evidence`] joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joins {
    /// A request that joined customers without creating a contact (rule 4: its email
    /// belonged to one customer, its phone to another): the two values belong together
    /// although no contact holds both.
    Request { email: Email, phone: PhoneNumber },
    /// Support staff joined the customers of two contacts by hand ([`crate::links`]).
    Manual(ManualLink),
}

/// Why a rewrite changes the values of contacts it keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueChange {
    /// Brought up to the current identifier rules ([`renormalize`]).
    #[default]
    Normalized,
    /// An unlink rule took a value off ([`crate::plan_unlink`]).
    Unlinked,
}

/// What [`renormalize`] found to change, and a summary for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub changes: Vec<ContactChange>,
    /// Why the values of the changes that keep their contact changed.
    pub value_change: ValueChange,
    /// Contacts whose email or phone changed.
    pub values_normalized: usize,
    /// Stored values that are not valid under the current rules, left as they are.
    pub values_kept: usize,
    /// Customers that disappeared into another one.
    pub customers_merged: usize,
    pub contacts_erased: usize,
    /// Of those, contacts that held the same email and phone as an older one.
    pub duplicates_removed: usize,
    /// Stored requests to delete: they hold a value no remaining contact holds. (A manual
    /// link goes with an erased contact of its own: the store deletes it with the contact.)
    pub evidence_erased: Vec<i64>,
}

/// Computes the rewrite of `contacts` (every live contact) under `policy`.
pub fn renormalize(contacts: &[Contact], policy: &IdentifierPolicy) -> Rewrite {
    let mut rewrite = Rewrite::default();

    // 1. Values under the current rules.
    let mut values: Vec<(Option<Email>, Option<PhoneNumber>)> = Vec::with_capacity(contacts.len());
    for contact in contacts {
        let email = contact
            .email
            .as_ref()
            .and_then(|stored| match Email::parse(stored.as_str()) {
                Ok(Some(email)) if policy.blocked.blocks_email(&email) => None,
                Ok(Some(email)) => Some(email),
                _ => {
                    rewrite.values_kept += 1;
                    Some(stored.clone())
                }
            });
        let phone = contact.phone.as_ref().and_then(|stored| {
            match PhoneNumber::parse(stored.as_str(), policy.region) {
                Ok(Some(phone)) if policy.blocked.blocks_phone(&phone) => None,
                Ok(Some(phone)) => Some(phone),
                _ => {
                    rewrite.values_kept += 1;
                    Some(stored.clone())
                }
            }
        });
        values.push((email, phone));
    }

    // 1b. The newer of two contacts with the same values is a duplicate.
    let mut duplicate = vec![false; contacts.len()];
    let mut by_age: Vec<usize> = (0..contacts.len()).collect();
    by_age.sort_by_key(|&i| contacts[i].age_key());
    let mut seen: HashSet<(Option<&str>, Option<&str>)> = HashSet::new();
    for i in by_age {
        let (email, phone) = &values[i];
        if email.is_some() || phone.is_some() {
            let key = (
                email.as_ref().map(Email::as_str),
                phone.as_ref().map(PhoneNumber::as_str),
            );
            duplicate[i] = !seen.insert(key);
        }
    }

    // 2. Customers: today's, joined wherever a normalized value is shared.
    let mut sets = DisjointSets::new(contacts.len());
    let index: HashMap<ContactId, usize> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut first_with: HashMap<String, usize> = HashMap::new();
    for (i, contact) in contacts.iter().enumerate() {
        if let Some(&primary) = index.get(&contact.primary_id()) {
            sets.union(i, primary);
        }
        let (email, phone) = &values[i];
        let keys = [
            email.as_ref().map(|e| format!("email:{}", e.as_str())),
            phone.as_ref().map(|p| format!("phone:{}", p.as_str())),
        ];
        for key in keys.into_iter().flatten() {
            let other = *first_with.entry(key).or_insert(i);
            sets.union(i, other);
        }
    }

    // 3. In each customer the oldest live contact is the primary.
    let erased = |i: usize| duplicate[i] || (values[i].0.is_none() && values[i].1.is_none());
    let mut oldest: HashMap<usize, usize> = HashMap::new();
    for i in (0..contacts.len()).filter(|&i| !erased(i)) {
        let root = sets.find(i);
        let entry = oldest.entry(root).or_insert(i);
        if contacts[i].age_key() < contacts[*entry].age_key() {
            *entry = i;
        }
    }
    for (i, contact) in contacts.iter().enumerate() {
        let is_erased = erased(i);
        let link = match oldest.get(&sets.find(i)) {
            Some(&o) if o == i => Link::Primary,
            Some(&o) => Link::Secondary(contacts[o].id),
            None => contact.link,
        };
        let (email, phone) = &values[i];
        let values_changed = email != &contact.email || phone != &contact.phone;
        if values_changed && !is_erased {
            rewrite.values_normalized += 1;
        }
        if is_erased {
            rewrite.contacts_erased += 1;
            rewrite.duplicates_removed += usize::from(duplicate[i]);
        }
        if contact.is_primary() && link != Link::Primary && !is_erased {
            rewrite.customers_merged += 1;
        }
        if values_changed || link != contact.link || is_erased {
            rewrite.changes.push(ContactChange {
                id: contact.id,
                email: if is_erased { None } else { email.clone() },
                phone: if is_erased { None } else { phone.clone() },
                link,
                erased: is_erased,
            });
        }
    }
    rewrite
}

/// Erases the contacts of one customer that `erase` selects (their values blanked, their rows
/// deleted) and re-clusters the rest ([`recluster`]): a customer that the erased contact
/// alone held together falls apart into several.
///
/// `customer` is every live contact of one customer; `evidence`, what was stored for its
/// identifiers.
pub fn plan_erasure(
    customer: &[Contact],
    evidence: &[Evidence],
    erase: impl Fn(&Contact) -> bool,
) -> Rewrite {
    // No duplicate removal: a privacy request erases exactly the contacts it names.
    recluster(customer, evidence, Duplicates::Keep, |contact| {
        if erase(contact) {
            (None, None)
        } else {
            (contact.email.clone(), contact.phone.clone())
        }
    })
}

/// Whether [`recluster`] erases a contact left with exactly an older contact's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicates {
    Erase,
    Keep,
}

/// Brings each of `contacts` (every live contact of some customers) to the values `keep`
/// leaves it, and re-clusters them from all remaining evidence: contacts that still share
/// an email or a phone, directly or through others, or whose values a stored request joined
/// (`evidence`), stay one customer; the others fall apart. The oldest contact of each part
/// is its primary. A contact left with no value is erased (its values blanked, its row
/// deleted), and so, with [`Duplicates::Erase`], is one left with exactly the values of an
/// older one (`/identify` would never have stored it). A stored request that holds a value
/// no remaining contact holds is erased too, and so is a manual link to an erased contact.
/// Merges customers that were apart only where a manual link among `evidence` joins them.
pub(crate) fn recluster(
    contacts: &[Contact],
    evidence: &[Evidence],
    duplicates: Duplicates,
    keep: impl Fn(&Contact) -> (Option<Email>, Option<PhoneNumber>),
) -> Rewrite {
    let mut rewrite = Rewrite::default();
    let values: Vec<(Option<Email>, Option<PhoneNumber>)> = contacts.iter().map(&keep).collect();
    let mut erased = vec![false; contacts.len()];
    let mut by_age: Vec<usize> = (0..contacts.len()).collect();
    by_age.sort_by_key(|&i| contacts[i].age_key());
    let mut seen: HashSet<(Option<&str>, Option<&str>)> = HashSet::new();
    for &i in &by_age {
        let (email, phone) = &values[i];
        let key = (
            email.as_ref().map(Email::as_str),
            phone.as_ref().map(PhoneNumber::as_str),
        );
        let nothing_left = email.is_none() && phone.is_none();
        let duplicate = duplicates == Duplicates::Erase && !nothing_left && !seen.insert(key);
        erased[i] = nothing_left || duplicate;
        rewrite.duplicates_removed += usize::from(duplicate);
    }
    let mut sets = DisjointSets::new(contacts.len());
    let mut first_with: HashMap<String, usize> = HashMap::new();
    for i in (0..contacts.len()).filter(|&i| !erased[i]) {
        let (email, phone) = &values[i];
        let keys = [
            email.as_ref().map(|e| format!("email:{}", e.as_str())),
            phone.as_ref().map(|p| format!("phone:{}", p.as_str())),
        ];
        for key in keys.into_iter().flatten() {
            let other = *first_with.entry(key).or_insert(i);
            sets.union(i, other);
        }
    }
    let live: HashMap<ContactId, usize> = contacts
        .iter()
        .enumerate()
        .filter(|&(i, _)| !erased[i])
        .map(|(i, c)| (c.id, i))
        .collect();
    for joined in evidence {
        match &joined.joins {
            Joins::Request { email, phone } => {
                let email = first_with.get(&format!("email:{}", email.as_str()));
                let phone = first_with.get(&format!("phone:{}", phone.as_str()));
                match (email, phone) {
                    (Some(&a), Some(&b)) => sets.union(a, b),
                    _ => rewrite.evidence_erased.push(joined.id),
                }
            }
            Joins::Manual(link) => {
                let [a, b] = link.contacts;
                if let (Some(&a), Some(&b)) = (live.get(&a), live.get(&b)) {
                    sets.union(a, b);
                }
            }
        }
    }
    let mut oldest: HashMap<usize, usize> = HashMap::new();
    for &i in by_age.iter().filter(|&&i| !erased[i]) {
        oldest.entry(sets.find(i)).or_insert(i);
    }
    for (i, contact) in contacts.iter().enumerate() {
        if erased[i] {
            rewrite.contacts_erased += 1;
            rewrite.changes.push(ContactChange {
                id: contact.id,
                email: None,
                phone: None,
                link: contact.link,
                erased: true,
            });
            continue;
        }
        let o = oldest[&sets.find(i)];
        let link = if o == i {
            Link::Primary
        } else {
            Link::Secondary(contacts[o].id)
        };
        let (email, phone) = &values[i];
        if link != contact.link || email != &contact.email || phone != &contact.phone {
            rewrite.changes.push(ContactChange {
                id: contact.id,
                email: email.clone(),
                phone: phone.clone(),
                link,
                erased: false,
            });
        }
    }
    rewrite
}

/// Union-find over indexes.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(size: usize) -> Self {
        Self {
            parent: (0..size).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra] = rb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

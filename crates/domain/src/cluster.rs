//! Re-clustering: which contacts are one customer once some of their values change or go,
//! from what still joins them (the values they share, the requests and the links made by
//! hand kept as [`Evidence`]), each customer led by its oldest contact. One function,
//! [`recluster`], serves every rewrite of stored customers: erasure ([`plan_erasure`]),
//! unlink rules ([`crate::plan_unlink`]), manual links ([`crate::plan_relink`]) and
//! normalization ([`crate::renormalize()`]).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::contact::{Contact, ContactId, Email, Identifier, Link, PhoneNumber};

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

/// Two contacts a person joined by hand, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualLink {
    /// Ascending.
    pub contacts: [ContactId; 2],
    /// Why, in the words of whoever made it.
    pub reason: String,
    /// The name of the API key that made it.
    pub created_by: String,
}

/// Why a rewrite changes the values of contacts it keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueChange {
    /// Brought up to the current identifier rules ([`crate::renormalize()`]).
    #[default]
    Normalized,
    /// An unlink rule took a value off ([`crate::plan_unlink`]).
    Unlinked,
}

/// What a re-clustering found to change, and a summary for the operator.
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
    recluster(
        customer,
        evidence,
        Duplicates::Keep,
        Together::ByEvidence,
        |contact| {
            if erase(contact) {
                (None, None)
            } else {
                (contact.email.clone(), contact.phone.clone())
            }
        },
    )
}

/// Whether [`recluster`] erases a contact left with exactly an older contact's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicates {
    Erase,
    Keep,
}

/// What holds contacts together besides the values they share and the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Together {
    /// Nothing: customers fall apart where nothing else joins them (erasure, unlink rules,
    /// deleting a link).
    ByEvidence,
    /// Today's customers: a contact stays with its primary, so customers only ever merge
    /// (normalization).
    Today,
}

/// Brings each of `contacts` (every live contact of some customers) to the values `keep`
/// leaves it, and re-clusters them: contacts that share an email or a phone, directly or
/// through others, whose values a stored request joined or that a link made by hand joins
/// (`evidence`), and, with [`Together::Today`], contacts of one customer today, are one
/// customer; the others fall apart. The oldest contact of each part
/// is its primary. A contact left with no value is erased (its values blanked, its row
/// deleted), and so, with [`Duplicates::Erase`], is one left with exactly the values of an
/// older one (`/identify` would never have stored it). A stored request that holds a value
/// no remaining contact holds is erased too, and so is a manual link to an erased contact.
/// Merges customers that were apart only where a manual link among `evidence` joins them.
pub(crate) fn recluster(
    contacts: &[Contact],
    evidence: &[Evidence],
    duplicates: Duplicates,
    together: Together,
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
    let index: HashMap<ContactId, usize> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    // The first live contact holding each value.
    let mut first_with: HashMap<Identifier, usize> = HashMap::new();
    for i in (0..contacts.len()).filter(|&i| !erased[i]) {
        if together == Together::Today {
            // Through the primary even when it is erased: customers are never split.
            if let Some(&primary) = index.get(&contacts[i].primary_id()) {
                sets.union(i, primary);
            }
        }
        let (email, phone) = &values[i];
        let held = [
            email.clone().map(Identifier::Email),
            phone.clone().map(Identifier::Phone),
        ];
        for value in held.into_iter().flatten() {
            let other = *first_with.entry(value).or_insert(i);
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
                let email = first_with.get(&Identifier::Email(email.clone()));
                let phone = first_with.get(&Identifier::Phone(phone.clone()));
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

//! A whole batch of imported records decided at once, in memory: the same rules as one
//! request at a time ([`crate::reconcile_record`], rules 1 to 6), applied record after
//! record to a model of the customers the batch touches (with rule 6's priority,
//! [`crate::reconcile_with_priority`]), so that a store can read those
//! customers in one statement and write the outcome in bulk.
//!
//! The store hands over every live contact of every customer that any record's email or
//! phone matches (the batch can reach no other: a merge joins customers that a record
//! matches, and each is read whole), and the ids the batch's new contacts are to take, in
//! order. What comes back is each record's plan as it would have been decided alone
//! against the store as the records before it left it, plus the net writes: contacts to
//! insert and existing contacts to re-link (in their final state), absorbed customers and
//! the customer they ended up in, and the requests to keep as evidence.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::contact::Identifier;
use crate::contact::{Contact, ContactId, Email, Identifiers, Link, PhoneNumber};
use crate::customer::InconsistentGraph;
use crate::identifiers::IdentifierPriority;
use crate::reconcile::{reconcile_with_priority, CustomerLimits, LinkTo, Plan};

/// Why a batch could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Inconsistent(#[from] InconsistentGraph),
    #[error("the store gave fewer ids than the batch creates contacts")]
    OutOfIds,
}

/// One record of a batch: its identifiers, and when it was first seen (`None`: now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub identifiers: Identifiers,
    pub seen_at: Option<DateTime<Utc>>,
}

/// One record's decision, as [`reconcile_record`] made it in its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub plan: Plan,
    /// The contact the plan inserts: its id and creation time.
    pub inserted: Option<(ContactId, DateTime<Utc>)>,
    /// The contacts the plan was decided on (empty when the plan writes nothing).
    pub current: Vec<Contact>,
    /// Rule 6's priority: the identifier left out because storing the whole record would
    /// have grown a customer past the merge guard.
    pub dropped: Option<Identifier>,
}

/// What a batch writes, net of what its records undid of each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchDecision {
    /// Every record's decision, in order.
    pub decided: Vec<Decided>,
    /// The contacts to create, as they stand after the whole batch, by id.
    pub inserts: Vec<Contact>,
    /// The contacts that existed before the batch and that it re-linked, as they stand
    /// after it, by id.
    pub relinked: Vec<Contact>,
    /// Each customer (by its primary before the batch or when the batch created it) that
    /// the batch absorbed into another, and the customer it belongs to after the batch:
    /// its pending change events follow it there.
    pub absorbed: Vec<(ContactId, ContactId)>,
    /// Requests that joined customers without creating a contact, in order.
    pub evidence: Vec<(Email, PhoneNumber)>,
}

/// Decides `records` in order against `known` (every live contact of every customer the
/// records' values match), each by [`reconcile_with_priority`] (the merge guard leaving out
/// a record's lowest-priority identifier rather than the whole record), giving new contacts
/// the ids of `ids` in order and, to undated records, the time `now`.
///
/// # Errors
/// When `known` is not a graph the rules apply to (a secondary without its primary), or
/// `ids` runs out.
pub fn decide_batch(
    records: &[BatchRecord],
    known: Vec<Contact>,
    ids: &mut dyn Iterator<Item = ContactId>,
    now: DateTime<Utc>,
    limits: &CustomerLimits,
    priority: IdentifierPriority,
) -> Result<BatchDecision, BatchError> {
    let mut model = Model::new(known)?;
    let existing: BTreeSet<ContactId> = model.contacts.keys().copied().collect();
    let mut decision = BatchDecision {
        decided: Vec::with_capacity(records.len()),
        ..BatchDecision::default()
    };
    let mut inserted_ids = Vec::new();
    let mut relinked = BTreeSet::new();
    let mut absorbed = Vec::new();
    for record in records {
        let current = model.customers_matching(&record.identifiers);
        let (plan, dropped) = reconcile_with_priority(
            &record.identifiers,
            record.seen_at,
            &current,
            limits,
            priority,
        )?;
        let inserted = match &plan.insert {
            Some(new) => {
                let id = ids.next().ok_or(BatchError::OutOfIds)?;
                let at = new.created_at.unwrap_or(now);
                model.add(Contact {
                    id,
                    email: new.email.clone(),
                    phone: new.phone.clone(),
                    link: new.link,
                    created_at: at,
                });
                inserted_ids.push(id);
                Some((id, at))
            }
            None => None,
        };
        if let Some(relink) = &plan.relink {
            let to = match (relink.to, inserted) {
                (LinkTo::Existing(id), _) => id,
                (LinkTo::Inserted, Some((id, _))) => id,
                (LinkTo::Inserted, None) => return Err(InconsistentGraph::NoPrimary.into()),
            };
            for id in &relink.contacts {
                if model.contacts.get(id).is_some_and(Contact::is_primary) {
                    absorbed.push(*id);
                }
                if existing.contains(id) {
                    relinked.insert(*id);
                }
            }
            model.relink(&relink.contacts, to);
            // Evidence of a request that brought both values (none was dropped).
            if plan.insert.is_none() && dropped.is_none() {
                if let (Some(email), Some(phone)) =
                    (record.identifiers.email(), record.identifiers.phone())
                {
                    decision.evidence.push((email.clone(), phone.clone()));
                }
            }
        }
        let current = if plan.is_empty() { Vec::new() } else { current };
        decision.decided.push(Decided {
            plan,
            inserted,
            current,
            dropped,
        });
    }
    decision.inserts = inserted_ids
        .iter()
        .filter_map(|id| model.contacts.get(id).cloned())
        .collect();
    decision.relinked = relinked
        .iter()
        .filter_map(|id| model.contacts.get(id).cloned())
        .collect();
    decision.absorbed = absorbed
        .into_iter()
        .filter_map(|id| model.contacts.get(&id).map(|c| (id, c.primary_id())))
        .collect();
    Ok(decision)
}

/// The customers a batch touches, as they stand after the records decided so far.
struct Model {
    contacts: HashMap<ContactId, Contact>,
    by_email: HashMap<Email, Vec<ContactId>>,
    by_phone: HashMap<PhoneNumber, Vec<ContactId>>,
    /// Each primary's contacts, itself included.
    members: HashMap<ContactId, Vec<ContactId>>,
}

impl Model {
    fn new(known: Vec<Contact>) -> Result<Self, InconsistentGraph> {
        let mut model = Self {
            contacts: HashMap::with_capacity(known.len()),
            by_email: HashMap::new(),
            by_phone: HashMap::new(),
            members: HashMap::new(),
        };
        for contact in known {
            model.add(contact);
        }
        // Every secondary's primary must be among them.
        for contact in model.contacts.values() {
            let primary = contact.primary_id();
            if !model
                .contacts
                .get(&primary)
                .is_some_and(Contact::is_primary)
            {
                return Err(InconsistentGraph::DanglingLink {
                    contact: contact.id,
                    primary,
                });
            }
        }
        Ok(model)
    }

    fn add(&mut self, contact: Contact) {
        let id = contact.id;
        if let Some(email) = &contact.email {
            self.by_email.entry(email.clone()).or_default().push(id);
        }
        if let Some(phone) = &contact.phone {
            self.by_phone.entry(phone.clone()).or_default().push(id);
        }
        self.members
            .entry(contact.primary_id())
            .or_default()
            .push(id);
        self.contacts.insert(id, contact);
    }

    /// Every contact of every customer that holds the email or the phone of `request`.
    fn customers_matching(&self, request: &Identifiers) -> Vec<Contact> {
        let holders = request
            .email()
            .and_then(|e| self.by_email.get(e))
            .into_iter()
            .chain(request.phone().and_then(|p| self.by_phone.get(p)))
            .flatten();
        let primaries: BTreeSet<ContactId> = holders
            .filter_map(|id| self.contacts.get(id))
            .map(Contact::primary_id)
            .collect();
        primaries
            .iter()
            .filter_map(|primary| self.members.get(primary))
            .flatten()
            .filter_map(|id| self.contacts.get(id).cloned())
            .collect()
    }

    /// Links `contacts` (whole customers) straight to primary `to`.
    fn relink(&mut self, contacts: &[ContactId], to: ContactId) {
        for id in contacts {
            let Some(contact) = self.contacts.get_mut(id) else {
                continue;
            };
            if contact.is_primary() {
                if let Some(members) = self.members.remove(id) {
                    self.members.entry(to).or_default().extend(members);
                }
            }
            contact.link = Link::Secondary(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::tests::{contact, id};
    use crate::reconcile::customers_touched;
    use crate::reconcile::tests::request;
    use chrono::TimeZone;

    fn at(minute: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(2023, 4, 1, 0, minute, 0).single()
    }

    fn record(email: Option<&str>, phone: Option<&str>, minute: u32) -> BatchRecord {
        BatchRecord {
            identifiers: request(email, phone),
            seen_at: at(minute),
        }
    }

    fn decide(records: &[BatchRecord], known: Vec<Contact>) -> BatchDecision {
        let mut ids = (100..).filter_map(ContactId::new);
        let now = at(59).expect("a time");
        decide_batch(
            records,
            known,
            &mut ids,
            now,
            &CustomerLimits::UNLIMITED,
            IdentifierPriority::EmailFirst,
        )
        .expect("decided")
    }

    /// Asserts that each record's plan in `decision` is the plan it gets alone from
    /// [`reconcile_record`], against `known` as the records before it changed it; and that
    /// the net writes leave the store as those plans, one after the other, leave it.
    fn assert_each_as_alone(
        records: &[BatchRecord],
        known: Vec<Contact>,
        decision: &BatchDecision,
        limits: &CustomerLimits,
        priority: IdentifierPriority,
    ) {
        let mut store = known.clone();
        for (i, record) in records.iter().enumerate() {
            let current = customers_touched(&store, &record.identifiers);
            let (alone, dropped) = reconcile_with_priority(
                &record.identifiers,
                record.seen_at,
                &current,
                limits,
                priority,
            )
            .expect("plan");
            assert_eq!(decision.decided[i].dropped, dropped, "record {i}");
            assert_eq!(decision.decided[i].plan, alone, "record {i}");
            store = alone.applied_to(store, decision.decided[i].inserted);
        }
        let mut netted: Vec<Contact> = known
            .into_iter()
            .map(|c| {
                decision
                    .relinked
                    .iter()
                    .find(|r| r.id == c.id)
                    .cloned()
                    .unwrap_or(c)
            })
            .chain(decision.inserts.iter().cloned())
            .collect();
        netted.sort_by_key(|c| c.id);
        store.sort_by_key(|c| c.id);
        assert_eq!(netted, store, "net writes");
    }

    /// Many small random batches over a few values, so that records merge, repeat and
    /// bring older dates often; some under a tight merge guard.
    #[test]
    fn random_batches_decide_as_record_by_record() {
        let mut seed = 0x2400_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for round in 0..200 {
            let priority = if round % 4 < 2 {
                IdentifierPriority::EmailFirst
            } else {
                IdentifierPriority::PhoneFirst
            };
            let limits = if round % 3 == 0 {
                CustomerLimits {
                    max_contacts: 4,
                    max_emails: 3,
                    max_phones: 3,
                }
            } else {
                CustomerLimits::UNLIMITED
            };
            let records: Vec<BatchRecord> = (0..30)
                .map(|_| {
                    let email = format!("e{}@x.io", next(8));
                    let phone = format!("{}", 100 + next(8));
                    let (email, phone) = match next(4) {
                        0 => (Some(email.as_str()), None),
                        1 => (None, Some(phone.as_str())),
                        _ => (Some(email.as_str()), Some(phone.as_str())),
                    };
                    let seen_at = match next(5) {
                        0 => None,
                        _ => at(u32::try_from(next(59)).unwrap_or(0)),
                    };
                    BatchRecord {
                        identifiers: request(email, phone),
                        seen_at,
                    }
                })
                .collect();
            // Half of the rounds start from what the first half of the batch left.
            let (known, records) = if round % 2 == 0 {
                let (first, rest) = records.split_at(15);
                let mut ids = (1000..).filter_map(ContactId::new);
                let start =
                    decide_batch(first, Vec::new(), &mut ids, Utc::now(), &limits, priority)
                        .expect("decided");
                (start.inserts, rest.to_vec())
            } else {
                (Vec::new(), records)
            };
            let mut ids = (100..).filter_map(ContactId::new);
            let now = at(59).expect("a time");
            let decision = decide_batch(&records, known.clone(), &mut ids, now, &limits, priority)
                .expect("decided");
            assert_each_as_alone(&records, known, &decision, &limits, priority);
        }
    }

    /// The batch's plans are the plans each record gets alone, against the store as the
    /// records before it left it.
    #[test]
    fn each_record_is_decided_as_if_it_came_alone_in_its_turn() {
        let known = vec![
            contact(1, Some("george@x.io"), Some("919191"), None, 0),
            contact(2, Some("biff@x.io"), Some("717171"), None, 1),
        ];
        let records = [
            record(Some("lorraine@x.io"), Some("123456"), 10),
            record(Some("mcfly@x.io"), Some("123456"), 11),
            record(Some("george@x.io"), Some("717171"), 12),
            record(Some("george@x.io"), Some("717171"), 13),
        ];
        let decision = decide(&records, known.clone());
        assert_each_as_alone(
            &records,
            known,
            &decision,
            &CustomerLimits::UNLIMITED,
            IdentifierPriority::EmailFirst,
        );
        // Net writes: two contacts created (lorraine a primary, mcfly her secondary), biff
        // re-linked to george once, one request kept as evidence.
        assert_eq!(decision.inserts.len(), 2);
        assert_eq!(decision.inserts[0].link, Link::Primary);
        assert_eq!(decision.inserts[1].link, Link::Secondary(id(100)));
        assert_eq!(decision.relinked.len(), 1);
        assert_eq!(decision.relinked[0].link, Link::Secondary(id(1)));
        assert_eq!(decision.absorbed, vec![(id(2), id(1))]);
        assert_eq!(decision.evidence.len(), 1);
        assert!(
            decision.decided[3].plan.is_empty(),
            "the repeat writes nothing"
        );
    }

    #[test]
    fn a_customer_created_and_absorbed_in_one_batch_is_written_in_its_final_state() {
        let records = [
            record(Some("a@x.io"), Some("1"), 20),
            record(Some("b@x.io"), Some("2"), 10),
            // Joins the two: b's customer is older, so a's is absorbed.
            record(Some("a@x.io"), Some("2"), 30),
            // Older than both, with something new: becomes everyone's primary (rule 5).
            record(Some("c@x.io"), Some("1"), 5),
        ];
        let decision = decide(&records, Vec::new());
        let ids: Vec<i64> = decision.inserts.iter().map(|c| c.id.get()).collect();
        assert_eq!(ids, vec![100, 101, 102]);
        assert_eq!(decision.inserts[2].link, Link::Primary);
        assert!(decision.inserts[..2]
            .iter()
            .all(|c| c.link == Link::Secondary(id(102))));
        assert!(
            decision.relinked.is_empty(),
            "nothing existed before the batch"
        );
        assert_eq!(
            decision.absorbed,
            vec![(id(100), id(102)), (id(101), id(102))]
        );
        assert_eq!(decision.evidence.len(), 1);
    }

    #[test]
    fn the_merge_guard_leaves_out_the_lowest_priority_identifier_within_a_batch() {
        let limits = CustomerLimits {
            max_contacts: 2,
            max_emails: 10,
            max_phones: 10,
        };
        let records = [
            record(Some("a@x.io"), Some("1"), 1),
            record(Some("b@x.io"), Some("1"), 2),
            record(Some("c@x.io"), Some("1"), 3),
        ];
        let decide = |priority| {
            decide_batch(
                &records,
                Vec::new(),
                &mut (100..).filter_map(ContactId::new),
                at(59).expect("a time"),
                &limits,
                priority,
            )
            .expect("decided")
        };
        let decision = decide(IdentifierPriority::EmailFirst);
        // The third order would give the phone's customer three contacts: its phone is left
        // out, and its email becomes a customer of its own.
        assert_eq!(decision.inserts.len(), 3);
        let third = &decision.decided[2];
        assert_eq!(
            third.dropped,
            Some(Identifier::Phone(PhoneNumber::from_stored("1".to_owned())))
        );
        assert_eq!(
            third.plan.insert.as_ref().map(|c| c.link),
            Some(Link::Primary)
        );
        assert_eq!(decision.inserts[2].phone, None);
        // Phone first: the email is left out, and the phone alone brings nothing new.
        let decision = decide(IdentifierPriority::PhoneFirst);
        assert_eq!(decision.inserts.len(), 2);
        assert_eq!(
            decision.decided[2].dropped,
            Some(Identifier::Email(Email::from_stored("c@x.io".to_owned())))
        );
        assert_eq!(decision.decided[2].plan, Plan::default());
    }

    #[test]
    fn a_secondary_without_its_primary_is_reported() {
        let known = vec![contact(2, Some("a@x.io"), None, Some(1), 0)];
        let mut ids = (100..).filter_map(ContactId::new);
        assert_eq!(
            decide_batch(
                &[record(Some("a@x.io"), None, 1)],
                known,
                &mut ids,
                Utc::now(),
                &CustomerLimits::UNLIMITED,
                IdentifierPriority::EmailFirst,
            ),
            Err(BatchError::Inconsistent(InconsistentGraph::DanglingLink {
                contact: id(2),
                primary: id(1)
            }))
        );
    }

    #[test]
    fn undated_records_take_the_batch_time() {
        let records = [BatchRecord {
            identifiers: request(Some("a@x.io"), None),
            seen_at: None,
        }];
        let decision = decide(&records, Vec::new());
        assert_eq!(Some(decision.inserts[0].created_at), at(59));
    }
}

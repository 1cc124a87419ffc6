//! Why are these two contacts one customer? The shortest chain of evidence that joins them:
//! contact → a shared email or phone, a stored request that brought an email of one and a
//! phone of another, or a link a person made by hand → contact → … Support's most frequent
//! question, answered from the same evidence the linking rules used.

use std::collections::{HashMap, VecDeque};

use crate::cluster::{Evidence, Joins};
use crate::contact::{Contact, ContactId, Email, PhoneNumber};

/// One step of a chain: contacts, and what joins each to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Contact(ContactId),
    /// The two contacts around it hold this email.
    SharedEmail(Email),
    /// The two contacts around it hold this phone number.
    SharedPhone(PhoneNumber),
    /// A request brought this email (held by the contact before) and this phone (held by
    /// the contact after), or the other way round, and joined their customers (rule 4).
    Request {
        email: Email,
        phone: PhoneNumber,
    },
    /// A person joined the two contacts around it by hand: "joined by hand by
    /// `created_by`: `reason`".
    Manual {
        link_id: i64,
        created_by: String,
        reason: String,
    },
}

/// The shortest chain from `from` to `to` among `customer` (every live contact of one
/// customer) and `evidence` (the requests stored for its identifiers), starting and ending
/// with a contact. `None` when either is not among the contacts, or nothing joins them.
pub fn why(
    customer: &[Contact],
    evidence: &[Evidence],
    from: ContactId,
    to: ContactId,
) -> Option<Vec<Step>> {
    let index: HashMap<ContactId, usize> = customer
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let (&start, &goal) = (index.get(&from)?, index.get(&to)?);
    let mut by_email: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_phone: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, contact) in customer.iter().enumerate() {
        if let Some(email) = &contact.email {
            by_email.entry(email.as_str()).or_default().push(i);
        }
        if let Some(phone) = &contact.phone {
            by_phone.entry(phone.as_str()).or_default().push(i);
        }
    }
    // Breadth first, contacts in id order: the chain found is a shortest one, and the same
    // one every time.
    let mut came_from: HashMap<usize, (usize, Step)> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut seen = vec![false; customer.len()];
    seen[start] = true;
    while let Some(at) = queue.pop_front() {
        if at == goal {
            break;
        }
        let contact = &customer[at];
        let mut next: Vec<(usize, Step)> = Vec::new();
        if let Some(email) = &contact.email {
            for &j in &by_email[email.as_str()] {
                next.push((j, Step::SharedEmail(email.clone())));
            }
        }
        if let Some(phone) = &contact.phone {
            for &j in &by_phone[phone.as_str()] {
                next.push((j, Step::SharedPhone(phone.clone())));
            }
        }
        for joined in evidence {
            match &joined.joins {
                Joins::Request { email, phone } => {
                    let step = || Step::Request {
                        email: email.clone(),
                        phone: phone.clone(),
                    };
                    if contact.email.as_ref() == Some(email) {
                        for &j in by_phone.get(phone.as_str()).into_iter().flatten() {
                            next.push((j, step()));
                        }
                    }
                    if contact.phone.as_ref() == Some(phone) {
                        for &j in by_email.get(email.as_str()).into_iter().flatten() {
                            next.push((j, step()));
                        }
                    }
                }
                Joins::Manual(link) => {
                    let other = match link.contacts {
                        [a, b] if a == contact.id => Some(b),
                        [a, b] if b == contact.id => Some(a),
                        _ => None,
                    };
                    if let Some(&j) = other.and_then(|other| index.get(&other)) {
                        next.push((
                            j,
                            Step::Manual {
                                link_id: joined.id,
                                created_by: link.created_by.clone(),
                                reason: link.reason.clone(),
                            },
                        ));
                    }
                }
            }
        }
        next.sort_by_key(|(j, _)| customer[*j].id);
        for (j, step) in next {
            if !seen[j] {
                seen[j] = true;
                came_from.insert(j, (at, step));
                queue.push_back(j);
            }
        }
    }
    if !seen[goal] {
        return None;
    }
    let mut chain = vec![Step::Contact(customer[goal].id)];
    let mut at = goal;
    while let Some((previous, step)) = came_from.remove(&at) {
        chain.push(step);
        chain.push(Step::Contact(customer[previous].id));
        at = previous;
    }
    chain.reverse();
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::tests::{george_merged_with_biffsucks, george_with_biffsucks_phone, id};

    fn george_and_biffsucks() -> (Vec<Contact>, Vec<Evidence>) {
        (
            george_merged_with_biffsucks(),
            vec![george_with_biffsucks_phone(1)],
        )
    }

    #[test]
    fn the_chain_names_the_request_that_joined_two_customers() {
        let (customer, evidence) = george_and_biffsucks();
        let chain = why(&customer, &evidence, id(3), id(1)).expect("one customer");
        assert_eq!(
            chain,
            vec![
                Step::Contact(id(3)),
                Step::Request {
                    email: Email::from_stored("george@hillvalley.edu".to_owned()),
                    phone: PhoneNumber::from_stored("717171".to_owned()),
                },
                Step::Contact(id(1)),
            ]
        );
        let shared = why(&customer, &evidence, id(2), id(3)).expect("one customer");
        assert_eq!(
            shared,
            vec![
                Step::Contact(id(2)),
                Step::SharedPhone(PhoneNumber::from_stored("717171".to_owned())),
                Step::Contact(id(3)),
            ]
        );
        assert_eq!(
            why(&customer, &evidence, id(1), id(1)),
            Some(vec![Step::Contact(id(1))])
        );
    }

    #[test]
    fn the_chain_names_a_link_made_by_hand() {
        let (customer, _) = george_and_biffsucks();
        let link = crate::links::StoredLink {
            id: 4,
            link: crate::cluster::ManualLink {
                contacts: [id(1), id(3)],
                reason: "same person, says support".to_owned(),
                created_by: "support".to_owned(),
            },
            created_at: customer[0].created_at,
        };
        let chain = why(&customer, &[link.as_evidence()], id(3), id(1)).expect("one customer");
        assert_eq!(
            chain,
            vec![
                Step::Contact(id(3)),
                Step::Manual {
                    link_id: 4,
                    created_by: "support".to_owned(),
                    reason: "same person, says support".to_owned(),
                },
                Step::Contact(id(1)),
            ]
        );
    }

    #[test]
    fn contacts_that_nothing_joins_have_no_chain() {
        let (customer, _) = george_and_biffsucks();
        assert_eq!(
            why(&customer, &[], id(3), id(1)),
            None,
            "without the request"
        );
        assert_eq!(
            why(&customer, &[], id(3), id(9)),
            None,
            "not in the customer"
        );
    }
}

//! The `/identify` use case: applies the rules of [`crate::reconcile`] through the port.

use std::sync::Arc;

use thiserror::Error;

use crate::cluster::{plan_erasure, Evidence, ManualLink, Rewrite};
use crate::contact::{Contact, ContactId, Identifier, Identifiers, InvalidRequest};
use crate::customer::{Customer, InconsistentGraph};
use crate::history::HistoryEntry;
use crate::identifiers::{Admitted, IdentifierPriority, Ignored};
use crate::links::{check_link, plan_relink, LinkRefused, StoredLink};
use crate::reconcile::{reconcile, CustomerLimits, Outcome, Refusal};
use crate::repository::{ContactRepository, LinkPlanner, RepositoryError};
use crate::unlink::{customers_after, plan_unlink, NewUnlinkRule, UnlinkRule};

/// Why a use case failed.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// Every value of the request is blocked or unlinked.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    Inconsistent(#[from] InconsistentGraph),
    /// An erasure named a customer by a contact that does not (or no longer) lead it: it was
    /// merged into the customer of `primary` (perhaps while the erasure ran).
    #[error("contact {contact} does not lead a customer: it belongs to the customer whose primary contact is {primary}")]
    NotPrimary {
        contact: ContactId,
        primary: ContactId,
    },
    /// An unlink rule for this value exists already.
    #[error("a rule already unlinks this {field}")]
    RuleExists { field: &'static str },
    /// A manual link that cannot be made.
    #[error(transparent)]
    LinkRefused(#[from] LinkRefused),
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// The customer the request belongs to.
    pub customer: Customer,
    /// Set when the merge guard refused to grow a customer (nothing was written).
    pub refused: Option<Refusal>,
    /// Values of the request that were set aside: blocked placeholders, unlinked values.
    pub ignored: Vec<Ignored>,
}

/// A customer's graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// Every live contact, oldest (the primary) first.
    pub contacts: Vec<Contact>,
    /// The requests that joined parts of it without creating a contact.
    pub evidence: Vec<Evidence>,
}

/// What making an unlink rule did (or would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlinked {
    /// The rule; `None` for a preview.
    pub rule: Option<UnlinkRule>,
    /// The customers the contacts that held the value form now, by primary id.
    pub customers: Vec<Customer>,
    /// The contacts erased: left with no value, or with an older contact's values.
    pub erased: Vec<ContactId>,
}

/// What making, previewing or deleting a manual link did (or would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The link; for a preview, as it would be stored (id 0).
    pub link: StoredLink,
    /// The customers the contacts of the customers concerned form now, by primary id: one
    /// after a link is made; after one is deleted, two, or one when other evidence still
    /// holds them together.
    pub customers: Vec<Customer>,
}

/// Identifies customers.
#[derive(Clone)]
pub struct IdentityService {
    repository: Arc<dyn ContactRepository>,
    limits: CustomerLimits,
    priority: IdentifierPriority,
}

impl IdentityService {
    pub fn new(repository: Arc<dyn ContactRepository>, limits: CustomerLimits) -> Self {
        Self {
            repository,
            limits,
            priority: IdentifierPriority::default(),
        }
    }

    /// This service, dropping identifiers in the merge guard's way in this order.
    #[must_use]
    pub fn with_priority(self, priority: IdentifierPriority) -> Self {
        Self { priority, ..self }
    }

    /// Finds (creating or merging as the rules say) the customer that the `admitted`
    /// request belongs to. `cause` (`request:<request id>`) is recorded in the history of
    /// whatever is written.
    ///
    /// A request that brings nothing new is answered from one lock-free read. Anything else
    /// goes through [`ContactRepository::apply_atomically`], which decides again on guarded
    /// data, so a decision is never applied to contacts that changed meanwhile, and which
    /// checks the unlink rules under its guard: values a rule names are set aside and the
    /// request is run again without them. (A request answered from the read needs no
    /// check: no contact holds an unlinked value, so a request that brings one always has
    /// something to write, or is refused by the merge guard, and goes the guarded way.)
    ///
    /// When the merge guard refuses to store the whole request (rule 6), its
    /// lowest-priority identifier is dropped and the rest is run again, so the order still
    /// lands on a customer; what was dropped is in `ignored`. A request of one identifier
    /// never grows a customer past a limit (it is new, or it brings nothing new).
    ///
    /// # Errors
    /// See [`ServiceError`]; [`ServiceError::Invalid`] when every value is unlinked.
    pub fn identify(
        &self,
        mut admitted: Admitted,
        cause: &str,
    ) -> Result<Identified, ServiceError> {
        let mut first_refusal = None;
        loop {
            match self.identify_admitted(&admitted.identifiers, cause) {
                Err(ServiceError::Repository(RepositoryError::Unlinked(values))) => {
                    let before = admitted.ignored.len();
                    admitted = admitted.set_aside(&values)?;
                    if admitted.ignored.len() == before {
                        // A store that names values the request does not hold: running
                        // again would loop.
                        return Err(RepositoryError::Internal(
                            "the store named unlinked values the request does not hold".into(),
                        )
                        .into());
                    }
                }
                Err(other) => return Err(other),
                Ok((customer, Some(refusal))) => {
                    first_refusal = first_refusal.or(Some(refusal));
                    if let Some(fewer) = admitted.without_lowest(self.priority) {
                        admitted = fewer;
                        continue;
                    }
                    let mut ignored = admitted.ignored;
                    ignored.extend(Ignored::refused_by_merge_guard(
                        &admitted.identifiers,
                        &customer,
                    ));
                    return Ok(Identified {
                        customer,
                        refused: first_refusal,
                        ignored,
                    });
                }
                Ok((customer, None)) => {
                    return Ok(Identified {
                        customer,
                        refused: first_refusal,
                        ignored: admitted.ignored,
                    });
                }
            }
        }
    }

    fn identify_admitted(
        &self,
        request: &Identifiers,
        cause: &str,
    ) -> Result<(Customer, Option<Refusal>), ServiceError> {
        let known = self.repository.find_customers(request)?;
        if let Ok(plan) = reconcile(request, &known, &self.limits) {
            // A refusal goes the guarded way: the value it refused may be unlinked (then
            // the request, without it, is no refusal at all).
            if plan.is_empty() && plan.refused.is_none() && !known.is_empty() {
                return Ok((Customer::for_request(&known, request)?, None));
            }
        }
        let applied = self.repository.apply_atomically(
            request,
            &|current: &[Contact]| reconcile(request, current, &self.limits),
            cause,
        )?;
        let refused = match applied.plan.outcome() {
            Outcome::Refused(refusal) => Some(refusal),
            Outcome::Unchanged | Outcome::Written { .. } => None,
        };
        Ok((Customer::for_request(&applied.contacts, request)?, refused))
    }
}

impl IdentityService {
    /// The customer that contact `id` (primary or secondary) belongs to, without writing.
    /// `None` when there is no live contact `id`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn customer_of(&self, id: ContactId) -> Result<Option<Customer>, ServiceError> {
        let contacts = self.repository.find_customer_of(id)?;
        if contacts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Customer::from_contacts(&contacts)?))
    }
}

impl IdentityService {
    /// The history of the customer of contact `id`, oldest first; `None` for no live contact.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn history(&self, id: ContactId) -> Result<Option<Vec<HistoryEntry>>, ServiceError> {
        Ok(self.repository.find_history(id)?)
    }

    /// Why `from` and `to` are one customer: the shortest chain of evidence that joins them
    /// ([`crate::why`]). `None` when they are not one customer (or either is not a live
    /// contact).
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn why(
        &self,
        from: ContactId,
        to: ContactId,
    ) -> Result<Option<Vec<crate::why::Step>>, ServiceError> {
        let customer = self.repository.find_customer_of(from)?;
        if !customer.iter().any(|c| c.id == to) {
            return Ok(None);
        }
        let evidence = self.repository.find_evidence(&customer)?;
        Ok(crate::why::why(&customer, &evidence, from, to))
    }

    /// Erases contact `id` (privacy request): its values are blanked and its row deleted;
    /// what remains of its customer is re-clustered ([`plan_erasure`]). `None` when there
    /// is no live contact `id`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn erase_contact(
        &self,
        id: ContactId,
        cause: &str,
    ) -> Result<Option<Rewrite>, ServiceError> {
        let rewriter = |contacts: &[Contact], evidence: &[Evidence]| {
            plan_erasure(contacts, evidence, |c| c.id == id)
        };
        Ok(self.repository.rewrite_customer_of(id, &rewriter, cause)?)
    }

    /// Erases every contact of the customer whose primary is `primary`. `None` when there
    /// is no live contact `primary`.
    ///
    /// A customer is named by its primary so that a privacy request erases exactly the
    /// person it was made for. If `primary` does not lead its customer (it never did, or a
    /// merge demoted it, even while this ran), nothing is erased and the error names the
    /// customer it belongs to now: whoever made the request decides whether that is the
    /// customer to erase.
    ///
    /// # Errors
    /// [`ServiceError::NotPrimary`] as above; otherwise see [`ServiceError`].
    pub fn erase_customer(
        &self,
        primary: ContactId,
        cause: &str,
    ) -> Result<Option<Rewrite>, ServiceError> {
        // What the guarded read found leading the customer, when it was not `primary`.
        let led_by = std::sync::Mutex::new(None);
        let rewriter = |contacts: &[Contact], evidence: &[Evidence]| {
            let leads = contacts.iter().any(|c| c.id == primary && c.is_primary());
            if leads {
                return plan_erasure(contacts, evidence, |_| true);
            }
            if let (Some(lead), Ok(mut led_by)) =
                (contacts.iter().find(|c| c.is_primary()), led_by.lock())
            {
                *led_by = Some(lead.id);
            }
            Rewrite::default()
        };
        let rewrite = self
            .repository
            .rewrite_customer_of(primary, &rewriter, cause)?;
        let moved = led_by.lock().ok().and_then(|led_by| *led_by);
        match (rewrite, moved) {
            (Some(_), Some(now)) => Err(ServiceError::NotPrimary {
                contact: primary,
                primary: now,
            }),
            (rewrite, _) => Ok(rewrite),
        }
    }
}

impl IdentityService {
    /// Every customer that holds the email or the phone of `identifiers`, by primary id;
    /// writes nothing.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn search(&self, identifiers: &Identifiers) -> Result<Vec<Customer>, ServiceError> {
        Ok(Customer::all_in(
            self.repository.find_customers(identifiers)?,
        )?)
    }

    /// Every live contact of the customer of contact `id`, and the evidence stored for
    /// their values: the customer's graph. `None` when there is no live contact `id`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn graph(&self, id: ContactId) -> Result<Option<Graph>, ServiceError> {
        let mut contacts = self.repository.find_customer_of(id)?;
        if contacts.is_empty() {
            return Ok(None);
        }
        contacts.sort_by_key(Contact::age_key);
        let evidence = self.repository.find_evidence(&contacts)?;
        Ok(Some(Graph { contacts, evidence }))
    }

    /// What making an unlink rule for `value` would do now, without doing it.
    ///
    /// # Errors
    /// [`ServiceError::RuleExists`] when a rule for the value exists; otherwise see
    /// [`ServiceError`].
    pub fn preview_unlink(&self, value: &Identifier) -> Result<Unlinked, ServiceError> {
        let rules = self.repository.find_unlink_rules()?;
        if rules.iter().any(|rule| &rule.identifier == value) {
            return Err(ServiceError::RuleExists {
                field: value.field(),
            });
        }
        let contacts = self.repository.find_customers(&value.as_identifiers())?;
        let evidence = self.repository.find_evidence(&contacts)?;
        let rewrite = plan_unlink(&contacts, &evidence, value);
        let (customers, erased) = customers_after(&contacts, &rewrite)?;
        Ok(Unlinked {
            rule: None,
            customers,
            erased,
        })
    }

    /// Makes an unlink rule and applies it ([`crate::unlink`]).
    ///
    /// # Errors
    /// [`ServiceError::RuleExists`] when a rule for the value exists; otherwise see
    /// [`ServiceError`].
    pub fn unlink(&self, rule: &NewUnlinkRule) -> Result<Unlinked, ServiceError> {
        let value = &rule.identifier;
        let rewriter =
            |contacts: &[Contact], evidence: &[Evidence]| plan_unlink(contacts, evidence, value);
        let applied = self.repository.create_unlink_rule(rule, &rewriter)?.ok_or(
            ServiceError::RuleExists {
                field: value.field(),
            },
        )?;
        let (customers, erased) = customers_after(&applied.before, &applied.rewrite)?;
        Ok(Unlinked {
            rule: Some(applied.rule),
            customers,
            erased,
        })
    }

    /// Every unlink rule, oldest first.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn unlink_rules(&self) -> Result<Vec<UnlinkRule>, ServiceError> {
        Ok(self.repository.find_unlink_rules()?)
    }

    /// What making `link` would do now, without doing it.
    ///
    /// # Errors
    /// [`ServiceError::LinkRefused`] as making it would; otherwise see [`ServiceError`].
    pub fn preview_link(&self, link: &ManualLink) -> Result<Linked, ServiceError> {
        let mut contacts = self.repository.find_customer_of(link.contacts[0])?;
        if !contacts.iter().any(|c| c.id == link.contacts[1]) {
            contacts.extend(self.repository.find_customer_of(link.contacts[1])?);
        }
        check_link(&contacts, link, &self.limits)?;
        let would_be = StoredLink {
            id: 0,
            link: link.clone(),
            created_at: chrono::Utc::now(),
        };
        let mut evidence = self.repository.find_evidence(&contacts)?;
        evidence.push(would_be.as_evidence());
        let (customers, _) = customers_after(&contacts, &plan_relink(&contacts, &evidence))?;
        Ok(Linked {
            link: would_be,
            customers,
        })
    }

    /// Joins the customers of the link's two contacts by hand, as a request that brought
    /// both would (the older primary leads), within the merge guard.
    ///
    /// # Errors
    /// [`ServiceError::LinkRefused`]: the same contact twice, an unknown contact, contacts
    /// of one customer already, or a customer past the merge guard; otherwise see
    /// [`ServiceError`].
    pub fn link(&self, link: &ManualLink) -> Result<Linked, ServiceError> {
        struct Planner<'a>(&'a CustomerLimits);
        impl LinkPlanner for Planner<'_> {
            fn check(&self, contacts: &[Contact], link: &ManualLink) -> Result<(), LinkRefused> {
                check_link(contacts, link, self.0)
            }
            fn plan(&self, contacts: &[Contact], evidence: &[Evidence]) -> Rewrite {
                plan_relink(contacts, evidence)
            }
        }
        let applied = self
            .repository
            .create_link(link, &Planner(&self.limits))
            .map_err(|e| match e {
                RepositoryError::LinkRefused(refused) => ServiceError::LinkRefused(refused),
                other => other.into(),
            })?;
        let (customers, _) = customers_after(&applied.before, &applied.rewrite)?;
        Ok(Linked {
            link: applied.link,
            customers,
        })
    }

    /// Every manual link, oldest first.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn links(&self) -> Result<Vec<StoredLink>, ServiceError> {
        Ok(self.repository.find_links()?)
    }

    /// Deletes link `id` and re-clusters the customer it held as if it had never been
    /// made. `None` when there is no link `id`.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn delete_link(&self, id: i64) -> Result<Option<Linked>, ServiceError> {
        let rewriter =
            |contacts: &[Contact], evidence: &[Evidence]| plan_relink(contacts, evidence);
        let Some(applied) = self.repository.delete_link(id, &rewriter)? else {
            return Ok(None);
        };
        let (customers, _) = customers_after(&applied.before, &applied.rewrite)?;
        Ok(Some(Linked {
            link: applied.link,
            customers,
        }))
    }

    /// Deletes unlink rule `id`; `None` when there is none.
    ///
    /// # Errors
    /// See [`ServiceError`].
    pub fn delete_unlink_rule(&self, id: i64) -> Result<Option<UnlinkRule>, ServiceError> {
        Ok(self.repository.delete_unlink_rule(id)?)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use super::*;
    use crate::contact::Link;
    use crate::customer::tests::{contact, george_merged_with_biffsucks, id};
    use crate::reconcile::tests::request;
    use crate::reconcile::{LinkTo, NewContact, Plan, Relink};
    use crate::repository::{Applied, MockContactRepository};

    fn service_on(repo: MockContactRepository) -> IdentityService {
        IdentityService::new(Arc::new(repo), CustomerLimits::UNLIMITED)
    }

    /// Identifies the request of `email` and `phone` through `service`.
    fn identify(service: &IdentityService, email: Option<&str>, phone: Option<&str>) -> Identified {
        service
            .identify(Admitted::from(request(email, phone)), "test")
            .expect("identified")
    }

    /// A mock whose lock-free read sees `read` and whose guarded unit of work sees
    /// `current`, records the plan it was asked to apply, and returns `after`.
    fn repository_writing(
        read: Vec<Contact>,
        current: Vec<Contact>,
        after: Vec<Contact>,
        applied: Arc<Mutex<Vec<Plan>>>,
    ) -> MockContactRepository {
        let mut repo = MockContactRepository::new();
        repo.expect_find_customers()
            .times(1)
            .returning(move |_| Ok(read.clone()));
        repo.expect_apply_atomically()
            .times(1)
            .returning(move |_, decide, _| {
                let plan = decide(&current)?;
                applied.lock().expect("not poisoned").push(plan.clone());
                Ok(Applied {
                    plan,
                    contacts: after.clone(),
                })
            });
        repo
    }

    /// A mock whose guarded rewrite of the customer of the given contact sees `customer`.
    fn repository_rewriting(customer: Vec<Contact>) -> MockContactRepository {
        let mut repo = MockContactRepository::new();
        repo.expect_rewrite_customer_of()
            .times(1)
            .returning(move |_, rewriter, _| Ok(Some(rewriter(&customer, &[]))));
        repo
    }

    #[test]
    fn erasing_a_customer_erases_every_contact_it_leads() {
        let customer = vec![
            contact(1, Some("george@hillvalley.edu"), Some("919191"), None, 0),
            contact(2, Some("george@x.io"), Some("919191"), Some(1), 1),
        ];
        let rewrite = service_on(repository_rewriting(customer))
            .erase_customer(id(1), "erasure:test")
            .expect("erased")
            .expect("a customer");
        assert_eq!(rewrite.contacts_erased, 2);
    }

    /// The race: the request named george's customer by contact 2 when 2 led it; a merge
    /// made 2 a secondary of 1 before the erasure's guarded read. Nothing is erased, and the
    /// error names the customer's primary now.
    #[test]
    fn erasing_a_customer_whose_primary_was_merged_meanwhile_erases_nothing() {
        let merged = vec![
            contact(1, Some("george@hillvalley.edu"), Some("919191"), None, 0),
            contact(
                2,
                Some("biffsucks@hillvalley.edu"),
                Some("717171"),
                Some(1),
                1,
            ),
        ];
        let outcome =
            service_on(repository_rewriting(merged)).erase_customer(id(2), "erasure:test");
        assert!(
            matches!(
                outcome,
                Err(ServiceError::NotPrimary { contact, primary }) if contact == id(2) && primary == id(1)
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn rule_1_unknown_identifiers_create_a_primary() {
        let applied = Arc::default();
        let created = contact(1, Some("doc@hillvalley.edu"), Some("88"), None, 0);
        let repo = repository_writing(vec![], vec![], vec![created], Arc::clone(&applied));
        let service = service_on(repo);

        let customer = identify(&service, Some("doc@hillvalley.edu"), Some("88")).customer;

        assert_eq!(customer.primary_id, id(1));
        assert!(customer.secondary_ids.is_empty());
        let plans = applied.lock().expect("not poisoned");
        assert_eq!(plans.len(), 1);
        assert_eq!(
            plans[0].insert.as_ref().map(|c| c.link),
            Some(Link::Primary)
        );
    }

    #[test]
    fn rule_2_new_email_writes_one_secondary_linked_to_the_primary() {
        let applied = Arc::default();
        let known = vec![contact(
            1,
            Some("lorraine@hillvalley.edu"),
            Some("123456"),
            None,
            0,
        )];
        let mut after = known.clone();
        after.push(contact(
            2,
            Some("mcfly@hillvalley.edu"),
            Some("123456"),
            Some(1),
            1,
        ));
        let repo = repository_writing(known.clone(), known, after, Arc::clone(&applied));
        let service = service_on(repo);
        let req = request(Some("mcfly@hillvalley.edu"), Some("123456"));

        let customer = service
            .identify(Admitted::from(req.clone()), "test")
            .expect("identified")
            .customer;

        assert_eq!(customer.primary_id, id(1));
        assert_eq!(customer.secondary_ids, vec![id(2)]);
        let plans = applied.lock().expect("not poisoned");
        assert_eq!(
            plans[0].insert,
            Some(NewContact {
                email: req.email().cloned(),
                phone: req.phone().cloned(),
                link: Link::Secondary(id(1)),
                created_at: None,
            })
        );
        assert_eq!(plans[0].relink, None);
    }

    #[test]
    fn rule_3_nothing_new_never_opens_a_unit_of_work() {
        let known = vec![
            contact(1, Some("lorraine@hillvalley.edu"), Some("123456"), None, 0),
            contact(2, Some("mcfly@hillvalley.edu"), Some("123456"), Some(1), 1),
        ];
        let mut repo = MockContactRepository::new();
        repo.expect_find_customers()
            .times(1)
            .returning(move |_| Ok(known.clone()));
        repo.expect_apply_atomically().never();
        let service = service_on(repo);

        let customer = identify(&service, Some("mcfly@hillvalley.edu"), Some("123456")).customer;

        assert_eq!(customer.primary_id, id(1));
        assert_eq!(customer.secondary_ids, vec![id(2)]);
    }

    #[test]
    fn rule_4_a_join_relinks_the_newer_customer_and_creates_nothing() {
        let applied = Arc::default();
        let known = vec![
            contact(1, Some("george@hillvalley.edu"), Some("919191"), None, 0),
            contact(2, Some("biffsucks@hillvalley.edu"), Some("717171"), None, 1),
            contact(3, Some("biff@hillvalley.edu"), Some("717171"), Some(2), 2),
        ];
        let after = george_merged_with_biffsucks();
        let repo = repository_writing(known.clone(), known, after, Arc::clone(&applied));
        let service = service_on(repo);

        let customer = identify(&service, Some("george@hillvalley.edu"), Some("717171")).customer;

        assert_eq!(customer.primary_id, id(1));
        assert_eq!(customer.secondary_ids, vec![id(2), id(3)]);
        let plans = applied.lock().expect("not poisoned");
        assert_eq!(
            plans[0],
            Plan {
                relink: Some(Relink {
                    to: LinkTo::Existing(id(1)),
                    contacts: vec![id(2), id(3)]
                }),
                insert: None,
                refused: None,
            }
        );
    }

    #[test]
    fn a_refused_merge_writes_nothing_and_answers_the_email_s_customer() {
        let known = vec![
            contact(1, Some("george@hillvalley.edu"), Some("919191"), None, 0),
            contact(2, Some("biffsucks@hillvalley.edu"), Some("717171"), None, 1),
        ];
        // The store answers with the customers that hold the request's values.
        let matching = |ids: &Identifiers, known: &[Contact]| -> Vec<Contact> {
            known
                .iter()
                .filter(|c| {
                    (ids.email().is_some() && c.email.as_ref() == ids.email())
                        || (ids.phone().is_some() && c.phone.as_ref() == ids.phone())
                })
                .cloned()
                .collect()
        };
        let mut repo = MockContactRepository::new();
        let read = known.clone();
        repo.expect_find_customers()
            .returning(move |ids| Ok(matching(ids, &read)));
        // The refusal is confirmed under the guard (where the rules are checked), and
        // nothing is written; the email alone then brings nothing new (answered from the
        // lock-free read).
        repo.expect_apply_atomically()
            .times(1)
            .returning(move |ids, decide, _| {
                let current = matching(ids, &known);
                let plan = decide(&current)?;
                assert!(plan.is_empty() && plan.refused.is_some(), "{plan:?}");
                Ok(Applied {
                    plan,
                    contacts: current,
                })
            });
        let limits = CustomerLimits {
            max_contacts: 1,
            ..CustomerLimits::UNLIMITED
        };
        let service = IdentityService::new(Arc::new(repo), limits);

        let identified = identify(&service, Some("biffsucks@hillvalley.edu"), Some("919191"));

        assert_eq!(identified.customer.primary_id, id(2));
        assert!(identified.refused.is_some());
        // The answer says what was not stored: the phone of the other customer.
        assert_eq!(
            identified.ignored,
            vec![Ignored {
                field: "phoneNumber",
                value: "919191".to_owned(),
                reason: "merge_guard",
            }]
        );
    }

    /// A customer of two contacts sharing phone 5550100, and a mock store that answers
    /// reads by the request's phone: that customer when the request holds the phone,
    /// nothing otherwise; a write creating a contact returns it as contact 3.
    fn full_household(plans: Arc<Mutex<Vec<Plan>>>) -> MockContactRepository {
        let household = vec![
            contact(1, Some("mom@family.io"), Some("5550100"), None, 0),
            contact(2, Some("dad@family.io"), Some("5550100"), Some(1), 1),
        ];
        let seen = |ids: &Identifiers, household: &[Contact]| {
            if ids.phone().is_some() {
                household.to_vec()
            } else {
                Vec::new()
            }
        };
        let mut repo = MockContactRepository::new();
        let read = household.clone();
        repo.expect_find_customers()
            .returning(move |ids| Ok(seen(ids, &read)));
        repo.expect_apply_atomically()
            .returning(move |ids, decide, _| {
                let current = seen(ids, &household);
                let plan = decide(&current)?;
                plans.lock().expect("not poisoned").push(plan.clone());
                let mut after = current;
                if let Some(new) = plan.insert.clone() {
                    after.push(Contact {
                        id: id(3),
                        email: new.email,
                        phone: new.phone,
                        link: new.link,
                        created_at: chrono::Utc::now(),
                    });
                }
                Ok(Applied {
                    plan,
                    contacts: after,
                })
            });
        repo
    }

    /// The merge guard under which the household is full.
    const FULL: CustomerLimits = CustomerLimits {
        max_contacts: 2,
        ..CustomerLimits::UNLIMITED
    };

    #[test]
    fn a_new_email_with_the_phone_of_a_full_customer_becomes_a_customer_of_its_own() {
        let plans = Arc::new(Mutex::new(Vec::new()));
        let service = IdentityService::new(Arc::new(full_household(Arc::clone(&plans))), FULL);
        let identified = identify(&service, Some("lodger@family.io"), Some("5550100"));
        // The phone would have made the household three contacts: it is dropped, and the
        // email alone lands on a customer of its own.
        assert_eq!(identified.customer.primary_id, id(3));
        assert_eq!(identified.customer.emails.len(), 1);
        assert!(identified.customer.phone_numbers.is_empty());
        assert!(
            identified.refused.is_some(),
            "the refusal is still reported"
        );
        assert_eq!(
            identified.ignored,
            vec![Ignored {
                field: "phoneNumber",
                value: "5550100".to_owned(),
                reason: "merge_guard",
            }]
        );
        let plans = plans.lock().expect("not poisoned");
        assert_eq!(plans.len(), 2, "{plans:?}");
        assert!(plans[0].is_empty() && plans[0].refused.is_some());
        assert!(plans[1]
            .insert
            .as_ref()
            .is_some_and(|c| c.phone.is_none() && c.link == Link::Primary));
    }

    #[test]
    fn with_the_phone_first_the_email_is_dropped_and_the_phone_s_customer_answers() {
        let plans = Arc::new(Mutex::new(Vec::new()));
        let service = IdentityService::new(Arc::new(full_household(Arc::clone(&plans))), FULL)
            .with_priority(IdentifierPriority::PhoneFirst);
        let identified = identify(&service, Some("lodger@family.io"), Some("5550100"));
        assert_eq!(identified.customer.primary_id, id(1));
        assert_eq!(identified.ignored.len(), 1);
        assert_eq!(identified.ignored[0].field, "email");
        assert_eq!(identified.ignored[0].reason, "merge_guard");
    }

    #[test]
    fn without_a_limit_in_the_way_the_priority_changes_nothing() {
        let plans = Arc::new(Mutex::new(Vec::new()));
        let service = service_on(full_household(Arc::clone(&plans)));
        let identified = identify(&service, Some("lodger@family.io"), Some("5550100"));
        assert_eq!(identified.customer.primary_id, id(1));
        assert_eq!(identified.customer.secondary_ids, vec![id(2), id(3)]);
        assert!(identified.ignored.is_empty());
        assert_eq!(identified.refused, None);
        assert_eq!(plans.lock().expect("not poisoned").len(), 1);
    }

    #[test]
    fn the_guarded_unit_decides_on_fresh_data_not_on_the_first_read() {
        // The lock-free read saw nothing; by the time the unit of work holds its guard a
        // concurrent request has created the customer, so the right write is no write.
        let applied: Arc<Mutex<Vec<Plan>>> = Arc::default();
        let fresh = vec![contact(4, Some("doc@hillvalley.edu"), None, None, 0)];
        let repo = repository_writing(vec![], fresh.clone(), fresh, Arc::clone(&applied));
        let service = service_on(repo);

        let customer = identify(&service, Some("doc@hillvalley.edu"), None).customer;

        assert_eq!(customer.primary_id, id(4));
        assert!(applied.lock().expect("not poisoned")[0].is_empty());
    }

    #[test]
    fn the_customer_of_any_contact_is_read_without_writing() {
        let mut repo = MockContactRepository::new();
        repo.expect_find_customer_of()
            .withf(|id| id.get() == 2)
            .returning(|_| {
                Ok(vec![
                    contact(1, Some("doc@x.io"), None, None, 0),
                    contact(2, Some("marty@x.io"), None, Some(1), 1),
                ])
            });
        repo.expect_find_customer_of()
            .withf(|id| id.get() == 9)
            .returning(|_| Ok(vec![]));
        repo.expect_apply_atomically().never();
        let service = service_on(repo);
        let customer = service.customer_of(id(2)).expect("read").expect("found");
        assert_eq!(customer.primary_id, id(1));
        assert_eq!(customer.secondary_ids, vec![id(2)]);
        assert_eq!(service.customer_of(id(9)).expect("read"), None);
    }

    /// The values of `identifiers` that a rule on `unlinked` names.
    fn named(identifiers: &Identifiers, unlinked: &str) -> Vec<Identifier> {
        Identifier::all_of(identifiers)
            .into_iter()
            .filter(|value| value.as_str() == unlinked)
            .collect()
    }

    /// A mock whose guarded unit refuses any request holding `unlinked` (a rule made after
    /// the request was admitted) and creates a primary for anything else; it records every
    /// request it was given.
    fn repository_with_rule_on(
        unlinked: &'static str,
        seen: Arc<Mutex<Vec<Identifiers>>>,
    ) -> MockContactRepository {
        let mut repo = MockContactRepository::new();
        repo.expect_find_customers().returning(|_| Ok(vec![]));
        repo.expect_apply_atomically()
            .returning(move |identifiers, decide, _| {
                seen.lock().expect("not poisoned").push(identifiers.clone());
                let named = named(identifiers, unlinked);
                if !named.is_empty() {
                    return Err(RepositoryError::Unlinked(named));
                }
                let plan = decide(&[])?;
                let created = plan.insert.clone().expect("a new primary");
                let contacts = vec![Contact {
                    id: id(1),
                    email: created.email,
                    phone: created.phone,
                    link: created.link,
                    created_at: contact(1, None, None, None, 0).created_at,
                }];
                Ok(Applied { plan, contacts })
            });
        repo
    }

    #[test]
    fn a_value_unlinked_meanwhile_is_set_aside_and_the_request_runs_again() {
        let seen = Arc::default();
        let service = service_on(repository_with_rule_on("555000", Arc::clone(&seen)));
        let identified = identify(&service, Some("doc@hillvalley.edu"), Some("555000"));
        assert_eq!(
            identified.ignored,
            vec![Ignored {
                field: "phoneNumber",
                value: "555000".to_owned(),
                reason: "blocked"
            }]
        );
        assert!(identified.customer.phone_numbers.is_empty());
        let seen = seen.lock().expect("not poisoned");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1], request(Some("doc@hillvalley.edu"), None));
    }

    /// A value the merge guard would refuse may be unlinked: the refusal goes the guarded
    /// way, which finds the rule, and the request without it is no refusal at all.
    #[test]
    fn a_refusal_is_checked_against_the_rules_before_it_is_answered() {
        let known = vec![contact(1, Some("doc@hillvalley.edu"), Some("111"), None, 0)];
        let mut repo = MockContactRepository::new();
        let read = known.clone();
        repo.expect_find_customers()
            .returning(move |_| Ok(read.clone()));
        repo.expect_apply_atomically()
            .times(1)
            .returning(|identifiers, _, _| {
                Err(RepositoryError::Unlinked(named(identifiers, "555000")))
            });
        let limits = CustomerLimits {
            max_phones: 1,
            ..CustomerLimits::UNLIMITED
        };
        let service = IdentityService::new(Arc::new(repo), limits);
        let identified = identify(&service, Some("doc@hillvalley.edu"), Some("555000"));
        assert_eq!(identified.refused, None);
        assert_eq!(identified.ignored.len(), 1);
        assert_eq!(identified.customer.primary_id, id(1));
    }

    #[test]
    fn a_request_of_unlinked_values_only_is_refused() {
        let service = service_on(repository_with_rule_on("555000", Arc::default()));
        let outcome = service.identify(Admitted::from(request(None, Some("555000"))), "test");
        assert!(
            matches!(
                outcome,
                Err(ServiceError::Invalid(InvalidRequest::OnlyBlocked(_)))
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn storage_failures_come_back_typed() {
        let mut repo = MockContactRepository::new();
        repo.expect_find_customers().returning(|_| {
            Err(RepositoryError::Unavailable(Box::new(io::Error::other(
                "connection refused",
            ))))
        });
        let service = service_on(repo);
        let outcome = service.identify(Admitted::from(request(Some("a@x.io"), None)), "test");
        assert!(matches!(
            outcome,
            Err(ServiceError::Repository(RepositoryError::Unavailable(_)))
        ));

        let mut repo = MockContactRepository::new();
        repo.expect_find_customers().returning(|_| Ok(vec![]));
        repo.expect_apply_atomically()
            .returning(|_, _, _| Err(RepositoryError::Contended { attempts: 8 }));
        let service = service_on(repo);
        let outcome = service.identify(Admitted::from(request(Some("a@x.io"), None)), "test");
        assert!(matches!(
            outcome,
            Err(ServiceError::Repository(RepositoryError::Contended {
                attempts: 8
            }))
        ));
    }
}

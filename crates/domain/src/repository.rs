//! The storage ports. `identity-persistence` implements them on PostgreSQL and SQLite.

use std::error::Error as StdError;

use thiserror::Error;

use crate::batch::BatchRecord;
use chrono::{DateTime, Utc};

use crate::cluster::{Evidence, ManualLink, Rewrite};
use crate::contact::{Contact, ContactId, Email, Identifier, Identifiers, PhoneNumber};
use crate::customer::InconsistentGraph;
use crate::history::HistoryEntry;
use crate::identifiers::IdentifierPriority;
use crate::links::{LinkRefused, StoredLink};
use crate::reconcile::{CustomerLimits, Plan};
use crate::unlink::{NewUnlinkRule, UnlinkRule};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The decision a unit of work applies: given the guarded contacts, what to write. The
/// service passes [`crate::reconcile`].
pub type Decide<'a> = dyn Fn(&[Contact]) -> Result<Plan, InconsistentGraph> + 'a;

/// How a repository call can fail. Adapters classify their own errors into these.
#[derive(Debug, Error)]
pub enum RepositoryError {
    /// The store cannot be reached now (no connection to be had, connection lost, timed out).
    /// Nothing was written. Worth retrying later.
    #[error("the contact store is unavailable")]
    Unavailable(#[source] BoxError),
    /// The unit of work kept colliding with concurrent ones and was given up after `attempts`
    /// tries. Nothing was written.
    #[error("gave up after {attempts} attempts that collided with concurrent requests")]
    Contended { attempts: u32 },
    /// `decide` refused the stored contacts. Nothing was written.
    #[error(transparent)]
    Inconsistent(#[from] InconsistentGraph),
    /// An unlink rule names these values of the request: it was made after the request was
    /// admitted. Nothing was written; set them aside and try again.
    #[error("an unlink rule made meanwhile names a value of the request")]
    Unlinked(Vec<Identifier>),
    /// The link cannot be made on the customers as they are under the guard. Nothing was
    /// written.
    #[error(transparent)]
    LinkRefused(LinkRefused),
    /// Anything else: a bug, or a store that does not look as expected.
    #[error("unexpected storage failure")]
    Internal(#[source] BoxError),
}

/// Reads and writes contacts.
///
/// Both methods see only live contacts (`deleted_at` unset).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ContactRepository: Send + Sync {
    /// Every live contact of every customer that shares the email or the phone of
    /// `identifiers`: the contacts that match, their primaries, and every secondary of those
    /// primaries, read from one consistent snapshot. Empty when nothing matches. Takes no
    /// locks and writes nothing.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached;
    /// [`RepositoryError::Internal`] for anything else.
    fn find_customers(&self, identifiers: &Identifiers) -> Result<Vec<Contact>, RepositoryError>;

    /// Every live contact of the customer that the live contact `id` belongs to (whether it
    /// is the primary or a secondary), read from one snapshot. Empty when there is no live
    /// contact `id`. Takes no locks and writes nothing.
    ///
    /// # Errors
    /// As [`Self::find_customers`].
    fn find_customer_of(&self, id: ContactId) -> Result<Vec<Contact>, RepositoryError>;

    /// One unit of work, all or nothing: reads what [`Self::find_customers`] would, calls
    /// `decide` with it, applies the returned [`Plan`] and commits. From the read to the
    /// commit, no other unit of work (in this process or another) can change those customers
    /// or create a contact with these identifiers, so the plan is applied to exactly the
    /// contacts it was decided on.
    ///
    /// A unit that collides with a concurrent one is rolled back and run again from the read,
    /// calling `decide` again, a bounded number of times.
    ///
    /// Returns what it applied: the plan decided under the guard, and every live contact of
    /// the customer(s) after the write.
    ///
    /// # Errors
    /// [`RepositoryError::Contended`] when the retries ran out;
    /// [`RepositoryError::Inconsistent`] when `decide` refused the contacts;
    /// [`RepositoryError::Unlinked`] when an unlink rule names one of `identifiers` (checked
    /// under the guard, so a rule made by another replica is never missed);
    /// [`RepositoryError::Unavailable`] when the store cannot be reached;
    /// [`RepositoryError::Internal`] for anything else. In every case nothing was written.
    fn apply_atomically<'f>(
        &self,
        identifiers: &Identifiers,
        decide: &'f Decide<'f>,
        cause: &str,
    ) -> Result<Applied, RepositoryError>;

    /// The evidence stored for any email or phone of `contacts`: requests that joined
    /// customers without creating a contact.
    ///
    /// # Errors
    /// As [`Self::find_customers`].
    fn find_evidence(&self, contacts: &[Contact]) -> Result<Vec<Evidence>, RepositoryError>;

    /// The history of the customer that live contact `id` belongs to: every event of any
    /// of its contacts, oldest first. `None` when there is no live contact `id`.
    ///
    /// # Errors
    /// As [`Self::find_customers`].
    fn find_history(&self, id: ContactId) -> Result<Option<Vec<HistoryEntry>>, RepositoryError>;

    /// One unit of work on the customer of live contact `id`: guards it, reads all its
    /// contacts and the evidence stored for its identifiers, applies the changes `rewriter`
    /// returns (recording history and change events with `cause`, deleting the evidence it
    /// names), commits. `None` when there is no live contact `id`.
    ///
    /// # Errors
    /// As [`Self::apply_atomically`].
    fn rewrite_customer_of<'f>(
        &self,
        id: ContactId,
        rewriter: &'f CustomerRewriter<'f>,
        cause: &str,
    ) -> Result<Option<Rewrite>, RepositoryError>;

    /// Every unlink rule, oldest first.
    ///
    /// # Errors
    /// As [`Self::find_customers`].
    fn find_unlink_rules(&self) -> Result<Vec<UnlinkRule>, RepositoryError>;

    /// One unit of work: stores `rule` and, guarding every customer that holds its value
    /// (and the value itself, as `apply_atomically` does), reads their contacts and the
    /// evidence stored for their values, applies the changes `rewriter` returns (recording
    /// history and change events with the cause [`crate::unlink_cause`] of the new rule),
    /// commits. `None`, writing nothing, when a rule for the value exists already.
    ///
    /// # Errors
    /// As [`Self::apply_atomically`].
    fn create_unlink_rule<'f>(
        &self,
        rule: &NewUnlinkRule,
        rewriter: &'f CustomerRewriter<'f>,
    ) -> Result<Option<AppliedRule>, RepositoryError>;

    /// Deletes unlink rule `id`: its value links again from the next request. `None` when
    /// there is no rule `id`.
    ///
    /// # Errors
    /// As [`Self::find_customers`].
    fn delete_unlink_rule(&self, id: i64) -> Result<Option<UnlinkRule>, RepositoryError>;

    /// Every manual link, oldest first.
    ///
    /// # Errors
    /// As [`Self::find_customers`].
    fn find_links(&self) -> Result<Vec<StoredLink>, RepositoryError>;

    /// One unit of work: guards the customers of the link's two contacts and reads them,
    /// lets `planner` check the link against them, stores it, and applies the changes
    /// `planner` makes of the contacts and their evidence (the new link among it),
    /// recording history and change events with the cause [`crate::link_cause`] of the new
    /// link; commits.
    ///
    /// # Errors
    /// [`RepositoryError::LinkRefused`] when the planner refuses (nothing written);
    /// otherwise as [`Self::apply_atomically`].
    fn create_link(
        &self,
        link: &ManualLink,
        planner: &dyn LinkPlanner,
    ) -> Result<AppliedLink, RepositoryError>;

    /// One unit of work: deletes link `id` and applies what `rewriter` makes of the customer
    /// it held and the evidence that remains, with the cause [`crate::link_cause`]. `None`
    /// when there is no link `id`.
    ///
    /// # Errors
    /// As [`Self::apply_atomically`].
    fn delete_link<'f>(
        &self,
        id: i64,
        rewriter: &'f CustomerRewriter<'f>,
    ) -> Result<Option<AppliedLink>, RepositoryError>;
}

/// Checks a manual link against the customers it would join and plans the re-clustering:
/// the domain's rules, called by the store under its guard.
pub trait LinkPlanner {
    /// # Errors
    /// Why the link cannot be made on `contacts` (every live contact of both customers).
    fn check(&self, contacts: &[Contact], link: &ManualLink) -> Result<(), LinkRefused>;
    /// The changes that make `contacts` one customer, given their `evidence`.
    fn plan(&self, contacts: &[Contact], evidence: &[Evidence]) -> Rewrite;
}

/// A link as stored, and what making or deleting it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLink {
    pub link: StoredLink,
    /// The contacts of the customers concerned, before.
    pub before: Vec<Contact>,
    pub rewrite: Rewrite,
}

/// What a unit of work of [`ContactRepository::apply_atomically`] applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The plan decided on the guarded contacts: what was written, or why nothing was
    /// ([`Plan::outcome`]).
    pub plan: Plan,
    /// Every live contact of the customer(s) after the write.
    pub contacts: Vec<Contact>,
}

/// A rule as stored, and what applying it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRule {
    pub rule: UnlinkRule,
    /// The contacts of the customers that held the value, before.
    pub before: Vec<Contact>,
    pub rewrite: Rewrite,
}

/// What a one-customer rewrite applies: given every live contact of the customer and the
/// evidence that joined parts of it ([`Evidence`]), the changes to make (erasure passes
/// [`crate::plan_erasure`]).
pub type CustomerRewriter<'a> = dyn Fn(&[Contact], &[Evidence]) -> Rewrite + 'a;

/// What a whole-table rewrite applies: given every live contact and the values that unlink
/// rules name, the changes to make (the operator's command passes [`crate::renormalize`]).
pub type Rewriter<'a> = dyn Fn(&[Contact], &[Identifier]) -> Rewrite + 'a;

/// Operations on the whole store, for operators (not on any request's path).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ContactMaintenance: Send + Sync {
    /// One unit of work over every live contact: keeps every other writer out, reads all
    /// live contacts and the unlink rules, applies the changes `rewriter` returns, commits.
    /// Returns the rewrite that was applied.
    ///
    /// # Errors
    /// [`RepositoryError::Unavailable`] when the store cannot be reached;
    /// [`RepositoryError::Internal`] for anything else. In every case nothing was written.
    fn rewrite_all<'f>(
        &self,
        rewriter: &'f Rewriter<'f>,
        cause: &str,
    ) -> Result<Rewrite, RepositoryError>;

    /// One unit of work over many requests, in order, each decided exactly as
    /// [`ContactRepository::apply_atomically`] does for one (later requests see what earlier
    /// ones wrote); all written or none. It keeps every other writer out until it commits
    /// (taking that one guard first, so it cannot deadlock with them). Retried as a whole
    /// when it collides.
    ///
    /// # Errors
    /// As [`ContactRepository::apply_atomically`] (an unlink rule made since the batch was
    /// admitted: [`RepositoryError::Unlinked`], naming every value of the batch it names).
    fn apply_batch<'f>(
        &self,
        requests: &[Identifiers],
        decide: &'f DecideEach<'f>,
        cause: &str,
    ) -> Result<BatchOutcome, RepositoryError>;

    /// [`Self::apply_batch`], set-based: one unit of work that keeps every other writer out,
    /// reads every customer the records touch in one statement, decides the whole batch in
    /// memory with [`crate::decide_batch`] (each record as `apply_batch` decides it, against
    /// what the records before it wrote, with rule 6's `priority`) and writes the outcome in bulk: contacts,
    /// re-links, evidence, history and change events. All written or none; retried as a
    /// whole when it collides.
    ///
    /// # Errors
    /// As [`Self::apply_batch`].
    fn import_batch(
        &self,
        records: &[BatchRecord],
        limits: &CustomerLimits,
        priority: IdentifierPriority,
        cause: &str,
    ) -> Result<BatchOutcome, RepositoryError>;

    /// Brings the store's statistics up to date after much was written (a bulk import into
    /// an empty store), so that the database plans lookups for the table's new size.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn refresh_statistics(&self) -> Result<(), RepositoryError>;

    /// Checks the graph's invariants on the whole store (docs/CONCURRENCY.md, 1 to 4).
    ///
    /// # Errors
    /// When the store cannot be read.
    fn check(&self) -> Result<Vec<Violation>, RepositoryError>;

    /// Figures about the store, with the `top` largest customers.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn stats(&self, top: usize) -> Result<StoreStats, RepositoryError>;

    /// Everything a store is, read in one snapshot and handed to `sink` item by item, so
    /// that it streams: the unlink rules (oldest first), every live contact (by id), the
    /// stored requests that joined customers whose two values live contacts still hold, and
    /// the manual links (oldest first).
    ///
    /// # Errors
    /// When the store cannot be read, or `sink` fails (then the export stops there).
    fn export<'f>(&self, sink: &'f mut ExportSink<'f>) -> Result<(), RepositoryError>;
}

/// Where [`ContactMaintenance::export`] hands its items; an error stops the export.
pub type ExportSink<'a> = dyn FnMut(Exported) -> std::io::Result<()> + 'a;

/// One item of a store's export ([`ContactMaintenance::export`]): what an import needs to
/// rebuild the same customers elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exported {
    /// A value that identifies no one.
    Rule(UnlinkRule),
    /// A live contact: its values and when it was first seen.
    Contact(Contact),
    /// A request that joined two customers without creating a contact: imported again as a
    /// record, it joins them again. Dated no earlier than the oldest live contact holding
    /// its email and the oldest holding its phone, so that both are there when it comes.
    Request {
        email: Email,
        phone: PhoneNumber,
        created_at: DateTime<Utc>,
    },
    /// A manual link, with its two contacts as they are (their ids mean nothing elsewhere:
    /// an import finds them again by their values).
    Link {
        link: StoredLink,
        contacts: [Contact; 2],
    },
}

/// The decision a batch applies to each of its requests: given the request's index and the
/// guarded contacts, what to write.
pub type DecideEach<'a> = dyn Fn(usize, &[Contact]) -> Result<Plan, InconsistentGraph> + 'a;

/// What a batch wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Contacts created.
    pub created: usize,
    /// Requests that merged customers.
    pub merged: usize,
    /// Requests that brought nothing new.
    pub unchanged: usize,
    /// Requests whose write the merge guard refused.
    pub refused: usize,
    /// Requests stored without their lowest-priority identifier, which would have grown a
    /// customer past the merge guard (rule 6's priority).
    pub dropped: usize,
}

/// A broken invariant found on a live store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (docs/CONCURRENCY.md numbers them).
    pub invariant: String,
    /// The contacts or values that break it.
    pub detail: String,
}

/// The size of one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerSize {
    pub primary: ContactId,
    pub contacts: u64,
    pub emails: u64,
    pub phones: u64,
}

/// Figures about the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub customers: u64,
    pub contacts: u64,
    pub deleted_contacts: u64,
    /// Customers by number of contacts, largest first.
    pub largest: Vec<CustomerSize>,
    /// How many customers have 1, 2, 3–5, 6–10, 11–100 and more than 100 contacts.
    pub contacts_per_customer: Vec<(String, u64)>,
}

//! The identity domain: which contacts are the same customer, and what to write so that the
//! contact graph says so.
//!
//! Pure Rust: no I/O, no database, no web framework, no async runtime. The storage port is
//! [`ContactRepository`]; `identity-persistence` implements it and `identity-api` serves it
//! over HTTP. Every rule of the product lives here: [`contact`] (what a valid, normalized
//! email or phone is), [`identifiers`] (which values never link), [`reconcile`] (what to
//! write, including the merge guard) and [`customer`] (what to answer); which values an
//! operator unlinked is in [`unlink`], who may call what in [`access`].

pub mod access;
pub mod batch;
pub mod cluster;
pub mod contact;
pub mod customer;
pub mod history;
pub mod identifiers;
pub mod links;
pub mod reconcile;
pub mod renormalize;
pub mod repository;
pub mod service;
pub mod unlink;
pub mod why;

#[cfg(any(test, feature = "mocks"))]
pub use access::MockKeyRepository;
pub use access::{
    valid_key_name, ActiveKey, ApiKey, KeyError, KeyRepository, Scope, Scopes, UnknownScope,
};
pub use batch::{decide_batch, BatchDecision, BatchError, BatchRecord, Decided};
pub use cluster::{plan_erasure, ContactChange, Evidence, Joins, ManualLink, Rewrite, ValueChange};
pub use contact::{
    Contact, ContactId, Email, Identifier, Identifiers, InvalidRequest, Link, PhoneNumber, Region,
};
pub use customer::{Customer, InconsistentGraph};
pub use history::{HistoryEntry, HistoryKind};
pub use identifiers::{
    Admitted, BlockList, IdentifierPolicy, IdentifierPriority, Ignored, RawPhone,
};
pub use links::{check_link, link_cause, plan_relink, LinkRefused, StoredLink};
pub use reconcile::{
    reconcile, reconcile_record, CustomerLimits, LinkTo, NewContact, Outcome, Plan, Refusal, Relink,
};
pub use renormalize::renormalize;
pub use repository::{
    Applied, AppliedLink, AppliedRule, BatchOutcome, ContactMaintenance, ContactRepository,
    CustomerRewriter, CustomerSize, Decide, DecideEach, ExportSink, Exported, LinkPlanner,
    RepositoryError, Rewriter, StoreStats, Violation,
};
#[cfg(any(test, feature = "mocks"))]
pub use repository::{MockContactMaintenance, MockContactRepository};
pub use service::{Graph, Identified, IdentityService, Linked, ServiceError, Unlinked};
pub use unlink::{customers_after, plan_unlink, unlink_cause, NewUnlinkRule, UnlinkRule};
pub use why::{why, Step};

//! The identity domain: which contacts are the same customer, and what to write so that the
//! contact graph says so.
//!
//! Pure Rust: no I/O, no database, no web framework, no async runtime. The storage port is
//! [`ContactRepository`]; `identity-persistence` implements it and `identity-api` serves it
//! over HTTP. Every rule of the product lives in [`reconcile`] (what to write) and
//! [`customer`] (what to answer).

pub mod contact;
pub mod customer;
pub mod reconcile;
pub mod repository;
pub mod service;

pub use contact::{Contact, ContactId, Email, Identifiers, InvalidRequest, Link, PhoneNumber};
pub use customer::{Customer, InconsistentGraph};
pub use reconcile::{reconcile, NewContact, Plan, Relink};
#[cfg(any(test, feature = "mocks"))]
pub use repository::MockContactRepository;
pub use repository::{ContactRepository, Decide, RepositoryError};
pub use service::{IdentifyError, IdentityService};

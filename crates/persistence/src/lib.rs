//! Storage adapter for the identity domain: implements the domain's `ContactRepository`
//! port with Diesel and r2d2 on PostgreSQL (production, several replicas) or an embedded
//! SQLite file (the zero set-up default, one process), chosen by the database URL, and
//! applies the embedded migrations of each.
//!
//! Holds no product rules: what to write is decided by `identity_domain::reconcile`; this
//! crate reads, guards and writes. What differs per backend lives in `backend/`; how
//! concurrent units of work are kept apart is explained in `docs/CONCURRENCY.md`.

mod backend;
mod error;
mod events;
mod invariants;
mod migrate;
mod models;
mod pool;
mod repository;
mod store;
mod url;

pub use error::PersistenceError;
pub use invariants::{InvariantCheck, INVARIANT_CHECKS};
pub use migrate::{pending_migrations, run_migrations};
pub use models::OutboxRow;
pub use pool::PoolSettings;
pub use repository::{Outbox, PoolStats, RetryPolicy};
pub use store::{open, prepare, Store, StoreSettings};
pub use url::DatabaseUrl;

//! PostgreSQL adapter for the identity domain: implements the domain's `ContactRepository`
//! port with Diesel and an r2d2 connection pool, and applies the embedded migrations.
//!
//! Holds no product rules: what to write is decided by `identity_domain::reconcile`; this
//! crate reads, locks and writes. How concurrent units of work are kept apart is explained in
//! `docs/CONCURRENCY.md`.

mod error;
mod migrate;
mod models;
mod pool;
mod repository;
mod schema;

pub use error::PersistenceError;
pub use migrate::{create_database_if_missing, pending_migrations, run_migrations};
pub use pool::{build_pool, PgPool, PoolSettings};
pub use repository::{PgContactRepository, RetryPolicy};

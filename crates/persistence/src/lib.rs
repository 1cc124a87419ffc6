//! Storage adapter for the identity domain: implements the domain's `ContactRepository`
//! port with Diesel and r2d2 on PostgreSQL (production, several replicas) or an embedded
//! SQLite file (the zero set-up default, one process), chosen by the database URL, and
//! applies the embedded migrations of each.
//!
//! Holds no product rules: what to write is decided by `identity_domain::reconcile`; this
//! crate reads, guards and writes. Diesel is used as designed: a generated schema
//! (`schema.rs`), row structs (`models.rs`), the query builder for every statement it can
//! say, and query types with fixed SQL for the rest (`queries.rs`), so that Diesel prepares
//! each statement once per connection (but the UPDATEs, which Diesel never caches; a request
//! runs one only for a merge). What only one backend does lives in `postgres.rs`
//! and `sqlite.rs`; how concurrent units of work are kept apart is explained in
//! `docs/CONCURRENCY.md`.

mod bulk;
pub mod deadline;
mod error;
mod history;
mod invariants;
mod keys;
mod links;
mod maintenance;
mod migrate;
mod models;
mod outbox;
mod pool;
mod postgres;
mod queries;
mod reads;
mod replica;
mod repository;
mod retry;
mod schema;
mod sql_types;
mod sqlite;
mod store;
mod unlink;
mod url;
mod writes;

pub use error::PersistenceError;
pub use invariants::{InvariantCheck, INVARIANT_CHECKS};
pub use migrate::{pending_migrations, run_migrations};
pub use models::OutboxRow;
pub use outbox::{DeadEvent, Outbox};
pub use pool::PoolSettings;
pub use repository::PoolStats;
pub use retry::RetryPolicy;
pub use store::{open, open_read_only, prepare, Store, StoreSettings};
pub use url::{redact_url, DatabaseUrl};

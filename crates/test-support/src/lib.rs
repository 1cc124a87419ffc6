//! Test-only support, shared by the crates' integration tests: a fresh database per test on
//! either backend (PostgreSQL found or started without set-up, or a SQLite file), dropped
//! when the test ends, and the checker of the contact graph's invariants.
//!
//! Where PostgreSQL comes from, in order:
//! 1. `TEST_DATABASE_URL`, when set: a server the tests may create and drop databases on
//!    (a variable of the tests' own: the service's `DATABASE_URL` is never read by them);
//! 2. otherwise a throwaway cluster under `target/test-postgres`, started with the server
//!    binaries found on `PATH` or in `/usr/lib/postgresql/*/bin` (left running for the next
//!    run: `just db-stop` stops it);
//! 3. otherwise the first test fails with a message saying how to get one.

mod cluster;
mod components;
mod database;
mod invariants;
mod orders;
mod sqlite;
mod store;

pub use cluster::PrivateCluster;
pub use database::TestDb;
pub use invariants::{check_invariants, expected_groups, stored_groups, Group, Pair, Violation};
pub use orders::{expected_customers, orders, Order};
pub use sqlite::TestSqlite;
pub use store::{TestConnection, TestStore};

//! Integration tests of the HTTP API against a real PostgreSQL: one test binary, one module
//! per area. Each test gets a database of its own (see `identity-test-support`).

mod access;
mod bad_input;
mod cli;
mod concurrency;
mod console;
mod contract;
mod deployment;
mod embedded;
mod events;
mod export;
mod hardening;
mod helpers;
mod identify;
mod import_live;
mod import_scale;
mod import_statistics;
mod links;
mod operations;
mod resilience;
mod unlink;

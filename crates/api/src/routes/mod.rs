//! The HTTP routes, one module per resource: each handler reads the request, calls the
//! domain's use case (`identity_domain::IdentityService`) and writes the answer. The wire
//! types several of them share are in `crate::wire`, the mapping of errors in
//! `crate::error`, the access check in `crate::auth`; how they are mounted, in
//! `crate::startup`.

pub(crate) mod admin;
pub(crate) mod contacts;
pub(crate) mod health;
pub(crate) mod identify;
pub(crate) mod links;
pub(crate) mod metrics;
pub(crate) mod unlink;

//! keyway: a thread-per-core io_uring Redis/Valkey proxy.
//!
//! The data path, in the order a request walks it:
//! `runtime::core` (listener) → `session` → `resp::request` (scanner) →
//! `command` (table) → `topology` / `route` (router) → `upstream::conn` →
//! `session::replies` (replies in order).
pub mod admin;
pub mod cluster;
pub mod command;
pub mod config;
pub mod resp;
pub mod route;
pub mod runtime;
pub mod session;
pub mod stats;
pub mod tls;
pub mod topology;
pub mod upstream;

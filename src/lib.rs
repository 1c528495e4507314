//! keyway: a thread-per-core io_uring Redis/Valkey proxy.
//!
//! The data path, in the order a request walks it:
//! `runtime::core` (listener) → `session` → `resp::request` (scanner) →
//! `command` (table) → `topology` / `route` (router) → `upstream::conn` →
//! `session::replies` (replies in order). For Redis Cluster upstreams the
//! router consults `cluster::slots` (per-core slot maps fed by
//! `cluster::discovery` on the control side) and replies pass through
//! `cluster::redirect` (MOVED/ASK) on their way back; `tls` wraps either end.
//! `import` turns an Envoy or twemproxy configuration into keyway's.
pub mod admin;
pub mod cluster;
pub mod command;
pub mod config;
pub mod health;
pub mod import;
pub mod log;
pub mod net;
pub mod resp;
pub mod route;
pub mod runtime;
pub mod session;
pub mod stats;
pub mod tls;
pub mod topology;
pub mod upstream;

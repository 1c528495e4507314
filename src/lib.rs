//! keyway: a thread-per-core io_uring Redis/Valkey proxy.
//!
//! # The walk of a request
//! `runtime::core` (the core's listener) → `session::connection` (one
//! client connection: it owns the stream, the input and the output) →
//! `resp::request` (the scanner) → `command` (the table) → `session::plan`
//! asking `topology::router` (the one place keys are placed: prefix routes,
//! rings, slot maps, read policies, mirrors) → `upstream` (pooled,
//! pipelined connections; Redis Cluster redirections are followed there)
//! → `session::replies` (replies in request order) → back to the client.
//!
//! # Layers, bottom-up
//! A module uses only modules of lower layers (and of its own layer where
//! listed left of it); `tests/it/layers.rs` holds the code to this map.
//!
//! 0. `log` (one line per event) · `resp` (RESP wire format: scanners for
//!    requests and replies, encoders); for unit tests only, `testing`
//!    (what they share: a seeded random generator)
//! 1. `net` (sockets on the core's own io_uring) · `route` (hashes and
//!    consistent-hash rings) · `command` (the command table: arity, keys)
//!    · `tls` (rustls settings)
//! 2. `config` (the TOML model and its validation, a file per section) ·
//!    `import` (an Envoy or twemproxy configuration turned into keyway's)
//! 3. `topology` (placement: the immutable picture every core shares, the
//!    Redis Cluster slot maps, and the router over them)
//! 4. `stats` (per-core counters, each named once, and HDR latency
//!    histograms)
//! 5. `upstream` (per-core connections to the backends)
//! 6. `session` (a client connection: read, dispatch, reply)
//! 7. `control` (the control plane: each core's channel and the
//!    generations it serves, discovery, reload, health, stats rendering,
//!    the admin endpoint)
//! 8. `runtime` (start-up, the per-core loop, signals)
//!
//! `main.rs` (the `keyway` command line) sits above them all.
//!
//! # Errors
//! Each layer says what went wrong in a type of its own, and decisions are
//! made on those types, never on text: `resp::request::ProtocolError` and
//! `resp::reply::ReplyError` (the wire), `net::KernelError` (what the
//! kernel lacks), `tls::TlsError`, `config::ConfigError` (file, line, key
//! and a `Problem`), `topology::router::RouteError`, `upstream`'s
//! `Failure` and `probe::ProbeError`, `control::reload::ReloadError` and
//! `runtime::StartError`. Every error reply keyway writes, and its text,
//! is in `resp::errors`.

// Layer 0
pub mod log;
pub mod resp;
#[cfg(test)]
pub mod testing;
// Layer 1
pub mod command;
pub mod net;
pub mod route;
pub mod tls;
// Layer 2
pub mod config;
pub mod import;
// Layer 3
pub mod topology;
// Layer 4
pub mod stats;
// Layer 5
pub mod upstream;
// Layer 6
pub mod session;
// Layer 7
pub mod control;
// Layer 8
pub mod runtime;

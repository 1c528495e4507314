//! The control plane: one thread's view of every core, off the data path.
//! Bottom-up: `cores` (each core's channel and what it is told) →
//! `discovery` (Redis Cluster slot maps) → `mover` (a reshard's keys,
//! moved in the background) → `reshard_file` (a reshard kept across
//! restarts) → `reload` (a new configuration generation
//! for every core) → `health` (checks and ejections, applied
//! as reloads) → `render` (stats as JSON) → `hot_keys` (every core's hot
//! keys merged) → `top` (the picture as text) → `metrics` (stats as
//! Prometheus text) → `admin` (the HTTP endpoint).
pub mod admin;
pub mod cores;
pub mod discovery;
pub mod health;
pub mod hot_keys;
pub mod metrics;
pub mod mover;
pub mod reload;
pub mod render;
pub mod reshard_file;
pub mod top;

/// A lock of the control side, taken even if a thread panicked while
/// holding it (what it guards is replaced whole, never left half-written).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

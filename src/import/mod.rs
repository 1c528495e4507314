//! `keyway import`: reads the configuration of a proxy keyway replaces
//! (Envoy's redis_proxy, twemproxy) and writes the keyway TOML that places
//! every key where that proxy placed it, so the migration is: import,
//! `keyway check`, start keyway.
//!
//! What has no keyway equivalent becomes a `#` comment saying what it was
//! and where (never dropped silently). What would put keys somewhere else,
//! or leave clients unauthenticated where they had to AUTH, is refused
//! with the file, line and key at fault.

mod envoy;
mod model;
mod toml_out;
mod twemproxy;
mod yaml;

pub use model::{ImportError, ImportProblem, Imported, Options, Unmatched};

/// Reads an Envoy bootstrap (its `static_resources`).
pub fn envoy(text: &str, file: &str, opts: &Options) -> Result<Imported, ImportError> {
    envoy::import(text, file, opts)
}

/// Reads a twemproxy (nutcracker) configuration.
pub fn twemproxy(text: &str, file: &str, opts: &Options) -> Result<Imported, ImportError> {
    twemproxy::import(text, file, opts)
}

//! What a command is to keyway: its arity, its keys, whether it reads or
//! writes, and how it is executed (forwarded by key, split per endpoint,
//! answered locally, or refused).
pub mod keys;
pub mod table;

pub use keys::{key_indices, KeyError};
pub use table::{lookup, Block, CommandSpec, Exec, Fan, KeySpec, Local, Split, COMMANDS};

//! Sockets on the core's own io_uring.
//!
//! - `ring`: the per-core ring (set-up mode, operations in flight, the
//!   driver task that submits and reaps inside the glommio executor);
//! - `ring_abi`: the kernel structures and flags of the ring's raw
//!   `io_uring_enter`, and the registration of its descriptor;
//! - `task`: spawning the core's tasks (their polls counted), the time of
//!   the driver's turn, a yield;
//! - `batch`: how many completions the driver's wait holds out for;
//! - `bufs`: provided-buffer rings the kernel receives into;
//! - `socket`: TCP connections (multishot recv, one SEND in flight, connect
//!   with a timeout, close in order);
//! - `listener`: the core's TCP listener (SO_REUSEPORT, multishot accept)
//!   and the bound, listening sockets;
//! - `sockopt`: plain calls on a socket's descriptor (options, half-close,
//!   reset on close, addresses);
//! - `stream`: plain or TLS over a socket, the type sessions and upstream
//!   connections use;
//! - `input`: the read buffer both scan through, in place where possible;
//! - `timer`: the core's timers, fired by the driver;
//! - `notify`: a wake-up flag and a race of two futures, for the core's tasks;
//! - `doorbell`: how another thread wakes a core (an eventfd its ring polls).
//!
//! `probe` runs once at start-up and says what the kernel offers.
mod batch;
pub mod bufs;
pub mod doorbell;
pub mod input;
pub mod listener;
pub mod notify;
mod probe;
pub mod ring;
mod ring_abi;
pub mod socket;
pub mod sockopt;
pub mod stream;
pub mod task;
pub mod timer;

pub use input::Input;
pub use listener::Listener;
pub use probe::{probe, KernelError, FORCE_MODE_ENV};
pub use ring::{sleep, Mode, Ring};
pub use socket::{ClientHandle, Outflow, Socket};
pub use sockopt::{reset_on_close, shutdown_write, End};
pub use stream::Stream;
pub use task::{now, spawn, spawn_holding};

//! Why keyway could not start, typed by the step that failed; Display
//! words it for the operator (`keyway run` prints it and exits 1).

use std::net::SocketAddr;

use crate::net::KernelError;

#[derive(Debug)]
pub enum StartError {
    /// The CPUs this process may run on cannot be listed.
    NoCpuList,
    /// `proxy.cores = n` with fewer CPUs available.
    TooFewCpus { asked: usize, available: Vec<usize> },
    /// `proxy.cores = [...]` names a CPU this process may not run on.
    CpuNotAvailable { cpu: usize, available: Vec<usize> },
    /// The kernel lacks what the data path needs.
    Kernel(KernelError),
    /// Another process listens on a port keyway would share.
    PortTaken(SocketAddr),
    /// A listener (`proxy.listen`, `proxy.tls.listen`) cannot be bound.
    Listen {
        addr: SocketAddr,
        why: std::io::Error,
    },
    AdminListen {
        addr: SocketAddr,
        why: std::io::Error,
    },
    /// A thread of the control side (discovery, health, admin).
    Thread {
        name: &'static str,
        why: std::io::Error,
    },
    /// A core's doorbell (an eventfd).
    Doorbell(std::io::Error),
    /// A core could not start (its thread, executor, ring or listener).
    Core {
        index: usize,
        cpu: usize,
        why: CoreStartError,
    },
    /// A core ended before it said whether it started.
    CoreGone,
    /// A reshard kept beside the configuration cannot be resumed.
    Reshard(crate::control::reshard_file::ResumeError),
}

/// What stopped one core from starting.
#[derive(Debug)]
pub enum CoreStartError {
    Thread(std::io::Error),
    /// glommio's executor (io_uring, locked memory).
    Executor(glommio::GlommioError<()>),
    /// The core's own io_uring, in the mode the probe chose.
    Ring {
        mode: &'static str,
        why: std::io::Error,
    },
    Listen {
        addr: SocketAddr,
        why: std::io::Error,
    },
}

impl From<KernelError> for StartError {
    fn from(e: KernelError) -> StartError {
        StartError::Kernel(e)
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::NoCpuList => f.write_str("cannot list the CPUs this process may run on"),
            StartError::TooFewCpus { asked, available } => write!(
                f,
                "proxy.cores = {asked} but only {} CPU(s) are available: {available:?}",
                available.len()
            ),
            StartError::CpuNotAvailable { cpu, available } => write!(
                f,
                "proxy.cores lists CPU {cpu}, which is not available (available: {available:?})"
            ),
            StartError::Kernel(e) => write!(f, "{e}"),
            StartError::PortTaken(addr) => write!(
                f,
                "cannot listen on {addr}: address already in use (another keyway or another server listens there)"
            ),
            StartError::Listen { addr, why } => write!(f, "cannot listen on {addr}: {why}"),
            StartError::AdminListen { addr, why } => {
                write!(f, "cannot listen on admin.listen {addr}: {why}")
            }
            StartError::Thread { name, why } => {
                write!(f, "cannot start the {name} thread: {why}")
            }
            StartError::Doorbell(why) => write!(f, "cannot make an eventfd for a core: {why}"),
            StartError::Core { index, cpu, why } => match why {
                CoreStartError::Thread(e) => {
                    write!(f, "cannot start a thread for core {index}: {e}")
                }
                CoreStartError::Executor(e) => write!(
                    f,
                    "core {index} (cpu {cpu}): cannot start the glommio executor: {e}. It needs io_uring (not disabled by sysctl kernel.io_uring_disabled) and RLIMIT_MEMLOCK of at least 16 MiB (ulimit -l)"
                ),
                CoreStartError::Ring { mode, why } => write!(
                    f,
                    "core {index} (cpu {cpu}): cannot set up its io_uring ({mode}): {why}"
                ),
                CoreStartError::Listen { addr, why } => {
                    write!(f, "core {index}: cannot listen on {addr}: {why}")
                }
            },
            StartError::CoreGone => f.write_str("a core stopped during start-up"),
            StartError::Reshard(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

//! Sockets on the core's own io_uring.
//!
//! - `ring`: the per-core ring (set-up mode, operations in flight, the
//!   driver task that submits and reaps inside the glommio executor);
//! - `ring_abi`: the kernel structures and flags of the ring's raw
//!   `io_uring_enter`, and the registration of its descriptor;
//! - `task`: spawning the core's tasks (their polls counted), the time of
//!   the driver's turn, a yield;
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
pub mod bufs;
pub mod doorbell;
pub mod input;
pub mod listener;
pub mod notify;
pub mod ring;
mod ring_abi;
pub mod socket;
pub mod sockopt;
pub mod stream;
pub mod task;
pub mod timer;

pub use input::Input;
pub use listener::Listener;
pub use ring::{sleep, Mode, Ring};
pub use socket::{ClientHandle, Socket};
pub use sockopt::{reset_on_close, shutdown_write, End};
pub use stream::Stream;
pub use task::{now, spawn};

use io_uring::{cqueue, opcode, types, IoUring};
use std::io;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Environment variable that forces the fallback ring mode
/// (`coop_taskrun`), to run a 5.19-6.0 kernel's data path on a newer one.
pub const FORCE_MODE_ENV: &str = "KEYWAY_IO_URING_MODE";

/// Finds the ring mode this kernel supports and checks every feature
/// keyway's data path needs, on a throwaway ring and a loopback connection.
/// Err names what is missing.
pub fn probe() -> Result<Mode, String> {
    let force_coop = match std::env::var(FORCE_MODE_ENV) {
        Ok(v) if v == "coop_taskrun" => true,
        Ok(v) if v.is_empty() || v == "auto" => false,
        Ok(v) => {
            return Err(format!(
                "{FORCE_MODE_ENV}={v}: expected auto or coop_taskrun"
            ))
        }
        Err(_) => false,
    };
    let (mode, mut uring) = choose_mode(|mode| {
        if force_coop && mode == Mode::DeferTaskrun {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        ring::build(mode, 8)
    })?;
    let mut probe = io_uring::Probe::new();
    uring.submitter().register_probe(&mut probe).map_err(|e| {
        format!("io_uring cannot list its operations ({e}); keyway needs Linux 5.19+")
    })?;
    for (code, name) in [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Connect::CODE, "CONNECT"),
        (opcode::Send::CODE, "SEND"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Close::CODE, "CLOSE"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!(
                "this kernel's io_uring lacks IORING_OP_{name}; keyway needs Linux 5.19+"
            ));
        }
    }
    let bufs = bufs::BufRing::new(&uring, 0, 8, 64).map_err(|e| e.to_string())?;
    loopback_check(&mut uring, &bufs)?;
    Ok(mode)
}

/// The best mode `build` succeeds with: DEFER_TASKRUN, else COOP_TASKRUN
/// (a kernel that does not know a setup flag answers EINVAL).
fn choose_mode<R>(build: impl Fn(Mode) -> io::Result<R>) -> Result<(Mode, R), String> {
    match build(Mode::DeferTaskrun) {
        Ok(u) => Ok((Mode::DeferTaskrun, u)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match build(Mode::CoopTaskrun) {
            Ok(u) => Ok((Mode::CoopTaskrun, u)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(format!(
                "this kernel's io_uring lacks IORING_SETUP_COOP_TASKRUN and IORING_SETUP_TASKRUN_FLAG ({e}); keyway needs Linux 5.19+ (6.1+ for DEFER_TASKRUN)"
            )),
            Err(e) => Err(unavailable(e)),
        },
        Err(e) => Err(unavailable(e)),
    }
}

fn unavailable(e: io::Error) -> String {
    format!(
        "io_uring is not available ({e}); keyway needs Linux 5.19+ with io_uring enabled (sysctl kernel.io_uring_disabled=0) and RLIMIT_MEMLOCK of at least 16 MiB per core"
    )
}

/// Multishot accept and multishot recv into provided buffers, for real.
fn loopback_check(uring: &mut IoUring, bufs: &bufs::BufRing) -> Result<(), String> {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let lfd = listener::listen_socket(addr, false).map_err(|e| format!("probe listener: {e}"))?;
    let result = (|| {
        let port = local_port(lfd)?;
        let accept = opcode::AcceptMulti::new(types::Fd(lfd))
            .build()
            .user_data(1);
        // SAFETY: a multishot accept writes into no memory of ours.
        unsafe { uring.submission().push(&accept) }.map_err(|e| e.to_string())?;
        let mut client = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("probe connection: {e}"))?;
        let (res, flags) = wait_one(uring)?;
        if res < 0 {
            return Err(format!(
                "this kernel's io_uring lacks multishot accept ({}); keyway needs Linux 5.19+",
                io::Error::from_raw_os_error(-res)
            ));
        }
        let accepted = res;
        let _close = CloseOnDrop(accepted);
        if !cqueue::more(flags) {
            return Err(
                "this kernel's io_uring ended a multishot accept at once; keyway needs Linux 5.19+"
                    .into(),
            );
        }
        let recv = opcode::RecvMulti::new(types::Fd(accepted), bufs.group())
            .build()
            .user_data(2);
        // SAFETY: the kernel writes only into the probe's provided buffers,
        // which outlive the ring (they are never unmapped).
        unsafe { uring.submission().push(&recv) }.map_err(|e| e.to_string())?;
        client
            .write_all(b"x")
            .map_err(|e| format!("probe write: {e}"))?;
        let (res, flags) = wait_one(uring)?;
        if res != 1 || cqueue::buffer_select(flags).is_none() || !cqueue::more(flags) {
            return Err(format!(
                "this kernel's io_uring lacks multishot recv with provided buffers (got {res}); keyway needs Linux 6.0+"
            ));
        }
        Ok(())
    })();
    // SAFETY: closing the probe's own listener.
    unsafe { libc::close(lfd) };
    result
}

struct CloseOnDrop(i32);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // SAFETY: the descriptor belongs to the probe.
        unsafe { libc::close(self.0) };
    }
}

fn local_port(fd: i32) -> Result<u16, String> {
    // SAFETY: getsockname into a zeroed sockaddr_in of the right size.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) != 0 {
            return Err(format!("probe: {}", io::Error::last_os_error()));
        }
        Ok(u16::from_be(sin.sin_port))
    }
}

/// Submits and waits (up to 2 s) for one completion.
fn wait_one(uring: &mut IoUring) -> Result<(i32, u32), String> {
    let ts = types::Timespec::from(Duration::from_secs(2));
    let args = types::SubmitArgs::new().timespec(&ts);
    match uring.submitter().submit_with_args(1, &args) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
        Err(e) => return Err(format!("probe io_uring_enter: {e}")),
    }
    match uring.completion().next() {
        Some(c) => Ok((c.result(), c.flags())),
        None => Err("probe: the kernel did not complete a socket operation within 2 s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(errno: i32) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn the_best_mode_the_kernel_takes_is_chosen_and_a_missing_one_named() {
        assert_eq!(choose_mode(|_| Ok(())).unwrap().0, Mode::DeferTaskrun);
        let pre_6_1 = |m| match m {
            Mode::DeferTaskrun => fails(libc::EINVAL),
            Mode::CoopTaskrun => Ok(()),
        };
        assert_eq!(choose_mode(pre_6_1).unwrap().0, Mode::CoopTaskrun);
        let pre_5_19 = choose_mode(|_| fails(libc::EINVAL)).unwrap_err();
        assert!(pre_5_19.contains("IORING_SETUP_COOP_TASKRUN"), "{pre_5_19}");
        assert!(pre_5_19.contains("Linux 5.19+"), "{pre_5_19}");
        let disabled = choose_mode(|_| fails(libc::EPERM)).unwrap_err();
        assert!(disabled.contains("io_uring is not available"), "{disabled}");
        assert!(disabled.contains("kernel.io_uring_disabled"), "{disabled}");
    }
}

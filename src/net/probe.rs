//! What the kernel offers, checked once at start-up on a throwaway ring
//! and a loopback connection: the ring mode, and every operation keyway's
//! data path needs. A missing one is a `KernelError` naming it.

use super::{bufs, listener, ring, Mode};
use io_uring::{cqueue, opcode, types, IoUring};
use std::io;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Environment variable that forces the fallback ring mode
/// (`coop_taskrun`), to run a 5.19-6.0 kernel's data path on a newer one.
pub const FORCE_MODE_ENV: &str = "KEYWAY_IO_URING_MODE";

/// What this kernel lacks for keyway's data path; Display names it and the
/// kernel version that has it.
#[derive(Debug)]
pub enum KernelError {
    /// `KEYWAY_IO_URING_MODE` holds something else than auto or coop_taskrun.
    UnknownMode(String),
    /// io_uring cannot be set up at all (disabled, or locked memory).
    Unavailable(io::Error),
    /// Neither COOP_TASKRUN nor TASKRUN_FLAG is known (before 5.19).
    NoTaskrunFlags(io::Error),
    /// The ring cannot list its operations.
    NoOpcodeList(io::Error),
    /// An operation the data path uses, by its kernel name.
    Lacks(&'static str),
    MultishotAcceptFailed(io::Error),
    MultishotAcceptEnded,
    /// Multishot recv with provided buffers; the result the kernel gave.
    MultishotRecv(i32),
    /// A step of the loopback check failed on its own account.
    Step {
        step: &'static str,
        why: io::Error,
    },
    /// The kernel did not complete a socket operation within 2 s.
    NoCompletion,
    /// The probe's fresh ring had no room for its two operations.
    QueueFull,
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelError::UnknownMode(v) => {
                write!(f, "{FORCE_MODE_ENV}={v}: expected auto or coop_taskrun")
            }
            KernelError::Unavailable(e) => write!(
                f,
                "io_uring is not available ({e}); keyway needs Linux 5.19+ with io_uring enabled (sysctl kernel.io_uring_disabled=0) and RLIMIT_MEMLOCK of at least 16 MiB per core"
            ),
            KernelError::NoTaskrunFlags(e) => write!(
                f,
                "this kernel's io_uring lacks IORING_SETUP_COOP_TASKRUN and IORING_SETUP_TASKRUN_FLAG ({e}); keyway needs Linux 5.19+ (6.1+ for DEFER_TASKRUN)"
            ),
            KernelError::NoOpcodeList(e) => write!(
                f,
                "io_uring cannot list its operations ({e}); keyway needs Linux 5.19+"
            ),
            KernelError::Lacks(name) => write!(
                f,
                "this kernel's io_uring lacks IORING_OP_{name}; keyway needs Linux 5.19+"
            ),
            KernelError::MultishotAcceptFailed(e) => write!(
                f,
                "this kernel's io_uring lacks multishot accept ({e}); keyway needs Linux 5.19+"
            ),
            KernelError::MultishotAcceptEnded => f.write_str(
                "this kernel's io_uring ended a multishot accept at once; keyway needs Linux 5.19+",
            ),
            KernelError::MultishotRecv(got) => write!(
                f,
                "this kernel's io_uring lacks multishot recv with provided buffers (got {got}); keyway needs Linux 6.0+"
            ),
            KernelError::Step { step, why } => write!(f, "probe {step}: {why}"),
            KernelError::NoCompletion => f.write_str(
                "probe: the kernel did not complete a socket operation within 2 s",
            ),
            KernelError::QueueFull => f.write_str("probe: the submission queue is full"),
        }
    }
}

/// A loopback-check step that failed with `why`.
fn step(step: &'static str) -> impl FnOnce(io::Error) -> KernelError {
    move |why| KernelError::Step { step, why }
}

/// Finds the ring mode this kernel supports and checks every feature
/// keyway's data path needs, on a throwaway ring and a loopback connection.
pub fn probe() -> Result<Mode, KernelError> {
    let force_coop = match std::env::var(FORCE_MODE_ENV) {
        Ok(v) if v == "coop_taskrun" => true,
        Ok(v) if v.is_empty() || v == "auto" => false,
        Ok(v) => return Err(KernelError::UnknownMode(v)),
        Err(_) => false,
    };
    let (mode, mut uring) = choose_mode(|mode| {
        if force_coop && mode == Mode::DeferTaskrun {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        ring::build(mode, 8)
    })?;
    let mut probe = io_uring::Probe::new();
    uring
        .submitter()
        .register_probe(&mut probe)
        .map_err(KernelError::NoOpcodeList)?;
    for (code, name) in [
        (opcode::Accept::CODE, "ACCEPT"),
        (opcode::Connect::CODE, "CONNECT"),
        (opcode::Send::CODE, "SEND"),
        (opcode::Recv::CODE, "RECV"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Close::CODE, "CLOSE"),
    ] {
        if !probe.is_supported(code) {
            return Err(KernelError::Lacks(name));
        }
    }
    let bufs = bufs::BufRing::new(&uring, 0, 8, 64).map_err(step("buffer ring"))?;
    loopback_check(&mut uring, &bufs)?;
    Ok(mode)
}

/// The best mode `build` succeeds with: DEFER_TASKRUN, else COOP_TASKRUN
/// (a kernel that does not know a setup flag answers EINVAL).
fn choose_mode<R>(build: impl Fn(Mode) -> io::Result<R>) -> Result<(Mode, R), KernelError> {
    match build(Mode::DeferTaskrun) {
        Ok(u) => Ok((Mode::DeferTaskrun, u)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match build(Mode::CoopTaskrun) {
            Ok(u) => Ok((Mode::CoopTaskrun, u)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(KernelError::NoTaskrunFlags(e)),
            Err(e) => Err(KernelError::Unavailable(e)),
        },
        Err(e) => Err(KernelError::Unavailable(e)),
    }
}

/// Multishot accept and multishot recv into provided buffers, for real.
fn loopback_check(uring: &mut IoUring, bufs: &bufs::BufRing) -> Result<(), KernelError> {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let lfd = listener::listen_socket(addr, false).map_err(step("listener"))?;
    let result = (|| {
        let port = local_port(lfd)?;
        let accept = opcode::AcceptMulti::new(types::Fd(lfd))
            .build()
            .user_data(1);
        // SAFETY: a multishot accept writes into no memory of ours.
        unsafe { uring.submission().push(&accept) }.map_err(|_| KernelError::QueueFull)?;
        let mut client = TcpStream::connect(("127.0.0.1", port)).map_err(step("connection"))?;
        let (res, flags) = wait_one(uring)?;
        if res < 0 {
            let why = io::Error::from_raw_os_error(-res);
            return Err(KernelError::MultishotAcceptFailed(why));
        }
        let accepted = res;
        let _close = CloseOnDrop(accepted);
        if !cqueue::more(flags) {
            return Err(KernelError::MultishotAcceptEnded);
        }
        let recv = opcode::RecvMulti::new(types::Fd(accepted), bufs.group())
            .build()
            .user_data(2);
        // SAFETY: the kernel writes only into the probe's provided buffers,
        // which outlive the ring (they are never unmapped).
        unsafe { uring.submission().push(&recv) }.map_err(|_| KernelError::QueueFull)?;
        client.write_all(b"x").map_err(step("write"))?;
        let (res, flags) = wait_one(uring)?;
        if res != 1 || cqueue::buffer_select(flags).is_none() || !cqueue::more(flags) {
            return Err(KernelError::MultishotRecv(res));
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

fn local_port(fd: i32) -> Result<u16, KernelError> {
    // SAFETY: getsockname into a zeroed sockaddr_in of the right size.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) != 0 {
            return Err(step("getsockname")(io::Error::last_os_error()));
        }
        Ok(u16::from_be(sin.sin_port))
    }
}

/// Submits and waits (up to 2 s) for one completion.
fn wait_one(uring: &mut IoUring) -> Result<(i32, u32), KernelError> {
    let ts = types::Timespec::from(Duration::from_secs(2));
    let args = types::SubmitArgs::new().timespec(&ts);
    match uring.submitter().submit_with_args(1, &args) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
        Err(e) => return Err(step("io_uring_enter")(e)),
    }
    match uring.completion().next() {
        Some(c) => Ok((c.result(), c.flags())),
        None => Err(KernelError::NoCompletion),
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
        assert!(matches!(pre_5_19, KernelError::NoTaskrunFlags(_)));
        let shown = pre_5_19.to_string();
        assert!(shown.contains("IORING_SETUP_COOP_TASKRUN"), "{shown}");
        assert!(shown.contains("Linux 5.19+"), "{shown}");
        let disabled = choose_mode(|_| fails(libc::EPERM)).unwrap_err();
        assert!(matches!(disabled, KernelError::Unavailable(_)));
        let shown = disabled.to_string();
        assert!(shown.contains("io_uring is not available"), "{shown}");
        assert!(shown.contains("kernel.io_uring_disabled"), "{shown}");
    }
}

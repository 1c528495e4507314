//! The kernel's io_uring ABI for the ring's raw `io_uring_enter` and
//! `io_uring_register`, which the `io_uring` crate does not expose in the
//! form keyway needs: the enter flags, `struct __kernel_timespec`,
//! `struct io_uring_getevents_arg`, and registering the ring's own
//! descriptor (IORING_REGISTER_RING_FDS).
//!
//! Separate from `ring` because these are fixed kernel layouts, not the
//! ring's logic: `ring` uses them, they use nothing of it.

use io_uring::IoUring;
use std::os::fd::AsRawFd;

pub(super) const ENTER_GETEVENTS: u32 = 1 << 0;
pub(super) const ENTER_EXT_ARG: u32 = 1 << 3;
pub(super) const ENTER_REGISTERED_RING: u32 = 1 << 4;
pub(super) const ENTER_NO_IOWAIT: u32 = 1 << 7;
const REGISTER_RING_FDS: libc::c_long = 20;

/// `struct __kernel_timespec`.
#[repr(C)]
pub(super) struct KernelTimespec {
    pub(super) tv_sec: i64,
    pub(super) tv_nsec: i64,
}

/// `struct io_uring_getevents_arg` (IORING_ENTER_EXT_ARG).
#[repr(C)]
pub(super) struct GeteventsArg {
    pub(super) sigmask: u64,
    pub(super) sigmask_sz: u32,
    pub(super) min_wait_usec: u32,
    pub(super) ts: u64,
}

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// Registers the ring's own descriptor (Linux 5.18+) so enters can name it
/// by index; None when the kernel cannot.
pub(super) fn register_ring(uring: &IoUring) -> Option<u32> {
    let mut up = RsrcUpdate {
        offset: u32::MAX,
        resv: 0,
        data: uring.as_raw_fd() as u64,
    };
    // SAFETY: io_uring_register(IORING_REGISTER_RING_FDS) with one valid
    // update entry; the kernel writes the chosen index into `offset`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            uring.as_raw_fd() as libc::c_long,
            REGISTER_RING_FDS,
            &mut up as *mut RsrcUpdate as libc::c_long,
            1 as libc::c_long,
        )
    };
    (r == 1).then_some(up.offset)
}

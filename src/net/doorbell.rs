//! Waking a core from another thread. A core's inboxes (the control
//! thread's messages, other cores' CLIENT LIST and KILL) are plain channels;
//! each has a doorbell, an eventfd, rung after every message, and the core
//! waits on it through its own ring (a poll, which writes no memory of
//! keyway's) instead of looking at its channels on a timer. An idle core
//! then sleeps until it is told something or its own next chore is due.

use super::notify::{race, Either};
use super::ring::{Keep, Ring};
use io_uring::{opcode, types::Fd};
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// An eventfd: rung by any thread, waited on by one core.
#[derive(Debug)]
pub struct Doorbell {
    fd: i32,
}

impl Doorbell {
    pub fn new() -> io::Result<Arc<Doorbell>> {
        // SAFETY: eventfd(2) with valid flags; the descriptor is owned here.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Doorbell { fd }))
    }

    /// Wakes the core (or makes its next wait return at once).
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd. It fails
        // only when the counter is about to overflow: rung already.
        unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
    }

    /// Resolves once rung since the last wait, or after `timeout`.
    pub async fn wait(&self, ring: &Rc<Ring>, timeout: Duration) {
        let fd = self.fd;
        // SAFETY: an all-zero sockaddr_storage is a valid value (plain
        // bytes); a poll keeps no memory of ours, so it is merely carried.
        let keep: Keep = Box::new((unsafe { std::mem::zeroed() }, 0));
        let op = ring.start(keep, |_| {
            opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32).build()
        });
        let mut op = pin!(op);
        if let Either::Right(()) = race(op.as_mut(), super::sleep(timeout)).await {
            // Not rung: end the poll, so none is left waiting in the kernel.
            op.cancel();
            op.await;
        }
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking
        // eventfd, which resets it (EAGAIN when it was not rung: fine).
        unsafe { libc::read(fd, (&mut count as *mut u64).cast(), 8) };
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// A channel's sending end that rings its receiver's doorbell.
#[derive(Debug)]
pub struct RingingSender<T> {
    tx: crossbeam_channel::Sender<T>,
    bell: Arc<Doorbell>,
}

impl<T> Clone for RingingSender<T> {
    fn clone(&self) -> Self {
        RingingSender {
            tx: self.tx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> RingingSender<T> {
    pub fn new(tx: crossbeam_channel::Sender<T>, bell: Arc<Doorbell>) -> RingingSender<T> {
        RingingSender { tx, bell }
    }

    /// Sends (waiting for room), then rings. Err: the receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), crossbeam_channel::SendError<T>> {
        self.tx.send(msg)?;
        self.bell.ring();
        Ok(())
    }

    /// Sends if there is room, then rings.
    pub fn try_send(&self, msg: T) -> Result<(), crossbeam_channel::TrySendError<T>> {
        self.tx.try_send(msg)?;
        self.bell.ring();
        Ok(())
    }
}

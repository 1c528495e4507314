//! The core's own io_uring: set up the modern way (completions are run only
//! when this thread asks for them, so no other CPU interrupts it), a table
//! of operations in flight, and the driver task that submits and reaps.
//!
//! glommio keeps scheduling tasks, timers and channels; every socket byte
//! of the core goes through this ring instead. The driver runs as one
//! glommio task: each turn hands everything queued since the last turn to
//! the kernel and collects completions in one `io_uring_enter`, wakes the
//! tasks whose operations completed and yields so they run. With nothing
//! in flight or ready it sleeps on an eventfd the ring signals, which
//! glommio awaits like any file.

use glommio::io::BufferedFile;
use io_uring::{cqueue, squeue, IoUring};
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{fence, Ordering};
use std::task::{Poll, Waker};

use super::bufs::BufRing;
use crate::runtime::notify::{race, Notify};

/// How the kernel runs this ring's completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN` (Linux 6.1+): completions wait until
    /// the core asks for them in its own `io_uring_enter`.
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG` (Linux 5.19+): completions run at the
    /// core's next kernel entry, without interrupting it.
    CoopTaskrun,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::DeferTaskrun => "defer_taskrun",
            Mode::CoopTaskrun => "coop_taskrun",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::DeferTaskrun => "SINGLE_ISSUER|DEFER_TASKRUN|TASKRUN_FLAG",
            Mode::CoopTaskrun => "COOP_TASKRUN|TASKRUN_FLAG",
        }
    }
}

/// Submission queue entries per ring; the completion queue is 8 times
/// larger since every socket keeps a multishot receive armed.
const SQ_ENTRIES: u32 = 1024;
const CQ_ENTRIES: u32 = 8 * SQ_ENTRIES;

/// user_data of operations whose completion nobody needs (cancellations,
/// closes): no slot is taken for them.
pub(crate) const IGNORED: u64 = u64::MAX;

/// Builds a ring in `mode`.
pub(crate) fn build(mode: Mode, entries: u32) -> io::Result<IoUring> {
    let mut b = IoUring::builder();
    b.setup_cqsize(entries * 8).setup_taskrun_flag();
    match mode {
        Mode::DeferTaskrun => b.setup_single_issuer().setup_defer_taskrun(),
        Mode::CoopTaskrun => b.setup_coop_taskrun(),
    };
    b.build(entries)
}

/// Memory the kernel reads while a one-shot operation is in flight (the
/// address of a connect). The operation's slot owns it until the completion
/// arrives, so a future that is dropped early never frees it under the
/// kernel.
pub(crate) type Keep = Box<(libc::sockaddr_storage, libc::socklen_t)>;

/// The owner of an operation that handles its completions itself: a
/// multishot receive or accept (each completion goes to its queue), or a
/// send (which starts the next one). The slot holds the owner, and with it
/// any memory the kernel uses, until the kernel ends the operation.
pub(crate) trait Completion {
    fn completed(self: Rc<Self>, ring: &Ring, res: i32, flags: u32);
}

enum Slot {
    Free,
    Once {
        result: Option<i32>,
        waker: Option<Waker>,
        keep: Keep,
        /// Its future was dropped: free the slot (and `keep`) on completion.
        orphan: bool,
    },
    Owned(Rc<dyn Completion>),
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    fn take(&mut self, slot: Slot) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) -> Slot {
        self.free.push(i);
        std::mem::replace(&mut self.slots[i as usize], Slot::Free)
    }
}

/// Counters of the ring's work, for `/stats`.
#[derive(Default, Debug, Clone, Copy)]
pub struct RingCounters {
    /// io_uring_enter calls made by the driver (submit and reap).
    pub enters: u64,
    pub completions: u64,
    /// Times the driver slept on its eventfd.
    pub parks: u64,
    /// Receives the kernel ended for want of a provided buffer.
    pub no_buffers: u64,
}

/// One core's ring. Owned by its core (`Rc`), never shared across threads.
pub struct Ring {
    uring: RefCell<IoUring>,
    slots: RefCell<Slots>,
    mode: Mode,
    /// Provided buffers for client sockets (small requests) and upstream
    /// sockets (large reply streams).
    pub(crate) client_bufs: BufRing,
    pub(crate) upstream_bufs: BufRing,
    /// Signalled by the kernel when a completion is ready while the driver
    /// sleeps (registered with the ring; notifications are disabled while
    /// the driver is awake).
    eventfd: OwnedFd,
    /// Wakes a sleeping driver when a task queues an operation.
    queued: Notify,
    sleeping: Cell<bool>,
    stopping: Cell<bool>,
    counters: Cell<RingCounters>,
    /// Completions copied out of the queue before they are handled.
    reaped: RefCell<Vec<(u64, i32, u32)>>,
}

/// Client sockets' provided buffers: 2048 of 4 KiB (one request batch).
const CLIENT_BUFS: (u16, usize) = (2048, 4096);
/// Upstream sockets' provided buffers: 256 of 32 KiB (coalesced replies).
const UPSTREAM_BUFS: (u16, usize) = (256, 32 * 1024);

impl Ring {
    /// Creates the ring of the calling thread (the core's), in `mode`.
    pub fn new(mode: Mode) -> io::Result<Rc<Ring>> {
        let uring = build(mode, SQ_ENTRIES)?;
        // SAFETY: eventfd(2) with valid flags; the fd is owned from here on.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: efd is a fresh descriptor nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(efd) };
        uring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        let client_bufs = BufRing::new(&uring, 0, CLIENT_BUFS.0, CLIENT_BUFS.1)?;
        let upstream_bufs = BufRing::new(&uring, 1, UPSTREAM_BUFS.0, UPSTREAM_BUFS.1)?;
        // SAFETY: the driver is awake at first; it enables notifications
        // only before it sleeps. The flag is a plain word in the shared CQ.
        uring.completion_shared_disable_eventfd();
        Ok(Rc::new(Ring {
            uring: RefCell::new(uring),
            slots: RefCell::new(Slots::default()),
            mode,
            client_bufs,
            upstream_bufs,
            eventfd,
            queued: Notify::default(),
            sleeping: Cell::new(false),
            stopping: Cell::new(false),
            counters: Cell::new(RingCounters::default()),
            reaped: RefCell::new(Vec::with_capacity(CQ_ENTRIES as usize)),
        }))
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn counters(&self) -> RingCounters {
        let mut c = self.counters.get();
        c.no_buffers = self.client_bufs.exhausted() + self.upstream_bufs.exhausted();
        c
    }

    fn count(&self, f: impl FnOnce(&mut RingCounters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    /// Queues `sqe` for the driver's next turn.
    ///
    /// # Safety
    /// Every pointer in `sqe` must stay valid until its completion: point
    /// into the `Keep` of its slot, a provided buffer ring, or memory the
    /// caller otherwise guarantees to outlive the operation.
    pub(crate) unsafe fn push(&self, sqe: &squeue::Entry) {
        let mut uring = self.uring.borrow_mut();
        // SAFETY: the caller guarantees the entry's memory (see above).
        while unsafe { uring.submission().push(sqe) }.is_err() {
            // Queue full: hand what is queued to the kernel now.
            if let Err(e) = uring.submit() {
                if e.raw_os_error() != Some(libc::EBUSY) && e.raw_os_error() != Some(libc::EINTR) {
                    eprintln!("keyway: io_uring submit failed: {e}");
                }
            }
        }
        drop(uring);
        if self.sleeping.get() {
            self.queued.notify();
        }
    }

    /// Starts a one-shot operation: `build` makes its entry from the memory
    /// kept for it. Await the returned future for the result.
    pub(crate) fn start(
        self: &Rc<Self>,
        keep: Keep,
        build: impl FnOnce(&Keep) -> squeue::Entry,
    ) -> Op {
        let mut slots = self.slots.borrow_mut();
        let i = slots.take(Slot::Once {
            result: None,
            waker: None,
            keep,
            orphan: false,
        });
        let Slot::Once { keep, .. } = &slots.slots[i as usize] else {
            unreachable!("the slot was just filled")
        };
        let sqe = build(keep).user_data(i as u64);
        drop(slots);
        // SAFETY: the entry points into `keep`, owned by slot i until the
        // completion arrives (an early drop of `Op` only orphans the slot).
        unsafe { self.push(&sqe) };
        Op {
            ring: self.clone(),
            slot: i,
            done: false,
        }
    }

    /// Starts an operation whose completions go to `owner`. Returns its
    /// user_data (to cancel it).
    ///
    /// # Safety
    /// As for `push`: the entry's memory must outlive the operation (the
    /// owner, held by the slot until then, may keep it).
    pub(crate) unsafe fn start_owned(&self, owner: Rc<dyn Completion>, sqe: squeue::Entry) -> u64 {
        let i = self.slots.borrow_mut().take(Slot::Owned(owner)) as u64;
        // SAFETY: forwarded to the caller.
        unsafe { self.push(&sqe.user_data(i)) };
        i
    }

    /// Asks the kernel to end the operation `user_data` (its completion
    /// still arrives, with -ECANCELED).
    pub(crate) fn cancel(&self, user_data: u64) {
        let sqe = io_uring::opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(IGNORED);
        // SAFETY: a cancellation refers to no memory.
        unsafe { self.push(&sqe) };
    }

    /// Closes `fd` in submission order: operations queued before on the
    /// same descriptor are issued first, and the number is not reused
    /// while any of them could still look it up.
    pub(crate) fn close(&self, fd: i32) {
        let sqe = io_uring::opcode::Close::new(io_uring::types::Fd(fd))
            .build()
            .user_data(IGNORED);
        // SAFETY: a close refers to no memory.
        unsafe { self.push(&sqe) };
    }

    /// One turn: submit what is queued, run the kernel's pending completion
    /// work, and handle every completion. Returns how many were handled or
    /// submitted.
    fn turn(&self) -> usize {
        let mut reaped = self.reaped.borrow_mut();
        let submitted = {
            let mut uring = self.uring.borrow_mut();
            let sq = uring.submission();
            let queued = sq.len();
            let taskrun = sq.taskrun() || sq.cq_overflow();
            drop(sq);
            if queued > 0 || taskrun {
                self.count(|c| c.enters += 1);
                // With a DEFER_TASKRUN ring, submit_and_wait adds GETEVENTS
                // when the kernel flagged pending completion work.
                match uring.submit_and_wait(0) {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                        ) => {}
                    Err(e) => eprintln!("keyway: io_uring_enter failed: {e}"),
                }
            }
            reaped.clear();
            reaped.extend(
                uring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            queued
        };
        let n = reaped.len();
        if n > 0 {
            self.count(|c| c.completions += n as u64);
        }
        for &(ud, res, flags) in reaped.iter() {
            self.complete(ud, res, flags);
        }
        n + submitted
    }

    fn complete(&self, ud: u64, res: i32, flags: u32) {
        if ud == IGNORED {
            return;
        }
        let i = ud as u32;
        let mut slots = self.slots.borrow_mut();
        match &mut slots.slots[i as usize] {
            Slot::Once {
                result,
                waker,
                orphan,
                ..
            } => {
                if *orphan {
                    // Drops the kept memory: the kernel is done with it.
                    slots.release(i);
                } else {
                    *result = Some(res);
                    let w = waker.take();
                    drop(slots);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
            }
            Slot::Owned(owner) => {
                let owner = owner.clone();
                if !cqueue::more(flags) {
                    slots.release(i);
                }
                drop(slots);
                owner.completed(self, res, flags);
            }
            Slot::Free => {
                debug_assert!(false, "completion for a free slot {i}");
            }
        }
    }

    /// Runs the ring until `stop` is called: the core spawns this once.
    pub async fn drive(self: Rc<Self>) {
        // glommio awaits the eventfd through its own ring; it gets a
        // duplicate so that each side closes its own descriptor.
        // SAFETY: dup of a descriptor we own; BufferedFile owns the copy.
        let dup = unsafe { libc::fcntl(self.eventfd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            eprintln!(
                "keyway: cannot duplicate the ring's eventfd: {}",
                io::Error::last_os_error()
            );
            return;
        }
        // SAFETY: `dup` is a fresh descriptor handed over to glommio.
        let efd = Rc::new(unsafe { BufferedFile::from_raw_fd(dup) });
        // The eventfd read stays armed across turns until it completes.
        let mut parked: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
        loop {
            if self.turn() > 0 {
                // Let the woken tasks run (and queue their next operations)
                // before the next turn; glommio preempts us when it must.
                yield_now().await;
                continue;
            }
            if self.stopping.get() {
                break;
            }
            // Nothing ready: let the kernel signal the eventfd, then check
            // once more for work that arrived before notifications were on.
            self.uring.borrow().completion_shared_enable_eventfd();
            fence(Ordering::SeqCst);
            if self.work_pending() {
                self.uring.borrow().completion_shared_disable_eventfd();
                continue;
            }
            self.count(|c| c.parks += 1);
            self.sleeping.set(true);
            let wait = parked.get_or_insert_with(|| {
                let efd = efd.clone();
                Box::pin(async move {
                    let _ = efd.read_at(0, 8).await;
                })
            });
            if let crate::runtime::notify::Either::Left(()) =
                race(wait.as_mut(), self.queued.wait()).await
            {
                parked = None;
            }
            self.sleeping.set(false);
            self.uring.borrow().completion_shared_disable_eventfd();
        }
    }

    /// Work for a turn: queued submissions or completion work the kernel
    /// flagged.
    fn work_pending(&self) -> bool {
        let mut uring = self.uring.borrow_mut();
        let sq = uring.submission();
        !sq.is_empty() || sq.taskrun() || sq.cq_overflow() || {
            drop(sq);
            !uring.completion().is_empty()
        }
    }

    /// Ends the driver after its current turn.
    pub fn stop(&self) {
        self.stopping.set(true);
        self.queued.notify();
    }
}

/// The eventfd switch lives in the completion queue's shared flags word.
trait EventfdSwitch {
    fn completion_shared_enable_eventfd(&self);
    fn completion_shared_disable_eventfd(&self);
}

impl EventfdSwitch for IoUring {
    fn completion_shared_enable_eventfd(&self) {
        // SAFETY: only this thread touches the ring; the queue view lives
        // for this call and no other view of the CQ is alive meanwhile
        // (every other access borrows the RefCell mutably).
        unsafe { self.completion_shared() }.enable_eventfd();
    }

    fn completion_shared_disable_eventfd(&self) {
        // SAFETY: as above.
        unsafe { self.completion_shared() }.disable_eventfd();
    }
}

/// A one-shot operation in flight. Resolves to its result and the memory
/// that was kept for it; dropped early, it leaves that memory to the slot
/// until the kernel completes.
pub(crate) struct Op {
    ring: Rc<Ring>,
    slot: u32,
    done: bool,
}

impl Future for Op {
    type Output = (i32, Keep);

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut slots = self.ring.slots.borrow_mut();
        let Slot::Once { result, waker, .. } = &mut slots.slots[self.slot as usize] else {
            unreachable!("an Op owns a one-shot slot until it completes")
        };
        match result.take() {
            Some(res) => {
                let Slot::Once { keep, .. } = slots.release(self.slot) else {
                    unreachable!()
                };
                drop(slots);
                self.done = true;
                Poll::Ready((res, keep))
            }
            None => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Op {
    /// Asks the kernel to end this operation early (the future still
    /// resolves, usually with -ECANCELED).
    pub(crate) fn cancel(&self) {
        if !self.done {
            self.ring.cancel(self.slot as u64);
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.ring.slots.borrow_mut();
        if let Slot::Once {
            result,
            orphan,
            waker,
            ..
        } = &mut slots.slots[self.slot as usize]
        {
            if result.is_some() {
                // Completed but never polled: the kernel is done.
                slots.release(self.slot);
            } else {
                *orphan = true;
                *waker = None;
            }
        }
    }
}

/// Goes to the back of glommio's run queue once.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

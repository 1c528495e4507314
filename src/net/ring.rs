//! The core's own io_uring: set up the modern way (completions are run only
//! when this thread asks for them, so no other CPU interrupts it), a table
//! of operations in flight, and the driver task that submits and reaps.
//!
//! glommio keeps scheduling the core's tasks; every socket byte of the core
//! goes through this ring instead, and the core's timers live beside it
//! (`timer`). The driver runs as one glommio task: each turn hands
//! everything queued since the last turn to the kernel and collects
//! completions in one `io_uring_enter`, fires due timers, wakes the tasks
//! whose operations completed and yields so they run. When a turn finds
//! nothing and no other task ran since (every task of the core is spawned
//! with `spawn`, which counts polls), nothing can happen on this core but a
//! completion or a timer: the driver waits for either in the same single
//! `io_uring_enter`. (An eventfd awaited through glommio, the other way to
//! sleep, costs glommio's park: about three more system calls and a
//! membarrier per sleep.)
//!
//! The kernel's structures and flags for the raw `io_uring_enter` are in
//! `ring_abi`; `spawn`, `now` and the yield the driver uses in `task`.

use io_uring::{cqueue, squeue, IoUring};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::batch::BatchTarget;
use super::bufs::BufRing;
use super::ring_abi::{
    register_ring, GeteventsArg, KernelTimespec, ENTER_EXT_ARG, ENTER_GETEVENTS, ENTER_NO_IOWAIT,
    ENTER_REGISTERED_RING,
};
pub use super::task::{now, spawn};
use super::task::{yield_now, NOW, POLLS};
use super::timer::{Sleep, Timers};

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
    /// io_uring_enter calls made by the driver (submit and reap, or wait).
    pub enters: u64,
    pub completions: u64,
    /// Times the driver waited in the kernel with nothing to do.
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
    timers: Rc<RefCell<Timers>>,
    /// The ring's registered index (IORING_REGISTER_RING_FDS): enters skip
    /// the descriptor lookup. None where the kernel cannot (before 5.18).
    ring_index: Option<u32>,
    /// How long the driver busy-polls before waiting in the kernel
    /// (`proxy.spin_before_park`; zero by default).
    spin: Duration,
    /// Where the kernel has batch wait timeouts (IORING_FEAT_MIN_TIMEOUT,
    /// 6.12): queued submissions go out with the wait, in one system call,
    /// and the wait asks for this many completions. None before 6.12.
    batch: Option<Cell<BatchTarget>>,
    /// Since when submissions are left queued for the next wait (see
    /// `turn`).
    held_since: Cell<Option<Instant>>,
    /// Waits need not count as I/O wait (IORING_FEAT_NO_IOWAIT, 6.15): an
    /// idle proxy does not show up as a disk-bound host.
    no_iowait: bool,
    stopping: Cell<bool>,
    /// Turns of the driver, and quiet turns (nothing to do), for `settle`.
    turns: Cell<u64>,
    quiet: Cell<u64>,
    settling: RefCell<Vec<Waker>>,
    counters: Cell<RingCounters>,
    /// Completions copied out of the queue before they are handled.
    reaped: RefCell<Vec<(u64, i32, u32)>>,
    /// Completions set aside by `push` when the queue was full.
    later: RefCell<Vec<(u64, i32, u32)>>,
}

/// Client sockets' provided buffers: 2048 of 4 KiB (one request batch).
const CLIENT_BUFS: (u16, usize) = (2048, 4096);
/// Upstream sockets' provided buffers: 256 of 32 KiB (coalesced replies).
const UPSTREAM_BUFS: (u16, usize) = (256, 32 * 1024);

impl Ring {
    /// Creates the ring of the calling thread (the core's), in `mode`, and
    /// makes it the thread's current ring (for `spawn` and `sleep`).
    pub fn new(mode: Mode, spin: Duration) -> io::Result<Rc<Ring>> {
        let uring = build(mode, SQ_ENTRIES)?;
        let ring_index = register_ring(&uring);
        let batch = uring
            .params()
            .is_feature_min_timeout()
            .then(|| Cell::new(BatchTarget::default()));
        let no_iowait = uring.params().is_feature_no_iowait();
        let client_bufs = BufRing::new(&uring, 0, CLIENT_BUFS.0, CLIENT_BUFS.1)?;
        let upstream_bufs = BufRing::new(&uring, 1, UPSTREAM_BUFS.0, UPSTREAM_BUFS.1)?;
        let ring = Rc::new(Ring {
            uring: RefCell::new(uring),
            slots: RefCell::new(Slots::default()),
            mode,
            client_bufs,
            upstream_bufs,
            timers: Rc::new(RefCell::new(Timers::default())),
            ring_index,
            spin,
            batch,
            held_since: Cell::new(None),
            no_iowait,
            stopping: Cell::new(false),
            turns: Cell::new(0),
            quiet: Cell::new(0),
            settling: RefCell::new(Vec::new()),
            counters: Cell::new(RingCounters::default()),
            reaped: RefCell::new(Vec::with_capacity(CQ_ENTRIES as usize)),
            later: RefCell::new(Vec::new()),
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(ring.clone()));
        Ok(ring)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn counters(&self) -> RingCounters {
        let mut c = self.counters.get();
        c.no_buffers = self.client_bufs.exhausted() + self.upstream_bufs.exhausted();
        c
    }

    /// Provided buffers holding received bytes not read yet.
    pub fn buffers_in_use(&self) -> u64 {
        let total = |b: &BufRing| b.entries() as u64 - b.available() as u64;
        total(&self.client_bufs) + total(&self.upstream_bufs)
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
            let queued = uring.submission().len() as u32;
            match self.enter(&uring, queued, 0, 0, None, 0) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // The completion queue is full: set its entries aside
                    // (the next turn handles them first) to make room.
                    let mut later = self.later.borrow_mut();
                    later.extend(
                        uring
                            .completion()
                            .map(|c| (c.user_data(), c.result(), c.flags())),
                    );
                    let _ = self.enter(&uring, 0, 0, ENTER_GETEVENTS, None, 0);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => {
                    crate::error!("io_uring submit failed: {e}");
                    return;
                }
            }
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
    fn turn(&self, now: Instant) -> usize {
        let mut reaped = self.reaped.borrow_mut();
        let submitted = {
            let mut uring = self.uring.borrow_mut();
            let sq = uring.submission();
            let queued = sq.len();
            let taskrun = sq.taskrun() || sq.cq_overflow();
            drop(sq);
            // With a batch timeout, queued submissions can wait for the
            // enter that waits (one system call for both, see `wait`);
            // completion work cannot. They wait `HOLD_MAX` at most: a core
            // kept busy by its tasks (a huge command a slice at a time)
            // may not wait for a long while.
            let since = self.held_since.get();
            let held_long = since.is_some_and(|t| now.saturating_duration_since(t) >= HOLD_MAX);
            let enter = taskrun || (queued > 0 && (self.batch.is_none() || held_long));
            self.held_since.set(match since {
                _ if enter || queued == 0 => None,
                Some(t) => Some(t),
                None => Some(now),
            });
            if enter {
                self.count(|c| c.enters += 1);
                // Deferred completion work runs only in an enter that asks
                // for events; inline completions of what is submitted are
                // posted either way.
                let flags = if taskrun { ENTER_GETEVENTS } else { 0 };
                if let Err(e) = self.enter(&uring, queued as u32, 0, flags, None, 0) {
                    if !matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) {
                        crate::error!("io_uring_enter failed: {e}");
                    }
                }
            }
            reaped.clear();
            reaped.append(&mut self.later.borrow_mut());
            reaped.extend(
                uring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            // Submissions left queued are not progress: a turn that only
            // holds them is quiet, so the driver goes on to `wait`.
            if enter {
                queued
            } else {
                0
            }
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

    /// Runs the ring until `stop` is called: the core spawns this once
    /// (with glommio's own spawn: its polls are not counted).
    pub async fn drive(self: Rc<Self>) {
        loop {
            let now = Instant::now();
            NOW.with(|n| n.set(Some(now)));
            let fired = self.timers.borrow_mut().fire(now);
            let busy = self.turn(now) + fired > 0;
            self.turns.set(self.turns.get() + 1);
            if busy {
                self.wake_settling();
                // Let the woken tasks run (and queue their next operations)
                // before the next turn; glommio preempts us when it must.
                yield_now().await;
                continue;
            }
            if self.stopping.get() {
                break;
            }
            if !self.settling.borrow().is_empty() {
                // A quiet moment: batches waiting for one go out now.
                self.quiet.set(self.quiet.get() + 1);
                self.wake_settling();
                yield_now().await;
                continue;
            }
            // Nothing ready here: give every other runnable task its turn.
            let polls = POLLS.with(Cell::get);
            yield_now().await;
            if POLLS.with(Cell::get) != polls || self.work_pending() {
                continue;
            }
            if !self.spin.is_zero() && self.spin_for_work().await {
                continue;
            }
            // No task ran: only a completion or a timer can wake this core.
            self.wait();
        }
    }

    fn wake_settling(&self) {
        let waiting = std::mem::take(&mut *self.settling.borrow_mut());
        for w in waiting {
            w.wake();
        }
    }

    /// Resolves at the core's next quiet moment (a turn that found nothing
    /// to do), or after `SETTLE_TURNS` busy turns: an upstream connection
    /// waits for it before sending, so the requests every session
    /// dispatches meanwhile join the same send (fewer, larger writes to the
    /// backend, whose read loop is then cheaper per request).
    pub fn settle(self: &Rc<Self>) -> Settle {
        Settle {
            ring: self.clone(),
            turns: self.turns.get(),
            quiet: self.quiet.get(),
        }
    }

    /// Busy-polls (flags in shared memory, no system call) for up to
    /// `spin`, letting other tasks run; true when work came.
    async fn spin_for_work(&self) -> bool {
        let until = Instant::now() + self.spin;
        while Instant::now() < until {
            let polls = POLLS.with(Cell::get);
            yield_now().await;
            if POLLS.with(Cell::get) != polls || self.work_pending() {
                return true;
            }
        }
        false
    }

    /// Submits what is queued and waits in the kernel for one completion,
    /// or until the next timer is due.
    fn wait(&self) {
        let timeout = self
            .timers
            .borrow_mut()
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            return;
        }
        self.count(|c| {
            c.parks += 1;
            c.enters += 1;
        });
        let mut uring = self.uring.borrow_mut();
        let queued = uring.submission().len() as u32;
        self.held_since.set(None);
        let ts = timeout.map(|t| KernelTimespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as i64,
        });
        // What is queued is submitted by this same call. Sends mostly
        // complete at once, so waiting for one completion would return at
        // once: with a batch timeout (Linux 6.12), wait for the batch
        // target beyond what was submitted, or for whatever came after
        // its timeout.
        let (min_complete, min_wait) = self
            .batch
            .as_ref()
            .map_or((1, 0), |b| b.get().wait_for(queued));
        let flags = ENTER_GETEVENTS | if self.no_iowait { ENTER_NO_IOWAIT } else { 0 };
        if let Err(e) = self.enter(&uring, queued, min_complete, flags, ts.as_ref(), min_wait) {
            if !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
            ) {
                crate::error!("io_uring_enter (wait) failed: {e}");
            }
        }
        if let Some(batch) = &self.batch {
            let came = (uring.completion().len() as u32).saturating_sub(queued);
            batch.set(batch.get().after_wait(came));
        }
    }

    /// io_uring_enter, by the registered ring index when there is one.
    fn enter(
        &self,
        uring: &IoUring,
        to_submit: u32,
        min_complete: u32,
        mut flags: u32,
        timeout: Option<&KernelTimespec>,
        min_wait_usec: u32,
    ) -> io::Result<usize> {
        let (fd, registered) = match self.ring_index {
            Some(i) => (i as libc::c_long, ENTER_REGISTERED_RING),
            None => (uring.as_raw_fd() as libc::c_long, 0),
        };
        flags |= registered;
        let arg = GeteventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec,
            ts: timeout.map_or(0, |t| t as *const KernelTimespec as u64),
        };
        let (argp, argsz) = if timeout.is_some() || min_wait_usec > 0 {
            flags |= ENTER_EXT_ARG;
            (
                &arg as *const GeteventsArg as libc::c_long,
                std::mem::size_of::<GeteventsArg>() as libc::c_long,
            )
        } else {
            (0, 0)
        };
        // SAFETY: io_uring_enter on this thread's ring (SINGLE_ISSUER); the
        // queue tail was published when the SubmissionQueue view dropped;
        // `arg` and the timespec it points to outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit as libc::c_long,
                min_complete as libc::c_long,
                flags as libc::c_long,
                argp,
                argsz,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Work for a turn: queued submissions, completion work the kernel
    /// flagged, or completions already posted.
    fn work_pending(&self) -> bool {
        let mut uring = self.uring.borrow_mut();
        let sq = uring.submission();
        // (Queued submissions count only when no wait will carry them.)
        (!sq.is_empty() && self.batch.is_none())
            || sq.taskrun()
            || sq.cq_overflow()
            || !self.later.borrow().is_empty()
            || {
                drop(sq);
                !uring.completion().is_empty()
            }
    }

    /// Ends the driver after its current turn.
    pub fn stop(&self) {
        self.stopping.set(true);
    }

    pub(crate) fn timers(&self) -> &Rc<RefCell<Timers>> {
        &self.timers
    }
}

/// How long submissions may wait for the driver's next wait while the
/// core's tasks keep it busy (a wait comes within microseconds otherwise).
const HOLD_MAX: Duration = Duration::from_micros(100);

thread_local! {
    /// The ring of the core running on this thread.
    static CURRENT: RefCell<Option<Rc<Ring>>> = const { RefCell::new(None) };
}

/// Resolves after `duration`, on the current core's clock.
///
/// # Panics
/// Outside a core (no ring on this thread): a programming error.
pub fn sleep(duration: Duration) -> Sleep {
    CURRENT.with(|c| {
        let ring = c.borrow();
        let ring = ring
            .as_ref()
            .expect("sleep() runs on a core, whose ring is set up first");
        Sleep::new(ring.timers(), duration)
    })
}

/// Busy turns a batch waits at most for a quiet moment.
const SETTLE_TURNS: u64 = 2;

/// See `Ring::settle`.
pub struct Settle {
    ring: Rc<Ring>,
    turns: u64,
    quiet: u64,
}

impl Future for Settle {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let r = &self.ring;
        if r.quiet.get() > self.quiet || r.turns.get() >= self.turns + SETTLE_TURNS {
            return Poll::Ready(());
        }
        r.settling.borrow_mut().push(cx.waker().clone());
        Poll::Pending
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

/// Memory glommio registers for io_uring buffers: keyway does network I/O
/// into its own buffers, so a small pool keeps RLIMIT_MEMLOCK needs low.
const GLOMMIO_IO_MEMORY: usize = 512 * 1024;

/// glommio's preempt timer, for a scheduler with one task queue.
const GLOMMIO_PREEMPT: Duration = Duration::from_secs(3600);

/// The glommio executor of a core (or of a test playing one).
///
/// glommio 0.9 sleeps in its own ring after a round of its scheduler that
/// ran no task, and a round that starts with its preempt timer already
/// fired runs none. With the default timer (100 ms), a thread held up
/// that long between glommio arming the timer and looking at it (found
/// under valgrind; a loaded host can do it) made glommio sleep with the
/// driver still runnable, and nothing of keyway's ring wakes that sleep:
/// the core stopped until something else did (minutes). Preemption is
/// for sharing a CPU between task queues, and a core has one, so its timer
/// is set an hour out: glommio's scheduler then never leaves the driver's
/// queue while the driver runs (its rounds poll no glommio ring keyway
/// does not use), and the hold-up it would take is an hour.
pub fn executor(placement: glommio::Placement) -> glommio::LocalExecutorBuilder {
    glommio::LocalExecutorBuilder::new(placement)
        .io_memory(GLOMMIO_IO_MEMORY)
        .ring_depth(256)
        .preempt_timer(GLOMMIO_PREEMPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glommio_never_preempts_a_core() {
        // glommio asks for preemption (`need_preempt`) when its timer has
        // fired; a round that begins so parks the core (see `executor`).
        // Tasks busy for 5 ms each, 100 ms of them in all: the default timer
        // would have fired while one ran.
        let mode = crate::net::probe().expect("io_uring");
        let preempted = executor(glommio::Placement::Unbound)
            .spawn(move || async move {
                let ring = Ring::new(mode, Duration::ZERO).expect("ring");
                let driver = glommio::spawn_local(ring.clone().drive());
                let mut preempted = 0;
                for _ in 0..40 {
                    sleep(Duration::from_millis(1)).await;
                    std::thread::sleep(Duration::from_millis(5));
                    preempted += glommio::executor().need_preempt() as u32;
                }
                ring.stop();
                driver.await;
                preempted
            })
            .expect("executor")
            .join()
            .expect("ran");
        assert_eq!(preempted, 0);
    }
}

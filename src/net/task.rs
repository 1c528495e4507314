//! The core's tasks: `spawn`, which counts their polls (so the driver can
//! tell whether any task ran since its last turn), the time of the
//! driver's current turn (`now`), and a yield to the back of glommio's run
//! queue.
//!
//! Separate from `ring` because none of it needs a ring: the driver reads
//! the poll count and sets the turn's time. `ring` re-exports `now` and
//! `spawn`, so their old paths still work.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The waker of the task that waits on one thing (a socket's bytes, its
/// send, a batch's replies), kept between waits: a task that waits again
/// finds its waker there (no clone), and a wake uses it by reference (no
/// reference dropped). It wakes only a task that is waiting, once per
/// wait, as a waker taken out at the wake would.
#[derive(Default)]
pub struct KeptWaker {
    waker: RefCell<Option<Waker>>,
    waiting: Cell<bool>,
}

impl KeptWaker {
    /// The task of `waker` waits from now until the next `wake`.
    pub fn wait(&self, waker: &Waker) {
        let mut w = self.waker.borrow_mut();
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
        self.waiting.set(true);
    }

    /// Wakes the waiting task, if one waits.
    pub fn wake(&self) {
        if self.waiting.replace(false) {
            if let Some(w) = &*self.waker.borrow() {
                w.wake_by_ref();
            }
        }
    }
}

thread_local! {
    /// Polls of the core's tasks (see `spawn`).
    pub(super) static POLLS: Cell<u64> = const { Cell::new(0) };
    /// The time of the driver's current turn (see `now`).
    pub(super) static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The time of the core's current turn: what tasks woken in this turn see
/// instead of reading the clock per request. Off by at most one turn,
/// which is what timestamps of requests and replies may be off anyway.
pub fn now() -> Instant {
    NOW.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Spawns a task of this core. Its polls are counted: the driver waits in
/// the kernel only when a turn found nothing and no task ran since, so a
/// task woken by another task always runs first.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> glommio::Task<T> {
    glommio::spawn_local(Counted(fut))
}

/// Spawns `fut` holding `guard` until the task is done or dropped: what a
/// task owns for its whole life (a client's seat, say) without an async
/// block around it.
pub fn spawn_holding<T: 'static, G: 'static>(
    fut: impl Future<Output = T> + 'static,
    guard: G,
) -> glommio::Task<T> {
    glommio::spawn_local(Counted(Holding { fut, _guard: guard }))
}

/// `spawn`'s future: counts the polls of the one it wraps. A struct, not an
/// async block: an async block awaiting a future it captured keeps both
/// the capture and the awaited copy, and a client's task is most of what
/// an idle client costs.
struct Counted<F>(F);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.with(|p| p.set(p.get() + 1));
        // SAFETY: structural pinning: `Counted` never moves its field out
        // and has no Drop of its own, so the field stays where it is pinned.
        unsafe { self.map_unchecked_mut(|c| &mut c.0) }.poll(cx)
    }
}

/// A future that holds `_guard` as long as it lives.
struct Holding<F, G> {
    fut: F,
    _guard: G,
}

impl<F: Future, G> Future for Holding<F, G> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of `fut`: never moved out, and
        // `Holding` has no Drop of its own; `_guard` is never pinned.
        unsafe { self.map_unchecked_mut(|h| &mut h.fut) }.poll(cx)
    }
}

/// Goes to the back of glommio's run queue once.
pub(super) async fn yield_now() {
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

#[cfg(test)]
pub(super) mod tests {
    use super::KeptWaker;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    /// A waker that counts its wakes (the core's other tests use it too).
    pub(in crate::net) struct Counting(pub(in crate::net) AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kept_waker_wakes_a_waiting_task_once_per_wait_and_clones_it_once() {
        let count = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let kept = KeptWaker::default();
        kept.wake(); // nobody waits: nothing happens
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        for round in 1..=3 {
            kept.wait(&waker);
            kept.wake();
            kept.wake(); // a second completion before the task waits again
            assert_eq!(count.0.load(Ordering::SeqCst), round);
        }
        // One clone is kept across the three waits: the test's own Arc,
        // the Waker and the kept clone.
        assert_eq!(Arc::strong_count(&count), 3);
    }
}

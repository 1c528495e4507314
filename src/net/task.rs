//! The core's tasks: `spawn`, which counts their polls (so the driver can
//! tell whether any task ran since its last turn), the time of the
//! driver's current turn (`now`), and a yield to the back of glommio's run
//! queue.
//!
//! Separate from `ring` because none of it needs a ring: the driver reads
//! the poll count and sets the turn's time. `ring` re-exports `now` and
//! `spawn`, so their old paths still work.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

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
    glommio::spawn_local(async move {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            POLLS.with(|p| p.set(p.get() + 1));
            fut.as_mut().poll(cx)
        })
        .await
    })
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

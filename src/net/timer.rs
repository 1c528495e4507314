//! Timers of the core, kept beside its ring: the driver fires them between
//! turns and, when it waits in the kernel, waits no longer than the next
//! one. (glommio's timers live on glommio's own rings; a core whose tasks
//! all wait on its io_uring and these timers can sleep in one system call.)

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

struct Entry {
    /// Bumped when the entry is freed: heap items of an older generation
    /// are stale.
    generation: u32,
    fired: bool,
    waker: Option<Waker>,
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    entries: Vec<Entry>,
    free: Vec<u32>,
}

impl Timers {
    fn add(&mut self, deadline: Instant) -> (u32, u32) {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    fired: false,
                    waker: None,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let generation = self.entries[i as usize].generation;
        self.heap.push(Reverse((deadline, i, generation)));
        (i, generation)
    }

    fn release(&mut self, i: u32) {
        let e = &mut self.entries[i as usize];
        e.generation = e.generation.wrapping_add(1);
        e.fired = false;
        e.waker = None;
        self.free.push(i);
    }

    /// Fires every timer due at `now`; returns how many.
    pub fn fire(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        while let Some(&Reverse((deadline, i, generation))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let e = &mut self.entries[i as usize];
            if e.generation == generation && !e.fired {
                e.fired = true;
                if let Some(w) = e.waker.take() {
                    w.wake();
                }
                fired += 1;
            }
        }
        fired
    }

    /// The earliest deadline of a live timer.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, i, generation))) = self.heap.peek() {
            if self.entries[i as usize].generation == generation {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }
}

/// Resolves once `deadline` has passed (fired by the core's driver).
pub struct Sleep {
    timers: Rc<RefCell<Timers>>,
    slot: u32,
    generation: u32,
    done: bool,
}

impl Sleep {
    pub(crate) fn new(timers: &Rc<RefCell<Timers>>, duration: Duration) -> Sleep {
        let deadline = Instant::now() + duration;
        let (slot, generation) = timers.borrow_mut().add(deadline);
        Sleep {
            timers: timers.clone(),
            slot,
            generation,
            done: false,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let timers = self.timers.clone();
        let mut t = timers.borrow_mut();
        let e = &mut t.entries[self.slot as usize];
        debug_assert_eq!(e.generation, self.generation);
        if e.fired {
            t.release(self.slot);
            self.done = true;
            return Poll::Ready(());
        }
        match &e.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => e.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if !self.done {
            self.timers.borrow_mut().release(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::task::tests::Counting;
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn timers_fire_in_deadline_order_and_dropped_ones_never() {
        let timers = Rc::new(RefCell::new(Timers::default()));
        let count = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut late = Box::pin(Sleep::new(&timers, Duration::from_secs(60)));
        let mut soon = Box::pin(Sleep::new(&timers, Duration::ZERO));
        let dropped = Sleep::new(&timers, Duration::ZERO);
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert!(soon.as_mut().poll(&mut cx).is_pending());
        drop(dropped);
        let now = Instant::now();
        assert_eq!(
            timers.borrow_mut().fire(now),
            1,
            "the dropped timer is stale"
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(soon.as_mut().poll(&mut cx).is_ready());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        let next = timers.borrow_mut().next_deadline().unwrap();
        assert!(next > now + Duration::from_secs(59));
        drop(late);
        assert_eq!(timers.borrow_mut().next_deadline(), None);
        // Freed entries are reused.
        let _again = Sleep::new(&timers, Duration::ZERO);
        assert_eq!(timers.borrow().entries.len(), 3);
    }
}

//! How many completions the driver's wait holds out for.
//!
//! Every time the core sleeps in the kernel and is woken, it pays a context
//! switch and a cross-CPU wake-up; with many clients those cost more than
//! the proxying itself. A wait that asks for several completions (with a
//! batch timeout, so it never holds out long) is woken once for all of
//! them. How many to ask for follows the load: the target grows by one
//! while waits come back with more than they asked for (the completions
//! were arriving faster than the wait could take them) and falls to what
//! came when a wait ran out its timeout. One client alone gets exactly the
//! completion it waits for, never a surplus, so the target stays at one and
//! its requests are not delayed.

/// The largest batch a wait asks for.
pub(crate) const MAX_TARGET: u32 = 32;

/// How long a wait holds out for its batch before it takes what came.
const BATCH_WAIT_USEC: u32 = 50;

/// The completions the next wait asks for, beyond those of what it submits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchTarget {
    target: u32,
}

impl Default for BatchTarget {
    fn default() -> Self {
        BatchTarget { target: 1 }
    }
}

impl BatchTarget {
    /// `(min_complete, min_wait_usec)` for a wait that submits `queued`
    /// operations: the target beyond them, with the batch timeout (none
    /// when a single completion is asked for, which needs no timer).
    pub(crate) fn wait_for(self, queued: u32) -> (u32, u32) {
        match queued + self.target {
            1 => (1, 0),
            n => (n, BATCH_WAIT_USEC),
        }
    }

    /// The target after a wait that asked for its target and found
    /// `came` (beyond its own submissions' completions) when it returned.
    #[must_use]
    pub(crate) fn after_wait(self, came: u32) -> BatchTarget {
        let target = if came > self.target {
            (self.target + 1).min(MAX_TARGET)
        } else if came < self.target {
            came.max(1)
        } else {
            self.target
        };
        BatchTarget { target }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_for_one_completion_needs_no_timeout() {
        let t = BatchTarget::default();
        assert_eq!(t.wait_for(0), (1, 0));
        assert_eq!(t.wait_for(3), (4, BATCH_WAIT_USEC));
        let t = t.after_wait(9).after_wait(9);
        assert_eq!(t.wait_for(0), (3, BATCH_WAIT_USEC));
    }

    #[test]
    fn one_client_keeps_a_target_of_one() {
        let mut t = BatchTarget::default();
        for _ in 0..100 {
            t = t.after_wait(1);
        }
        assert_eq!(t.target, 1);
    }

    #[test]
    fn a_surplus_grows_the_target_one_at_a_time_up_to_the_cap() {
        let mut t = BatchTarget::default();
        t = t.after_wait(5);
        assert_eq!(t.target, 2);
        t = t.after_wait(5);
        assert_eq!(t.target, 3);
        for _ in 0..100 {
            t = t.after_wait(MAX_TARGET + 10);
        }
        assert_eq!(t.target, MAX_TARGET);
    }

    #[test]
    fn a_wait_that_ran_out_falls_to_what_came() {
        let mut t = BatchTarget::default();
        for _ in 0..20 {
            t = t.after_wait(40);
        }
        assert_eq!(t.target, 21);
        t = t.after_wait(6);
        assert_eq!(t.target, 6);
        // A wait ended by a timer with nothing: back to one, never zero.
        t = t.after_wait(0);
        assert_eq!(t.target, 1);
    }
}

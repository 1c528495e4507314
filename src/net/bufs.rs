//! A provided-buffer ring: buffers the kernel picks from when a multishot
//! receive has data, so a socket with nothing to read pins no memory.
//!
//! Ownership of each buffer, the one rule the unsafe code here relies on:
//! - while its id is in the ring (between `recycle` and a completion naming
//!   it), the kernel owns it and may write into it at any time;
//! - from the completion that names it until `recycle`, keyway owns it: the
//!   receiving socket's queue holds the id, and only the task reading that
//!   socket looks at the bytes, in place, before recycling it.
//!
//! The memory is never unmapped: the kernel tears a ring down
//! asynchronously after its descriptor closes, so a core's buffers stay
//! mapped until the process exits (cores live as long as the process).

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::Waker;

pub struct BufRing {
    bgid: u16,
    entries: u16,
    size: usize,
    /// The ring of entries shared with the kernel (page aligned).
    ring: *mut BufRingEntry,
    /// `entries * size` bytes of buffers; buffer `id` starts at `id * size`.
    mem: *mut u8,
    /// Our next tail (the kernel reads it; we publish it with Release).
    tail: Cell<u16>,
    /// Buffers named by completions and not recycled yet.
    out: Cell<u32>,
    /// Receives that ended with no buffer left (counter).
    exhausted: Cell<u64>,
    /// Sockets waiting for buffers to come back before they receive again.
    waiting: RefCell<Vec<Waker>>,
}

fn map(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping; no file, no fixed address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // Receives take the buffers in turn, so every one is touched within
    // a round of the ring: on 4 KiB pages each receive's copy would miss
    // the TLB. Huge pages where the kernel offers them (best effort).
    // SAFETY: advice on the mapping just made, `len` bytes long.
    unsafe { libc::madvise(p, len, libc::MADV_HUGEPAGE) };
    Ok(p.cast())
}

impl BufRing {
    /// Registers `entries` (a power of two) buffers of `size` bytes as
    /// group `bgid` of `uring`.
    pub fn new(uring: &IoUring, bgid: u16, entries: u16, size: usize) -> io::Result<BufRing> {
        assert!(
            entries.is_power_of_two(),
            "buffer ring sizes are powers of two"
        );
        let ring_len = entries as usize * std::mem::size_of::<BufRingEntry>();
        let ring = map(ring_len)?.cast::<BufRingEntry>();
        let mem = map(entries as usize * size)?;
        // SAFETY: `ring` is page aligned and `entries` entries long; it is
        // never unmapped (see the module comment).
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, bgid, 0)
        }
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot register a provided-buffer ring (Linux 5.19+): {e}"),
            )
        })?;
        let bufs = BufRing {
            bgid,
            entries,
            size,
            ring,
            mem,
            tail: Cell::new(0),
            out: Cell::new(entries as u32),
            exhausted: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
        };
        for id in 0..entries {
            bufs.recycle(id);
        }
        Ok(bufs)
    }

    pub fn group(&self) -> u16 {
        self.bgid
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// A completion named buffer `id`: it is ours until `recycle`.
    pub(crate) fn taken(&self) {
        self.out.set(self.out.get() + 1);
    }

    /// The first `len` bytes of buffer `id`.
    ///
    /// # Safety
    /// `id` must have been named by a completion (counted with `taken`) and
    /// not recycled since, and `len` must be at most what that completion
    /// reported: then the kernel does not write these bytes while the slice
    /// lives.
    pub(crate) unsafe fn bytes(&self, id: u16, len: usize) -> &[u8] {
        debug_assert!(id < self.entries && len <= self.size);
        // SAFETY: in bounds of the mapping; owned by us per the contract.
        unsafe { std::slice::from_raw_parts(self.mem.add(id as usize * self.size), len) }
    }

    /// Gives buffer `id` back to the kernel.
    pub(crate) fn recycle(&self, id: u16) {
        debug_assert!(id < self.entries);
        let tail = self.tail.get();
        let mask = self.entries - 1;
        // SAFETY: `tail & mask` indexes the ring; the kernel reads entries
        // only below the published tail, and this one is published below.
        let entry = unsafe { &mut *self.ring.add((tail & mask) as usize) };
        // SAFETY: in bounds of the buffer mapping.
        entry.set_addr(unsafe { self.mem.add(id as usize * self.size) } as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(id);
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail word lives in the ring header (entry 0's reserved
        // field); the kernel reads it with acquire semantics.
        let shared = unsafe { &*(BufRingEntry::tail(self.ring) as *const AtomicU16) };
        shared.store(tail, Ordering::Release);
        self.out.set(self.out.get().saturating_sub(1));
        if !self.waiting.borrow().is_empty() && self.available() >= self.entries as u32 / 4 {
            for w in self.waiting.borrow_mut().drain(..) {
                w.wake();
            }
        }
    }

    /// Buffers the kernel may still pick (approximate: completions not yet
    /// reaped are not counted).
    pub fn available(&self) -> u32 {
        (self.entries as u32).saturating_sub(self.out.get())
    }

    /// A receive ended for want of buffers: wake `waker` once a quarter of
    /// them is back.
    pub(crate) fn wait_for_buffers(&self, waker: &Waker) {
        self.exhausted.set(self.exhausted.get() + 1);
        self.waiting.borrow_mut().push(waker.clone());
    }

    pub fn exhausted(&self) -> u64 {
        self.exhausted.get()
    }

    /// Whether enough buffers are back to receive again after running out.
    pub fn can_resume(&self) -> bool {
        self.available() >= self.entries as u32 / 4
    }
}

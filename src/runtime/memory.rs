//! Giving freed memory back to the system. glibc's malloc keeps what
//! connections freed in the arena of the core thread that freed it: after
//! rounds of 10,000 connections keyway kept 72 MB with nobody connected
//! (issue 12; jemalloc kept 54-58 MB, mimalloc 43 MB, all preloaded over
//! the same binary). `malloc_trim` returns every arena's free pages.

/// Returns the allocator's free pages to the system (glibc: every arena).
/// Takes a few milliseconds for a heap of ~100 MB; called by a core after
/// many sessions ended, never per request.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own
    // arenas; it takes each arena's lock, so it is safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

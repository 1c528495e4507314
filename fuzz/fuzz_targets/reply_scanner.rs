//! Backend bytes: the reply scanner finds what the reference decoder
//! finds, whole and in pieces, and never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyway::resp::reference::check_replies(data);
});

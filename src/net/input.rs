//! The one read-buffer type of sessions and upstream connections.
//!
//! Received bytes are scanned where they arrived (a provided buffer the
//! kernel filled, or TLS plaintext); only what a scan leaves unconsumed (a
//! frame cut at the end of what arrived, or requests held back) is copied
//! here, and later pieces are appended to it until it is consumed. It grows
//! with what arrives, never by a size a peer merely announced, and gives
//! back memory grown by one huge frame once that frame is consumed.

/// Carried bytes above this are freed once consumed instead of kept.
const KEEP: usize = 64 * 1024;

#[derive(Default)]
pub struct Input {
    buf: Vec<u8>,
    /// `buf[start..]` is carried and not consumed yet.
    start: usize,
}

impl Input {
    pub fn new() -> Input {
        Input::default()
    }

    /// Bytes carried over, not consumed yet.
    pub fn carried(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The carried bytes.
    pub fn carried_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The first `n` carried bytes were consumed (outside a scan).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.carried() == 0 {
            self.reset();
        }
    }

    /// Scans a received piece: in place when nothing is carried, else after
    /// the carried bytes. `scan` returns how many bytes it consumed (whole
    /// frames from the start); the rest is carried.
    pub fn feed(&mut self, piece: &[u8], scan: impl FnOnce(&[u8]) -> usize) {
        if self.carried() == 0 {
            self.reset();
            let used = scan(piece).min(piece.len());
            self.buf.extend_from_slice(&piece[used..]);
        } else {
            if self.start > 0 {
                // Only the unconsumed tail moves: at most one cut frame.
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.extend_from_slice(piece);
            self.rescan(scan);
        }
    }

    /// Scans the carried bytes again (after the scanner held back).
    pub fn rescan(&mut self, scan: impl FnOnce(&[u8]) -> usize) {
        let used = scan(&self.buf[self.start..]);
        self.start = (self.start + used).min(self.buf.len());
        if self.carried() == 0 {
            self.reset();
        }
    }

    fn reset(&mut self) {
        self.start = 0;
        self.buf.clear();
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scanner of `N`-byte frames: consumes whole frames, records them.
    fn frames<'a>(n: usize, seen: &'a mut Vec<Vec<u8>>) -> impl FnMut(&[u8]) -> usize + 'a {
        move |b: &[u8]| {
            let whole = b.len() / n * n;
            for f in b[..whole].chunks(n) {
                seen.push(f.to_vec());
            }
            whole
        }
    }

    #[test]
    fn whole_frames_are_scanned_in_place_and_nothing_is_carried() {
        let mut input = Input::new();
        let mut seen = Vec::new();
        input.feed(b"aaabbb", frames(3, &mut seen));
        assert_eq!(seen, vec![b"aaa".to_vec(), b"bbb".to_vec()]);
        assert_eq!(input.carried(), 0);
        assert_eq!(input.buf.capacity(), 0, "nothing was copied");
    }

    #[test]
    fn a_frame_cut_at_a_piece_end_is_carried_and_completed() {
        let mut input = Input::new();
        let mut seen = Vec::new();
        input.feed(b"aaab", frames(3, &mut seen));
        assert_eq!(input.carried(), 1);
        input.feed(b"bbc", frames(3, &mut seen));
        assert_eq!(input.carried(), 1);
        input.feed(b"cc", frames(3, &mut seen));
        assert_eq!(
            seen,
            vec![b"aaa".to_vec(), b"bbb".to_vec(), b"ccc".to_vec()]
        );
        assert_eq!(input.carried(), 0);
    }

    #[test]
    fn random_cuts_give_the_same_frames_as_one_piece() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = Vec::new();
        Input::new().feed(&data, frames(7, &mut whole));
        let mut rng = crate::testing::Rng(12345);
        for _ in 0..50 {
            let mut input = Input::new();
            let mut seen = Vec::new();
            let mut at = 0;
            while at < data.len() {
                let n = (1 + (rng.number() % 40) as usize).min(data.len() - at);
                input.feed(&data[at..at + n], frames(7, &mut seen));
                at += n;
            }
            assert_eq!(seen, whole);
        }
    }

    #[test]
    fn held_back_bytes_are_rescanned_later() {
        let mut input = Input::new();
        input.feed(b"aaabbb", |_| 0);
        assert_eq!(input.carried(), 6);
        let mut seen = Vec::new();
        input.rescan(frames(3, &mut seen));
        assert_eq!(seen.len(), 2);
        assert_eq!(input.carried(), 0);
    }

    #[test]
    fn memory_grown_by_a_huge_frame_is_given_back() {
        let mut input = Input::new();
        let big = vec![1u8; 1 << 20];
        input.feed(&big[..1000], |_| 0);
        input.feed(&big[1000..], |b| b.len());
        assert_eq!(input.carried(), 0);
        assert!(input.buf.capacity() <= KEEP);
    }
}

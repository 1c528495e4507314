//! What unit tests share; compiled for tests only.

/// A xorshift64 generator: the same numbers on every run, so a random test
/// that fails fails again the same way. Seed it with any nonzero value.
pub struct Rng(pub u64);

impl Rng {
    pub fn number(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.number() % n as u64) as usize
    }
}

//! Little-endian readers over key bytes, shared by the murmur2, XXH64,
//! MD5 and twemproxy families.

/// Little-endian u64 from the first 8 bytes; callers pass slices of at
/// least that length (chunks or checked remainders).
#[inline]
pub(super) fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

#[inline]
pub(super) fn le32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

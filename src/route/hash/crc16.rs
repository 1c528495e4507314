//! CRC-16/XMODEM: Redis Cluster's key slots (`topology::slots`); its table
//! also serves twemproxy's unmasked `crc16`.

/// The MSB-first CRC-16 table (polynomial 0x1021, XMODEM's).
pub(super) const CRC16_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u16) << 8;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x1021
            } else {
                c << 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0): Redis Cluster's
/// key slots.
#[inline]
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[((crc >> 8) as u8 ^ b) as usize]
    })
}

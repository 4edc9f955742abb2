//! CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR.
//! Check value: `crc16(b"123456789") == 0x29B1`.

const POLY: u16 = 0x1021;
const INIT: u16 = 0xFFFF;

/// Byte-at-a-time lookup table, computed at compile time.
static TABLE: [u16; 256] = make_table();

const fn make_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ POLY } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC of `data` (CRC-16/CCITT-FALSE).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = INIT;
    for &b in data {
        let idx = ((crc >> 8) as u8 ^ b) as usize;
        crc = (crc << 8) ^ TABLE[idx];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit reference implementation to cross-check the table.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = INIT;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ POLY } else { crc << 1 };
            }
        }
        crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn empty_is_init() {
        assert_eq!(crc16(&[]), 0xFFFF);
    }

    #[test]
    fn table_matches_bitwise() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for n in 0..data.len() {
            assert_eq!(crc16(&data[..n]), crc16_bitwise(&data[..n]), "len {n}");
        }
        assert_eq!(TABLE[1], 0x1021);
        assert_eq!(TABLE[255], 0x1EF0);
    }
}

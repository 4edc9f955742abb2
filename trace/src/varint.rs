//! Unsigned LEB128 varints (u64, at most 10 bytes) and zigzag mapping for i64.

/// Longest encoding of a u64.
pub const MAX_LEN: usize = 10;

/// Why a varint could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarintError {
    /// Input ended before the last byte (the one without the 0x80 bit).
    Truncated,
    /// More than 10 bytes, or a value that does not fit in 64 bits.
    Overflow,
}

/// Writes `v` into `out`; returns the number of bytes written, or `None`
/// if `out` is too small.
pub fn encode(mut v: u64, out: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        let slot = out.get_mut(n)?;
        n += 1;
        if v == 0 {
            *slot = low;
            return Some(n);
        }
        *slot = low | 0x80;
    }
}

/// Reads a varint from the start of `input`; returns the value and the
/// number of bytes it occupied. Non-minimal encodings are accepted.
pub fn decode(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v = 0u64;
    for i in 0..MAX_LEN {
        let b = *input.get(i).ok_or(VarintError::Truncated)?;
        if i == MAX_LEN - 1 && b > 1 {
            // The 10th byte carries only bit 63 and must be the last.
            return Err(VarintError::Overflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(VarintError::Overflow)
}

/// Zigzag: 0, -1, 1, -2, 2 ... map to 0, 1, 2, 3, 4 ...
pub const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: u64) -> usize {
        let mut buf = [0u8; MAX_LEN];
        let n = encode(v, &mut buf).unwrap();
        assert_eq!(decode(&buf[..n]), Ok((v, n)), "value {v:#x}");
        // Every strict prefix is truncated.
        for k in 0..n {
            assert_eq!(decode(&buf[..k]), Err(VarintError::Truncated));
        }
        n
    }

    #[test]
    fn boundaries() {
        assert_eq!(round_trip(0), 1);
        assert_eq!(round_trip(1), 1);
        assert_eq!(round_trip(127), 1);
        assert_eq!(round_trip(128), 2);
        assert_eq!(round_trip(16383), 2);
        assert_eq!(round_trip(16384), 3);
        assert_eq!(round_trip(u32::MAX as u64), 5);
        assert_eq!(round_trip(1 << 63), 10);
        assert_eq!(round_trip(u64::MAX), 10);
    }

    #[test]
    fn exact_bytes() {
        let mut buf = [0u8; MAX_LEN];
        assert_eq!(encode(0, &mut buf), Some(1));
        assert_eq!(buf[0], 0);
        assert_eq!(encode(128, &mut buf), Some(2));
        assert_eq!(&buf[..2], &[0x80, 0x01]);
        assert_eq!(encode(300, &mut buf), Some(2));
        assert_eq!(&buf[..2], &[0xac, 0x02]);
        assert_eq!(encode(u64::MAX, &mut buf), Some(10));
        assert_eq!(&buf[..10], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn out_too_small() {
        let mut buf = [0u8; 1];
        assert_eq!(encode(128, &mut buf), None);
        assert_eq!(encode(127, &mut buf), Some(1));
        assert_eq!(encode(0, &mut []), None);
    }

    #[test]
    fn overflow_rejected() {
        // 10th byte with more than bit 63.
        let mut bad = [0xffu8; 10];
        bad[9] = 0x02;
        assert_eq!(decode(&bad), Err(VarintError::Overflow));
        // 11-byte encoding.
        let long = [0x80u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00];
        assert_eq!(decode(&long), Err(VarintError::Overflow));
        // Non-minimal but in range is accepted.
        assert_eq!(decode(&[0x80, 0x00]), Ok((0, 2)));
        // Trailing bytes are left alone.
        assert_eq!(decode(&[0x05, 0xff, 0xff]), Ok((5, 1)));
    }

    #[test]
    fn zigzag_boundaries() {
        for (s, u) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (63, 126),
            (-64, 127),
            (64, 128),
            (i64::MAX, u64::MAX - 1),
            (i64::MIN, u64::MAX),
        ] {
            assert_eq!(zigzag(s), u, "zigzag({s})");
            assert_eq!(unzigzag(u), s, "unzigzag({u})");
        }
    }
}

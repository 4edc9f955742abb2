//! Consistent Overhead Byte Stuffing over whole slices. The streaming
//! decoder lives in [`crate::Deframer`].
//!
//! Encoded size is at most `n + 1 + n / 254` for `n` input bytes and never
//! contains 0x00, so 0x00 can delimit frames. A block of 254 non-zero bytes
//! that ends the input gets no trailing empty block.

use crate::DecodeError;

/// Worst-case encoded length of `n` input bytes (without the delimiter).
pub const fn max_encoded_len(n: usize) -> usize {
    n + 1 + n / 254
}

/// COBS-encodes `input` into `out` (no delimiter). Returns the encoded
/// length, or `None` if `out` is too small.
pub fn encode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut code_pos = 0; // where the current block's code byte goes
    let mut w = 1; // next data byte position
    let mut code: u8 = 1; // 1 + data bytes in the current block
    for &b in input {
        if code == 0xFF {
            // Full block: close it and open the next one only now that we
            // know more input follows.
            *out.get_mut(code_pos)? = code;
            code_pos = w;
            w += 1;
            code = 1;
        }
        if b == 0 {
            *out.get_mut(code_pos)? = code;
            code_pos = w;
            w += 1;
            code = 1;
        } else {
            *out.get_mut(w)? = b;
            w += 1;
            code += 1;
        }
    }
    *out.get_mut(code_pos)? = code;
    Some(w)
}

/// Decodes one COBS frame (delimiter already removed) into `out`.
/// Errors: [`DecodeError::Cobs`] for malformed input (a 0x00 byte, or a
/// block running past the end), [`DecodeError::TooLong`] if `out` is too small.
pub fn decode(input: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let mut rest = input;
    let mut w = 0;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            return Err(DecodeError::Cobs);
        }
        let n = usize::from(code - 1);
        let (block, tail) = tail.split_at_checked(n).ok_or(DecodeError::Cobs)?;
        if block.contains(&0) {
            return Err(DecodeError::Cobs);
        }
        let end = w + n;
        out.get_mut(w..end).ok_or(DecodeError::TooLong)?.copy_from_slice(block);
        w = end;
        rest = tail;
        if code != 0xFF && !rest.is_empty() {
            *out.get_mut(w).ok_or(DecodeError::TooLong)? = 0;
            w += 1;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec;
    use std::vec::Vec;

    fn enc(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; max_encoded_len(input.len())];
        let n = encode(input, &mut out).unwrap();
        out.truncate(n);
        assert!(!out.contains(&0), "encoded output contains 0");
        out
    }

    fn dec(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = vec![0u8; input.len()];
        let n = decode(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    fn round_trip(input: &[u8]) -> Vec<u8> {
        let e = enc(input);
        assert!(e.len() <= max_encoded_len(input.len()));
        assert_eq!(dec(&e).unwrap(), input);
        e
    }

    #[test]
    fn known_vectors() {
        // Examples from the COBS paper / Wikipedia.
        assert_eq!(round_trip(&[]), [0x01]);
        assert_eq!(round_trip(&[0x00]), [0x01, 0x01]);
        assert_eq!(round_trip(&[0x00, 0x00]), [0x01, 0x01, 0x01]);
        assert_eq!(round_trip(&[0x00, 0x11, 0x00]), [0x01, 0x02, 0x11, 0x01]);
        assert_eq!(round_trip(&[0x11, 0x22, 0x00, 0x33]), [0x03, 0x11, 0x22, 0x02, 0x33]);
        assert_eq!(round_trip(&[0x11, 0x00, 0x00, 0x00]), [0x02, 0x11, 0x01, 0x01, 0x01]);
    }

    #[test]
    fn all_zero_payloads() {
        for n in [1usize, 2, 100, 254, 255, 300] {
            let input = vec![0u8; n];
            let e = round_trip(&input);
            assert_eq!(e.len(), n + 1);
            assert!(e.iter().all(|&b| b == 1));
        }
    }

    #[test]
    fn runs_of_254_and_255_nonzero() {
        let run254: Vec<u8> = (1..=254).map(|i| i as u8).collect();
        let e = round_trip(&run254);
        assert_eq!(e.len(), 255);
        assert_eq!(e[0], 0xFF);

        let run255: Vec<u8> = (0..255).map(|i| (i % 255 + 1) as u8).collect();
        let e = round_trip(&run255);
        assert_eq!(e.len(), 257);
        assert_eq!(e[0], 0xFF);
        assert_eq!(e[255], 0x02);

        // 254 non-zero bytes followed by a zero, and preceded by one.
        let mut z = run254.clone();
        z.push(0);
        let e = round_trip(&z);
        assert_eq!(&e[255..], &[0x01, 0x01]);
        let mut z = vec![0u8];
        z.extend_from_slice(&run254);
        round_trip(&z);

        // Long runs: many full blocks.
        for n in [253usize, 508, 509, 762, 1000] {
            let input: Vec<u8> = (0..n).map(|i| (i % 200 + 1) as u8).collect();
            round_trip(&input);
        }
    }

    #[test]
    fn decoder_accepts_trailing_empty_block() {
        // Some encoders emit FF <254 bytes> 01 for a 254-byte run.
        let mut e = vec![0xFFu8];
        e.extend((1..=254).map(|i| i as u8));
        e.push(0x01);
        assert_eq!(dec(&e).unwrap().len(), 254);
    }

    #[test]
    fn malformed() {
        assert_eq!(dec(&[0x05, 0x11]), Err(DecodeError::Cobs)); // block past end
        assert_eq!(dec(&[0x02, 0x00]), Err(DecodeError::Cobs)); // zero in block
        assert_eq!(dec(&[0x00]), Err(DecodeError::Cobs)); // zero code
        let mut small = [0u8; 1];
        assert_eq!(decode(&[0x03, 1, 2], &mut small), Err(DecodeError::TooLong));
    }

    #[test]
    fn encode_out_too_small() {
        let input = [1u8, 2, 3];
        let mut out = [0u8; 3];
        assert_eq!(encode(&input, &mut out), None);
        let mut out = [0u8; 4];
        assert_eq!(encode(&input, &mut out), Some(4));
        assert_eq!(encode(&[], &mut []), None);
    }
}

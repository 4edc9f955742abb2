//! A digest of porwatch's own code and read-only data, computed at boot and
//! again when the guest stops: if anything (a device's DMA, the guest)
//! changed hyp's image, the run ends as a hypervisor failure instead of
//! reporting a clean trace. FNV-1a (64-bit) over little-endian 64-bit
//! words: not a cryptographic hash, but any write the guest could aim at
//! the image changes it, and it needs no FP/SIMD and no tables.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `words`, one 64-bit word at a time.
pub fn fnv1a64(words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(FNV_OFFSET, |h, w| (h ^ w).wrapping_mul(FNV_PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_changes_the_digest() {
        let mut words = [0u64; 512];
        for (i, w) in words.iter_mut().enumerate() {
            *w = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let base = fnv1a64(words);
        assert_eq!(base, fnv1a64(words), "deterministic");
        assert_ne!(fnv1a64([]), fnv1a64([0]), "length matters");
        for i in [0, 1, 255, 511] {
            for bit in [0, 7, 31, 63] {
                let mut w = words;
                w[i] ^= 1 << bit;
                assert_ne!(fnv1a64(w), base, "word {i} bit {bit}");
            }
            // Zeroing a word (what the fw_cfg DMA attack did to the vectors).
            let mut w = words;
            w[i] = 0;
            assert_ne!(fnv1a64(w), base, "word {i} zeroed");
        }
        // Swapping two words.
        let mut w = words;
        w.swap(3, 4);
        assert_ne!(fnv1a64(w), base);
    }
}

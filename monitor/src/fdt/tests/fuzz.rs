//! Property-based fuzzing: random mutations of the fixtures never panic.

use super::*;
use crate::fdt::{discover, rewrite, Edits, Platform};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

fn exercise(dtb: &[u8], cut: usize) {
    let mut p = Platform::new();
    let _ = discover(dtb, &mut p);
    let mut out = vec![0u8; dtb.len() + 512];
    let edits = Edits {
        remove: &["/pl011@9040000"],
        carve_out: &[(0x4020_0000, 0x100_0000)],
        bootargs: Some("console=ttyAMA0"),
        reserve: &[(0x4800_0000, 0x1000)],
    };
    if let Ok(n) = rewrite(dtb, &edits, &mut out) {
        // Whatever is produced must itself be readable.
        let mut q = Platform::new();
        let _ = discover(&out[..n], &mut q);
        crate::fdt::Fdt::new(&out[..n]).expect("rewrite output must parse");
    }
    let cut = cut.min(out.len());
    let _ = rewrite(dtb, &Edits::default(), &mut out[..cut]);
}

fn mutate(src: &[u8], muts: &[(usize, u8, bool)], trunc: Option<usize>) -> Vec<u8> {
    let mut b = src.to_vec();
    for &(i, v, word) in muts {
        let i = i % b.len();
        if word {
            // Small big-endian word: hits tokens, lengths and offsets.
            let i = i & !3;
            if i + 4 <= b.len() {
                b[i..i + 4].copy_from_slice(&u32::from(v).to_be_bytes());
            }
        } else {
            b[i] = v;
        }
    }
    if let Some(t) = trunc {
        b.truncate(t % (b.len() + 1));
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..5,
        muts in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 1..12),
        trunc in proptest::option::weighted(0.1, any::<usize>()),
        cut in any::<usize>(),
    ) {
        let src = [VIRT_GICV3, VIRT_SECURE, FVP_NESTED, MISC_GICV2, TINY][which];
        let b = mutate(src, &muts, trunc);
        exercise(&b, cut % (src.len() + 1024));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut b = bytes;
        // Give it a valid magic half the time so the header checks get past it.
        if b.len() >= 4 && b[0] & 1 == 0 {
            b[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
        }
        exercise(&b, 256);
    }
}
